"""``dnc-interactive theory``: the closed-form optimum for a configuration (theory §2.2, §6)."""

from __future__ import annotations

import argparse

from dnc_interactive.cli import common


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "theory",
        help="print the closed-form optimum (L*, q, c, c*_L, critical lambda)",
        description="The theorem's optimum for a configuration: L*, the per-class output "
        "scales q_k, the constant c, the threshold c*_L, the critical lambda (all lambdas "
        "equal) and whether the zero solution wins (theory §2.2, §6).",
    )
    common.add_model_flags(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def result_for(config) -> dict:
    from dnc_interactive import theory  # here, not at the top: parsing imports no torch

    opt = theory.optimum(config)
    cs = list(opt.c)
    qs = list(opt.q)
    return {
        "optimal_loss": opt.loss,
        "q": qs,
        "c": max(cs),
        "c_per_class": cs,
        "c_star": opt.c_star,
        "critical_lambda": theory.critical_scale(config) * config.lambda_H
        if config.equal_lambdas
        else None,
        "critical_scale": theory.critical_scale(config),
        "zero_wins": all(q == 0 for q in qs),
        "zero_wins_per_class": [q == 0 for q in qs],
        "near_threshold": theory.near_threshold(config),
        "minority_collapse_threshold": theory.minority_collapse_threshold(config),
        "dnc_optimality": theory.dnc_optimality(config),
        "config": config.to_dict(),
    }


def run(args: argparse.Namespace) -> int:
    config = common.config_from_args(args)
    if config.loss != "mse":
        raise common.UsageError(
            f"argument --loss: {config.loss!r} is not valid here: the closed form covers the"
            " paper's loss 'mse' only"
        )
    r = result_for(config)
    if args.json:
        common.print_json(r)
        return 0
    print(f"optimal loss L*     {r['optimal_loss']:.10f}")
    print(f"output scales q_k   {', '.join(f'{q:.8f}' for q in r['q'])}")
    print(f"c                   {', '.join(f'{c:.6f}' for c in r['c_per_class'])}")
    print(f"c*_L                {r['c_star']:.6f}")
    crit = r["critical_lambda"]
    if crit is not None:
        print(f"critical lambda     {crit:.6g}   (all lambdas equal)")
    print(f"critical scale      {r['critical_scale']:.6g}   (multiply every lambda by this)")
    print(
        f"zero solution wins  {'yes' if r['zero_wins'] else 'no'}"
        + (
            ""
            if r["zero_wins"] or not any(r["zero_wins_per_class"])
            else "  (some classes collapse to 0: minority collapse)"
        )
    )
    if r["near_threshold"]:
        print(
            "note                within 10% of the threshold: gradient descent may land in"
            " either of two local minima"
        )
    print(f"DNC optimality      {r['dnc_optimality']}")
    return 0
