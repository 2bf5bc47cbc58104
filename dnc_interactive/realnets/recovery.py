"""The recovery test of a real-network experiment (theory §4.2): does the trained backbone
produce the DUFM's optimal unconstrained features? A fresh head trained on the frozen features
(:func:`~dnc_interactive.realnets.train.train_head_on_features`), then H1 freed; see
:mod:`.experiment` and :meth:`~dnc_interactive.realnets.experiment.RealNetExperiment.recovery`.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from dnc_interactive import metrics
from dnc_interactive.model import DUFM
from dnc_interactive.realnets.config import _check_float, _check_int
from dnc_interactive.realnets.train import train_head_on_features
from dnc_interactive.training import Trainer, relative_gap

if TYPE_CHECKING:
    from dnc_interactive.realnets.experiment import RealNetExperiment

__all__ = ["RecoveryResult", "recovery_test"]


@dataclass(frozen=True)
class RecoveryResult:
    """Outcome of :meth:`RealNetExperiment.recovery` (see :mod:`.experiment`).

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


def recovery_test(
    exp: RealNetExperiment,
    steps: int = 1500,
    free_steps: int = 1000,
    lr: float = 1.0,
    seed: int | None = None,
) -> RecoveryResult:
    """The recovery test of the trained experiment ``exp``; the arguments are those of
    :meth:`~dnc_interactive.realnets.experiment.RealNetExperiment.recovery`."""
    _check_int("steps", steps, 1)
    _check_int("free_steps", free_steps, 0)
    _check_float("lr", lr, 0.0, strict=True)
    seed = exp.config.seed + 1 if seed is None else seed
    t0 = time.perf_counter()
    network = exp.to_dufm()
    with torch.no_grad():
        net_loss = float(network.loss().total)
    H1 = network.H1.detach().clone()
    cfg = exp.dufm_config.replace(seed=seed, device=str(H1.device))
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
            trainer = Trainer(free, lr=lr, record_every=max(1, free_steps // 100), metrics_every=0)
            trainer.run(free_steps)
        free_loss = trainer.loss
        h1_shift = float(
            torch.linalg.matrix_norm(free.H1.detach() - H1) / torch.linalg.matrix_norm(H1)
        )
        free_history = trainer.history
    return RecoveryResult(
        optimal_loss=exp.optimal_loss,
        network_loss=net_loss,
        network_gap=relative_gap(net_loss, exp.optimal_loss),
        frozen_loss=frozen_loss,
        frozen_gap=relative_gap(frozen_loss, exp.optimal_loss),
        frozen_report=metrics.collapse_report(fresh, kind="both"),
        network_report=metrics.collapse_report(network, kind="both"),
        gram_difference=gram_gap,
        frozen_history=frozen_history,
        free_loss=free_loss,
        free_gap=relative_gap(free_loss, exp.optimal_loss),
        h1_shift=h1_shift,
        free_history=free_history,
        seconds=time.perf_counter() - t0,
    )
