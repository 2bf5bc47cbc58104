"""Charts of a tidy training history: loss curves and per-layer collapse metrics.

The history is the trainer's long-format DataFrame with columns ``step``, ``layer``, ``kind``,
``metric`` and ``value`` (layer 0 / kind ``"model"`` for the loss terms, layers 1..L with
kinds ``"pre"``, ``"post"`` and ``"weight"`` for the DNC metrics, layer L+1 / kind
``"output"`` for NC4 and the output scales ``q_k``). Every builder here is a pure function of
that DataFrame, bounds its rows with :func:`downsample_history`, and returns an altair chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import altair as alt
import numpy as np
import pandas as pd

from ._common import (
    DEFAULT_MAX_POINTS,
    HISTORY_COLUMNS,
    LOG_FLOOR,
    MAX_CHART_ROWS,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    finite_values,
    is_linear_metric,
    kind_dash_scale,
    layer_color,
    metric_title,
    require_frame,
)

__all__ = ["downsample_history", "loss_chart", "metric_chart"]

Spacing = Literal["linear", "log", "both"]

_SERIES = ["layer", "kind", "metric"]


def _thin(n: int, cap: int, spacing: Spacing) -> np.ndarray:
    """Positions (sorted, unique, always including 0 and n − 1) of at most ``cap`` of ``n``."""
    if n <= cap:
        return np.arange(n)
    if spacing == "linear":
        picks = np.linspace(0, n - 1, cap)
    elif spacing == "log":
        picks = np.geomspace(1, n, cap) - 1
    else:  # both: half the budget evenly spaced, half log-spaced (early dynamics are fast)
        half = max(cap // 2, 2)
        picks = np.concatenate([np.linspace(0, n - 1, half), np.geomspace(1, n, cap - half) - 1])
    # linspace and geomspace both start at 0 and end at n - 1, so both ends are kept
    return np.unique(np.clip(np.round(picks).astype(np.int64), 0, n - 1))


def downsample_history(
    history: pd.DataFrame,
    max_points: int = DEFAULT_MAX_POINTS,
    *,
    max_rows: int | None = None,
    spacing: Spacing = "both",
) -> pd.DataFrame:
    """Bound the number of rows of every (layer, kind, metric) series of a tidy history.

    Each series is sorted by step and thinned to at most ``max_points`` rows, always keeping
    its first and last step. ``spacing`` picks the kept steps evenly (``"linear"``), densely
    at the start (``"log"``, for fast early dynamics) or half and half (``"both"``).
    With ``max_rows``, the per-series budget shrinks further so that the whole frame stays
    below ``max_rows`` rows (altair refuses more than 5 000 rows per data set).

    Args:
        history: tidy history with columns ``step, layer, kind, metric, value``.
        max_points: most rows kept per series (at least 2).
        max_rows: optional bound on the total number of rows.
        spacing: ``"linear"``, ``"log"`` or ``"both"``.

    Returns:
        A new DataFrame (same columns, original row order) with the thinned rows.
    """
    if not isinstance(history, pd.DataFrame):
        raise TypeError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    missing = [c for c in HISTORY_COLUMNS if c not in history.columns]
    if missing:
        raise ValueError(f"history is missing column {missing[0]!r}")
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if spacing not in ("linear", "log", "both"):
        raise ValueError(f"spacing must be 'linear', 'log' or 'both', got {spacing!r}")
    if history.empty:
        return history.copy()
    # positional index arrays per series (pandas-stubs types the values too loosely)
    groups = cast(
        "dict[Any, np.ndarray]", history.groupby(_SERIES, sort=False, dropna=False).indices
    )
    cap = max_points
    if max_rows is not None:
        cap = min(cap, max(2, max_rows // len(groups)))
    steps = history["step"].to_numpy()
    keep: list[np.ndarray] = []
    for positions in groups.values():
        ordered = positions[np.argsort(steps[positions], kind="stable")]
        keep.append(ordered[_thin(len(ordered), cap, spacing)])
    return history.iloc[np.sort(np.concatenate(keep))].copy()


def _prepare(history: pd.DataFrame, mask: pd.Series, log: bool, floor: float) -> pd.DataFrame:
    """Select rows, drop non-finite values, clip at ``floor`` where drawn on a log scale.

    Linear metrics (rank, NC4, q_k; see ``is_linear_metric``) are never clipped.
    """
    data = finite_values(history.loc[mask, list(HISTORY_COLUMNS)])
    if log:
        clip = ~data["metric"].map(is_linear_metric).astype(bool)
        data.loc[clip, "value"] = data.loc[clip, "value"].clip(lower=floor)
    return data


def _y_scale(log: bool) -> alt.Scale:
    return alt.Scale(type="log") if log else alt.Scale(zero=False)


def loss_chart(
    history: pd.DataFrame,
    log_gap: bool = True,
    *,
    metrics: Sequence[str] = ("loss", "fit", "reg"),
    log_loss: bool = True,
    orient: Literal["horizontal", "vertical"] = "horizontal",
    max_points: int = DEFAULT_MAX_POINTS,
    floor: float = LOG_FLOOR,
    width: int = PANEL_WIDTH,
    height: int = PANEL_HEIGHT,
) -> alt.LayerChart | alt.HConcatChart | alt.VConcatChart:
    """Loss terms vs step with the optimum L* as a rule, and the relative gap beside it.

    The left panel draws ``metrics`` (default loss, fit and regulariser, layer 0, kind
    ``"model"``) and a dashed horizontal rule at the latest finite ``optimal_loss`` (L* of
    theory §2.2). The right (or lower) panel draws the relative gap (L − L*)/L*; on a log
    scale (``log_gap``) its absolute value is drawn and steps where the loss is below L*
    (e.g. a low-rank solution beating DNC, theory §5) are marked in red. Non-finite values are
    dropped and log-scaled values clipped at ``floor``. Without any finite gap (L* unknown)
    only the loss panel is returned.

    Raises:
        ValueError: if ``history`` is empty, misses a column or has none of ``metrics``.
    """
    require_frame(history, "history", HISTORY_COLUMNS)
    if orient not in ("horizontal", "vertical"):
        raise ValueError(f"orient must be 'horizontal' or 'vertical', got {orient!r}")
    model = history[history["kind"] == "model"]
    terms = _prepare(model, model["metric"].isin(list(metrics)), log_loss, floor)
    if terms.empty:
        raise ValueError(f"history has no finite rows of kind 'model' for metrics {list(metrics)}")
    terms = downsample_history(terms, max_points, max_rows=MAX_CHART_ROWS)
    terms["term"] = terms["metric"]

    x = alt.X("step:Q", title="step")
    lines = (
        alt.Chart(terms)
        .mark_line()
        .encode(
            x=x,
            y=alt.Y("value:Q", title="loss terms", scale=_y_scale(log_loss)),
            color=alt.Color(
                "term:N",
                title="term",
                sort=list(metrics),
                scale=alt.Scale(domain=[m for m in metrics if m in set(terms["term"])]),
            ),
            tooltip=[
                alt.Tooltip("step:Q"),
                alt.Tooltip("term:N"),
                alt.Tooltip("value:Q", format=".4e"),
            ],
        )
    )
    layers: list[alt.Chart] = [lines]

    optimum = finite_values(model[model["metric"] == "optimal_loss"])
    if not optimum.empty:
        l_star = float(optimum.sort_values("step", kind="stable")["value"].iloc[-1])
        if log_loss:
            l_star = max(l_star, floor)
        rule_data = pd.DataFrame({"label": ["L*"], "value": [l_star]})
        rule = (
            alt.Chart(rule_data)
            .mark_rule(color="black", strokeDash=[4, 4])
            .encode(
                y="value:Q",
                tooltip=[
                    alt.Tooltip("label:N", title="optimum"),
                    alt.Tooltip("value:Q", format=".6e"),
                ],
            )
        )
        text = (
            alt.Chart(rule_data)
            .mark_text(align="left", dx=4, dy=-6, fontWeight="bold")
            .encode(y="value:Q", x=alt.value(0), text="label:N")
        )
        layers += [rule, text]
    loss_panel = alt.layer(*layers).properties(
        title="Loss L and its terms (dashed: optimum L*)", width=width, height=height
    )

    gap = finite_values(model[model["metric"] == "relative_gap"])
    if gap.empty:
        return loss_panel
    gap = downsample_history(gap, max_points, max_rows=MAX_CHART_ROWS)
    gap["gap"] = gap["value"]
    gap["side"] = np.where(gap["gap"] < 0, "below L*", "above L*")
    if log_gap:
        gap["value"] = gap["gap"].abs().clip(lower=floor)
        gap_title = "|L − L*| / L*"
    else:
        gap_title = "(L − L*) / L*"
    base = alt.Chart(gap).encode(
        x=x,
        y=alt.Y("value:Q", title=gap_title, scale=_y_scale(log_gap)),
        tooltip=[
            alt.Tooltip("step:Q"),
            alt.Tooltip("gap:Q", title="(L − L*)/L*", format=".3e"),
            alt.Tooltip("side:N"),
        ],
    )
    gap_layers: list[alt.Chart] = [base.mark_line(color="#444")]
    if log_gap and (gap["gap"] < 0).any():
        gap_layers.append(
            base.mark_point(color="#d62728", filled=True, size=18).transform_filter(
                alt.datum.side == "below L*"
            )
        )
    gap_panel = alt.layer(*gap_layers).properties(
        title="Relative gap to the optimum (red: below L*)"
        if len(gap_layers) > 1
        else "Relative gap to the optimum",
        width=width,
        height=height,
    )
    if orient == "horizontal":
        return alt.hconcat(loss_panel, gap_panel)
    return alt.vconcat(loss_panel, gap_panel)


def metric_chart(
    history: pd.DataFrame,
    metrics: Sequence[str] = ("nc1", "nc2_orth", "nc3"),
    kinds: Sequence[str] = ("pre", "post"),
    *,
    log_y: bool = True,
    columns: int = 3,
    max_points: int = DEFAULT_MAX_POINTS,
    floor: float = LOG_FLOOR,
    width: int = PANEL_WIDTH,
    height: int = PANEL_HEIGHT,
) -> alt.ConcatChart:
    """Per-layer collapse metrics vs step: one panel per metric, one colour per layer.

    Feature metrics are taken for ``kinds`` (pre-ReLU H̃_l dashed, post-ReLU H_l solid);
    metrics stored under other kinds (``"weight"`` for NC3/DNC3, ``"output"`` for NC4 and
    q_k, ``"model"``) are always included and drawn solid. The y scale is logarithmic
    (``log_y``), except for the rank, NC4 and q_k; zeros are clipped at ``floor`` and non-finite
    values dropped. Panels keep the order of ``metrics``; a metric absent from the history
    is skipped.

    Raises:
        ValueError: if ``history`` is empty or misses a column, if ``metrics`` is empty, or if
            none of ``metrics`` is in the history.
    """
    require_frame(history, "history", HISTORY_COLUMNS)
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    kinds = [kinds] if isinstance(kinds, str) else list(kinds)
    if not metrics:
        raise ValueError("metrics is empty: name at least one metric")
    feature_kind = history["kind"].isin(["pre", "post"])
    mask = history["metric"].isin(metrics) & (history["kind"].isin(kinds) | ~feature_kind)
    data = _prepare(history, mask, log_y, floor)
    if data.empty:
        raise ValueError(
            f"metrics {metrics} have no finite rows in history for kinds {kinds} "
            f"(history has metrics {sorted(history['metric'].unique())})"
        )
    data = downsample_history(data, max_points, max_rows=MAX_CHART_ROWS)
    data["layer"] = data["layer"].astype(int)

    color = layer_color(data["layer"].unique())
    dash = alt.StrokeDash(
        "kind:N", title="features", scale=kind_dash_scale(list(data["kind"].unique()))
    )
    present = set(data["metric"])
    panels = []
    for metric in metrics:
        if metric not in present:
            continue
        log = log_y and not is_linear_metric(metric)
        panels.append(
            alt.Chart(data[data["metric"] == metric], title=metric_title(metric))
            .mark_line()
            .encode(
                x=alt.X("step:Q", title="step"),
                y=alt.Y("value:Q", title=metric, scale=_y_scale(log)),
                color=color,
                strokeDash=dash,
                tooltip=[
                    alt.Tooltip("step:Q"),
                    alt.Tooltip("layer:O"),
                    alt.Tooltip("kind:N"),
                    alt.Tooltip("value:Q", format=".3e"),
                ],
            )
            .properties(width=width, height=height)
        )
    return alt.concat(*panels, columns=columns).resolve_scale(y="independent")
