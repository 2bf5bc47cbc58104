"""CIFAR-10: the python pickle batches, read (through the restricted unpickler) and written
with checks, and the loader of one split.

:func:`read_cifar_batch` returns the (n, 3, 32, 32) uint8 images and int64 labels of one
batch or raises :class:`~dnc_interactive.realnets.data.catalog.DatasetFileError` naming the
file and the fix; :func:`write_cifar_batch` writes one; :func:`_load_cifar` reads a split.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from dnc_interactive.realnets.data.catalog import (
    _CIFAR_DIR,
    Dataset,
    DatasetFileError,
    DatasetUnavailableError,
    _refetch_fix,
)
from dnc_interactive.realnets.data.files import _download, _is_file, _missing_message
from dnc_interactive.realnets.data.safe_pickle import _unpickle_cifar, _UnsafePickle


def read_cifar_batch(path: str | Path, *, _fix: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch: (images uint8 (n, 3, 32, 32), labels int64 (n,)).

    The pickle is read by a restricted unpickler (no ``pickle.load``): only the numpy array and
    dtype reconstructors a batch needs are admitted, so a crafted file cannot run code; it is
    refused instead.

    Raises:
        DatasetFileError: (a ``ValueError``) naming the file and the fix, for a file that
            cannot be read, is truncated or corrupt, asks for anything but plain data, or does
            not hold ``data`` (n, 3072) uint8 and ``labels`` (n labels in 0..9).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            entry = _unpickle_cifar(fh)
    except _UnsafePickle as exc:
        raise DatasetFileError(
            path,
            f"refused to unpickle it: it asks for {exc}, which a CIFAR-10 batch never holds"
            " (a plain pickle.load of this file could run code)",
            _fix,
        ) from None
    except OSError as exc:
        raise DatasetFileError(
            path, f"cannot be read ({type(exc).__name__}: {exc.strerror or exc})", _fix
        ) from None
    except Exception as exc:  # a damaged stream fails in many ways; no code ran
        raise DatasetFileError(
            path,
            f"is not a readable CIFAR-10 batch, it is truncated or corrupt ({type(exc).__name__}:"
            f" {str(exc)[:120]})",
            _fix,
        ) from None
    if not isinstance(entry, dict):
        raise DatasetFileError(
            path, f"is not a CIFAR-10 batch (a pickled {type(entry).__name__}, not a dict)", _fix
        )
    data = entry.get(b"data", entry.get("data"))
    labels = entry.get(b"labels", entry.get("labels"))
    if data is None or labels is None:
        raise DatasetFileError(path, "is not a CIFAR-10 batch (no 'data'/'labels' entries)", _fix)
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim in (2, 4)):
        raise DatasetFileError(
            path, f"is not a CIFAR-10 batch ('data' is not a uint8 array: {_describe(data)})", _fix
        )
    n = data.shape[0]
    if data.shape[1:] not in ((3072,), (3, 32, 32)):
        raise DatasetFileError(
            path,
            f"is not a CIFAR-10 batch ('data' has shape {data.shape}, expected (n, 3072))",
            _fix,
        )
    labels = _int_labels(labels)
    if labels is None or labels.shape != (n,):
        raise DatasetFileError(
            path,
            f"is not a CIFAR-10 batch ('labels' is not a list of {n} integer labels:"
            f" {_describe(entry.get(b'labels', entry.get('labels')))})",
            _fix,
        )
    if n and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFileError(
            path, f"has labels outside 0..9 (values {labels.min()}..{labels.max()})", _fix
        )
    return data.reshape(n, 3, 32, 32), labels


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return type(value).__name__


def _int_labels(labels: object) -> np.ndarray | None:
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            return None
        return labels.astype(np.int64)
    if isinstance(labels, (list, tuple)) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels
    ):
        return np.asarray(labels, dtype=np.int64).reshape(len(labels))
    return None


def write_cifar_batch(path: str | Path, images: np.ndarray, labels: np.ndarray) -> Path:
    """Write a CIFAR-10 python batch (images uint8 (n, 3, 32, 32) or (n, 3072)). For tests."""
    images = np.asarray(images, dtype=np.uint8).reshape(len(labels), 3072)
    entry = {
        b"batch_label": b"written by dnc_interactive",
        b"labels": [int(v) for v in labels],
        b"data": images,
        b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
    }
    path = Path(path)
    with open(path, "wb") as fh:
        pickle.dump(entry, fh, protocol=2)
    return path


def _load_cifar(root: Path, split: str, download: bool) -> Dataset:
    names = ["test_batch"] if split == "test" else [f"data_batch_{i}" for i in range(1, 6)]
    dirs = [_CIFAR_DIR, ".", f"cifar10/{_CIFAR_DIR}"]

    def locate() -> list[Path] | None:
        for d in dirs:
            paths = [root / d / n for n in names]
            if all(_is_file(p) for p in paths):
                return paths
        return None

    paths = locate()
    if paths is None and download:
        _download("cifar10", root)
        paths = locate()
    if paths is None:
        raise DatasetUnavailableError(
            _missing_message("cifar10", root, f"{names} (searched {dirs})", download)
        )
    parts = [read_cifar_batch(p, _fix=_refetch_fix("cifar10", p.parent)) for p in paths]
    x = np.concatenate([p[0] for p in parts]).astype(np.float32) / 255.0
    y = np.concatenate([p[1] for p in parts])
    return Dataset("cifar10", split, x, y)
