"""Real-browser test of ``dnc-interactive app``: Voilà page, Play, live chart, Pause, kernels.

Starts the app on a free localhost port (two pre-heated kernels, pages gone culled after
``CULL_GONE`` s), drives Debian's chromium through Playwright (no ``playwright install``) and
saves a screenshot to ``artifacts/browser/app.png``. Checks that the page fetches nothing
from another host (no CDN); that a reload and a closed tab shut their kernel down through
the page's close beacon and the kernel count returns to where it was; that a page which
vanishes while playing (its browser context closed, as in a crash) has its kernel culled;
and prints how long the page took to become a live dashboard. Skipped only when
/usr/bin/chromium or playwright is missing.
"""

from __future__ import annotations

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


@pytest.fixture
def app_url(tmp_path):
    """Start the app; yield its URL; stop it (the whole process group we started)."""
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
