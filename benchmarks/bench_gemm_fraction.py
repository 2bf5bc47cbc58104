"""How close the batched sweep's step comes to this core's float64 GEMM speed (one thread).

For each shape (the sweep benchmark's K = 2, n = 20, d = 32, L = 3 and the follow-up's
K = 10, n = 5, d = 30, L = 4, both with B = 64 configurations) this counts the floating-point
operations of one :class:`dnc_interactive.sweeps.BatchedTrainer` gradient step from the shapes of
its forward / backward passes (``model.batched_forward`` / ``model.batched_gradients``): with
d_0 = N (samples), d_1..d_L the widths and d_{L+1} = K, every layer l = 1..L does three
products of 2 d_{l+1} d_l N flops each (forward W_l X, weight gradient G X^T, back-propagated
W_l^T G), so a step costs B * 6 N sum_l d_{l+1} d_l flops. It then times (CPU time of this
process, best of ``--repeat``; robust to other processes on a shared machine)

* ``batched``: ``BatchedTrainer._advance`` (GD with momentum, the sweep's inner loop; no loss
  checks), and counts its minor page faults per step;
* ``bmm alone``: the same 3L ``torch.bmm`` calls on operands of the same shapes and strides
  (the transposed views included), nothing else: this core's GEMM speed at these shapes;
* ``kept``: the batched path again after :func:`keep_freed_memory` (glibc ``mallopt``), which
  stops the per-step page faults of re-allocated tensors;
* ``peak``: a 2048 x 2048 float64 ``torch.mm`` (the core's large-GEMM throughput);

prints GFLOP/s and the fractions, then a per-op profile of the batched step
(``torch.profiler``). The table goes to benchmarks/results/gemm_fraction.csv and the printout
to gemm_fraction.log.

    python benchmarks/bench_gemm_fraction.py [--steps 300] [--repeat 5] [--no-profile]
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import io
import math
import resource
import sys
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd
import torch

from dnc_interactive.config import DUFMConfig
from dnc_interactive.sweeps import BatchedTrainer
from dnc_interactive.training import Recipe

RESULTS = Path(__file__).parent / "results"
SHAPES = {
    "bench_sweep (K=2 n=20 d=32 L=3)": DUFMConfig(
        num_classes=2, samples_per_class=20, width=32, depth=3, dtype="float64"
    ),
    "follow-up (K=10 n=5 d=30 L=4)": DUFMConfig(
        num_classes=10,
        samples_per_class=5,
        width=30,
        depth=4,
        lambda_H=0.004,
        lambda_W=0.004,
        dtype="float64",
    ),  # fmt: skip
}
B = 64


def step_flops(config: DUFMConfig, batch: int) -> int:
    """Flops of one BatchedTrainer step: 3 products of 2 d_{l+1} d_l N per layer, B configs."""
    dims = (*config.widths, config.K)
    N = config.N
    return batch * sum(3 * 2 * dims[l + 1] * dims[l] * N for l in range(config.L))


def cpu_time(fn: Callable[[], object], repeat: int) -> float:
    """Best CPU time of ``repeat`` calls (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        c = time.process_time()
        fn()
        best = min(best, time.process_time() - c)
    return best


def bmm_operands(config: DUFMConfig, batch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The 3L (left, right) operand pairs of one step, same shapes and strides as the trainer."""
    dims = (*config.widths, config.K)
    N = config.N
    g = torch.Generator().manual_seed(0)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    pairs = []
    for l in range(config.L):
        W = rnd(batch, dims[l + 1], dims[l])
        X = rnd(batch, dims[l], N)
        G = rnd(batch, dims[l + 1], N)
        pairs += [(W, X), (G, X.transpose(1, 2)), (W.transpose(1, 2), G)]
    return pairs


def page_faults() -> int:
    """Minor page faults of this process so far (getrusage)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed blocks in the heap instead of returning them to the kernel
    (``mallopt``: mmap threshold 32 MiB, trim threshold 4 GiB), so a re-allocated tensor is
    not faulted in page by page again. False where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    ok = libc.mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024) == 1
    return ok and libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1


def measure(name: str, config: DUFMConfig, steps: int, repeat: int) -> dict[str, float]:
    """Times per step (CPU) of the batched path and of its bmm's alone, and the page faults."""
    configs = [dataclasses.replace(config, seed=s) for s in range(B)]
    bt = BatchedTrainer(configs, Recipe(momentum_boost=None), record_every=10**9)
    t_batched = cpu_time(lambda: bt._advance(steps), repeat) / steps
    f0 = page_faults()
    bt._advance(steps)
    faults = (page_faults() - f0) / steps
    pairs = bmm_operands(config, B)

    def bmms() -> None:
        for _ in range(steps):
            for a, b in pairs:
                torch.bmm(a, b)

    t_bmm = cpu_time(bmms, repeat) / steps
    flops = step_flops(config, B)
    return {
        "shape": name,
        "B": B,
        "mflop_per_step": flops / 1e6,
        "batched_ms": 1e3 * t_batched,
        "bmm_alone_ms": 1e3 * t_bmm,
        "page_faults_per_step": faults,
        "batched_gflops": flops / t_batched / 1e9,
        "bmm_alone_gflops": flops / t_bmm / 1e9,
    }


def measure_kept(config: DUFMConfig, steps: int, repeat: int) -> tuple[float, float]:
    """(ms per step, page faults per step) of the batched path after :func:`keep_freed_memory`."""
    configs = [dataclasses.replace(config, seed=s) for s in range(B)]
    bt = BatchedTrainer(configs, Recipe(momentum_boost=None), record_every=10**9)
    t = cpu_time(lambda: bt._advance(steps), repeat) / steps
    f0 = page_faults()
    bt._advance(steps)
    return 1e3 * t, (page_faults() - f0) / steps


def peak_gflops(repeat: int, n: int = 2048) -> float:
    a = torch.randn(n, n, dtype=torch.float64)
    b = torch.randn(n, n, dtype=torch.float64)
    return 2 * n**3 / cpu_time(lambda: torch.mm(a, b), repeat) / 1e9


def profile(config: DUFMConfig, steps: int = 50) -> str:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as prof

    configs = [config] * B
    bt = BatchedTrainer(configs, Recipe(momentum_boost=None), record_every=10**9)
    bt._advance(5)
    with prof(activities=[ProfilerActivity.CPU]) as p:
        bt._advance(steps)
    return p.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    log = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, s: str) -> int:
            sys.__stdout__.write(s)
            return log.write(s)

    with redirect_stdout(Tee()):
        peak = peak_gflops(args.repeat)
        print(f"one torch thread, float64, B = {B}, {args.steps} steps, best of {args.repeat}"
              f" (CPU time); peak (2048^2 mm) = {peak:.2f} GFLOP/s")  # fmt: skip
        rows = [measure(name, cfg, args.steps, args.repeat) for name, cfg in SHAPES.items()]
        kept = keep_freed_memory()  # from here on (it cannot be undone in this process)
        for row, cfg in zip(rows, SHAPES.values(), strict=True):
            ms, faults = measure_kept(cfg, args.steps, args.repeat) if kept else (math.nan,) * 2
            row["kept_ms"] = ms
            row["kept_page_faults_per_step"] = faults
            row["kept_gflops"] = row["mflop_per_step"] / ms
            row["peak_gflops"] = peak
            row["batched_of_bmm"] = row["batched_gflops"] / row["bmm_alone_gflops"]
            row["kept_of_bmm"] = row["kept_gflops"] / row["bmm_alone_gflops"]
            row["batched_of_peak"] = row["batched_gflops"] / peak
            row["bmm_of_peak"] = row["bmm_alone_gflops"] / peak
        df = pd.DataFrame(rows)
        times = ["mflop_per_step", "batched_ms", "bmm_alone_ms", "kept_ms", "page_faults_per_step",
                 "kept_page_faults_per_step"]  # fmt: skip
        cols = ["batched_gflops", "bmm_alone_gflops", "kept_gflops", "peak_gflops",
                "batched_of_bmm", "kept_of_bmm", "batched_of_peak", "bmm_of_peak"]  # fmt: skip
        with pd.option_context("display.width", 250, "display.precision", 3):
            print(df.set_index("shape")[times].to_string())
            print(df.set_index("shape")[cols].to_string())
        print("kept_*: the batched path after keep_freed_memory() (glibc mallopt)")
        if not args.no_profile:
            for name, cfg in SHAPES.items():
                print(f"\nprofile of 50 batched steps, {name}:")
                print(profile(cfg))
    RESULTS.mkdir(exist_ok=True)
    df.to_csv(RESULTS / "gemm_fraction.csv", index=False)
    (RESULTS / "gemm_fraction.log").write_text(log.getvalue(), encoding="utf-8")


if __name__ == "__main__":
    main()
