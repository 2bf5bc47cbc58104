"""Train the follow-up's K = 10, L = 4 setting over many seeds and keep the best (theory §5.7).

4-DUFM, K = 10, n = 5, width 30, lambda = 0.004 for every block, plain gradient descent with
learning rate 0.5 (no momentum), ``--seeds`` seeds trained as one batch
(:class:`dnc_interactive.sweeps.BatchedTrainer`) for ``--steps`` steps, then ``--polish``
L-BFGS iterations (:meth:`Trainer.polish`) for the ``--keep`` seeds with the lowest GD loss.
Writes the per-seed losses (CSV), the kept seeds' and the best seed's matrices
(``torch.save``) to benchmarks/results/; ``benchmarks/gd_solution_k10.py`` characterises them.

    python benchmarks/gd_solution_k10_train.py [--seeds 40] [--steps 40000] [--polish 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from dnc_interactive.config import DUFMConfig
from dnc_interactive.sweeps import BatchedTrainer
from dnc_interactive.theory import optimal_loss
from dnc_interactive.training import Recipe, Trainer

RESULTS = Path(__file__).parent / "results"
BASE = DUFMConfig(
    num_classes=10,
    samples_per_class=5,
    depth=4,
    width=30,
    lambda_H=0.004,
    lambda_W=0.004,
    dtype="float64",
)
PLAIN_GD = Recipe(lr=0.5, momentum=0.0, momentum_boost=None, restarts=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--polish", type=int, default=2000)
    ap.add_argument("--keep", type=int, default=8)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    configs = [dataclasses.replace(BASE, seed=s) for s in seeds]
    L_dnc = optimal_loss(BASE)
    t0 = time.perf_counter()
    bt = BatchedTrainer(configs, PLAIN_GD, record_every=100).run(args.steps)
    print(f"GD: {args.seeds} seeds x {args.steps} steps in {time.perf_counter() - t0:.0f} s")
    rows = [
        {"seed": s, "gd_loss": bt.summary(b)["loss"], "status": bt.status[b]}
        for b, s in enumerate(seeds)
    ]
    order = sorted(range(len(seeds)), key=lambda b: rows[b]["gd_loss"])
    best_loss, best = float("inf"), None
    kept = []
    for b in order[: args.keep]:
        tr = Trainer(bt.model(b), PLAIN_GD, metrics_every=0)
        tr.polish(args.polish)
        loss = float(tr.model.loss().total.detach())
        rows[b]["final_loss"] = loss
        print(f"seed {seeds[b]}: GD {rows[b]['gd_loss'] / L_dnc:.5f}, polished {loss / L_dnc:.6f}"
              " x L_DNC", flush=True)  # fmt: skip
        m = tr.model
        entry = {
            "seed": seeds[b],
            "loss": loss,
            "H1": m.H1.detach().clone(),
            "W": [w.detach().clone() for w in m.W],
            "config": configs[b].to_dict(),
        }
        kept.append(entry)
        if loss < best_loss:
            best_loss, best = loss, entry
    df = pd.DataFrame(rows)
    df["gd_ratio"] = df["gd_loss"] / L_dnc
    df["final_ratio"] = df.get("final_loss", float("nan")) / L_dnc
    RESULTS.mkdir(exist_ok=True)
    df.to_csv(RESULTS / f"gd_solution_k10_seeds{args.tag}.csv", index=False)
    assert best is not None
    torch.save(best, RESULTS / f"gd_solution_k10_best{args.tag}.pt")
    torch.save(kept, RESULTS / f"gd_solution_k10_kept{args.tag}.pt")
    print(f"best: seed {best['seed']}, loss {best_loss:.8f} = {best_loss / L_dnc:.6f} x L_DNC;"
          f" total {time.perf_counter() - t0:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
