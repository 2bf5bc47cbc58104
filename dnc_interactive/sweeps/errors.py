"""The exceptions and the warning of a sweep and of its results store."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ResultsFileError",
    "ResultsLockedError",
    "ResultsRepaired",
    "SweepError",
    "SweepInterrupted",
]


class SweepError(RuntimeError):
    """A sweep stopped before finishing (a chunk failed); finished chunks are in the file."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM on the command line) stopped a sweep: the queued chunks were
    cancelled and every finished chunk is saved (``saved`` of ``pending`` configurations)."""

    def __init__(self, message: str, saved: int = 0, pending: int = 0) -> None:
        super().__init__(message)
        self.saved = saved
        self.pending = pending


class ResultsFileError(ValueError):
    """A results file that is corrupt, not a sweep results file, or in use.

    The message names the file (or part file, with the line) and the fix; ``path`` is it.
    """

    def __init__(self, path: Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(message)


class ResultsLockedError(ResultsFileError):
    """Another sweep is writing the same results file (its lock is held)."""


class ResultsRepaired(UserWarning):
    """A broken tail (a write cut off by a crash or kill) was dropped from a results file."""
