"""Fidelity of the default recipe: does gradient descent land on the theorem's optimum?

A fixed spread over the K = 2 phase diagram (theory §2.2, §6, §8): depth L = 1..8, the ratio
c / c*_L on both sides of the threshold, and a rotating variant per cell (sample count n, width
from K to 128, imbalance down to [95, 5], per-layer lambdas, float32 / float64, seed). Each
configuration is trained by ``Trainer(config, recipe).run(tol=1e-4)``, exactly what
``dnc-interactive train`` and the dashboard do. Prints:

* the share that reaches a relative gap < 1e-4 to L*, outside the threshold band
  [1 - THRESHOLD_BAND, 1 + THRESHOLD_BAND] c*_L (and inside it, for information);
* the worst gap outside the band, the median and worst number of steps;
* the share by width (narrow ReLU layers are the hard part);
* the diagnosis of every configuration that did not reach L*;
* with ``--baseline NAME``, the same figures for another recipe (e.g. ``fast``, the first start
  alone) run in the same process, and the ratio of median steps.

It writes ``--out`` (a CSV, one row per configuration) and ``--png`` (the reached / stuck phase
diagram). Run: ``python benchmarks/bench_fidelity.py [--workers 2] [--baseline fast]``.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor

RATIOS = (0.2, 0.5, 0.8, 0.85, 1.15, 1.3, 2.0)
# (label, samples per class, width, per-layer lambdas, dtype)
VARIANTS = (
    ("n50 d64", 50, 64, False, "float32"),
    ("n5 d128", 5, 128, False, "float64"),
    ("n200 d32", 200, 32, False, "float32"),
    ("[95,5] d64", (95, 5), 64, False, "float64"),
    ("[80,20] d48 per-layer", (80, 20), 48, True, "float32"),
    ("n20 d16", 20, 16, False, "float64"),
    ("n50 d8", 50, 8, False, "float32"),
    ("n50 d2", 50, 2, False, "float64"),
)


def make_config(L: int, ratio: float, variant: tuple, seed: int):
    """A K = 2 DUFMConfig whose largest c_k / c*_L equals ``ratio`` (theory §2.2, §6)."""
    from dnc_interactive import DUFMConfig, theory

    _, n, width, per_layer, dtype = variant
    sizes = n if isinstance(n, tuple) else (n, n)
    N, n_min = sum(sizes), min(sizes)
    # equal lambdas: c_k = N lambda / n_k^{L/(L+1)}; the minority class has the largest c_k
    lam = ratio * theory.c_star(L) * n_min ** (L / (L + 1)) / N
    if per_layer:  # same product Lambda, spread over the blocks
        factors = [2.0 if i % 2 == 0 else 0.5 for i in range(L + 1)]
        if (L + 1) % 2:
            factors[-1] = 1.0
        lam_H, lam_W = lam * factors[0], tuple(lam * f for f in factors[1:])
    else:
        lam_H, lam_W = lam, lam
    return DUFMConfig(
        num_classes=2,
        samples_per_class=n,
        depth=L,
        width=width,
        lambda_H=lam_H,
        lambda_W=lam_W,
        dtype=dtype,
        seed=seed,
    )


def grid(repeats: int) -> list[tuple[int, float, int, int]]:
    """(L, ratio, variant index, seed): every (L, ratio) cell gets ``repeats`` variants."""
    out = []
    for i, (L, ratio) in enumerate(itertools.product(range(1, 9), RATIOS)):
        for r in range(repeats):
            v = (i + r * 3) % len(VARIANTS)
            out.append((L, ratio, v, (i + r) % 5))
    return out


def run_one(args: tuple) -> dict:
    import warnings

    import torch

    from dnc_interactive import Recipe, Trainer, theory

    L, ratio, v, seed, recipe_name, max_steps = args
    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = make_config(L, ratio, VARIANTS[v], seed)
        t0 = time.perf_counter()
        trainer = Trainer(config, Recipe.named(recipe_name)).run(tol=1e-4, max_steps=max_steps)
    d = trainer.diagnosis()
    cs = theory.c_star(L)
    band = theory.THRESHOLD_BAND
    in_band = any(abs(c / cs - 1) <= band for c in theory.effective_c(config))
    return {
        "L": L,
        "ratio": ratio,
        "variant": VARIANTS[v][0],
        "width": VARIANTS[v][2],
        "seed": seed,
        "in_band": in_band,
        "gap": trainer.gap,
        "reached": bool(abs(trainer.gap) < 1e-4),
        "steps": trainer.steps,
        "start": trainer.attempt,
        "seconds": time.perf_counter() - t0,
        "diagnosis": d.code,
        "recipe": recipe_name,
    }


def run_grid(recipe: str, cells: list, workers: int, max_steps: int) -> list[dict]:
    jobs = [(*cell, recipe, max_steps) for cell in cells]
    rows: list[dict] = []
    with ProcessPoolExecutor(max(workers, 1)) as pool:
        for row in pool.map(run_one, jobs):
            rows.append(row)
            if len(rows) % 20 == 0:
                done = sum(r["reached"] or r["in_band"] for r in rows)
                print(
                    f"  {recipe}: {len(rows)}/{len(jobs)} done ({done} reached or in band)",
                    flush=True,
                )
    return rows


def report(rows: list[dict], name: str) -> dict:
    out_rows = [r for r in rows if not r["in_band"]]
    reached = [r for r in out_rows if r["reached"]]
    steps = sorted(r["steps"] for r in reached) or [0]
    worst = max(out_rows, key=lambda r: r["gap"]) if out_rows else None
    share = len(reached) / max(len(out_rows), 1)
    print(f"\n== recipe {name!r}: {len(rows)} configurations, {len(out_rows)} outside the band")
    print(f"reached L* (gap < 1e-4) outside the band: {len(reached)}/{len(out_rows)} = {share:.1%}")
    band = [r for r in rows if r["in_band"]]
    if band:
        print(f"inside the band (for information): {sum(r['reached'] for r in band)}/{len(band)}")
    if worst is not None:
        print(
            f"worst gap outside the band: {worst['gap']:.3g} (L={worst['L']},"
            f" c/c*={worst['ratio']}, {worst['variant']}, seed {worst['seed']},"
            f" diagnosis {worst['diagnosis']})"
        )
    print(f"steps of the reached runs: median {statistics.median(steps):.0f}, worst {max(steps)}")
    widths = sorted({r["width"] for r in out_rows})
    parts = []
    for w in widths:
        sel = [r for r in out_rows if r["width"] == w]
        parts.append(f"d={w}: {sum(r['reached'] for r in sel)}/{len(sel)}")
    print("by width: " + ", ".join(parts))
    fails = [r for r in out_rows if not r["reached"]]
    if fails:
        print("not reached (outside the band):")
        for r in fails:
            print(
                f"  L={r['L']} c/c*={r['ratio']} {r['variant']} seed {r['seed']}:"
                f" gap {r['gap']:.3g}, {r['diagnosis']}, start {r['start']}, {r['steps']} steps"
            )
    return {"share": share, "median_steps": statistics.median(steps)}


def phase_chart(rows: list[dict], path: str) -> None:
    import altair as alt
    import pandas as pd

    from dnc_interactive.charts import save_chart

    df = pd.DataFrame(rows)
    df["outcome"] = df["reached"].map({True: "reached L*", False: "stuck"})
    df.loc[df["in_band"], "outcome"] = df.loc[df["in_band"], "outcome"] + " (band)"
    chart = (
        alt.Chart(df, title="Does gradient descent reach L*? (K = 2; band: |c/c* - 1| <= 12 %)")
        .mark_point(filled=True, size=90)
        .encode(
            x=alt.X("ratio:O", title="c / c*_L"),
            y=alt.Y("L:O", title="depth L", sort="descending"),
            color=alt.Color(
                "outcome:N",
                scale=alt.Scale(
                    domain=["reached L*", "stuck", "reached L* (band)", "stuck (band)"],
                    range=["#2a9d8f", "#e63946", "#a8dadc", "#f4a261"],
                ),
            ),
            xOffset=alt.XOffset("variant:N"),
            tooltip=["L", "ratio", "variant", "seed", "gap", "steps", "diagnosis"],
        )
        .properties(width=420, height=300)
    )
    save_chart(chart, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="robust")
    p.add_argument("--baseline", default=None, help="also run this recipe (e.g. fast)")
    p.add_argument("--repeats", type=int, default=4, help="variants per (L, c/c*) cell")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--max-steps", type=int, default=8000)
    p.add_argument("--out", default="artifacts/fidelity.csv")
    p.add_argument("--png", default="artifacts/fidelity.png")
    args = p.parse_args(argv)
    cells = grid(args.repeats)
    t0 = time.perf_counter()
    rows = run_grid(args.recipe, cells, args.workers, args.max_steps)
    took = time.perf_counter() - t0
    print(f"{len(rows)} configurations in {took:.0f} s ({args.workers} workers)")
    main_fig = report(rows, args.recipe)
    all_rows = list(rows)
    if args.baseline:
        base = run_grid(args.baseline, cells, args.workers, args.max_steps)
        base_fig = report(base, args.baseline)
        all_rows += base
        ratio = main_fig["median_steps"] / max(base_fig["median_steps"], 1)
        print(
            f"\nmedian steps {args.recipe} / {args.baseline}: {ratio:.2f}"
            f" (share reached {main_fig['share']:.1%} vs {base_fig['share']:.1%})"
        )
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    import pandas as pd

    pd.DataFrame(all_rows).to_csv(args.out, index=False)
    phase_chart(rows, args.png)
    print(f"wrote {args.out} and {args.png}")
    return 0 if math.isclose(main_fig["share"], 1.0) else 1


if __name__ == "__main__":
    sys.exit(main())
