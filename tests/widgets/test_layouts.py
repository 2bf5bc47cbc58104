"""The dashboard's layouts (default, lecture), its keyboard shortcuts and the theory it draws."""

import asyncio

import numpy as np
import pytest

from dnc_interactive import theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.widgets import Dashboard
from dnc_interactive.widgets import layout as layouts
from dnc_interactive.widgets import view_model as vm
from dnc_interactive.widgets.dashboard import LAYOUT_ENV


@pytest.fixture
def lecture():
    d = Dashboard(layout="lecture")
    yield d
    d.close()


def _font_sizes(spec):
    """Every font size a Vega-Lite spec sets (config and marks)."""
    out = []

    def walk(obj, key=None):
        if isinstance(obj, dict):
            for k, v in obj.items():
                sized = k in ("fontSize", "labelFontSize", "titleFontSize")
                if sized and isinstance(v, int | float):
                    out.append((k, v))
                else:
                    walk(v, k)
        elif isinstance(obj, list):
            for v in obj:
                walk(v, key)

    walk(spec)
    return out


def _panels(spec):
    return spec.get("concat") or spec.get("hconcat") or spec.get("vconcat") or [spec]


def test_lecture_layout_has_at_most_four_large_panels_with_big_fonts(lecture):
    lecture.run(50)
    stream, snapshot = lecture.chart.stream_spec, lecture.chart.snapshot_spec
    clouds = lecture.chart.clouds_spec
    assert stream is not None and snapshot is not None and clouds is not None
    panels = _panels(stream) + _panels(clouds) + _panels(snapshot)
    assert len(panels) == len(layouts.LECTURE_PANEL_NAMES) == 4
    titles = [p.get("title") for p in panels]
    assert titles[0].startswith("Loss L") and "L*" in titles[0]
    assert titles[1].startswith("DNC1")
    assert titles[2].startswith("H_4 (post-ReLU)")  # the live cloud of the last layer
    assert len(clouds["datasets"]["cloud"]) > 0
    for spec in (stream, snapshot):
        sizes = _font_sizes(spec)
        assert sizes and all(v >= 18 for _, v in sizes), sizes
        assert spec["config"]["axis"]["labelFontSize"] >= 18
    assert all(p["width"] >= 300 for p in _panels(stream))


def test_lecture_controls_are_one_strip_with_a_settings_fold(lecture):
    root = lecture.widget
    assert "dnc-lecture" in root._dom_classes and "dnc-dashboard" in root._dom_classes
    title, strip, status, settings, chart = root.children
    assert chart is lecture.chart
    names = {id(w): n for n, w in lecture.controls.items()}
    in_strip = [names.get(id(w)) for w in strip.children]
    assert in_strip[:4] == ["play", "step", "reset", "counter"]
    assert {"preset", "lambda_H", "depth"} <= set(in_strip)
    keys = status.children[-1]
    assert lecture.shortcuts in keys.children and lecture.controls["more"] in keys.children
    assert settings.layout.display == "none"
    lecture.controls["more"].value = True  # unfold every other control
    assert settings.layout.display == "flex"
    lecture.controls["lambda_H"].value = 0.02  # the strip's slider drives the run
    assert lecture.config.lambda_H == pytest.approx(0.02)


def test_layout_is_validated_and_default_stays_the_default(monkeypatch):
    with pytest.raises(
        ValueError, match=r"layout='desk' is not valid: expected one of \('default', 'lecture'\)"
    ):
        Dashboard(layout="desk")
    with pytest.raises(ValueError, match="layout=3 is not valid"):
        layouts.check_layout(3)
    d = Dashboard()
    assert d.layout == "default" and "dnc-lecture" not in d.widget._dom_classes
    d.close()
    q = Dashboard.from_query("layout=lecture&preset=classic UFM (L = 1)")
    assert q.layout == "lecture" and q.config.depth == 1
    q.close()
    monkeypatch.setenv(LAYOUT_ENV, "lecture")
    e = Dashboard.from_query("")
    assert e.layout == "lecture"
    e.close()
    bad = Dashboard.from_query("layout=huge")
    assert bad.layout == "default" and "layout='huge' is not valid" in bad.status
    bad.close()


def test_default_layout_keeps_charts_beside_a_narrow_control_column():
    d = Dashboard()
    header, body = d.widget.children
    left, chart = body.children
    assert chart is d.chart and left.layout.width == layouts.CONTROL_COLUMN == "340px"
    assert chart.layout.flex.startswith("1 1")  # takes the rest of the row
    for name in ("activation", "loss", "optimizer", "dtype"):  # no clipped ":ivation"
        assert d.controls[name].style.description_width == "100px"
    widths = [int(d.controls[n].layout.width.rstrip("px")) for n in ("lambda_H", "depth")]
    assert max(widths) <= 300  # the folded sections' content is ~304 px wide
    spec = d.chart.stream_spec
    assert spec["config"]["axis"]["labelFontSize"] >= 12  # was vega's 9-10 px
    fit = spec["usermeta"]["dncFit"]
    # in JupyterLab's notebook at 1366 px the charts get ~580 px: two columns fit
    assert 2 * fit["cell"] <= 934 - 340
    d.close()


def test_gram_row_does_not_wrap_into_empty_axes_at_depth_6():
    columns, cell = vm._gram_columns(8, 2, 30)  # L = 6: six layers, Z and the ideal
    assert columns == 8 and 8 <= cell <= 30  # one row, the cells a little smaller
    assert columns * (cell * 2 + 22) <= vm.GRAM_WIDTH
    columns, cell = vm._gram_columns(10, 10, 30)  # K = 10, L = 8: balanced rows
    assert 10 % columns == 0
    d = Dashboard(depth=6, num_classes=4)
    d.run(20)
    spec = d.chart.snapshot_spec
    panels = 6 + 2
    assert panels % spec["columns"] == 0 or spec["columns"] == panels


def test_keys_play_pause_and_step():
    d = Dashboard(speed=10)
    send = d.shortcuts._on_message
    send(d.shortcuts, {"type": "key", "action": "step"}, [])
    assert d.steps == 10 and d.shortcuts.presses == 1
    send(d.shortcuts, {"type": "key", "action": "nonsense"}, [])
    send(d.shortcuts, "garbage", [])
    assert d.shortcuts.presses == 1

    async def main():
        send(d.shortcuts, {"type": "key", "action": "play"}, [])
        assert d.session.playing and d.controls["play"].description == "Pause"
        await asyncio.sleep(0.3)
        send(d.shortcuts, {"type": "key", "action": "play"}, [])
        await d.session.wait()

    asyncio.run(main())
    assert not d.session.playing and d.steps > 10
    assert d.controls["play"].description == "Play"
    assert "Space" in d.shortcuts.hint
    d.close()


# ---------------------------------------------------------------------- theory on the panels
def test_optimum_gram_balanced_imbalanced_and_collapsed():
    balanced = vm.theory_view(DUFMConfig())
    matrix, title = balanced.ideal()
    np.testing.assert_allclose(matrix, np.eye(2) / np.sqrt(2))
    assert title == "optimum: I_K/√K"
    cfg = DUFMConfig(samples_per_class=(90, 10))
    view = vm.theory_view(cfg)
    matrix, title = view.ideal()
    norms = np.array(theory.layer_norms(cfg)[-1])
    np.testing.assert_allclose(np.diag(matrix), norms**2 / np.linalg.norm(norms**2))
    assert matrix[0, 0] != pytest.approx(matrix[1, 1]) and "imbalanced" in title
    assert np.linalg.norm(matrix) == pytest.approx(1.0)
    z, _ = view.ideal(cfg.L + 1)  # the output's Gram: q_k²
    q = np.array(theory.optimal_q(cfg))
    np.testing.assert_allclose(np.diag(z), q**2 / np.linalg.norm(q**2))
    # minority collapse: the collapsed class has a zero row and column
    mc = DUFMConfig(samples_per_class=(95, 5), lambda_H=3e-3, lambda_W=3e-3)
    if theory.optimal_q(mc)[1] == 0.0:
        m, _ = vm.theory_view(mc).ideal()
        assert m[1, 1] == 0.0 and m[0, 0] == pytest.approx(1.0)
    np.testing.assert_array_equal(vm.optimum_gram((0.0, 0.0)), np.zeros((2, 2)))
    assert vm.theory_view(DUFMConfig(loss="ce")).ideal() is None
    assert vm.theory_view(cfg) is vm.theory_view(cfg)  # once per config


def test_dashboard_draws_the_optimums_own_gram_and_q_star():
    d = Dashboard(samples_per_class=(90, 10))
    d.run(50)
    chart = d.snapshot_chart("Gram").to_dict()
    (data,) = chart["datasets"].values()
    ideal = [r for r in data if r["panel"].startswith("optimum")]
    assert len(ideal) == 4 and ideal[0]["panel"] == "optimum (H_4, imbalanced)"
    matrix, _ = d.theory.ideal()
    assert [r["value"] for r in ideal] == pytest.approx(matrix.flatten().tolist())
    q_panel = [p for p in d.chart.stream_spec["concat"] if p["title"].startswith("Output")][0]
    rules = q_panel["layer"][1]["data"]["values"]
    assert [r["q_star"] for r in rules] == pytest.approx(list(theory.optimal_q(d.config)))
    gap = [p for p in d.chart.stream_spec["concat"] if p["title"].startswith("Gap")][0]
    assert "round-off" in gap["title"]  # float32: |gap| < 1e-6 drawn as reached
    assert vm.roundoff("float32") == 1e-6 and vm.roundoff("float64") == 1e-12
    d.close()


def test_app_lecture_flag_asks_the_page_and_the_kernels_for_the_lecture_layout(capsys):
    from urllib.parse import parse_qs, urlsplit

    from dnc_interactive.cli import app as app_cli
    from dnc_interactive.cli import main

    assert main(["app", "--dry-run", "--lecture", "--port", "8872"]) == 0
    cmd, url = capsys.readouterr().out.strip().splitlines()
    assert cmd.startswith(f"{app_cli.LAYOUT_ENV}=lecture JUPYTER_TOKEN=")
    assert parse_qs(urlsplit(url).query)["layout"] == ["lecture"]
    assert app_cli.LAYOUT_ENV == LAYOUT_ENV
    assert main(["app", "--dry-run", "--port", "8872"]) == 0
    cmd, url = capsys.readouterr().out.strip().splitlines()
    assert "layout" not in url and cmd.startswith("JUPYTER_TOKEN=")
