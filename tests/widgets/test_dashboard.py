"""The Dashboard widget driven from Python: controls, transport, presets, state, export."""

import asyncio
import html
import time

import pandas as pd
import pytest

from dnc_interactive.widgets import Dashboard
from dnc_interactive.widgets.dashboard import SNAPSHOTS


@pytest.fixture
def dash():
    d = Dashboard()
    yield d
    d.close()


def _max_chart_step(d):
    rows = d.chart.store.rows()
    return max(r[1] for r in rows) if rows else -1


def test_python_face(dash):
    assert set(Dashboard.presets) >= {
        "deep neural collapse (binary)",
        "too much regularization: the zero solution",
        "class imbalance: minority collapse",
        "many classes, deep: low-rank solutions",
    }
    assert dash.status.startswith("ready · step 0")
    assert dash.state == "eyJ2IjoxfQ"
    assert dash.controls["preset"].value == "deep neural collapse (binary)"
    dash.run(400)
    assert dash.steps == 400
    assert isinstance(dash.history, pd.DataFrame) and dash.history.step.max() == 400
    assert _max_chart_step(dash) == 400  # the chart is in sync with the trainer
    assert dash.controls["counter"].value == "<b>step 400</b>"
    assert "step 400" in dash.controls["status"].value


def test_settings_and_hide_at_construction():
    d = Dashboard("class imbalance: minority collapse", speed=0, seed=3, hide=("advanced", "share"))
    assert d.config.class_sizes == (95, 5) and d.config.seed == 3 and d.settings.speed == 0
    assert d.controls["n"].value == 95 and d.controls["minority"].value == 1
    assert d.controls["ratio"].value == pytest.approx(19.0)
    assert d.controls["preset"].value == "(custom)"  # the seed differs from the preset
    assert "advanced" not in str(d.widget.children[1].children[0].children[-1].titles)
    with pytest.raises(ValueError, match="depth=0 is not valid"):
        Dashboard(depth=0)
    with pytest.raises(ValueError, match="unknown setting"):
        Dashboard(colour="red")


def test_controls_change_settings_structural_resets_lr_continues(dash):
    c = dash.controls
    dash.run(100)
    trainer = dash.trainer
    c["lr"].value = 0.5
    assert dash.trainer is trainer and dash.steps == 100 and trainer.lr == 0.5
    c["depth"].value = 3
    assert dash.config.depth == 3 and dash.steps == 0 and dash.trainer is not trainer
    assert len(dash.chart.store) > 0 and _max_chart_step(dash) == 0  # chart restarted
    c["num_classes"].value = 4
    c["minority"].value = 2
    c["ratio"].value = 10.0
    assert dash.config.class_sizes == (50, 50, 5, 5)
    assert c["sizes_text"].value == "50, 50, 5, 5"
    c["lambda_H"].value = 0.01  # tied: both move
    assert dash.config.lambda_H == pytest.approx(0.01) == dash.config.lambda_W
    c["tie"].value = False
    c["lambda_W"].value = 0.001
    assert dash.config.lambda_W == pytest.approx(0.001) and dash.config.lambda_H == pytest.approx(
        0.01
    )
    c["optimizer"].value = "adam"
    assert dash.settings.lr == 0.5  # a chosen lr is kept
    c["speed"].value = 0
    assert dash.settings.speed == 0
    assert dash.controls["preset"].value == "(custom)"


@pytest.mark.parametrize(
    "control, text, message",
    [
        ("sizes_text", "90, x", "samples_per_class='90, x' is not valid"),
        ("sizes_text", "90, 0", "samples_per_class[1]=0 is not valid: expected an int >= 1"),
        ("widths_text", "64, 32", "width has 2 entries but depth=4"),
        ("lambda_w_text", "-1", "lambda_W=-1.0 is not valid: expected a finite float >= 0"),
        ("seed", -1, "seed=-1 is not valid: expected an int >= 0"),
        ("init_scale", 0.0, "init_scale=0.0 is not valid: expected a finite float > 0"),
    ],
)
def test_typed_values_are_validated_with_the_config_messages(dash, control, text, message):
    before = dash.settings
    dash.controls[control].value = text
    assert dash.settings == before
    assert message in dash.status
    assert message in html.unescape(dash.controls["status"].value)
    dash.controls["seed"].value = 1  # a valid change clears the error
    assert message not in dash.status


def test_typed_lists_set_per_class_and_per_layer_values(dash):
    dash.controls["sizes_text"].value = "30, 20, 10"
    assert dash.config.K == 3 and dash.config.class_sizes == (30, 20, 10)
    assert dash.controls["num_classes"].value == 3
    dash.controls["widths_text"].value = "32, 16, 16, 8"
    dash.controls["lambda_w_text"].value = "1e-3, 2e-3, 2e-3, 5e-3"
    assert dash.config.widths == (32, 16, 16, 8)
    dash.controls["depth"].value = 2  # per-layer lists fall back to the sliders' values
    assert dash.config.depth == 2 and isinstance(dash.config.width, int)


@pytest.mark.parametrize("name", Dashboard.presets)
def test_every_preset_applies_runs_and_reports(dash, name):
    dash.apply_preset(name)
    assert dash.controls["preset"].value == name
    assert Dashboard.from_state(dash.state).settings == dash.settings
    steps = 400 if "low-rank" in name else 200
    dash.run(steps)
    assert dash.steps == steps and not dash.trainer.diverged
    assert _max_chart_step(dash) == steps
    text = dash.status
    if "zero solution" in name:
        assert "past the threshold for every class" in text
    if "minority" in name:
        assert "class(es) [1]" in text
    if "low-rank" in name:
        assert "below L*" in text  # a negative gap within 400 steps (seed 2)


def test_state_round_trip_and_query(dash):
    dash.set(depth=5, lambda_H=2e-3, lr=0.7, speed=50)
    again = Dashboard.from_state(dash.state)
    assert again.settings == dash.settings
    from_url = Dashboard.from_query(f"state={dash.state}")
    assert from_url.settings == dash.settings
    preset = Dashboard.from_query("preset=classic UFM (L = 1)")
    assert preset.config.depth == 1
    bad = Dashboard.from_query("state=garbage!!")
    assert bad.settings == Dashboard().settings and "state=" in bad.status
    dash.controls["state"].value = preset.state
    dash.controls["apply_state"].click()
    assert dash.config.depth == 1
    dash.controls["state"].value = "nonsense"
    dash.controls["apply_state"].click()
    assert "state='nonsense' is not valid" in dash.status and dash.config.depth == 1


def test_share_url_in_voila(monkeypatch):
    monkeypatch.setenv("VOILA_REQUEST_URL", "http://127.0.0.1:8866/?state=abc")
    monkeypatch.setenv("QUERY_STRING", "preset=classic UFM (L = 1)")
    d = Dashboard.from_query()
    assert d.share_url == f"http://127.0.0.1:8866/?state={d.state}"
    assert d.share_url in d.controls["share_link"].value.replace("&amp;", "&")


def test_diverging_learning_rate_stops_and_leaves_the_controls_usable(dash):
    dash.set(lr=1e4, guard=False)
    dash.run(100)
    assert dash.trainer.diverged and "diverged" in dash.status
    assert len(dash.history) > 0
    assert dash.controls["play"].description == "Play"
    dash.controls["lr"].value = 1.0  # controls still work: a new run starts
    assert not dash.trainer.diverged and dash.steps == 0
    dash.step()
    assert dash.steps == dash.settings.speed


def test_transport_buttons_while_playing_and_slider_changes():
    d = Dashboard(speed=0)

    async def main():
        d.controls["play"].click()
        assert d.controls["play"].description == "Pause"
        await asyncio.sleep(0.4)
        d.controls["depth"].value = 3  # structural change while playing: reset, keep playing
        await asyncio.sleep(0.3)
        assert d.session.playing and d.config.depth == 3 and d.steps > 0
        d.controls["lr"].value = 0.8  # continues
        await asyncio.sleep(0.1)
        t0 = time.perf_counter()
        d.controls["play"].click()  # pause
        await d.session.wait()
        return time.perf_counter() - t0

    paused_in = asyncio.run(main())
    assert paused_in < 0.5
    assert not d.session.playing and d.controls["play"].description == "Play"
    assert _max_chart_step(d) == d.steps
    steps = d.steps
    d.controls["step"].click()
    assert d.steps > steps
    d.controls["reset"].click()
    assert d.steps == 0 and d.config.depth == 3
    d.close()


def test_snapshots_draw_every_view(dash):
    dash.run(100)
    for which in SNAPSHOTS:
        dash.controls["snapshot"].value = which
        assert dash.chart.snapshot_spec is not None
    dash.controls["snapshot_kind"].value = "pre"
    dash.controls["snapshot"].value = "off"
    assert dash.chart.snapshot_spec is None
    with pytest.raises(ValueError, match="which='nope' is not valid"):
        dash.snapshot_chart("nope")


def test_export_history_and_charts(dash, tmp_path):
    dash.run(100)
    csv = dash.export_history(tmp_path / "h.csv")
    assert pd.read_csv(csv).shape == dash.history.shape
    pq = dash.export_history(tmp_path / "h.parquet")
    assert pd.read_parquet(pq).equals(dash.history)
    (png,) = dash.save_charts(tmp_path / "charts", formats=("png",))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dash.controls["export_csv"].click()
    assert "download='dnc_history.csv'" in dash.controls["downloads"].value
    with pytest.raises(ValueError, match="formats='gif' is not valid"):
        dash.save_charts(tmp_path, formats=("gif",))
