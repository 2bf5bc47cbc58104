"""The dashboard beyond two classes (theory §5), the live feature clouds (theory §3.2),
auto-pause at collapse and the replay scrubber."""

import asyncio
import math

import pytest
import torch
import vl_convert as vlc

from dnc_interactive import lowrank, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.widgets import Dashboard
from dnc_interactive.widgets import controls as ctl
from dnc_interactive.widgets import probe as probes
from dnc_interactive.widgets.live_chart import (
    TRIVIAL_FOR_K2,
    cloud_spec,
    informative_metrics,
    panels_for,
    stream_spec,
)
from dnc_interactive.widgets.presets import get_preset

K10 = "many classes, deep: low-rank solutions"
DNC_WINS = "beyond two classes, shallow: DNC wins"


@pytest.fixture(autouse=True)
def _no_background_bfgs(monkeypatch):
    # the optimised SRG family takes seconds of a shared core: tests use the canonical one
    monkeypatch.setattr(probes, "OPTIMISE_LOWRANK", False)


def _titles(spec):
    panels = spec.get("concat") or spec.get("vconcat") or spec.get("hconcat") or [spec]
    out = []
    for p in panels:
        if "concat" in p or "vconcat" in p or "hconcat" in p:
            out += _titles(p)
        else:
            t = p.get("title")
            out.append(t["text"] if isinstance(t, dict) else t)
    return out


# ---------------------------------------------------------------------- K = 10, headless
def test_k10_preset_builds_plays_and_shows_the_solution_type():
    s = get_preset(K10).settings()
    assert (s.config.K, s.config.L, max(s.config.widths), s.lr) == (10, 4, 30, 0.5)
    assert s.config.lambda_H == s.config.lambda_W == pytest.approx(4e-3)
    d = Dashboard(K10, speed=0)
    try:
        assert ctl.RANGES["num_classes"][1] >= 12 and d.controls["num_classes"].max >= 12
        d.run(60)
        assert d.steps == 60
        assert "solution: " in d.status and "ranks M̃_l " in d.status
        assert d.solution in ("DNC", "in between") or d.solution.startswith("low-rank")
        html = d.controls["status"].value
        assert "dnc-solution" in html and "ranks M̃_l" in html
        # the rank panel (K > 2) and the SRG reference beside L* on the loss chart
        spec = d.chart.stream_spec
        titles = _titles(spec)
        assert any(t.startswith("Rank of the class means") for t in titles)
        assert len(titles) == 6  # two rows of curves: the clouds below on the first screen
        assert "best low-rank" in titles[0]
        (ref,) = spec["datasets"]["lowrank"]
        canon = lowrank.srg_loss(d.config.replace(dtype="float64"))
        assert ref["label"] == "SRG (r = 5)" and ref["value"] == pytest.approx(canon.loss)
        assert ref["value"] < d.trainer.optimal_loss  # the construction beats DNC here
        vlc.vegalite_to_vega(spec)
        # clouds and singular values were drawn from the probe
        assert d.clouds_drawn >= 1
        clouds = d.chart.clouds_spec
        vlc.vegalite_to_vega(clouds)
        sv = clouds["datasets"]["svals"]
        assert {r["k"] for r in sv} == {"pre", "post"} and max(r["i"] for r in sv) == 10
    finally:
        d.close()


def test_the_lowrank_reference_is_computed_once_per_config_and_only_where_it_exists():
    cfg = get_preset(K10).settings().config
    a = probes.lowrank_reference(cfg)
    b = probes.lowrank_reference(cfg.replace(seed=7))  # the seed does not matter: cached
    assert a is b and a.final and a.label.startswith("SRG")
    assert math.isnan(probes.lowrank_reference(DUFMConfig()).loss)  # K = 2
    no = probes.lowrank_reference(DUFMConfig(num_classes=4))
    assert math.isnan(no.loss) and "no low-rank construction" in no.note
    # the DNC-wins preset: the construction exists but costs more than DNC
    wins = get_preset(DNC_WINS).settings().config
    ref = probes.lowrank_reference(wins)
    assert ref.loss > theory.optimal_loss(wins)


def test_solution_type_text():
    st = probes.solution_type
    assert st("DNC", 1e-5, 1e-6) == "DNC"
    assert st("DNC", 0.5, 1.0) == "in between"  # full rank, still far from L_DNC
    assert st("low-rank (rank 6)", -0.1, 1e-3) == "low-rank (rank 6)"
    assert st("low-rank (rank 6)", 0.4, 1.0) == "in between"  # rank-deficient, above L_DNC
    assert st("trivial", 0.0, math.nan) == "zero"
    assert st("DNC", 0.0, 0.5, zero=True) == "zero"
    assert st("DNC", math.nan, 1e-4) == "DNC"  # no L* (CE): NC1 decides
    assert probes.rank_text((10, 6), (10, 10)) == "ranks M̃_l 10 6 · M_l 10 10"


def test_probe_labels_the_dnc_optimum_and_the_srg_construction():
    cfg = DUFMConfig(num_classes=10, samples_per_class=5, width=30, dtype="float64")
    dnc = probes.measure(DUFM(cfg).load_matrices(*theory.construct_optimum(cfg)))
    assert dnc.verdict == "DNC" and dnc.ranks_post == (10,) * 4
    srg = probes.measure(DUFM(cfg).load_matrices(*lowrank.srg_construction(cfg)))
    assert srg.verdict.startswith("low-rank") and srg.ranks_pre[-1] == 5
    assert srg.ranks_post[-1] == 10  # rank(σ(M̃_4)) = K (theory §5)


# ---------------------------------------------------------------------- trivially zero
def test_metrics_that_are_identically_zero_for_k2_are_never_drawn():
    assert TRIVIAL_FOR_K2 == {"nc2_etf", "equinorm", "coherence"}
    everything = ["nc1", "nc2_orth", "nc2_etf", "equinorm", "coherence", "nc3"]
    assert informative_metrics(2, everything) == ["nc1", "nc2_orth", "nc3"]
    assert informative_metrics(10, everything) == everything
    # they are identically 0 for K = 2 on any data
    d = Dashboard(speed=0)
    try:
        d.run(100)
        h = d.history
        for m in TRIVIAL_FOR_K2:
            assert h[h.metric == m]["value"].abs().max() < 1e-12
        assert not TRIVIAL_FOR_K2 & set(panels_for(d.config))
        titles = " ".join(_titles(d.training_chart().to_dict(validate=False)))
        assert "ETF" not in titles and "equinorm" not in titles and "coherence" not in titles
    finally:
        d.close()
    d = Dashboard(num_classes=6, samples_per_class=5, width=30, speed=0)
    try:
        d.run(50)
        titles = " ".join(_titles(d.training_chart().to_dict(validate=False)))
        assert "ETF" in titles and "rank" in titles  # informative for K > 2
        assert "rank" in panels_for(d.config)
    finally:
        d.close()


# ---------------------------------------------------------------------- feature clouds
def test_cloud_point_cap_and_fixed_subset():
    cfg = DUFMConfig(num_classes=12, samples_per_class=200, depth=8, width=128)
    model = DUFM(cfg)
    panels = ctl.cloud_panels("all", cfg.L)
    assert len(panels) == 15 and panels[0] == (1, "post")
    proj = probes.CloudProjector(cfg, model.labels, panels)
    p = probes.measure(model, proj)
    assert len(p.clouds) == proj.points <= probes.CLOUD_POINTS
    assert sum(r["m"] for r in p.clouds) == 12 * 15  # every class mean of every panel
    small = probes.CloudProjector(DUFMConfig(), DUFM(DUFMConfig()).labels, [(4, "post")])
    assert small.points == 102  # K = 2, n = 50: every sample and both means
    with pytest.raises(ValueError, match="panel=.* is not valid"):
        probes.CloudProjector(cfg, model.labels, [(9, "post")])
    with pytest.raises(ValueError, match="clouds='x' is not valid"):
        ctl.cloud_panels("x", 4)


@pytest.mark.parametrize("K", [2, 10])
def test_cloud_projection_is_stable_between_two_updates(K):
    n = 50 if K == 2 else 5
    d = Dashboard(num_classes=K, samples_per_class=n, width=30, speed=0)
    try:
        d.controls["clouds"].value = "ends"
        assert d.cloud_panels == [(1, "post"), (4, "pre"), (4, "post")]
        d.run(200)
        proj = d.session.projector
        first = probes.measure(d.trainer.model, proj, d.steps)
        d.session.step(5)
        second = probes.measure(d.trainer.model, proj, d.steps)
        assert len(first.clouds) == len(second.clouds) <= probes.CLOUD_POINTS
        for i, (x0, x1, y0, y1) in enumerate(proj.domains):
            span = max(x1 - x0, y1 - y0)
            a = [r for r in first.clouds if r["p"] == i]
            b = [r for r in second.clouds if r["p"] == i]
            assert [r["c"] for r in a] == [r["c"] for r in b]  # the same points, in order
            moved = max(math.hypot(p["x"] - q["x"], p["y"] - q["y"]) for p, q in zip(a, b))
            assert moved < 0.05 * span, (K, i, moved, span)  # points move, never jump
        # the fixed axes come from the theory's target norms
        b_L = max(theory.layer_norms(d.config)[-1])
        assert proj.domains[-1][1] == pytest.approx(1.3 * b_L)
        targets = [r for r in proj.target_rows() if r["p"] == 2 and r["o"] < 0]
        assert len(targets) == K
        assert max(math.hypot(r["x"], r["y"]) for r in targets) == pytest.approx(b_L)
        vlc.vegalite_to_vega(d.chart.clouds_spec)
    finally:
        d.close()


def test_k2_plane_of_the_class_means_at_the_optimum():
    cfg = DUFMConfig(dtype="float64")
    model = DUFM(cfg).load_matrices(*theory.construct_optimum(cfg))
    proj = probes.CloudProjector(cfg, model.labels, [(4, "post")])
    p = probes.measure(model, proj)
    b = theory.layer_norms(cfg)[-1]
    means = sorted((r["c"], r["x"], r["y"]) for r in p.clouds if r["m"] == 1)
    assert means[0][1:] == pytest.approx((b[0], 0.0), abs=1e-9)
    assert means[1][1:] == pytest.approx((0.0, b[1]), abs=1e-9)  # orthogonal, on target


def test_cloud_spec_shapes_and_lecture_panel():
    spec = cloud_spec(
        10, 4, [(4, "post")], [(-1, 1, -1, 1)], [], style="lecture", singular_values=False
    )
    assert "concat" not in spec and spec["width"] >= 200
    assert spec["config"]["axis"]["labelFontSize"] >= 18
    lec = Dashboard(layout="lecture")
    try:
        assert lec.cloud_panels == [(4, "post")]
        lec.controls["snapshot_kind"].value = "pre"
        assert lec.cloud_panels == [(4, "pre")]
    finally:
        lec.close()


# ---------------------------------------------------------------------- auto-pause
def test_auto_pause_fires_on_a_collapsed_run_with_a_marker():
    d = Dashboard(speed=0)
    try:
        assert d.controls["auto_pause"].value is False  # off by default
        d.set_auto_pause(True)
        assert d.session.auto_pause

        async def main():
            d.play()
            await asyncio.wait_for(d.session.wait(), 120)

        asyncio.run(main())
        s = d.session
        assert not s.playing and s.collapsed
        assert s.auto_paused_at is not None and s.auto_paused_at == s.collapsed_at
        assert d.steps - s.collapsed_at <= 5000  # stopped at the update where it collapsed
        events = [r for r in d.chart.store.rows() if r[3] == "event" and r[4] == "collapsed"]
        assert [r[1] for r in events] == [s.collapsed_at]  # the marker on the loss chart
        assert f"auto-paused at step {s.collapsed_at}" in d.status
        loss = d.chart.stream_spec["concat"][0]["layer"]
        assert any("'collapsed'" in str(layer.get("transform")) for layer in loss)
    finally:
        d.close()


def test_without_auto_pause_the_collapse_is_still_marked_and_run_goes_on():
    d = Dashboard(speed=0)
    try:
        d.run(2000)
        s = d.session
        assert s.collapsed_at is not None and s.auto_paused_at is None and d.steps == 2000
    finally:
        d.close()


# ---------------------------------------------------------------------- replay
def test_replay_scrubber_redraws_the_panels_from_history():
    d = Dashboard(speed=0)
    try:
        d.run(600)
        r = d.controls["replay"]
        assert r.max == r.value == 600 and len(d.cloud_history) >= 1
        live_rows = len(d.chart.store.rows())
        before = d.chart.messages
        r.value = 200  # a user drags the slider
        assert d.replaying == 200 and d.chart.upto == 200
        assert d.chart.messages > before  # the stream and the clouds were redrawn
        assert "replay" in d.controls["status"].value and "step 200" in d.controls["status"].value
        assert d.controls["live"].layout.display is None  # the "live" button shows
        # the clouds of the nearest earlier snapshot
        frame = d._cloud_frame(200)
        assert frame is not None and d.chart.clouds_spec["datasets"]["cloud"] == frame["cloud"]
        r.value = 600  # back to the end: live again
        assert d.replaying is None and d.chart.upto is None
        assert len(d.chart.store.rows()) == live_rows
        d.replay(100)
        d.step(10)  # stepping leaves the replay
        assert d.replaying is None and d.steps == 610 and r.value == 610
        with pytest.raises(ValueError, match="step=-1 is not valid"):
            d.replay(-1)
    finally:
        d.close()


def test_k10_config_validates_up_to_the_slider_limits():
    c = ctl.build_controls()
    cfg = DUFMConfig(num_classes=c["num_classes"].max, samples_per_class=5, width=30)
    assert cfg.K >= 12
    proj = probes.CloudProjector(cfg, DUFM(cfg).labels, ctl.cloud_panels("last", 4))
    assert proj.points <= probes.CLOUD_POINTS
    assert torch.is_tensor(proj.index)
    spec = stream_spec(cfg, 0.1)
    assert "rank" in [p for p in panels_for(cfg)]
    vlc.vegalite_to_vega(spec)
