"""How fast ``dnc-interactive app`` starts and how fast its page becomes a live dashboard.

Prints:
  * ``--help``: wall time of ``python -m dnc_interactive --help`` and ``... app --help``
    (median of ``--repeats`` runs; the CLI imports no torch to answer);
  * server: from launching ``dnc-interactive app --no-browser`` to the server answering
    (``GET /api/status`` with the token, which starts no kernel) and to the app printing its
    URL (once a pre-heated kernel is warm);
  * page: in headless chromium, from the page request to a live dashboard (a
    ``.widget-slider`` visible), also measured from the page's first byte (the browser's
    ``responseStart``), for the first page, an immediate reload (the pool may still be
    refilling) and a reload once the pool is warm again. Target: live within 3 s of the
    page answering with a warm kernel.

    python benchmarks/bench_app_start.py [--pool 2] [--repeats 3] [--reloads 2]

Needs Voilà, playwright and /usr/bin/chromium (never ``playwright install``). The server and
its kernels are stopped (by process group) at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request

from dnc_interactive.cli.app import DEFAULT_POOL, free_port

CHROMIUM = "/usr/bin/chromium"
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
TOKEN = "bench-app-start"


def help_seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dnc_interactive", *argv],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def status(base: str) -> dict | None:
    request = urllib.request.Request(
        base + "/api/status", headers={"Authorization": f"token {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def wait_pool_warm(base: str, timeout: float = 600) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = status(base) or {}
        pool = s.get("pool", {})
        if s and pool.get("warm", 0) >= pool.get("size", 0):
            return time.monotonic() - t0
        time.sleep(0.2)
    raise TimeoutError("the pool did not get warm")


def page_live(page, url: str | None) -> tuple[float, float]:
    """(seconds from request, seconds from the first byte) to a visible .widget-slider."""
    t0 = time.monotonic()
    if url is None:
        page.reload(timeout=600_000, wait_until="commit")
    else:
        page.goto(url, timeout=600_000, wait_until="commit")
    # the browser's clock when a slider is first visible, relative to the navigation start
    seen = page.wait_for_function(
        """() => {
            const e = document.querySelector('.widget-slider');
            return e && e.offsetParent !== null ? performance.now() : false;
        }""",
        timeout=600_000,
        polling=50,
    ).json_value()
    total = time.monotonic() - t0
    first_byte = page.evaluate("performance.getEntriesByType('navigation')[0].responseStart")
    from_first_byte = seen - first_byte
    return total, from_first_byte / 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pool", type=int, default=DEFAULT_POOL, help=f"warm kernels (default {DEFAULT_POOL})"
    )
    parser.add_argument("--repeats", type=int, default=3, help="--help runs (median)")
    parser.add_argument("--reloads", type=int, default=2, help="warm reloads to measure")
    args = parser.parse_args()

    print(f"python -m dnc_interactive --help      {help_seconds(['--help'], args.repeats):.2f} s")
    print(
        f"python -m dnc_interactive app --help  "
        f"{help_seconds(['app', '--help'], args.repeats):.2f} s"
    )

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dnc_interactive",
            "app",
            "--no-browser",
            f"--port={port}",
            f"--token={TOKEN}",
            f"--pool={args.pool}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        answered = None
        while answered is None and proc.poll() is None:
            if status(base) is not None:
                answered = time.monotonic() - t0
            else:
                time.sleep(0.05)
        url = None
        for line in proc.stdout:
            m = re.search(r"dashboard: (http\S+)", line)
            if m:
                url = m.group(1)
                break
        printed = time.monotonic() - t0
        if url is None:
            print("the app printed no URL", file=sys.stderr)
            return 1
        print(f"launch -> server answers              {answered:.2f} s (no kernel started)")
        print(f"launch -> URL printed (kernel warm)   {printed:.2f} s (pool {args.pool})")
        if args.pool:
            wait_pool_warm(base)

        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                first = page_live(page, url)
                print(
                    f"first page -> live dashboard          {first[0]:.2f} s "
                    f"({first[1]:.2f} s from the first byte)"
                )
                immediate = page_live(page, None)
                print(
                    f"immediate reload -> live dashboard    {immediate[0]:.2f} s "
                    f"({immediate[1]:.2f} s from the first byte; the pool was refilling)"
                )
                warm = []
                for _ in range(args.reloads):
                    if args.pool:
                        waited = wait_pool_warm(base)
                    else:
                        waited = 0.0
                    warm.append(page_live(page, None))
                    print(
                        f"reload, pool warm -> live dashboard   {warm[-1][0]:.2f} s "
                        f"({warm[-1][1]:.2f} s from the first byte; waited {waited:.0f} s "
                        "for the pool)"
                    )
                t0 = time.monotonic()
                page.close(run_before_unload=True)  # its beacon shuts the kernel down
                while (status(base) or {}).get("visitors") and time.monotonic() - t0 < 60:
                    time.sleep(0.2)
                gone = time.monotonic() - t0
            finally:
                browser.close()
        s = status(base) or {}
        print(
            f"tab closed -> its kernel shut down     {gone:.2f} s; kernels left: "
            f"{s.get('kernels')} ({s.get('visitors')} visitors, pool {s.get('pool')})"
        )
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
