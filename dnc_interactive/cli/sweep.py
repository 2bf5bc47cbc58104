"""``dnc-interactive sweep``: train a grid of DUFMs (batched), resumable, locally or on Dask.

The grid is a TOML file::

    # grid.toml -- run settings at the top (command-line flags override them)
    steps = 2000
    polish = 0          # L-BFGS iterations after gradient descent (0: none)

    [grid]              # lists are swept (Cartesian product), scalars are fixed
    num_classes = 10
    samples_per_class = 5
    width = 30
    dtype = "float64"
    depth = [3, 4]
    lambda = [0.001, 0.004]   # lambda_H = lambda_W; or give lambda_H / lambda_W
    seed = [0, 1, 2]
    lr = 0.5
    momentum = 0.0            # any Recipe field: lr, momentum, momentum_boost, ...

Per-layer values are lists inside the list: ``width = [[30, 20, 10]]``. Results go to
``--out`` (.csv, or .parquet: a directory of part files), one row per configuration, appended
after every chunk; running the same command again skips the configurations already there, so
an interrupted sweep resumes.

Faults: Ctrl-C (or SIGTERM) cancels the queued chunks, keeps every finished one and exits with
status 130; --workers processes end with the command, even when it is killed. A results file
whose last line (or part) was cut off by a crash is repaired with a message; other damage, or a
second sweep writing the same --out (refused by its lock file), exits with status 2 and the fix.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dnc_interactive.cli import common

RUN_KEYS = ("steps", "polish", "record_every", "batch_size")
#: Upper bounds of the run settings (a typo must not start a sweep that never ends).
RUN_CAPS = {"steps": 10**9, "polish": 100_000, "record_every": 10**9, "batch_size": 10**6}
SUMMARY_DROP = ("seed", "key", "config_json")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="train a grid of DUFMs (batched), resumable, locally or on a Dask cluster",
        description="Train every configuration of a TOML grid by gradient descent, batching "
        "configurations of the same shape into one tensor program, and write one row per "
        "configuration (final loss, L_DNC, relative gap, metrics, DNC / low-rank label; theory "
        "§5). Rerunning with the same --out resumes an interrupted sweep.",
        epilog=__doc__.split("The grid is a TOML file::", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--grid", type=Path, required=True, help="the grid (a .toml file)")
    p.add_argument("--out", type=Path, default=None, help="results file (.parquet or .csv)")
    g = p.add_argument_group("run (override the grid file's top-level settings)")
    g.add_argument("--steps", type=int, default=None, help="gradient steps per configuration")
    g.add_argument("--polish", type=int, default=None, help="L-BFGS iterations after GD")
    g.add_argument("--record-every", type=int, default=None, help="loss-check period (10)")
    g.add_argument("--batch-size", type=int, default=None, help="most configs per batch")
    g.add_argument(
        "--sequential", action="store_true", help="train one configuration at a time (B = 1)"
    )
    e = p.add_argument_group("where")
    e.add_argument("--workers", type=int, default=None, help="worker processes on this machine")
    e.add_argument(
        "--dask",
        default=None,
        metavar="ADDRESS",
        help="a Dask scheduler address (tcp://host:8786), or 'local' for a LocalCluster"
        " with --workers worker processes (default 2; 1 runs in this process) (needs the"
        " [cluster] extra)",
    )
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print the rows as JSON")
    o.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run)


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef, unused-ignore]
        except ModuleNotFoundError:
            raise common.UsageError(
                "argument --grid: reading TOML on Python < 3.11 needs tomli (pip install tomli)"
            ) from None
    if path.suffix.lower() != ".toml":
        raise common.UsageError(f"argument --grid: {str(path)!r} is not valid: expected a .toml")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise common.UsageError(f"argument --grid: {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise common.UsageError(
            f"argument --grid: {str(path)!r} is not valid TOML: {exc}"
        ) from None


def _settings(args: argparse.Namespace, data: dict[str, Any]) -> tuple[dict, dict]:
    unknown = sorted(set(data) - {"grid", *RUN_KEYS})
    if unknown:
        raise common.UsageError(
            f"argument --grid: unknown top-level key(s) {unknown}: expected {list(RUN_KEYS)}"
            " and a [grid] table"
        )
    grid = data.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise common.UsageError(
            "argument --grid: the file needs a non-empty [grid] table of parameters"
        )
    run = {k: data[k] for k in RUN_KEYS if k in data}
    for k in RUN_KEYS:
        flag = getattr(args, k)
        if flag is not None:
            run[k] = flag
    if "steps" not in run:
        raise common.UsageError("argument --steps: give --steps or 'steps = N' in the grid file")
    for k, v in run.items():
        low = 1 if k in ("steps", "record_every", "batch_size") else 0
        high = RUN_CAPS[k]
        if not (isinstance(v, int) and not isinstance(v, bool) and low <= v <= high):
            raise common.UsageError(
                f"argument --{k.replace('_', '-')}: {v!r} is not valid: expected an int >= {low}"
                f" (at most {high})"
            )
    return grid, run


def _executor(args: argparse.Namespace) -> tuple[Any, Callable[[bool], None] | None]:
    """(executor, close) for --workers / --dask; (None, None) to run here. ``close(now)``
    ends the workers; ``now=True`` (after Ctrl-C) does not wait for running chunks."""
    common.check_run_flags(args, {}, threads="workers")  # capped at the cores available
    if args.dask is not None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise common.UsageError(
                "argument --dask: dask.distributed is not installed"
                " (pip install 'dnc-interactive[cluster]')"
            ) from None
        if args.dask == "local":
            n = args.workers or 2
            cluster = LocalCluster(  # one worker: a thread here; more: worker processes
                n_workers=n, threads_per_worker=1, processes=n > 1, dashboard_address=None
            )
            client = Client(cluster)

            def close(now: bool) -> None:
                client.close()
                cluster.close()

            return client.get_executor(), close
        try:
            client = Client(args.dask, timeout=30)
        except (OSError, ValueError) as exc:  # unreachable, or not an address (bad scheme)
            raise common.UsageError(f"argument --dask: cannot reach {args.dask!r}: {exc}") from None
        return client.get_executor(), lambda now: client.close()
    if args.workers and args.workers > 1:
        from dnc_interactive.sweeps import worker_pool

        pool = worker_pool(args.workers)  # spawn; workers ignore SIGINT, die with this process

        def close_pool(now: bool) -> None:
            if now:
                pool.terminate()
            else:
                pool.shutdown()

        return pool, close_pool
    return None, None


@contextlib.contextmanager
def _faults_reported() -> Iterator[None]:
    """SIGTERM stops the sweep like Ctrl-C; a repaired results file is reported on one line."""
    from dnc_interactive.sweeps import ResultsRepaired

    def on_term(signum, frame):  # pragma: no cover - exercised by a subprocess test
        raise KeyboardInterrupt

    try:
        old_term = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        old_term = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", ResultsRepaired)
            previous = warnings.showwarning

            def route(message, category, *rest, **kw):
                if issubclass(category, ResultsRepaired):
                    common.warn(f"dnc-interactive sweep: {message}")
                else:
                    previous(message, category, *rest, **kw)

            warnings.showwarning = route
            yield
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


def _summary(df) -> Any:
    """One line per configuration without its seed: runs, mean loss / L_DNC, P(DNC), rank."""
    varying = [
        c
        for c in df.columns[: df.columns.get_loc("lambda") + 1]
        if c not in SUMMARY_DROP and df[c].astype(str).nunique() > 1
    ]
    if "lambda" in varying and df["lambda"].notna().all():
        varying = [c for c in varying if c not in ("lambda_H", "lambda_W")]
    if not varying:
        varying = ["num_classes"]
    return df.groupby(varying, as_index=False, dropna=False).agg(
        runs=("final_loss", "size"),
        final_loss=("final_loss", "mean"),
        loss_ratio=("loss_ratio", "mean"),
        p_dnc=("is_dnc", "mean"),
        rank=("rank", "mean"),
        diverged=("status", lambda s: int((s == "diverged").sum())),
    )


def run(args: argparse.Namespace) -> int:
    from dnc_interactive.sweeps import (
        ResultsFileError,
        SweepError,
        SweepInterrupted,
        expand_grid,
        sweep,
    )

    data = _load_toml(args.grid)
    grid, settings = _settings(args, data)
    common.check_run_flags(args, {}, out=(".parquet", ".csv"))  # a writable results file
    try:  # validate the grid (its size and every configuration) before starting any worker
        pairs = expand_grid(grid)
    except ValueError as exc:
        raise common.UsageError(f"argument --grid: {exc}") from None
    for device in sorted({config.device for config, _ in pairs}):
        common.check_device(device, "--grid")
    executor, close = _executor(args)
    if not args.quiet and not args.json:
        common.warn(f"sweep: {len(pairs)} configurations, {settings['steps']} steps each")
    stopped = True
    try:
        with _faults_reported():
            df = sweep(
                grid,
                settings["steps"],
                batched=not args.sequential,
                executor=executor,
                out=args.out,
                record_every=settings.get("record_every", 10),
                batch_size=settings.get("batch_size"),
                polish=settings.get("polish", 0),
                progress=not args.quiet and not args.json,
            )
        stopped = False
    except SweepInterrupted as exc:
        common.warn(f"dnc-interactive sweep: {exc}")
        return 130
    except SweepError as exc:
        common.warn(f"dnc-interactive sweep: {exc}")
        return 1
    except ResultsFileError as exc:
        raise common.UsageError(f"argument --out: {exc}") from None
    except ValueError as exc:
        raise common.UsageError(str(exc)) from None
    finally:
        if close is not None:
            close(stopped)
    if args.json:
        cols = [c for c in df.columns if c != "config_json"]
        common.print_json({"rows": df[cols].to_dict(orient="records")})
    else:
        import pandas as pd

        with pd.option_context("display.width", 160, "display.max_columns", 20):
            print(_summary(df).to_string(index=False, float_format=lambda x: f"{x:.6g}"))
        if args.out is not None:
            print(f"{len(df)} rows in {args.out}")
    return 0


__all__ = ["add_parser", "run"]
