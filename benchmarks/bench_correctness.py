"""Does the default recipe reach the theorem's optimum?

For K = 2, depths 2-6, balanced and imbalanced, float64: train with the default recipe until the
relative gap to L* and every layer's NC1 are below 1e-6 (or 30 000 steps), and report the gap,
the worst NC1 and the steps. Target: gap < 1e-4 and NC1 < 1e-6 in every layer. Configurations
within 10 % of the threshold (theory.near_threshold) are flagged, not required to pass; the
column "c/c*" gives the largest c_k / c*_L so that runs a little further out can be judged too.
Also checks the §2.3 construction against L* (target 1e-12).

    python benchmarks/bench_correctness.py
"""

from __future__ import annotations

import time

import torch

from dnc_interactive import theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.training import Trainer

CASES = [
    *(dict(depth=L) for L in range(2, 7)),  # theory §7.2: K=2, n=50, lambda=1e-3
    *(dict(depth=L, samples_per_class=(90, 10), lambda_H=3e-3, lambda_W=3e-3) for L in range(2, 7)),
    dict(depth=2, samples_per_class=(80, 20), lambda_H=5e-3, lambda_W=5e-3),  # theory §7.5
    dict(depth=3, samples_per_class=(95, 5), lambda_H=0.0077353, lambda_W=0.0077353),
    dict(depth=3, samples_per_class=20, lambda_H=2e-3, lambda_W=(5e-3, 1e-3, 2e-3)),  # §7.3
    dict(depth=6, samples_per_class=20, lambda_H=2e-3, lambda_W=2e-3),
]


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'config':<62} {'c/c*':>5} {'steps':>6} {'gap':>9} {'max NC1':>9} {'sec':>6}  ok")
    failures = 0
    for kw in CASES:
        cfg = DUFMConfig(dtype="float64", **kw)
        near = theory.near_threshold(cfg)
        ratio = max(theory.effective_c(cfg)) / theory.c_star(cfg.L)
        t0 = time.perf_counter()
        tr = Trainer(cfg, metrics_every=0).run(tol=1e-6, max_steps=30_000)
        nc1 = tr.max_nc1()
        ok = abs(tr.gap) < 1e-4 and nc1 < 1e-6
        failures += not ok and not near
        label = ", ".join(f"{k}={v}" for k, v in kw.items())
        print(
            f"{label:<62} {ratio:5.2f} {tr.steps:>6} {tr.gap:9.1e} {nc1:9.1e}"
            f" {time.perf_counter() - t0:6.1f}  {'yes' if ok else 'NO'}"
        )
    worst = 0.0
    for K, n, L in [(2, 50, 4), (2, 20, 3), (10, 5, 4), (3, 10, 2)]:
        cfg = DUFMConfig(num_classes=K, samples_per_class=n, depth=L, dtype="float64", width=32)
        model = DUFM(cfg).load_matrices(*theory.construct_optimum(cfg))
        worst = max(worst, abs(model.loss().total.item() - theory.optimal_loss(cfg)))
    print(f"construction of theory §2.3 vs L*: max |difference| = {worst:.1e} (target 1e-12)")
    print(f"configurations missing the target (not near a threshold): {failures}")


if __name__ == "__main__":
    main()
