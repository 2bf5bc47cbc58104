"""Every chart carries a formula tooltip and a link to its theory section; every linked
anchor exists in docs/theory.md (computed the way GitHub names heading anchors)."""

import json
from pathlib import Path

import pytest

from dnc_interactive.config import DUFMConfig
from dnc_interactive.widgets import Dashboard
from dnc_interactive.widgets import theory_links as tl
from dnc_interactive.widgets.live_chart import STREAM_PANELS, cloud_spec, stream_spec

THEORY = Path(__file__).resolve().parents[2] / "docs" / "theory.md"


def _anchors() -> set[str]:
    lines = THEORY.read_text(encoding="utf-8").splitlines()
    return {tl.anchor(line) for line in lines if line.startswith("#")}


def test_anchors_are_computed_like_github():
    assert tl.anchor("## 2. The optimum") == "2-the-optimum"
    assert tl.anchor("### 3.2 NC1 / DNC1: within-class variability (`nc1`, `nc1_trace`)") == (
        "32-nc1--dnc1-within-class-variability-nc1-nc1_trace"
    )
    assert tl.anchor("### 7.2 Optimal loss, K = 2, n = 50, all λ = 1e-3 (ReLU L-DUFM)") == (
        "72-optimal-loss-k--2-n--50-all-λ--1e-3-relu-l-dufm"
    )


def test_every_linked_anchor_exists_in_the_theory_page():
    anchors = _anchors()
    for name, info in tl.PANELS.items():
        assert info.url.startswith(tl.THEORY_URL + "#"), name
        assert info.url.split("#", 1)[1] in anchors, (name, info.heading)
        assert info.formula and info.label.startswith("ℹ §")


def _hrefs(spec) -> list[str]:
    text = json.dumps(spec, ensure_ascii=False)
    return [part.split('"', 1)[0] for part in text.split('"href": {"value": "')[1:]]


@pytest.mark.parametrize("lecture", [False, True])
def test_every_live_panel_links_its_theory_section(lecture):
    cfg = DUFMConfig(num_classes=6)
    panels = ("loss", "nc1") if lecture else STREAM_PANELS
    spec = stream_spec(cfg, 0.01, panels=panels, style="lecture" if lecture else "default")
    assert len(_hrefs(spec)) == len(panels)
    for view in spec["concat"]:
        info = view["layer"][-1]
        assert info["mark"]["type"] == "text" and "tooltip" in info["encoding"]
    clouds = cloud_spec(2, 2, [(2, "post")], [(-1, 1, -1, 1)], [])
    assert _hrefs(clouds) == [tl.PANELS["clouds"].url, tl.PANELS["svals"].url]


def test_snapshots_carry_the_link_and_every_chart_has_hover_values():
    d = Dashboard()
    d.run(50)
    for which, panel in tl.SNAPSHOT_PANELS.items():
        d.controls["snapshot"].value = which
        d._refresh_snapshot()
        assert tl.PANELS[panel].url in _hrefs(d.chart.snapshot_spec), which
        assert '"tooltip"' in json.dumps(d.chart.snapshot_spec), which
    cloud = json.dumps(d.chart.clouds_spec)
    assert cloud.count('"tooltip"') >= 3  # points, means, singular values
    lecture = Dashboard(layout="lecture")
    lecture._refresh_snapshot()
    assert tl.PANELS["gram"].url in _hrefs(lecture.chart.snapshot_spec)
    d.close()
    lecture.close()


@pytest.mark.parametrize("panel", ["nc1", "nc2_orth", "nc3", "rank"])
def test_metric_panels_cite_the_registry_section(panel):
    """A metric's panel links the section that the vocabulary's registry gives it, so the
    dashboard and the charts cite the same place (dnc_interactive.schema.METRICS)."""
    from dnc_interactive.schema import metric_info

    entry = metric_info(panel)
    assert entry is not None, panel
    assert tl.PANELS[panel].section == entry.section, (panel, entry.section)
