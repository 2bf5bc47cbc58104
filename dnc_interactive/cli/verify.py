"""``dnc-interactive verify``: check the papers' claims, claim by claim (theory §5.6).

Example::

    dnc-interactive verify --quick --out verify-report
    dnc-interactive verify --claims follow_up_fig3_srg_below_dnc,dufm_gd_reaches_dnc

Writes DIR/verdict.json and DIR/report.html (and DIR/report.png with vl-convert), prints a
table, and exits 0 when every claim held, 1 when one did not, 2 on a bad flag.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dnc_interactive.cli import common

SIZES = ("tiny", "quick", "full")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="check the papers' claims one by one and write verdict.json + report.html",
        description="Run the claim registry (theory §5.6): the 2023 paper's DUFM and "
        "real-network claims (arXiv 2305.13165), the follow-up's Figures 2 and 3 (arXiv "
        "2405.14468) and Garrod & Keating's cross-entropy result (arXiv 2410.23169). Each claim "
        "is measured at its quick size (minutes on 2 CPU cores) or full size and compared with "
        "its threshold. Writes DIR/verdict.json and DIR/report.html (charts inline, no network) "
        "and DIR/report.png when vl-convert is installed. Exit status 0: all held; 1: some "
        "claim did not hold; 2: bad arguments.",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--quick",
        dest="size",
        action="store_const",
        const="quick",
        help="quick sizes (the default): every claim in minutes on 2 cores",
    )
    g.add_argument(
        "--full",
        dest="size",
        action="store_const",
        const="full",
        help="full sizes: the papers' protocols as far as they are known (longer)",
    )
    g.add_argument(
        "--size",
        dest="size",
        choices=SIZES,
        help="tiny (seconds, for tests), quick or full",
    )
    p.add_argument(
        "--claims",
        default=None,
        help="comma-separated claim names (default: all; --list shows them)",
    )
    p.add_argument("--list", action="store_true", help="list the claims and exit")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("verify-report"),
        help="report folder (default verify-report)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes, one claim each (default: min(2, cores))",
    )
    p.add_argument("--no-png", action="store_true", help="do not write report.png")
    p.add_argument("--json", action="store_true", help="print verdict.json instead of the table")
    p.set_defaults(handler=run, size=None)


def _check_args(args: argparse.Namespace) -> list[str] | None:
    """The claim names, workers and --out checked before any work (UsageError naming the
    flag)."""
    from dnc_interactive.verify.claims import CLAIMS

    names = None
    if args.claims is not None:
        names = [n.strip() for n in args.claims.split(",") if n.strip()]
        unknown = [n for n in names if n not in CLAIMS]
        if unknown or not names:
            raise common.UsageError(
                f"argument --claims: {args.claims!r} is not valid: expected comma-separated"
                f" names among {', '.join(CLAIMS)}"
            )
    common.check_run_flags(args, {}, threads="workers")  # capped at the cores available
    out = args.out
    if out.exists() and not out.is_dir():
        raise common.UsageError(f"argument --out: {str(out)!r} is a file: expected a folder")
    probe = out if out.exists() else next((q for q in out.parents if q.exists()), Path("."))
    import os

    if not os.access(probe, os.W_OK):
        raise common.UsageError(f"argument --out: {str(out)!r} is not writable")
    return names


def run(args: argparse.Namespace) -> int:
    from dnc_interactive.verify.claims import CLAIMS

    if args.list:
        for c in CLAIMS.values():
            print(f"{c.name}  (arXiv {c.paper}, {c.figure})\n    {c.threshold}")
        return 0
    names = _check_args(args)
    size = args.size or "quick"
    from dnc_interactive.verify import verify
    from dnc_interactive.verify.report import table

    def progress(res) -> None:
        if not args.json:
            mark = "held" if res.held else "NOT HELD"
            print(f"  {res.name}: {mark} ({res.seconds:.1f} s)", file=sys.stderr, flush=True)

    if not args.json:
        chosen = names or list(CLAIMS)
        print(f"verify: {len(chosen)} claim(s) at the {size} size ...", file=sys.stderr)
    doc = verify(
        claims=names,
        out=args.out,
        workers=args.workers,
        size=size,
        png=not args.no_png,
        on_result=progress,
    )
    doc.pop("results", None)
    files = doc.pop("files", {})
    if args.json:
        common.print_json(doc)
    else:
        print(table(doc))
        for kind, path in files.items():
            print(f"{kind:>8}: {path}")
    return 0 if doc["all_held"] else 1
