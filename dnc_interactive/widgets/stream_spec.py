"""The Vega-Lite spec of the live training curves (:func:`stream_spec`): the loss terms
against the optimum L*, the relative gap, the output scales q_k against q*_k and the
per-layer DNC1 / DNC2 / DNC3 and rank panels (theory §2, §3, §6), reading the named dataset
``rows`` that :class:`~dnc_interactive.widgets.live_chart.LiveChart` streams. Every panel
carries a formula tooltip and a link to its theory section
(:mod:`~dnc_interactive.widgets.theory_links`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from dnc_interactive.charts import metric_title
from dnc_interactive.config import DUFMConfig
from dnc_interactive.diagnosis import CODES as DIAGNOSIS_CODES
from dnc_interactive.widgets.series import _MODEL_METRICS
from dnc_interactive.widgets.specs import (
    _FINITE,
    _LOG_AXIS,
    _X,
    LOG_FLOOR,
    VEGA_LITE_SCHEMA,
    ChartStyle,
    _tooltip,
    _unit,
    chart_config,
    chart_style,
    layer_colour,
    series_tooltip,
)
from dnc_interactive.widgets.theory_links import with_info

#: An "event" row's value indexes the diagnosis codes (theory §8).
EVENT_CODES = DIAGNOSIS_CODES

#: Metrics that are identically 0 for K = 2 whatever the data (theory §3.3: the global mean of
#: two class means is their midpoint, so the centred means are antipodal: a simplex ETF with
#: equal norms and cosine −1). The dashboard never draws them for K = 2.
TRIVIAL_FOR_K2: frozenset[str] = frozenset({"nc2_etf", "equinorm", "coherence"})


def informative_metrics(num_classes: int, metrics: Sequence[str]) -> list[str]:
    """``metrics`` without those that are identically 0 for ``num_classes`` (for K = 2:
    :data:`TRIVIAL_FOR_K2`), in their order (theory §3.3)."""
    trivial = TRIVIAL_FOR_K2 if num_classes <= 2 else frozenset()
    return [m for m in metrics if m not in trivial]


#: Short panel titles of the live view (the static charts use the long ones).
LIVE_TITLES = {
    "nc1": "DNC1  tr(Σ_W Σ_B⁺)/K",
    "nc2_orth": "DNC2  orthogonal-frame error",
    "nc3": "DNC3 / NC3  W_l vs class means",
    "rank": "Rank of the class means M̃_l, M_l",
}

#: Every panel of the live training view, in the default layout's order.
STREAM_PANELS: tuple[str, ...] = ("loss", "gap", "q", "nc1", "nc2_orth", "nc3", "rank")
#: The default layout's panels for K = 2 (the rank of two class means says little).
BINARY_PANELS: tuple[str, ...] = STREAM_PANELS[:6]
#: The default layout's panels for K > 2: the rank of the class means in place of DNC3 (the
#: story beyond two classes is the rank, theory §5), so the curves stay in two rows and the
#: feature clouds below them on the first screen of a 1366×768 page.
MANY_PANELS: tuple[str, ...] = ("loss", "gap", "q", "nc1", "nc2_orth", "rank")
#: The lecture layout's training panels: the loss against L* and the per-layer NC1.
LECTURE_PANELS: tuple[str, ...] = ("loss", "nc1")


def panels_for(config: DUFMConfig, lecture: bool = False) -> tuple[str, ...]:
    """The live panels of ``config``: the lecture's two, or the default layout's six — for
    K > 2 the per-layer rank of the class means (theory §3.6, §5: low-rank solutions) in place
    of DNC3 (which the exported training figure keeps), and never a metric that is
    identically 0 for this K (:func:`informative_metrics`)."""
    if lecture:
        return LECTURE_PANELS
    chosen = MANY_PANELS if config.K > 2 else BINARY_PANELS
    return tuple(informative_metrics(config.K, chosen))


def stream_spec(
    config: DUFMConfig,
    optimal_loss: float = math.nan,
    *,
    width: int | None = None,
    height: int | None = None,
    q_star: Sequence[float] | None = None,
    roundoff: float | None = None,
    panels: Sequence[str] | None = None,
    style: str | ChartStyle = "default",
    columns: int | None = None,
    lowrank: tuple[str, float] | None = None,
) -> dict[str, Any]:
    """The Vega-Lite spec of the live training curves for ``config``, reading named data.

    Panels (``panels``, any of :data:`STREAM_PANELS`; default: :func:`panels_for` the config):
    ``"loss"`` the loss terms (log scale) with the optimum L* as a dashed rule; ``"gap"`` the
    relative gap |L − L*|/L* (log scale; red points where the loss is below L* by more than
    ``roundoff``, green points where |gap| < ``roundoff``: the optimum reached within
    floating-point round-off, drawn at the round-off level); ``"q"`` the output scales q_k with
    theory's q*_k (``q_star``, theory §6) as dashed rules in the class's colour; and per layer
    ``"nc1"`` DNC1 (pre-ReLU dashed, post-ReLU solid), ``"nc2_orth"`` DNC2 (orthogonal frame,
    post) and ``"nc3"`` DNC3 / NC3 (theory §3), and ``"rank"`` the numerical rank of M̃_l
    (dashed) and M_l (solid) per layer (theory §3.6). All panels read the dataset ``rows`` that
    :class:`LiveChart` streams.

    ``lowrank`` = (label, loss): the best known low-rank loss (theory §5) as a second dashed
    rule on the loss panel, read from the named dataset ``lowrank`` (so it can be lowered
    later, when the optimised SRG family is known, without re-embedding). The first
    collapse of a run (an ``("event", "collapsed")`` row) is a green rule on the loss panel.

    ``style`` (see :data:`STYLES`) sets the plot size (``width`` / ``height`` override it) and
    the font sizes. The panels are a wrapping ``concat`` of ``columns`` columns (default: 3,
    or all panels for a lecture); its ``usermeta.dncFit`` lets the front end use fewer
    columns when the page is too narrow for them.
    """
    st = chart_style(style)
    if panels is None:
        panels = panels_for(config)
    unknown = [p for p in panels if p not in STREAM_PANELS]
    if unknown or not panels:
        raise ValueError(f"panels={list(panels)!r} is not valid: expected some of {STREAM_PANELS}")
    L = config.L
    log = {"type": "log"}
    size = {"width": width or st.width, "height": height or st.height}
    line = {"type": "line", "strokeWidth": st.stroke}
    terms = list(_MODEL_METRICS[:3])
    built: dict[str, dict[str, Any]] = {}

    loss_layers: list[dict[str, Any]] = [
        _unit(
            terms,
            ["model"],
            line,
            {
                "x": _X,
                "y": {
                    "field": "v",
                    "type": "quantitative",
                    "title": "loss terms",
                    "scale": log,
                    "axis": _LOG_AXIS,
                },
                "color": {
                    "field": "metric",
                    "type": "nominal",
                    "title": "term",
                    "scale": {"domain": terms},
                    "sort": terms,
                },
                "tooltip": series_tooltip("metric", "nominal", ".6e"),
            },
        )
    ]
    title = "Loss L"
    if math.isfinite(optimal_loss):
        value = {"values": [{"label": "L*", "value": max(float(optimal_loss), LOG_FLOOR)}]}
        y = {"field": "value", "type": "quantitative"}
        loss_layers.append(
            {
                "data": value,
                "mark": {"type": "rule", "color": "black", "strokeDash": [6, 4], "strokeWidth": 2},
                "encoding": {
                    "y": y,
                    "tooltip": _tooltip(("value", "quantitative", ".6e")),
                },
            }
        )
        loss_layers.append(
            {
                "data": value,
                "mark": {
                    "type": "text",
                    "align": "left",
                    "dx": 4,
                    "dy": -0.6 * st.axis_label,
                    "fontWeight": "bold",
                    "fontSize": st.axis_title,
                },
                "encoding": {"y": y, "x": {"value": 0}, "text": {"field": "label"}},
            }
        )
        loss_layers.append(  # L* along the run: it jumps where λ changed (theory §2.2)
            {
                "data": {"name": "rows"},
                "transform": [
                    {"filter": "datum.kind === 'model' && datum.metric === 'optimal_loss'"},
                    {"filter": _FINITE},
                    {"calculate": f"max(datum.value, {LOG_FLOOR})", "as": "v"},
                ],
                "mark": {
                    "type": "line",
                    "interpolate": "step-after",
                    "color": "black",
                    "strokeDash": [6, 4],
                    "strokeWidth": 1.5,
                    "opacity": 0.7,
                },
                "encoding": {
                    "x": _X,
                    "y": {"field": "v", "type": "quantitative"},
                    "tooltip": _tooltip(
                        ("step", "quantitative", None), ("value", "quantitative", ".6e")
                    ),
                },
            }
        )
        title += " (dashed: optimum L*)"
    ref_rows: list[dict[str, Any]] | None = None
    if lowrank is not None and math.isfinite(lowrank[1]):
        ref_rows = [{"label": lowrank[0], "value": max(float(lowrank[1]), LOG_FLOOR)}]
        ry = {"field": "value", "type": "quantitative"}
        loss_layers.append(
            {
                "data": {"name": "lowrank"},
                "mark": {
                    "type": "rule",
                    "color": "#7b2cbf",
                    "strokeDash": [2, 3],
                    "strokeWidth": 2,
                },
                "encoding": {
                    "y": ry,
                    "tooltip": _tooltip(
                        ("label", "nominal", None), ("value", "quantitative", ".6e")
                    ),
                },
            }
        )
        loss_layers.append(
            {
                "data": {"name": "lowrank"},
                "mark": {
                    "type": "text",
                    "align": "right",
                    "dx": -4,
                    "dy": 0.8 * st.axis_label,
                    "color": "#7b2cbf",
                    "fontSize": st.axis_label,
                },
                "encoding": {"y": ry, "x": {"value": size["width"]}, "text": {"field": "label"}},
            }
        )
        title = "Loss L (dashed: L* of DNC; purple: best low-rank)"
    loss_layers.append(  # the run's first collapse: a green rule
        {
            "data": {"name": "rows"},
            "transform": [{"filter": "datum.kind === 'event' && datum.metric === 'collapsed'"}],
            "mark": {"type": "rule", "color": "#2e7d32", "strokeWidth": 2.5},
            "encoding": {
                "x": _X,
                "tooltip": [{"field": "step", "type": "quantitative", "title": "collapsed at"}],
            },
        }
    )
    codes = "[" + ", ".join(f"'{c}'" for c in EVENT_CODES) + "]"
    loss_layers.append(  # markers: where the diagnosis changed, where a new start began
        {
            "data": {"name": "rows"},
            "transform": [
                {
                    "filter": "(datum.kind === 'event' && datum.metric === 'diagnosis')"
                    " || (datum.kind === 'model' && datum.metric === 'restart')"
                },
                {
                    "calculate": f"datum.kind === 'event' ? {codes}[datum.value]"
                    " : 'new start ' + datum.value",
                    "as": "event",
                },
            ],
            "mark": {"type": "rule", "color": "#e76f51", "strokeDash": [2, 2], "strokeWidth": 2},
            "encoding": {
                "x": _X,
                "tooltip": _tooltip(("step", "quantitative", None), ("event", "nominal", None)),
            },
        }
    )
    built["loss"] = {"title": title, "layer": loss_layers, **size}
    built["gap"] = _gap_panel(roundoff, size, st)
    built["q"] = _q_panel(config, q_star, size, line)

    def layer_panel(metric: str, kinds: Sequence[str], legend: bool) -> dict[str, Any]:
        colour_legend: dict[str, Any] = {"columns": 2} if st.name == "lecture" and L > 5 else {}
        enc: dict[str, Any] = {
            "x": _X,
            "y": {
                "field": "v",
                "type": "quantitative",
                "title": metric,
                "scale": log,
                "axis": _LOG_AXIS,
            },
            "color": layer_colour(
                "layer",
                L,
                **({"legend": colour_legend} if legend and colour_legend else {}),
                **({} if legend else {"legend": None}),
            ),
            "tooltip": _tooltip(
                ("step", "quantitative", None),
                ("layer", "ordinal", None),
                ("kind", "nominal", None),
                ("value", "quantitative", ".3e"),
            ),
        }
        if len(kinds) > 1:
            enc["strokeDash"] = {
                "field": "kind",
                "type": "nominal",
                "title": "features",
                "scale": {"domain": ["post", "pre"], "range": [[1, 0], [5, 3]]},
            }
        return {
            "title": LIVE_TITLES.get(metric, metric_title(metric)),
            **_unit([metric], kinds, line, enc),
            **size,
        }

    built["nc1"] = layer_panel("nc1", ["pre", "post"], True)
    built["nc2_orth"] = layer_panel("nc2_orth", ["post"], False)
    built["nc3"] = layer_panel("nc3", ["weight"], False)
    rank = layer_panel("rank", ["pre", "post"], False)
    rank["transform"] = [t for t in rank["transform"] if "calculate" not in t] + [
        {"calculate": "datum.value", "as": "v"}
    ]
    rank["encoding"]["y"] = {
        "field": "v",
        "type": "quantitative",
        "title": "rank",
        "scale": {"domain": [0, config.K], "nice": False},
        "axis": {"tickMinStep": 1},
    }
    built["rank"] = rank

    chosen = [with_info(built[p], p, st.axis_label) for p in panels]  # ℹ §N: formula, link
    cols = columns or (len(chosen) if st.name == "lecture" else min(3, len(chosen)))
    independent = {"scale": {"color": "independent", "strokeDash": "independent"}}
    extra: dict[str, Any] = {"datasets": {"lowrank": ref_rows}} if ref_rows else {}
    return {
        "$schema": VEGA_LITE_SCHEMA,
        **extra,
        "concat": chosen,
        "columns": cols,
        "spacing": 16 if st.name == "lecture" else 10,
        "resolve": {**independent, "legend": {"color": "independent"}},
        "config": chart_config(st),
        "usermeta": {"dncFit": {"cell": size["width"] + st.extra, "max": cols}},
    }


def _gap_panel(roundoff: float | None, size: dict[str, int], st: ChartStyle) -> dict[str, Any]:
    """The relative-gap panel; below ``roundoff`` a gap counts as reached (green points)."""
    tol = float(roundoff) if roundoff is not None and roundoff > 0 else None
    floor = tol if tol is not None else LOG_FLOOR
    gap_enc = {
        "x": _X,
        "y": {
            "field": "g",
            "type": "quantitative",
            "title": "|L − L*| / L*",
            "scale": {"type": "log"},
        },
        "tooltip": _tooltip(("step", "quantitative", None), ("value", "quantitative", ".3e")),
    }
    gap_calc = {"calculate": f"max(abs(datum.value), {floor})", "as": "g"}
    below = f"datum.value < {-tol}" if tol is not None else "datum.value < 0"
    point = {"type": "point", "filled": True, "size": 16 * st.stroke**2}
    layers = [
        _unit(
            ["relative_gap"],
            ["model"],
            {"type": "line", "color": "#444", "strokeWidth": st.stroke},
            gap_enc,
            [gap_calc],
        ),
        _unit(
            ["relative_gap"],
            ["model"],
            {**point, "color": "#d62728"},
            gap_enc,
            [gap_calc, {"filter": below}],
        ),
    ]
    title = "Gap |L − L*|/L* (red: L < L*)"
    if tol is not None:
        layers.append(
            _unit(
                ["relative_gap"],
                ["model"],
                {**point, "color": "#2e7d32"},
                gap_enc,
                [gap_calc, {"filter": f"abs(datum.value) < {tol}"}],
            )
        )
        layers.append(
            {
                "data": {"values": [{"g": tol, "label": "round-off"}]},
                "mark": {"type": "rule", "color": "#2e7d32", "strokeDash": [2, 3]},
                "encoding": {
                    "y": {"field": "g", "type": "quantitative"},
                    "tooltip": _tooltip(("label", "nominal", None), ("g", "quantitative", ".0e")),
                },
            }
        )
        title = "Gap |L − L*|/L* (red: < L*; green: round-off)"
    return {"title": title, "layer": layers, **size}


def _q_panel(
    config: DUFMConfig,
    q_star: Sequence[float] | None,
    size: dict[str, int],
    line: dict[str, Any],
) -> dict[str, Any]:
    """The output-scale panel: q_k per class, and theory's q*_k as dashed rules."""
    classes = list(range(config.K))
    colour = {
        "field": "class",
        "type": "nominal",
        "title": "class k",
        "scale": {"scheme": "tableau10", "domain": classes},
        **({"legend": {"columns": 2}} if config.K > 6 else {}),
    }
    trained = {
        "data": {"name": "rows"},
        "transform": [
            {"filter": "datum.kind === 'output' && indexof(datum.metric, 'q_') === 0"},
            {"filter": _FINITE},
            {"calculate": "toNumber(substring(datum.metric, 2))", "as": "class"},
        ],
        "mark": line,
        "encoding": {
            "x": _X,
            "y": {
                "field": "value",
                "type": "quantitative",
                "title": "q_k",
                "scale": {"zero": False},
            },
            "color": colour,
            "tooltip": series_tooltip("class", "nominal", ".4f"),
        },
    }
    theory_rows = [
        {"class": k, "q_star": float(q)}
        for k, q in enumerate(q_star or ())
        if k < config.K and math.isfinite(float(q))
    ]
    if not theory_rows:
        return {"title": "Output scales q_k", **trained, **size}
    rules = {
        "data": {"values": theory_rows},
        "mark": {"type": "rule", "strokeDash": [6, 4], "strokeWidth": 2, "opacity": 0.8},
        "encoding": {
            "y": {"field": "q_star", "type": "quantitative"},
            "color": colour,
            "tooltip": _tooltip(("class", "nominal", None), ("q_star", "quantitative", ".4f")),
        },
    }
    return {"title": "Output scales q_k (dashed: theory q*_k)", "layer": [trained, rules], **size}


__all__ = [
    "BINARY_PANELS",
    "EVENT_CODES",
    "LECTURE_PANELS",
    "LIVE_TITLES",
    "MANY_PANELS",
    "STREAM_PANELS",
    "TRIVIAL_FOR_K2",
    "informative_metrics",
    "panels_for",
    "stream_spec",
]
