"""Altair chart builders: pure functions from tidy pandas DataFrames to altair charts.

History charts (:mod:`.training`): :func:`loss_chart`, :func:`metric_chart` and
:func:`downsample_history`. Snapshot charts (:mod:`.snapshot`): :func:`gram_heatmap`,
:func:`projection_chart`, :func:`singular_value_chart`, :func:`output_scale_chart`.
Sweep charts (:mod:`.sweep`): :func:`phase_diagram`, :func:`side_by_side`. Offline display
and export (:mod:`.render`): :func:`enable_offline`, :func:`save_chart`,
:func:`chart_to_png_bytes`, :func:`chart_to_svg`.

This package imports neither torch nor the rest of ``dnc_interactive``.
"""

from ._common import LOG_FLOOR, MAX_CHART_ROWS, METRIC_TITLES, metric_title
from .render import SAVE_FORMATS, chart_to_png_bytes, chart_to_svg, enable_offline, save_chart
from .snapshot import (
    gram_heatmap,
    ideal_gram,
    output_scale_chart,
    projection_chart,
    singular_value_chart,
)
from .sweep import phase_diagram, side_by_side
from .training import downsample_history, loss_chart, metric_chart

__all__ = [
    "LOG_FLOOR",
    "MAX_CHART_ROWS",
    "METRIC_TITLES",
    "SAVE_FORMATS",
    "chart_to_png_bytes",
    "chart_to_svg",
    "downsample_history",
    "enable_offline",
    "gram_heatmap",
    "ideal_gram",
    "loss_chart",
    "metric_chart",
    "metric_title",
    "output_scale_chart",
    "phase_diagram",
    "projection_chart",
    "save_chart",
    "side_by_side",
    "singular_value_chart",
]
