"""The follow-up's claims (arXiv 2405.14468, Figs. 2 and 3): low-rank solutions beat DNC for
K > 2, L > 2 (theory §5).

Layering: standard library at import time; each claim imports what it needs when it runs.
"""

from __future__ import annotations

from dnc_interactive.verify.claims_base import (
    Outcome,
    Size,
    _fmt,
    _follow_up_base,
    _plain_gd,
    _rule,
    _spearman,
    _sweep,
)


def _ranks(text: object) -> list[int]:
    return [int(v) for v in str(text).split(",") if v != ""]


def _fig2(p: Size) -> Outcome:
    """4-DUFM, K = 10, plain GD lr 0.5 (follow-up Fig. 2 top; theory §5.3, §5.4)."""
    import altair as alt

    from dnc_interactive import lowrank

    base = _follow_up_base(p["width"], p["lam"])
    df = _sweep({"seed": list(range(p["runs"]))}, p["steps"], base, _plain_gd(p["lr"]), p["polish"])
    L_dnc = float(df["optimal_loss"].iloc[0])
    K = base.K
    ok = df[df["status"] != "diverged"]
    mean_loss = float(ok["final_loss"].mean())
    mean_ratio = mean_loss / L_dnc
    low = ok[(~ok["is_dnc"]) & (ok["label"] != "trivial")]
    pre = [_ranks(t) for t in ok["rank_pre"]]
    per_layer = [sum(r[l] for r in pre) / len(pre) for l in range(base.L)] if pre else []
    canon = lowrank.srg_loss(base).ratio
    held = bool(mean_loss < L_dnc and len(low) > len(ok) / 2)
    measured = {
        "L_DNC": L_dnc,
        "runs": len(df),
        "diverged": int((df["status"] == "diverged").sum()),
        "steps": p["steps"],
        "polish": p["polish"],
        "mean_final_loss": mean_loss,
        "mean_loss_ratio": mean_ratio,
        "loss_ratios": (ok["final_loss"] / L_dnc).round(6).tolist(),
        "low_rank_runs": len(low),
        "solution_ranks": ok["rank"].astype(int).tolist(),
        "mean_pre_relu_rank_per_layer": per_layer,
        "srg_canonical_ratio": canon,
    }
    polish = f" + {p['polish']} L-BFGS" if p["polish"] else ""
    summary = (
        f"{len(ok)} runs ({p['steps']} GD steps{polish}):"
        f" mean final loss {mean_loss:.6f} = {mean_ratio:.4f} x L_DNC ({L_dnc:.6f});"
        f" {len(low)} of {len(ok)} runs low-rank (solution ranks"
        f" {sorted(ok['rank'].astype(int).tolist())} < K = {K}); mean pre-ReLU ranks of"
        f" M~_1..M~_{base.L}: {', '.join(f'{v:.1f}' for v in per_layer)}"
        f" (SRG canonical construction: {canon:.4f} x L_DNC)"
    )
    tidy = ok[["seed", "final_loss", "rank", "label"]].copy()
    tidy["loss_ratio"] = tidy["final_loss"] / L_dnc
    points = (
        alt.Chart(tidy)
        .mark_circle(size=60)
        .encode(
            x=alt.X("seed:O", title="run (seed)", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("loss_ratio:Q", title="final loss / L_DNC", scale=alt.Scale(zero=False)),
            color=alt.Color("rank:O", title="rank", scale=alt.Scale(scheme="viridis")),
            tooltip=["seed:O", "label:N", alt.Tooltip("loss_ratio:Q", format=".4f")],
        )
    )
    chart = alt.layer(
        points, _rule(1.0, label="DNC (L_DNC)"), _rule(canon, label="SRG canonical")
    ).properties(title="K = 10, L = 4: final loss of each run vs L_DNC", width=300, height=180)
    return Outcome(measured, held, summary, tidy, chart)


def _fig3_srg(p: Size) -> Outcome:
    """L_SRG / L_DNC for K = C(r, 2), L in {3, 4, 5} (follow-up Fig. 3 left; theory §5.2)."""
    import altair as alt

    from dnc_interactive import lowrank

    df = lowrank.compare_srg_dnc(
        rs=tuple(p["rs"]),
        depths=tuple(p["depths"]),
        lam=p["lam"],
        samples_per_class=p["samples_per_class"],
        optimize=p["optimize"],
    )
    cols = ["srg_ratio"] + (["srg_sym_ratio"] if p["optimize"] else [])
    df["best_ratio"] = df[cols].min(axis=1)
    below = df["best_ratio"] < 1.0
    held = bool(below.all())
    fails = df[~below]
    measured = {
        "points": len(df),
        "below_one": int(below.sum()),
        "ratios": {
            f"r={rec['r']},L={rec['depth']}": {c: float(rec[c]) for c in cols}
            for rec in df.to_dict("records")
        },
        "worst_best_ratio": float(df["best_ratio"].max()),
    }
    summary = (
        f"best SRG-type ratio below 1 at {int(below.sum())} of {len(df)} (r, L) points"
        f" (canonical closed form{' and optimised symmetric family' if p['optimize'] else ''},"
        f" lambda = {p['lam']:g}, n = {p['samples_per_class']})"
    )
    if len(fails):
        summary += "; not below 1 at " + ", ".join(
            f"r={rec['r']}, L={rec['depth']} ({rec['best_ratio']:.4f})"
            for rec in fails.to_dict("records")
        )
    tidy = df.melt(
        id_vars=["r", "K", "depth"], value_vars=cols, var_name="construction", value_name="ratio"
    )
    tidy["construction"] = tidy["construction"].map(
        {"srg_ratio": "canonical", "srg_sym_ratio": "symmetric (optimised)"}
    )
    lines = (
        alt.Chart(tidy)
        .mark_line(point=True)
        .encode(
            x=alt.X("r:O", title="r (K = r(r−1)/2)", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("ratio:Q", title="L_SRG / L_DNC", scale=alt.Scale(zero=False)),
            color=alt.Color("depth:O", title="depth L", scale=alt.Scale(scheme="viridis")),
            strokeDash=alt.StrokeDash("construction:N", title="construction"),
            tooltip=[
                "r:O",
                "K:O",
                "depth:O",
                "construction:N",
                alt.Tooltip("ratio:Q", format=".4f"),
            ],
        )
    )
    chart = alt.layer(lines, _rule(1.0, label="break-even")).properties(
        title="SRG construction vs DNC", width=300, height=180
    )
    return Outcome(measured, held, summary, tidy, chart)


def _fig3_lambda(p: Size) -> Outcome:
    """Average solution rank vs weight decay (follow-up Fig. 3 middle; theory §5.3)."""
    import altair as alt

    from dnc_interactive.charts.sweep_results import rank_chart
    from dnc_interactive.sweeps import rank_summary

    base = _follow_up_base(p["width"])
    grid = {"lambda": list(p["lambdas"]), "seed": list(range(p["seeds"]))}
    df = _sweep(grid, p["steps"], base, _plain_gd(p["lr"]))
    ok = df[df["status"] != "diverged"]
    summ = rank_summary(ok, "lambda").sort_values("lambda")
    rho = _spearman(ok["lambda"], ok["rank"])
    first, last = float(summ["rank_mean"].iloc[0]), float(summ["rank_mean"].iloc[-1])
    held = bool(last < first and rho < 0)
    measured = {
        "lambdas": summ["lambda"].tolist(),
        "mean_rank": summ["rank_mean"].round(4).tolist(),
        "runs_per_lambda": summ["runs"].astype(int).tolist(),
        "trivial_runs": int((ok["label"] == "trivial").sum()),
        "diverged": int((df["status"] == "diverged").sum()),
        "spearman_lambda_rank": rho,
        "mean_loss_ratio": summ["loss_ratio_mean"].round(5).tolist(),
        "steps": p["steps"],
    }
    summary = (
        f"mean solution rank {', '.join(f'{v:.2f}' for v in summ['rank_mean'])} at lambda ="
        f" {', '.join(f'{v:.3g}' for v in summ['lambda'])} ({p['seeds']} seeds, {p['steps']} GD"
        f" steps): {first:.2f} -> {last:.2f}, Spearman(lambda, rank) = {_fmt(rho, 3)}"
    )
    chart = rank_chart(
        ok, x="lambda", log_x=True, title="rank at the end vs weight decay (K = 10, L = 4)"
    )
    chart = chart.properties(width=300, height=180)
    tidy = ok[["lambda", "seed", "rank", "label", "loss_ratio"]].reset_index(drop=True)
    assert isinstance(chart, alt.TopLevelMixin)
    return Outcome(measured, held, summary, tidy, chart)


def _fig3_width(p: Size) -> Outcome:
    """Probability of finding DNC vs width (follow-up Fig. 3 right; theory §5.3)."""
    from dnc_interactive.charts.sweep_results import dnc_probability_chart
    from dnc_interactive.sweeps import dnc_probability

    base = _follow_up_base(30, p["lam"])
    grid = {"width": list(p["widths"]), "seed": list(range(p["seeds"]))}
    df = _sweep(grid, p["steps"], base, _plain_gd(p["lr"]))
    ok = df[df["status"] != "diverged"]
    prob = dnc_probability(ok, "width").sort_values("width")
    rho = _spearman(ok["width"], ok["is_dnc"].astype(float))
    first, last = float(prob["p_dnc"].iloc[0]), float(prob["p_dnc"].iloc[-1])
    held = bool(last > first and rho > 0)
    measured = {
        "widths": prob["width"].astype(int).tolist(),
        "p_dnc": prob["p_dnc"].round(4).tolist(),
        "runs_per_width": prob["runs"].astype(int).tolist(),
        "p_low": prob["p_low"].round(4).tolist(),
        "p_high": prob["p_high"].round(4).tolist(),
        "spearman_width_dnc": rho,
        "mean_rank_per_width": ok.groupby("width")["rank"].mean().round(3).tolist(),
        "mean_loss_ratio_per_width": ok.groupby("width")["loss_ratio"].mean().round(5).tolist(),
        "diverged": int((df["status"] == "diverged").sum()),
        "steps": p["steps"],
    }
    summary = (
        f"P(DNC) {', '.join(f'{v:.2f}' for v in prob['p_dnc'])} at width"
        f" {', '.join(str(int(w)) for w in prob['width'])} ({p['seeds']} seeds, {p['steps']}"
        f" GD steps): {first:.2f} -> {last:.2f}, Spearman(width, DNC) = {_fmt(rho, 3)}"
    )
    chart = dnc_probability_chart(
        prob, x="width", title="probability of DNC vs width (K = 10, L = 4)"
    ).properties(width=300, height=180)
    tidy = ok[["width", "seed", "is_dnc", "rank", "label", "loss_ratio"]].reset_index(drop=True)
    return Outcome(measured, held, summary, tidy, chart)
