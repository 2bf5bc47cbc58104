"""Training of a real-network experiment: the optimiser (Adam or heavy-ball SGD with coupled
L2 weight decay), the learning-rate schedule, one epoch of the mini-batch loop, and
:func:`train_head_on_features` (a fresh DUFM head on frozen features, the recovery test's
first phase). The objective is the one of :mod:`.experiment` (theory §1.2, §4.2).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, cast

import pandas as pd
import torch
from torch import Tensor

from dnc_interactive import metrics
from dnc_interactive.config import DUFMConfig
from dnc_interactive.history import Row
from dnc_interactive.model import DUFM
from dnc_interactive.realnets.config import RealNetConfig
from dnc_interactive.recipes import Recipe
from dnc_interactive.schema import HISTORY_COLUMNS
from dnc_interactive.training import Trainer
from dnc_interactive.updates import adam_update, heavy_ball_update

if TYPE_CHECKING:
    from dnc_interactive.realnets.experiment import RealNetExperiment

__all__ = ["Row", "backbone_reg", "lr_at", "train_epoch", "train_head_on_features"]

#: The head trainer's momentum boost threshold (relative gap to L*) and its adaptive momentum
#: restart (measured on the recovery test: the same figures on or off; off, as the loop it
#: replaced).
HEAD_BOOST_GAP = 0.1
HEAD_MOMENTUM_RESTART = False


class _Optimizer:
    """Adam or heavy-ball SGD ("gd") with coupled L2 weight decay.

    The update rules of :mod:`dnc_interactive.optim` (:func:`~dnc_interactive.optim.adam_update`,
    :func:`~dnc_interactive.optim.heavy_ball_update`: those of ``torch.optim.Adam`` /
    ``torch.optim.SGD``, no dampening, no Nesterov) with a per-parameter ``weight_decay`` added
    to the gradient. Not ``torch.optim``: its first use imports ``torch._dynamo``, which takes
    several seconds, more than a whole small run.
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
        if self.kind in ("gd", "sgd"):
            heavy_ball_update(self.params, self.m, grads, lr, self.momentum)
            return
        adam_update(
            self.params, self.m, self.v, grads, lr, self.momentum, self.beta2, self.eps, self.t
        )


def lr_at(config: RealNetConfig, step: int, total_steps: int) -> float:
    """The learning rate of optimiser step ``step``: linear warm-up over ``config.warmup``
    steps, then constant or a cosine decay to ``lr * lr_min_factor`` at ``total_steps``."""
    cfg = config
    lr = cfg.lr
    if cfg.warmup and step < cfg.warmup:
        return lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        return lr
    span = max(total_steps - cfg.warmup, 1)
    t = min(max(step - cfg.warmup, 0) / span, 1.0)
    low = lr * cfg.lr_min_factor
    return low + 0.5 * (lr - low) * (1.0 + math.cos(math.pi * t))


def backbone_reg(backbone: torch.nn.Module, weight_decay: float) -> Tensor:
    """(weight_decay/2) ||theta||^2 over every backbone parameter (not part of the head loss)."""
    wd = weight_decay
    # a Tensor: every backbone has parameters (sum's start value 0 is never returned alone)
    total = cast(Tensor, sum(p.pow(2).sum() for p in backbone.parameters()))
    return 0.5 * wd * total


def train_epoch(exp: RealNetExperiment) -> bool:
    """One epoch of ``exp`` (shuffled mini-batches, or one full batch); False when the run
    diverged. Records (and checks for divergence) every ``exp.record_every`` steps."""
    cfg = exp.config
    N, B = exp.N, exp.batch_size
    if B >= N:
        batches: list[Tensor | None] = [None]
    else:
        perm = torch.randperm(N, generator=exp._gen).to(exp.device)
        batches = list(perm.split(B))
    exp.backbone.train()
    for idx in batches:
        x = exp.data.x if idx is None else exp.data.x[idx]
        Y = exp._Y if idx is None else exp._Y[idx]
        b = x.shape[0]
        exp.lr = exp._lr_at(exp.steps)
        h1 = exp.backbone(x)
        z = exp.head(h1)
        fit = (z - Y).pow(2).sum() / (2 * b)
        reg_H = (0.5 * cfg.lambda_H * N / b) * h1.pow(2).sum()
        # + sum_l (lambda_W_l/2)||W_l||^2 + (weight_decay/2)||theta||^2 via weight_decay
        objective = fit + reg_H
        if not torch.isfinite(objective):
            exp._diverge(float(objective.detach()))
            return False
        exp.optimizer.zero_grad()
        objective.backward()
        exp.optimizer.step(exp.lr)
        exp.steps += 1
        if exp.steps % exp.record_every == 0:
            if not exp._checkpoint():
                return False
    return True


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
    to machine precision in ~2 000 steps where a boost to 0.99 stalled near 1e-7). This is a
    :class:`~dnc_interactive.training.Trainer` with ``train_H1=False`` and a one-start
    :class:`~dnc_interactive.recipes.Recipe` (no restarts): the core's hand-written backward
    pass, its update rule and its guard (a diverging loss restores the last good weights and
    halves the learning rate, up to ``max_retries`` times, then it stops).

    Returns:
        (model, history): the DUFM (H1 = the features, W = the trained head) and a tidy
        history in the trainer's schema (layer 0 / kind "model" loss terms every
        ``record_every`` steps; the per-layer metrics of the final head at the last step).
    """
    cfg = config.replace(dtype="float64", device=str(H1.device))
    model = DUFM(cfg)
    if tuple(H1.shape) != tuple(model.H1.shape):
        raise ValueError(f"H1 has shape {tuple(H1.shape)}, expected {tuple(model.H1.shape)}")
    model.H1.requires_grad_(False)
    with torch.no_grad():
        model.H1.copy_(H1)
    recipe = Recipe(
        optimizer="gd",
        lr=lr,
        momentum=momentum,
        momentum_boost=momentum_boost,
        boost_gap=HEAD_BOOST_GAP,
        momentum_restart=HEAD_MOMENTUM_RESTART,
        max_retries=max_retries,
        restarts=0,
    )
    trainer = Trainer(model, recipe, record_every=record_every, metrics_every=0, train_H1=False)
    with warnings.catch_warnings():  # a diverged head ends the phase; the result says so
        warnings.simplefilter("ignore", RuntimeWarning)
        trainer.run(steps)
    final = [
        (trainer.steps, layer, kind, name, float(v))
        for layer, kind, name, v in metrics.layer_metric_rows(model)
    ]
    history = pd.concat(
        [trainer.history, pd.DataFrame(final, columns=list(HISTORY_COLUMNS))], ignore_index=True
    )
    return model, history
