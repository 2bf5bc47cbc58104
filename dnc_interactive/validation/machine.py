"""Checks against this machine: the cores, the devices and a writable output path.

:func:`available_cores` and :func:`check_threads` (a worker count within the cores this
process may use), :func:`check_device_available` (a device string that names a device that
exists here; torch is imported only for a CUDA or MPS device) and :func:`check_output_path`
(a results file that can be written, checked before any work).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dnc_interactive.validation.checking import check_value
from dnc_interactive.validation.errors import ParameterError, one_line
from dnc_interactive.validation.rules import Device, Int


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def check_threads(value: Any, field: str = "threads", optional: bool = True) -> int | None:
    """A thread / worker count in [1, the cores available]."""
    if value is None and optional:
        return None
    cores = available_cores()
    rule = Int(ge=1, le=cores, text=f"an int in [1, {cores}] (the cores available)")
    return check_value(field, value, rule)


def check_device_available(value: str, field: str = "device") -> str:
    """``value`` (a device string) names a device that exists on this machine."""
    check_value(field, value, Device(extra=("auto",)))
    kind, _, index = value.partition(":")
    if kind in ("cpu", "auto"):
        return value
    import torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        i = int(index) if index else 0
        if i < count:
            return value
        why = (
            f"CUDA is not available here (torch {torch.__version__})"
            if count == 0
            else f"this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}"
        )
        allowed = "'cpu'" if count == 0 else f"'cpu' or 'cuda:<0..{count - 1}>'"
        raise ParameterError(
            field,
            value,
            allowed,
            message=f"{field}={value!r} is not valid: {why}; expected {allowed}",
        )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available() and not index:
        return value
    raise ParameterError(
        field,
        value,
        "'cpu'",
        message=f"{field}={value!r} is not valid: MPS is not available here; expected 'cpu'",
    )


def check_output_path(
    value: Any, suffixes: Sequence[str] = (".csv", ".parquet"), field: str = "out"
) -> Path:
    """A results file that can be written: a known suffix, not a directory, in a directory
    that exists (or can be created) and is writable; ``.parquet`` needs pyarrow.

    Checked before any work, so a long run never ends in an unwritable file.
    """
    words = " or ".join(suffixes)
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ParameterError(field, value, f"a {words} file path")
    path = Path(value)
    if path.suffix.lower() not in suffixes:
        raise ParameterError(
            field,
            str(path),
            f"a {words} file",
            message=f"{field}={str(path)!r} is not valid: expected a {words} file",
        )

    def fail(why: str) -> ParameterError:
        return ParameterError(
            field,
            str(path),
            f"a writable {words} file",
            message=f"{field}={str(path)!r} is not valid: {why}",
        )

    try:
        if path.is_dir():
            raise fail("it is a directory; expected a file path")
        if path.exists():
            if not os.access(path, os.W_OK):
                raise fail("the file exists and is not writable")
        else:
            parent = path.parent
            while not parent.exists() and parent != parent.parent:
                parent = parent.parent
            if not parent.is_dir():
                raise fail(f"{str(parent)!r} is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise fail(f"the directory {str(parent)!r} is not writable")
            # permissions can say yes where the file system says no (/proc, a read-only
            # mount, a full disk): create and remove a probe file there
            import tempfile

            try:
                with tempfile.TemporaryFile(dir=parent):
                    pass
            except OSError as exc:
                raise fail(f"files cannot be created in {str(parent)!r}: {one_line(exc)}") from None
    except OSError as exc:
        raise fail(one_line(exc)) from None
    if path.suffix.lower() == ".parquet":
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:
            raise fail("writing Parquet needs pyarrow (pip install pyarrow); or use a .csv file")
    return path
