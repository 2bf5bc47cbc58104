"""The writer lock of a results store: ``<name>.lock`` next to it (an OS lock, released
by the kernel even when its holder is killed), so two sweeps never write one file."""

from __future__ import annotations

import errno
import json
import os
import socket
import time
import warnings
from pathlib import Path

from dnc_interactive.sweeps.errors import ResultsLockedError, ResultsRepaired

try:  # POSIX: an flock is released by the kernel when its holder dies, even by SIGKILL
    import fcntl
except ImportError:  # pragma: no cover - Windows: O_EXCL lock file with a pid liveness check
    fcntl = None  # type: ignore[assignment]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


class _ResultsLock:
    """Exclusive writer lock on a results path: ``<name>.lock`` next to it, holding the
    writer's pid, host and start time (for the refusal message)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def _holder(self, fd: int | None = None) -> str:
        try:
            if fd is not None:
                text = os.pread(fd, 4096, 0).decode(errors="replace")
            else:
                text = self.lock_path.read_text(errors="replace")
            info = json.loads(text)
            return f"pid {info['pid']} on {info['host']}, started {info['started']}"
        except Exception:
            return "another process"

    def _refuse(self, holder: str) -> ResultsLockedError:
        return ResultsLockedError(
            self.path,
            f"{self.path} is being written by another sweep ({holder}): two writers on one"
            " results file would mix or lose rows, so this one is refused. Fix: wait for that"
            " sweep to finish (it resumes nothing twice), or give this one another out= /"
            f" --out. If no sweep is running, delete {self.lock_path}.",
        )

    def _stamp(self) -> bytes:
        return json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        ).encode()

    def acquire(self) -> _ResultsLock:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # a holder may unlink the lock between our open and our lock
            if fcntl is None:  # pragma: no cover - Windows
                return self._acquire_excl()
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = self._holder(fd)
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise self._refuse(holder) from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, self._stamp(), 0)
            self._fd = fd
            return self
        raise self._refuse("a writer that keeps replacing the lock")  # pragma: no cover

    def _acquire_excl(self) -> _ResultsLock:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    pid = int(json.loads(self.lock_path.read_text())["pid"])
                except Exception:
                    raise self._refuse(self._holder()) from None
                if _pid_alive(pid):
                    raise self._refuse(self._holder()) from None
                warnings.warn(
                    f"{self.lock_path}: removed the stale lock of pid {pid} (not running)",
                    ResultsRepaired,
                    stacklevel=3,
                )
                self.lock_path.unlink(missing_ok=True)
                continue
            os.write(fd, self._stamp())
            self._fd = fd
            return self
        raise self._refuse(self._holder())

    def held_by_other(self) -> bool:
        """True if another process holds the lock now (checked without taking it)."""
        if not self.lock_path.exists():
            return False
        if fcntl is None:  # pragma: no cover - Windows
            try:
                return _pid_alive(int(json.loads(self.lock_path.read_text())["pid"]))
            except Exception:
                return False
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.lock_path.unlink(missing_ok=True)  # while still holding it (see acquire)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> _ResultsLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
