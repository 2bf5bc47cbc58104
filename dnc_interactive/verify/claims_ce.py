"""Garrod & Keating's cross-entropy claim (arXiv 2410.23169): in the deep linear cross-entropy
DUFM, DNC is not optimal (theory §5.6).

Layering: standard library at import time; each claim imports what it needs when it runs.
"""

from __future__ import annotations

import math
from typing import Any

from dnc_interactive.verify.claims_base import (
    Outcome,
    Size,
    _plain_gd,
    _rule,
)


def ce_dnc_loss(num_classes: int, samples_per_class: int, depth: int, lam: float) -> float:
    """The best loss of a DNC solution of the deep *linear* cross-entropy DUFM (theory §5.6).

    All blocks share lambda. The product X = W_L..W_1 H_1 (K x N) decides the fit, and the
    smallest weight decay over its factorisations into m = L + 1 factors is
    ``(m/2) lam sum_j sigma_j(X)^{2/m}`` (theory §2.2, the Schatten identity). A DNC solution
    has logits of a simplex ETF, Z = s (I_K - J/K) per class, repeated n times: K - 1 singular
    values s sqrt(n) and per-sample cross-entropy log(1 + (K-1) e^{-s}). So

        L_DNC^CE = min_{s >= 0} log(1 + (K-1) e^{-s}) + (m/2) lam (K-1) (n s^2)^{1/m},

    a 1-D problem solved here by golden-section search (s = 0 gives log K).
    """
    K, n, m = num_classes, samples_per_class, depth + 1

    def f(s: float) -> float:
        return math.log1p((K - 1) * math.exp(-s)) + 0.5 * m * lam * (K - 1) * (n * s * s) ** (1 / m)

    lo, hi = 0.0, 200.0
    g = (math.sqrt(5) - 1) / 2
    # coarse scan first: f is not unimodal near s = 0 for m >= 3 (infinite slope of s^{2/m})
    grid = [hi * (i / 2000) ** 2 for i in range(2001)]
    i = min(range(len(grid)), key=lambda j: f(grid[j]))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(200):
        if f(a) < f(b):
            hi = b
        else:
            lo = a
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    return min(f(0.5 * (lo + hi)), math.log(K))


#: The cross-entropy claim's setting; its sizes differ in width, seeds and steps only.
_CE_SETTING: dict[str, Any] = {
    "num_classes": 10,
    "samples_per_class": 5,
    "depth": 3,
    "width": 70,
    "lam": 2**-10,
    "lr": 0.5,
}


def _ce_linear(p: Size) -> Outcome:
    """Deep linear CE DUFM, K = 10: gradient descent vs the best DNC loss (Garrod & Keating,
    theory §5.5, §5.6)."""
    import warnings

    import altair as alt
    import pandas as pd
    import torch

    from dnc_interactive import metrics
    from dnc_interactive.config import DUFMConfig
    from dnc_interactive.optim import BatchedTrainer

    K, n, L, lam = p["num_classes"], p["samples_per_class"], p["depth"], p["lam"]
    cfgs = [
        DUFMConfig(
            num_classes=K,
            samples_per_class=n,
            depth=L,
            width=p["width"],
            lambda_H=lam,
            lambda_W=lam,
            activation="linear",
            loss="ce",
            seed=seed,
            dtype="float64",
        )
        for seed in range(p["seeds"])
    ]
    recipe = _plain_gd(p["lr"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bt = BatchedTrainer(cfgs, [recipe] * len(cfgs)).run(p["steps"])
    L_dnc = ce_dnc_loss(K, n, L, lam)
    rows = []
    for b, cfg in enumerate(cfgs):
        s = bt.summary(b)
        model = bt.model(b)
        with torch.no_grad():
            Z = model.forward().output
            Zbar = metrics.class_means(Z, model.labels, K)
            Zc = Zbar - Zbar.mean(dim=1, keepdim=True)
            sv = torch.linalg.svdvals(Zc)
        rows.append(
            {
                "seed": cfg.seed,
                "final_loss": s["loss"],
                "loss_ratio": s["loss"] / L_dnc,
                "logit_rank": metrics.rank(Zc),
                "status": s["status"],
                "sv": (sv / sv[0]).tolist(),
            }
        )
    df = pd.DataFrame(rows)
    ok = df[df["status"] != "diverged"]
    mean_ratio = float(ok["loss_ratio"].mean())
    low = ok[(ok["loss_ratio"] < 1.0) & (ok["logit_rank"] < K - 1)]
    held = bool(mean_ratio < 1.0 and len(low) > len(ok) / 2)
    measured = {
        "L_DNC_ce": L_dnc,
        "runs": len(df),
        "diverged": int((df["status"] == "diverged").sum()),
        "mean_final_loss": float(ok["final_loss"].mean()),
        "mean_loss_ratio": mean_ratio,
        "loss_ratios": ok["loss_ratio"].round(5).tolist(),
        "centred_logit_ranks": ok["logit_rank"].astype(int).tolist(),
        "low_rank_runs_below_dnc": len(low),
        "steps": p["steps"],
    }
    summary = (
        f"deep linear CE DUFM (K = {K}, L = {L}, d = {p['width']}, lambda = {lam:g}):"
        f" mean final loss {measured['mean_final_loss']:.6f} = {mean_ratio:.4f} x L_DNC^CE"
        f" ({L_dnc:.6f}); {len(low)} of {len(ok)} runs below L_DNC^CE with centred-logit rank"
        f" {sorted(ok['logit_rank'].astype(int).tolist())} < K - 1 = {K - 1}"
    )
    tidy = pd.DataFrame(
        [
            {"seed": r.seed, "index": i + 1, "sv": max(v, 1e-16)}
            for r in ok.itertuples()
            for i, v in enumerate(r.sv[: K - 1])  # centred: the K-th is 0 by construction
        ]
    )
    lines = (
        alt.Chart(tidy)
        .mark_line(point=True)
        .encode(
            x=alt.X("index:O", title="i", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sv:Q", scale=alt.Scale(type="log"), title="σ_i / σ_1 of centred logits"),
            color=alt.Color("seed:N", title="seed"),
            tooltip=["seed:N", "index:O", alt.Tooltip("sv:Q", format=".2e")],
        )
    )
    chart = alt.layer(lines, _rule(1e-3, label="rank cut 1e-3")).properties(
        title=f"CE, linear: loss {mean_ratio:.3f} x L_DNC; logit spectrum", width=300, height=180
    )
    return Outcome(measured, held, summary, tidy, chart)
