"""Loading one split of a dataset, and selecting and standardising its samples.

:func:`load_dataset` dispatches to the reader of each dataset; :func:`select` relabels the
chosen classes 0..K-1, keeps the first n_k samples of each class of a seeded permutation and
orders them by class (the column order of theory §1.2); :func:`standardize` scales per
channel with the statistics of the selected training samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dnc_interactive.realnets.data.catalog import (
    NUM_CLASSES,
    Dataset,
    check_dataset_name,
    default_root,
)
from dnc_interactive.realnets.data.cifar import _load_cifar
from dnc_interactive.realnets.data.digits import _load_digits
from dnc_interactive.realnets.data.idx import _load_idx
from dnc_interactive.realnets.data.mnist_1d import mnist1d_arrays


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
