"""Test-wide settings: one torch thread (small matrices run fastest single-threaded on CPU,
and the suite stays predictable on CI's 2 cores); and ``imports_none``, the check that a
statement leaves the heavy libraries unimported (a fresh interpreter for each check)."""

import subprocess
import sys
from collections.abc import Callable, Sequence

import pytest
import torch

torch.set_num_threads(1)

HEAVY = ("torch", "pandas", "altair")


def _imports_none(
    statement: str, heavy: Sequence[str] = HEAVY, timeout: float = 180
) -> subprocess.CompletedProcess:
    """Run ``statement`` in a fresh interpreter (``SystemExit`` swallowed, as after
    ``--help``) and assert that none of ``heavy`` was imported; returns the finished process
    (its stdout holds what the statement printed)."""
    body = "\n".join("    " + line for line in statement.splitlines())
    code = (
        "import sys\n"
        "try:\n"
        f"{body}\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = [m for m in {tuple(heavy)!r} if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def imports_none() -> Callable[..., subprocess.CompletedProcess]:
    """``imports_none(statement, heavy=HEAVY)``: see :func:`_imports_none`."""
    return _imports_none
