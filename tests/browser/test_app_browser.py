"""Real-browser test of ``dnc-interactive app``: Voilà page, Play, live chart, Pause.

Starts the app on a free localhost port, drives Debian's chromium through Playwright (no
``playwright install``), and saves a screenshot to ``artifacts/browser/app.png``. Skipped only
when /usr/bin/chromium or playwright is missing.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

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
        [sys.executable, "-m", "dnc_interactive", "app", "--no-browser", f"--port={port}"],
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
    end = time.monotonic() + 240
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
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _numbers(page):
    live = page.locator(".dnc-live").first
    counter = page.locator("text=/^step \\d+$/").first.inner_text()
    return (
        int(counter.split()[1]),
        int(live.get_attribute("data-stream-step") or -1),
        int(live.get_attribute("data-stream-rows") or 0),
    )


def _wait(condition, timeout: float, what: str):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
@pytest.mark.skipif(_playwright() is None, reason="needs playwright")
def test_app_plays_streams_and_pauses_in_a_real_browser(app_url):
    errors: list[str] = []
    with _playwright()() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(app_url, timeout=120_000)
            page.wait_for_selector(".dnc-live-stream canvas.marks", timeout=180_000)
            page.wait_for_selector(".widget-slider", timeout=30_000)
            step0, chart0, rows0 = _wait(
                lambda: (n := _numbers(page))[2] > 0 and n, 60, "the first streamed rows"
            )
            assert step0 == 0 and chart0 == 0

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
        finally:
            browser.close()
    assert not errors, errors
