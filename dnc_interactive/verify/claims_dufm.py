"""The 2023 paper's claims (arXiv 2305.13165): GD on the DUFM reaches DNC, and real networks
recover the unconstrained features (theory §4, §5.6).

Layering: standard library at import time; each claim imports what it needs when it runs.
"""

from __future__ import annotations

from dnc_interactive.verify.claims_base import (
    Outcome,
    Size,
    _fmt,
    _rule,
)


def _dufm_gd(p: Size) -> Outcome:
    """Binary DUFM, the default robust recipe, every depth vs the closed form (theory §2.2,
    §4.1, §8)."""
    import warnings

    import altair as alt
    import pandas as pd

    from dnc_interactive.config import DUFMConfig
    from dnc_interactive.training import Trainer

    rows = []
    for L in p["depths"]:
        for seed in p["seeds"]:
            cfg = DUFMConfig(
                num_classes=2,
                samples_per_class=p["samples_per_class"],
                depth=L,
                width=p["width"],
                lambda_H=p["lam"],
                lambda_W=p["lam"],
                seed=seed,
                dtype="float64",
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                tr = Trainer(cfg, metrics_every=0).run(tol=p["tol"], max_steps=p["max_steps"])
            rows.append(
                {
                    "depth": L,
                    "seed": seed,
                    "loss": tr.loss,
                    "optimal_loss": tr.optimal_loss,
                    "relative_gap": abs(tr.gap),
                    "nc1": tr.max_nc1(),
                    "steps": tr.steps,
                    "status": tr.status,
                }
            )
    df = pd.DataFrame(rows)
    gap_max, nc1_max = float(df["relative_gap"].max()), float(df["nc1"].max())
    ok = (df["relative_gap"] < p["gap_tol"]) & (df["nc1"] < p["nc1_tol"])
    held = bool(ok.all())
    bad = df[~ok]
    measured = {
        "depths": list(p["depths"]),
        "runs": len(df),
        "runs_at_optimum": int(ok.sum()),
        "max_relative_gap": gap_max,
        "max_nc1": nc1_max,
        "relative_gap_by_depth": df.groupby("depth")["relative_gap"].max().round(12).tolist(),
        "nc1_by_depth": df.groupby("depth")["nc1"].max().tolist(),
        "max_steps_used": int(df["steps"].max()),
    }
    summary = (
        f"{int(ok.sum())} of {len(df)} runs (L = {min(p['depths'])}..{max(p['depths'])}) reached"
        f" the closed-form optimum: largest |gap| {_fmt(gap_max, 3)} (< {p['gap_tol']:g}),"
        f" largest NC1 {_fmt(nc1_max, 3)} (< {p['nc1_tol']:g})"
    )
    if len(bad):
        summary += "; missed: " + ", ".join(f"L={r.depth} seed {r.seed}" for r in bad.itertuples())
    tidy = df.melt(id_vars=["depth", "seed"], value_vars=["relative_gap", "nc1"], var_name="metric")
    tidy["value"] = tidy["value"].clip(lower=1e-16)
    tidy["threshold"] = tidy["metric"].map({"relative_gap": p["gap_tol"], "nc1": p["nc1_tol"]})
    base = alt.Chart(tidy)
    points = base.mark_point(filled=True, size=50).encode(
        x=alt.X("depth:O", title="depth L", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("value:Q", scale=alt.Scale(type="log"), title="value (floor 1e-16)"),
        color=alt.Color("metric:N", title=None),
        tooltip=["depth:O", "seed:O", "metric:N", alt.Tooltip("value:Q", format=".2e")],
    )
    rules = base.mark_rule(strokeDash=[4, 3]).encode(
        y="threshold:Q", color=alt.Color("metric:N", title=None)
    )
    chart = alt.layer(points, rules).properties(
        title="|relative gap| and NC1 at the end vs thresholds", width=300, height=180
    )
    return Outcome(measured, held, summary, tidy, chart)


def _realnet(p: Size) -> Outcome:
    """Digits head (realnets experiment, theory §4.2): the trained head's loss vs L*, the
    frozen-feature recovery test, NC1 per head layer."""
    import altair as alt
    import pandas as pd

    from dnc_interactive.realnets.experiment import RealNetExperiment, preset

    changes = {k: p[k] for k in ("samples_per_class", "depth", "epochs") if p.get(k) is not None}
    rows, per_seed = [], []
    for seed in p["seeds"]:
        cfg = preset(p["preset"], seed=seed, device="cpu", **changes)
        exp = RealNetExperiment(cfg).run()
        s = exp.summary()
        layers = exp.layer_summary()
        rec = exp.recovery(steps=p["recovery_steps"], free_steps=p["free_steps"]).summary()
        nc1 = max(max(r["nc1"], r["pre_nc1"]) for r in layers)
        per_seed.append(
            {
                "seed": seed,
                "network_gap": abs(s["relative_gap"]),
                "frozen_gap": abs(rec["frozen_gap"]),
                "free_gap": rec["free_gap"],
                "h1_shift": rec["h1_shift"],
                "max_nc1": nc1,
                "train_accuracy": s["train_accuracy"],
                "optimal_loss": s["optimal_loss"],
                "head_loss": s["head_loss"],
                "epochs": s["epochs"],
            }
        )
        for r in layers:
            for kind, key in (("post", "nc1"), ("pre", "pre_nc1")):
                rows.append({"seed": seed, "layer": r["layer"], "kind": kind, "nc1": r[key]})
    df = pd.DataFrame(per_seed)
    net_gap, frozen_gap = float(df["network_gap"].max()), float(df["frozen_gap"].max())
    nc1 = float(df["max_nc1"].max())
    held = bool(net_gap < p["network_gap_tol"] and frozen_gap < p["frozen_gap_tol"])
    held = held and nc1 < p["nc1_tol"]
    measured = {
        "preset": p["preset"],
        "seeds": list(p["seeds"]),
        "optimal_loss": float(df["optimal_loss"].iloc[0]),
        "head_loss": df["head_loss"].tolist(),
        "network_gap": net_gap,
        "frozen_gap": frozen_gap,
        "free_gap": df["free_gap"].tolist(),
        "h1_shift": df["h1_shift"].tolist(),
        "max_nc1": nc1,
        "train_accuracy": float(df["train_accuracy"].min()),
        "epochs": int(df["epochs"].iloc[0]),
    }
    summary = (
        f"digits head ({p['preset']} preset, {len(df)} seed(s), {measured['epochs']} epochs):"
        f" head loss within {_fmt(100 * net_gap, 3)} % of the DUFM's L*"
        f" (< {100 * p['network_gap_tol']:g} %),"
        f" a fresh head on the frozen features within {_fmt(frozen_gap, 3)}"
        f" (< {p['frozen_gap_tol']:g}), largest NC1 over head layers {_fmt(nc1, 3)}"
        f" (< {p['nc1_tol']:g})"
    )
    tidy = pd.DataFrame(rows)
    tidy["nc1"] = tidy["nc1"].clip(lower=1e-16)
    points = (
        alt.Chart(tidy)
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O", title="head layer l", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("nc1:Q", scale=alt.Scale(type="log"), title="NC1 (floor 1e-16)"),
            color=alt.Color("kind:N", title=None),
            detail="seed:N",
            tooltip=["seed:O", "layer:O", "kind:N", alt.Tooltip("nc1:Q", format=".2e")],
        )
    )
    chart = alt.layer(points, _rule(p["nc1_tol"], label="NC1 threshold")).properties(
        title=f"digits head: NC1 per layer (gap {_fmt(100 * net_gap, 3)} %)", width=300, height=180
    )
    return Outcome(measured, held, summary, tidy, chart)
