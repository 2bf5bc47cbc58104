"""Charts of sweep results (theory §5): theory vs gradient descent phase diagrams, the rank of
the solutions against lambda, the probability of DNC against the width, and L_SRG / L_DNC.

Pure functions from the tidy frames of :mod:`dnc_interactive.sweeps` /
:mod:`dnc_interactive.lowrank` to altair charts; like the rest of the charts package they
know only DataFrames (no torch; of the package only the vocabulary :mod:`dnc_interactive.schema`,
for the metric titles). The heat maps reuse
:func:`~dnc_interactive.charts.sweep.phase_diagram` and
:func:`~dnc_interactive.charts.sweep.side_by_side`.

* :func:`theory_vs_gd` — two heat maps over (x, y), e.g. lambda x depth: the theory's
  prediction (a ``sweeps.theory_frame`` column such as ``srg_ratio``, ``q_star`` or
  ``predicted_dnc``) next to the gradient-descent outcome (a ``sweep()`` column averaged over
  seeds, e.g. ``is_dnc`` = P(DNC), ``loss_ratio`` or ``relative_gap``).
* :func:`rank_chart` — rank of every run (points) and its mean (line) against a parameter
  (follow-up Fig. 3 middle: average rank vs weight decay).
* :func:`dnc_probability_chart` — P(DNC) with its 95 % interval against a parameter (follow-up
  Fig. 3 right: probability of DNC vs width), from ``sweeps.dnc_probability``.
* :func:`srg_ratio_chart` — L_SRG / L_DNC against r per depth (follow-up Fig. 3 left), from
  ``lowrank.compare_srg_dnc``.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from dnc_interactive.schema import METRICS

from ._common import LAYER_SCHEME, PANEL_HEIGHT, PANEL_WIDTH, finite_values, require_frame
from .sweep import phase_diagram, side_by_side

__all__ = ["dnc_probability_chart", "rank_chart", "srg_ratio_chart", "theory_vs_gd"]

_TITLES = {
    "lambda": "λ (all blocks)",
    "lambda_H": "λ_H",
    "lambda_W": "λ_W",
    "depth": "depth L",
    "width": "width d",
    "num_classes": "classes K",
    "lr": "learning rate",
    "srg_ratio": "L_SRG / L_DNC",
    "q_star": "optimal scale q*",
    "predicted_dnc": "DNC predicted",
    "is_dnc": "P(DNC) over seeds",
    "loss_ratio": "final loss / L_DNC",
    "relative_gap": "(L − L_DNC) / L_DNC",
    "rank": "solution rank",
    "optimal_loss": "L_DNC",
    # metric columns: the registry's titles (dnc_interactive.schema.METRICS)
    **{m: METRICS[m].title for m in ("nc1_trace", "nc2_orth", "nc3")},
    "nc1": METRICS["nc1_trace"].title,  # the deprecated alias of nc1_trace
}


def _title(name: str) -> str:
    return _TITLES.get(name, name)


def _as_float(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Booleans (is_dnc, predicted_dnc) become 0/1 floats so that means are fractions."""
    out = frame.copy()
    if out[column].dtype == bool:
        out[column] = out[column].astype(float)
    return out


def theory_vs_gd(
    theory: pd.DataFrame,
    runs: pd.DataFrame,
    x: str = "lambda",
    y: str = "depth",
    theory_value: str = "srg_ratio",
    gd_value: str = "is_dnc",
    *,
    text: bool = True,
    titles: tuple[str, str] | None = None,
) -> alt.HConcatChart:
    """Theory (left) and gradient descent (right) as heat maps over the same (x, y) grid.

    ``theory`` is a frame like ``sweeps.theory_frame(grid)``, ``runs`` one like
    ``sweeps.sweep(grid, ...)``; repeated (x, y) cells (seeds) are averaged, so a boolean
    ``gd_value`` such as ``is_dnc`` shows the fraction of DNC runs.

    Raises:
        TypeError: if a frame is not a DataFrame.
        ValueError: if a frame is empty or lacks a column.
    """
    require_frame(theory, "theory", (x, y, theory_value))
    require_frame(runs, "runs", (x, y, gd_value))
    left = phase_diagram(
        _as_float(theory, theory_value),
        x,
        y,
        theory_value,
        x_title=_title(x),
        y_title=_title(y),
        color_title=_title(theory_value),
        scheme="redblue" if theory_value == "srg_ratio" else "viridis",
        text=text,
    )
    right = phase_diagram(
        _as_float(runs, gd_value),
        x,
        y,
        gd_value,
        x_title=_title(x),
        y_title=_title(y),
        color_title=_title(gd_value),
        text=text,
    )
    titles = titles or (f"theory: {_title(theory_value)}", f"gradient descent: {_title(gd_value)}")
    return side_by_side(left, right, titles)


def _axis_scale(values: pd.Series, log: bool | None) -> tuple[alt.Scale, bool]:
    finite = values[np.isfinite(values.to_numpy(dtype=float))]
    if log is None:
        log = bool((finite > 0).all() and finite.max() / max(finite.min(), 1e-300) >= 10)
    return alt.Scale(type="log" if log else "linear", zero=False), log


def rank_chart(
    frame: pd.DataFrame,
    x: str = "lambda",
    color: str | None = None,
    *,
    log_x: bool | None = None,
    title: str | None = None,
) -> alt.LayerChart:
    """Rank of each run's solution (points) and the mean rank (line) against ``x``.

    ``frame`` holds one row per run with columns ``x`` and ``rank`` (``sweep()`` output:
    ``rank`` is K for DNC, r for low-rank, 0 for trivial); ``color`` splits the runs into
    series (e.g. ``"depth"``). ``log_x`` (None: automatic, log when x spans a decade or more).
    Diverged runs (``status == "diverged"``) are left out when the column exists.
    """
    cols = [x, "rank"] + ([color] if color else [])
    require_frame(frame, "frame", cols)
    data = frame if "status" not in frame.columns else frame[frame["status"] != "diverged"]
    data = finite_values(finite_values(data[cols], x), "rank")
    if data.empty:
        raise ValueError("frame has no finite (x, rank) rows to chart")
    scale, _ = _axis_scale(data[x], log_x)
    enc_color = (
        alt.Color(f"{color}:O", title=_title(color), scale=alt.Scale(scheme=LAYER_SCHEME))
        if color
        else alt.value("#4c78a8")
    )
    xe = alt.X(f"{x}:Q", title=_title(x), scale=scale)
    base = alt.Chart(data)
    points = base.mark_circle(size=36, opacity=0.45).encode(
        x=xe,
        y=alt.Y("rank:Q", title=_title("rank"), scale=alt.Scale(zero=False)),
        color=enc_color,
        tooltip=[alt.Tooltip(f"{x}:Q", title=_title(x)), "rank:Q"]
        + ([alt.Tooltip(f"{color}:O")] if color else []),
    )
    group = [x] + ([color] if color else [])
    means = data.groupby(group, as_index=False).agg(mean_rank=("rank", "mean"))
    line = (
        alt.Chart(means)
        .mark_line(point=True)
        .encode(
            x=xe,
            y=alt.Y("mean_rank:Q", title=_title("rank")),
            color=enc_color,
            tooltip=[
                alt.Tooltip(f"{x}:Q", title=_title(x)),
                alt.Tooltip("mean_rank:Q", format=".2f"),
            ],
        )
    )
    return alt.layer(points, line).properties(
        title=title or f"solution rank vs {_title(x)}", width=PANEL_WIDTH, height=PANEL_HEIGHT
    )


def dnc_probability_chart(
    frame: pd.DataFrame,
    x: str = "width",
    color: str | None = None,
    *,
    log_x: bool | None = None,
    title: str | None = None,
) -> alt.LayerChart:
    """P(DNC) against ``x`` with its 95 % interval, from ``sweeps.dnc_probability(runs, by)``.

    ``frame`` needs columns ``x``, ``p_dnc``, ``p_low``, ``p_high`` and ``runs`` (and
    ``color`` if given, e.g. ``"lambda"`` after ``dnc_probability(runs, ["width", "lambda"])``).
    """
    cols = [x, "p_dnc", "p_low", "p_high", "runs"] + ([color] if color else [])
    require_frame(frame, "frame", cols)
    data = finite_values(frame[cols], "p_dnc")
    if data.empty:
        raise ValueError("frame has no finite p_dnc to chart")
    scale, _ = _axis_scale(data[x].astype(float), log_x)
    xe = alt.X(f"{x}:Q", title=_title(x), scale=scale)
    enc_color = (
        alt.Color(f"{color}:O", title=_title(color), scale=alt.Scale(scheme=LAYER_SCHEME))
        if color
        else alt.value("#4c78a8")
    )
    base = alt.Chart(data)
    band = base.mark_errorbar(ticks=True).encode(
        x=xe,
        y=alt.Y("p_low:Q", title="P(DNC)", scale=alt.Scale(domain=[0, 1])),
        y2="p_high:Q",
        color=enc_color,
    )
    line = base.mark_line(point=True).encode(
        x=xe,
        y=alt.Y("p_dnc:Q", title="P(DNC)", scale=alt.Scale(domain=[0, 1])),
        color=enc_color,
        tooltip=[
            alt.Tooltip(f"{x}:Q", title=_title(x)),
            alt.Tooltip("p_dnc:Q", title="P(DNC)", format=".2f"),
            alt.Tooltip("p_low:Q", title="95 % low", format=".2f"),
            alt.Tooltip("p_high:Q", title="95 % high", format=".2f"),
            "runs:Q",
        ]
        + ([alt.Tooltip(f"{color}:O")] if color else []),
    )
    return alt.layer(band, line).properties(
        title=title or f"probability of DNC vs {_title(x)}", width=PANEL_WIDTH, height=PANEL_HEIGHT
    )


def srg_ratio_chart(frame: pd.DataFrame, value: str = "srg_ratio") -> alt.LayerChart:
    """L_SRG / L_DNC against r, one line per depth, with the break-even line at 1.

    ``frame`` like ``lowrank.compare_srg_dnc()`` (columns r, depth and ``value``, e.g.
    ``srg_ratio`` or ``srg_sym_ratio``). Below 1 the low-rank construction beats DNC.
    """
    require_frame(frame, "frame", ("r", "depth", value))
    data = finite_values(frame[["r", "depth", value]], value)
    if data.empty:
        raise ValueError(f"frame has no finite values in column {value!r}")
    lines = (
        alt.Chart(data)
        .mark_line(point=True)
        .encode(
            x=alt.X("r:O", title="r (K = r(r−1)/2)", axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{value}:Q", title="L_SRG / L_DNC", scale=alt.Scale(zero=False)),
            color=alt.Color("depth:O", title="depth L", scale=alt.Scale(scheme=LAYER_SCHEME)),
            tooltip=["r:O", "depth:O", alt.Tooltip(f"{value}:Q", format=".4f")],
        )
    )
    rule = alt.Chart(pd.DataFrame({"one": [1.0]})).mark_rule(strokeDash=[4, 3]).encode(y="one:Q")
    return alt.layer(lines, rule).properties(
        title="SRG construction vs DNC", width=PANEL_WIDTH, height=PANEL_HEIGHT
    )
