"""Running a sweep: :func:`sweep` (grid -> chunks by shape -> here or on any
:class:`concurrent.futures.Executor` -> results store and one tidy frame), Ctrl-C and
failure handling, and :func:`worker_pool`, a process pool that leaves no orphans."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd

from dnc_interactive.config import DUFMConfig
from dnc_interactive.optim import shape_key
from dnc_interactive.sweeps.batch import run_batch
from dnc_interactive.sweeps.columns import _config_columns, _tidy
from dnc_interactive.sweeps.errors import SweepError, SweepInterrupted
from dnc_interactive.sweeps.grid import config_key, expand_grid
from dnc_interactive.sweeps.lock import _ResultsLock
from dnc_interactive.sweeps.store import _check_out, _store
from dnc_interactive.training import Recipe
from dnc_interactive.validation import ParameterError, budget_for, dufm_estimate

__all__ = ["sweep", "worker_pool"]


def _chunks(
    pending: list[int], pairs: list[tuple[DUFMConfig, Recipe]], batched: bool, size: int | None
) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i in pending:
        config, recipe = pairs[i]
        groups.setdefault(shape_key(config, recipe), []).append(i)
    out = []
    for members in groups.values():
        step = 1 if not batched else min(size or len(members), _batch_cap(pairs[members[0]][0]))
        out += [members[j : j + step] for j in range(0, len(members), step)]
    return out


def _batch_cap(config: DUFMConfig) -> int:
    """How many configurations of this shape one batch may hold within the memory budget
    (each configuration is within it alone; a batch of B needs B times the memory)."""
    one = dufm_estimate(config.K, config.class_sizes, config.L, config.widths, config.dtype).memory
    return max(1, int(budget_for(config.device).memory // max(one, 1.0)))


def sweep(
    grid: Mapping[str, Any] | Sequence[DUFMConfig | Mapping[str, Any]],
    steps: int,
    *,
    batched: bool = True,
    executor: Executor | None = None,
    base: DUFMConfig | None = None,
    recipe: Recipe | None = None,
    out: str | os.PathLike | None = None,
    record_every: int = 10,
    batch_size: int | None = None,
    threads: int | None = 1,
    polish: int = 0,
    progress: bool = True,
    on_chunk: Callable[[pd.DataFrame], Any] | None = None,
) -> pd.DataFrame:
    """Train every configuration of ``grid`` for ``steps`` steps; one tidy row per config.

    Args:
        grid: a dict of parameter lists or a list of configurations; see :func:`expand_grid`
            (parameters: DUFMConfig fields, Recipe fields such as ``lr``, and ``lambda``).
        steps: gradient steps per configuration (>= 1).
        batched: train same-shape configurations together (:class:`BatchedTrainer`); False
            trains them one at a time (the same code with B = 1). Results are the same.
        executor: any :class:`concurrent.futures.Executor` to run the chunks on (a
            ``ProcessPoolExecutor``, Dask's ``Client.get_executor()``, ...); None runs them here.
        base: defaults for the config fields the grid does not set (``DUFMConfig()``).
        recipe: defaults for the recipe fields the grid does not set (``Recipe()``).
        out: a ``.parquet`` (a directory of part files) or ``.csv`` results store. Rows
            already there (same :func:`config_key`) are reused, not recomputed; each finished
            chunk is appended at once (never a rewrite of the whole file), so an interrupted
            sweep resumes where it stopped. A broken tail left by a crash is dropped with a
            :class:`ResultsRepaired` warning; while this sweep runs, ``out`` is locked
            (``<out>.lock``) against a second writer.
        record_every: loss-check period of the divergence guard and momentum boost.
        batch_size: most configurations per chunk (None: a whole shape group per chunk, or,
            with an executor, groups split evenly over about 4 chunks per worker).
        threads: torch threads inside each chunk (1 keeps results identical on every path).
        polish: L-BFGS iterations after gradient descent, per configuration (0: none); see
            :func:`run_batch`.
        progress: show a tqdm progress bar (configurations done).
        on_chunk: called with the rows of each finished chunk (a DataFrame).

    Returns:
        One row per configuration, in grid order: the DUFMConfig fields, the Recipe fields,
        ``lambda`` (lambda_H when all lambdas are equal, else NaN), ``steps``, ``polish``,
        ``gd_loss`` (after gradient descent), ``final_loss`` (after the polish, if any),
        ``fit``, ``reg``, ``optimal_loss`` (L* of the DNC family, theory §2.2 / §6),
        ``relative_gap``, ``loss_ratio`` (final / optimal), ``status``, ``retries``,
        ``final_lr``, ``nc1_trace`` (largest NC1' = tr Σ_W / tr Σ_B over layers 2..L; ``nc1``
        is its deprecated alias, same value), ``nc2_orth``
        and ``nc3`` (last layer), ``q_mean`` (mean output scale), ``label`` / ``is_dnc`` /
        ``rank`` / ``min_rank_pre`` / ``rank_pre`` / ``rank_post`` (from
        :func:`dnc_interactive.lowrank.classify`, theory §5), ``dnc_optimality``, ``seconds``
        (training time per configuration, shared evenly in a batch), ``key`` and
        ``config_json``.

    Raises:
        ValueError: bad grid or arguments, before any work (naming the parameter).
        ResultsFileError: (a ``ValueError``) ``out`` is damaged other than in its tail, or
            is not a sweep results file; :class:`ResultsLockedError` when another sweep is
            writing it. Both before any work, with the fix.
        SweepError: a chunk failed (e.g. a worker died); the finished chunks are in ``out``,
            so calling again resumes.
        SweepInterrupted: (a ``KeyboardInterrupt``) Ctrl-C: queued chunks were cancelled,
            every finished chunk (also those done in other workers meanwhile) is in ``out``.
    """
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):
        raise ValueError(f"steps={steps!r} is not valid: expected an int >= 1")
    if not (isinstance(record_every, int) and record_every >= 1):
        raise ValueError(f"record_every={record_every!r} is not valid: expected an int >= 1")
    if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size={batch_size!r} is not valid: expected an int >= 1 or None")
    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads={threads!r} is not valid: expected an int >= 1 or None")
    if not (isinstance(polish, int) and not isinstance(polish, bool) and polish >= 0):
        raise ValueError(f"polish={polish!r} is not valid: expected an int >= 0")
    if executor is not None and not isinstance(executor, Executor):
        raise ValueError(
            f"executor={executor!r} is not valid: expected a concurrent.futures.Executor or None"
        )
    path = _check_out(out)
    pairs = expand_grid(grid, base, recipe)
    keys = [config_key(c, r, steps, record_every, polish) for c, r in pairs]
    lock = _ResultsLock(path) if path is not None else None
    if lock is not None:
        lock.acquire()  # a second writer on the same file is refused here, before any work
    try:
        return _sweep_locked(
            pairs,
            keys,
            steps,
            path,
            batched=batched,
            executor=executor,
            record_every=record_every,
            batch_size=batch_size,
            threads=threads,
            polish=polish,
            progress=progress,
            on_chunk=on_chunk,
        )
    finally:
        if lock is not None:
            lock.release()


def _sweep_locked(
    pairs: list[tuple[DUFMConfig, Recipe]],
    keys: list[str],
    steps: int,
    path: Path | None,
    *,
    batched: bool,
    executor: Executor | None,
    record_every: int,
    batch_size: int | None,
    threads: int | None,
    polish: int,
    progress: bool,
    on_chunk: Callable[[pd.DataFrame], Any] | None,
) -> pd.DataFrame:
    store = _store(path) if path is not None else None
    done = pd.DataFrame()
    if store is not None:
        done = store.read(repair=True, writer_active=False)
        store.prepare()
        done = _tidy(done) if len(done) else pd.DataFrame()
    have = set(done["key"]) if len(done) else set()
    pending = [i for i, k in enumerate(keys) if k not in have]
    seen: set[str] = set()
    # first occurrence of each key (set.add returns None, so the test is "not seen yet")
    pending = [i for i in pending if not (keys[i] in seen or seen.add(keys[i]))]  # type: ignore[func-returns-value]

    size = batch_size
    if executor is not None and batch_size is None and batched:
        workers = _worker_count(executor)
        size = max(1, math.ceil(len(pending) / (4 * workers))) if pending else None
    chunks = _chunks(pending, pairs, batched, size)

    def payload(idx: list[int]) -> list[dict[str, Any]]:
        return [
            {
                "config": pairs[i][0].to_dict(),
                "recipe": dataclasses.asdict(pairs[i][1]),
                "key": keys[i],
            }
            for i in idx
        ]

    def rows_of(idx: list[int], results: list[dict[str, Any]]) -> pd.DataFrame:
        recs = []
        for i, res in zip(idx, results, strict=True):
            recs.append({**_config_columns(*pairs[i]), **res})
        return _tidy(pd.DataFrame(recs))

    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), unit="config", disable=not progress or not pending, leave=False)
    collected = [done] if len(done) else []
    failure: BaseException | None = None
    saved = 0

    def finish(idx: list[int], results: list[dict[str, Any]], callback: bool = True) -> None:
        nonlocal saved
        frame = rows_of(idx, results)
        collected.append(frame)
        if store is not None:
            store.append(frame)  # one appended block / part file per chunk, never a rewrite
        saved += len(idx)
        bar.update(len(idx))
        if callback and on_chunk is not None:
            on_chunk(frame)

    def interrupted(exc: BaseException) -> BaseException:
        if not isinstance(exc, KeyboardInterrupt) or isinstance(exc, SweepInterrupted):
            return exc
        where = f" and saved in {str(path)!r}" if path is not None else " (no out= file)"
        return SweepInterrupted(
            f"sweep interrupted: {saved} of {len(pending)} pending configurations finished"
            f"{where}; the queued chunks were cancelled."
            + (" Run the same sweep again to resume." if path is not None else ""),
            saved=saved,
            pending=len(pending),
        )

    try:
        if executor is None:
            for idx in chunks:
                finish(idx, run_batch(payload(idx), steps, record_every, threads, polish))
        else:
            futures: dict[Future, list[int]] = {}
            handled: set[Future] = set()
            try:
                for idx in chunks:
                    fut = executor.submit(
                        run_batch, payload(idx), steps, record_every, threads, polish
                    )
                    futures[fut] = idx
                from concurrent.futures import as_completed

                for fut in as_completed(futures):
                    handled.add(fut)
                    try:
                        results = fut.result()
                    except Exception as exc:  # a worker died or the chunk raised
                        failure = failure or exc
                        continue
                    finish(futures[fut], results)
            except BaseException:
                # Ctrl-C (or a callback raising): cancel every queued chunk at once, then keep
                # every chunk that had already finished (no callback for those).
                for fut in futures:
                    fut.cancel()
                for fut, idx in futures.items():
                    if fut in handled or not fut.done() or fut.cancelled():
                        continue
                    handled.add(fut)
                    if fut.exception() is None:
                        finish(idx, fut.result(), callback=False)
                raise
    except BaseException as exc:
        new = interrupted(exc)
        if new is exc:
            raise
        raise new from exc
    finally:
        bar.close()
    if failure is not None:
        where = f"; finished chunks are saved in {str(path)!r}, run again to resume" if path else ""
        raise SweepError(
            f"a sweep chunk failed ({type(failure).__name__}: {failure}){where}"
        ) from failure

    table = _tidy(pd.concat(collected, ignore_index=True)) if collected else _tidy(pd.DataFrame())
    table = table.drop_duplicates("key", keep="last").set_index("key", drop=False)
    return table.loc[keys].reset_index(drop=True)


# ====================================================================== worker processes
def _watch_parent(ppid: int, period: float) -> None:
    while True:
        time.sleep(period)
        if os.getppid() != ppid:  # the parent died (even by SIGKILL): we were re-parented
            os._exit(1)


def _worker_init(period: float) -> None:
    """Initializer of :func:`worker_pool` processes: Ctrl-C is the parent's business (the
    terminal sends SIGINT to the whole process group; the parent cancels and terminates), and
    a watchdog thread ends the worker as soon as its parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ppid = os.getppid()
    threading.Thread(
        target=_watch_parent, args=(ppid, period), name="dnc-parent-watch", daemon=True
    ).start()


class _WorkerPool(ProcessPoolExecutor):
    """A ProcessPoolExecutor whose workers die with their parent and that can be stopped now."""

    def terminate(self) -> None:
        """Cancel the queued chunks and end the workers now (running chunks are lost)."""
        procs = list((getattr(self, "_processes", None) or {}).values())
        self.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():  # pragma: no cover - a worker ignoring SIGTERM
                p.kill()
                p.join(timeout=5)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:  # Ctrl-C or an error: do not wait for the running chunks
            self.terminate()
            return False
        return super().__exit__(exc_type, exc, tb)


def worker_pool(workers: int, mp_context: Any = None, *, watch_period: float = 0.2) -> _WorkerPool:
    """A process pool for :func:`sweep` that loses nothing to Ctrl-C and leaves no orphans.

    * Workers ignore SIGINT: Ctrl-C in a terminal reaches the parent, whose :func:`sweep`
      cancels the queued chunks and keeps every finished one; leaving a ``with`` block by an
      exception (or calling ``terminate()``) ends the workers at once instead of waiting for
      the running chunks.
    * Each worker watches its parent (every ``watch_period`` seconds) and exits when the
      parent is gone, even after a SIGKILL, so no orphaned worker keeps computing.

    ``mp_context`` defaults to "spawn" (safe with torch's threads); the command line's
    ``--workers N`` uses this pool.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError("workers", workers, "an int >= 1", owner="worker_pool")
    if isinstance(watch_period, bool) or not (
        isinstance(watch_period, (int, float)) and 0 < watch_period <= 60
    ):
        raise ParameterError(
            "watch_period", watch_period, "seconds in (0, 60]", owner="worker_pool"
        )
    ctx = mp_context if mp_context is not None else mp.get_context("spawn")
    return _WorkerPool(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(float(watch_period),)
    )


def _worker_count(executor: Executor) -> int:
    for attr in ("_max_workers", "max_workers"):
        n = getattr(executor, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    client = getattr(executor, "_client", None)  # dask.distributed ClientExecutor
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # pragma: no cover - defensive
            return 1
    return 1
