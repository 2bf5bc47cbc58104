"""The streaming chart widget (dnc_interactive.widgets.live_chart)."""

import math

import altair as alt
import pandas as pd
import pytest
import vl_convert as vlc

from dnc_interactive.config import DUFMConfig
from dnc_interactive.widgets.live_chart import (
    LiveChart,
    SeriesStore,
    is_streamed,
    split_datasets,
    stream_spec,
)


def _rows(steps, metric="loss", kind="model", layer=0):
    return [(s, layer, kind, metric, 1.0 / (s + 1)) for s in steps]


def test_store_keeps_a_bounded_number_of_points_per_series_and_reports_removals():
    store = SeriesStore(max_points=20)
    shown: dict[int, list] = {}  # what a view holding the inserted minus the removed rows has
    for start in range(0, 1000, 7):
        batch = _rows(range(start, start + 7)) + _rows(range(start, start + 7), "nc1", "post", 2)
        inserted, removed = store.add(batch)
        for r in inserted:
            shown[r[0]] = r
        for i in removed:
            assert i in shown  # only rows the view has are removed
            del shown[i]
        for series in store.series.values():
            assert len(series) <= 20
    assert sorted(shown) == [r[0] for r in store.rows()]
    loss = store.series[(0, "model", "loss")]
    assert loss[0][1] == 0 and loss[-1][1] == 1000  # first and latest steps kept
    steps = [r[1] for r in loss]
    assert steps == sorted(steps)


def test_store_skips_metrics_that_are_not_drawn_and_cleans_non_finite_values():
    store = SeriesStore()
    inserted, _ = store.add(
        [
            (0, 0, "model", "loss", math.nan),
            (0, 0, "model", "optimal_loss", 0.01),
            (0, 1, "post", "nc2_etf", 2.0),
            (0, 5, "output", "q_1", 0.5),
        ]
    )
    assert [r[4] for r in inserted] == ["loss", "optimal_loss", "q_1"]  # L* jumps with λ
    assert inserted[0][5] is None
    assert is_streamed("weight", "nc3") and not is_streamed("weight", "nc1")
    with pytest.raises(ValueError, match="max_points=2 is not valid"):
        SeriesStore(2)


@pytest.mark.parametrize(
    "cfg, opt", [(DUFMConfig(), 0.0109), (DUFMConfig(num_classes=10, depth=6, loss="ce"), math.nan)]
)
def test_stream_spec_compiles_and_reads_the_rows_dataset(cfg, opt):
    spec = stream_spec(cfg, opt)
    vega = vlc.vegalite_to_vega(spec)
    names = [d["name"] for d in vega["data"]]
    assert "rows" in names
    colour = spec["concat"][3]["layer"][0]["encoding"]["color"]  # the per-layer NC1 panel
    assert colour["scale"]["domain"] == list(range(1, cfg.L + 1))
    layers = spec["concat"][0]["layer"]
    has_rule = any(
        layer["mark"].get("type") == "rule" and "values" in layer.get("data", {})
        for layer in layers
    )  # the L* rule
    assert has_rule == math.isfinite(opt)


def test_stream_spec_renders_streamed_rows_offline():
    spec = stream_spec(DUFMConfig(depth=2), 0.5)
    store = SeriesStore()
    inserted, _ = store.add(
        _rows(range(0, 100, 10))
        + [
            (s, layer, k, "nc1", 1e-3 / (s + 1))
            for s in range(0, 100, 10)
            for layer in (1, 2)
            for k in ("pre", "post")
        ]
    )
    values = [dict(zip(["id", "step", "layer", "kind", "metric", "value"], r)) for r in inserted]
    svg = vlc.vegalite_to_svg({**spec, "datasets": {"rows": values}})
    assert svg.count("<path") > 5


def _snapshot(values):
    return alt.Chart(pd.DataFrame({"x": [0, 1], "y": values})).mark_bar().encode(x="x:O", y="y:Q")


def test_split_datasets_gives_stable_names_and_equal_skeletons_for_equal_structure():
    a = split_datasets(_snapshot([1.0, 2.0]).to_dict())
    b = split_datasets(_snapshot([3.0, float("nan")]).to_dict())
    assert a[0] == b[0]
    assert list(a[1]) == ["snap_0"]
    assert b[1]["snap_0"][1]["y"] is None  # NaN is not JSON
    assert "datasets" in a[2] and a[2]["data"]["name"] == "snap_0"


class Recorder:
    def __init__(self, chart):
        self.sent = []
        chart.send = lambda msg, buffers=None: self.sent.append(msg)


def test_live_chart_streams_replays_and_replaces_snapshots():
    chart = LiveChart(max_points=10)
    rec = Recorder(chart)
    chart.set_stream(stream_spec(DUFMConfig(), 0.01))
    assert chart.push(_rows(range(5))) == 5
    assert chart.push([(0, 0, "model", "lr", 1.0)]) == 0  # not drawn: nothing sent
    assert [m["type"] for m in rec.sent] == ["spec", "rows"]
    assert [r[1] for r in rec.sent[1]["rows"]] == [0, 1, 2, 3, 4]

    assert chart.set_snapshot(_snapshot([1.0, 2.0])) == "spec"
    assert chart.set_snapshot(_snapshot([2.0, 1.0])) == "data"
    assert rec.sent[-1]["type"] == "data" and "snap_0" in rec.sent[-1]["datasets"]

    rec.sent.clear()
    chart._on_message(chart, {"type": "ready", "id": "view-2"}, [])
    assert [m["type"] for m in rec.sent] == ["spec", "rows", "spec"]
    assert all(m["target"] == "view-2" for m in rec.sent)
    assert rec.sent[1]["reset"] is True and len(rec.sent[1]["rows"]) == 5
    assert rec.sent[2]["spec"]["datasets"]["snap_0"][0]["y"] == 2.0  # the latest snapshot

    chart.set_stream(stream_spec(DUFMConfig(depth=2)))
    assert len(chart.store) == 0


def _panel(spec, title_start):
    (panel,) = [p for p in spec["concat"] if p["title"].startswith(title_start)]
    return panel


def test_stream_spec_draws_q_star_rules_in_the_class_colours():
    cfg = DUFMConfig(samples_per_class=(95, 5), lambda_H=3e-3, lambda_W=3e-3)
    spec = stream_spec(cfg, 0.1, q_star=(0.9, 0.0))
    q = _panel(spec, "Output scales")
    assert "theory q*_k" in q["title"]
    trained, rules, _info = q["layer"]  # the last layer: ℹ §6.1
    assert rules["mark"]["type"] == "rule" and rules["mark"]["strokeDash"]
    assert rules["data"]["values"] == [{"class": 0, "q_star": 0.9}, {"class": 1, "q_star": 0.0}]
    assert rules["encoding"]["color"]["scale"] == trained["encoding"]["color"]["scale"]
    assert trained["encoding"]["color"]["scale"]["domain"] == [0, 1]
    vlc.vegalite_to_vega(spec)  # compiles
    # no theory (CE loss: NaN), no rules
    plain = _panel(stream_spec(cfg, math.nan, q_star=(math.nan, math.nan)), "Output scales")
    assert [layer["mark"]["type"] for layer in plain["layer"]] == ["line", "text"]  # no rule


def test_gap_below_round_off_is_drawn_as_reached_not_red():
    spec = stream_spec(DUFMConfig(), 0.01, roundoff=1e-6)
    gap = _panel(spec, "Gap")
    line, red, green, rule, _info = gap["layer"]
    assert {"filter": "datum.value < -1e-06"} in red["transform"]
    assert {"filter": "abs(datum.value) < 1e-06"} in green["transform"]
    assert green["mark"]["color"] == "#2e7d32" and red["mark"]["color"] == "#d62728"
    assert rule["data"]["values"][0]["g"] == 1e-6
    # the plotted gap never goes below the round-off level
    assert {"calculate": "max(abs(datum.value), 1e-06)", "as": "g"} in line["transform"]
    # rendered: a gap of -1e-9 (noise) gets a green point, -1e-2 a red one
    values = [
        {"id": i, "step": s, "layer": 0, "kind": "model", "metric": "relative_gap", "value": v}
        for i, (s, v) in enumerate([(0, 1.0), (10, -1e-2), (20, -1e-9), (30, 0.0)])
    ]
    svg = vlc.vegalite_to_svg({**spec, "datasets": {"rows": values}})
    assert svg.count('fill="#d62728"') == 1 and svg.count('fill="#2e7d32"') == 2


def test_stream_spec_panels_styles_and_validation():
    lecture = stream_spec(DUFMConfig(depth=6), 0.01, panels=("loss", "nc1"), style="lecture")
    assert len(lecture["concat"]) == 2 and lecture["columns"] == 2
    config = lecture["config"]
    assert config["axis"]["labelFontSize"] >= 18 and config["axis"]["titleFontSize"] >= 18
    assert config["title"]["fontSize"] >= 18 and config["legend"]["labelFontSize"] >= 18
    assert all(p["width"] >= 300 for p in lecture["concat"])
    assert lecture["usermeta"]["dncFit"]["max"] == 2
    vlc.vegalite_to_vega(lecture)
    default = stream_spec(DUFMConfig())
    assert default["config"]["axis"]["labelFontSize"] >= 12  # not vega's 10 px
    assert default["columns"] == 3 and len(default["concat"]) == 6
    with pytest.raises(ValueError, match="panels=.* is not valid"):
        stream_spec(DUFMConfig(), panels=("loss", "nope"))
    with pytest.raises(ValueError, match="style='huge' is not valid"):
        stream_spec(DUFMConfig(), style="huge")
