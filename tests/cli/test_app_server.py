"""The live ``dnc-interactive app`` server: token, Host and Origin checks, kernels.

Starts the app once (Voilà, one pre-heated kernel) on a free 127.0.0.1 port and talks raw
HTTP and websockets to it. The server is stopped by its process group in the fixture.
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
import urllib.parse

import pytest

requests = pytest.importorskip("requests")
websocket = pytest.importorskip("websocket")  # websocket-client
pytest.importorskip("voila")

pytestmark = pytest.mark.slow
TOKEN = "test-token-3f9a0c"


@pytest.fixture(scope="module")
def server():
    """Start the app; yield (base URL, port, log lines); stop its whole process group."""
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
            "--pool=1",
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
    try:
        end = time.monotonic() + 400  # kernel start + torch + widgets on a loaded 2-core box
        ready = False
        while not ready and time.monotonic() < end and proc.poll() is None:
            try:
                ready = "dashboard: http" in lines.get(timeout=1)
            except queue.Empty:
                continue
        assert ready, "the app printed no URL:\n" + "".join(log[-40:])
        yield f"http://127.0.0.1:{port}", port, log
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _kernels(base: str) -> list[dict]:
    r = requests.get(f"{base}/api/kernels", headers={"Authorization": f"token {TOKEN}"}, timeout=30)
    r.raise_for_status()
    return r.json()


def _login(base: str) -> requests.Session:
    """A browser-like session: the token once, then the login cookie (starts no kernel)."""
    s = requests.Session()
    assert s.get(f"{base}/api/status", params={"token": TOKEN}, timeout=30).status_code == 200
    return s


def test_the_readiness_check_started_no_kernel(server):
    base, _, _ = server
    kernels = _kernels(base)
    assert [k["pooled"] for k in kernels] == [True]  # the pre-heated kernel, nothing else
    for _ in range(5):
        status = requests.get(
            f"{base}/api/status", headers={"Authorization": f"token {TOKEN}"}, timeout=30
        ).json()
        assert status["kernels"] == 1 and status["visitors"] == 0
        assert status["pool"] == {"size": 1, "started": 1, "warm": 1}
    assert [k["id"] for k in _kernels(base)] == [k["id"] for k in kernels]


@pytest.mark.parametrize("path", ["/", f"/?token={TOKEN}", "/api/status", "/api/kernels"])
def test_a_foreign_host_header_is_refused(server, path):
    base, port, _ = server
    for host in (f"evil.example:{port}", "evil.example", f"192.0.2.7:{port}"):
        r = requests.get(
            base + path,
            headers={"Host": host, "Authorization": f"token {TOKEN}"},
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code == 403, (host, path, r.status_code)
    ok = requests.get(
        base + "/api/status",
        headers={"Host": f"localhost:{port}", "Authorization": f"token {TOKEN}"},
        timeout=30,
    )
    assert ok.status_code == 200


def test_the_token_is_required(server):
    base, _, _ = server
    page = requests.get(base + "/", allow_redirects=False, timeout=30)
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    wrong = requests.get(base + "/?token=wrong", allow_redirects=False, timeout=30)
    assert wrong.status_code == 302 and "/login" in wrong.headers["Location"]
    for path in ("/api/status", "/api/kernels"):
        assert requests.get(base + path, timeout=30).status_code == 403
        r = requests.get(base + path, headers={"Authorization": "token wrong"}, timeout=30)
        assert r.status_code == 403
    assert len(_kernels(base)) == 1  # none of this started a kernel


def test_a_foreign_origin_cannot_shut_a_kernel_down(server):
    base, port, _ = server
    kernel_id = _kernels(base)[0]["id"]
    session = _login(base)
    xsrf = session.cookies.get("_xsrf") or "x"
    for path in (f"/voila/api/shutdown/{kernel_id}", f"/api/kernels/{kernel_id}"):
        r = session.post(
            base + path,
            data={"_xsrf": xsrf},
            headers={"Origin": "http://evil.example"},
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code in (403, 404, 405), (path, r.status_code)
    assert [k["id"] for k in _kernels(base)] == [kernel_id]


def test_a_page_gets_the_warm_kernel_a_foreign_origin_cannot_use_it_and_the_beacon_ends_it(
    server,
):
    """Last: it hands the pooled kernel out (the pool then refills)."""
    base, port, _ = server
    pooled = _kernels(base)[0]["id"]
    session = requests.Session()
    t0 = time.monotonic()
    page = session.get(f"{base}/", params={"token": TOKEN}, timeout=300)
    seconds = time.monotonic() - t0
    assert page.status_code == 200
    html = page.text
    kernel_id = re.search(r'"kernelId": "([0-9a-f-]+)"', html).group(1)
    assert kernel_id == pooled, "the page did not get the pre-heated kernel"
    assert "dnc-live" in html or "application/vnd.jupyter.widget-view+json" in html
    hosts = {
        urllib.parse.urlsplit(u).hostname
        for u in re.findall(r'(?:src|href)="(https?://[^"]+)"', html)
    }
    assert hosts <= {"127.0.0.1"}, hosts  # nothing from a CDN
    assert "Traceback" not in html
    xsrf = session.cookies.get("_xsrf")
    assert xsrf, "the page set no _xsrf cookie: its close beacon would be refused"
    visitors = [k for k in _kernels(base) if k["id"] == kernel_id]
    assert visitors and not visitors[0]["pooled"]

    # A page from another origin, with the visitor's cookies, cannot drive the widgets.
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels"
    for origin in ("http://evil.example", f"http://evil.example:{port}", "null"):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(
                url, header=[f"Cookie: {cookie}"], origin=origin, timeout=90
            )
        assert refused.value.status_code == 403, origin
    ws = websocket.create_connection(  # the page's own origin is let in
        url, header=[f"Cookie: {cookie}"], origin=f"http://127.0.0.1:{port}", timeout=90
    )
    ws.close()

    beacon = f"{base}/voila/api/shutdown/{kernel_id}"
    refused = session.post(beacon, headers={"Origin": f"http://127.0.0.1:{port}"}, timeout=30)
    assert refused.status_code == 403  # no _xsrf field: refused (as before the fix, always)
    assert kernel_id in [k["id"] for k in _kernels(base)]
    sent = session.post(
        beacon, data={"_xsrf": xsrf}, headers={"Origin": f"http://127.0.0.1:{port}"}, timeout=60
    )
    assert sent.status_code == 204
    end = time.monotonic() + 60
    while kernel_id in [k["id"] for k in _kernels(base)] and time.monotonic() < end:
        time.sleep(0.5)
    assert kernel_id not in [k["id"] for k in _kernels(base)]
    print(f"page with a warm kernel served in {seconds:.2f} s")
