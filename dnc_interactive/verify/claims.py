"""The claim registry of ``dnc-interactive verify`` (theory §5.6).

Each :class:`Claim` is one statement of a paper that this package can check by computation:
its stable ``name``, the paper (arXiv id), the figure, the setting, the ``threshold`` that
decides it, three sizes (``tiny`` for the tests, ``quick`` for 2 CPU cores in minutes,
``full`` for the paper's protocol as far as it is known) and a function that runs it.
:meth:`Claim.run` returns a :class:`Result`: the ``measured`` numbers, ``held``, a
``summary`` sentence with the numbers, the tidy DataFrame behind the chart and the altair
chart itself.

The thresholds are fixed by the papers' statements and by the package's own documented
targets (theory §2.2, §4, §5, §8); they are never tuned to make a claim pass. A claim whose
function raises is reported as not held, with the error in its summary.

Layering: this module imports only the standard library at import time (the command line
lists and checks claim names without importing torch, pandas or altair); each claim imports
what it needs when it runs.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import altair as alt
    import pandas as pd

    from dnc_interactive.config import DUFMConfig
    from dnc_interactive.training import Recipe

__all__ = [
    "CLAIMS",
    "SIZES",
    "Claim",
    "Outcome",
    "Result",
    "ce_dnc_loss",
    "claim_names",
    "get_claims",
]

#: The sizes every claim has.
SIZES: tuple[str, ...] = ("tiny", "quick", "full")

Size = Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What a claim's function returns: the numbers, the verdict, the text and the chart.

    ``data`` is the tidy DataFrame the chart is drawn from (one row per run or per point).
    """

    measured: dict[str, Any]
    held: bool
    summary: str
    data: pd.DataFrame | None = None
    chart: alt.TopLevelMixin | None = None


@dataclass(frozen=True)
class Result:
    """The checked claim (theory §5.6): its identity, the size run, the numbers and the verdict.

    Attributes:
        name, paper, figure, setting, threshold: copied from the :class:`Claim`.
        size: the name of the size run ("tiny", "quick", "full" or "custom") and
            ``parameters`` its parameters.
        measured: the numbers (JSON-friendly: floats, ints, strings and lists of them).
        held: True when the threshold was met.
        summary: one or two sentences with the numbers.
        seconds: wall time of the run; ``cpu_seconds`` the CPU time of the process that ran it
            (one torch thread: the core-seconds used, a figure that does not depend on the
            load of a shared machine).
        data: the tidy DataFrame behind ``chart``; ``chart`` an altair chart (or None).
        error: the traceback's last line when the claim's function raised (then held is False).
    """

    name: str
    paper: str
    figure: str
    setting: str
    threshold: str
    size: str
    parameters: dict[str, Any]
    measured: dict[str, Any]
    held: bool
    summary: str
    seconds: float
    data: pd.DataFrame | None = None
    chart: alt.TopLevelMixin | None = None
    error: str | None = None
    cpu_seconds: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        """The verdict.json entry (no data frame, no chart)."""
        return {
            "name": self.name,
            "paper": self.paper,
            "figure": self.figure,
            "setting": self.setting,
            "threshold": self.threshold,
            "size": self.size,
            "parameters": _jsonable(self.parameters),
            "measured": _jsonable(self.measured),
            "held": bool(self.held),
            "summary": self.summary,
            "seconds": round(float(self.seconds), 3),
            "cpu_seconds": _jsonable(round(float(self.cpu_seconds), 3)),
            "error": self.error,
        }


@dataclass(frozen=True)
class Claim:
    """One checkable claim of a paper (theory §5.6).

    Attributes:
        name: stable id (``snake_case``), used by ``--claims`` and in verdict.json.
        paper: arXiv id of the paper that states it.
        figure: the figure (or section) it comes from.
        setting: the experiment, in words.
        threshold: the rule that decides ``held``, in words.
        quick, full, tiny: the parameters of each size (plain values, picklable).
        func: ``func(parameters) -> Outcome``; a module-level function, so claims can run in
            worker processes.
        cost: rough relative cost at the quick size (the scheduler starts costly claims first).
    """

    name: str
    paper: str
    figure: str
    setting: str
    threshold: str
    quick: Size
    full: Size
    tiny: Size
    func: Callable[[Size], Outcome] = field(repr=False)
    cost: float = 1.0

    def size(self, size: str | Size = "quick") -> tuple[str, dict[str, Any]]:
        """(name, parameters) of a size: "tiny", "quick", "full", or a mapping of overrides
        of the quick parameters (named "custom")."""
        if isinstance(size, str):
            if size not in SIZES:
                raise ValueError(f"size={size!r} is not valid: expected one of {SIZES}")
            return size, dict(getattr(self, size))
        if not isinstance(size, Mapping):
            raise ValueError(f"size={size!r} is not valid: expected a size name or a mapping")
        unknown = sorted(set(size) - set(self.quick))
        if unknown:
            raise ValueError(
                f"size has unknown parameter(s) {unknown} for claim {self.name!r}: expected"
                f" some of {sorted(self.quick)}"
            )
        return "custom", {**self.quick, **size}

    def run(self, size: str | Size = "quick") -> Result:
        """Run the claim at ``size`` (see :meth:`size`); an exception becomes held=False."""
        label, params = self.size(size)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            out = self.func(params)
            error = None
        except Exception as exc:  # a broken claim is a failed claim, not a crashed report
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            out = Outcome({}, False, f"error: {tb}")
            error = tb
        return Result(
            name=self.name,
            paper=self.paper,
            figure=self.figure,
            setting=self.setting,
            threshold=self.threshold,
            size=label,
            parameters=params,
            measured=out.measured,
            held=bool(out.held) and error is None,
            summary=out.summary,
            seconds=time.perf_counter() - t0,
            data=out.data,
            chart=out.chart,
            error=error,
            cpu_seconds=time.process_time() - c0,
        )


# ====================================================================== helpers
def _jsonable(value: Any) -> Any:
    """Floats (NaN/inf -> None), ints, bools, strings, lists and dicts of them."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return int(value)
    kind = getattr(getattr(value, "dtype", None), "kind", None)  # numpy / torch scalars
    if kind == "b":
        return bool(value)
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    if f.is_integer() and type(value).__name__.startswith(("int", "uint")):
        return int(f)
    return f if math.isfinite(f) else None


def _plain_gd(lr: float) -> Recipe:
    """Plain full-batch gradient descent, the follow-up's optimiser (theory §5.3): momentum 0,
    constant learning rate, no fallback restarts."""
    from dnc_interactive.training import Recipe

    return Recipe(lr=lr, momentum=0.0, momentum_boost=None, restarts=0)


def _follow_up_base(width: int = 30, lam: float = 0.004) -> DUFMConfig:
    """The follow-up's 4-DUFM (theory §5.3): K = 10, n = 5, L = 4, float64."""
    from dnc_interactive.config import DUFMConfig

    return DUFMConfig(
        num_classes=10,
        samples_per_class=5,
        depth=4,
        width=width,
        lambda_H=lam,
        lambda_W=lam,
        dtype="float64",
    )


def _sweep(grid: dict[str, Any], steps: int, base: DUFMConfig, recipe: Recipe, polish: int = 0):
    """A batched sweep (seeds x settings in one batch per shape; theory §5) on 1 thread."""
    import warnings

    from dnc_interactive.sweeps import sweep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # narrow widths warn; that is the point
        return sweep(
            grid, steps, base=base, recipe=recipe, polish=polish, progress=False, threads=1
        )


def _spearman(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either is constant."""
    import pandas as pd

    rx = pd.Series(list(x), dtype=float).rank()  # average ranks for ties
    ry = pd.Series(list(y), dtype=float).rank()
    if rx.nunique() < 2 or ry.nunique() < 2:
        return math.nan
    return float(rx.corr(ry))


def _fmt(x: float, digits: int = 4) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}g}"


def _rule(value: float, axis: str = "y", label: str = "") -> alt.Chart:
    import altair as alt
    import pandas as pd

    frame = pd.DataFrame({"v": [value], "label": [label]})
    enc = {axis: alt.Y("v:Q") if axis == "y" else alt.X("v:Q")}
    return (
        alt.Chart(frame)
        .mark_rule(strokeDash=[4, 3], color="#d62728")
        .encode(**enc, tooltip=["label:N", "v:Q"])
    )


# ====================================================================== 2305.13165
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


# ====================================================================== 2405.14468
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


# ====================================================================== 2410.23169
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


# ====================================================================== the registry
_FU = "K = 10, n = 5, L = 4, d = 30, all lambda = 0.004, plain GD lr 0.5, float64"

CLAIMS: dict[str, Claim] = {
    c.name: c
    for c in (
        Claim(
            name="dufm_gd_reaches_dnc",
            paper="2305.13165",
            figure="GD on the DUFM vs the closed-form optimum (theory §4.1; figure number"
            " unverified)",
            setting="binary DUFM, K = 2, n = 50, d = 64, all lambda = 1e-3, float64, default"
            " robust recipe (theory §8), L = 1..5",
            threshold="every run: |L - L*| / L* < 1e-4 and NC1 < 1e-3 in every layer",
            quick={
                "depths": (1, 2, 3, 4, 5),
                "seeds": (0, 1),
                "samples_per_class": 50,
                "width": 64,
                "lam": 1e-3,
                "tol": 1e-6,
                "max_steps": 20_000,
                "gap_tol": 1e-4,
                "nc1_tol": 1e-3,
            },
            full={
                "depths": (1, 2, 3, 4, 5),
                "seeds": (0, 1, 2, 3, 4),
                "samples_per_class": 50,
                "width": 64,
                "lam": 1e-3,
                "tol": 1e-7,
                "max_steps": 40_000,
                "gap_tol": 1e-4,
                "nc1_tol": 1e-3,
            },
            tiny={
                "depths": (1, 2),
                "seeds": (0,),
                "samples_per_class": 10,
                "width": 16,
                "lam": 1e-3,
                "tol": 1e-6,
                "max_steps": 3000,
                "gap_tol": 1e-4,
                "nc1_tol": 1e-3,
            },
            func=_dufm_gd,
            cost=1.0,
        ),
        Claim(
            name="realnet_features_at_dufm_optimum",
            paper="2305.13165",
            figure="real networks recover the unconstrained features (theory §4.2)",
            setting="scikit-learn digits 0 vs 1, MLP backbone, 4-layer DUFM head, lambda_H ="
            " lambda_W = 1e-3, full-batch Adam + cosine, the realnet 'digits' preset; then the"
            " recovery test (a fresh head trained on the frozen features)",
            threshold="|head loss - L*| / L* < 1e-2, |frozen-feature head loss - L*| / L* <"
            " 2e-3 and NC1 < 1e-3 (pre and post) in every head layer",
            quick={
                "preset": "digits",
                "seeds": (0,),
                "samples_per_class": None,
                "depth": None,
                "epochs": None,
                "recovery_steps": 1500,
                "free_steps": 1000,
                "network_gap_tol": 1e-2,
                "frozen_gap_tol": 2e-3,
                "nc1_tol": 1e-3,
            },
            full={
                "preset": "digits",
                "seeds": (0, 1, 2),
                "samples_per_class": None,
                "depth": None,
                "epochs": None,
                "recovery_steps": 3000,
                "free_steps": 2000,
                "network_gap_tol": 1e-2,
                "frozen_gap_tol": 2e-3,
                "nc1_tol": 1e-3,
            },
            tiny={
                "preset": "digits",
                "seeds": (0,),
                "samples_per_class": 30,
                "depth": 3,
                "epochs": 300,
                "recovery_steps": 500,
                "free_steps": 200,
                "network_gap_tol": 1e-2,
                "frozen_gap_tol": 2e-3,
                "nc1_tol": 1e-3,
            },
            func=_realnet,
            cost=1.0,
        ),
        Claim(
            name="follow_up_fig2_lowrank_beats_dnc",
            paper="2405.14468",
            figure="Fig. 2 (top)",
            setting=f"4-DUFM, {_FU}, 10 runs batched",
            threshold="mean final loss < L_DNC and more than half of the runs low-rank (rank of"
            " the class means M~_l, l >= 3, or M_l, l >= 2, below K)",
            quick={"runs": 10, "steps": 20_000, "polish": 0, "width": 30, "lam": 0.004, "lr": 0.5},
            full={"runs": 10, "steps": 20_000, "polish": 300, "width": 30, "lam": 0.004, "lr": 0.5},
            tiny={"runs": 2, "steps": 300, "polish": 0, "width": 30, "lam": 0.004, "lr": 0.5},
            func=_fig2,
            cost=4.0,
        ),
        Claim(
            name="follow_up_fig3_srg_below_dnc",
            paper="2405.14468",
            figure="Fig. 3 (left)",
            setting="K = C(r, 2) for r = 4, 5 (K = 6, 10), L = 3, 4, 5, n = 5, all lambda ="
            " 0.004; the SRG construction of theory §5.2 (canonical closed form and optimised"
            " symmetric family, lowrank.py)",
            threshold="L_SRG / L_DNC < 1 at every (r, L) (the better of the two constructions)",
            quick={
                "rs": (4, 5),
                "depths": (3, 4, 5),
                "lam": 0.004,
                "samples_per_class": 5,
                "optimize": True,
            },
            full={
                "rs": (4, 5, 6),
                "depths": (3, 4, 5),
                "lam": 0.004,
                "samples_per_class": 5,
                "optimize": True,
            },
            tiny={
                "rs": (4, 5),
                "depths": (4,),
                "lam": 0.004,
                "samples_per_class": 5,
                "optimize": False,
            },
            func=_fig3_srg,
            cost=1.5,
        ),
        Claim(
            name="follow_up_fig3_rank_decreases_with_lambda",
            paper="2405.14468",
            figure="Fig. 3 (middle)",
            setting="4-DUFM, K = 10, n = 5, d = 30, plain GD lr 0.5, lambda = 2^-10 .. 2^-7"
            " (all blocks), seeds x lambdas in one batched sweep",
            threshold="mean solution rank at the largest lambda < at the smallest, and"
            " Spearman(lambda, rank) < 0 over the runs",
            quick={
                "lambdas": (2**-10, 2**-9, 2**-8, 2**-7),
                "seeds": 3,
                "steps": 20_000,
                "width": 30,
                "lr": 0.5,
            },
            full={
                "lambdas": (2**-11, 2**-10, 2**-9, 2**-8, 2**-7),
                "seeds": 5,
                "steps": 30_000,
                "width": 30,
                "lr": 0.5,
            },
            tiny={"lambdas": (2**-9, 2**-7), "seeds": 1, "steps": 200, "width": 12, "lr": 0.5},
            func=_fig3_lambda,
            cost=4.0,
        ),
        Claim(
            name="follow_up_fig3_dnc_probability_increases_with_width",
            paper="2405.14468",
            figure="Fig. 3 (right)",
            setting="4-DUFM, K = 10, n = 5, all lambda = 0.004, plain GD lr 0.5, widths x seeds"
            " in one batched sweep",
            threshold="P(DNC) at the largest width > at the smallest, and Spearman(width, DNC)"
            " > 0 over the runs",
            quick={"widths": (15, 30, 60), "seeds": 5, "steps": 20_000, "lam": 0.004, "lr": 0.5},
            full={
                "widths": (15, 30, 60, 120),
                "seeds": 10,
                "steps": 20_000,
                "lam": 0.004,
                "lr": 0.5,
            },
            tiny={"widths": (10, 14), "seeds": 1, "steps": 200, "lam": 0.004, "lr": 0.5},
            func=_fig3_width,
            cost=5.0,
        ),
        Claim(
            name="ce_linear_lowrank_beats_dnc",
            paper="2410.23169",
            figure="deep linear UFM theorem (DNC not optimal for K >= 4, L >= 3; theory §5.5)",
            setting="deep linear DUFM with cross-entropy, K = 10, n = 5, L = 3, d = 70, all"
            " lambda = 2^-10, plain GD lr 0.5 (their example experiment with one more layer)",
            threshold="mean final loss < L_DNC^CE (the best ETF solution, theory §5.6) and more"
            " than half of the runs below it with centred-logit rank < K - 1",
            quick={**_CE_SETTING, "seeds": 5, "steps": 5000},
            full={**_CE_SETTING, "seeds": 10, "steps": 20_000},
            tiny={**_CE_SETTING, "width": 20, "seeds": 2, "steps": 300},
            func=_ce_linear,
            cost=1.0,
        ),
    )
}


def claim_names() -> tuple[str, ...]:
    """The registered claim names, in report order."""
    return tuple(CLAIMS)


def get_claims(names: Sequence[str] | None = None) -> list[Claim]:
    """The claims named (all when None), in registry order; unknown names are a ValueError
    that lists the known ones."""
    if names is None:
        return list(CLAIMS.values())
    names = list(names)
    unknown = [n for n in names if n not in CLAIMS]
    if unknown:
        raise ValueError(
            f"claims={','.join(unknown)!r} is not valid: expected names among {', '.join(CLAIMS)}"
        )
    if not names:
        raise ValueError("claims='' is not valid: expected at least one claim name")
    return [CLAIMS[n] for n in CLAIMS if n in names]
