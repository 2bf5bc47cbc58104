"""``dnc-interactive realnet``: a real network with a DUFM head, set against the DUFM (theory §4.2).

Example::

    dnc-interactive realnet --dataset digits --classes 0,1 --depth 4 --json
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dnc_interactive.cli import common
from dnc_interactive.cli.common import fmt_number as _fmt

if TYPE_CHECKING:  # torch: imported when realnet is used, not when the CLI parses others
    from dnc_interactive.realnets.config import RealNetConfig
    from dnc_interactive.realnets.experiment import RealNetExperiment


def _flag_of_field() -> dict[str, str]:
    """RealNetConfig field -> command-line flag, so validation errors can name the flag."""
    from dnc_interactive.realnets.config import RealNetConfig

    return {
        f.name: "--" + f.name.replace("_", "-").lower() for f in dataclasses.fields(RealNetConfig)
    }


_UNSET = object()  # "flag not given" for flags whose explicit value may be None


def _classes(text: str) -> tuple[int, ...] | None:
    if text.strip().lower() == "all":
        return None
    try:
        return tuple(int(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of class labels like 0,1 or 'all', got {text!r}"
        ) from None


def _optional_int(text: str) -> int | None:
    if text.strip().lower() in ("none", "full", "all"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'full', got {text!r}") from None


def _samples(text: str) -> int | list[int] | None:
    if text.strip().lower() in ("none", "balanced"):
        return None
    return common.int_list(text)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "realnet",
        help="train a real network with a DUFM head and compare it with the DUFM's optimum",
        description="Train a backbone (MLP, small CNN or ResNet-20) with an L-layer bias-free "
        "ReLU head on real data, with DUFM regularisation: lambda_H on the backbone's output "
        "features H1, lambda_W on the head's weights, weight decay on the backbone. Reports "
        "the head's loss against the DUFM's optimal loss L* for the same K, n_k and lambdas "
        "(theory §2.2, §4.2) and the per-layer collapse metrics (theory §3). The datasets digits "
        "and mnist1d work offline. Flags override the --preset (default: digits).",
    )
    p.set_defaults(handler=run)
    p.defer(_add_flags)  # the defaults come from RealNetConfig (torch): only when used


def _add_flags(p: argparse.ArgumentParser) -> None:
    from dnc_interactive.realnets import data as data_mod
    from dnc_interactive.realnets.config import (  # torch-free: --help needs no torch
        BACKBONES,
        OPTIMIZERS,
        PRESETS,
        SCHEDULES,
        RealNetConfig,
    )

    d = RealNetConfig()
    p.add_argument(
        "--preset",
        default="digits",
        help=f"starting configuration: {', '.join(PRESETS)} (default digits)",
    )
    g = p.add_argument_group("data")
    g.add_argument("--dataset", help=f"one of {', '.join(data_mod.DATASETS)} (default digits)")
    g.add_argument(
        "--classes",
        type=_classes,
        default=_UNSET,
        help="dataset labels to use, e.g. 0,1 (binary) or 'all' (default 0,1)",
    )
    g.add_argument(
        "--samples-per-class",
        type=_samples,
        default=_UNSET,
        help="n, or one count per class like 150,30 (default: largest balanced subset)",
    )
    g.add_argument("--root", help="directory of raw dataset files (default $DNC_DATA or ~/.cache)")
    g.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="fetch missing raw files (the [vision] extra; network needed)",
    )
    g.add_argument("--mnist1d-samples", type=int, help=f"default {d.mnist1d_samples}")
    g.add_argument(
        "--no-standardize",
        dest="standardize",
        action="store_false",
        default=None,
        help="do not standardise inputs per channel",
    )
    m = p.add_argument_group("network (theory §1.2)")
    m.add_argument("--backbone", help=f"one of {', '.join(BACKBONES)} (default {d.backbone})")
    m.add_argument("--backbone-width", type=int, help=f"default {d.backbone_width}")
    m.add_argument(
        "--backbone-depth", type=int, help=f"MLP hidden layers (default {d.backbone_depth})"
    )
    m.add_argument(
        "--feature-dim", type=int, help=f"d_1, dimension of H1 (default {d.feature_dim})"
    )
    m.add_argument("--depth", type=int, help=f"L, head weight matrices (default {d.depth})")
    m.add_argument("--width", type=int, help=f"head hidden width >= K (default {d.width})")
    m.add_argument("--lambda-h", type=float, help=f"lambda_H on H1 (default {d.lambda_H:g})")
    m.add_argument(
        "--lambda-w",
        type=common.float_list,
        help=f"lambda_W, or one per W_l (default {d.lambda_W:g})",
    )
    m.add_argument(
        "--weight-decay", type=float, help=f"on the backbone (default {d.weight_decay:g})"
    )
    t = p.add_argument_group("training")
    t.add_argument(
        "--optimizer",
        help=f"one of {', '.join(OPTIMIZERS)} (default {d.optimizer}; sgd: an alias of gd)",
    )
    t.add_argument("--lr", type=float, help=f"default {d.lr:g}")
    t.add_argument("--momentum", type=float, help="SGD momentum / Adam beta1 (default 0.9)")
    t.add_argument("--beta2", type=float, help=f"Adam beta2 (default {d.beta2:g})")
    t.add_argument("--schedule", help=f"one of {', '.join(SCHEDULES)} (default {d.schedule})")
    t.add_argument("--warmup", type=int, help="linear warm-up steps (default 0)")
    t.add_argument("--epochs", type=int, help=f"default {d.epochs}")
    t.add_argument(
        "--batch-size",
        type=_optional_int,
        default=_UNSET,
        help="mini-batch size or 'full' (default full batch)",
    )
    t.add_argument("--record-every", type=int, help="steps between measurements")
    t.add_argument("--seed", type=int, help="default 0")
    t.add_argument("--device", help="auto, cpu or cuda (default auto)")
    t.add_argument("--dtype", help="float32 or float64 (default float32)")
    t.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: the small models run fastest single-threaded, and "
        "a second thread on a busy 2-core machine slowed the digits run up to 10x; raise it for "
        "ResNet-20 on a CPU)",
    )
    o = p.add_argument_group("output")
    o.add_argument(
        "--recovery",
        action="store_true",
        help="also run the recovery test (fresh head on the frozen features, then free H1)",
    )
    o.add_argument("--json", action="store_true", help="print one JSON object")
    o.add_argument("--out", type=Path, default=None, help="write the history (.csv or .parquet)")
    o.add_argument("--quiet", action="store_true", help="no progress bar")


def _name_flag(message: str) -> str:
    flag_of_field = _flag_of_field()
    for field in sorted(flag_of_field, key=len, reverse=True):
        if message.startswith(field):
            return f"argument {flag_of_field[field]}: {message}"
    return message


# argparse attribute -> RealNetConfig field, for the flags that override the preset
_ARG_FIELDS = {
    "dataset": "dataset",
    "classes": "classes",
    "samples_per_class": "samples_per_class",
    "root": "root",
    "download": "download",
    "mnist1d_samples": "mnist1d_samples",
    "standardize": "standardize",
    "backbone": "backbone",
    "backbone_width": "backbone_width",
    "backbone_depth": "backbone_depth",
    "feature_dim": "feature_dim",
    "depth": "depth",
    "width": "width",
    "lambda_h": "lambda_H",
    "lambda_w": "lambda_W",
    "weight_decay": "weight_decay",
    "optimizer": "optimizer",
    "lr": "lr",
    "momentum": "momentum",
    "beta2": "beta2",
    "schedule": "schedule",
    "warmup": "warmup",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "record_every": "record_every",
    "seed": "seed",
    "device": "device",
    "dtype": "dtype",
}


def config_from_args(args: argparse.Namespace) -> RealNetConfig:
    """The preset with the given flags applied; a ValueError becomes a UsageError naming the
    flag."""
    from dnc_interactive.realnets.config import preset

    changes = {}
    for attr, field in _ARG_FIELDS.items():
        value = getattr(args, attr)
        if value is not None and value is not _UNSET:
            changes[field] = value
        elif value is None and attr in ("classes", "samples_per_class", "batch_size"):
            changes[field] = None  # 'all' / 'balanced' / 'full' given explicitly
    try:
        return preset(args.preset, **changes)
    except ValueError as exc:
        msg = str(exc)
        if msg.startswith("preset="):
            raise common.UsageError(f"argument --preset: {msg}") from None
        raise common.UsageError(_name_flag(msg)) from None


def run(args: argparse.Namespace) -> int:
    # --threads capped at the cores, --out writable, --device existing: before any work
    common.check_run_flags(args, {}, threads="threads", out=(".csv", ".parquet"))
    config = config_from_args(args)
    common.check_device(config.device)
    import torch

    from dnc_interactive.realnets import data as data_mod
    from dnc_interactive.realnets.experiment import RealNetExperiment

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        exp = RealNetExperiment(config)
    except (data_mod.DatasetUnavailableError, data_mod.DatasetFileError) as exc:
        raise common.UsageError(str(exc)) from None  # names the file / dataset and the fix
    except ImportError as exc:  # digits / mnist1d without their package: the message says how
        raise common.UsageError(str(exc)) from None
    except ValueError as exc:
        raise common.UsageError(_name_flag(str(exc))) from None

    bar = None
    if not args.quiet and not args.json:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=exp.total_steps, unit="step", file=sys.stderr, leave=False, mininterval=0.2
        )

        def progress(e: RealNetExperiment, rows) -> None:
            bar.set_postfix(loss=f"{e.loss:.5g}", gap=f"{e.gap:.2e}", refresh=False)
            bar.update(e.steps - bar.n)  # redraws at most every mininterval

        exp.callbacks.append(progress)
    try:
        exp.run()
    finally:
        if bar is not None:
            bar.close()

    summary = exp.summary()
    result = {
        "train_accuracy": summary["train_accuracy"],
        "test_accuracy": summary["test_accuracy"],
        "head_loss": summary["head_loss"],
        "fit": summary["fit"],
        "reg": summary["reg"],
        "backbone_reg": summary["backbone_reg"],
        "optimal_loss": summary["optimal_loss"],
        "relative_gap": summary["relative_gap"],
        "dnc_optimality": summary["dnc_optimality"],
        "seconds": summary["seconds"],
        "epochs": summary["epochs"],
        "steps": summary["steps"],
        "status": summary["status"],
        "message": summary["message"],
        "device": summary["device"],
        "num_classes": summary["num_classes"],
        "class_sizes": summary["class_sizes"],
        "layers": exp.layer_summary(),
        "config": config.to_dict(),
    }
    if args.recovery and not exp.diverged:
        result["recovery"] = exp.recovery().summary()
    if args.out is not None:
        common.write_history(exp.history, args.out)
    return common.report(result, args.json, _print_table, exp.diverged, exp.message)


def _print_table(r: dict) -> None:
    print(f"status          {r['status']}  {r['message']}".rstrip())
    print(f"device          {r['device']}, {r['steps']} steps ({r['seconds']:.2f} s)")
    print(f"classes         K = {r['num_classes']}, n_k = {r['class_sizes']}")
    print(
        f"train accuracy  {r['train_accuracy']:.4f}"
        + (
            f"   (test {r['test_accuracy']:.4f})"
            if r["test_accuracy"] is not None and math.isfinite(r["test_accuracy"])
            else ""
        )
    )
    print(f"head loss       {_fmt(r['head_loss'])}   (fit {_fmt(r['fit'])}, reg {_fmt(r['reg'])})")
    print(f"optimal loss    {_fmt(r['optimal_loss'])}   L* of the DUFM ({r['dnc_optimality']})")
    print(f"relative gap    {_fmt(r['relative_gap'])}")
    print()
    head = ["layer", "nc1", "nc1_trace", "nc2_orth", "nc3", "rank", "nc1(pre)", "solution"]
    print("  ".join(f"{h:>10}" for h in head))
    for e in r["layers"]:
        cells = [
            str(e["layer"]),
            *(_fmt(e[k]) for k in ("nc1", "nc1_trace", "nc2_orth", "nc3")),
            str(e["rank"]),
            _fmt(e["pre_nc1"]),
            e["solution"],
        ]
        print("  ".join(f"{c:>10}" for c in cells))
    rec = r.get("recovery")
    if rec:
        print()
        print(
            f"recovery        frozen H1: gap {_fmt(rec['frozen_gap'])}, max NC1 "
            f"{_fmt(rec['frozen_max_nc1'])}, Gram diff {_fmt(rec['gram_max_abs_diff'])}"
        )
        print(
            f"                free H1:   gap {_fmt(rec['free_gap'])}, H1 moved "
            f"{_fmt(rec['h1_shift'])} (relative)"
        )
