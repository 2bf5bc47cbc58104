"""Claim-by-claim reproduction of the papers' statements (theory §5.6).

``dnc_interactive.verify()`` (this module is callable) and ``dnc-interactive verify`` run
the registered claims (:data:`~dnc_interactive.verify.claims.CLAIMS`: the 2023 paper's DUFM
and real-network claims, the follow-up's Figures 2 and 3, Garrod & Keating's cross-entropy
result), each at its quick or full size, and write ``verdict.json`` and a one-page
``report.html`` (plus ``report.png`` when vl-convert is available)::

    import dnc_interactive
    doc = dnc_interactive.verify(quick=True, claims=["follow_up_fig3_srg_below_dnc"])
    doc["all_held"], [c["measured"] for c in doc["claims"]]

Claims run in ``workers`` processes (:func:`dnc_interactive.sweeps.worker_pool`, one torch
thread each), the costly ones first.
"""

from __future__ import annotations

import os
import sys
import time
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dnc_interactive.verify.claims import CLAIMS, SIZES, Claim, Outcome, Result, get_claims

__all__ = ["CLAIMS", "SIZES", "Claim", "Outcome", "Result", "run_claims", "verify"]


def _run_one(claim: Claim, size: str) -> Result:
    """Run one claim on one torch thread (what a worker process executes)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return claim.run(size)
    finally:
        torch.set_num_threads(old)


def _default_workers() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


def run_claims(
    claims: Sequence[Claim],
    size: str = "quick",
    workers: int = 1,
    on_result: Callable[[Result], Any] | None = None,
) -> list[Result]:
    """Run ``claims`` at ``size`` and return their results in the given order.

    With ``workers > 1`` (and more than one claim) they run in a
    :func:`~dnc_interactive.sweeps.worker_pool`, the costly ones first; ``on_result`` is
    called as each one finishes.
    """
    if size not in SIZES:
        raise ValueError(f"size={size!r} is not valid: expected one of {SIZES}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is not valid: expected an int >= 1")
    claims = list(claims)
    results: dict[str, Result] = {}
    if workers == 1 or len(claims) <= 1:
        for c in claims:
            results[c.name] = _run_one(c, size)
            if on_result is not None:
                on_result(results[c.name])
    else:
        from concurrent.futures import as_completed

        from dnc_interactive.sweeps import worker_pool

        order = sorted(claims, key=lambda c: -c.cost)
        with worker_pool(min(workers, len(claims))) as pool:
            futures = {pool.submit(_run_one, c, size): c for c in order}
            for fut in as_completed(futures):
                c = futures[fut]
                try:
                    res = fut.result()
                except Exception as exc:  # a dead worker: the claim fails, the rest go on
                    res = Result(
                        c.name, c.paper, c.figure, c.setting, c.threshold, size, {}, {}, False,
                        f"error: the worker failed ({type(exc).__name__}: {exc})", 0.0,
                        error=repr(exc),
                    )  # fmt: skip
                results[c.name] = res
                if on_result is not None:
                    on_result(res)
    return [results[c.name] for c in claims]


def verify(
    quick: bool = True,
    claims: Sequence[str] | None = None,
    out: str | os.PathLike | None = "verify-report",
    workers: int | None = None,
    *,
    size: str | None = None,
    registry: Sequence[Claim] | None = None,
    png: bool = True,
    on_result: Callable[[Result], Any] | None = None,
) -> dict[str, Any]:
    """Check the papers' claims and write the report (theory §5.6).

    Args:
        quick: the quick sizes (minutes on 2 CPU cores) rather than the full ones.
        claims: claim names (default: all, :data:`CLAIMS`).
        out: folder for verdict.json, report.html and report.png (None: write nothing).
        workers: processes to run claims in (default: min(2, cores)).
        size: overrides ``quick``: "tiny" (seconds, for tests), "quick" or "full".
        registry: claims to run instead of the registered ones (``claims`` then selects
            among them by name).
        png: also write report.png (needs vl-convert).
        on_result: called with each :class:`Result` as it finishes.

    Returns:
        The verdict dict (``version``, ``quick``, ``size``, ``claims``, ``all_held``, ...;
        see :func:`dnc_interactive.verify.report.verdict`) with ``results`` (the
        :class:`Result` objects, charts included) and, when written, ``files``.

    Raises:
        ValueError: an unknown claim name, size or a bad ``workers``, before any work.
    """
    size = size if size is not None else ("quick" if quick else "full")
    if size not in SIZES:
        raise ValueError(f"size={size!r} is not valid: expected one of {SIZES}")
    if workers is None:
        workers = _default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r} is not valid: expected an int >= 1")
    if registry is not None:
        pool = {c.name: c for c in registry}
        if claims is None:
            chosen = list(pool.values())
        else:
            unknown = [n for n in claims if n not in pool]
            if unknown or not claims:
                raise ValueError(
                    f"claims={','.join(unknown)!r} is not valid: expected names among"
                    f" {', '.join(pool)}"
                )
            chosen = [pool[n] for n in pool if n in claims]
    else:
        chosen = get_claims(claims)
    t0 = time.perf_counter()
    results = run_claims(chosen, size, workers, on_result)
    seconds = time.perf_counter() - t0
    from dnc_interactive.verify import report

    if out is not None:
        doc = report.write_report(
            results, Path(out), quick=size != "full", size=size, seconds=seconds,
            workers=workers, png=png,
        )  # fmt: skip
    else:
        doc = report.verdict(
            results, quick=size != "full", size=size, seconds=seconds, workers=workers
        )
    doc["results"] = results
    return doc


class _CallableModule(types.ModuleType):
    """``dnc_interactive.verify(...)`` calls :func:`verify` (the package is also a module)."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return verify(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
