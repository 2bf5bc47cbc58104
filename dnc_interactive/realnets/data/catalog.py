"""The datasets of the real-network experiment (theory §4.2): names, shapes, the
:class:`Dataset` container, the two errors a loader raises and the default root directory.

:data:`DATASETS` (the offline ones first), their class counts and input shapes, where the raw
files live and where they come from; :class:`DatasetUnavailableError` (files missing) and
:class:`DatasetFileError` (a file corrupt, truncated or not in its format, with the fix).
"""

from __future__ import annotations

import os
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
