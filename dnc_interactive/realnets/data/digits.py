"""The offline ``"digits"`` dataset: scikit-learn's bundled 8x8 handwritten digits.

Read straight from the package's csv file (found without importing scikit-learn, whose
import takes seconds), or through ``sklearn.datasets.load_digits`` when the file is not
where expected; a broken file raises
:class:`~dnc_interactive.realnets.data.catalog.DatasetFileError`.
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path

import numpy as np

from dnc_interactive.realnets.data.catalog import Dataset, DatasetFileError


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
