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

import time
from urllib.parse import urlsplit

import pytest
from _browser import (
    ARTIFACTS,
    K10_PRESET,
    api,
    cloud_numbers,
    inside_screen,
    launch,
    needs_browser,
    numbers,
    open_live,
    panel_boxes,
    playwright,
    serve_app,
    wait_until,
)

CULL_GONE = 30
#: a page gone without its close beacon is culled after CULL_GONE s
CULLING = (
    f"--AppKernelManager.cull_disconnected_timeout={CULL_GONE}",
    "--MappingKernelManager.cull_interval=5",
)

pytestmark = pytest.mark.browser


@pytest.fixture
def app_url():
    """The app (default layout) on a free localhost port."""
    with serve_app(server_args=CULLING) as url:
        yield url


@pytest.fixture
def lecture_url():
    """The app started with ``--lecture``."""
    with serve_app("--lecture", server_args=CULLING) as url:
        yield url


def _status(url: str) -> dict:
    return api(url, "status")


def _visitor_kernels(url: str) -> list[str]:
    return [k["id"] for k in api(url, "kernels") if not k["pooled"]]


@needs_browser
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
        wait_until(
            lambda: (s := _status(app_url))["visitors"] == 0 and s["kernels"] == start["kernels"],
            timeout,
            lambda: f"{what}: the kernel count to return to {start}, now {_status(app_url)}",
        )
        return time.monotonic() - t0

    with playwright()() as p:
        browser = launch(p)
        try:
            # One browser context for the tab: it outlives the tab, as a browser window does,
            # so the tab's close beacon is delivered.
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: note("request", r.url))
            page.on("websocket", lambda ws: note("websocket", ws.url))
            first = open_live(page, app_url)
            step0, chart0, _ = numbers(page)
            assert step0 == 0 and chart0 == 0
            (visitor,) = _visitor_kernels(app_url)

            page.get_by_role("button", name="Play").click()
            wait_until(lambda: numbers(page)[1] >= 50, 60, "the chart to advance after Play")
            a = numbers(page)
            time.sleep(1.0)
            b = numbers(page)
            assert b[0] > a[0] and b[1] > a[1], (a, b)  # counter and chart data advance
            assert "playing" in page.locator(".dnc-status").inner_text()

            page.get_by_role("button", name="Pause").click()
            page.get_by_role("button", name="Play").wait_for(timeout=10_000)
            time.sleep(0.7)
            c = numbers(page)
            time.sleep(1.5)
            d = numbers(page)
            assert c[:2] == d[:2], (c, d)  # pause stops both
            assert d[1] == d[0]  # the chart holds the step the counter shows
            assert "paused" in page.locator(".dnc-status").inner_text()

            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)

            # Reload while playing: the page's close beacon shuts the old kernel down (before
            # the culling of pages gone could), and the page is live again.
            page.get_by_role("button", name="Play").click()
            wait_until(lambda: numbers(page)[0] > d[0], 30, "playing again")
            t0 = time.monotonic()
            reloaded = open_live(page, app_url, reload=True)
            assert numbers(page)[0] < 5  # a fresh dashboard, not the old run
            wait_until(
                lambda: visitor not in _visitor_kernels(app_url),
                max(5.0, CULL_GONE - (time.monotonic() - t0) - 5),
                "the reloaded page's old kernel to be shut down by its beacon",
            )
            (visitor,) = _visitor_kernels(app_url)

            # Play, then close the tab: its beacon shuts the kernel down; the kernel count
            # returns to where it was.
            page.get_by_role("button", name="Play").click()
            wait_until(lambda: numbers(page)[1] >= 20, 60, "the chart to advance")
            t0 = time.monotonic()
            page.close(run_before_unload=True)
            wait_until(
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
            open_live(page, app_url)
            (visitor,) = _visitor_kernels(app_url)
            page.get_by_role("button", name="Play").click()
            wait_until(lambda: numbers(page)[1] >= 20, 60, "the chart to advance")
            t0 = time.monotonic()
            crashed.close()
            wait_until(
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


def _check_lecture(browser, url: str, width: int, height: int, errors: list[str]) -> str:
    """One lecture page at ``width`` x ``height``: keys, the four panels on the first screen,
    a screenshot. Returns a line for the report."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    open_live(page, url)
    page.wait_for_selector(".dnc-lecture", timeout=60_000)
    status = page.locator(".dnc-status")
    page.keyboard.press("Space")  # plays
    wait_until(lambda: numbers(page)[0] >= 10, 60, "Space to start playing")
    assert "playing" in status.inner_text()
    wait_until(lambda: numbers(page)[0] >= 800, 120, "800 steps (the default preset collapses)")
    page.keyboard.press("Space")  # pauses
    page.get_by_role("button", name="Play").wait_for(timeout=10_000)
    wait_until(lambda: "paused" in status.inner_text(), 10, "Space to pause")
    before = numbers(page)[0]
    page.keyboard.press("ArrowRight")  # steps
    wait_until(lambda: numbers(page)[0] > before, 10, "the right arrow to step")
    wait_until(
        lambda: len(panel_boxes(page, "clouds") + panel_boxes(page, "snapshot")) == 2,
        60,
        "the live cloud and the Gram panel",
    )
    time.sleep(1.0)  # the snapshot after the step
    stream = panel_boxes(page, "stream")
    snapshot = panel_boxes(page, "clouds") + panel_boxes(
        page, "snapshot"
    )  # the live cloud, the Gram
    assert len(stream) == 2 and len(snapshot) == 2, (stream, snapshot)
    for box in stream + snapshot:
        assert inside_screen(box, width, height), (width, height, stream, snapshot)
    fonts = page.evaluate(
        "() => [...document.querySelectorAll('.dnc-lecture .dnc-status')]"
        ".map(e => parseFloat(getComputedStyle(e).fontSize))"
    )
    assert fonts and min(fonts) >= 15, fonts
    page.screenshot(path=str(ARTIFACTS / f"lecture-{width}x{height}.png"))
    context.close()
    return f"lecture {width}x{height}: panels {stream + snapshot}"


@needs_browser
def test_lecture_layout_fits_the_first_screen_and_answers_keys(lecture_url):
    errors: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report = []
    with playwright()() as p:
        browser = launch(p)
        try:
            for width, height in ((1280, 720), (1366, 768)):
                report.append(_check_lecture(browser, lecture_url, width, height, errors))

            # the default layout on a 1366x768 screen: the charts beside the controls
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            open_live(page, lecture_url + "&layout=default")
            assert page.locator(".dnc-lecture").count() == 0
            controls = page.locator(".widget-accordion").first.bounding_box()
            canvas = page.locator(".dnc-live-stream canvas").first.bounding_box()
            assert canvas["x"] >= controls["x"] + controls["width"] - 1, (controls, canvas)
            assert canvas["y"] < 768 / 2, canvas  # on the first screen, not below the controls
            stream = panel_boxes(page, "stream")
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


@needs_browser
def test_k10_dashboard_clouds_move_while_playing(app_url):
    """The K = 10 preset at 1366x768: the feature clouds (at most 400 points) change while
    playing, the status line names the solution type, no console error; screenshots of the
    default layout and of the lecture layout (its four panels on the first screen)."""
    from urllib.parse import quote

    errors: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright()() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            open_live(page, app_url + "&preset=" + quote(K10_PRESET))
            page.wait_for_selector(".dnc-live-clouds canvas.marks", timeout=60_000)
            wait_until(lambda: cloud_numbers(page)[0] > 0, 60, "the first cloud points")
            page.get_by_role("button", name="Play").click()
            wait_until(lambda: numbers(page)[0] >= 300, 120, "300 steps")
            a = cloud_numbers(page)
            time.sleep(1.5)
            b = cloud_numbers(page)
            assert 0 < a[0] <= 400 and 0 < b[0] <= 400, (a, b)
            assert b[2] > a[2] and b[1] != a[1], (a, b)  # the cloud data changes while playing
            wait_until(lambda: numbers(page)[0] >= 1500, 180, "1500 steps")
            page.get_by_role("button", name="Pause").click()
            page.get_by_role("button", name="Play").wait_for(timeout=10_000)
            wait_until(
                lambda: "solution:" in page.locator(".dnc-status").inner_text(), 10, "solution"
            )
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
            open_live(page, app_url + "&layout=lecture&preset=" + quote(K10_PRESET))
            page.wait_for_selector(".dnc-lecture .dnc-live-clouds canvas.marks", timeout=60_000)
            page.keyboard.press("Space")
            c0 = cloud_numbers(page)
            wait_until(lambda: numbers(page)[0] >= 1500, 180, "1500 steps in the lecture layout")
            assert cloud_numbers(page)[1] != c0[1]  # the lecture's cloud moves too
            page.keyboard.press("Space")
            page.get_by_role("button", name="Play").wait_for(timeout=10_000)
            time.sleep(1.5)
            assert page.locator(".dnc-live-error").count() == 0
            boxes = (
                panel_boxes(page, "stream")
                + panel_boxes(page, "clouds")
                + panel_boxes(page, "snapshot")
            )
            assert len(boxes) == 4 and all(inside_screen(b, 1366, 768) for b in boxes), boxes
            page.screenshot(path=str(ARTIFACTS / "k10-lecture-1366x768.png"))
            context.close()
        finally:
            browser.close()
    print(f"\nK = 10 clouds: {a} -> {b}; status: {text}")
    assert not errors, errors
