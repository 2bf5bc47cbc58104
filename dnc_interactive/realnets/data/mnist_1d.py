"""The offline ``"mnist1d"`` dataset: MNIST-1D generated locally, and its caches.

:func:`mnist1d_arrays` runs the ``mnist1d`` package's generator (never a download) with the
global random states restored afterwards, and caches the arrays in memory
(:data:`_MNIST1D_CACHE`) and as an ``.npz`` file under the root, read back without pickle
and regenerated when broken (:func:`_read_mnist1d_cache`).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np

from dnc_interactive.realnets.data.catalog import default_root

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
