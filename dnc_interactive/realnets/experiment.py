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

The experiment's parts live in modules with one job each, and every name is re-exported
here: :mod:`.config` (:class:`RealNetConfig`, :data:`RULES`, :data:`PRESETS`,
:func:`preset`), :mod:`.prepare` (:func:`prepare_data`), :mod:`.train` (the optimiser, the
schedule, the epoch loop, :func:`train_head_on_features`), :mod:`.evaluate` (the streaming
measurement, :class:`Evaluation`) and :mod:`.recovery` (:class:`RecoveryResult`); this module
is the coordinator, :class:`RealNetExperiment`.
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from dnc_interactive import metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM, torch_dtype
from dnc_interactive.realnets.backbones import DUFMHead, build_backbone
from dnc_interactive.realnets.config import (
    OPTIMIZERS,
    PRESETS,
    SCHEDULES,
    RealNetConfig,
    _check_int,
    preset,
    resolve_device,
)
from dnc_interactive.realnets.config import RULES as RULES  # importable from here, as before
from dnc_interactive.realnets.evaluate import Evaluation, measure
from dnc_interactive.realnets.evaluate import features as _features
from dnc_interactive.realnets.evaluate import input_metrics as _input_metrics
from dnc_interactive.realnets.evaluate import layer_summary as _layer_summary
from dnc_interactive.realnets.evaluate import test_accuracy as _test_accuracy
from dnc_interactive.realnets.prepare import PreparedData, prepare_data
from dnc_interactive.realnets.recovery import RecoveryResult, recovery_test
from dnc_interactive.realnets.train import (
    Row,
    _Optimizer,
    backbone_reg,
    lr_at,
    train_epoch,
    train_head_on_features,
)
from dnc_interactive.schema import REALNET_STATUSES, diverged_message
from dnc_interactive.training import RecordedHistory, relative_gap

#: The statuses of a run (:data:`dnc_interactive.schema.REALNET_STATUSES`).
STATUSES = REALNET_STATUSES

Callback = Callable[["RealNetExperiment", list[Row]], Any]


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
        dtype = torch_dtype(config.dtype)
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
                if not train_epoch(self):
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
        return _features(self.backbone, self.data.x, self.config.eval_batch_size)

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
        return _test_accuracy(self.backbone, self.head, self.data, self.config.eval_batch_size)

    @torch.no_grad()
    def input_metrics(self) -> dict[str, float]:
        """Collapse metrics of the raw (standardised, flattened) inputs: how collapsed the data
        is before the network. Keys: those of :data:`~dnc_interactive.metrics.FEATURE_METRICS`
        (nc1, nc1_trace, nc2_orth, ...), computed by the streaming accumulator."""
        return _input_metrics(self.data, self.K, self.config.eval_batch_size)

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
        return _layer_summary(self._latest_eval, self.K, self.config.depth, nc1_tol)

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
        return recovery_test(self, steps, free_steps, lr, seed)

    # ------------------------------------------------------------------ internals
    def _lr_at(self, step: int) -> float:
        return lr_at(self.config, step, self.total_steps)

    def _snapshot(self) -> dict[str, dict[str, Tensor]]:
        return {
            "backbone": copy.deepcopy(self.backbone.state_dict()),
            "head": copy.deepcopy(self.head.state_dict()),
        }

    def _restore(self, snap: dict[str, dict[str, Tensor]]) -> None:
        self.backbone.load_state_dict(snap["backbone"])
        self.head.load_state_dict(snap["head"])

    def _backbone_reg(self) -> Tensor:
        return backbone_reg(self.backbone, self.config.weight_decay)

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
        self.message = diverged_message(value, self.steps, self.lr)
        warnings.warn(self.message, RuntimeWarning, stacklevel=3)

    @torch.no_grad()
    def _evaluate(self) -> Evaluation:
        ev = measure(self.backbone, self.head, self.data, self._Y, self.config)
        if ev.rows:  # finite: the latest measurement (layer_summary reads it)
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
