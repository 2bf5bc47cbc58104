"""Real networks recover the unconstrained features (theory §4.2).

Digits (scikit-learn's bundled 8x8 digits, offline), binary, MLP backbone, 3- and 4-layer DUFM
head, the default config (full-batch Adam, cosine decay, 1 000 epochs, lambda_H = lambda_W =
1e-3): wall time (data, model and training), CPU time, training accuracy, NC1 of every head
layer and the relative gap of the head loss (fit + lambda_H and lambda_W terms; backbone weight
decay excluded) to the DUFM's L* for the same K, n, L and lambdas. Targets: < 20 s, 100 %,
NC1 < 1e-3 in every layer, |gap| < 1 %. Then the recovery test on one run (a fresh head on the
frozen features; a DUFM with H1 free started from them).

MNIST-1D (generated locally), 10 classes, the "mnist1d" preset: wall time (target < 3 min),
accuracies, gap, and per layer NC1, NC1', ranks and whether the solution is DNC or lower rank.

    python benchmarks/bench_realnets.py                  # everything, 1 torch thread
    python benchmarks/bench_realnets.py --only digits    # or --only mnist1d
    python benchmarks/bench_realnets.py --threads 2

Wall times depend on the load of the machine; the CPU time (process time) is printed next to
them. With one thread and an otherwise idle core the two agree.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from dnc_interactive.realnets import RealNetConfig, RealNetExperiment, preset

DIGITS_CASES = [
    dict(classes=(0, 1), depth=4, seed=0),
    dict(classes=(0, 1), depth=3, seed=0),
    dict(classes=(0, 1), depth=4, seed=1),
    dict(classes=(3, 8), depth=4, seed=0),
    dict(classes=(4, 9), depth=3, seed=2),
]


def _timed_run(config: RealNetConfig) -> tuple[RealNetExperiment, float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    exp = RealNetExperiment(config).run()
    exp.summary()
    return exp, time.perf_counter() - t0, time.process_time() - c0


def digits(recovery: bool = True) -> int:
    print("digits, binary, MLP backbone, default config (full-batch Adam + cosine, 1000 epochs)")
    head = f"{'classes':>8} {'L':>2} {'seed':>4} {'wall s':>7} {'cpu s':>6} {'acc':>6}"
    print(f"{head} {'gap':>9}  NC1 per head layer (post; pre)                     ok")
    failures = 0
    first = None
    for case in DIGITS_CASES:
        exp, wall, cpu = _timed_run(RealNetConfig(device="cpu", **case))
        s = exp.summary()
        rows = exp.layer_summary()
        nc1 = [max(r["nc1"], r["pre_nc1"]) for r in rows]
        ok = wall < 20 and s["train_accuracy"] == 1.0 and max(nc1) < 1e-3
        ok = ok and abs(s["relative_gap"]) < 0.01
        failures += not ok
        first = first or exp
        cls = ",".join(map(str, case["classes"]))
        print(
            f"{cls:>8} {case['depth']:>2} {case['seed']:>4} {wall:7.1f} {cpu:6.1f}"
            f" {s['train_accuracy']:6.1%} {s['relative_gap']:9.2e}  "
            + " ".join(f"{v:.1e}" for v in nc1).ljust(50)
            + f" {'yes' if ok else 'NO'}"
        )
    if recovery and first is not None:
        t0 = time.perf_counter()
        rec = first.recovery().summary()
        print(
            f"recovery (classes 0,1, L=4, seed 0): network gap {rec['network_gap']:.2e}; fresh"
            f" head on the frozen features: gap {rec['frozen_gap']:.2e}, max NC1"
            f" {rec['frozen_max_nc1']:.1e}; DUFM with H1 free from the features: gap"
            f" {rec['free_gap']:.1e}, H1 moved {rec['h1_shift']:.1%}"
            f" ({time.perf_counter() - t0:.1f} s)"
        )
    return failures


def mnist1d() -> int:
    config = preset("mnist1d", device="cpu")
    print()
    print(
        f"MNIST-1D, 10 classes, preset 'mnist1d' (MLP width {config.backbone_width}, "
        f"batch {config.batch_size}, Adam lr {config.lr:g}, {config.epochs} epochs)"
    )
    exp, wall, cpu = _timed_run(config)
    s = exp.summary()
    print(
        f"wall {wall:.1f} s (cpu {cpu:.1f} s), n_k = {s['class_sizes']}, train accuracy"
        f" {s['train_accuracy']:.1%}, test accuracy {s['test_accuracy']:.1%}"
    )
    print(
        f"head loss {s['head_loss']:.6f}, L*(DNC) {s['optimal_loss']:.6f}, relative gap"
        f" {s['relative_gap']:+.2e} ({s['dnc_optimality']})"
    )
    print(f"{'layer':>5} {'NC1':>9} {'NC1_trace':>9} {'rank':>4} {'pre rank':>8}  solution")
    for r in exp.layer_summary():
        print(
            f"{r['layer']:>5} {r['nc1']:9.2e} {r['nc1_trace']:9.2e} {r['rank']:>4}"
            f" {r['pre_rank']:>8}  {r['solution']}"
        )
    ok = wall < 180
    print(f"under 3 minutes: {'yes' if ok else 'NO'}")
    return int(not ok)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["digits", "mnist1d"], default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-recovery", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} cores, load {load}"
    )
    failures = 0
    if args.only in (None, "digits"):
        failures += digits(recovery=not args.no_recovery)
    if args.only in (None, "mnist1d"):
        failures += mnist1d()
    print(f"\n{'all targets met' if not failures else f'{failures} target(s) missed'}")


if __name__ == "__main__":
    main()
