"""Shared pieces of the command line: the parser class, model flags and output helpers."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from dnc_interactive.config import DUFMConfig
from dnc_interactive.validation import (
    ParameterError,
    Rule,
    check_device_available,
    check_fields,
    check_output_path,
    check_threads,
)


class UsageError(Exception):
    """A bad flag value found after parsing; reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``prog: error: argument --flag: ...``), exit status 2.

    :meth:`defer` adds flags only when this parser is used (its help, or parsing its
    arguments): a subcommand whose flag defaults need torch registers itself without
    importing it, so ``dnc-interactive --help`` and the other subcommands stay fast.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def defer(self, add_flags: Callable[[argparse.ArgumentParser], None]) -> None:
        self.__dict__.setdefault("_deferred", []).append(add_flags)

    def _add_deferred(self) -> None:
        for add_flags in self.__dict__.pop("_deferred", ()):
            add_flags(self)

    def parse_known_args(self, args=None, namespace=None):
        self._add_deferred()
        return super().parse_known_args(args, namespace)

    def _parse_known_args2(self, *args, **kwargs):  # Python >= 3.12.7 calls this directly
        self._add_deferred()
        return super()._parse_known_args2(*args, **kwargs)

    def format_usage(self) -> str:
        self._add_deferred()
        return super().format_usage()

    def format_help(self) -> str:
        self._add_deferred()
        return super().format_help()


# DUFMConfig field -> command-line flag, so config errors can name the flag.
FLAG_OF_FIELD = {
    "num_classes": "--classes",
    "samples_per_class": "--samples-per-class",
    "depth": "--depth",
    "width": "--width",
    "lambda_H": "--lambda-h",
    "lambda_W": "--lambda-w",
    "activation": "--activation",
    "loss": "--loss",
    "init_scale": "--init-scale",
    "seed": "--seed",
    "dtype": "--dtype",
    "device": "--device",
}


def int_list(text: str) -> int | list[int]:
    """'50' -> 50, '90,10' -> [90, 10]."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an int or a comma-separated list of ints, got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def float_list(text: str) -> float | list[float]:
    """'1e-3' -> 0.001, '5e-3,1e-3' -> [0.005, 0.001]."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a float or a comma-separated list of floats, got {text!r}"
        ) from None
    return values[0] if len(values) == 1 else values


def add_model_flags(p: argparse.ArgumentParser) -> None:
    """The DUFMConfig flags shared by ``train``, ``theory`` and ``sweep``."""
    # the field defaults, without building a config (its device check would import torch)
    d = argparse.Namespace(**{f.name: f.default for f in dataclasses.fields(DUFMConfig)})
    g = p.add_argument_group("model (theory §1.2)")
    g.add_argument("--classes", type=int, default=d.num_classes, help="K, number of classes (>= 2)")
    g.add_argument(
        "--samples-per-class",
        type=int_list,
        default=d.samples_per_class,
        help="n, or one count per class like 90,10 (class imbalance)",
    )
    g.add_argument("--depth", type=int, default=d.depth, help="L, number of weight matrices (>= 1)")
    g.add_argument(
        "--width", type=int_list, default=d.width, help="d, or one width per layer d_1..d_L"
    )
    g.add_argument("--lambda-h", type=float, default=d.lambda_H, help="lambda_H on the features H1")
    g.add_argument(
        "--lambda-w", type=float_list, default=d.lambda_W, help="lambda_W, or one per weight matrix"
    )
    g.add_argument("--activation", default=d.activation, help="relu (the paper) or linear")
    g.add_argument("--loss", default=d.loss, help="mse (the paper) or ce")
    g.add_argument("--init-scale", type=float, default=d.init_scale, help="std of H1 at init")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--dtype", default=d.dtype, help="float32 or float64")
    g.add_argument("--device", default=d.device, help="cpu or cuda")


def config_from_args(args: argparse.Namespace) -> DUFMConfig:
    """Build the config; a ValueError becomes a UsageError naming the flag (from the error's
    field), and a device that does not exist here is refused before anything is built."""
    values = {
        "num_classes": args.classes,
        "samples_per_class": args.samples_per_class,
        "depth": args.depth,
        "width": args.width,
        "lambda_H": args.lambda_h,
        "lambda_W": args.lambda_w,
        "activation": args.activation,
        "loss": args.loss,
        "init_scale": args.init_scale,
        "seed": args.seed,
        "dtype": args.dtype,
        "device": args.device,
    }
    try:
        config = DUFMConfig(**values)
        check_device_available(config.device)
    except ParameterError as exc:
        raise UsageError(flag_message(exc)) from None
    except ValueError as exc:
        raise UsageError(name_flag(str(exc))) from None
    return config


def flag_message(exc: ParameterError, flags: dict[str, str] | None = None) -> str:
    """``argument --flag: <message>`` for a ParameterError, the flag found from its field
    (``flags``, else :data:`FLAG_OF_FIELD`, else ``--`` + the field with dashes)."""
    flag = (flags or FLAG_OF_FIELD).get(exc.field) or FLAG_OF_FIELD.get(exc.field)
    flag = flag or "--" + exc.field.replace("_", "-").lower()
    return f"argument {flag}: {exc}"


def check_run_flags(
    args: argparse.Namespace,
    rules: dict[str, Rule],
    *,
    threads: str | None = None,
    out: tuple[str, ...] | None = None,
) -> None:
    """Check run flags before any work: the ``rules`` table (flag attribute -> rule), the
    ``threads`` attribute (capped at the cores available) and the ``--out`` file (a writable
    file with one of the ``out`` suffixes). A bad value is a UsageError naming the flag."""
    given = {k: r.but(optional=False) for k, r in rules.items() if getattr(args, k) is not None}
    try:
        check_fields("flags", given, vars(args))
        if threads is not None:
            try:
                check_threads(getattr(args, threads), field=threads)
            except ParameterError as exc:
                flag = "--" + threads.replace("_", "-")
                raise UsageError(
                    f"argument {flag}: {exc.value!r} is not valid: expected {exc.allowed}"
                ) from None
        if out is not None and args.out is not None:
            check_output_path(args.out, out)
    except ParameterError as exc:
        raise UsageError(flag_message(exc)) from None


def check_device(device: str, flag: str = "--device") -> None:
    """A device that exists on this machine ('auto' always does), else a UsageError."""
    try:
        check_device_available(device)
    except ParameterError as exc:
        raise UsageError(f"argument {flag}: {exc}") from None


def name_flag(message: str) -> str:
    """Prefix a config error message with the flag of the field it names."""
    for field, flag in FLAG_OF_FIELD.items():
        if message.startswith(field):
            return f"argument {flag}: {message}"
    return message


def clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None, tuples lists, numpy/torch scalars floats."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f if math.isfinite(f) else None


def print_json(obj: dict[str, Any]) -> None:
    print(json.dumps(clean(obj), indent=2))


def fmt_number(x: float | None) -> str:
    """A number for the result tables: 6 decimals, scientific when tiny or huge, n/a if missing."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.3e}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.6f}"


def write_history(history: Any, path: Path) -> None:
    """Write a tidy history DataFrame as CSV or Parquet, by the file's extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        history.to_csv(path, index=False)
    else:
        history.to_parquet(path, index=False)


def report(result: dict[str, Any], as_json: bool, table: Any, diverged: bool, message: str) -> int:
    """Print the result (JSON, or ``table(result)``); exit status 1 for a diverged run."""
    if as_json:
        print_json(result)
    else:
        table(result)
    if diverged:
        warn(message)
        return 1
    return 0


def warn(message: str) -> None:
    print(message, file=sys.stderr)
