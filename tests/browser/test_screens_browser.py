"""Screenshots of the dashboard's three settings in Voilà and in JupyterLab, at two screens.

The **default** layout, the **lecture** layout and the **K = 10** preset, each in the Voilà
page of ``dnc-interactive app`` (one server, a fresh page per screen) and in JupyterLab (one
``jupyter lab`` on a temporary folder with three one-cell notebooks; one page per notebook,
resized from the first screen to the second), at 1366×768 and 1920×1080. On every screen:

* no clipped widget label (descriptions, readouts, button captions: ``scrollWidth <=
  clientWidth + 1``);
* the live feature cloud changes while playing (its checksum and update count, the
  ``data-clouds-*`` hooks of the live view) and the step counter advances;
* in the lecture layout, every chart (``.vega-embed``, ``canvas.marks``) lies within the first
  screen: in Voilà at both screens, in JupyterLab at 1920×1080 (at 1366×768 with the file
  browser open, the notebook is about 1000 px wide and the four panels stack);
* no console error and no page error.

Screenshots, taken while playing, go to ``artifacts/browser/screen-<backend>-<setting>-<W>x<H>
.png`` (and ``screen-lab-default-1366x768-nosidebar.png``, JupyterLab's file browser folded
away). A JupyterLab notebook that does not render is reloaded and run once more (printed);
a failing page leaves ``fail-<where>.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from _browser import (
    ARTIFACTS,
    K10_PRESET,
    TOKEN,
    cloud_numbers,
    launch,
    needs_browser,
    numbers,
    open_live,
    panel_boxes,
    playwright,
    serve_app,
    server,
    wait_live,
    wait_until,
)

pytestmark = [pytest.mark.browser, needs_browser]

SIZES = ((1366, 768), (1920, 1080))
#: setting -> (the Voilà page's query, the JupyterLab notebook's expression)
SETTINGS = {
    "default": ("", "Dashboard()"),
    "lecture": ("&layout=lecture", 'Dashboard(layout="lecture")'),
    "k10": ("&preset=" + quote(K10_PRESET), f"Dashboard({K10_PRESET!r})"),
}
#: steps played before the cloud is compared (curves on the screen; K = 10: below L*)
PLAYED = {"default": 150, "lecture": 150, "k10": 450}

#: widget text that must not be cut: descriptions, readouts, button captions
CLIPPED_JS = """() => [...document.querySelectorAll(
    '.widget-label, .widget-readout, .widget-toggle-button, .jupyter-button')]
  .filter(e => e.offsetParent && e.closest('.dnc-live') === null && e.textContent.trim())
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => e.textContent.trim() + ' (' + e.scrollWidth + ' > ' + e.clientWidth + ')')"""

#: page-relative boxes [x, y, w, h] of the drawn charts
CHARTS_JS = """() => [...document.querySelectorAll('.dnc-live .vega-embed, .dnc-live canvas.marks')]
  .filter(e => e.offsetParent)
  .map(e => { const r = e.getBoundingClientRect();
              return [r.left + scrollX, r.top + scrollY, r.width, r.height].map(Math.round); })"""


def _watch(page, errors: list[str], where: str) -> None:
    page.on("pageerror", lambda e: errors.append(f"{where}: page error {e}"))
    page.on(
        "console",
        lambda m: errors.append(f"{where}: console {m.text}") if m.type == "error" else None,
    )


@contextlib.contextmanager
def _shot_on_failure(page, where: str, report: list[str]):
    """On a failure: a screenshot ``fail-<where>.png`` and the report so far, printed."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(ARTIFACTS / f"fail-{where}.png"))
        print("\n" + "\n".join(report))
        raise


def _button(page, caption: str):
    """The dashboard's button reading ``caption`` (by its text: JupyterLab's accessibility
    tree leaves the widgets out)."""
    return page.locator("button.widget-button", has_text=re.compile(rf"^\s*{caption}$")).first


def _play_and_check(page, where: str) -> str:
    """Play: the step counter and the live cloud move; a screenshot while playing; Pause.
    Returns a line for the report."""
    clipped = page.evaluate(CLIPPED_JS)
    assert not clipped, f"{where}: clipped labels {clipped}"
    # attached: JupyterLab hides the content of cells scrolled out of its window
    page.wait_for_selector(".dnc-live-clouds canvas.marks", state="attached", timeout=60_000)
    start, played = numbers(page)[0], PLAYED[where.split("-")[1]]
    _button(page, "Play").click()
    wait_until(lambda: numbers(page)[0] >= start + played, 120, f"{where}: {played} steps")
    a, step_a = cloud_numbers(page), numbers(page)[0]
    wait_until(lambda: cloud_numbers(page)[2] > a[2] + 1, 30, f"{where}: cloud updates")
    time.sleep(0.5)
    b, step_b = cloud_numbers(page), numbers(page)[0]
    assert b[0] > 0 and b[1] != a[1] and step_b > step_a, f"{where}: cloud {a} -> {b}"
    page.screenshot(path=str(ARTIFACTS / f"screen-{where}.png"))
    _button(page, "Pause").click()
    _button(page, "Play").wait_for(timeout=10_000)
    return f"{where}: step {step_a} -> {step_b}, cloud updates {a[2]} -> {b[2]}"


def _charts_on_first_screen(page, width: int, height: int, where: str) -> str:
    wait_until(
        lambda: len(panel_boxes(page, "clouds") + panel_boxes(page, "snapshot")) == 2,
        60,
        f"{where}: the live cloud and the Gram panel",
    )
    time.sleep(0.5)  # the last refit
    charts = page.evaluate(CHARTS_JS)
    assert len(charts) >= 6, f"{where}: charts {charts}"  # 3 views: embed + canvas each
    off = [c for c in charts if c[0] < 0 or c[0] + c[2] > width + 1 or c[1] + c[3] > height + 1]
    assert not off, f"{where}: charts beyond the first screen {off} of {charts}"
    return f"{where}: charts {charts}"


def test_voila_screens():
    errors: list[str] = []
    report: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with serve_app() as url, playwright()() as p:
        browser = launch(p)
        try:
            for setting, (query, _) in SETTINGS.items():
                for width, height in SIZES:
                    where = f"voila-{setting}-{width}x{height}"
                    context = browser.new_context(viewport={"width": width, "height": height})
                    page = context.new_page()
                    _watch(page, errors, where)
                    with _shot_on_failure(page, where, report):
                        live = open_live(page, url + query)
                        report.append(f"{where}: live after {live:.1f} s")
                        if setting == "lecture":
                            page.wait_for_selector(".dnc-lecture", timeout=30_000)
                        report.append(_play_and_check(page, where))
                        if setting == "lecture":
                            report.append(_charts_on_first_screen(page, width, height, where))
                    page.close(run_before_unload=True)  # the beacon frees the kernel
                    context.close()
        finally:
            browser.close()
    print("\n" + "\n".join(report))
    assert not errors, errors


NOTEBOOK_CELL = (
    "import sys\n"
    'sys.modules.setdefault("rfc3987_syntax", None)\n'
    "import torch\n"
    "torch.set_num_threads(1)\n"
    "from dnc_interactive.widgets import Dashboard\n"
    "{expression}"
)
KERNEL_IDLE_JS = """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }"""


def _notebook(path: Path, expression: str) -> None:
    cell = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": NOTEBOOK_CELL.format(expression=expression),
    }
    spec = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb = {"cells": [cell], "metadata": {"kernelspec": spec}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


def _lab(root: Path):
    """``jupyter lab`` on ``root`` (news and update checks off, its own settings and
    workspaces); a context manager yielding its ``/lab`` URL."""
    from dnc_interactive.cli.app import free_port

    settings = root / ".settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    env = dict(
        os.environ,
        JUPYTERLAB_SETTINGS_DIR=str(root / ".settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(root / ".workspaces"),
    )
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={free_port()}"]
    cmd += ["--ServerApp.port_retries=0", "--ServerApp.ip=127.0.0.1"]
    cmd += [f"--ServerApp.token={TOKEN}", f"--ServerApp.root_dir={root}"]
    cmd += ["--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return server(cmd, r"(http://127\.0\.0\.1:\d+/lab)\b", env=env)


def _render_in_lab(page, url: str, where: str, report: list[str]) -> float:
    """Open the notebook, wait for its idle kernel, run it until the dashboard is live (once
    more after a reload if it does not render); the seconds from opening the page."""
    for attempt in (1, 2):
        t0 = time.monotonic()
        page.goto(url, timeout=120_000)
        try:
            page.wait_for_function(KERNEL_IDLE_JS, timeout=180_000)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
            wait_live(page, 180_000)
            page.wait_for_function(KERNEL_IDLE_JS, timeout=60_000)
            return time.monotonic() - t0
        except Exception as exc:
            report.append(f"{where}: attempt {attempt} did not render: {exc}")
            if attempt == 2:
                raise AssertionError(f"{where}: the dashboard did not render: {exc}") from exc
    raise AssertionError("unreachable")


def _toggle_left_area(page) -> None:
    page.evaluate("() => window.jupyterapp.commands.execute('application:toggle-left-area')")
    time.sleep(1.0)  # the charts refit


def test_jupyterlab_screens():
    errors: list[str] = []
    report: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dnc-lab-") as tmp:
        root = Path(tmp)
        for setting, (_, expression) in SETTINGS.items():
            _notebook(root / f"{setting}.ipynb", expression)
        with _lab(root) as lab, playwright()() as p:
            browser = launch(p)
            try:
                for setting in SETTINGS:
                    (width, height), bigger = SIZES
                    where = f"lab-{setting}-{width}x{height}"
                    context = browser.new_context(viewport={"width": width, "height": height})
                    page = context.new_page()
                    _watch(page, errors, f"lab-{setting}")
                    url = f"{lab}/tree/{setting}.ipynb?reset&token={TOKEN}"  # one tab, not the last
                    with _shot_on_failure(page, where, report):
                        live = _render_in_lab(page, url, where, report)
                        report.append(f"{where}: live after {live:.1f} s")
                        report.append(_play_and_check(page, where))
                        if setting == "default":  # and with the file browser folded away
                            _toggle_left_area(page)
                            report.append(_play_and_check(page, f"{where}-nosidebar"))
                            _toggle_left_area(page)
                        where = f"lab-{setting}-{bigger[0]}x{bigger[1]}"
                        page.set_viewport_size({"width": bigger[0], "height": bigger[1]})
                        time.sleep(1.0)  # the charts refit to the wider notebook
                        report.append(_play_and_check(page, where))
                        if setting == "lecture":  # the notebook is wide enough at 1920 px
                            report.append(_charts_on_first_screen(page, *bigger, where))
                    context.close()
            finally:
                browser.close()
    print("\n" + "\n".join(report))
    assert not errors, errors
