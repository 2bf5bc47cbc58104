"""Batched sweep vs the same runs one after another, in one process on one thread.

64 configurations of the L-DUFM with K = 2, n = 20, d = 32, L = 3 (float64): 4 lambdas x
4 learning rates x 4 seeds, default heavy-ball recipe, ``--steps`` (2000) gradient steps each.
Three ways, all in this process, with the same number of torch threads (``--threads``, 1 by
default; with 2 the batched program's bmm and element-wise kernels split the batch over two
cores, while the single runs' tiny kernels stay serial):

* batched: :class:`dnc_interactive.sweeps.BatchedTrainer` on all 64 at once (``torch.bmm``);
* Trainer: 64 :class:`dnc_interactive.training.Trainer` runs one after another (the package's
  single-run trainer, ``metrics_every=0``);
* one-at-a-time: the batched code with B = 1, 64 times (the sweep's ``batched=False`` path).

Prints the ratios (the figure to reach: batched >= 5x faster than the runs one after another)
of wall-clock time and of this process's CPU time (the latter is robust to other processes
competing for the cores), and checks the final losses: batched vs Trainer within 1e-10,
batched vs B = 1 bit for bit. ``--repeat R`` interleaves R rounds and keeps each way's
fastest (for a busy machine).

    python benchmarks/bench_sweep.py [--steps 2000] [--repeat 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from dnc_interactive.config import DUFMConfig
from dnc_interactive.sweeps import BatchedTrainer, expand_grid
from dnc_interactive.training import Trainer

GRID = {
    "lambda": [1e-3, 2e-3, 5e-3, 1e-2],
    "lr": [0.1, 0.2, 0.5, 1.0],
    "seed": [0, 1, 2, 3],
}
BASE = DUFMConfig(num_classes=2, samples_per_class=20, width=32, depth=3, dtype="float64")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pairs = expand_grid(GRID, BASE)
    configs = [c for c, _ in pairs]
    recipes = [r for _, r in pairs]
    print(
        f"{len(pairs)} configurations, K=2 n=20 d=32 L=3 float64, {args.steps} steps each,"
        f" {args.threads} torch thread(s)"
    )

    wall = {"batched": math.inf, "trainer": math.inf, "one": math.inf}
    cpu = dict(wall)

    def timed(name: str, fn):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall[name] = min(wall[name], time.perf_counter() - t)
        cpu[name] = min(cpu[name], time.process_time() - c)
        return out

    for _ in range(args.repeat):
        bt = timed("batched", lambda: BatchedTrainer(configs, recipes).run(args.steps))
        trainers = timed(
            "trainer", lambda: [Trainer(c, r, metrics_every=0).run(args.steps) for c, r in pairs]
        )
        singles = timed("one", lambda: [BatchedTrainer([c], [r]).run(args.steps) for c, r in pairs])

    batched = [bt.summary(b)["loss"] for b in range(len(pairs))]
    d_trainer = max(abs(a - tr.loss) for a, tr in zip(batched, trainers, strict=True))
    bitwise = all(
        a == s.summary(0)["loss"]
        and all(torch.equal(p[b], q[0]) for p, q in zip(bt.params, s.params, strict=True))
        for b, (a, s) in enumerate(zip(batched, singles, strict=True))
    )
    diverged = sum(s == "diverged" for s in bt.status)
    print(f"{'':28s} {'wall s':>8s} {'CPU s':>8s}")
    for name, label in (
        ("batched", "batched (B=64)"),
        ("trainer", "Trainer, one after another"),
        ("one", "B=1 path, one after another"),
    ):
        print(f"{label:28s} {wall[name]:8.2f} {cpu[name]:8.2f}")
    for name, label in (("trainer", "Trainer runs"), ("one", "B=1 runs")):
        print(
            f"speedup vs {label:13s} wall {wall[name] / wall['batched']:.2f}x,"
            f" CPU {cpu[name] / cpu['batched']:.2f}x  (target >= 5x)"
        )
    print(f"max |final loss batched - Trainer| = {d_trainer:.2e}  (target <= 1e-10)")
    print(f"batched == B=1 bit for bit (losses and parameters): {bitwise}")
    gaps = [bt.summary(b)["relative_gap"] for b in range(len(pairs))]
    print(f"diverged runs: {diverged}; median relative gap at the end: {sorted(gaps)[32]:.2e}")


if __name__ == "__main__":
    main()
