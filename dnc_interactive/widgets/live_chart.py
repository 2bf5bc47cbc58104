"""A live chart widget that streams training rows into vega views, offline.

:class:`LiveChart` is a small anywidget (front end: ``live_chart.js``) with two slots, each a
vega view drawn on a canvas:

* ``"stream"``: the training curves of :func:`stream_spec` (loss terms against the optimum L*,
  the relative gap, DNC1/DNC2/DNC3 per layer and the output scales q_k). New history rows are
  *inserted* into the view's ``rows`` dataset with vega changesets: nothing is re-sent and the
  view is never re-embedded while a run goes on. :class:`SeriesStore` keeps at most
  ``max_points`` points per series (older points are thinned, first and last kept) and tells
  the view which rows to drop, so a view holds a bounded number of points however long it runs.
* ``"clouds"``: the live feature clouds and the per-layer singular values of
  :func:`cloud_spec` (theory §3.2, §3.6), embedded once per run; every update replaces only its
  two small named datasets (``cloud``: at most
  :data:`~dnc_interactive.widgets.probe.CLOUD_POINTS` points; ``svals``).
* ``"snapshot"``: any altair chart (the Gram heat maps, projections, singular values or output
  scales of :mod:`dnc_interactive.charts`). Its datasets get stable names, so a new snapshot
  with the same structure only replaces the data; otherwise the spec is re-embedded.

Messages sent before a view exists are lost, so every view says "ready" and gets the current
specs and rows replayed (page reloads and second views catch up).

The JavaScript needs vega, vega-lite and vega-embed. They come from vl-convert's offline bundle
(no CDN): :func:`javascript_bundle` builds it once (~6-10 s) and caches it on disk (see
:func:`cache_dir`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import altair as alt
import anywidget
import traitlets

from dnc_interactive.charts import metric_title
from dnc_interactive.config import DUFMConfig
from dnc_interactive.diagnosis import CODES as DIAGNOSIS_CODES

JS_PATH = Path(__file__).with_name("live_chart.js")
CSS_PATH = Path(__file__).with_name("live_chart.css")

#: Points kept per streamed series (layer, kind, metric).
DEFAULT_MAX_POINTS = 200
#: Values at or below this floor are drawn at the floor on log scales.
LOG_FLOOR = 1e-16

_MODEL_METRICS = ("loss", "fit", "reg", "relative_gap")
#: An "event" row's value indexes the diagnosis codes (theory §8).
EVENT_CODES = DIAGNOSIS_CODES
_STREAMED = {
    "model": {*_MODEL_METRICS, "optimal_loss", "restart"},
    "event": {"diagnosis", "collapsed"},
    "pre": {"nc1", "rank"},
    "post": {"nc1", "nc2_orth", "rank"},
    "weight": {"nc3"},
}

#: Metrics that are identically 0 for K = 2 whatever the data (theory §3.3: the global mean of
#: two class means is their midpoint, so the centred means are antipodal: a simplex ETF with
#: equal norms and cosine −1). The dashboard never draws them for K = 2.
TRIVIAL_FOR_K2: frozenset[str] = frozenset({"nc2_etf", "equinorm", "coherence"})


def informative_metrics(num_classes: int, metrics: Sequence[str]) -> list[str]:
    """``metrics`` without those that are identically 0 for ``num_classes`` (for K = 2:
    :data:`TRIVIAL_FOR_K2`), in their order (theory §3.3)."""
    trivial = TRIVIAL_FOR_K2 if num_classes <= 2 else frozenset()
    return [m for m in metrics if m not in trivial]


_BUNDLES: dict[str, str] = {}


# ---------------------------------------------------------------------- offline JS bundle
def cache_dir() -> Path:
    """Where the offline JavaScript bundle is cached: ``$DNC_INTERACTIVE_CACHE``, else
    ``$XDG_CACHE_HOME/dnc-interactive`` (default ``~/.cache/dnc-interactive``); a temporary
    directory when that is not writable."""
    env = os.environ.get("DNC_INTERACTIVE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dnc-interactive"


def _vl_version() -> str | None:
    try:
        from altair.utils._importers import vl_version_for_vl_convert

        return vl_version_for_vl_convert()
    except Exception:  # pragma: no cover - older altair
        return None


def javascript_bundle(source: str | None = None) -> str:
    """The live chart's ES module with vega, vega-lite and vega-embed bundled in (offline).

    Built by ``vl_convert.javascript_bundle`` from ``live_chart.js`` (or ``source``) and cached
    in memory and on disk, keyed by the source, the vl-convert version and the Vega-Lite
    version, so only the first call on a machine pays the ~6-10 s of bundling.
    """
    import vl_convert as vlc

    source = JS_PATH.read_text(encoding="utf-8") if source is None else source
    vl_version = _vl_version()
    key = hashlib.sha256(
        # vl_convert's stub omits __version__, which the module has
        "\n".join([source, vlc.__version__, str(vl_version)]).encode("utf-8")  # type: ignore[attr-defined]
    ).hexdigest()[:20]
    if key in _BUNDLES:
        return _BUNDLES[key]
    candidates = [cache_dir(), Path(tempfile.gettempdir()) / "dnc-interactive-cache"]
    for folder in candidates:
        path = folder / f"live_chart-{key}.js"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if text:
                _BUNDLES[key] = text
                return text
    body = "\n".join(
        line for line in source.splitlines() if not line.lstrip().startswith("import ")
    )
    text = (
        vlc.javascript_bundle(body, vl_version=vl_version)
        if vl_version
        else (vlc.javascript_bundle(body))
    )
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".live_chart-{key}.{os.getpid()}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, folder / f"live_chart-{key}.js")
            break
        except OSError:
            continue
    _BUNDLES[key] = text
    return text


# ---------------------------------------------------------------------- streamed rows
def is_streamed(kind: str, metric: str) -> bool:
    """Whether a history row of this kind and metric is drawn by :func:`stream_spec`."""
    if kind == "output":
        return metric.startswith("q_")
    return metric in _STREAMED.get(kind, ())


def _clean(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class SeriesStore:
    """The rows a stream view holds, at most ``max_points`` per (layer, kind, metric) series.

    :meth:`add` returns the rows to insert and the ids to remove; when a series outgrows its
    budget every other point is dropped (the first and the latest are always kept), so the
    newest stretch stays dense and old stretches thin out.
    """

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if not (isinstance(max_points, int) and max_points >= 4):
            raise ValueError(f"max_points={max_points!r} is not valid: expected an int >= 4")
        self.max_points = max_points
        self.series: dict[tuple[int, str, str], list[list]] = {}
        self.next_id = 0

    def clear(self) -> None:
        self.series = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self.series.values())

    def add(self, rows: Iterable[Sequence]) -> tuple[list[list], list[int]]:
        """Store history rows ``(step, layer, kind, metric, value)`` that are streamed.

        Returns ``(inserted, removed_ids)``; inserted rows are ``[id, step, layer, kind,
        metric, value]`` with non-finite values as None.
        """
        inserted: list[list] = []
        touched: set[tuple[int, str, str]] = set()
        for step, layer, kind, metric, value in rows:
            if not is_streamed(kind, metric):
                continue
            record = [self.next_id, int(step), int(layer), kind, metric, _clean(value)]
            self.next_id += 1
            key = (int(layer), kind, metric)
            self.series.setdefault(key, []).append(record)
            inserted.append(record)
            touched.add(key)
        removed: set[int] = set()
        for key in touched:
            series = self.series[key]
            if len(series) > self.max_points:
                keep = [series[0], *series[2:-1:2], series[-1]]
                kept = {id(r) for r in keep}
                removed.update(r[0] for r in series if id(r) not in kept)
                self.series[key] = keep
        new_ids = {r[0] for r in inserted}
        if removed:
            inserted = [r for r in inserted if r[0] not in removed]
        return inserted, sorted(removed - new_ids)

    def rows(self) -> list[list]:
        """Every row held, in insertion order."""
        out = [r for s in self.series.values() for r in s]
        out.sort(key=lambda r: r[0])
        return out


# ---------------------------------------------------------------------- the streamed spec
# Written as plain Vega-Lite dicts: building it with altair's classes costs ~0.3-1 s (deep
# copies in concat charts), too slow for a reset on every slider move.
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
def panels_for(config: DUFMConfig, lecture: bool = False) -> tuple[str, ...]:
    """The live panels of ``config``: the lecture's two, or the default layout's six — for
    K > 2 the per-layer rank of the class means (theory §3.6, §5: low-rank solutions) in place
    of DNC3 (which the exported training figure keeps), and never a metric that is
    identically 0 for this K (:func:`informative_metrics`)."""
    if lecture:
        return LECTURE_PANELS
    chosen = MANY_PANELS if config.K > 2 else BINARY_PANELS
    return tuple(informative_metrics(config.K, chosen))


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
                "tooltip": _tooltip(
                    ("step", "quantitative", None),
                    ("metric", "nominal", None),
                    ("value", "quantitative", ".6e"),
                ),
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
            "color": {
                "field": "layer",
                "type": "ordinal",
                "title": "layer l",
                "scale": {
                    "scheme": {"name": "viridis", "extent": [0.0, 0.85]},
                    "domain": list(range(1, L + 1)),
                },
                **({"legend": colour_legend} if legend and colour_legend else {}),
                **({} if legend else {"legend": None}),
            },
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

    chosen = [built[p] for p in panels]
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
        title = "Gap |L − L*|/L* (red: L < L*; green: reached, round-off)"
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
            "tooltip": _tooltip(
                ("step", "quantitative", None),
                ("class", "nominal", None),
                ("value", "quantitative", ".4f"),
            ),
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


# ---------------------------------------------------------------------- feature clouds
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
                            "tooltip": _tooltip(("c", "nominal", None)),
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
                            "tooltip": _tooltip(
                                ("c", "nominal", None),
                                ("x", "quantitative", ".3g"),
                                ("y", "quantitative", ".3g"),
                            ),
                        },
                    },
                ],
            }
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
            "color": {
                "field": "l",
                "type": "ordinal",
                "title": "layer l",
                "scale": {
                    "scheme": {"name": "viridis", "extent": [0.0, 0.85]},
                    "domain": list(range(1, L + 1)),
                },
            },
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
            }
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


# ---------------------------------------------------------------------- snapshots
def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def split_datasets(spec: dict[str, Any]) -> tuple[str, dict[str, list], dict[str, Any]]:
    """Give a spec's inline datasets stable names (``snap_0``, ``snap_1``, ...).

    Returns ``(skeleton, datasets, spec)``: the spec without its data as a JSON string (two
    snapshots with equal skeletons differ only in their data), the renamed datasets and the
    full renamed spec.
    """
    datasets = spec.get("datasets") or {}
    rename = {old: f"snap_{i}" for i, old in enumerate(datasets)}

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {
                k: (rename[v] if k == "name" and isinstance(v, str) and v in rename else walk(v))
                for k, v in obj.items()
                if k != "datasets"
            }
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    body = _json_safe(walk(spec))
    renamed = {rename[k]: _json_safe(v) for k, v in datasets.items()}
    skeleton = json.dumps(body, sort_keys=True)
    return skeleton, renamed, {**body, "datasets": renamed} if renamed else body


# ---------------------------------------------------------------------- the widget
class LiveChart(anywidget.AnyWidget):
    """Vega views fed from Python: streamed training rows and replaceable snapshots.

    Args:
        max_points: points kept per streamed series (see :class:`SeriesStore`).
    """

    _css = CSS_PATH.read_text(encoding="utf-8")
    #: Number of messages sent to the front end (for tests and benchmarks).
    messages = traitlets.Int(0)

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS, **kwargs: Any) -> None:
        self._esm = javascript_bundle()
        super().__init__(**kwargs)
        self.store = SeriesStore(max_points)
        self.stream_spec: dict[str, Any] | None = None
        self.snapshot_spec: dict[str, Any] | None = None
        self._snapshot_skeleton: str | None = None
        self.clouds_spec: dict[str, Any] | None = None
        self.upto: int | None = None
        self.views: set[str] = set()
        self.on_msg(self._on_message)

    # -------------------------------------------------------------- python -> views
    def _post(self, message: dict[str, Any]) -> None:
        self.messages += 1
        self.send(message)

    def set_stream(self, spec: dict[str, Any]) -> None:
        """Embed a new stream spec and drop every streamed row (a new run)."""
        self.stream_spec = spec
        self.upto = None
        self.store.clear()
        self._post({"type": "spec", "slot": "stream", "spec": spec})

    def push(self, rows: Iterable[Sequence]) -> int:
        """Stream history rows ``(step, layer, kind, metric, value)``; returns how many of
        them were sent (rows of metrics that are not drawn are skipped)."""
        inserted, removed = self.store.add(rows)
        if self.upto is not None:  # a replay is shown: the rows wait in the store
            return 0
        if inserted or removed:
            self._post({"type": "rows", "slot": "stream", "rows": inserted, "remove": removed})
        return len(inserted)

    def set_stream_data(self, datasets: dict[str, list[dict[str, Any]]]) -> None:
        """Replace named datasets of the stream view (e.g. ``lowrank``, the loss chart's
        low-rank reference) without re-embedding it."""
        if self.stream_spec is None:
            return
        held = self.stream_spec.setdefault("datasets", {})
        held.update(_json_safe(datasets))
        self._post({"type": "data", "slot": "stream", "datasets": _json_safe(datasets)})

    def show_upto(self, step: int | None) -> int:
        """Show the streamed rows up to ``step`` only (a replay of the history), or every row
        again (``None``). Returns how many rows the view now holds."""
        self.upto = step
        rows = self.store.rows()
        if step is not None:
            rows = [r for r in rows if r[1] <= step]
        self._post({"type": "rows", "slot": "stream", "rows": rows, "remove": [], "reset": True})
        return len(rows)

    def set_clouds(self, spec: dict[str, Any] | None) -> None:
        """Embed a :func:`cloud_spec` in the clouds slot (None clears it)."""
        self.clouds_spec = spec
        self._post({"type": "spec", "slot": "clouds", "spec": spec})

    def update_clouds(self, datasets: dict[str, list[dict[str, Any]]]) -> None:
        """Replace the clouds slot's data (``cloud`` and ``svals``, those its spec has) in
        place."""
        if self.clouds_spec is None:
            return
        held = self.clouds_spec["datasets"]
        clean = {k: v for k, v in _json_safe(datasets).items() if k in held}
        self.clouds_spec["datasets"].update(clean)
        self._post({"type": "data", "slot": "clouds", "datasets": clean})

    def set_snapshot(self, chart: alt.TopLevelMixin | dict[str, Any] | None) -> str:
        """Show an altair chart (or a Vega-Lite dict) in the snapshot slot; None clears it.

        Returns ``"data"`` when only the datasets were replaced, ``"spec"`` when the view
        was re-embedded.
        """
        if chart is None:
            self.snapshot_spec = None
            self._snapshot_skeleton = None
            self._post({"type": "spec", "slot": "snapshot", "spec": None})
            return "spec"
        spec = chart if isinstance(chart, dict) else chart.to_dict(validate=False)
        skeleton, datasets, full = split_datasets(spec)
        self.snapshot_spec = full
        if skeleton == self._snapshot_skeleton and datasets:
            self._post({"type": "data", "slot": "snapshot", "datasets": datasets})
            return "data"
        self._snapshot_skeleton = skeleton
        self._post({"type": "spec", "slot": "snapshot", "spec": full})
        return "spec"

    # -------------------------------------------------------------- views -> python
    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ready":
            self.replay(str(content.get("id", "")))

    def replay(self, target: str) -> None:
        """Send the current specs and every held row to the view ``target``."""
        self.views.add(target)
        if self.stream_spec is not None:
            self._post(
                {"type": "spec", "slot": "stream", "spec": self.stream_spec, "target": target}
            )
            rows = self.store.rows()
            if self.upto is not None:
                rows = [r for r in rows if r[1] <= self.upto]
            self._post(
                {
                    "type": "rows",
                    "slot": "stream",
                    "rows": rows,
                    "remove": [],
                    "reset": True,
                    "target": target,
                }
            )
        if self.clouds_spec is not None:
            self._post(
                {"type": "spec", "slot": "clouds", "spec": self.clouds_spec, "target": target}
            )
        if self.snapshot_spec is not None:
            self._post(
                {"type": "spec", "slot": "snapshot", "spec": self.snapshot_spec, "target": target}
            )


__all__ = [
    "BINARY_PANELS",
    "CLOUD_SIZE",
    "DEFAULT_MAX_POINTS",
    "LECTURE_PANELS",
    "MANY_PANELS",
    "TRIVIAL_FOR_K2",
    "cloud_panel_title",
    "cloud_spec",
    "informative_metrics",
    "panels_for",
    "STREAM_PANELS",
    "STYLES",
    "ChartStyle",
    "chart_config",
    "chart_style",
    "LiveChart",
    "SeriesStore",
    "cache_dir",
    "is_streamed",
    "javascript_bundle",
    "split_datasets",
    "stream_spec",
]
