"""Command-line front end: ``python -m dnc_interactive`` / ``dnc-interactive``.

The only place in the package that parses arguments or prints. Each subcommand lives in its
own module here and registers itself through ``add_parser(subparsers)``; ``main`` dispatches.
Bad flags exit with status 2 and a one-line message naming the flag.

Parsing and ``--help`` import no torch, pandas or altair (a tested promise): the subcommand
modules import them inside their handlers, and ``realnet``, whose flag defaults come from a
torch-backed config, adds its flags only when it is the command given
(:meth:`common.Parser.defer`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dnc_interactive.cli import common


def build_parser() -> argparse.ArgumentParser:
    from dnc_interactive.cli import app, realnet, sweep, theory, train, verify

    parser = common.Parser(
        prog="dnc-interactive",
        description="Deep neural collapse in the deep unconstrained features model, live.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=common.Parser)
    sub.required = True
    for module in (train, theory, app, sweep, realnet, verify):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.handler(args) or 0)
    except common.UsageError as exc:
        print(f"dnc-interactive {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


__all__ = ["main", "build_parser"]
