"""The Vega-Lite spec of the live feature clouds and the per-layer singular values
(:func:`cloud_spec`, theory §3.2, §3.6): embedded once per run, then only its small named
datasets (``cloud``, ``svals``) are replaced."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dnc_interactive.widgets.specs import (
    _LOG_AXIS,
    VEGA_LITE_SCHEMA,
    ChartStyle,
    _json_safe,
    _tooltip,
    chart_config,
    chart_style,
    layer_colour,
)
from dnc_interactive.widgets.theory_links import with_info

#: Plot size (pixels) of one cloud panel per layout style.
CLOUD_SIZE = {"default": 160, "lecture": 230}


def _class_colour(K: int) -> dict[str, Any]:
    scheme = "tableau10" if K <= 10 else "category20"
    legend: dict[str, Any] = {"columns": 2} if K > 6 else {}
    return {
        "field": "c",
        "type": "nominal",
        "title": "class",
        "scale": {"scheme": scheme, "domain": list(range(K))},
        **({"legend": legend} if legend else {}),
    }


def cloud_panel_title(layer: int, kind: str, K: int) -> str:
    """'H_4 (post-ReLU), plane of μ₀, μ₁' and the like (theory §3.2)."""
    what = f"H̃_{layer} (pre-ReLU)" if kind == "pre" and layer > 1 else f"H_{layer}"
    if kind == "post" and layer > 1:
        what += " (post-ReLU)"
    frame = "plane of μ₀, μ₁" if K == 2 else "class-anchored axes"
    return f"{what}, {frame}"


def cloud_spec(
    K: int,
    L: int,
    panels: Sequence[tuple[int, str]],
    domains: Sequence[tuple[float, float, float, float]],
    targets: list[dict[str, Any]],
    *,
    style: str | ChartStyle = "default",
    singular_values: bool = True,
    columns: int | None = None,
) -> dict[str, Any]:
    """The Vega-Lite spec of the live feature clouds (theory §3.2, §2.3) and, with
    ``singular_values``, the per-layer singular-value panel (theory §3.6).

    One panel per ``(layer, kind)`` of ``panels``: every tracked sample (dataset ``cloud``,
    ``m == 0``) as a small dot coloured by class, the class means (``m == 1``) as diamonds and
    the theory's target (dataset ``target``: the optimum's class means as hollow diamonds and
    the polygon or circle through them, faint), on fixed axes (``domains``, clamped: a point
    outside is drawn at the border). The singular-value panel draws σ_i/σ_1 of M̃_l (dashed)
    and M_l (solid) per layer (dataset ``svals``) against i, with the rank cut-off 1e-3 as a
    rule. The datasets are named so that an update replaces only ``cloud`` and ``svals``.
    """
    st = chart_style(style)
    size = CLOUD_SIZE.get(st.name, CLOUD_SIZE["default"])
    colour = _class_colour(K)
    built: list[dict[str, Any]] = []
    where = _tooltip(
        ("c", "nominal", None), ("x", "quantitative", ".4g"), ("y", "quantitative", ".4g")
    )
    for i, ((layer, kind), (x0, x1, y0, y1)) in enumerate(zip(panels, domains, strict=True)):
        ratio = (y1 - y0) / (x1 - x0) if x1 > x0 else 1.0
        x = {
            "field": "x",
            "type": "quantitative",
            "title": None,
            "scale": {"domain": [x0, x1], "clamp": True, "nice": False, "zero": False},
            "axis": {"tickCount": 3, "format": "~g"},
        }
        y = {
            **x,
            "field": "y",
            "scale": {"domain": [y0, y1], "clamp": True, "nice": False, "zero": False},
        }
        mine = {"filter": f"datum.p === {i}"}
        built.append(
            with_info(
                {
                    "title": cloud_panel_title(layer, kind, K),
                    "width": size,
                    "height": round(size * ratio),
                    "layer": [
                        {
                            "data": {"name": "target"},
                            "transform": [mine, {"filter": "datum.o >= 0"}],
                            "mark": {
                                "type": "line",
                                "color": "#9a9a9a",
                                "strokeDash": [3, 3],
                                "opacity": 0.6,
                                "strokeWidth": 1,
                            },
                            "encoding": {
                                "x": x,
                                "y": y,
                                "detail": {"field": "g", "type": "nominal"},
                                "order": {"field": "o", "type": "quantitative"},
                            },
                        },
                        {
                            "data": {"name": "target"},
                            "transform": [mine, {"filter": "datum.o < 0"}],
                            "mark": {
                                "type": "point",
                                "shape": "diamond",
                                "filled": False,
                                "size": 1.6 * size,
                                "strokeWidth": 1.5,
                                "opacity": 0.45,
                            },
                            "encoding": {"x": x, "y": y, "color": {**colour, "legend": None}},
                        },
                        {
                            "data": {"name": "cloud"},
                            "transform": [mine, {"filter": "datum.m === 0"}],
                            "mark": {"type": "circle", "size": 0.12 * size, "opacity": 0.6},
                            "encoding": {
                                "x": x,
                                "y": y,
                                "color": colour,
                                "tooltip": where,
                            },
                        },
                        {
                            "data": {"name": "cloud"},
                            "transform": [mine, {"filter": "datum.m === 1"}],
                            "mark": {
                                "type": "point",
                                "shape": "diamond",
                                "filled": True,
                                "size": 0.9 * size,
                                "stroke": "black",
                                "strokeWidth": 1,
                                "opacity": 1,
                            },
                            "encoding": {
                                "x": x,
                                "y": y,
                                "color": {**colour, "legend": None},
                                "tooltip": where,
                            },
                        },
                    ],
                },
                "clouds",
                st.axis_label,
            )
        )
    if singular_values:
        enc: dict[str, Any] = {
            "x": {
                "field": "i",
                "type": "quantitative",
                "title": "i",
                "scale": {"domain": [1, max(K, 2)], "nice": False},
                "axis": {"tickMinStep": 1, "format": "d"},
            },
            "y": {
                "field": "s",
                "type": "quantitative",
                "title": "σ_i / σ_1",
                "scale": {"type": "log", "domain": [1e-8, 1.5], "clamp": True},
                "axis": _LOG_AXIS,
            },
            "color": layer_colour("l", L),
            "strokeDash": {
                "field": "k",
                "type": "nominal",
                "title": "features",
                "scale": {"domain": ["post", "pre"], "range": [[1, 0], [5, 3]]},
                "legend": {
                    "symbolType": "stroke",
                    "symbolStrokeColor": "#444",
                    "symbolStrokeWidth": 2,
                },
            },
            "tooltip": _tooltip(
                ("l", "ordinal", None),
                ("k", "nominal", None),
                ("i", "quantitative", None),
                ("s", "quantitative", ".2e"),
            ),
        }
        built.append(
            with_info(
                {
                    "title": "Singular values of M̃_l, M_l (rule: rank cut-off)",
                    "width": st.width,
                    "height": size,
                    "layer": [
                        {
                            "data": {"name": "svals"},
                            "mark": {"type": "line", "point": True, "strokeWidth": st.stroke},
                            "encoding": enc,
                        },
                        {
                            "data": {"values": [{"s": 1e-3}]},
                            "mark": {"type": "rule", "color": "#b00020", "strokeDash": [4, 3]},
                            "encoding": {"y": {"field": "s", "type": "quantitative"}},
                        },
                    ],
                },
                "svals",
                st.axis_label,
            )
        )
    datasets: dict[str, list[dict[str, Any]]] = {"cloud": [], "target": _json_safe(targets)}
    if singular_values:
        datasets["svals"] = []
    if len(built) == 1:
        return {
            "$schema": VEGA_LITE_SCHEMA,
            "datasets": datasets,
            **built[0],
            "config": chart_config(st),
        }
    cell = size + st.extra
    cols = columns or min(len(built), 4)
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "datasets": datasets,
        "concat": built,
        "columns": cols,
        "spacing": 10,
        "resolve": {"scale": {"color": "independent", "strokeDash": "independent"}},
        "config": chart_config(st),
        "usermeta": {"dncFit": {"cell": cell, "max": cols}},
    }


__all__ = ["CLOUD_SIZE", "cloud_panel_title", "cloud_spec"]
