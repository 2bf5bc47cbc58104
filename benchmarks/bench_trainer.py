"""Trainer speed against a naive autograd loop, measured in one process on one machine.

Prints:
  * throughput: the Trainer's GD steps per second over a naive reference loop
    (nn.Parameter + torch.optim.SGD + autograd, one step per Python iteration), float32 and
    float64, as ratios; the Trainer records loss terms every 10 steps and the collapse
    metrics every 50 (its defaults), the naive loop records nothing;
  * time to collapse: wall time of the default recipe, from building the Trainer to a relative
    gap below 1e-3 with NC1 below 1e-3 in every layer, against the naive loop's time for 500
    steps of the same config.
Config: K = 2, n = 50, d = 64, L = 4, lambda = 1e-3, one torch thread.

    python benchmarks/bench_trainer.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.training import Trainer


def naive_seconds(config: DUFMConfig, steps: int, lr: float = 0.1) -> float:
    """Wall time of `steps` iterations of the textbook loop."""
    model = DUFM(config)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    t0 = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad()
        model.loss().total.backward()
        opt.step()
    return time.perf_counter() - t0


def trainer_seconds(config: DUFMConfig, steps: int) -> float:
    tr = Trainer(config)
    t0 = time.perf_counter()
    tr.step(steps)
    return time.perf_counter() - t0


def collapse_seconds(config: DUFMConfig) -> tuple[float, int]:
    t0 = time.perf_counter()
    tr = Trainer(config)
    tr.run(tol=1e-3, max_steps=5000)
    seconds = time.perf_counter() - t0
    assert tr.status == "converged", tr.message
    return seconds, tr.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    base = DUFMConfig()  # K=2, n=50, d=64, L=4, lambda=1e-3
    print(f"config: {base.to_json()}  (torch threads: {torch.get_num_threads()})")

    for dtype in ("float32", "float64"):
        cfg = base.replace(dtype=dtype)
        naive_seconds(cfg, 50), trainer_seconds(cfg, 50)  # warm-up
        naive, ours = [], []
        for _ in range(args.repeats):  # interleave, so load changes hit both
            naive.append(args.steps / naive_seconds(cfg, args.steps))
            ours.append(args.steps / trainer_seconds(cfg, args.steps))
        n, o = statistics.median(naive), statistics.median(ours)
        print(
            f"throughput {dtype}: naive {n:7.0f} steps/s, trainer {o:7.0f} steps/s,"
            f" ratio {o / n:.2f}x (target >= 1.5x)"
        )

    naive500 = statistics.median(naive_seconds(base, 500) for _ in range(args.repeats))
    runs = [collapse_seconds(base.replace(seed=s)) for s in range(args.repeats)]
    worst = max(s for s, _ in runs)
    print(
        f"time to collapse (gap < 1e-3, NC1 < 1e-3, float32), seeds 0..{args.repeats - 1}:"
        f" {', '.join(f'{s:.3f}s/{k} steps' for s, k in runs)}"
    )
    print(
        f"naive loop, 500 steps: {naive500:.3f}s; worst collapse / naive-500 ="
        f" {worst / naive500:.2f} (target <= 1)"
    )


if __name__ == "__main__":
    main()
