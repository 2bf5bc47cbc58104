"""The configuration of a real-network experiment (theory §4.2): :class:`RealNetConfig`,
its validation table :data:`RULES` (the head's fields reuse
:data:`dnc_interactive.config.RULES`), the named :data:`PRESETS` and :func:`preset`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from dnc_interactive.config import RULES as DUFM_RULES
from dnc_interactive.realnets import data as data_mod
from dnc_interactive.schema import canonical_optimizer
from dnc_interactive.validation import (
    LEARNING_RATE,
    MOMENTUM,
    SEED,
    Bool,
    Int,
    OneOf,
    ParameterError,
    Real,
    Rule,
    Text,
    check_dufm_budget,
    check_fields,
    check_known,
)

__all__ = [
    "DTYPES",
    "OPTIMIZERS",
    "PRESETS",
    "RULES",
    "SCHEDULES",
    "RealNetConfig",
    "preset",
    "resolve_device",
]

#: The optimisers, spelt as everywhere (:data:`dnc_interactive.schema.OPTIMIZERS`): "adam" and
#: "gd" (heavy-ball SGD with ``momentum``); the old spelling "sgd" is accepted and becomes "gd".
OPTIMIZERS = ("adam", "gd")
SCHEDULES = ("cosine", "constant")

#: The backbones (:mod:`dnc_interactive.realnets.backbones` builds them); named here so that
#: the configuration and the command line's help need no torch.
BACKBONES: tuple[str, ...] = ("mlp", "cnn", "resnet20")


if TYPE_CHECKING:
    from dnc_interactive.model import DTYPES


def __getattr__(name: str) -> Any:
    """``DTYPES`` (dtype name -> torch dtype) imports torch only when asked for."""
    if name == "DTYPES":
        from dnc_interactive.model import DTYPES

        return DTYPES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def _check_int(name: str, v: Any, low: int, allow_none: bool = False) -> None:
    if v is None and allow_none:
        return
    if not _is_int(v) or v < low:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name}={v!r} is not valid: expected an int >= {low}{extra}")


def _check_float(name: str, v: Any, low: float = 0.0, strict: bool = False) -> None:
    ok = _is_real(v) and math.isfinite(v) and (v > low if strict else v >= low)
    if not ok:
        op = ">" if strict else ">="
        raise ValueError(f"{name}={v!r} is not valid: expected a finite float {op} {low:g}")


#: Training-set size of each dataset (mnist1d: 80 % of ``mnist1d_samples``), for the budget.
_TRAIN_SIZES: dict[str, int | None] = {
    "digits": 1797,
    "mnist1d": None,
    "mnist": 60_000,
    "fashion_mnist": 60_000,
    "cifar10": 50_000,
}

_HEAD = DUFM_RULES  # the DUFM head's constraints, reused (not repeated)

#: The constraints of every RealNetConfig field, checked in this order (one table, see
#: :mod:`dnc_interactive.validation`); the head's fields reuse DUFMConfig's rules.
RULES: dict[str, Rule] = {
    "dataset": OneOf(data_mod.DATASETS),
    "classes": Int(ge=0, optional=True, listable=True, collapse=False, unit="class"),
    "samples_per_class": _HEAD["samples_per_class"].but(optional=True, length="K"),
    "backbone": OneOf(BACKBONES),
    "backbone_width": Int(ge=1, cap=65_536),
    "backbone_depth": Int(ge=0, cap=100),
    "feature_dim": _HEAD["width"].but(listable=False, length=None),
    "depth": _HEAD["depth"],
    "width": _HEAD["width"].but(listable=False, length=None),
    "lambda_H": _HEAD["lambda_H"],
    "lambda_W": _HEAD["lambda_W"].but(unit="head weight matrix"),
    "weight_decay": _HEAD["lambda_H"],
    "optimizer": OneOf(OPTIMIZERS),
    "lr": LEARNING_RATE,
    "momentum": MOMENTUM,
    "beta2": MOMENTUM,
    "schedule": OneOf(SCHEDULES),
    "lr_min_factor": Real(ge=0, le=1),
    "warmup": Int(ge=0, cap=10**9),
    "epochs": Int(ge=1, cap=10**7),
    "batch_size": Int(ge=1, cap=10**7, optional=True),
    "record_every": Int(ge=1, cap=10**9, optional=True),
    "eval_batch_size": Int(ge=1, cap=10**7),
    "standardize": Bool(),
    "root": Text(optional=True),
    "download": Bool(),
    "mnist1d_samples": Int(ge=10, cap=200_000),
    "seed": SEED,
    "device": _HEAD["device"].but(options=("auto",)),
    "dtype": _HEAD["dtype"],
}
_DATA_RULES = {k: RULES[k] for k in ("dataset", "classes")}
_OTHER_RULES = {k: r for k, r in RULES.items() if k not in _DATA_RULES}


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is available, else "cpu"; other strings unchanged."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@dataclass(frozen=True)
class RealNetConfig:
    """One real-network experiment (theory §4.2). Validated when built (ValueError naming the
    field, the value and the allowed range); lists become tuples.

    Attributes:
        dataset: one of :data:`~dnc_interactive.realnets.data.DATASETS` ("digits" and
            "mnist1d" work offline).
        classes: dataset labels to use, relabelled 0..K-1 in this order (K >= 2); None for all
            ten. Default (0, 1): binary.
        samples_per_class: n for every class, one n_k per class (imbalance), or None for the
            largest balanced subset (n = the smallest class count among ``classes``).
        backbone: "mlp", "cnn" or "resnet20".
        backbone_width: hidden width of the MLP, channels of the CNN's first block (ignored by
            ResNet-20).
        backbone_depth: number of hidden layers of the MLP backbone (>= 0).
        feature_dim: d_1, the backbone's output dimension (>= K).
        depth: L >= 1, the number of head weight matrices.
        width: d_2..d_L, the head's hidden width (>= K).
        lambda_H: lambda_{H_1} >= 0 on (lambda_H/2) ||H1||_F^2 (full-data sum: :mod:`.experiment`).
        lambda_W: lambda_{W_l} >= 0, one value or one per head weight matrix.
        weight_decay: >= 0, (weight_decay/2) ||theta||^2 on every backbone parameter.
        optimizer: "adam" (default) or "gd" (heavy-ball SGD with ``momentum``; "sgd" is
            accepted as an alias and stored as "gd").
        lr: learning rate (> 0).
        momentum: SGD momentum, or Adam's beta1, in [0, 1).
        beta2: Adam's second-moment decay in [0, 1). The default 0.95 (not torch's 0.999)
            matters: late in training the gradients of the weight components that see no data
            are only lambda * W, tiny against the early gradients that a long memory of v keeps,
            so with 0.999 those components decayed too slowly (digits, 0 vs 1: relative gap
            ~35 % after 600 epochs against 0.1 % with 0.95).
        schedule: "cosine" (decay to ``lr * lr_min_factor`` over the run) or "constant".
        lr_min_factor: final learning rate of the cosine schedule, relative to ``lr``.
        warmup: number of optimiser steps of linear warm-up (>= 0).
        epochs: number of passes over the training set (>= 1).
        batch_size: mini-batch size, or None for full-batch training.
        record_every: record metrics every this many optimiser steps; None: about 100 records.
        eval_batch_size: batch size of the measurement pass.
        standardize: standardise inputs per channel with the training-set statistics.
        root: directory of raw dataset files (None: ``$DNC_DATA`` or ``~/.cache``).
        download: fetch missing raw files with torchvision.
        mnist1d_samples: total number of MNIST-1D samples generated (80 % train).
        seed: seeds the data subset, the initialisation and the batch order.
        device: "auto" (a GPU when present), "cpu", "cuda", ...
        dtype: "float32" or "float64".
    """

    dataset: str = "digits"
    classes: tuple[int, ...] | None = (0, 1)
    samples_per_class: int | tuple[int, ...] | None = None
    backbone: str = "mlp"
    backbone_width: int = 64
    backbone_depth: int = 2
    feature_dim: int = 64
    depth: int = 4
    width: int = 64
    lambda_H: float = 1e-3
    lambda_W: float | tuple[float, ...] = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adam"
    lr: float = 1e-2
    momentum: float = 0.9
    beta2: float = 0.95
    schedule: str = "cosine"
    lr_min_factor: float = 0.0
    warmup: int = 0
    epochs: int = 1000
    batch_size: int | None = None
    record_every: int | None = None
    eval_batch_size: int = 4096
    standardize: bool = True
    root: str | None = None
    download: bool = False
    mnist1d_samples: int = 5000
    seed: int = 0
    device: str = "auto"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if isinstance(self.root, os.PathLike):
            set_(self, "root", os.fspath(self.root))
        set_(self, "optimizer", canonical_optimizer(self.optimizer))  # "sgd" -> "gd"
        values = {name: getattr(self, name) for name in RULES}
        # the data first: the number of classes K sizes samples_per_class
        first = check_fields("RealNetConfig", _DATA_RULES, values)
        classes = first["classes"]
        if classes is not None:  # labels of this dataset, at least 2, none twice
            try:
                classes = data_mod.check_classes(first["dataset"], classes)
            except ValueError as exc:
                raise ParameterError(
                    "classes",
                    classes,
                    "a list of distinct class labels of the dataset",
                    message=str(exc),
                    owner="RealNetConfig",
                ) from None
        set_(self, "dataset", first["dataset"])
        set_(self, "classes", classes)
        rest = check_fields("RealNetConfig", _OTHER_RULES, values, context={"K": self.K})
        for name, value in rest.items():
            set_(self, name, value)
        if self.backbone == "resnet20" and len(data_mod.INPUT_SHAPES[self.dataset]) != 3:
            raise ParameterError(
                "backbone",
                self.backbone,
                "'mlp' or 'cnn' for this dataset",
                message=f"backbone='resnet20' is not valid for dataset={self.dataset!r}: it"
                " needs image inputs; use backbone='mlp' or 'cnn'",
                owner="RealNetConfig",
            )
        K = self.K
        if self.feature_dim < K:
            raise ParameterError(
                "feature_dim",
                self.feature_dim,
                f"an int >= K = {K}",
                message=f"feature_dim={self.feature_dim} is not valid: the DUFM head needs"
                f" d_1 >= K = {K}",
                owner="RealNetConfig",
            )
        if self.depth >= 2 and self.width < K:
            raise ParameterError(
                "width",
                self.width,
                f"an int >= K = {K}",
                message=f"width={self.width} is not valid: the head's hidden width must be"
                f" >= K = {K} (the DNC optimum of theory §2.3 needs d_l >= K)",
                owner="RealNetConfig",
            )
        # the DUFM head's budget (its features H1 are d_1 x N), before anything is loaded
        n = self.samples_per_class
        if n is None:
            size = _TRAIN_SIZES.get(self.dataset) or int(0.8 * self.mnist1d_samples)
            n = max(1, -(-size // data_mod.NUM_CLASSES[self.dataset]))
        check_dufm_budget(
            K,
            n,
            self.depth,
            self.head_widths,
            self.dtype,
            owner="RealNetConfig",
            names={"width": "feature_dim" if self.feature_dim >= self.width else "width"},
            device=self.device,
        )

    @property
    def K(self) -> int:
        """Number of classes K."""
        return len(self.classes) if self.classes is not None else data_mod.NUM_CLASSES[self.dataset]

    @property
    def L(self) -> int:
        return self.depth

    @property
    def head_widths(self) -> tuple[int, ...]:
        """(d_1, ..., d_L): d_1 = feature_dim, d_2..d_L = width."""
        return (self.feature_dim, *([self.width] * (self.depth - 1)))

    @property
    def lambda_Ws(self) -> tuple[float, ...]:
        lw = self.lambda_W
        return lw if isinstance(lw, tuple) else (lw,) * self.depth

    def replace(self, **changes: Any) -> RealNetConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RealNetConfig:
        if not isinstance(values, dict):
            raise ParameterError("values", values, "a dict of RealNetConfig fields")
        check_known("RealNetConfig", values, [f.name for f in dataclasses.fields(cls)])
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)


#: Named starting points (:func:`preset`). "digits": the defaults (digits 0 vs 1, MLP
#: backbone, 4-layer head, full-batch Adam, cosine decay, 1 000 epochs). "mnist1d": all ten
#: MNIST-1D classes (~394 training samples each), a wider MLP, mini-batches of 256, lr 1e-3,
#: 300 epochs. "cifar10": ResNet-20 with a 4-layer head of width 64 on CIFAR-10 with the
#: follow-up's regularisation (theory §4.2: lambda_H = 5e-6, lambda_W = weight decay = 5e-3,
#: lr 0.05), SGD with momentum, mini-batches of 128, 200 warm-up steps (without them lr 0.05
#: diverged in the first steps from the He initialisation); meant for a GPU.
PRESETS: dict[str, dict[str, Any]] = {
    "digits": {},
    "mnist1d": {
        "dataset": "mnist1d",
        "classes": None,
        "backbone_width": 256,
        "batch_size": 256,
        "lr": 1e-3,
        "epochs": 300,
    },
    "cifar10": {
        "dataset": "cifar10",
        "classes": None,
        "backbone": "resnet20",
        "feature_dim": 64,
        "width": 64,
        "depth": 4,
        "lambda_H": 5e-6,
        "lambda_W": 5e-3,
        "weight_decay": 5e-3,
        "optimizer": "gd",
        "lr": 0.05,
        "momentum": 0.9,
        "batch_size": 128,
        "epochs": 200,
        "warmup": 200,
        "eval_batch_size": 2048,
    },
}


def preset(name: str, **changes: Any) -> RealNetConfig:
    """The config of a named preset (:data:`PRESETS`) with some fields changed."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is not valid: expected one of {tuple(PRESETS)}")
    return RealNetConfig(**{**PRESETS[name], **changes})
