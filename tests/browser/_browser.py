"""Shared helpers of the real-browser tests: chromium through Playwright, the app's server on
a free port, the dashboard's test hooks (the step counter, the live view's ``data-*``
attributes) and polling with clear messages."""

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
K10_PRESET = "many classes, deep: low-rank solutions"


def playwright():
    """Playwright's ``sync_playwright``, or None when it is not installed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    return sync_playwright


#: Skips a test without chromium or playwright.
needs_browser = pytest.mark.skipif(
    not CHROMIUM.exists() or playwright() is None, reason="needs /usr/bin/chromium and playwright"
)


@contextlib.contextmanager
def server(cmd: list[str], url_pattern: str, timeout: float = 400, **popen):
    """Start ``cmd`` in its own process group; yield the first URL its output matches with
    ``url_pattern`` (group 1); stop the whole group."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **popen,
    )
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []

    def read() -> None:
        for line in proc.stdout:
            log.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    url = None
    end = time.monotonic() + timeout
    try:
        while url is None and time.monotonic() < end and proc.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            m = re.search(url_pattern, line)
            url = m.group(1) if m else None
        assert url, f"{cmd[:4]} printed no URL:\n" + "".join(log[-30:])
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def serve_app(*flags: str, server_args: tuple[str, ...] = ()):
    """``dnc-interactive app`` with ``flags`` (and ``-- server_args``) on a free port; a
    context manager yielding the page's URL."""
    from dnc_interactive.cli.app import free_port

    cmd = [sys.executable, "-m", "dnc_interactive", "app", "--no-browser"]
    cmd += [f"--port={free_port()}", f"--token={TOKEN}", *flags]
    if server_args:
        cmd += ["--", *server_args]
    return server(cmd, r"dashboard: (http\S+)")


def api(url: str, what: str):
    """GET ``/api/<what>`` of the server of ``url`` (with the token); the JSON."""
    parts = urlsplit(url)
    request = urllib.request.Request(
        f"{parts.scheme}://{parts.netloc}/api/{what}", headers={"Authorization": f"token {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def numbers(page) -> tuple[int, int, int]:
    """(the step counter, the live chart's step, its streamed rows)."""
    live = page.locator(".dnc-live").first
    counter = page.locator("text=/^step \\d+$/").first.inner_text()
    return (
        int(counter.split()[1]),
        int(live.get_attribute("data-stream-step") or -1),
        int(live.get_attribute("data-stream-rows") or 0),
    )


def cloud_numbers(page) -> tuple[int, str, int]:
    """(points, checksum, updates) of the live feature-cloud view."""
    live = page.locator(".dnc-live").first
    return (
        int(live.get_attribute("data-clouds-points") or 0),
        live.get_attribute("data-clouds-sum") or "",
        int(live.get_attribute("data-clouds-updates") or 0),
    )


def panel_boxes(page, slot: str) -> list[list[int]]:
    """The page-relative boxes [x, y, w, h] of the top-level panels of the live ``slot``."""
    live = page.locator(".dnc-live").first
    return json.loads(live.get_attribute(f"data-{slot}-panels") or "[]")


def inside_screen(box, width: int, height: int) -> bool:
    x, y, w, h = box
    return x >= 0 and y >= 0 and x + w <= width and y + h <= height


def wait_until(condition, timeout: float, what):
    """Poll ``condition`` until it returns something true (returned); else fail, naming
    ``what`` (a string or a callable giving one)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def wait_live(page, timeout_ms: int = 300_000) -> None:
    """Wait until the page's dashboard is live: its chart drawn, the first rows streamed."""
    page.wait_for_selector(".dnc-live-stream canvas.marks", timeout=timeout_ms)
    wait_until(lambda: (n := numbers(page))[2] > 0 and n, 60, "the first streamed rows")


def open_live(page, url: str, reload: bool = False) -> float:
    """Load (or reload) the page until the dashboard is live (a slider, streamed rows);
    the seconds until the slider showed."""
    t0 = time.monotonic()
    if reload:
        page.reload(timeout=300_000)
    else:
        page.goto(url, timeout=300_000)
    page.wait_for_selector(".widget-slider", timeout=300_000)
    seconds = time.monotonic() - t0
    wait_live(page, 180_000)
    return seconds


def launch(p):
    """Debian's chromium, headless, through the Playwright instance ``p``."""
    return p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
