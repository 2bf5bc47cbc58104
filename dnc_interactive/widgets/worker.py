"""The one worker thread every dashboard's play task trains on (one piece at a time), with
the per-thread settings a worker needs: torch's thread count and quiet RuntimeWarnings (a
divergence is said in the status line instead)."""

from __future__ import annotations

import concurrent.futures
import threading
import warnings
from collections.abc import Callable
from typing import Any

import torch

PROBE_SECONDS = 0.2

_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_WORKER = threading.local()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """The one worker thread every session's play task trains on (one piece at a time)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dnc-play")
            _quiet_worker_warnings()
            _POOL.submit(_in_worker, torch.get_num_threads(), torch.ones(8).sum)  # start it
        return _POOL


def _quiet_worker_warnings() -> None:
    """Drop RuntimeWarnings raised on the play worker thread (a divergence: the status line
    says it). ``warnings.catch_warnings`` is process-wide, so it cannot be used there; this
    wraps ``warnings.showwarning`` once and passes every other warning through."""
    show = warnings.showwarning
    if getattr(show, "_dnc_play_filter", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if getattr(_WORKER, "quiet", False) and issubclass(category, RuntimeWarning):
            return None
        return show(message, category, filename, lineno, file, line)

    showwarning._dnc_play_filter = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def _in_worker(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    # OpenMP / MKL thread counts are per calling thread: without this the worker's matmuls
    # use every core and spin-wait for the busy one (x100 slower on a loaded 2-core kernel),
    # and a different count could change the sums' rounding
    torch.set_num_threads(threads)
    _WORKER.quiet = True
    try:
        return fn(*args)
    finally:
        _WORKER.quiet = False


__all__: list[str] = []
