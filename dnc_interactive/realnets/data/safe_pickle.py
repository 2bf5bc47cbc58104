"""A restricted unpickler for the CIFAR-10 python batches: it cannot run code.

Only the numpy array reconstructors a batch needs are admitted (:data:`_SAFE_GLOBALS`), as
inert stubs that build plain arrays of the listed dtypes and at most :data:`_MAX_ELEMENTS`
entries (:func:`_materialise`); any other global, a persistent id or an object dtype raises
:class:`_UnsafePickle`. ``pickle.load`` is never called.
"""

from __future__ import annotations

import math
import pickle

import numpy as np

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
