"""The real-network experiment: a backbone with a DUFM head (theory §1.2, §4.2).

A backbone f_theta maps the N training inputs to features ``H1 = f_theta(X)`` in
R^{d_1 x N} (columns class-ordered, as in theory §1.2); an L-layer bias-free ReLU MLP head
W_1..W_L maps them to outputs Z. The network is trained on

    objective = head loss + (weight_decay/2) ||theta||^2
    head loss = 1/(2N) ||Z - Y||_F^2 + (lambda_H/2) ||H1||_F^2 + sum_l (lambda_{W_l}/2) ||W_l||_F^2

The head loss is *exactly* the L-DUFM objective of theory §1.2 evaluated at H1 = f_theta(X), so
it is directly comparable with the DUFM's optimal loss L* for the same K, n_k, L, lambda_H and
lambda_W (:func:`dnc_interactive.theory.optimal_loss`, theory §2.2 / §6). For K = 2 L* is the
global minimum over *all* H1 (theory §2.1), so the head loss can never go below it; for K > 2
and L >= 3 a low-rank solution may (theory §5). The backbone's weight decay is *not* part of the
head loss. All L2 terms are coupled (added to the loss), so the optimiser minimises the stated
objective (no decoupled AdamW decay).

Mini-batches (theory §4.2 note). lambda_H multiplies the *sum* over all N samples of
||h_i||^2, not a mean, while the fit is a mean. A batch b of B_b samples therefore uses

    batch loss = 1/(2 B_b) ||Z_b - Y_b||_F^2 + (lambda_H N / (2 B_b)) ||H1_b||_F^2
                 + sum_l (lambda_{W_l}/2) ||W_l||_F^2 + (weight_decay/2) ||theta||^2

and the average of the batch losses over one epoch, weighted by B_b / N, is exactly the
full objective; each batch loss is an unbiased estimate of it. (A per-batch penalty
(lambda/2) * mean_i ||h_i||^2 would correspond to lambda_H = lambda / N here: this is why the
follow-up's CIFAR run, with n = 5 000 per class, uses lambda_H1 = 5e-6 against weight decay
5e-3.) With ``batch_size=None`` (the default) every step is full-batch.

Measurement (theory §3). Every ``record_every`` optimiser steps the training set is passed
through the network in evaluation mode (batch normalisation uses its running statistics),
in batches of ``eval_batch_size``; per layer the features are fed to
:class:`~dnc_interactive.metrics.CollapseAccumulator` (float64, streaming), and the loss terms
are summed exactly. The rows follow the trainer's tidy history schema
(:data:`~dnc_interactive.training.HISTORY_COLUMNS`: ``step, layer, kind, metric, value``):

* layer 0, kind ``"model"``: ``loss`` (the head loss above), ``fit``, ``reg`` (= reg_H +
  sum of the reg_W), ``reg_H``, ``optimal_loss`` (L*), ``relative_gap`` ((loss - L*)/L*),
  ``lr``, plus ``accuracy`` (training accuracy, argmax of Z) and ``backbone_reg``
  ((weight_decay/2) ||theta||^2, not in ``loss``);
* layers l = 1..L, kinds ``"pre"`` (H~_l) and ``"post"`` (H_l): the metrics of
  :data:`~dnc_interactive.metrics.FEATURE_METRICS`. **Layer 1 is the backbone's output**
  H1 (pre = post, no ReLU on H1), so its rows are the backbone-output metrics;
* layers l = 1..L, kind ``"weight"``: ``nc3`` (DNC3 subspace error of W_l for l < L, NC3
  self-duality of W_L), from the streamed class means;
* layer L+1, kind ``"output"``: ``nc4`` and ``q_0..q_{K-1}`` (output class-mean scales).

so every :mod:`dnc_interactive.charts` builder works on :attr:`RealNetExperiment.history`
unchanged. :meth:`RealNetExperiment.to_dufm` loads H1 = f_theta(X) and the head weights into a
:class:`~dnc_interactive.model.DUFM`, which gives the snapshot frames (Gram matrices,
projections, singular values) of :mod:`dnc_interactive.metrics` for the real network.

Recovery test (:meth:`RealNetExperiment.recovery`): does the trained backbone produce the
DUFM's optimal unconstrained features? (1) *frozen*: H1 is fixed to the trained backbone's
features and a freshly initialised head (a different seed) is trained alone, full-batch, on
the DUFM objective; if the features are optimal DUFM features the head reaches L* and the
same collapse geometry (per-layer NC1, orthogonal frame, and the normalised Gram matrices
of the network's own head). (2) *free*: a DUFM starts from (H1 = the features, W = the
re-trained head) and is trained with H1 free by :class:`~dnc_interactive.training.Trainer`;
the relative distance H1 moves, ||H1_end - H1_start||_F / ||H1_start||_F, measures how far
the backbone's features were from a DUFM optimum.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from dnc_interactive import metrics, theory
from dnc_interactive.config import RULES as DUFM_RULES
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.realnets import data as data_mod
from dnc_interactive.realnets.backbones import BACKBONES, DUFMHead, build_backbone
from dnc_interactive.training import HISTORY_COLUMNS, RecordedHistory, Trainer, relative_gap
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

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "constant")
DTYPES = {"float32": torch.float32, "float64": torch.float64}
STATUSES = ("ready", "running", "finished", "diverged", "stopped")

Row = tuple[int, int, str, str, float]
Callback = Callable[["RealNetExperiment", list[Row]], Any]


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
        lambda_H: lambda_{H_1} >= 0 on (lambda_H/2) ||H1||_F^2 (full-data sum, see module doc).
        lambda_W: lambda_{W_l} >= 0, one value or one per head weight matrix.
        weight_decay: >= 0, (weight_decay/2) ||theta||^2 on every backbone parameter.
        optimizer: "adam" (default) or "sgd" (heavy-ball with ``momentum``).
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
        "optimizer": "sgd",
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


# ====================================================================== data preparation
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


class _Optimizer:
    """Adam or heavy-ball SGD with coupled L2 weight decay, on ``torch._foreach`` ops.

    The same updates as ``torch.optim.Adam`` / ``torch.optim.SGD`` (no dampening, no Nesterov)
    with a per-parameter ``weight_decay`` added to the gradient. Written out because the first
    use of ``torch.optim`` imports ``torch._dynamo``, which takes several seconds: more than a
    whole small run.
    """

    def __init__(
        self, params: list[Tensor], decay: list[float], kind: str, momentum: float, beta2: float
    ) -> None:
        self.params = params
        self.decay = decay
        self.kind = kind
        self.momentum = momentum
        self.beta2 = beta2
        self.eps = 1e-8
        self.t = 0
        self.m = [torch.zeros_like(p) for p in params]
        self.v = [torch.zeros_like(p) for p in params] if kind == "adam" else []

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self, lr: float) -> None:
        grads = []
        for p, wd in zip(self.params, self.decay, strict=True):
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            grads.append(g.add(p, alpha=wd) if wd else g)
        self.t += 1
        if self.kind == "sgd":
            torch._foreach_mul_(self.m, self.momentum)
            torch._foreach_add_(self.m, grads)
            torch._foreach_add_(self.params, self.m, alpha=-lr)
            return
        b1, b2 = self.momentum, self.beta2
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, value=1 - b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, math.sqrt(1 - b2**self.t))
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, value=-lr / (1 - b1**self.t))


# ====================================================================== the experiment
@dataclass(frozen=True)
class Evaluation:
    """One measurement pass over the training set (see the module docstring)."""

    fit: float
    reg_H: float
    reg_W: tuple[float, ...]
    backbone_reg: float
    accuracy: float
    rows: list[tuple[int, str, str, float]]

    @property
    def reg(self) -> float:
        return self.reg_H + sum(self.reg_W)

    @property
    def loss(self) -> float:
        """The head loss (theory §1.2 objective at H1 = backbone features)."""
        return self.fit + self.reg


class RealNetExperiment(RecordedHistory):
    """Train a backbone + DUFM head and measure it against the DUFM (theory §4.2).

    Args:
        config: a :class:`RealNetConfig` (or None for the defaults: digits 0 vs 1, MLP
            backbone, 4-layer head).
        data: already prepared data (e.g. shared by several runs); loaded from ``config``
            when None.
        callbacks: functions ``f(experiment, new_rows)`` called after each record.

    Typical use::

        exp = RealNetExperiment(RealNetConfig(dataset="digits", classes=(0, 1))).run()
        exp.summary()            # loss, L*, relative gap, accuracy, seconds, ...
        exp.history              # tidy DataFrame (charts.loss_chart / metric_chart)
        exp.layer_report()       # per-layer NC1, NC2, NC3, rank at the end
        exp.recovery()           # the recovery test (frozen and free H1)
    """

    def __init__(
        self,
        config: RealNetConfig | None = None,
        data: PreparedData | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        config = config or RealNetConfig()
        if not isinstance(config, RealNetConfig):
            raise ValueError(f"config={config!r} is not valid: expected a RealNetConfig")
        self.config = config
        self.device = torch.device(resolve_device(config.device))
        self.data = data if data is not None else prepare_data(config, self.device)
        self.K = config.K
        self.N = int(self.data.y.shape[0])
        dtype = DTYPES[config.dtype]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            backbone = build_backbone(
                config.backbone,
                self.data.input_shape,
                config.feature_dim,
                hidden=config.backbone_width,
                depth=config.backbone_depth,
            )
        gen = torch.Generator().manual_seed(config.seed + 1_000_003)
        head = DUFMHead(config.head_widths, self.K, generator=gen)
        self.backbone = backbone.to(device=self.device, dtype=dtype)
        self.head = head.to(device=self.device, dtype=dtype)
        self.dufm_config = DUFMConfig(
            num_classes=self.K,
            samples_per_class=self.data.class_sizes,
            depth=config.depth,
            width=config.head_widths,
            lambda_H=config.lambda_H,
            lambda_W=config.lambda_Ws,
            dtype="float64",
            seed=config.seed,
        )
        self.optimal_loss: float = theory.optimal_loss(self.dufm_config)
        self.optimality: str = theory.dnc_optimality(self.dufm_config)
        self.callbacks: list[Callback] = list(callbacks)
        self.batch_size = config.batch_size if config.batch_size else self.N
        self.steps_per_epoch = math.ceil(self.N / self.batch_size)
        self.total_steps = config.epochs * self.steps_per_epoch
        self.record_every = config.record_every or max(1, self.total_steps // 100)
        # The L2 terms enter through the optimiser's (coupled) weight decay: the gradient of
        # (lambda/2)||p||^2 is lambda * p, exactly what weight_decay=lambda adds to p's gradient.
        params = [*self.backbone.parameters(), *self.head.W]
        decay = [config.weight_decay] * len(list(self.backbone.parameters()))
        decay += list(config.lambda_Ws)
        self.optimizer = _Optimizer(params, decay, config.optimizer, config.momentum, config.beta2)
        self._gen = torch.Generator().manual_seed(config.seed + 7)
        Y = torch.nn.functional.one_hot(self.data.y, self.K)
        self._Y = Y.to(dtype)
        self.steps = 0
        self.epoch = 0
        self.lr = self._lr_at(0)
        self.status = "ready"
        self.message = ""
        self.seconds = 0.0
        self._init_history()
        self._recorded_step = -1
        self._good = self._snapshot()
        self._record()

    # ------------------------------------------------------------------ public API
    def run(self, epochs: int | None = None) -> RealNetExperiment:
        """Train for ``epochs`` more epochs (default: the rest of ``config.epochs``).

        The learning-rate schedule spans ``config.epochs``; epochs beyond it use the final
        learning rate. A non-finite loss stops the run (status "diverged", a message and a
        RuntimeWarning), restores the parameters of the last finite record and keeps the
        history.
        """
        if epochs is None:
            epochs = max(self.config.epochs - self.epoch, 0)
        _check_int("epochs", epochs, 0)
        if self.diverged:
            return self
        self.status = "running"
        t0 = time.perf_counter()
        try:
            for _ in range(epochs):
                if not self._train_epoch():
                    break
                self.epoch += 1
        finally:
            self.seconds += time.perf_counter() - t0
        if not self.diverged:
            if self._recorded_step != self.steps:
                self._checkpoint()
            self.status = "finished" if self.epoch >= self.config.epochs else "stopped"
            if not self.message:
                self.message = f"trained {self.epoch} epochs ({self.steps} steps)"
        return self

    def objective(self, indices: Tensor | None = None) -> Tensor:
        """The training objective on a batch (all N samples when ``indices`` is None).

        ``1/(2B) ||Z_b - Y_b||^2 + (lambda_H N/(2B)) ||H1_b||^2 + sum_l (lambda_{W_l}/2)
        ||W_l||^2 + (weight_decay/2) ||theta||^2`` with B = the batch size (module docstring),
        in the backbone's current mode, with gradients. Training minimises exactly this (the
        L2 terms enter through the optimiser's coupled ``weight_decay``, which adds the same
        gradient); for ``indices=None`` it is the head loss plus the backbone term.
        """
        cfg = self.config
        x = self.data.x if indices is None else self.data.x[indices]
        Y = self._Y if indices is None else self._Y[indices]
        b = x.shape[0]
        h1 = self.backbone(x)
        z = self.head(h1)
        fit = (z - Y).pow(2).sum() / (2 * b)
        reg_H = (0.5 * cfg.lambda_H * self.N / b) * h1.pow(2).sum()
        return fit + reg_H + sum(self.head.reg_terms(cfg.lambda_Ws)) + self._backbone_reg()

    @torch.no_grad()
    def evaluate(self) -> Evaluation:
        """Measure the network on the whole training set (evaluation mode, streaming)."""
        return self._evaluate()

    @torch.no_grad()
    def features(self) -> Tensor:
        """H1 = f_theta(X): the backbone's features of the N training samples, a (d_1, N)
        float64 tensor with class-ordered columns (labels: :attr:`labels`)."""
        was = self.backbone.training
        self.backbone.eval()
        try:
            parts = [
                self.backbone(self.data.x[i : i + self.config.eval_batch_size]).to(torch.float64)
                for i in range(0, self.N, self.config.eval_batch_size)
            ]
        finally:
            self.backbone.train(was)
        return torch.cat(parts).T.contiguous()

    @property
    def labels(self) -> Tensor:
        """Labels 0..K-1 of the training samples (class-ordered)."""
        return self.data.y

    def head_weights(self) -> list[Tensor]:
        """Detached float64 copies of W_1..W_L."""
        return [W.detach().to(torch.float64).clone() for W in self.head.W]

    def to_dufm(self) -> DUFM:
        """A float64 :class:`DUFM` of :attr:`dufm_config` holding H1 = :meth:`features` and
        the head's weights: its ``loss()`` is the head loss, and the metrics module's frames
        (gram_frame, projection_frame, singular_value_frame, collapse_report) describe the
        real network's head."""
        model = DUFM(self.dufm_config.replace(device=str(self.device)))
        return model.load_matrices(self.features().to(model.H1.device), self.head_weights())

    def layer_report(self, kind: str = "post") -> pd.DataFrame:
        """Per-layer DNC metrics of the trained head (:func:`metrics.collapse_report`)."""
        return metrics.collapse_report(self.to_dufm(), kind=kind)

    @torch.no_grad()
    def test_accuracy(self) -> float:
        """Accuracy on the test split of the chosen classes (NaN when there is none)."""
        x_test, y_test = self.data.x_test, self.data.y_test  # both None or both set
        if x_test is None or y_test is None:
            return math.nan
        self.backbone.eval()
        try:
            correct = 0
            bs = self.config.eval_batch_size
            for i in range(0, x_test.shape[0], bs):
                z = self.head(self.backbone(x_test[i : i + bs]))
                correct += int((z.argmax(1) == y_test[i : i + bs]).sum())
        finally:
            self.backbone.train()
        return correct / int(x_test.shape[0])

    @torch.no_grad()
    def input_metrics(self) -> dict[str, float]:
        """Collapse metrics of the raw (standardised, flattened) inputs: how collapsed the data
        is before the network. Keys: those of :data:`~dnc_interactive.metrics.FEATURE_METRICS`
        (nc1, nc1_trace, nc2_orth, ...), computed by the streaming accumulator."""
        X = self.data.x.reshape(self.N, -1)
        acc = metrics.CollapseAccumulator(self.K, int(X.shape[1]))
        bs = self.config.eval_batch_size
        for i in range(0, self.N, bs):
            acc.update(X[i : i + bs].T, self.data.y[i : i + bs])
        out = acc.compute()
        return {m: float(out[m]) for m in metrics.FEATURE_METRICS}

    def summary(self) -> dict[str, Any]:
        """Final numbers: head loss and its terms, L*, the gap, accuracy, time, status."""
        last = self._last
        return {
            "head_loss": last.get("loss", math.nan),
            "fit": last.get("fit", math.nan),
            "reg": last.get("reg", math.nan),
            "reg_H": last.get("reg_H", math.nan),
            "backbone_reg": last.get("backbone_reg", math.nan),
            "optimal_loss": self.optimal_loss,
            "relative_gap": last.get("relative_gap", math.nan),
            "dnc_optimality": self.optimality,
            "train_accuracy": last.get("accuracy", math.nan),
            "test_accuracy": self.test_accuracy(),
            "num_classes": self.K,
            "class_sizes": list(self.data.class_sizes),
            "num_samples": self.N,
            "epochs": self.epoch,
            "steps": self.steps,
            "seconds": self.seconds,
            "status": self.status,
            "message": self.message,
            "device": str(self.device),
        }

    def layer_summary(self, nc1_tol: float = 1e-2) -> list[dict[str, Any]]:
        """Per head layer l = 1..L, from the latest finite measurement: the post-activation
        nc1, nc1_trace, nc2_orth, nc2_etf, nc3, rank and mean_norm, the pre-activation nc1 and
        rank, ``collapsed`` (NC1' = tr(Sigma_W)/tr(Sigma_B) < ``nc1_tol`` before and after the
        ReLU: the robust NC1 of theory §3, since the pseudo-inverse NC1 blows up in low-rank
        solutions) and ``solution``, the rank type of the class means:

        * ``"zero"``: all class means are equal (e.g. the trivial solution H = 0);
        * ``"lower rank (r)"``: rank r below the DNC rank. DNC has rank K in H_l (l >= 2) and in
          H~_l (l >= 3); H1 and H~_2 may have rank K - 1 at a DNC optimum (theory §2.3: the H1
          Gram matrix a^2 (I + Gamma) may be singular, e.g. antipodal means for K = 2);
        * ``"DNC"``: the DNC rank (read it together with ``collapsed``).
        """
        ev = self._latest_eval
        table: dict[tuple[int, str], dict[str, float]] = {}
        for layer, kind, name, value in ev.rows:
            table.setdefault((layer, kind), {})[name] = value
        K = self.K
        out = []
        for l in range(1, self.config.depth + 1):
            post, pre = table[(l, "post")], table[(l, "pre")]
            r_post, r_pre = int(post["rank"]), int(pre["rank"])
            need_post = K - 1 if l == 1 else K
            need_pre = K - 1 if l <= 2 else K
            nc1s = (post["nc1_trace"], pre["nc1_trace"])
            if any(math.isnan(v) for v in nc1s) or post["mean_norm"] == 0:
                solution = "zero"
            elif r_post < need_post or r_pre < need_pre:
                solution = f"lower rank ({r_pre if r_pre < need_pre else r_post})"
            else:
                solution = "DNC"
            out.append(
                {
                    "layer": l,
                    "nc1": post["nc1"],
                    "nc1_trace": post["nc1_trace"],
                    "nc2_orth": post["nc2_orth"],
                    "nc2_etf": post["nc2_etf"],
                    "nc3": table[(l, "weight")]["nc3"],
                    "rank": r_post,
                    "pre_nc1": pre["nc1"],
                    "pre_rank": r_pre,
                    "mean_norm": post["mean_norm"],
                    "collapsed": bool(max(nc1s) < nc1_tol),
                    "solution": solution,
                }
            )
        return out

    def recovery(
        self,
        steps: int = 1500,
        free_steps: int = 1000,
        lr: float = 1.0,
        seed: int | None = None,
    ) -> RecoveryResult:
        """The recovery test (module docstring): frozen-H1 head training, then free H1.

        Args:
            steps: steps of :func:`train_head_on_features` (full-batch heavy-ball on the head
                weights only, float64) of a freshly initialised head on the frozen features.
            free_steps: steps of :class:`~dnc_interactive.training.Trainer` (its default
                heavy-ball recipe) on the DUFM with H1 free, started from (features, re-trained
                head); 0 skips this phase.
            lr: initial learning rate of both phases.
            seed: seed of the fresh head (default: ``config.seed + 1``).
        """
        _check_int("steps", steps, 1)
        _check_int("free_steps", free_steps, 0)
        _check_float("lr", lr, 0.0, strict=True)
        seed = self.config.seed + 1 if seed is None else seed
        t0 = time.perf_counter()
        network = self.to_dufm()
        with torch.no_grad():
            net_loss = float(network.loss().total)
        H1 = network.H1.detach().clone()
        cfg = self.dufm_config.replace(seed=seed, device=str(H1.device))
        fresh, frozen_history = train_head_on_features(cfg, H1, steps=steps, lr=lr)
        with torch.no_grad():
            frozen_loss = float(fresh.loss().total)
        gram_net = metrics.gram_frame(network)
        gram_fresh = metrics.gram_frame(fresh)
        diff = (gram_net["value"] - gram_fresh["value"]).abs()
        gram_gap = (
            gram_net.assign(diff=diff.to_numpy())
            .groupby(["layer", "kind"], as_index=False)["diff"]
            .max()
            .rename(columns={"diff": "max_abs_diff"})
        )
        free_loss = math.nan
        h1_shift = math.nan
        free_history = None
        if free_steps:
            free = DUFM(cfg)
            free.load_matrices(H1, [W.detach().clone() for W in fresh.W])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                trainer = Trainer(
                    free, lr=lr, record_every=max(1, free_steps // 100), metrics_every=0
                )
                trainer.run(free_steps)
            free_loss = trainer.loss
            h1_shift = float(
                torch.linalg.matrix_norm(free.H1.detach() - H1) / torch.linalg.matrix_norm(H1)
            )
            free_history = trainer.history
        return RecoveryResult(
            optimal_loss=self.optimal_loss,
            network_loss=net_loss,
            network_gap=relative_gap(net_loss, self.optimal_loss),
            frozen_loss=frozen_loss,
            frozen_gap=relative_gap(frozen_loss, self.optimal_loss),
            frozen_report=metrics.collapse_report(fresh, kind="both"),
            network_report=metrics.collapse_report(network, kind="both"),
            gram_difference=gram_gap,
            frozen_history=frozen_history,
            free_loss=free_loss,
            free_gap=relative_gap(free_loss, self.optimal_loss),
            h1_shift=h1_shift,
            free_history=free_history,
            seconds=time.perf_counter() - t0,
        )

    # ------------------------------------------------------------------ internals
    def _lr_at(self, step: int) -> float:
        cfg = self.config
        lr = cfg.lr
        if cfg.warmup and step < cfg.warmup:
            return lr * (step + 1) / cfg.warmup
        if cfg.schedule == "constant":
            return lr
        span = max(self.total_steps - cfg.warmup, 1)
        t = min(max(step - cfg.warmup, 0) / span, 1.0)
        low = lr * cfg.lr_min_factor
        return low + 0.5 * (lr - low) * (1.0 + math.cos(math.pi * t))

    def _snapshot(self) -> dict[str, dict[str, Tensor]]:
        return {
            "backbone": copy.deepcopy(self.backbone.state_dict()),
            "head": copy.deepcopy(self.head.state_dict()),
        }

    def _restore(self, snap: dict[str, dict[str, Tensor]]) -> None:
        self.backbone.load_state_dict(snap["backbone"])
        self.head.load_state_dict(snap["head"])

    def _backbone_reg(self) -> Tensor:
        wd = self.config.weight_decay
        # a Tensor: every backbone has parameters (sum's start value 0 is never returned alone)
        total = cast(Tensor, sum(p.pow(2).sum() for p in self.backbone.parameters()))
        return 0.5 * wd * total

    def _train_epoch(self) -> bool:
        """One epoch; False when the run diverged."""
        cfg = self.config
        N, B = self.N, self.batch_size
        if B >= N:
            batches: list[Tensor | None] = [None]
        else:
            perm = torch.randperm(N, generator=self._gen).to(self.device)
            batches = list(perm.split(B))
        self.backbone.train()
        for idx in batches:
            x = self.data.x if idx is None else self.data.x[idx]
            Y = self._Y if idx is None else self._Y[idx]
            b = x.shape[0]
            self.lr = self._lr_at(self.steps)
            h1 = self.backbone(x)
            z = self.head(h1)
            fit = (z - Y).pow(2).sum() / (2 * b)
            reg_H = (0.5 * cfg.lambda_H * N / b) * h1.pow(2).sum()
            # + sum_l (lambda_W_l/2)||W_l||^2 + (weight_decay/2)||theta||^2 via weight_decay
            objective = fit + reg_H
            if not torch.isfinite(objective):
                self._diverge(float(objective.detach()))
                return False
            self.optimizer.zero_grad()
            objective.backward()
            self.optimizer.step(self.lr)
            self.steps += 1
            if self.steps % self.record_every == 0:
                if not self._checkpoint():
                    return False
        return True

    def _checkpoint(self) -> bool:
        ev = self._record()
        if not math.isfinite(ev.loss):
            self._diverge(ev.loss)
            return False
        self._good = self._snapshot()
        return True

    def _diverge(self, value: float) -> None:
        self._restore(self._good)
        self.status = "diverged"
        self.message = (
            f"diverged: the loss became {value} at step {self.steps} (lr={self.lr:g}); training "
            "stopped, parameters restored to the last finite record and the history kept. "
            "Lower the learning rate."
        )
        warnings.warn(self.message, RuntimeWarning, stacklevel=3)

    @torch.no_grad()
    def _evaluate(self) -> Evaluation:
        cfg = self.config
        K, L = self.K, cfg.depth
        was = self.backbone.training
        self.backbone.eval()
        f64 = torch.float64
        widths = (*cfg.head_widths, K)
        # one accumulator per distinct feature set: H1 (layer 1), pre/post of 2..L, output
        accs: dict[tuple[int, str], metrics.CollapseAccumulator] = {
            (1, "post"): metrics.CollapseAccumulator(K, widths[0])
        }
        for l in range(2, L + 1):
            accs[(l, "pre")] = metrics.CollapseAccumulator(K, widths[l - 1])
            accs[(l, "post")] = metrics.CollapseAccumulator(K, widths[l - 1])
        accs[(L + 1, "output")] = metrics.CollapseAccumulator(K, K)
        fit = 0.0
        h_sq = 0.0
        correct = 0
        last_post: list[Tensor] = []
        try:
            for i in range(0, self.N, cfg.eval_batch_size):
                x = self.data.x[i : i + cfg.eval_batch_size]
                y = self.data.y[i : i + cfg.eval_batch_size]
                pre, post, z = self.head.forward_all(self.backbone(x))
                z64 = z.to(f64)
                fit += float((z64 - self._Y[i : i + cfg.eval_batch_size].to(f64)).pow(2).sum())
                h_sq += float(post[0].to(f64).pow(2).sum())
                correct += int((z.argmax(1) == y).sum())
                accs[(1, "post")].update(post[0].T, y)
                for l in range(2, L + 1):
                    accs[(l, "pre")].update(pre[l - 1].T, y)
                    accs[(l, "post")].update(post[l - 1].T, y)
                accs[(L + 1, "output")].update(z.T, y)
                last_post.append(post[L - 1].to(f64))
        finally:
            self.backbone.train(was)
        reg_W = tuple(float(r) for r in self.head.reg_terms(cfg.lambda_Ws))
        common: dict[str, Any] = dict(
            fit=fit / (2 * self.N),
            reg_H=0.5 * cfg.lambda_H * h_sq,
            reg_W=reg_W,
            backbone_reg=float(self._backbone_reg()),
            accuracy=correct / self.N,
        )
        if not math.isfinite(fit + h_sq + sum(reg_W)):
            return Evaluation(**common, rows=[])  # diverged: no metrics of non-finite features
        stats = {key: acc.compute() for key, acc in accs.items()}
        stats[(1, "pre")] = stats[(1, "post")]
        rows: list[tuple[int, str, str, float]] = []
        weights = self.head_weights()
        for l in range(1, L + 1):
            for kind in ("pre", "post"):
                s = stats[(l, kind)]
                rows += [(l, kind, m, float(s[m])) for m in metrics.FEATURE_METRICS]
            M = stats[(l, "post")]["means"]
            W = weights[l - 1].to(M.device)
            if l < L:
                nc3 = metrics.dnc3_subspace(W, M)
            else:
                nc3 = metrics.nc3_self_duality(W, M)
            rows.append((l, "weight", "nc3", nc3))
        H_L = torch.cat(last_post).T
        rows.append(
            (
                L + 1,
                "output",
                "nc4",
                metrics.nc4_ncc_mismatch(
                    H_L, self.data.y, weights[-1].to(H_L.device), num_classes=K
                ),
            )
        )
        q = torch.diagonal(stats[(L + 1, "output")]["means"]).tolist()
        rows += [(L + 1, "output", f"q_{k}", float(v)) for k, v in enumerate(q)]
        ev = Evaluation(**common, rows=rows)
        self._latest_eval = ev
        return ev

    def _record(self) -> Evaluation:
        ev = self._evaluate()
        if not math.isfinite(ev.loss):
            return ev  # the caller stops the run; the history keeps only finite records
        gap = relative_gap(ev.loss, self.optimal_loss)
        self._last = {
            "loss": ev.loss,
            "fit": ev.fit,
            "reg": ev.reg,
            "reg_H": ev.reg_H,
            "backbone_reg": ev.backbone_reg,
            "relative_gap": gap,
            "accuracy": ev.accuracy,
        }
        s = self.steps
        rows: list[Row] = [
            (s, 0, "model", "loss", ev.loss),
            (s, 0, "model", "fit", ev.fit),
            (s, 0, "model", "reg", ev.reg),
            (s, 0, "model", "reg_H", ev.reg_H),
            (s, 0, "model", "optimal_loss", self.optimal_loss),
            (s, 0, "model", "relative_gap", gap),
            (s, 0, "model", "lr", self.lr),
            (s, 0, "model", "accuracy", ev.accuracy),
            (s, 0, "model", "backbone_reg", ev.backbone_reg),
        ]
        rows += [(s, layer, kind, name, value) for layer, kind, name, value in ev.rows]
        self._rows.extend(rows)
        self._recorded_step = s
        for cb in self.callbacks:
            cb(self, rows)
        return ev


@dataclass(frozen=True)
class RecoveryResult:
    """Outcome of :meth:`RealNetExperiment.recovery` (see the module docstring).

    Attributes:
        optimal_loss: L* of the DUFM with the same K, n_k, L, lambda_H, lambda_W.
        network_loss, network_gap: the trained network's head loss and its relative gap.
        frozen_loss, frozen_gap: loss of a fresh head trained on the frozen features.
        frozen_report, network_report: :func:`metrics.collapse_report` (kind "both") of the
            re-trained head and of the network's own head.
        gram_difference: per (layer, kind), the largest absolute difference between the
            normalised class-mean Gram matrices of the network and of the re-trained head.
        frozen_history: tidy history of the frozen-H1 training (layer 0 / kind "model" rows
            loss, fit, reg, reg_H, optimal_loss, relative_gap, lr; the per-layer metrics of
            the re-trained head at the last step).
        free_loss, free_gap: loss after training the DUFM with H1 free from the features.
        h1_shift: ||H1_end - H1_start||_F / ||H1_start||_F in that free phase.
        free_history: that phase's tidy trainer history (None if skipped).
        seconds: wall time of the test.
    """

    optimal_loss: float
    network_loss: float
    network_gap: float
    frozen_loss: float
    frozen_gap: float
    frozen_report: pd.DataFrame
    network_report: pd.DataFrame
    gram_difference: pd.DataFrame
    frozen_history: pd.DataFrame
    free_loss: float
    free_gap: float
    h1_shift: float
    free_history: pd.DataFrame | None
    seconds: float

    def summary(self) -> dict[str, Any]:
        """The scalar numbers as a dict (max NC1 over layers, max Gram difference)."""
        nc1 = self.frozen_report["nc1"]
        return {
            "optimal_loss": self.optimal_loss,
            "network_loss": self.network_loss,
            "network_gap": self.network_gap,
            "frozen_loss": self.frozen_loss,
            "frozen_gap": self.frozen_gap,
            "frozen_max_nc1": float(np.nanmax(nc1.to_numpy())),
            "gram_max_abs_diff": float(self.gram_difference["max_abs_diff"].max()),
            "free_loss": self.free_loss,
            "free_gap": self.free_gap,
            "h1_shift": self.h1_shift,
            "seconds": self.seconds,
        }


def train_head_on_features(
    config: DUFMConfig,
    H1: Tensor,
    steps: int = 1500,
    lr: float = 1.0,
    momentum: float = 0.9,
    momentum_boost: float | None = None,
    record_every: int = 10,
    max_retries: int = 8,
) -> tuple[DUFM, pd.DataFrame]:
    """Train a fresh DUFM head on *fixed* features H1 (the recovery test's frozen phase).

    Minimises the theory §1.2 objective over W_1..W_L only, with H1 held at the given (d_1, N)
    class-ordered features (labels from ``config``). The head is initialised as
    ``DUFM(config)`` (seeded by ``config.seed``). Full-batch heavy-ball gradient descent in
    float64: learning rate ``lr``, heavy-ball ``momentum`` (raised to ``momentum_boost``, if
    given, once the relative gap to L* is below 0.1; with H1 fixed a constant 0.9 converged
    to machine precision in ~2 000 steps where a boost to 0.99 stalled near 1e-7); gradients
    from the hand-written backward pass
    :func:`~dnc_interactive.model.loss_and_grad`. A non-finite loss restores the last good
    weights and halves the learning rate (up to ``max_retries`` times, then it stops).

    Returns:
        (model, history): the DUFM (H1 = the features, W = the trained head) and a tidy
        history in the trainer's schema (layer 0 / kind "model" loss terms every
        ``record_every`` steps; the per-layer metrics of the final head at the last step).
    """
    from dnc_interactive.model import loss_and_grad

    cfg = config.replace(dtype="float64", device=str(H1.device))
    model = DUFM(cfg)
    if tuple(H1.shape) != tuple(model.H1.shape):
        raise ValueError(f"H1 has shape {tuple(H1.shape)}, expected {tuple(model.H1.shape)}")
    model.H1.requires_grad_(False)
    with torch.no_grad():
        model.H1.copy_(H1)
    optimal = theory.optimal_loss(cfg)
    params = [W.data for W in model.W]
    buf = [torch.zeros_like(p) for p in params]
    good = [p.clone() for p in params]
    mom, retries = momentum, 0
    rows: list[Row] = []

    def record(step: int) -> float:
        with torch.no_grad():
            terms = model.loss()
        loss = float(terms.total)
        gap = relative_gap(loss, optimal)
        rows.extend(
            [
                (step, 0, "model", "loss", loss),
                (step, 0, "model", "fit", float(terms.fit)),
                (step, 0, "model", "reg", float(terms.reg)),
                (step, 0, "model", "reg_H", float(terms.reg_H)),
                (step, 0, "model", "optimal_loss", optimal),
                (step, 0, "model", "relative_gap", gap),
                (step, 0, "model", "lr", lr),
            ]
        )
        return loss

    record(0)
    step = 0
    with torch.no_grad():
        while step < steps:
            _, _, grads = loss_and_grad(
                model.H1,
                params,
                model.Y,
                model.labels,
                cfg.lambda_H,
                cfg.lambda_Ws,
                cfg.activation,
                cfg.loss,
            )
            torch._foreach_mul_(buf, mom)
            torch._foreach_add_(buf, grads)
            torch._foreach_add_(params, buf, alpha=-lr)
            step += 1
            if step % record_every == 0 or step == steps:
                loss = record(step)
                if not math.isfinite(loss):
                    del rows[-7:]
                    for p, g in zip(params, good, strict=True):
                        p.copy_(g)
                    if retries >= max_retries:
                        break
                    retries += 1
                    lr /= 2
                    mom = momentum
                    for b in buf:
                        b.zero_()
                    continue
                for p, g in zip(params, good, strict=True):
                    g.copy_(p)
                if momentum_boost and mom < momentum_boost and relative_gap(loss, optimal) < 0.1:
                    mom = momentum_boost
    final = rows[-7][0]
    rows += [
        (final, layer, kind, name, float(v))
        for layer, kind, name, v in metrics.layer_metric_rows(model)
    ]
    return model, pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


def run_experiment(config: RealNetConfig | None = None, **changes: Any) -> RealNetExperiment:
    """Convenience: ``RealNetExperiment(config.replace(**changes)).run()``."""
    config = (config or RealNetConfig()).replace(**changes) if changes else config
    return RealNetExperiment(config).run()


__all__ = [
    "OPTIMIZERS",
    "PRESETS",
    "SCHEDULES",
    "Evaluation",
    "PreparedData",
    "RealNetConfig",
    "RealNetExperiment",
    "RecoveryResult",
    "prepare_data",
    "preset",
    "resolve_device",
    "run_experiment",
    "train_head_on_features",
]
