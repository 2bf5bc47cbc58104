"""Tests of the snapshot charts: Gram heat maps, projections, singular values, output scales."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest
from chart_helpers import (
    make_gram,
    make_projection,
    make_singular_values,
    rows_of,
    views_with_mark,
)

from dnc_interactive.charts import (
    LOG_FLOOR,
    gram_heatmap,
    ideal_gram,
    output_scale_chart,
    projection_chart,
    singular_value_chart,
)

# ---------------------------------------------------------------- gram_heatmap


def test_ideal_gram_has_unit_frobenius_norm():
    orth = ideal_gram(4, "orthogonal")
    etf = ideal_gram(4, "etf")
    assert np.allclose(orth, np.eye(4) / 2)
    assert np.isclose(np.linalg.norm(orth), 1) and np.isclose(np.linalg.norm(etf), 1)
    assert np.allclose(etf.sum(axis=1), 0)
    with pytest.raises(ValueError, match="ideal"):
        ideal_gram(3, "simplex")
    with pytest.raises(ValueError, match="num_classes"):
        ideal_gram(1, "etf")


@pytest.mark.parametrize("ideal", ["orthogonal", "etf"])
def test_gram_heatmap_panels_ideal_and_diverging_scale(ideal):
    k = 3
    chart = gram_heatmap(make_gram(depth=3, num_classes=k), kind="post", ideal=ideal)
    assert isinstance(chart, alt.FacetChart)
    spec = chart.to_dict()
    rows = rows_of(spec)
    panels = spec["facet"]["sort"]
    assert len(panels) == 3 + 1 + 1  # three layers, the output, the ideal
    assert panels[0].startswith("H_1") and "output" in panels[-2]
    assert panels[-1].startswith("ideal")
    assert {r["panel"] for r in rows} == set(panels)
    # only post-ReLU rows (plus the output) are drawn
    assert not any("pre" in p for p in panels)
    ideal_cells = {(r["row"], r["col"]): r["value"] for r in rows if r["panel"] == panels[-1]}
    assert len(ideal_cells) == k * k
    expected = ideal_gram(k, ideal)
    for (i, j), value in ideal_cells.items():
        assert value == pytest.approx(expected[i, j])

    (rect,) = views_with_mark(spec, "rect")
    scale = rect["encoding"]["color"]["scale"]
    assert scale["domainMid"] == 0
    assert scale["domain"][0] == -scale["domain"][1]
    assert scale["domain"][1] >= max(abs(r["value"]) for r in rows)
    assert views_with_mark(spec, "text")  # K <= 6: values written in the cells


def test_gram_heatmap_pre_kind_large_k_non_finite_and_validation():
    gram = make_gram(depth=2, num_classes=8)
    gram.loc[0, "value"] = np.nan
    gram.loc[1, "value"] = np.inf
    spec = gram_heatmap(gram, kind="pre").to_dict()
    assert not views_with_mark(spec, "text")  # K = 8: no cell text
    rows = rows_of(spec)
    assert all(np.isfinite(r["value"]) for r in rows)
    first = [r for r in rows if r["panel"].startswith("H̃_1")]
    assert len(first) == 64 - 2

    with pytest.raises(ValueError, match="gram_frame"):
        gram_heatmap(gram.iloc[:0])
    with pytest.raises(ValueError, match="'col'"):
        gram_heatmap(gram.drop(columns="col"))
    with pytest.raises(ValueError, match="'weight'"):
        gram_heatmap(gram, kind="weight")
    with pytest.raises(ValueError, match="ideal"):
        gram_heatmap(gram, ideal="simplex")


def test_gram_heatmap_takes_the_optimums_own_gram_as_the_ideal():
    gram = make_gram(depth=2, num_classes=2)
    target = np.diag([0.9, 0.1]) / np.linalg.norm([0.9, 0.1])  # imbalanced: unequal diagonal
    spec = gram_heatmap(gram, ideal=target, ideal_title="optimum (imbalanced)").to_dict()
    panels = spec["facet"]["sort"]
    assert panels[-1] == "optimum (imbalanced)"
    cells = {(r["row"], r["col"]): r["value"] for r in rows_of(spec) if r["panel"] == panels[-1]}
    assert cells[(0, 0)] == pytest.approx(target[0, 0]) and cells[(0, 1)] == 0.0
    with pytest.raises(ValueError, match=r"ideal has shape \(3, 3\), expected \(2, 2\)"):
        gram_heatmap(gram, ideal=np.eye(3))


# ---------------------------------------------------------------- projection_chart


def test_projection_chart_means_from_all_samples_and_colour_by_class():
    frame = make_projection(depth=2, num_classes=3, n=10)
    frame.loc[0, "x"] = np.nan  # dropped
    chart = projection_chart(frame, kind="pre")
    assert isinstance(chart, alt.FacetChart)
    spec = chart.to_dict()
    assert spec["resolve"]["scale"] == {"x": "independent", "y": "independent"}
    rows = rows_of(spec)
    samples = [r for r in rows if r["role"] == "sample"]
    means = [r for r in rows if r["role"] == "class mean"]
    assert len(samples) == 2 * 30 - 1 and len(means) == 2 * 3
    assert all("pre" in r["panel"] for r in rows)
    expected = frame[(frame["kind"] == "pre") & (frame["layer"] == 2)].groupby("label")["x"]
    got = {r["label"]: r["x"] for r in means if r["panel"].startswith("H̃_2")}
    for label, value in expected.mean().items():
        assert got[label] == pytest.approx(value)
    (circle,) = views_with_mark(spec, "circle")
    (point,) = views_with_mark(spec, "point")
    assert circle["encoding"]["color"]["field"] == "label"
    assert point["mark"]["size"] > circle["mark"]["size"]


def test_projection_chart_thins_samples_but_keeps_exact_means():
    frame = make_projection(depth=2, num_classes=2, n=500)
    spec = projection_chart(frame, max_rows=400).to_dict()
    rows = rows_of(spec)
    assert len(rows) <= 400
    means = {(r["panel"], r["label"]): r["y"] for r in rows if r["role"] == "class mean"}
    full = frame[(frame["kind"] == "post") & (frame["layer"] == 1)].groupby("label")["y"].mean()
    for label, value in full.items():
        assert means[("H_1 (layer 1, post)", label)] == pytest.approx(value)


def test_projection_chart_validation():
    frame = make_projection(depth=1)
    with pytest.raises(ValueError, match="projection_frame"):
        projection_chart(frame.iloc[:0])
    with pytest.raises(ValueError, match="'label'"):
        projection_chart(frame.drop(columns="label"))
    with pytest.raises(ValueError, match="'output'"):
        projection_chart(frame, kind="output")


# ---------------------------------------------------------------- singular_value_chart


def test_singular_value_chart_log_scale_cutoff_rule_and_clipping():
    frame = make_singular_values(depth=2)
    frame.loc[1, "value"] = np.nan
    chart = singular_value_chart(frame)
    assert isinstance(chart, alt.FacetChart)
    spec = chart.to_dict()
    (line,) = views_with_mark(spec, "line")
    assert line["encoding"]["y"]["scale"]["type"] == "log"
    assert line["encoding"]["color"]["field"] == "kind"
    (rule,) = views_with_mark(spec, "rule")
    calc = [t for t in rule["transform"] if "calculate" in t]
    assert float(calc[0]["calculate"]) == pytest.approx(1e-3)
    rows = rows_of(spec)
    assert len(rows) == 2 * 2 * 5 - 1
    assert min(r["value"] for r in rows) == LOG_FLOOR  # σ = 0 clipped, not dropped
    ranks = {(r["layer"], r["kind"]): r["rank"] for r in rows}
    assert ranks[(2, "post")] == 3  # 1, 0.5 and 2e-3 are above the 1e-3 cut-off
    assert spec["facet"]["sort"] == ["layer 1", "layer 2"]


def test_singular_value_chart_kinds_and_validation():
    frame = make_singular_values(depth=1)
    spec = singular_value_chart(frame, kinds=("post",), cutoff=1e-2).to_dict()
    rows = rows_of(spec)
    assert {r["kind"] for r in rows} == {"post"}
    assert {r["rank"] for r in rows} == {2}
    with pytest.raises(ValueError, match="sv_frame"):
        singular_value_chart(frame.iloc[:0])
    with pytest.raises(ValueError, match="'index'"):
        singular_value_chart(frame.drop(columns="index"))
    with pytest.raises(ValueError, match="sv_frame"):
        singular_value_chart(frame, kinds=("output",))
    spec = singular_value_chart(frame.drop(columns="raw")).to_dict()  # raw is optional
    assert "raw" not in rows_of(spec)[0]


# ---------------------------------------------------------------- output_scale_chart


def test_output_scale_chart_bars_and_theory_ticks():
    frame = pd.DataFrame(
        {
            "label": [2, 0, 1],
            "n": [20, 95, 5],
            "q": [0.8, 0.97, 0.0],
            "q_theory": [0.81, 0.97, np.nan],
        }
    )
    chart = output_scale_chart(frame)
    assert isinstance(chart, alt.LayerChart)
    spec = chart.to_dict()
    (bar,) = views_with_mark(spec, "bar")
    (tick,) = views_with_mark(spec, "tick")
    assert bar["encoding"]["x"]["sort"] == [0, 1, 2]
    assert bar["encoding"]["y"]["field"] == "q"
    assert tick["encoding"]["y"]["field"] == "q_theory"
    assert "n" in [t["field"] for t in bar["encoding"]["tooltip"]]
    rows = {r["label"]: r for r in rows_of(spec)}
    assert rows[1]["q_theory"] is None and rows[0]["n"] == 95


def test_output_scale_chart_without_theory_and_validation():
    frame = pd.DataFrame({"label": [0, 1], "n": [50, 50], "q": [0.9, np.inf]})
    spec = output_scale_chart(frame).to_dict()
    assert not views_with_mark(spec, "tick")
    assert [r["label"] for r in rows_of(spec)] == [0]  # the non-finite q is dropped
    all_nan = frame.assign(q_theory=np.nan)
    assert not views_with_mark(output_scale_chart(all_nan).to_dict(), "tick")
    with pytest.raises(ValueError, match="q_frame"):
        output_scale_chart(frame.iloc[:0])
    with pytest.raises(ValueError, match="'n'"):
        output_scale_chart(frame.drop(columns="n"))


def test_projection_chart_equal_scales_for_one_panel():
    frame = make_projection(depth=1, num_classes=2, n=10)
    frame = frame[frame["layer"] == frame["layer"].min()]
    frame = frame[frame["kind"] == "post"]
    frame["y"] = frame["y"] * 1e-6  # a collapsed direction
    spec = projection_chart(frame, equal_scales=True).to_dict()
    x = spec["spec"]["layer"][0]["encoding"]["x"]["scale"]["domain"]
    y = spec["spec"]["layer"][0]["encoding"]["y"]["scale"]["domain"]
    assert x[1] - x[0] == pytest.approx(y[1] - y[0])
