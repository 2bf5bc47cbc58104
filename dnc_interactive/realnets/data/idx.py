"""MNIST and Fashion-MNIST: the IDX file format, read and written with checks, and the
loader of one split.

:func:`read_idx` checks the magic number, the dimensions and the file size against the
header before reading (a truncated or oversized file raises
:class:`~dnc_interactive.realnets.data.catalog.DatasetFileError`); :func:`write_idx` writes
one; :func:`_load_idx` finds, reads and checks a split's image and label files.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from dnc_interactive.realnets.data.catalog import (
    _IDX_FILES,
    Dataset,
    DatasetFileError,
    DatasetUnavailableError,
    _refetch_fix,
)
from dnc_interactive.realnets.data.files import _download, _find, _idx_dirs, _missing_message


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


_IDX_MAX_BYTES = 1 << 34  # 16 GiB: far above any IDX dataset; a header claiming more is broken


def read_idx(path: str | Path, *, _fix: str | None = None) -> np.ndarray:
    """Read an IDX file (the MNIST format; ``.gz`` allowed) into a numpy array.

    Format: 2 zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, then each dimension as a
    big-endian int32, then the data in big-endian C order.

    Raises:
        DatasetFileError: (a ``ValueError``) naming the file and the fix, for a file that
            cannot be read, is not IDX, or is truncated (the header's size is checked before
            the data is read, so a broken header cannot make it read gigabytes).
    """
    path = Path(path)
    try:
        with _open(path) as fh:
            head = fh.read(4)
            if len(head) != 4 or head[0] != 0 or head[1] != 0 or head[2] not in _IDX_TYPES:
                raise DatasetFileError(
                    path, f"is not an IDX file (bad magic number {head!r})", _fix
                )
            ndim = head[3]
            raw_dims = fh.read(4 * ndim)
            if len(raw_dims) != 4 * ndim:
                raise DatasetFileError(
                    path, f"is truncated: its IDX header ends after {4 + len(raw_dims)} bytes", _fix
                )
            dims = struct.unpack(f">{ndim}i", raw_dims)
            dtype = np.dtype(_IDX_TYPES[head[2]])
            if any(n < 0 for n in dims):
                raise DatasetFileError(path, f"has a broken IDX header (dimensions {dims})", _fix)
            expected = math.prod(dims) * dtype.itemsize
            if expected > _IDX_MAX_BYTES:
                raise DatasetFileError(
                    path, f"has a broken IDX header (dimensions {dims}, {expected} bytes)", _fix
                )
            data = fh.read(expected + 1)
    except DatasetFileError:
        raise
    except (OSError, EOFError, zlib.error) as exc:  # gzip damage, permissions, a directory
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DatasetFileError(
            path,
            f"cannot be read ({type(exc).__name__}: {detail}), it is damaged or truncated",
            _fix,
        ) from None
    if len(data) != expected:
        what = "is truncated" if len(data) < expected else "has trailing data"
        raise DatasetFileError(
            path,
            f"{what}: IDX header says {dims} ({expected} bytes), found"
            f" {len(data) if len(data) <= expected else 'more'}",
            _fix,
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8 or int32 etc.) as an IDX file; ``.gz`` compresses. For tests."""
    codes = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}
    array = np.asarray(array)
    key = array.dtype.str[1:]
    if key not in codes:
        raise ValueError(f"dtype {array.dtype} cannot be written as IDX")
    path = Path(path)
    head = bytes([0, 0, codes[key], array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    payload = head + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with gzip.open(path, "wb") if path.suffix == ".gz" else open(path, "wb") as fh:
        fh.write(payload)
    return path


def _load_idx(name: str, root: Path, split: str, download: bool) -> Dataset:
    img_name, lab_name = _IDX_FILES[split]
    dirs = _idx_dirs(name)
    img, lab = _find(root, dirs, img_name), _find(root, dirs, lab_name)
    if (img is None or lab is None) and download:
        _download(name, root)
        img, lab = _find(root, dirs, img_name), _find(root, dirs, lab_name)
    if img is None or lab is None:
        missing = img_name if img is None else lab_name
        raise DatasetUnavailableError(
            _missing_message(name, root, f"{missing}[.gz] (searched {dirs})", download)
        )
    images = read_idx(img, _fix=_refetch_fix(name, img))
    labels = read_idx(lab, _fix=_refetch_fix(name, lab))
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DatasetFileError(
            img,
            f"is not an {name} image file (expected uint8 images (n, 28, 28), got"
            f" {images.dtype} {images.shape})",
            _refetch_fix(name, img),
        )
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise DatasetFileError(
            lab,
            f"is not an {name} label file (expected integer labels (n,), got"
            f" {labels.dtype} {labels.shape})",
            _refetch_fix(name, lab),
        )
    labels = labels.astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise DatasetFileError(
            lab,
            f"holds {labels.shape[0]} labels but {img.name} holds {images.shape[0]} images"
            " (one of them is truncated or from another split)",
            _refetch_fix(name, lab.parent),
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DatasetFileError(
            lab,
            f"has labels outside 0..9 (values {labels.min()}..{labels.max()})",
            _refetch_fix(name, lab),
        )
    x = (images.astype(np.float32) / 255.0)[:, None]
    return Dataset(name, split, x, labels)
