"""Datasets of the real-network experiment (theory §4.2), offline first.

Two datasets need no network at all and are the defaults:

* ``"digits"``: scikit-learn's bundled 8x8 handwritten digits (1 797 images, 174-183 per
  class, values 0..16), shape (1, 8, 8). There is no official test split.
* ``"mnist1d"``: the procedurally generated MNIST-1D of Greydanus & Steinbach (package
  ``mnist1d``), built locally with its generator functions (never downloaded): 1-D signals of
  shape (1, 40); the default generator arguments give 4 000 training and 1 000 test samples.
  Generation takes a few seconds, so the arrays are cached in memory and, if possible, in
  the cache directory (see :func:`default_root`).

Three datasets are read from their raw files under a root directory, with our own readers
(no torchvision needed to *read* them):

* ``"mnist"`` and ``"fashion_mnist"``: the IDX files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``
  (optionally ``.gz``), shape (1, 28, 28).
* ``"cifar10"``: the python pickle batches ``cifar-10-batches-py/data_batch_1..5`` and
  ``test_batch`` (dicts with ``b"data"`` (n, 3072) uint8 and ``b"labels"``), shape (3, 32, 32).
  They are read by a restricted unpickler that admits only the numpy array reconstructors a
  batch needs (never ``pickle.load``): a crafted file is refused, it cannot run code.

Every raw file is checked as it is read: a file that is corrupt, truncated, unreadable or not
in its format raises :class:`DatasetFileError` (a ``ValueError``) naming the file, what is
wrong and the fix (the command line exits with status 2).

The readers look in ``root``, in torchvision's layout (``root/MNIST/raw``,
``root/FashionMNIST/raw``, ``root/cifar-10-batches-py``) and a few obvious variants. When the
files are missing and ``download=True``, torchvision (the optional extra ``vision``) fetches
them; otherwise :class:`DatasetUnavailableError` names the dataset, the places searched and
the fix.

Selection (:func:`select`): the chosen classes are relabelled 0..K-1 in the order given, the
first n_k samples of each class of a seeded permutation are kept, and the result is
class-ordered (n_0 samples of class 0, then class 1, ...), the column order of theory §1.2.
Inputs are scaled to [0, 1] and then standardised per channel with the mean and standard
deviation of the selected training samples (:func:`standardize`).
"""

from __future__ import annotations

import gzip
import math
import os
import pickle
import random
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Dataset names accepted by :func:`load_dataset`.
DATASETS: tuple[str, ...] = ("digits", "mnist1d", "mnist", "fashion_mnist", "cifar10")
#: Datasets available without any network access.
OFFLINE_DATASETS: tuple[str, ...] = ("digits", "mnist1d")
#: Number of classes of each dataset (all have labels 0..9).
NUM_CLASSES: dict[str, int] = dict.fromkeys(DATASETS, 10)
#: Per-sample input shape (channels first).
INPUT_SHAPES: dict[str, tuple[int, ...]] = {
    "digits": (1, 8, 8),
    "mnist1d": (1, 40),
    "mnist": (1, 28, 28),
    "fashion_mnist": (1, 28, 28),
    "cifar10": (3, 32, 32),
}

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DIRS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
}
_CIFAR_DIR = "cifar-10-batches-py"


class DatasetUnavailableError(FileNotFoundError):
    """A dataset's raw files are missing and could not be fetched; the message says the fix."""


class DatasetFileError(ValueError):
    """A dataset file is corrupt, truncated, unreadable or not in its format.

    The message names the file, what is wrong and the fix; ``path`` is the file.
    """

    def __init__(self, path: str | Path, problem: str, fix: str | None = None) -> None:
        self.path = Path(path)
        self.problem = problem
        self.fix = fix or (
            "delete it and fetch the dataset again (download=True; CLI: --download), or copy a"
            " fresh file into place"
        )
        super().__init__(f"{self.path}: {problem}. Fix: {self.fix}.")


def _refetch_fix(name: str, path: Path) -> str:
    return (
        f"delete {path} and fetch {name!r} again (download=True; CLI: --download), or download"
        f" the raw files manually from {_URLS[name]}"
    )


@dataclass(frozen=True)
class Dataset:
    """Inputs and labels of one split, as numpy arrays.

    Attributes:
        name: the dataset name.
        split: "train" or "test".
        x: float32 array (N, *input_shape), values in [0, 1] for image datasets (raw scale
            for MNIST-1D, which is standardised by its generator).
        y: int64 array (N,) of labels.
    """

    name: str
    split: str
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def class_counts(self) -> dict[int, int]:
        """Number of samples of every label present."""
        labels, counts = np.unique(self.y, return_counts=True)
        return {int(k): int(c) for k, c in zip(labels, counts, strict=True)}


def check_dataset_name(name: object) -> str:
    """Return ``name`` if it is a known dataset, else raise ValueError naming ``dataset``."""
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"dataset={name!r} is not valid: expected one of {DATASETS}")
    return name


def default_root() -> Path:
    """Where raw files and generated arrays live: ``$DNC_DATA`` or ``~/.cache/dnc_interactive``."""
    env = os.environ.get("DNC_DATA")
    return Path(env) if env else Path.home() / ".cache" / "dnc_interactive" / "data"


# ====================================================================== raw-format readers
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


# ---------------------------------------------------------------------- restricted unpickler
# A CIFAR-10 python batch is a pickled dict of bytes, ints, lists and uint8 numpy arrays. A
# plain pickle.load runs any callable a file names (os.system, exec, ...), so the batches are
# read by an unpickler that admits only the globals such a dict needs, and even those build
# inert stand-ins (_DTypeStub, _ArrayStub): no numpy code runs while the file is parsed, and
# the arrays are made afterwards from validated (dtype, shape, bytes).
_PLAIN_DTYPES = frozenset({"b1", "u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"})
_MAX_ELEMENTS = 1 << 31  # no array in a CIFAR-10 batch comes near this (10 000 x 3072)


class _UnsafePickle(Exception):
    """The pickle asked for something a CIFAR-10 batch never holds."""


class _NDArrayToken:
    """Stands for ``numpy.ndarray`` (only ever passed to _reconstruct)."""

    def __init__(self, *args, **kwargs):
        raise _UnsafePickle("numpy.ndarray called directly")


class _DTypeStub:
    """``numpy.dtype(spec, align, copy)`` plus its pickled state, kept as plain data."""

    def __init__(self, spec=None, align=False, copy=False):
        if isinstance(spec, bytes):
            spec = spec.decode("latin-1")
        if not isinstance(spec, str) or spec not in _PLAIN_DTYPES:
            raise _UnsafePickle(f"numpy dtype {spec!r} (only plain numeric dtypes are allowed)")
        self.spec = spec
        self.order = "|"

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) >= 2 and state[1] in ("|", "<", ">", "=")):
            raise _UnsafePickle(f"numpy dtype state {state!r:.80}")
        if any(s is not None for s in state[2:5]):  # subarray, names, fields
            raise _UnsafePickle("a structured numpy dtype")
        self.order = state[1]

    def dtype(self) -> np.dtype:
        dt = np.dtype(self.spec)
        return dt.newbyteorder(self.order) if self.order in "<>" else dt


def _build_array(data: object, dtype: object, shape: object, fortran: bool) -> np.ndarray:
    if not isinstance(dtype, _DTypeStub):
        raise _UnsafePickle("an array without a plain dtype")
    if not (
        isinstance(shape, tuple)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise _UnsafePickle(f"array shape {shape!r:.80}")
    if isinstance(data, pickle.PickleBuffer):
        data = bytes(data.raw())
    if not isinstance(data, (bytes, bytearray)):
        raise _UnsafePickle(f"array data of type {type(data).__name__} (expected raw bytes)")
    dt = dtype.dtype()
    count = math.prod(shape)
    if count > _MAX_ELEMENTS or count * dt.itemsize != len(data):
        raise _UnsafePickle(f"array of shape {shape} and dtype {dt} with {len(data)} bytes of data")
    flat = np.frombuffer(bytes(data), dtype=dt)
    return flat.reshape(shape, order="F" if fortran else "C").astype(dt.newbyteorder("="))


class _ArrayStub:
    """``numpy.core.multiarray._reconstruct(ndarray, shape, typecode)`` then its state."""

    array: np.ndarray | None = None

    def __setstate__(self, state):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _UnsafePickle(f"numpy array state {state!r:.80}")
        _, shape, dtype, fortran, data = state
        self.array = _build_array(data, dtype, shape, bool(fortran))


def _reconstruct(subtype=None, shape=None, typecode=None):
    if subtype is not _NDArrayToken:
        raise _UnsafePickle(f"_reconstruct of {subtype!r:.60}")
    return _ArrayStub()


def _frombuffer(buf=None, dtype=None, shape=None, order="C"):
    return _build_array(buf, dtype, shape, order == "F")


def _scalar(dtype=None, data=None):
    value = _build_array(data, dtype, (), False)
    return value.item()


def _latin1(text=None, encoding="latin1"):
    # protocol <= 2 pickles bytes as _codecs.encode(str, 'latin1')
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _UnsafePickle(f"_codecs.encode with {encoding!r:.20}")
    return text.encode("latin-1")


_SAFE_GLOBALS = {
    ("_codecs", "encode"): _latin1,
    ("numpy", "ndarray"): _NDArrayToken,
    ("numpy", "dtype"): _DTypeStub,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise _UnsafePickle(f"the global {module}.{name}") from None

    def persistent_load(self, pid):
        raise _UnsafePickle("a persistent id")


def _materialise(obj: object) -> object:
    """Replace the array stand-ins by numpy arrays (dicts, lists and tuples are walked)."""
    if isinstance(obj, _ArrayStub):
        if obj.array is None:
            raise _UnsafePickle("an array without data")
        return obj.array
    if isinstance(obj, (_DTypeStub, _NDArrayToken)):
        raise _UnsafePickle("a bare numpy dtype")
    if isinstance(obj, dict):
        return {k: _materialise(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _unpickle_cifar(fh) -> object:
    """Unpickle a CIFAR-10 python batch from a binary file object without running code.

    Only the globals a batch needs are admitted (numpy's array and dtype reconstructors and
    ``_codecs.encode`` for protocol-2 bytes), and they build plain data: plain numeric dtypes,
    no object arrays, no other callables. Raises ``_UnsafePickle`` for anything else and
    the usual pickle errors for a corrupt stream.
    """
    return _materialise(_CifarUnpickler(fh, encoding="bytes").load())


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


# ====================================================================== file discovery
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


def _digits_file() -> Path | None:
    """scikit-learn's bundled ``datasets/data/digits.csv.gz``, found without importing
    scikit-learn (whose import takes seconds)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


def _load_digits() -> Dataset:
    """The 1 797 8x8 digits bundled with scikit-learn (``load_digits``): read straight from
    the package's csv file (64 pixel values 0..16 and the label per row), or through
    ``sklearn.datasets.load_digits`` when the file is not where expected."""
    path = _digits_file()
    if path is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
                table = np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)
            if table.shape[0] == 0 or table.shape[1] != 65 or not np.isfinite(table).all():
                raise ValueError(f"{table.shape[1]} columns, expected 64 pixels and a label")
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise DatasetFileError(
                path,
                f"scikit-learn's bundled digits file is unreadable ({type(exc).__name__}:"
                f" {str(exc)[:120]})",
                "reinstall scikit-learn (`pip install --force-reinstall scikit-learn`)",
            ) from None
        pixels, labels = table[:, :-1], table[:, -1]
    else:
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ImportError(
                "dataset 'digits' is the one bundled with scikit-learn. Fix: `pip install "
                "scikit-learn` or `pip install dnc-interactive[realnets]`."
            ) from None
        bunch = load_digits()
        pixels, labels = bunch.data, bunch.target
    x = (pixels.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    return Dataset("digits", "train", x, labels.astype(np.int64))


_MNIST1D_CACHE: dict[tuple, dict[str, np.ndarray]] = {}  # (num_samples, seed, root) -> arrays


def _read_mnist1d_cache(file: Path) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None if the file is missing or broken in any way (it is then
    regenerated and rewritten). Read without pickle (``allow_pickle=False``)."""
    try:
        if not file.is_file():
            return None
        with np.load(file, allow_pickle=False) as z:
            arrays = {k: np.asarray(z[k]) for k in ("x", "y", "x_test", "y_test")}
    except Exception:  # truncated zip, bad member, permissions, pickled object arrays, ...
        return None
    ok = (
        arrays["x"].ndim == 2
        and arrays["x_test"].ndim == 2
        and arrays["x"].shape[1] == arrays["x_test"].shape[1]
        and arrays["y"].shape == (arrays["x"].shape[0],)
        and arrays["y_test"].shape == (arrays["x_test"].shape[0],)
        and all(arrays[k].dtype.kind == "f" for k in ("x", "x_test"))
        and all(arrays[k].dtype.kind in "iu" for k in ("y", "y_test"))
        and all(np.isfinite(arrays[k]).all() for k in ("x", "x_test"))
    )
    if not ok:
        return None
    return {
        "x": arrays["x"].astype(np.float32),
        "y": arrays["y"].astype(np.int64),
        "x_test": arrays["x_test"].astype(np.float32),
        "y_test": arrays["y_test"].astype(np.int64),
    }


def mnist1d_arrays(
    num_samples: int = 5000, seed: int = 42, root: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Generate MNIST-1D locally with the ``mnist1d`` package (never downloaded).

    Uses ``mnist1d.data.make_dataset`` with the package's default arguments except
    ``num_samples`` and ``seed`` (80 % train / 20 % test). The generator seeds numpy's and
    Python's global random state; both are restored afterwards. Results are cached in memory
    and as ``mnist1d_<num_samples>_<seed>.npz`` under ``root`` (default :func:`default_root`)
    when that directory is writable. Returns a dict with ``x``, ``y``, ``x_test``, ``y_test``.
    """
    if not isinstance(num_samples, int) or num_samples < 10:
        raise ValueError(f"num_samples={num_samples!r} is not valid: expected an int >= 10")
    base = Path(root) if root is not None else default_root()
    key = (num_samples, seed, str(base))
    if key in _MNIST1D_CACHE:
        return _MNIST1D_CACHE[key]
    file = base / f"mnist1d_{num_samples}_{seed}.npz"
    arrays = _read_mnist1d_cache(file)
    if arrays is not None:
        _MNIST1D_CACHE[key] = arrays
        return arrays
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError:
        raise ImportError(
            "dataset 'mnist1d' needs the package mnist1d (it is generated locally, not "
            "downloaded). Fix: `pip install mnist1d` or `pip install dnc-interactive[realnets]`."
        ) from None
    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = seed
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        data = make_dataset(args)
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)
    arrays = {
        "x": np.asarray(data["x"], dtype=np.float32),
        "y": np.asarray(data["y"], dtype=np.int64),
        "x_test": np.asarray(data["x_test"], dtype=np.float32),
        "y_test": np.asarray(data["y_test"], dtype=np.int64),
    }
    _MNIST1D_CACHE[key] = arrays
    try:
        base.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(f".{os.getpid()}.tmp.npz")
        # mypy matches **arrays against savez's allow_pickle: bool; the keys are array names
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, file)
    except OSError:
        pass  # caching on disk is optional
    return arrays


def load_dataset(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    download: bool = False,
    mnist1d_samples: int = 5000,
) -> Dataset:
    """Load one split of a dataset (see the module docstring for formats and locations).

    Args:
        name: one of :data:`DATASETS`.
        split: "train" or "test" ("digits" has only "train").
        root: directory of the raw files (default :func:`default_root`).
        download: fetch missing raw files with torchvision (network needed).
        mnist1d_samples: total number of MNIST-1D samples to generate (80 % train).

    Raises:
        ValueError: unknown dataset or split.
        DatasetFileError: (a ``ValueError``) a raw file that is corrupt, truncated,
            unreadable or not in its format; the message names the file and the fix.
        DatasetUnavailableError: raw files missing and not downloadable; the message names
            the dataset and the fix.
    """
    check_dataset_name(name)
    if split not in ("train", "test"):
        raise ValueError(f"split={split!r} is not valid: expected 'train' or 'test'")
    base = Path(root).expanduser() if root is not None else default_root()
    if name == "digits":
        if split == "test":
            raise ValueError("split='test' is not valid for dataset 'digits': it has no test split")
        return _load_digits()
    if name == "mnist1d":
        arrays = mnist1d_arrays(mnist1d_samples, root=root)
        suffix = "" if split == "train" else "_test"
        return Dataset(name, split, arrays["x" + suffix][:, None, :], arrays["y" + suffix])
    if name == "cifar10":
        return _load_cifar(base, split, download)
    return _load_idx(name, base, split, download)


# ====================================================================== selection
def check_classes(dataset: str, classes: object) -> tuple[int, ...] | None:
    """Validate a class subset of ``dataset`` (None = all classes); ValueError names ``classes``."""
    if classes is None:
        return None
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise ValueError(f"classes={classes!r} is not valid: expected a list of class labels")
    out = tuple(classes)
    total = NUM_CLASSES[check_dataset_name(dataset)]
    for c in out:
        if not isinstance(c, (int, np.integer)) or isinstance(c, bool) or not 0 <= c < total:
            raise ValueError(
                f"classes={out!r} is not valid: class {c!r} is not in dataset {dataset!r} "
                f"(labels 0..{total - 1})"
            )
    if len(out) < 2:
        raise ValueError(f"classes={out!r} is not valid: expected at least 2 classes")
    if len(set(out)) != len(out):
        raise ValueError(f"classes={out!r} is not valid: a class appears twice")
    return tuple(int(c) for c in out)


def select(
    data: Dataset,
    classes: tuple[int, ...] | None = None,
    samples_per_class: int | tuple[int, ...] | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Class subset, per-class counts, class order (theory §1.2 column order).

    Args:
        data: a loaded split.
        classes: dataset labels to keep, relabelled 0..K-1 in this order (None: all labels
            present, sorted).
        samples_per_class: n (all classes), one n_k per class, or None for every sample of
            every chosen class (possibly imbalanced).
        seed: seed of the permutation that picks the n_k samples of each class.

    Returns:
        (x, y, class_sizes): class-ordered inputs and labels 0..K-1 and the n_k.

    Raises:
        ValueError: naming ``classes`` or ``samples_per_class`` (e.g. more samples than the
            class has).
    """
    counts = data.class_counts()
    if classes is None:
        classes = tuple(sorted(counts))
    classes = check_classes(data.name, classes)
    assert classes is not None
    for c in classes:
        if c not in counts:
            raise ValueError(
                f"classes={classes!r} is not valid: class {c} has no samples in the "
                f"{data.split} split of {data.name!r}"
            )
    K = len(classes)
    if samples_per_class is None:
        sizes = tuple(counts[c] for c in classes)
    elif isinstance(samples_per_class, (int, np.integer)):
        sizes = (int(samples_per_class),) * K
    else:
        sizes = tuple(int(n) for n in samples_per_class)
        if len(sizes) != K:
            raise ValueError(
                f"samples_per_class={samples_per_class!r} is not valid: it has {len(sizes)} "
                f"entries but {K} classes were chosen"
            )
    for c, n in zip(classes, sizes, strict=True):
        if n < 1:
            raise ValueError(f"samples_per_class={n} is not valid: expected an int >= 1")
        if n > counts[c]:
            raise ValueError(
                f"samples_per_class={n} is not valid for class {c}: the {data.split} split of "
                f"{data.name!r} has only {counts[c]} samples of that class"
            )
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(data))
    xs, ys = [], []
    for k, (c, n) in enumerate(zip(classes, sizes, strict=True)):
        idx = perm[data.y[perm] == c][:n]
        idx.sort()
        xs.append(data.x[idx])
        ys.append(np.full(n, k, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys), sizes


def standardize(
    x: np.ndarray, stats: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Per-channel standardisation (axis 1 is the channel axis).

    With ``stats=None`` the per-channel mean and standard deviation are computed from ``x``
    (a standard deviation below 1e-8 is replaced by 1). Returns the standardised float32 array
    and the (mean, std) used, so a test split can reuse the training statistics.
    """
    axes = (0, *range(2, x.ndim))
    if stats is None:
        mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
        std = x.std(axis=axes, keepdims=True, dtype=np.float64)
        std = np.where(std < 1e-8, 1.0, std)
        stats = (mean.astype(np.float32), std.astype(np.float32))
    mean, std = stats
    return ((x - mean) / std).astype(np.float32), stats


__all__ = [
    "DATASETS",
    "INPUT_SHAPES",
    "NUM_CLASSES",
    "OFFLINE_DATASETS",
    "Dataset",
    "DatasetFileError",
    "DatasetUnavailableError",
    "check_classes",
    "check_dataset_name",
    "default_root",
    "load_dataset",
    "mnist1d_arrays",
    "read_cifar_batch",
    "read_idx",
    "select",
    "standardize",
    "write_cifar_batch",
    "write_idx",
]
