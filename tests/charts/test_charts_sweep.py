"""Tests of the sweep charts: phase diagrams and side-by-side composition."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest
from chart_helpers import rows_of, views_with_mark

from dnc_interactive.charts import output_scale_chart, phase_diagram, side_by_side


def _sweep() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lambda": [1e-3, 1e-3, 1e-3, 1e-2, 1e-2, 1e-2, 1e-1],
            "depth": [2, 2, 3, 2, 3, 3, 2],
            "gap": [1e-8, 3e-8, 0.0, 0.1, np.nan, np.inf, 2e-2],
        }
    )


def test_phase_diagram_averages_repeats_and_uses_ordinal_axes():
    chart = phase_diagram(_sweep(), "lambda", "depth", "gap", text=True, x_title="λ")
    assert isinstance(chart, alt.LayerChart)
    spec = chart.to_dict()
    (rect,) = views_with_mark(spec, "rect")
    assert rect["encoding"]["x"]["type"] == "ordinal" and rect["encoding"]["x"]["title"] == "λ"
    assert rect["encoding"]["y"]["sort"] == "descending"
    assert rect["encoding"]["color"]["field"] == "mean"
    cells = {(r["lambda"], r["depth"]): r for r in rows_of(spec)}
    assert cells[(1e-3, 2)]["mean"] == pytest.approx(2e-8) and cells[(1e-3, 2)]["runs"] == 2
    assert (1e-2, 3) not in cells  # NaN and inf dropped
    assert views_with_mark(spec, "text")


def test_phase_diagram_log_colour_and_validation():
    spec = phase_diagram(_sweep(), "lambda", "depth", "gap", log_color=True).to_dict()
    assert spec["encoding"]["color"]["scale"]["type"] == "log"
    assert min(r["mean"] for r in rows_of(spec)) > 0  # the 0 was clipped
    with pytest.raises(ValueError, match="frame"):
        phase_diagram(_sweep().iloc[:0], "lambda", "depth", "gap")
    with pytest.raises(ValueError, match="'width'"):
        phase_diagram(_sweep(), "width", "depth", "gap")


def test_side_by_side_titles_and_validation():
    q = pd.DataFrame({"label": [0, 1], "n": [5, 5], "q": [0.5, 0.6]})
    left = output_scale_chart(q)
    right = phase_diagram(_sweep(), "lambda", "depth", "gap")
    chart = side_by_side(left, right, ("trained", "sweep"))
    assert isinstance(chart, alt.HConcatChart)
    spec = chart.to_dict()
    assert [panel["title"] for panel in spec["hconcat"]] == ["trained", "sweep"]
    assert spec["resolve"]["scale"]["color"] == "independent"
    with pytest.raises(ValueError, match="titles"):
        side_by_side(left, right, ("only one",))
    with pytest.raises(TypeError, match="right"):
        side_by_side(left, q)
