"""Data preparation of a real-network experiment: load the dataset, select the classes and
n_k (seeded), standardise, and put class-ordered tensors on the device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dnc_interactive.realnets import data as data_mod
from dnc_interactive.realnets.config import DTYPES, RealNetConfig

__all__ = ["PreparedData", "prepare_data"]


@dataclass(frozen=True)
class PreparedData:
    """Class-ordered tensors of one experiment (inputs standardised, on the device)."""

    x: Tensor
    y: Tensor
    class_sizes: tuple[int, ...]
    x_test: Tensor | None
    y_test: Tensor | None
    input_shape: tuple[int, ...]


def prepare_data(config: RealNetConfig, device: str | torch.device = "cpu") -> PreparedData:
    """Load, select (classes, n_k, seed) and standardise the data of ``config``.

    The test split (none for digits) keeps every sample of the chosen classes.

    Raises:
        ValueError: samples_per_class larger than a class (naming it), and the data errors
            of :func:`~dnc_interactive.realnets.data.select`.
        DatasetUnavailableError: raw files missing (see :mod:`~dnc_interactive.realnets.data`).
    """
    train = data_mod.load_dataset(
        config.dataset,
        "train",
        root=config.root,
        download=config.download,
        mnist1d_samples=config.mnist1d_samples,
    )
    classes = config.classes if config.classes is not None else tuple(range(config.K))
    spc = config.samples_per_class
    if spc is None:
        counts = train.class_counts()
        spc = min(counts.get(c, 0) for c in classes)
    x, y, sizes = data_mod.select(train, classes, spc, seed=config.seed)
    stats = None
    if config.standardize:
        x, stats = data_mod.standardize(x)
    x_test = y_test = None
    if config.dataset != "digits":
        test = data_mod.load_dataset(
            config.dataset,
            "test",
            root=config.root,
            download=False,
            mnist1d_samples=config.mnist1d_samples,
        )
        present = test.class_counts()
        if all(c in present for c in classes):
            xt, yt, _ = data_mod.select(test, classes, None, seed=config.seed)
            if stats is not None:
                xt, _ = data_mod.standardize(xt, stats)
            x_test, y_test = xt, yt
    dtype = DTYPES[config.dtype]

    def to(t: np.ndarray, floating: bool) -> Tensor:
        out = torch.from_numpy(np.ascontiguousarray(t))
        return out.to(device=device, dtype=dtype if floating else torch.long)

    return PreparedData(
        x=to(x, True),
        y=to(y, False),
        class_sizes=tuple(int(n) for n in sizes),
        x_test=None if x_test is None else to(x_test, True),
        y_test=None if y_test is None else to(y_test, False),
        input_shape=tuple(x.shape[1:]),
    )
