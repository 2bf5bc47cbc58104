"""What every Vega-Lite spec of the live chart shares: the layouts' chart styles (panel
sizes, fonts, line widths) and the small builders of units, tooltips and log axes.

The specs are written as plain Vega-Lite dicts: building them with altair's classes costs
~0.3-1 s (deep copies in concat charts), too slow for a reset on every slider move.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Values at or below this floor are drawn at the floor on log scales.
LOG_FLOOR = 1e-16

VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
_FINITE = "isValid(datum.value) && isFinite(datum.value)"
_X = {"field": "step", "type": "quantitative", "title": "step"}
#: Log axes: decades only, 1, 0.1, 0.01, then 1e-3, 1e-4, ... (short labels at large fonts).
_LOG_AXIS = {
    "labelExpr": "abs(log(datum.value) / LN10 - round(log(datum.value) / LN10)) > 1e-6 ? ''"
    " : datum.value >= 0.01 ? format(datum.value, '~g') : format(datum.value, '.0e')"
}


def _one_of(field: str, values: Sequence[str]) -> dict[str, Any]:
    return {"filter": {"field": field, "oneOf": list(values)}}


def _unit(
    metrics: Sequence[str], kinds: Sequence[str], mark: Any, encoding: dict, extra: Sequence = ()
) -> dict[str, Any]:
    return {
        "data": {"name": "rows"},
        "transform": [
            _one_of("metric", metrics),
            _one_of("kind", kinds),
            {"filter": _FINITE},
            {"calculate": f"max(datum.value, {LOG_FLOOR})", "as": "v"},
            *extra,
        ],
        "mark": mark,
        "encoding": encoding,
    }


def _tooltip(*fields: tuple[str, str, str | None]) -> list[dict[str, Any]]:
    out = []
    for name, kind, fmt in fields:
        t: dict[str, Any] = {"field": name, "type": kind}
        if fmt:
            t["format"] = fmt
        out.append(t)
    return out


@dataclass(frozen=True)
class ChartStyle:
    """Panel size (pixels of the plot area), font sizes and line width of one layout."""

    name: str
    width: int
    height: int
    axis_label: int
    axis_title: int
    title: int
    legend: int
    stroke: float
    #: Pixels a panel needs besides its plot width (axis, legend): the front end fits as
    #: many columns as the page width allows.
    extra: int


#: The chart styles of the dashboard's layouts (see :mod:`dnc_interactive.widgets.layout`).
STYLES: dict[str, ChartStyle] = {
    "default": ChartStyle("default", 150, 120, 12, 13, 14, 12, 1.5, 140),
    "lecture": ChartStyle("lecture", 400, 150, 18, 20, 22, 18, 3.0, 200),
}


def chart_style(style: str | ChartStyle) -> ChartStyle:
    """The :class:`ChartStyle` named ``style`` (``ValueError`` naming the allowed ones)."""
    if isinstance(style, ChartStyle):
        return style
    if style not in STYLES:
        raise ValueError(f"style={style!r} is not valid: expected one of {tuple(STYLES)}")
    return STYLES[style]


def chart_config(style: str | ChartStyle = "default") -> dict[str, Any]:
    """The Vega-Lite ``config`` (fonts, view stroke) of a layout's charts."""
    st = chart_style(style)
    axis = {"labelFontSize": st.axis_label, "titleFontSize": st.axis_title}
    return {
        "view": {"stroke": "#ddd"},
        "title": {"fontSize": st.title, "anchor": "start", "limit": 0},
        "axis": axis,
        "legend": {"labelFontSize": st.legend, "titleFontSize": st.legend, "symbolSize": 90},
        "header": {"labelFontSize": st.axis_title, "titleFontSize": st.axis_title},
        "text": {"fontSize": st.axis_label},
    }


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def series_tooltip(by: str, kind: str, fmt: str) -> list[dict[str, Any]]:
    """The hover readout of a streamed series: the step, what tells the lines apart
    (``by``, of Vega-Lite type ``kind``) and the exact value (``fmt``)."""
    return _tooltip(
        ("step", "quantitative", None), (by, kind, None), ("value", "quantitative", fmt)
    )


def layer_colour(field: str, L: int, **extra: Any) -> dict[str, Any]:
    """Colour by layer l = 1..L (viridis, the same in every panel)."""
    return {
        "field": field,
        "type": "ordinal",
        "title": "layer l",
        "scale": {
            "scheme": {"name": "viridis", "extent": [0.0, 0.85]},
            "domain": list(range(1, L + 1)),
        },
        **extra,
    }


__all__ = [
    "LOG_FLOOR",
    "STYLES",
    "VEGA_LITE_SCHEMA",
    "ChartStyle",
    "chart_config",
    "chart_style",
    "layer_colour",
    "series_tooltip",
]
