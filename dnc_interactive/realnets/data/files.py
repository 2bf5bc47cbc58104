"""Finding the raw files of a dataset under its root, and fetching missing ones.

The readers look in torchvision's layout and a few obvious variants (:func:`_find`, plain or
``.gz``); a missing file raises :class:`~dnc_interactive.realnets.data.catalog.
DatasetUnavailableError` naming the places searched and the fix (:func:`_missing_message`),
unless ``download=True``, when torchvision fetches it (:func:`_download`).
"""

from __future__ import annotations

from pathlib import Path

from dnc_interactive.realnets.data.catalog import (
    _IDX_DIRS,
    _URLS,
    OFFLINE_DATASETS,
    DatasetFileError,
    DatasetUnavailableError,
)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError as exc:  # e.g. a directory on the way without search permission
        raise DatasetFileError(
            path,
            f"cannot be accessed ({type(exc).__name__}: {exc.strerror or exc})",
            "check the permissions of the dataset directory (root=...; CLI: --root)",
        ) from None


def _find(root: Path, dirs: list[str], name: str) -> Path | None:
    for d in dirs:
        for candidate in (root / d / name, root / d / f"{name}.gz"):
            if _is_file(candidate):
                return candidate
    return None


def _idx_dirs(name: str) -> list[str]:
    sub = _IDX_DIRS[name]
    return [".", f"{sub}/raw", sub, name, f"{name}/raw"]


def _missing_message(name: str, root: Path, what: str, download: bool) -> str:
    fix_dl = (
        "pass download=True (CLI: --download; needs network access and torchvision: "
        "`pip install torchvision`)"
        if not download
        else "check the network connection"
    )
    return (
        f"dataset {name!r} is not available: {what} not found under {root}. Fix: {fix_dl}, "
        f"or download the raw files manually from {_URLS[name]} into {root} (or set root=...; "
        f"CLI: --root). The offline datasets {OFFLINE_DATASETS} need no files."
    )


def _download(name: str, root: Path) -> None:
    try:
        import torchvision  # noqa: F401
        from torchvision import datasets as tvd
    except ImportError:
        raise DatasetUnavailableError(
            f"dataset {name!r} is not under {root} and downloading it needs torchvision, which is"
            f" not installed. Fix: `pip install torchvision` (or `pip install "
            f"dnc-interactive[vision]`), or download the raw files manually from {_URLS[name]}"
            f" into {root}."
        ) from None
    cls = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}[name]
    root.mkdir(parents=True, exist_ok=True)
    try:
        for train in (True, False):
            getattr(tvd, cls)(str(root), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise DatasetUnavailableError(
            f"dataset {name!r} could not be downloaded into {root} ({type(exc).__name__}: "
            f"{exc}). Fix: check the network connection, or download the raw files manually "
            f"from {_URLS[name]} into {root}."
        ) from exc
