"""Tests of the history charts: downsampling, loss chart, metric chart."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest
from chart_helpers import make_history, rows_of, total_rows, views_with_mark, walk

from dnc_interactive.charts import (
    LOG_FLOOR,
    MAX_CHART_ROWS,
    METRIC_TITLES,
    downsample_history,
    loss_chart,
    metric_chart,
)

# ---------------------------------------------------------------- downsample_history


def test_downsample_caps_rows_and_keeps_first_and_last_step():
    history = make_history(num_steps=2000, depth=2)
    # shuffle so the function cannot rely on the input order
    history = history.sample(frac=1.0, random_state=0)
    thinned = downsample_history(history, max_points=40)
    sizes = thinned.groupby(["layer", "kind", "metric"]).size()
    assert sizes.max() <= 40
    assert sizes.min() >= 20
    ends = thinned.groupby(["layer", "kind", "metric"])["step"].agg(["min", "max"])
    assert (ends["min"] == 0).all() and (ends["max"] == 1999).all()
    assert list(thinned.columns) == list(history.columns)


@pytest.mark.parametrize("spacing", ["linear", "log", "both"])
def test_downsample_spacing(spacing):
    history = make_history(num_steps=1000, depth=1)
    thinned = downsample_history(history, max_points=30, spacing=spacing)
    loss_steps = np.sort(thinned.loc[thinned["metric"] == "loss", "step"].to_numpy())
    assert loss_steps[0] == 0 and loss_steps[-1] == 999 and len(loss_steps) <= 30
    early = (loss_steps < 100).sum()
    if spacing == "linear":
        assert early <= 4
    else:  # log spacing keeps more of the fast early dynamics
        assert early >= 8


def test_downsample_max_rows_bounds_the_total_and_short_series_are_untouched():
    history = make_history(num_steps=500, depth=4)
    n_series = history.groupby(["layer", "kind", "metric"]).ngroups
    thinned = downsample_history(history, max_points=1000, max_rows=10 * n_series)
    assert len(thinned) <= 10 * n_series
    short = make_history(num_steps=5)
    pd.testing.assert_frame_equal(downsample_history(short, max_points=10), short)


def test_downsample_validation():
    history = make_history(num_steps=5)
    with pytest.raises(ValueError, match="'value'"):
        downsample_history(history.drop(columns="value"))
    with pytest.raises(ValueError, match="max_points"):
        downsample_history(history, max_points=1)
    with pytest.raises(ValueError, match="spacing"):
        downsample_history(history, spacing="cubic")
    assert downsample_history(history.iloc[:0]).empty


# ---------------------------------------------------------------- loss_chart


def _loss_panel(spec: dict) -> dict:
    return spec["hconcat"][0] if "hconcat" in spec else spec


def test_loss_chart_structure_rule_at_latest_finite_optimum_and_log_gap():
    history = make_history(num_steps=60)
    opt = history["metric"] == "optimal_loss"
    # L* changes once, then is NaN at the very end: the rule uses the latest finite value
    history.loc[opt & (history["step"] >= 30), "value"] = 0.25
    history.loc[opt & (history["step"] == 59), "value"] = np.nan
    chart = loss_chart(history)
    assert isinstance(chart, alt.HConcatChart)
    spec = chart.to_dict()  # validates against the Vega-Lite schema

    loss_panel, gap_panel = spec["hconcat"]
    lines = views_with_mark(loss_panel, "line")
    assert len(lines) == 1
    assert lines[0]["encoding"]["y"]["scale"]["type"] == "log"
    assert lines[0]["encoding"]["color"]["field"] == "term"
    assert set(r["term"] for r in rows_of(spec, lines[0])) == {"loss", "fit", "reg"}
    (rule,) = views_with_mark(loss_panel, "rule")
    assert [r["value"] for r in rows_of(spec, rule)] == [pytest.approx(0.25)]

    (gap_line,) = views_with_mark(gap_panel, "line")
    assert gap_line["encoding"]["y"]["scale"]["type"] == "log"
    assert gap_line["encoding"]["x"]["field"] == "step"


def test_loss_chart_linear_gap_vertical_and_no_optimum():
    history = make_history(num_steps=20)
    spec = loss_chart(history, log_gap=False, orient="vertical").to_dict()
    (gap_line,) = views_with_mark(spec["vconcat"][1], "line")
    assert gap_line["encoding"]["y"]["scale"].get("type") != "log"

    unknown = history[~history["metric"].isin(["optimal_loss", "relative_gap"])]
    chart = loss_chart(unknown)
    assert isinstance(chart, alt.LayerChart)  # no gap panel, no rule
    spec = chart.to_dict()
    assert not views_with_mark(spec, "rule")


def test_loss_chart_drops_non_finite_clips_zero_and_marks_negative_gap():
    history = make_history(num_steps=30)
    loss = history["metric"] == "loss"
    gap = history["metric"] == "relative_gap"
    history.loc[loss & (history["step"] == 3), "value"] = np.nan
    history.loc[loss & (history["step"] == 4), "value"] = np.inf
    history.loc[loss & (history["step"] == 5), "value"] = 0.0
    history.loc[gap & (history["step"] == 6), "value"] = -np.inf
    history.loc[gap & (history["step"] == 7), "value"] = -0.01  # below L*
    history.loc[gap & (history["step"] == 8), "value"] = 0.0
    spec = loss_chart(history).to_dict()
    loss_panel, gap_panel = spec["hconcat"]
    (lines,) = views_with_mark(loss_panel, "line")
    loss_rows = {r["step"]: r["value"] for r in rows_of(spec, lines) if r["term"] == "loss"}
    assert 3 not in loss_rows and 4 not in loss_rows
    assert loss_rows[5] == LOG_FLOOR
    (gap_line,) = views_with_mark(gap_panel, "line")
    gap_rows = {r["step"]: r for r in rows_of(spec, gap_line)}
    assert 6 not in gap_rows
    assert gap_rows[7]["value"] == pytest.approx(0.01) and gap_rows[7]["gap"] < 0
    assert gap_rows[8]["value"] == LOG_FLOOR
    for rows in spec["datasets"].values():
        assert all(np.isfinite(r["value"]) for r in rows if "value" in r)
    # steps below the optimum get red points
    assert views_with_mark(gap_panel, "point")


def test_loss_chart_long_run_stays_under_the_row_limit():
    history = make_history(num_steps=20_000, depth=1)
    spec = loss_chart(history).to_dict()  # would raise MaxRowsError without downsampling
    assert total_rows(spec) <= MAX_CHART_ROWS
    steps = [r["step"] for rows in spec["datasets"].values() for r in rows if "step" in r]
    assert min(steps) == 0 and max(steps) == 19_999


def test_loss_chart_validation():
    history = make_history(num_steps=5)
    with pytest.raises(ValueError, match="history"):
        loss_chart(history.iloc[:0])
    with pytest.raises(ValueError, match="'metric'"):
        loss_chart(history.drop(columns="metric"))
    with pytest.raises(ValueError, match="loss"):
        loss_chart(history[history["kind"] != "model"])
    with pytest.raises(TypeError, match="history"):
        loss_chart(history.to_dict())
    with pytest.raises(ValueError, match="orient"):
        loss_chart(history, orient="diagonal")


# ---------------------------------------------------------------- metric_chart


def test_metric_chart_panels_titles_layer_colours_and_dashes():
    history = make_history(num_steps=40, depth=3)
    chart = metric_chart(history)
    assert isinstance(chart, alt.ConcatChart)
    spec = chart.to_dict()
    panels = spec["concat"]
    assert [p["title"] for p in panels] == [METRIC_TITLES[m] for m in ("nc1", "nc2_orth", "nc3")]
    assert METRIC_TITLES["nc1"] == "DNC1: tr(Σ_W Σ_B⁺)/K"
    for panel in panels:
        enc = panel["encoding"]
        assert enc["y"]["scale"]["type"] == "log"
        assert enc["color"]["field"] == "layer" and enc["color"]["type"] == "ordinal"
        assert enc["color"]["scale"]["domain"] == [1, 2, 3]  # one colour per layer
        assert enc["strokeDash"]["field"] == "kind"
    dash = panels[0]["encoding"]["strokeDash"]["scale"]
    dashes = dict(zip(dash["domain"], dash["range"], strict=True))
    assert dashes["pre"] != dashes["post"] and dashes["weight"] == dashes["post"]

    nc1_rows = rows_of(spec, panels[0])
    assert {r["kind"] for r in nc1_rows} == {"pre", "post"}
    assert {r["layer"] for r in nc1_rows} == {1, 2, 3}
    nc3_rows = rows_of(spec, panels[2])  # weight metric drawn whatever `kinds` says
    assert {r["kind"] for r in nc3_rows} == {"weight"}


def test_metric_chart_kinds_linear_metrics_output_and_missing_metric():
    history = make_history(num_steps=20, depth=2)
    spec = metric_chart(
        history, metrics=("nc1", "rank", "nc4", "q_0", "absent"), kinds=("post",)
    ).to_dict()
    panels = spec["concat"]
    assert len(panels) == 4  # "absent" is skipped
    assert {r["kind"] for r in rows_of(spec, panels[0])} == {"post"}
    for panel in panels[1:]:  # rank, NC4 and q_k are counts / fractions: linear scale
        assert panel["encoding"]["y"]["scale"].get("type") != "log"
    nc4 = rows_of(spec, panels[2])
    assert {r["layer"] for r in nc4} == {3} and all(r["value"] == 0.0 for r in nc4)
    assert panels[0]["encoding"]["color"]["scale"]["domain"] == [1, 2, 3]


def test_metric_chart_non_finite_and_zero_values():
    history = make_history(num_steps=20, depth=2)
    nc1 = (history["metric"] == "nc1") & (history["layer"] == 1) & (history["kind"] == "pre")
    history.loc[nc1 & (history["step"] == 2), "value"] = np.nan
    history.loc[nc1 & (history["step"] == 3), "value"] = np.inf
    history.loc[nc1 & (history["step"] == 4), "value"] = 0.0
    history.loc[nc1 & (history["step"] == 5), "value"] = -np.inf
    spec = metric_chart(history, metrics=("nc1",)).to_dict()
    rows = [r for r in rows_of(spec, spec["concat"][0]) if r["layer"] == 1 and r["kind"] == "pre"]
    by_step = {r["step"]: r["value"] for r in rows}
    assert not {2, 3, 5} & set(by_step)
    assert by_step[4] == LOG_FLOOR
    assert min(by_step.values()) >= LOG_FLOOR


def test_metric_chart_deep_long_run_stays_under_the_row_limit():
    history = make_history(num_steps=5_000, depth=6)
    metrics = ("nc1", "nc1_trace", "nc2_orth", "nc2_etf", "nc3", "coherence")
    spec = metric_chart(history, metrics=metrics).to_dict()
    assert total_rows(spec) <= MAX_CHART_ROWS
    for panel in spec["concat"]:
        steps = {r["step"] for r in rows_of(spec, panel)}
        assert 0 in steps and 4_999 in steps


def test_metric_chart_validation():
    history = make_history(num_steps=5)
    with pytest.raises(ValueError, match="history"):
        metric_chart(history.iloc[:0])
    with pytest.raises(ValueError, match="'layer'"):
        metric_chart(history.drop(columns="layer"))
    with pytest.raises(ValueError, match="metrics"):
        metric_chart(history, metrics=())
    with pytest.raises(ValueError, match="metrics"):
        metric_chart(history, metrics=("not_a_metric",))
    # a string is one metric, not a list of characters
    spec = metric_chart(history, metrics="nc1").to_dict()
    assert len(spec["concat"]) == 1
    assert any("strokeDash" in v.get("encoding", {}) for v in walk(spec))
