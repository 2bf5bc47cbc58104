"""Render each course chapter's key figure to a static PNG and SVG (offline, via vl-convert).

Widgets and interactive altair charts do not render on GitHub or nbviewer; these images stand in
for them in the README and for readers who only browse the repository. Each figure is recomputed
from the library (a few seconds of CPU each) with the notebooks' settings and written to
``docs/figures/<chapter>.png`` and ``.svg`` by :func:`dnc_interactive.charts.save_chart`.

Usage::

    python scripts/render_figures.py                 # all chapters
    python scripts/render_figures.py 04 06           # chapters whose name starts with 04 / 06
    python scripts/render_figures.py --out /tmp/figs --formats svg
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import torch

from dnc_interactive import DUFMConfig, Recipe, Trainer, charts, lowrank, metrics, theory
from dnc_interactive.sweeps import BatchedTrainer, sweep, theory_frame

ROOT = Path(__file__).resolve().parents[1]
PNG_SCALE = 1.5  # still sharp on a laptop screen
PNG_COLORS = 128  # PNGs are reduced to a palette when Pillow is installed (~5x smaller)


def _default_run() -> Trainer:
    """The default problem (K = 2, n = 50, L = 4, all lambda = 1e-3, theory §7.2), collapsed."""
    return Trainer(DUFMConfig(), metrics_every=50).run(tol=1e-5, max_steps=5000)


def start_here() -> alt.TopLevelMixin:
    """Chapter 1: the dashboard's training figure (loss against L*, DNC1-3 per layer)."""
    h = _default_run().history
    return (
        alt.vconcat(
            charts.loss_chart(h), charts.metric_chart(h, metrics=("nc1", "nc2_orth", "nc3"))
        )
        .resolve_scale(color="independent")
        .properties(title="Deep neural collapse in the 4-DUFM (K = 2, n = 50, all λ = 1e-3)")
    )


def dufm_and_the_theorem() -> alt.TopLevelMixin:
    """Chapter 2: the closed form (theory §2.3) beside the trajectory of gradient descent."""
    trainer = _default_run()
    cfg = trainer.config
    norms = trainer.history.query("kind == 'post' and metric == 'mean_norm'")
    expected = pd.DataFrame(
        {"layer": range(1, cfg.L + 1), "value": [n[0] for n in theory.layer_norms(cfg)]}
    )
    color = alt.Color("layer:O", title="layer l")
    lines = (
        alt.Chart(norms)
        .mark_line()
        .encode(x="step:Q", y=alt.Y("value:Q", title="mean ‖μ_c‖ (post-ReLU)"), color=color)
    )
    rules = alt.Chart(expected).mark_rule(strokeDash=[5, 3]).encode(y="value:Q", color=color)
    right = (lines + rules).properties(
        width=300, height=200, title="Class-mean norms: GD (solid), closed form (dashed)"
    )
    left = charts.loss_chart(trainer.history, metrics=("loss",))
    return alt.hconcat(left, right).resolve_scale(color="independent")


def depth() -> alt.TopLevelMixin:
    """Chapter 3: q* against lambda for L = 1..5 (continuous for L = 1, a jump for L >= 2)."""
    rows = [
        {"lambda": lam, "L": L, "q*": theory.optimal_q(cfg)[0]}
        for L in (1, 2, 3, 4, 5)
        for lam in np.geomspace(0.01, 0.1, 121)
        for cfg in [DUFMConfig(depth=L, lambda_H=float(lam), lambda_W=float(lam))]
    ]
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_line()
        .encode(
            x=alt.X("lambda:Q", scale=alt.Scale(type="log"), title="λ (all blocks)"),
            y=alt.Y("q*:Q", title="optimal output scale q*"),
            color=alt.Color("L:O", title="depth L"),
        )
        .properties(
            width=420,
            height=240,
            title="q* against λ (K = 2, n = 50): continuous for L = 1, a jump for L ≥ 2",
        )
    )


def regularization() -> alt.TopLevelMixin:
    """Chapter 4: the (lambda, L) phase diagram from theory and from gradient descent."""
    base = DUFMConfig(num_classes=2, samples_per_class=50, width=64)
    lams = [float(f"{x:.3g}") for x in np.geomspace(0.005, 0.1, 7)]
    grid = {"depth": [1, 2, 3, 4, 5], "lambda": lams}
    gd = sweep(grid, steps=1000, base=base, progress=False)
    gd["q"] = gd["q_mean"].clip(lower=0).round(3)  # no -1e-30 labels
    th = theory_frame(grid, base=base, srg=False)
    th["q"] = th["q_star"]
    return charts.side_by_side(
        charts.phase_diagram(th, x="lambda", y="depth", color="q", text=True),
        charts.phase_diagram(gd, x="lambda", y="depth", color="q", text=True),
        titles=("Theory: optimal output scale q*", "Gradient descent: mean output scale q"),
        resolve_color="shared",
    )


def class_imbalance() -> alt.TopLevelMixin:
    """Chapter 5: the minority's output scale across its collapse threshold, two starts."""
    base = DUFMConfig(samples_per_class=(95, 5), depth=3, width=64)
    lam_star = theory.critical_lambda_of(base)
    factors = [0.5, 0.7, 0.85, 0.95, 1.05, 1.15, 1.5]
    starts = {"small start": (0.1, Recipe()), "large start": (1.0, Recipe(lr=0.1))}
    configs, recipes, labels = [], [], []
    for name, (scale, recipe) in starts.items():
        for f in factors:
            lam = f * lam_star
            configs.append(base.replace(lambda_H=lam, lambda_W=lam, init_scale=scale))
            recipes.append(recipe)
            labels.append((name, f))
    bt = BatchedTrainer(configs, recipes).run(1500)
    gd = pd.DataFrame(
        [
            {"start": name, "λ / λ*": f, "q_1": metrics.output_scale_frame(bt.model(b))["q"][1]}
            for b, (name, f) in enumerate(labels)
        ]
    )
    xs = np.linspace(0.45, 1.6, 231)
    line = pd.DataFrame(
        {
            "λ / λ*": xs,
            "q_1": [
                theory.optimal_q(base.replace(lambda_H=x * lam_star, lambda_W=x * lam_star))[1]
                for x in xs
            ],
        }
    )
    curve = (
        alt.Chart(line)
        .mark_line(color="gray")
        .encode(x="λ / λ*:Q", y=alt.Y("q_1:Q", title="minority output scale q_1"))
    )
    dots = (
        alt.Chart(gd)
        .mark_point(size=90, filled=True)
        .encode(x="λ / λ*:Q", y="q_1:Q", color="start:N", shape="start:N")
    )
    return (curve + dots).properties(
        width=420, height=240, title="Minority collapse, n = (95, 5), L = 3: theory (gray) and GD"
    )


def beyond_two_classes() -> alt.TopLevelMixin:
    """Chapter 6: the SRG construction against DNC, and what gradient descent finds."""
    compare = lowrank.compare_srg_dnc(rs=(4, 5, 6, 7, 8), depths=(3, 4, 5, 6), optimize=False)
    ratio = (
        alt.Chart(compare)
        .mark_line(point=True)
        .encode(
            x=alt.X("K:O", title="classes K = r(r−1)/2"),
            y=alt.Y("srg_ratio:Q", title="L_SRG / L_DNC"),
            color=alt.Color("depth:O", title="depth L"),
        )
    )
    one = alt.Chart(pd.DataFrame({"y": [1.0]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
    left = (ratio + one).properties(width=300, height=220, title="SRG construction vs DNC")
    cfg = DUFMConfig(
        num_classes=10, samples_per_class=5, depth=4, width=30, lambda_H=4e-3, lambda_W=4e-3
    )
    seeds = list(range(8))
    bt = BatchedTrainer([cfg.replace(seed=s) for s in seeds]).run(2000)
    runs = pd.DataFrame(
        [
            {
                "seed": s,
                "label": lowrank.classify(bt.model(b)).label,
                "loss / L_DNC": bt.summary(b)["loss"] / theory.optimal_loss(cfg),
            }
            for b, s in enumerate(seeds)
        ]
    )
    bars = (
        alt.Chart(runs)
        .mark_bar(clip=True)
        .encode(
            x="seed:O",
            y=alt.Y("loss / L_DNC:Q", scale=alt.Scale(domain=[0.8, 1.05])),
            color="label:N",
        )
    )
    right = (bars + one).properties(
        width=260, height=220, title="Gradient descent, K = 10, L = 4: loss / L_DNC"
    )
    return alt.hconcat(left, right).resolve_scale(color="independent")


def real_networks() -> alt.TopLevelMixin:
    """Chapter 7: a backbone + DUFM head on digits 0 vs 1, against the DUFM's optimum."""
    from dnc_interactive.realnets import RealNetExperiment, preset

    h = RealNetExperiment(preset("digits")).run().history
    return (
        alt.vconcat(
            charts.loss_chart(h), charts.metric_chart(h, metrics=("nc1", "nc2_orth", "nc3"))
        )
        .resolve_scale(color="independent")
        .properties(title="A trained network's head (digits 0 vs 1) against the DUFM")
    )


FIGURES: dict[str, Callable[[], alt.TopLevelMixin]] = {
    "01_start_here": start_here,
    "02_dufm_and_the_theorem": dufm_and_the_theorem,
    "03_depth": depth,
    "04_regularization": regularization,
    "05_class_imbalance": class_imbalance,
    "06_beyond_two_classes": beyond_two_classes,
    "07_real_networks": real_networks,
}


def render(
    names: list[str] | None = None,
    out: Path = ROOT / "docs" / "figures",
    formats: tuple[str, ...] = ("png", "svg"),
) -> list[Path]:
    """Render the figures whose chapter name starts with one of ``names`` (all if None)."""
    chosen = [n for n in FIGURES if not names or any(n.startswith(p) for p in names)]
    if not chosen:
        raise ValueError(f"names={names!r} match no chapter: expected prefixes of {list(FIGURES)}")
    written = []
    for name in chosen:
        chart = FIGURES[name]()
        for fmt in formats:
            path = out / f"{name}.{fmt}"
            kwargs = {"scale_factor": PNG_SCALE} if fmt == "png" else {}
            written.append(charts.save_chart(chart, path, **kwargs))
            if fmt == "png":
                _shrink_png(path)
    return written


def _shrink_png(path: Path) -> None:
    """Reduce a chart PNG to a palette of PNG_COLORS colours (if Pillow is installed)."""
    try:
        from PIL import Image
    except ImportError:  # optional: the full-colour PNG is kept
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(
            colors=PNG_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("chapters", nargs="*", help="chapter prefixes, e.g. 03 or 04_reg")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures")
    parser.add_argument("--formats", nargs="+", default=["png", "svg"], choices=["png", "svg"])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    try:
        paths = render(args.chapters or None, args.out, tuple(args.formats))
    except ValueError as exc:
        parser.error(str(exc))
    for p in paths:
        size = p.stat().st_size / 1024
        print(f"{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}  {math.ceil(size)} KiB")
    print(f"{len(paths)} files in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
