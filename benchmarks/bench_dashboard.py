"""Dashboard figures, measured in one process against the headless trainer.

Prints:
  * throughput: steps per second of the dashboard playing at full speed with its charts
    attached and updating (rows streamed to the LiveChart, status line, snapshot charts),
    over the headless ``Trainer`` with the same recording (loss every 10 steps, metrics every
    50), interleaved runs of the default preset; target >= 0.80. On a shared machine the
    headless rate swings between runs, so it also prints the share of the dashboard's own wall
    time spent inside the trainer's steps (measured within one run, immune to that noise).
    Every widget message is JSON-serialised as a kernel would (``comm.DummyComm.publish_msg``
    is patched to ``json.dumps``), so the serialisation cost is counted; only the ZMQ send
    is not;
  * time to the optimum: from pressing play (``Dashboard.play()``) to gap < 1e-3 and NC1 < 1e-3
    in every layer (the status line's "collapsed: yes"), at full speed and at the default speed
    (10 steps per update, 10 updates per second); target: < 2 s at full speed on 2 cores;
  * memory (``--minutes M``): the process's RSS while playing at full speed for M minutes,
    sampled every 5 s, with the growth per minute extrapolated to 10 minutes (Binder's
    guaranteed limit is 1 GiB);
  * Pause latency at the largest model the sliders allow (K = 12, n = 200, L = 8, d = 128,
    float64), playing at 200 steps per update and at full speed: ``--presses`` times, Play,
    then Pause at a random moment 0.6-1.4 s later, as a click would arrive (a coroutine that
    wakes at that moment, as the kernel handles a message once the event loop is free):
    *answer* = from the planned moment to the end of the Pause handler (the button reads
    "Play", the status line "paused"); *stop* = to the end of the play task (the piece of
    training in flight finished, the final update drawn). Also the event loop's lag while
    playing (a 5 ms ticker: how late it woke, at most). Target: answer < 0.2 s. Measured in
    each layout (``--layout``: default, lecture, the K = 10 preset; all by default), at the
    largest model and at the layout's own start; ``--json`` writes the figures to a file.

    python benchmarks/bench_dashboard.py [--repeats 3] [--steps 3000] [--threads 1]
    python benchmarks/bench_dashboard.py --minutes 10 --skip-speed     # the full memory run
    python benchmarks/bench_dashboard.py --skip-speed --presses 20     # Pause latency only
    python benchmarks/bench_dashboard.py --skip-speed --layout lecture # in one layout
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import time

import comm
import torch

from dnc_interactive.config import DUFMConfig
from dnc_interactive.training import Trainer
from dnc_interactive.widgets import Dashboard

SENT = {"messages": 0, "bytes": 0}


def _publish(self, msg_type, data=None, metadata=None, buffers=None, **keys):  # noqa: ARG001
    SENT["messages"] += 1
    SENT["bytes"] += len(json.dumps(data, allow_nan=False, default=str))


comm.DummyComm.publish_msg = _publish


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc; else the peak from resource)."""
    try:
        with open(f"/proc/{os.getpid()}/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def headless_rate(steps: int) -> tuple[float, float]:
    """(steps per wall second, steps per CPU second) of the headless trainer."""
    trainer = Trainer(DUFMConfig(), record_every=10, metrics_every=50)
    t0, c0 = time.perf_counter(), time.process_time()
    trainer.step(steps)
    return steps / (time.perf_counter() - t0), steps / (time.process_time() - c0)


async def _play_until(dash: Dashboard, done) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    dash.play()
    while not done():
        await asyncio.sleep(0.002)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    dash.pause()
    await dash.session.wait()
    return elapsed, cpu


def dashboard_rate(steps: int) -> tuple[float, float, float, int]:
    """Playing at full speed: (steps per wall second, per CPU second, the share of the wall
    time spent inside the trainer's steps, widget messages)."""
    dash = Dashboard(speed=0)
    inside = [0.0]
    advance = dash.session._advance

    def timed(*args, **kwargs):
        t = time.perf_counter()
        advance(*args, **kwargs)
        inside[0] += time.perf_counter() - t

    dash.session._advance = timed
    before = SENT["messages"]
    elapsed, cpu = asyncio.run(_play_until(dash, lambda: dash.steps >= steps))
    messages = SENT["messages"] - before
    result = dash.steps / elapsed, dash.steps / cpu, inside[0] / elapsed, messages
    dash.close()
    return result


def time_to_optimum(speed: int) -> tuple[float, float, int]:
    """(wall s, CPU s, steps) from play() to the first update with gap and NC1 < 1e-3."""
    dash = Dashboard(speed=speed)
    hit: list[tuple[float, float]] = []

    def listener(session, rows, final):  # noqa: ARG001
        if not hit and session.collapsed:
            hit.append((time.perf_counter(), time.process_time()))

    dash.session.on_update.append(listener)
    t0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(_play_until(dash, lambda: bool(hit) or time.perf_counter() - t0 > 120))
    steps = dash.steps
    dash.close()
    if not hit:
        return float("inf"), float("inf"), steps
    return hit[0][0] - t0, hit[0][1] - c0, steps


def memory_run(minutes: float) -> None:
    dash = Dashboard(speed=0)
    samples: list[tuple[float, float, int, int]] = []

    async def main() -> None:
        dash.play()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < minutes * 60:
            samples.append((time.perf_counter() - t0, rss_mib(), dash.steps, len(dash.history)))
            await asyncio.sleep(5)
        dash.pause()
        await dash.session.wait()
        samples.append((time.perf_counter() - t0, rss_mib(), dash.steps, len(dash.history)))

    asyncio.run(main())
    print("memory while playing at full speed (t [s], RSS [MiB], steps, history rows):")
    for t, rss, steps, rows in samples[:: max(1, len(samples) // 12)] + samples[-1:]:
        print(f"  {t:7.1f}  {rss:8.1f}  {steps:9d}  {rows:8d}")
    # growth over the second half (after start-up allocations and the first levels)
    half = [s for s in samples if s[0] >= samples[-1][0] / 2]
    t_a, r_a = half[0][0], half[0][1]
    t_b, r_b = samples[-1][0], samples[-1][1]
    slope = (r_b - r_a) / max((t_b - t_a) / 60, 1e-9)
    at_10 = r_b + slope * max(0.0, 10 - t_b / 60)
    print(
        f"RSS {samples[0][1]:.0f} -> {r_b:.0f} MiB after {t_b / 60:.1f} min; growth over the"
        f" second half {slope:+.1f} MiB/min; extrapolated at 10 min: {at_10:.0f} MiB"
        f" (limit 1024); chart store {len(dash.chart.store)} points;"
        f" record_every now {dash.trainer.record_every}"
    )


#: The largest model the dashboard's sliders allow (and the slower dtype).
LARGEST = {"num_classes": 12, "samples_per_class": 200, "depth": 8, "width": 128}


#: The dashboard's layouts and settings the Pause latency is measured in: name -> Dashboard
#: arguments (the K = 10 preset in the default layout).
LAYOUTS = {
    "default": {"layout": "default"},
    "lecture": {"layout": "lecture"},
    "k10": {"layout": "default", "preset": "many classes, deep: low-rank solutions"},
}


def pause_latency(
    speed: int, presses: int, seed: int = 0, layout: str = "default", largest: bool = True
) -> dict[str, list[float]]:
    """Play / Pause ``presses`` times in ``layout`` (see :data:`LAYOUTS`), at the largest model
    (float64) or at the layout's own start; seconds per press (see above)."""
    model = {"dtype": "float64", **LARGEST} if largest else {}
    dash = Dashboard(speed=speed, **LAYOUTS[layout], **model)
    play = dash.controls["play"]
    rng = random.Random(seed)
    out: dict[str, list[float]] = {"answer": [], "stop": [], "lag": []}

    async def ticker(done: asyncio.Event) -> None:
        while not done.is_set():
            t = time.perf_counter()
            await asyncio.sleep(0.005)
            out["lag"].append(time.perf_counter() - t - 0.005)

    async def presses_() -> None:
        done = asyncio.Event()
        tick = asyncio.create_task(ticker(done))
        for _ in range(presses):
            play.click()  # Play
            assert dash.session.playing
            delay = rng.uniform(0.6, 1.4)
            planned = time.perf_counter() + delay
            await asyncio.sleep(delay)  # wakes once the event loop is free, as a message would
            play.click()  # Pause
            answered = time.perf_counter()
            assert play.description == "Play" and not dash.session.playing
            await dash.session.wait()
            out["answer"].append(answered - planned)
            out["stop"].append(time.perf_counter() - planned)
            await asyncio.sleep(0.2)
        done.set()
        await tick

    asyncio.run(presses_())
    out["steps"] = [dash.steps]
    dash.close()
    return out


def _ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"max {xs[-1] * 1e3:.0f} ms, median {statistics.median(xs) * 1e3:.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--minutes", type=float, default=0.0, help="memory run length")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument(
        "--presses", type=int, default=10, help="Pause presses per speed (0: skip the test)"
    )
    parser.add_argument(
        "--layout",
        choices=[*LAYOUTS, "all"],
        default="all",
        help="the layout(s) the Pause latency is measured in (default: all)",
    )
    parser.add_argument("--json", default=None, help="write the Pause latencies to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPU(s),"
        f" load average {os.getloadavg()}"
    )
    Dashboard().close()  # warm up: imports, the JS bundle, altair
    if not args.skip_speed:
        wall, cpu, heads, shares = [], [], [], []
        for _ in range(args.repeats):
            h_wall, h_cpu = headless_rate(args.steps)
            d_wall, d_cpu, share, messages = dashboard_rate(args.steps)
            heads.append(h_wall)
            wall.append(d_wall / h_wall)
            cpu.append(d_cpu / h_cpu)
            shares.append(share)
        med = statistics.median
        print(
            f"throughput, default preset, {args.steps} steps: headless {med(heads):.0f} steps/s;"
            f" dashboard playing with charts / headless: wall ratio median {med(wall):.2f}"
            f" (runs {', '.join(f'{r:.2f}' for r in wall)}), CPU-time ratio median"
            f" {med(cpu):.2f} (runs {', '.join(f'{r:.2f}' for r in cpu)}); share of the"
            f" dashboard's wall time inside trainer steps (1 - chart overhead) median"
            f" {med(shares):.3f} (runs {', '.join(f'{r:.3f}' for r in shares)}); target >= 0.80;"
            f" {messages} widget messages in the last run,"
            f" {SENT['bytes'] / max(SENT['messages'], 1) / 1024:.1f} KiB each on average"
        )
        fast = [time_to_optimum(0) for _ in range(args.repeats)]
        print(
            "time to optimum at full speed (play -> gap and NC1 < 1e-3): "
            + ", ".join(f"{w:.2f} s wall / {c:.2f} s CPU ({s} steps)" for w, c, s in fast)
            + f"; median {med(w for w, _, _ in fast):.2f} s wall,"
            f" {med(c for _, c, _ in fast):.2f} s CPU (target < 2 s)"
        )
        w, c, s = time_to_optimum(10)
        print(f"time to optimum at the default speed (10 steps/update): {w:.2f} s wall ({s} steps)")
    if args.presses > 0:
        results = []
        layouts = list(LAYOUTS) if args.layout == "all" else [args.layout]
        for layout in layouts:
            for largest in (False, True):
                for speed in (200, 0):
                    r = pause_latency(speed, args.presses, layout=layout, largest=largest)
                    lag = sorted(r["lag"])
                    model = "largest model (K=12, n=200, L=8, d=128, float64)"
                    model = model if largest else "its own start"
                    print(
                        f"Pause latency, {layout} layout, {model}, speed {speed or 'max'},"
                        f" {args.presses} presses: answer {_ms(r['answer'])} (target < 200 ms);"
                        f" training stopped {_ms(r['stop'])}; event-loop lag while playing max"
                        f" {lag[-1] * 1e3:.0f} ms, p99 {lag[int(0.99 * len(lag))] * 1e3:.0f} ms;"
                        f" {r['steps'][0]} steps in all",
                        flush=True,
                    )
                    results.append(
                        {
                            "layout": layout,
                            "model": "largest" if largest else "start",
                            "speed": speed,
                            "presses": args.presses,
                            "answer_max_s": max(r["answer"]),
                            "answer_median_s": statistics.median(r["answer"]),
                            "stop_max_s": max(r["stop"]),
                            "stop_median_s": statistics.median(r["stop"]),
                            "lag_max_s": lag[-1],
                            "steps": r["steps"][0],
                        }
                    )
        worst = max(results, key=lambda x: x["answer_max_s"])
        print(
            f"worst Pause answer: {worst['answer_max_s'] * 1e3:.0f} ms ({worst['layout']},"
            f" {worst['model']}, speed {worst['speed'] or 'max'}); target < 200 ms in every layout"
        )
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"load_average": os.getloadavg(), "results": results}, f, indent=1)
    print(f"load average now: {os.getloadavg()}")
    if args.minutes > 0:
        memory_run(args.minutes)


if __name__ == "__main__":
    main()
