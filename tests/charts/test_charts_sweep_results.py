"""Sweep-result charts (dnc_interactive.charts.sweep_results): theory vs GD heat maps, rank vs
lambda, P(DNC) vs width, L_SRG / L_DNC vs r."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest
from chart_helpers import rows_of, views_with_mark

from dnc_interactive.charts.sweep_results import (
    dnc_probability_chart,
    rank_chart,
    srg_ratio_chart,
    theory_vs_gd,
)


def _theory() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lambda": [1e-3, 1e-3, 4e-3, 4e-3],
            "depth": [3, 4, 3, 4],
            "srg_ratio": [1.05, 0.95, 1.06, 0.91],
            "predicted_dnc": [True, False, True, False],
        }
    )


def _runs() -> pd.DataFrame:
    # two seeds per cell; (4e-3, 4) has one DNC seed of two, (1e-3, 3) both DNC
    return pd.DataFrame(
        {
            "lambda": [1e-3] * 4 + [4e-3] * 4,
            "depth": [3, 3, 4, 4, 3, 3, 4, 4],
            "seed": [0, 1] * 4,
            "is_dnc": [True, True, True, False, True, True, True, False],
            "rank": [10, 10, 10, 7, 10, 10, 10, 6],
            "loss_ratio": [1.0, 1.0, 1.0, 0.93, 1.0, 1.0, 1.0, 0.89],
            "status": ["max_steps"] * 7 + ["diverged"],
        }
    )


def test_theory_vs_gd_side_by_side_averages_seeds_to_a_probability():
    chart = theory_vs_gd(_theory(), _runs())
    assert isinstance(chart, alt.HConcatChart)
    spec = chart.to_dict()
    left, right = spec["hconcat"]
    assert left["title"] == "theory: L_SRG / L_DNC"
    assert right["title"] == "gradient descent: P(DNC) over seeds"
    assert spec["resolve"]["scale"]["color"] == "independent"
    (rect_r,) = views_with_mark(right, "rect")
    cells = {(r["lambda"], r["depth"]): r for r in rows_of(spec, rect_r)}
    assert cells[(1e-3, 3)]["mean"] == 1.0 and cells[(1e-3, 4)]["mean"] == 0.5
    assert cells[(4e-3, 4)]["runs"] == 2
    (rect_l,) = views_with_mark(left, "rect")
    theory_cells = {(r["lambda"], r["depth"]): r["mean"] for r in rows_of(spec, rect_l)}
    assert theory_cells[(4e-3, 4)] == pytest.approx(0.91)
    # a boolean theory column works too, and the GD side can show another value
    other = theory_vs_gd(_theory(), _runs(), theory_value="predicted_dnc", gd_value="loss_ratio")
    assert other.to_dict()["hconcat"][1]["title"] == "gradient descent: final loss / L_DNC"


def test_theory_vs_gd_validation():
    with pytest.raises(ValueError, match="'srg_ratio'"):
        theory_vs_gd(_theory().drop(columns="srg_ratio"), _runs())
    with pytest.raises(ValueError, match="runs is empty"):
        theory_vs_gd(_theory(), _runs().iloc[:0])
    with pytest.raises(TypeError, match="theory"):
        theory_vs_gd([1, 2], _runs())


def test_rank_chart_points_and_mean_line_without_diverged_runs():
    spec = rank_chart(_runs(), "lambda", color="depth").to_dict()
    (points,) = views_with_mark(spec, "circle")
    (line,) = [v for v in views_with_mark(spec, "line")]
    assert len(rows_of(spec, points)) == 7  # the diverged run is left out
    means = {(r["lambda"], r["depth"]): r["mean_rank"] for r in rows_of(spec, line)}
    assert means[(1e-3, 4)] == 8.5 and means[(4e-3, 4)] == 10.0
    assert points["encoding"]["x"]["scale"]["type"] == "linear"  # 4x range: linear
    wide = _runs().assign(**{"lambda": [1e-4] * 4 + [1e-2] * 4})
    assert rank_chart(wide).to_dict()["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    with pytest.raises(ValueError, match="'rank'"):
        rank_chart(_runs().drop(columns="rank"))


def test_dnc_probability_chart():
    prob = pd.DataFrame(
        {
            "width": [10, 30, 100],
            "runs": [5, 5, 5],
            "dnc": [0, 2, 5],
            "p_dnc": [0.0, 0.4, 1.0],
            "p_low": [0.0, 0.12, 0.57],
            "p_high": [0.43, 0.77, 1.0],
        }
    )
    spec = dnc_probability_chart(prob).to_dict()
    (bars,) = views_with_mark(spec, "errorbar")
    assert bars["encoding"]["y"]["field"] == "p_low" and bars["encoding"]["y2"]["field"] == "p_high"
    (line,) = views_with_mark(spec, "line")
    assert [r["p_dnc"] for r in rows_of(spec, line)] == [0.0, 0.4, 1.0]
    assert line["encoding"]["y"]["scale"]["domain"] == [0, 1]
    assert line["encoding"]["x"]["scale"]["type"] == "log"  # 10..100
    with pytest.raises(ValueError, match="'p_low'"):
        dnc_probability_chart(prob.drop(columns="p_low"))


def test_srg_ratio_chart():
    frame = pd.DataFrame(
        {
            "r": [4, 5, 4, 5],
            "depth": [3, 3, 4, 4],
            "srg_ratio": [1.07, 1.06, 0.98, np.nan],
        }
    )
    spec = srg_ratio_chart(frame).to_dict()
    (line,) = views_with_mark(spec, "line")
    assert len(rows_of(spec, line)) == 3  # NaN dropped
    (rule,) = views_with_mark(spec, "rule")
    assert rows_of(spec, rule) == [{"one": 1.0}]
    with pytest.raises(ValueError, match="'srg_sym_ratio'"):
        srg_ratio_chart(frame, value="srg_sym_ratio")


def test_charts_render_offline_from_real_frames():
    """The frames of sweeps / lowrank feed the charts as they are (no torch in the charts)."""
    from dnc_interactive import lowrank, sweeps
    from dnc_interactive.config import DUFMConfig

    grid = {"num_classes": 10, "depth": [3, 4], "lambda": [1e-3, 4e-3]}
    t = sweeps.theory_frame(grid, DUFMConfig(samples_per_class=5, width=30))
    runs = t.assign(is_dnc=t["predicted_dnc"], rank=np.where(t["predicted_dnc"], 10, 5))
    chart = theory_vs_gd(t, runs)
    assert chart.to_dict()["hconcat"][0]["title"].startswith("theory")
    srg = srg_ratio_chart(lowrank.compare_srg_dnc((4, 5), (3, 4), optimize=False))
    svg = alt.vconcat(chart, srg).to_dict()
    assert "hconcat" in svg["vconcat"][0]
