"""The dashboard's view-model: what its status line and charts show, computed once per change.

Two levels, both plain Python (no ipywidgets):

* :class:`TheoryView` holds everything the theory says about one config — L*, the output
  scales q*_k (theory §6), the optimum's own normalised Gram matrix per layer (balanced or
  imbalanced, theory §2.3), the gap's round-off level and the critical λ of the gauges. It is
  computed once per config (:func:`theory_view` is cached), not on every update.
* :class:`StatusView` is the transport's state after an update: the status line's HTML, the
  step counter and the Play button's face. :meth:`StatusView.of` reads the session once.

:func:`snapshot_chart` and :func:`lecture_snapshot` build the snapshot charts of a model from
these numbers; the charts themselves are pure functions of DataFrames
(:mod:`dnc_interactive.charts`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import altair as alt
import numpy as np

from dnc_interactive import charts, metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.widgets import controls as ctl
from dnc_interactive.widgets.specs import chart_config
from dnc_interactive.widgets.theory_links import with_chart_info

#: The snapshot views of the default layout's snapshot slot.
SNAPSHOTS = ("Gram", "features", "singular values", "output q")

#: Relative gap below which the loss is at L* within floating-point round-off: float32 carries
#: ~7 digits, float64 ~16 (the same levels as :mod:`dnc_interactive.diagnosis`).
ROUNDOFF: dict[str, float] = {"float32": 1e-6, "float64": 1e-12}

#: Widest a Gram snapshot may be (pixels), so that its row of panels does not wrap.
GRAM_WIDTH = 560


def roundoff(dtype: str) -> float:
    """The relative gap that counts as "reached" for a model computed in ``dtype``."""
    return ROUNDOFF.get(dtype, ROUNDOFF["float32"])


def optimum_gram(norms: tuple[float, ...] | list[float]) -> np.ndarray:
    """The normalised Gram MᵀM/‖MᵀM‖_F of mutually orthogonal class means of the given norms.

    At the DUFM optimum the class means of every layer are orthogonal (theory §2.3, §6), so
    their Gram is diag(‖μ_k‖²), normalised: I_K/√K for balanced classes, unequal diagonal
    entries for imbalanced ones, and 0 for a collapsed minority class. All-zero norms (the
    zero solution) give the zero matrix.
    """
    sq = np.asarray(norms, dtype=float) ** 2
    scale = float(np.sqrt((sq**2).sum()))
    if not math.isfinite(scale) or scale == 0.0:
        return np.zeros((len(sq), len(sq)))
    return np.diag(sq / scale)


@dataclass(frozen=True)
class TheoryView:
    """What the theory says about one config, for the status line and the charts.

    Attributes:
        config: the config.
        optimal_loss: L* (NaN for the CE loss).
        q_star: theory's output scale q*_k per class (NaN for CE).
        grams: the optimum's normalised Gram per feature layer, ``grams[l]`` for H_l
            (l = 1..L) and ``grams[L + 1]`` for the output Z; empty when the closed form does
            not apply (CE, or an optimum that is not attained).
        roundoff: the relative gap counted as reached (:func:`roundoff`).
        balanced: whether every class has the same size.
        gauge_H, gauge_W: the HTML of the λ gauges (the critical λ marked).
    """

    config: DUFMConfig
    optimal_loss: float
    q_star: tuple[float, ...]
    grams: dict[int, np.ndarray]
    roundoff: float
    balanced: bool
    gauge_H: str
    gauge_W: str

    def ideal(self, layer: int | None = None) -> tuple[np.ndarray, str] | None:
        """The optimum's Gram of ``layer`` (default: the last feature layer L) and its panel
        title; None when the theory gives none."""
        layer = self.config.L if layer is None else layer
        if layer not in self.grams:
            return None
        what = "Z" if layer == self.config.L + 1 else f"H_{layer}"
        if self.balanced:
            return self.grams[layer], "optimum: I_K/√K"
        return self.grams[layer], f"optimum ({what}, imbalanced)"


@functools.lru_cache(maxsize=64)
def _theory_view(config: DUFMConfig, tie: bool) -> TheoryView:
    opt = theory.optimum(config)
    grams: dict[int, np.ndarray] = {}
    if config.loss == "mse" and opt.attained:
        for layer, norms in enumerate(theory.layer_norms(config), start=1):
            grams[layer] = optimum_gram(norms)
        grams[config.L + 1] = optimum_gram(opt.q)
    lo, hi = ctl.RANGES["lambda"]
    lam_w = max(config.lambda_Ws)
    if tie and config.equal_lambdas:  # all λ move together
        crit_h = crit_w = config.lambda_H * theory.critical_scale(config)
    else:
        crit_h, crit_w = ctl.lambda_criticals(config)
    return TheoryView(
        config=config,
        optimal_loss=float(opt.loss),
        q_star=tuple(float(q) for q in opt.q),
        grams=grams,
        roundoff=roundoff(config.dtype),
        balanced=len(set(config.class_sizes)) == 1,
        gauge_H=ctl.lambda_gauge(config.lambda_H, crit_h, lo, hi),
        gauge_W=ctl.lambda_gauge(lam_w, crit_w, lo, hi),
    )


def theory_view(config: DUFMConfig, tie: bool = True) -> TheoryView:
    """The :class:`TheoryView` of ``config`` (cached: computed once per config). ``tie``:
    whether the λ sliders move together (it changes which critical λ the gauges mark)."""
    return _theory_view(config, bool(tie))


@dataclass(frozen=True)
class StatusView:
    """The transport after an update: status line, step counter, Play button."""

    status_html: str
    counter_html: str
    playing: bool

    @property
    def play_face(self) -> tuple[str, str, str]:
        """(description, icon, button_style) of the Play / Pause button."""
        return ("Pause", "pause", "warning") if self.playing else ("Play", "play", "success")

    @classmethod
    def of(cls, session: Any) -> StatusView:
        """The status of a :class:`~dnc_interactive.widgets.session.TrainingSession` now."""
        return cls(
            status_html=ctl.status_html(session.status_parts()),
            counter_html=f"<b>step {session.steps}</b>",
            playing=bool(session.playing),
        )


# ---------------------------------------------------------------------- snapshot charts
def _gram_columns(panels: int, K: int, cell: int) -> tuple[int, int]:
    """(columns, cell) so that a Gram facet of ``panels`` K×K panels fits :data:`GRAM_WIDTH`
    in balanced rows (8 panels: 4 + 4, never 6 + 2 with empty axes)."""
    gap = 22
    fit_cell = max(8, min(cell, (GRAM_WIDTH // max(panels, 1) - gap) // max(K, 1)))
    per_row = max(1, GRAM_WIDTH // (fit_cell * K + gap))
    rows = math.ceil(panels / per_row)
    return math.ceil(panels / rows), fit_cell


def snapshot_chart(
    model: DUFM, which: str, kind: str, view: TheoryView, *, cell: int = 30
) -> alt.TopLevelMixin:
    """The snapshot chart ``which`` (one of :data:`SNAPSHOTS`) of ``model`` with the theory of
    ``view``: the Gram heat maps end with the optimum's own Gram, the output scales carry q*_k.
    """
    if which == "Gram":
        frame = metrics.gram_frame(model)
        panels = len(frame.groupby(["layer", "kind"]).size()) // 2 + 2  # kind's layers, Z, ideal
        columns, fit_cell = _gram_columns(panels, model.config.K, cell)
        ideal = view.ideal()
        if ideal is None:
            return charts.gram_heatmap(frame, kind=kind, columns=columns, cell=fit_cell)
        matrix, title = ideal
        return charts.gram_heatmap(
            frame, kind=kind, ideal=matrix, ideal_title=title, columns=columns, cell=fit_cell
        )
    if which == "features":
        return charts.projection_chart(metrics.projection_frame(model, 25), kind=kind)
    if which == "singular values":
        return charts.singular_value_chart(metrics.singular_value_frame(model))
    if which == "output q":
        frame = metrics.output_scale_frame(model)
        frame["q_theory"] = list(view.q_star)
        return charts.output_scale_chart(frame)
    raise ValueError(f"which={which!r} is not valid: expected one of {SNAPSHOTS}")


#: Size of the lecture layout's snapshot panels (plot area, pixels).
LECTURE_SNAPSHOT = {"projection": 200, "gram": 180}


def lecture_snapshot(model: DUFM, kind: str, view: TheoryView) -> dict[str, Any]:
    """The lecture layout's snapshot panel as a Vega-Lite spec: the Gram of the class means of
    the last layer L next to the optimum's own Gram (theory §2.3, §6), with lecture fonts
    (≥ 18 px). The features of that layer are the live cloud beside it
    (:func:`~dnc_interactive.widgets.live_chart.cloud_spec`), no longer a static projection."""
    L = model.config.L
    gram = metrics.gram_frame(model)
    gram = gram[(gram["layer"] == L) & (gram["kind"] == kind)]
    K = model.config.K
    cell = max(6, LECTURE_SNAPSHOT["gram"] // K)
    ideal = view.ideal()
    if ideal is None:
        heat = charts.gram_heatmap(gram, kind=kind, columns=2, cell=cell, text=K <= 3)
    else:
        matrix, title = ideal
        heat = charts.gram_heatmap(
            gram, kind=kind, ideal=matrix, ideal_title=title, columns=2, cell=cell, text=K <= 3
        )
    heat = heat.properties(title=f"Gram of the class means, layer {L}, vs the optimum")
    spec = with_chart_info(heat.to_dict(validate=False), "gram", 18)
    spec["config"] = chart_config("lecture")
    return spec


__all__ = [
    "LECTURE_SNAPSHOT",
    "ROUNDOFF",
    "SNAPSHOTS",
    "StatusView",
    "TheoryView",
    "lecture_snapshot",
    "optimum_gram",
    "roundoff",
    "snapshot_chart",
    "theory_view",
]
