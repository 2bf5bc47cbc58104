"""Tests of offline rendering and saving (vl-convert; no network).

Rendering costs ~1-2 s per image, so only three images are rendered here.
"""

from __future__ import annotations

import json

import altair as alt
import pandas as pd
import pytest
from chart_helpers import make_history

from dnc_interactive.charts import (
    SAVE_FORMATS,
    chart_to_png_bytes,
    enable_offline,
    loss_chart,
    output_scale_chart,
    save_chart,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def small_chart() -> alt.LayerChart:
    return output_scale_chart(
        pd.DataFrame({"label": [0, 1], "n": [8, 2], "q": [0.9, 0.4], "q_theory": [0.9, 0.5]})
    )


def test_save_chart_png_and_svg_offline(tmp_path):
    chart = loss_chart(make_history(num_steps=30))
    png = save_chart(chart, tmp_path / "deep" / "dir" / "loss.png")  # parents created
    assert png == tmp_path / "deep" / "dir" / "loss.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    svg = save_chart(chart, str(tmp_path / "loss.SVG"))  # extension case does not matter
    text = svg.read_text()
    assert "<svg" in text[:500] and "Relative gap" in text


def test_save_chart_html_and_json_are_self_contained(tmp_path, small_chart):
    html = save_chart(small_chart, tmp_path / "q.html").read_text()
    assert "<html" in html.lower()
    assert "cdn.jsdelivr" not in html  # JavaScript inlined: works offline
    spec = json.loads(save_chart(small_chart, tmp_path / "q.json").read_text())
    assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    assert SAVE_FORMATS == (".png", ".svg", ".html", ".json")


def test_save_chart_rejects_unknown_extension_naming_the_path(tmp_path, small_chart):
    target = tmp_path / "chart.pdf"
    with pytest.raises(ValueError, match="chart.pdf"):
        save_chart(small_chart, target)
    with pytest.raises(ValueError, match="no_extension"):
        save_chart(small_chart, tmp_path / "no_extension")
    assert not target.exists()


def test_chart_to_png_bytes(small_chart):
    data = chart_to_png_bytes(small_chart, scale_factor=1.0)
    assert data[:8] == PNG_MAGIC and len(data) > 1000


def test_enable_offline_sets_the_renderer_and_restores():
    previous, options = alt.renderers.active, dict(alt.renderers.options)
    try:
        enable_offline()
        assert alt.renderers.active == "jupyter"
        assert alt.renderers.options["offline"] is True
        assert alt.renderers.options["embed_options"] == {"renderer": "canvas"}
        enable_offline("jupyter", canvas=False)
        assert alt.renderers.options["embed_options"] is None
        with pytest.raises(ValueError, match="renderer"):
            enable_offline("jupyterlab")
    finally:
        alt.renderers.enable(previous, **options)


def test_enable_offline_svg_alternative(monkeypatch):
    calls = []
    monkeypatch.setattr(alt.JupyterChart, "enable_offline", lambda *a, **k: calls.append(k))
    previous, options = alt.renderers.active, dict(alt.renderers.options)
    try:
        enable_offline("svg")
        assert alt.renderers.active == "svg"
        assert calls == [{}]  # explicit JupyterChart widgets go offline too
    finally:
        alt.renderers.enable(previous, **options)
