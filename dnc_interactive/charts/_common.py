"""Shared pieces of the chart builders: theme constants, titles, validation and cleaning.

Everything here works on pandas objects only; nothing imports torch. The metric titles and
log/linear scales come from the package's torch-free vocabulary, :mod:`dnc_interactive.schema`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import altair as alt
import numpy as np
import pandas as pd

from dnc_interactive import schema as _schema

#: Values at or below this floor are drawn at the floor on log scales.
LOG_FLOOR: float = 1e-16

#: Rows a chart may hold in total; altair refuses more than 5 000 by default.
MAX_CHART_ROWS: int = 4000

#: Default number of points kept per (layer, kind, metric) series.
DEFAULT_MAX_POINTS: int = 300

#: Size of one panel, in pixels, chosen for a notebook cell.
PANEL_WIDTH: int = 260
PANEL_HEIGHT: int = 180
SMALL_PANEL: int = 150

#: Sequential colour scheme for layers (the yellow end of viridis is cut: it is unreadable
#: on white).
LAYER_SCHEME = alt.SchemeParams(name="viridis", extent=[0.0, 0.85])

#: Categorical colour scheme for classes.
CLASS_SCHEME: str = "tableau10"

#: Diverging colour scheme for Gram matrices (blue negative, red positive).
DIVERGING_SCHEME: str = "redblue"

#: Stroke dash per feature kind: pre-ReLU dashed, everything else solid.
KIND_DASH: dict[str, list[float]] = {
    "post": [1, 0],
    "pre": [5, 3],
    "weight": [1, 0],
    "output": [1, 0],
    "model": [1, 0],
}

#: Readable panel titles with the paper's symbols, keyed by metric name (from the metric
#: registry, :data:`dnc_interactive.schema.METRICS`).
METRIC_TITLES: dict[str, str] = dict(_schema.METRIC_TITLES)

#: Metrics drawn on a linear y scale (counts and fractions, often exactly 0 at collapse);
#: the output scales ``q_k`` are linear too (see :func:`is_linear_metric`). From the registry.
LINEAR_METRICS: frozenset[str] = _schema.LINEAR_METRICS

HISTORY_COLUMNS: tuple[str, ...] = _schema.HISTORY_COLUMNS


def metric_title(metric: str) -> str:
    """Return the readable title of ``metric`` (``q_k`` included), or the name itself."""
    return _schema.metric_title(metric)


def is_linear_metric(metric: str) -> bool:
    """Whether ``metric`` is drawn on a linear scale (rank, NC4, output scales q_k)."""
    info = _schema.metric_info(metric)
    return info is not None and not info.log_scale and info.kinds != ("model",)


def require_frame(frame: object, name: str, columns: Iterable[str]) -> pd.DataFrame:
    """Check that ``frame`` is a non-empty DataFrame holding ``columns``.

    Raises:
        TypeError: if ``frame`` is not a DataFrame.
        ValueError: naming ``name`` if it is empty, or naming the first missing column.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{name} is missing column {missing[0]!r} (needs {list(columns)}, "
            f"has {list(frame.columns)})"
        )
    if frame.empty:
        raise ValueError(f"{name} is empty: there is nothing to chart")
    return frame


def finite_values(frame: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """Return a copy of ``frame`` with ``column`` as float and its non-finite rows dropped."""
    out = frame.copy()
    out[column] = pd.to_numeric(out[column], errors="coerce").astype(float)
    return out[np.isfinite(out[column].to_numpy())]


def log_safe(frame: pd.DataFrame, column: str = "value", floor: float = LOG_FLOOR) -> pd.DataFrame:
    """Make ``column`` drawable on a log scale: drop non-finite rows, clip below at ``floor``."""
    out = finite_values(frame, column)
    out[column] = out[column].clip(lower=floor)
    return out


def kind_dash_scale(kinds: Sequence[str]) -> alt.Scale:
    """A stroke-dash scale over the kinds present: pre dashed, post/weight/output solid."""
    domain = [k for k in KIND_DASH if k in set(kinds)] + sorted(
        k for k in set(kinds) if k not in KIND_DASH
    )
    return alt.Scale(domain=domain, range=[KIND_DASH.get(k, [2, 2]) for k in domain])


def layer_color(layers: Iterable[int], title: str = "layer l", legend: bool = True) -> alt.Color:
    """Colour encoding with one colour per layer from the sequential layer scheme."""
    domain = sorted({int(v) for v in layers})
    return alt.Color(
        "layer:O",
        title=title,
        scale=alt.Scale(scheme=LAYER_SCHEME, domain=domain),
        legend=alt.Legend() if legend else None,
    )
