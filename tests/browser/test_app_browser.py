"""Real-browser test of ``dnc-interactive app``: Voilà page, Play, live chart, Pause, kernels.

Starts the app on a free localhost port (two pre-heated kernels, pages gone culled after
``CULL_GONE`` s), drives Debian's chromium through Playwright (no ``playwright install``) and
saves a screenshot to ``artifacts/browser/app.png``. Checks that the page fetches nothing
from another host (no CDN); that a reload and a closed tab shut their kernel down through
the page's close beacon and the kernel count returns to where it was; that a page which
vanishes while playing (its browser context closed, as in a crash) has its kernel culled;
and prints how long the page took to become a live dashboard. A second test serves
``app --lecture`` and checks, at 1280×720 and 1366×768, that the four lecture panels lie
within the first screen (the loss, NC1, the live feature cloud and the Gram), that Space plays /
pauses and → steps, and that the default layout
(``?layout=default``) keeps its charts beside the controls at 1366×768; screenshots go to
``artifacts/browser/``. Skipped only when /usr/bin/chromium or playwright is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-test-7c1d"
CULL_GONE = 30

pytestmark = pytest.mark.browser


def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright


@contextlib.contextmanager
def _serve(*flags: str):
    """Start the app with ``flags``; yield its URL; stop it (the whole process group)."""
    from dnc_interactive.cli.app import free_port

    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dnc_interactive",
            "app",
            "--no-browser",
            f"--port={port}",
            f"--token={TOKEN}",
            *flags,
            "--",  # a page gone without its close beacon is culled after CULL_GONE s
            f"--AppKernelManager.cull_disconnected_timeout={CULL_GONE}",
            "--MappingKernelManager.cull_interval=5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            log.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    url = None
    end = time.monotonic() + 400
    try:
        while url is None and time.monotonic() < end and proc.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            m = re.search(r"dashboard: (http\S+)", line)
            url = m.group(1) if m else None
        assert url, "the app printed no URL:\n" + "".join(log[-30:])
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def app_url():
    """The app (default layout) on a free localhost port."""
    with _serve() as url:
        yield url


@pytest.fixture
def lecture_url():
    """The app started with ``--lecture``."""
    with _serve("--lecture") as url:
        yield url


def _api(url: str, what: str):
    parts = urlsplit(url)
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.netloc}/api/{what}", headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _status(url: str) -> dict:
    return _api(url, "status")


def _visitor_kernels(url: str) -> list[str]:
    return [k["id"] for k in _api(url, "kernels") if not k["pooled"]]


def _numbers(page):
    live = page.locator(".dnc-live").first
    counter = page.locator("text=/^step \\d+$/").first.inner_text()
    return (
        int(counter.split()[1]),
        int(live.get_attribute("data-stream-step") or -1),
        int(live.get_attribute("data-stream-rows") or 0),
    )


def _wait(condition, timeout: float, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def _open_live(page, url: str, reload: bool = False) -> float:
    """Load (or reload) the page until the dashboard is live (a slider, streamed rows);
    the seconds until the slider showed."""
    t0 = time.monotonic()
    if reload:
        page.reload(timeout=300_000)
    else:
        page.goto(url, timeout=300_000)
    page.wait_for_selector(".widget-slider", timeout=300_000)
    seconds = time.monotonic() - t0
    page.wait_for_selector(".dnc-live-stream canvas.marks", timeout=180_000)
    _wait(lambda: (n := _numbers(page))[2] > 0 and n, 60, "the first streamed rows")
    return seconds


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
@pytest.mark.skipif(_playwright() is None, reason="needs playwright")
def test_app_plays_streams_pauses_and_gives_its_kernels_back(app_url):
    errors: list[str] = []
    foreign: list[str] = []

    def note(kind: str, address: str) -> None:
        parts = urlsplit(address)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname != "127.0.0.1":
            foreign.append(f"{kind} {address}")

    start = _status(app_url)
    assert start["visitors"] == 0, start

    def kernels_back(timeout: float, what: str) -> float:
        """Wait until the kernel count is back to ``start`` with no visitor; seconds."""
        t0 = time.monotonic()
        _wait(
            lambda: (s := _status(app_url))["visitors"] == 0 and s["kernels"] == start["kernels"],
            timeout,
            lambda: f"{what}: the kernel count to return to {start}, now {_status(app_url)}",
        )
        return time.monotonic() - t0

    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            # One browser context for the tab: it outlives the tab, as a browser window does,
            # so the tab's close beacon is delivered.
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: note("request", r.url))
            page.on("websocket", lambda ws: note("websocket", ws.url))
            first = _open_live(page, app_url)
            step0, chart0, _ = _numbers(page)
            assert step0 == 0 and chart0 == 0
            (visitor,) = _visitor_kernels(app_url)

            page.get_by_role("button", name="Play").click()
            _wait(lambda: _numbers(page)[1] >= 50, 60, "the chart to advance after Play")
            a = _numbers(page)
            time.sleep(1.0)
            b = _numbers(page)
            assert b[0] > a[0] and b[1] > a[1], (a, b)  # counter and chart data advance
            assert "playing" in page.locator(".dnc-status").inner_text()

            page.get_by_role("button", name="Pause").click()
            page.get_by_role("button", name="Play").wait_for(timeout=10_000)
            time.sleep(0.7)
            c = _numbers(page)
            time.sleep(1.5)
            d = _numbers(page)
            assert c[:2] == d[:2], (c, d)  # pause stops both
            assert d[1] == d[0]  # the chart holds the step the counter shows
            assert "paused" in page.locator(".dnc-status").inner_text()

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)

            # Reload while playing: the page's close beacon shuts the old kernel down (before
            # the culling of pages gone could), and the page is live again.
            page.get_by_role("button", name="Play").click()
            _wait(lambda: _numbers(page)[0] > d[0], 30, "playing again")
            t0 = time.monotonic()
            reloaded = _open_live(page, app_url, reload=True)
            assert _numbers(page)[0] < 5  # a fresh dashboard, not the old run
            _wait(
                lambda: visitor not in _visitor_kernels(app_url),
                max(5.0, CULL_GONE - (time.monotonic() - t0) - 5),
                "the reloaded page's old kernel to be shut down by its beacon",
            )
            (visitor,) = _visitor_kernels(app_url)

            # Play, then close the tab: its beacon shuts the kernel down; the kernel count
            # returns to where it was.
            page.get_by_role("button", name="Play").click()
            _wait(lambda: _numbers(page)[1] >= 20, 60, "the chart to advance")
            t0 = time.monotonic()
            page.close(run_before_unload=True)
            _wait(
                lambda: visitor not in _visitor_kernels(app_url),
                CULL_GONE - 5,
                "the closed tab's kernel to be shut down by its beacon",
            )
            closed = time.monotonic() - t0
            kernels_back(120, "after closing the tab")

            # A page that vanishes without a word (a crashed browser: its context goes, the
            # beacon with it) while playing: its run is stopped by culling within CULL_GONE.
            crashed = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = crashed.new_page()
            _open_live(page, app_url)
            (visitor,) = _visitor_kernels(app_url)
            page.get_by_role("button", name="Play").click()
            _wait(lambda: _numbers(page)[1] >= 20, 60, "the chart to advance")
            t0 = time.monotonic()
            crashed.close()
            _wait(
                lambda: visitor not in _visitor_kernels(app_url),
                CULL_GONE + 60,
                "the vanished page's running kernel to be culled",
            )
            culled = time.monotonic() - t0
            kernels_back(120, "after the vanished page")
        finally:
            browser.close()
    print(
        f"\npage to live dashboard: first {first:.2f} s, after a reload {reloaded:.2f} s; "
        f"a closed tab's kernel gone after {closed:.1f} s, a vanished page's after {culled:.1f} s"
    )
    assert not errors, errors
    assert not foreign, foreign  # nothing from a CDN or any other host


def _boxes(page, slot: str) -> list[list[int]]:
    live = page.locator(".dnc-live").first
    return json.loads(live.get_attribute(f"data-{slot}-panels") or "[]")


def _inside(box, width: int, height: int) -> bool:
    x, y, w, h = box
    return x >= 0 and y >= 0 and x + w <= width and y + h <= height


def _check_lecture(browser, url: str, width: int, height: int, errors: list[str]) -> str:
    """One lecture page at ``width`` x ``height``: keys, the four panels on the first screen,
    a screenshot. Returns a line for the report."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    _open_live(page, url)
    page.wait_for_selector(".dnc-lecture", timeout=60_000)
    status = page.locator(".dnc-status")
    page.keyboard.press("Space")  # plays
    _wait(lambda: _numbers(page)[0] >= 10, 60, "Space to start playing")
    assert "playing" in status.inner_text()
    _wait(lambda: _numbers(page)[0] >= 800, 120, "800 steps (the default preset collapses)")
    page.keyboard.press("Space")  # pauses
    page.get_by_role("button", name="Play").wait_for(timeout=10_000)
    _wait(lambda: "paused" in status.inner_text(), 10, "Space to pause")
    before = _numbers(page)[0]
    page.keyboard.press("ArrowRight")  # steps
    _wait(lambda: _numbers(page)[0] > before, 10, "the right arrow to step")
    _wait(
        lambda: len(_boxes(page, "clouds") + _boxes(page, "snapshot")) == 2,
        60,
        "the live cloud and the Gram panel",
    )
    time.sleep(1.0)  # the snapshot after the step
    stream = _boxes(page, "stream")
    snapshot = _boxes(page, "clouds") + _boxes(page, "snapshot")  # the live cloud, the Gram
    assert len(stream) == 2 and len(snapshot) == 2, (stream, snapshot)
    for box in stream + snapshot:
        assert _inside(box, width, height), (width, height, stream, snapshot)
    fonts = page.evaluate(
        "() => [...document.querySelectorAll('.dnc-lecture .dnc-status')]"
        ".map(e => parseFloat(getComputedStyle(e).fontSize))"
    )
    assert fonts and min(fonts) >= 15, fonts
    page.screenshot(path=str(ARTIFACTS / f"lecture-{width}x{height}.png"))
    context.close()
    return f"lecture {width}x{height}: panels {stream + snapshot}"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
@pytest.mark.skipif(_playwright() is None, reason="needs playwright")
def test_lecture_layout_fits_the_first_screen_and_answers_keys(lecture_url):
    errors: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = []
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width, height in ((1280, 720), (1366, 768)):
                report.append(_check_lecture(browser, lecture_url, width, height, errors))

            # the default layout on a 1366x768 screen: the charts beside the controls
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            _open_live(page, lecture_url + "&layout=default")
            assert page.locator(".dnc-lecture").count() == 0
            controls = page.locator(".widget-accordion").first.bounding_box()
            canvas = page.locator(".dnc-live-stream canvas").first.bounding_box()
            assert canvas["x"] >= controls["x"] + controls["width"] - 1, (controls, canvas)
            assert canvas["y"] < 768 / 2, canvas  # on the first screen, not below the controls
            stream = _boxes(page, "stream")
            assert len(stream) == 6 and all(b[0] + b[2] <= 1366 for b in stream), stream
            labels = page.evaluate(
                "() => [...document.querySelectorAll('.widget-toggle-buttons .widget-label')]"
                ".filter(e => e.offsetParent).map(e => e.scrollWidth <= e.clientWidth)"
            )
            assert all(labels), labels  # no clipped "activation" / "loss" labels
            page.screenshot(path=str(ARTIFACTS / "default-1366x768.png"))
            report.append(f"default 1366x768: controls {controls}, charts {canvas}")
            context.close()
        finally:
            browser.close()
    print("\n" + "\n".join(report))
    assert not errors, errors


K10_PRESET = "many classes, deep: low-rank solutions"


def _clouds(page) -> tuple[int, str, int]:
    """(points, checksum, updates) of the live feature-cloud view."""
    live = page.locator(".dnc-live").first
    return (
        int(live.get_attribute("data-clouds-points") or 0),
        live.get_attribute("data-clouds-sum") or "",
        int(live.get_attribute("data-clouds-updates") or 0),
    )


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
@pytest.mark.skipif(_playwright() is None, reason="needs playwright")
def test_k10_dashboard_clouds_move_while_playing(app_url):
    """The K = 10 preset at 1366x768: the feature clouds (at most 400 points) change while
    playing, the status line names the solution type, no console error; screenshots of the
    default layout and of the lecture layout (its four panels on the first screen)."""
    from urllib.parse import quote

    errors: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            _open_live(page, app_url + "&preset=" + quote(K10_PRESET))
            page.wait_for_selector(".dnc-live-clouds canvas.marks", timeout=60_000)
            _wait(lambda: _clouds(page)[0] > 0, 60, "the first cloud points")
            page.get_by_role("button", name="Play").click()
            _wait(lambda: _numbers(page)[0] >= 300, 120, "300 steps")
            a = _clouds(page)
            time.sleep(1.5)
            b = _clouds(page)
            assert 0 < a[0] <= 400 and 0 < b[0] <= 400, (a, b)
            assert b[2] > a[2] and b[1] != a[1], (a, b)  # the cloud data changes while playing
            _wait(lambda: _numbers(page)[0] >= 1500, 180, "1500 steps")
            page.get_by_role("button", name="Pause").click()
            page.get_by_role("button", name="Play").wait_for(timeout=10_000)
            _wait(lambda: "solution:" in page.locator(".dnc-status").inner_text(), 10, "solution")
            time.sleep(1.5)  # the final update and the snapshot
            text = page.locator(".dnc-status").inner_text()
            assert "ranks M̃_l" in text, text
            page.screenshot(path=str(ARTIFACTS / "k10-1366x768.png"))
            context.close()

            # the lecture layout with K = 10: four panels, the live cloud among them
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            _open_live(page, app_url + "&layout=lecture&preset=" + quote(K10_PRESET))
            page.wait_for_selector(".dnc-lecture .dnc-live-clouds canvas.marks", timeout=60_000)
            page.keyboard.press("Space")
            c0 = _clouds(page)
            _wait(lambda: _numbers(page)[0] >= 1500, 180, "1500 steps in the lecture layout")
            assert _clouds(page)[1] != c0[1]  # the lecture's cloud moves too
            page.keyboard.press("Space")
            page.get_by_role("button", name="Play").wait_for(timeout=10_000)
            time.sleep(1.5)
            assert page.locator(".dnc-live-error").count() == 0
            boxes = _boxes(page, "stream") + _boxes(page, "clouds") + _boxes(page, "snapshot")
            assert len(boxes) == 4 and all(_inside(b, 1366, 768) for b in boxes), boxes
            page.screenshot(path=str(ARTIFACTS / "k10-lecture-1366x768.png"))
            context.close()
        finally:
            browser.close()
    print(f"\nK = 10 clouds: {a} -> {b}; status: {text}")
    assert not errors, errors
