"""The recorded state of a run: the tidy history (:data:`~dnc_interactive.schema.HISTORY_COLUMNS`)
shared by the trainer, the real-network experiment and the monitor, the layer-0 loss rows,
and the trainer's L-BFGS polish (theory §1.2, §4.1).
"""

from __future__ import annotations

import math

import pandas as pd
import torch

from dnc_interactive.model import DUFM
from dnc_interactive.schema import HISTORY_COLUMNS

__all__ = ["RecordedHistory", "Row", "lbfgs_polish", "loss_rows"]

#: One tidy history row: (step, layer, kind, metric, value).
Row = tuple[int, int, str, str, float]


def loss_rows(
    step: int, terms: dict[str, float], optimal_loss: float, gap: float, lr: float
) -> list[Row]:
    """The layer-0 / kind "model" rows of one record: loss, fit, reg, reg_H, optimal_loss,
    relative_gap and lr (:data:`~dnc_interactive.schema.METRICS`)."""
    return [
        (step, 0, "model", "loss", terms["loss"]),
        (step, 0, "model", "fit", terms["fit"]),
        (step, 0, "model", "reg", terms["reg"]),
        (step, 0, "model", "reg_H", terms["reg_H"]),
        (step, 0, "model", "optimal_loss", optimal_loss),
        (step, 0, "model", "relative_gap", gap),
        (step, 0, "model", "lr", lr),
    ]


class RecordedHistory:
    """The recorded state shared by :class:`Trainer` and the real-network experiment.

    Subclasses append :data:`HISTORY_COLUMNS` rows to ``_rows``, keep the latest loss terms
    in ``_last`` and their run state in ``status``; this gives the tidy ``history`` (a cached
    DataFrame, rebuilt when new rows arrive) and the latest ``loss`` and ``gap``.
    """

    status: str

    def _init_history(self) -> None:
        self._rows: list[Row] = []
        self._frame: pd.DataFrame | None = None
        self._last: dict[str, float] = {}

    @property
    def history(self) -> pd.DataFrame:
        """The tidy history: step, layer, kind, metric, value."""
        if self._frame is None or len(self._frame) != len(self._rows):
            self._frame = pd.DataFrame(self._rows, columns=list(HISTORY_COLUMNS))
        return self._frame

    @property
    def loss(self) -> float:
        """The total loss at the latest record."""
        return self._last.get("loss", math.nan)

    @property
    def gap(self) -> float:
        """Relative gap (loss - L*) / L* at the latest record."""
        return self._last.get("relative_gap", math.nan)

    @property
    def diverged(self) -> bool:
        return self.status == "diverged"


def lbfgs_polish(model: DUFM, max_iter: int) -> int:
    """An L-BFGS phase (strong Wolfe line search) on ``model``'s parameters, in place.

    The state is kept only if the loss went down (L-BFGS can stall at ReLU kinks, theory
    §4.1); returns the number of iterations (at least 1).
    """
    params = [p.data for p in model.parameters()]
    before = [p.clone() for p in params]
    start = float(model.loss().total.detach())
    opt = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = model.loss().total
        value.backward()
        return value

    opt.step(closure)
    model.zero_grad(set_to_none=True)
    after = float(model.loss().total.detach())
    if not (math.isfinite(after) and after <= start):
        with torch.no_grad():
            for p, b in zip(params, before, strict=True):
                p.copy_(b)
    return max(int(opt.state[opt._params[0]].get("n_iter", 1)), 1)
