"""``dnc-interactive train``: gradient descent on one DUFM, compared with the theorem."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from dnc_interactive import schema
from dnc_interactive.cli import common
from dnc_interactive.cli.common import fmt_number as _fmt
from dnc_interactive.validation import LEARNING_RATE, MOMENTUM, Int, ParameterError, Real

if TYPE_CHECKING:  # imported in the handlers: parsing arguments imports no torch
    from dnc_interactive.training import Trainer

DEFAULT_TOL = 1e-6

#: The per-layer metrics of the report (post-activation; ``pre`` repeats them): every
#: standard layer metric of the registry that has a collapse criterion (theory §3).
LAYER_METRICS: tuple[str, ...] = tuple(
    m.name
    for m in schema.METRICS.values()
    if not (m.extended or m.per_class or m.collapsed_when == "-")
    and set(m.kinds) & {"pre", "post", "weight"}
)
DEFAULT_MAX_STEPS = 20_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a DUFM by gradient descent and compare with the optimum",
        description="Train a DUFM by full-batch gradient descent (default recipe 'robust': "
        "heavy-ball from a small start, lr 1.0, momentum 0.8 -> 0.99, restarted from a larger, "
        "slower start if it stalls; theory §8) and compare the final loss with the closed-form "
        "optimum L* (theory §2.2, §6). Without --steps it runs until converged (relative gap "
        f"and every layer's NC1 below --tol, default {DEFAULT_TOL:g}), until the loss "
        "plateaus, or until --max-steps.",
    )
    common.add_model_flags(p)
    g = p.add_argument_group("training")
    g.add_argument(
        "--recipe",
        default="robust",
        choices=("robust", "fast", "paper"),
        help="robust (default: fast start, careful restarts when stalled), fast (first start "
        "only), paper (plain GD: momentum 0, lr 0.1)",
    )
    g.add_argument("--lr", type=float, default=None, help="learning rate (default 1.0 for gd)")
    g.add_argument(
        "--optimizer",
        default=schema.OPTIMIZERS[0],
        help=f"{' or '.join(schema.OPTIMIZERS)} (gd: heavy-ball gradient descent)",
    )
    g.add_argument("--momentum", type=float, default=None, help="momentum (default 0.8)")
    g.add_argument("--steps", type=int, default=None, help="run exactly this many steps")
    g.add_argument(
        "--tol",
        type=float,
        default=None,
        help=f"stop when gap and NC1 < TOL (default {DEFAULT_TOL:g} without --steps)",
    )
    g.add_argument("--max-steps", type=int, default=DEFAULT_MAX_STEPS)
    g.add_argument(
        "--polish",
        type=int,
        default=0,
        metavar="ITERS",
        help="add an L-BFGS polish of ITERS iterations at the end",
    )
    g.add_argument("--record-every", type=int, default=10)
    g.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--out", type=Path, default=None, help="write the history (.csv or .parquet)")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


#: The training flags' constraints (the model flags' are DUFMConfig's; the recipe checks the
#: rest). Caps keep a typo from running for days: 10^9 steps is hours even for the default model.
RUN_RULES = {
    "steps": Int(ge=0, cap=10**9, optional=True),
    "tol": Real(gt=0, optional=True),
    "max_steps": Int(ge=1, cap=10**9),
    "polish": Int(ge=0, cap=100_000),
    "record_every": Int(ge=1, cap=10**9),
    "lr": LEARNING_RATE.but(optional=True),
    "momentum": MOMENTUM.but(optional=True),
}


def _check(args: argparse.Namespace) -> None:
    """Every training and output flag, before the model is built (--out: a writable file)."""
    common.check_run_flags(args, RUN_RULES, threads="threads", out=(".csv", ".parquet"))


def _make_trainer(args: argparse.Namespace, config) -> Trainer:
    from dnc_interactive.training import Recipe, Trainer

    overrides = {"optimizer": args.optimizer}
    if args.lr is not None:
        overrides["lr"] = args.lr
    if args.momentum is not None:
        overrides["momentum"] = args.momentum
    try:
        return Trainer(
            config,
            Recipe.named(getattr(args, "recipe", "robust")),
            record_every=args.record_every,
            metrics_every=0,
            **overrides,
        )
    except ParameterError as exc:
        raise common.UsageError(common.flag_message(exc)) from None
    except ValueError as exc:
        msg = str(exc)
        for name in ("optimizer", "lr", "momentum", "record_every"):
            if msg.startswith(name):
                msg = f"argument --{name.replace('_', '-')}: {msg}"
        raise common.UsageError(msg) from None


def run(args: argparse.Namespace) -> int:
    _check(args)  # every flag before torch is even imported: a bad one costs nothing
    config = common.config_from_args(args)
    from dnc_interactive import metrics, theory

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    trainer = _make_trainer(args, config)
    note = theory.threshold_message(config)
    if note:
        common.warn(f"note: {note}")

    bar = None
    if (
        not args.quiet
        and not args.json
        and sys.stderr.isatty()
        or (not args.quiet and not args.json)
    ):
        from tqdm.auto import tqdm

        total = args.steps if args.steps is not None else args.max_steps
        bar = tqdm(total=total, unit="step", file=sys.stderr, leave=False, mininterval=0.2)

        def progress(tr: Trainer, rows) -> None:
            bar.n = tr.steps
            bar.set_postfix(loss=f"{tr.loss:.6g}", gap=f"{tr.gap:.2e}", refresh=False)
            bar.refresh() if tr.steps % (tr.record_every * 20) == 0 else None

        trainer.callbacks.append(progress)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # divergence is reported below
            if args.steps is not None:
                trainer.run(args.steps)
            else:
                trainer.run(
                    tol=args.tol or DEFAULT_TOL,
                    max_steps=args.max_steps,
                    plateau=200,
                    plateau_rtol=1e-10,
                )
            if args.polish and not trainer.diverged:
                trainer.polish(args.polish)
    finally:
        if bar is not None:
            bar.close()

    report = metrics.collapse_report(trainer.model, kind="both")
    summary = trainer.summary()
    layers = []
    for layer in sorted(report["layer"].unique()):
        rows = report[report["layer"] == layer].set_index("kind")
        entry: dict[str, object] = {"layer": int(layer)}
        for kind in ("post", "pre"):
            r = rows.loc[kind]
            vals = {m: int(r[m]) if m == "rank" else r[m] for m in LAYER_METRICS}
            if kind == "post":
                entry.update(vals)
            else:
                entry["pre"] = vals
        layers.append(entry)
    if args.out is not None:
        common.write_history(trainer.history, args.out)

    result = {
        "loss": summary["loss"],
        "fit": summary["fit"],
        "reg": summary["reg"],
        "optimal_loss": summary["optimal_loss"],
        "relative_gap": summary["relative_gap"],
        "steps": summary["steps"],
        "seconds": summary["seconds"],
        "status": summary["status"],
        "message": summary["message"],
        "near_threshold": summary["near_threshold"],
        "diagnosis": summary["diagnosis"],
        "start": summary["start"],
        "dnc_optimality": theory.dnc_optimality(config),
        "q": list(metrics.output_scale_frame(trainer.model)["q"]),
        "q_theory": list(theory.optimal_q(config)) if config.loss == "mse" else None,
        "config": config.to_dict(),
        "layers": layers,
    }
    return common.report(result, args.json, _print_table, trainer.diverged, trainer.message)


def _print_table(r: dict) -> None:
    print(f"status        {r['status']}  {r['message']}".rstrip())
    print(f"steps         {r['steps']}   ({r['seconds']:.2f} s)")
    print(f"loss          {_fmt(r['loss'])}   (fit {_fmt(r['fit'])}, reg {_fmt(r['reg'])})")
    print(f"optimal loss  {_fmt(r['optimal_loss'])}   L* of theory §2.2/§6 ({r['dnc_optimality']})")
    print(f"relative gap  {_fmt(r['relative_gap'])}")
    d = r["diagnosis"]
    print(f"diagnosis     {d['code']}: {d['message']} {d['remedy']}".rstrip())
    print()
    head = ["layer", "nc1", "nc1_trace", "nc2_orth", "nc2_etf", "nc3", "rank", "nc1(pre)"]
    print("  ".join(f"{h:>10}" for h in head))
    for e in r["layers"]:
        cells = [
            str(e["layer"]),
            *(_fmt(e[k]) for k in head[1:6]),
            str(e["rank"]),
            _fmt(e["pre"]["nc1"]),
        ]
        print("  ".join(f"{c:>10}" for c in cells))
