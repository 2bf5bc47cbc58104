"""Sweeps over many DUFM configurations: batched training, executors, resumable results.

Researchers explore the DUFM (theory §1.2) by sweeping: depth x lambda phase diagrams, the
probability that gradient descent finds deep neural collapse as the width grows, the loss ratio
of low-rank solutions to DNC as K grows (theory §5). This module makes such sweeps cheap:

* :class:`~dnc_interactive.optim.BatchedTrainer` (the batch-aware optimisation core,
  re-exported here) trains B configurations *of the same shape* as one batched tensor program,
  each with its own lambdas, initialisation and recipe; a configuration whose first start
  stalls gets the robust recipe's fallback :class:`~dnc_interactive.optim.Race` (theory §8).
* :func:`sweep` expands a grid (a dict of parameter lists named like
  :class:`~dnc_interactive.config.DUFMConfig`'s fields plus the :class:`Recipe` fields such as
  ``lr``) into configurations, validates all of them before any work starts, groups them by
  shape into chunks, runs the chunks locally or on any :class:`concurrent.futures.Executor`
  (a process pool, or Dask's ``Client.get_executor()``), and returns one tidy DataFrame: one
  row per configuration with its parameters, ``final_loss``, ``optimal_loss`` (the DNC optimum
  L* of theory §2.2 / §6), ``relative_gap``, final metrics (theory §3) and the DNC / low-rank label
  of :func:`dnc_interactive.lowrank.classify` (theory §5). With ``out=`` every finished chunk is
  appended to the results store (a CSV file, or a ``.parquet`` directory of part files; see
  :func:`load_results`), and a rerun skips the configurations already there (keyed by
  :func:`config_key`), so an interrupted sweep loses at most the chunks in flight.

Faults lose nothing: Ctrl-C cancels the queued chunks at once and keeps every finished one
(:class:`SweepInterrupted`); a store damaged by a crash or kill is repaired by dropping only
the broken tail (with a :class:`ResultsRepaired` warning) or refused with the fix
(:class:`ResultsFileError`); a second sweep writing the same ``out`` is refused by a lock file
(:class:`ResultsLockedError`); :func:`worker_pool` workers die with their parent, even after a
SIGKILL.

Scale-out (the optional ``[cluster]`` extra, ``pip install 'dnc-interactive[cluster]'``)::

    from dask.distributed import Client
    with Client("tcp://scheduler:8786") as client:          # or Client(LocalCluster(...))
        df = sweep(grid, 20_000, executor=client.get_executor(), out="results.parquet")

Any :class:`concurrent.futures.Executor` works the same way, e.g.
``ProcessPoolExecutor(2)`` to use both cores of a laptop. Chunks are plain picklable data and
:func:`run_batch`, so workers only need this package installed.

Determinism: a configuration's numbers do not depend on which other configurations share its
batch, on the chunk size, or on the executor (each chunk runs with ``threads`` torch threads,
1 by default); the tests check the batched, the one-at-a-time (B = 1) and the Dask paths for
bitwise equality in float64, and the B = 1 path against :class:`Trainer` to 1e-10.

Layering: imports config, model, metrics, theory, training and lowrank; knows nothing of charts.
"""

from __future__ import annotations

import csv
import dataclasses
import errno
import hashlib
import io
import itertools
import json
import math
import multiprocessing as mp
import os
import re
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dnc_interactive import lowrank, metrics, theory
from dnc_interactive.config import FIELD_NAMES, DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.optim import BatchedTrainer, Race, shape_key
from dnc_interactive.optim import stalled as _stall_test
from dnc_interactive.training import Recipe, Trainer, relative_gap
from dnc_interactive.validation import ParameterError, check_grid_size

__all__ = [
    "RECIPE_FIELDS",
    "RESULT_COLUMNS",
    "BatchedTrainer",
    "ResultsFileError",
    "ResultsLockedError",
    "ResultsRepaired",
    "SweepError",
    "SweepInterrupted",
    "config_key",
    "dnc_probability",
    "expand_grid",
    "load_results",
    "rank_summary",
    "run_batch",
    "shape_key",
    "sweep",
    "theory_frame",
    "worker_pool",
]

#: Recipe fields a grid may set (besides the DUFMConfig fields).
RECIPE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Recipe))

#: Fields of DUFMConfig that can hold one value per layer / class (stored as text when they do).
_SEQUENCE_FIELDS = ("samples_per_class", "width", "lambda_W")

#: Result columns after the config and recipe columns, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "lambda",
    "steps",
    "polish",
    "gd_loss",
    "final_loss",
    "fit",
    "reg",
    "optimal_loss",
    "relative_gap",
    "loss_ratio",
    "status",
    "retries",
    "start",
    "final_lr",
    "nc1",
    "nc2_orth",
    "nc3",
    "q_mean",
    "label",
    "is_dnc",
    "rank",
    "min_rank_pre",
    "rank_pre",
    "rank_post",
    "dnc_optimality",
    "seconds",
    "key",
    "config_json",
)

_KEY_VERSION = 1


class SweepError(RuntimeError):
    """A sweep stopped before finishing (a chunk failed); finished chunks are in the file."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM on the command line) stopped a sweep: the queued chunks were
    cancelled and every finished chunk is saved (``saved`` of ``pending`` configurations)."""

    def __init__(self, message: str, saved: int = 0, pending: int = 0) -> None:
        super().__init__(message)
        self.saved = saved
        self.pending = pending


# ====================================================================== one chunk -> rows
def _final_metrics(model: DUFM) -> dict[str, Any]:
    """Final metrics of one trained model (theory §3) and its DNC / low-rank label (theory §5)."""
    cfg = model.config
    rows = metrics.layer_metric_rows(model)
    get: dict[tuple[int, str, str], float] = {(l, k, m): v for l, k, m, v in rows}
    L, K = cfg.L, cfg.K
    nc1 = [get[(l, k, "nc1_trace")] for l in range(2, L + 1) for k in ("pre", "post")]
    nc1 = [v for v in nc1 if math.isfinite(v)]
    verdict = lowrank.classify(model)
    return {
        "nc1": max(nc1) if nc1 else math.nan,
        "nc2_orth": get[(L, "post", "nc2_orth")],
        "nc3": get[(L, "weight", "nc3")],
        "q_mean": sum(get[(L + 1, "output", f"q_{k}")] for k in range(K)) / K,
        "label": verdict.label,
        "is_dnc": verdict.is_dnc,
        "rank": verdict.rank,
        "min_rank_pre": verdict.min_rank_pre,
        "rank_pre": ",".join(str(r) for r in verdict.ranks_pre),
        "rank_post": ",".join(str(r) for r in verdict.ranks_post),
    }


def _recipe_from(params: Mapping[str, Any]) -> Recipe:
    return Recipe(**{k: params[k] for k in RECIPE_FIELDS if k in params})


def run_batch(
    items: Sequence[Mapping[str, Any]],
    steps: int,
    record_every: int = 10,
    threads: int | None = 1,
    polish: int = 0,
) -> list[dict[str, Any]]:
    """Train one chunk of same-shape configurations together and return one row per item.

    ``items`` are plain dicts ``{"config": DUFMConfig.to_dict(), "recipe": {...}, "key": str}``
    (picklable, so this function is what executors run). ``threads`` sets torch's intra-op
    threads for the duration (restored afterwards); None keeps the current setting. With
    ``polish > 0`` each configuration that did not diverge gets an L-BFGS phase of that many
    iterations after gradient descent (:meth:`Trainer.polish`, one configuration at a time),
    as in the follow-up's protocol (theory §5: GD, then L-BFGS).
    """
    old = torch.get_num_threads()
    if threads is not None and threads != old:
        torch.set_num_threads(threads)
    try:
        configs = [DUFMConfig.from_dict(dict(it["config"])) for it in items]
        recipes = [_recipe_from(it["recipe"]) for it in items]
        t0 = time.perf_counter()
        bt = BatchedTrainer(configs, recipes, record_every=record_every).run(steps)
        summaries = [bt.summary(b) for b in range(len(items))]
        models = [bt.model(b) for b in range(len(items))]
        stalled = [_stalled(bt, b, recipes[b], record_every) for b in range(len(items))]
        starts = _fallback_restarts(
            configs, recipes, summaries, models, stalled, steps, record_every
        )
        per = (time.perf_counter() - t0) / len(items)
        out = []
        for b, it in enumerate(items):
            s = summaries[b]
            model = models[b]
            gd_loss = s["loss"]
            if polish and s["status"] != "diverged":
                t1 = time.perf_counter()
                tr = Trainer(model, recipes[b], record_every=record_every, metrics_every=0)
                tr.polish(polish)
                s = {**s, **{k: v for k, v in tr.summary().items() if k in ("loss", "fit", "reg")}}
                s["relative_gap"] = relative_gap(s["loss"], s["optimal_loss"])
                per_b = per + time.perf_counter() - t1
            else:
                per_b = per
            with torch.no_grad():
                final = _final_metrics(model)
            opt = s["optimal_loss"]
            out.append(
                {
                    "key": it["key"],
                    "steps": steps,
                    "polish": polish,
                    "gd_loss": gd_loss,
                    "final_loss": s["loss"],
                    "fit": s["fit"],
                    "reg": s["reg"],
                    "optimal_loss": opt,
                    "relative_gap": s["relative_gap"],
                    "loss_ratio": s["loss"] / opt if opt and math.isfinite(opt) else math.nan,
                    "status": s["status"],
                    "retries": s["retries"],
                    "start": starts[b],
                    "final_lr": s["lr"],
                    **final,
                    "dnc_optimality": theory.dnc_optimality(configs[b]),
                    "seconds": per_b,
                }
            )
        return out
    finally:
        if threads is not None and threads != old:
            torch.set_num_threads(old)


def _stalled(bt: BatchedTrainer, b: int, recipe: Recipe, record_every: int) -> bool:
    """Configuration ``b`` of ``bt`` ended stalled above L* (the trainer's stall criterion)."""
    losses = [row[b] for row in bt.losses]
    return _stall_test(losses, bt.optimal[b], bt.steps, recipe, record_every)


def _fallback_restarts(
    configs: list[DUFMConfig],
    recipes: list[Recipe],
    summaries: list[dict[str, Any]],
    models: list[DUFM],
    stalled: list[bool],
    steps: int,
    record_every: int,
) -> list[int]:
    """The robust recipe's fallback race for a batch (theory §8); updates summaries and models.

    A configuration whose run *stalled* (the trainer's criterion,
    :func:`~dnc_interactive.optim.stalled`) is trained again by a :class:`~.optim.Race` of its
    recipe's fallback starts with the full ``steps`` budget; the race's leader is kept if its
    loss is lower. Returns the start index kept per configuration (0: the first start).
    """
    kept = [0] * len(configs)
    for b, (config, recipe) in enumerate(zip(configs, recipes, strict=True)):
        if not (stalled[b] and recipe.fallback_starts()):
            continue
        if summaries[b]["status"] == "diverged":
            continue
        race = Race(config, recipe, record_every=record_every).run(steps)
        j = race.leader()
        s = race.bt.summary(j)
        if s["status"] != "diverged" and s["loss"] < summaries[b]["loss"]:
            summaries[b] = {**s, "status": "max_steps"}
            models[b] = DUFM(config).load_matrices(*race.bt.matrices(j))
            kept[b] = race.member_start[j]
    return kept


# ====================================================================== grids
def config_key(
    config: DUFMConfig, recipe: Recipe, steps: int, record_every: int = 10, polish: int = 0
) -> str:
    """A stable hash (16 hex digits) of everything that determines one sweep result."""
    payload: dict[str, Any] = {
        "v": _KEY_VERSION,
        "config": config.to_dict(),
        "recipe": dataclasses.asdict(recipe),
        "steps": steps,
        "record_every": record_every,
    }
    if polish:
        payload["polish"] = polish
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _split_params(params: Mapping[str, Any], where: str) -> tuple[dict, dict]:
    unknown = sorted(set(params) - set(FIELD_NAMES) - set(RECIPE_FIELDS) - {"lambda"})
    if unknown:
        raise ValueError(
            f"unknown sweep parameter(s) {unknown}{where}: expected DUFMConfig fields"
            f" {list(FIELD_NAMES)}, recipe fields {list(RECIPE_FIELDS)} or 'lambda'"
            " (sets lambda_H and lambda_W together)"
        )
    cfg = {k: v for k, v in params.items() if k in FIELD_NAMES}
    rec = {k: v for k, v in params.items() if k in RECIPE_FIELDS}
    if "lambda" in params:
        for name in ("lambda_H", "lambda_W"):
            if name in params:
                raise ValueError(
                    f"sweep parameters 'lambda' and {name!r} both given{where}: 'lambda' sets"
                    " lambda_H and lambda_W together, give one or the other"
                )
        cfg["lambda_H"] = cfg["lambda_W"] = params["lambda"]
    return cfg, rec


def _build(
    params: Mapping[str, Any], base: DUFMConfig, recipe: Recipe, where: str
) -> tuple[DUFMConfig, Recipe]:
    cfg, rec = _split_params(params, where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # narrow-width note, not an error
            config = base.replace(**cfg)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"sweep parameter {exc}{where}") from None
    try:
        recipe = dataclasses.replace(recipe, **rec)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"sweep parameter {exc}{where}") from None
    return config, recipe


def expand_grid(
    grid: Mapping[str, Any] | Sequence[DUFMConfig | Mapping[str, Any]],
    base: DUFMConfig | None = None,
    recipe: Recipe | None = None,
) -> list[tuple[DUFMConfig, Recipe]]:
    """The (config, recipe) pairs of a grid, every one validated.

    ``grid`` is either a dict ``{parameter: list of values}`` (the Cartesian product, in the
    order of the keys with the last key varying fastest) or a list of configurations (each a
    :class:`DUFMConfig` or a dict of parameters). Parameters are :class:`DUFMConfig` fields
    (``num_classes``, ``depth``, ``width``, ``lambda_H``, ``lambda_W``, ``seed``, ...),
    :class:`Recipe` fields (``lr``, ``momentum``, ``momentum_boost``, ...) or ``lambda``
    (lambda_H = lambda_W = value). In a dict grid a Python ``list`` is the values to sweep;
    anything else (a number, a string, a tuple such as per-layer widths ``(30, 20, 10)``) is one
    fixed value. Parameters not given come from ``base`` and ``recipe``.

    Raises:
        ValueError: naming the parameter, for an empty list, an unknown parameter or a value
            the config / recipe rejects, before any training starts; ``BudgetError`` (a
            ValueError naming ``grid``) when the grid has more configurations than the
            budget allows (:func:`dnc_interactive.validation.set_budget`), counted before
            any is built, and for a configuration over the memory / work budget.
    """
    base = base if base is not None else DUFMConfig()
    recipe = recipe if recipe is not None else Recipe()
    if not isinstance(base, DUFMConfig):
        raise ValueError(f"base={base!r} is not valid: expected a DUFMConfig or None")
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe={recipe!r} is not valid: expected a Recipe or None")
    if isinstance(grid, Mapping):
        names = list(grid)
        _split_params(dict.fromkeys(names), "")
        values = []
        for name in names:
            v = grid[name]
            if isinstance(v, list):
                if not v:
                    raise ValueError(
                        f"sweep parameter {name!r} has an empty list of values: expected at"
                        " least one value"
                    )
                values.append(v)
            else:
                values.append([v])
        # the grid's size, by arithmetic, against the budget: before any configuration is built
        check_grid_size(math.prod(len(v) for v in values))
        out = []
        for combo in itertools.product(*values):
            params = dict(zip(names, combo, strict=True))
            out.append(_build(params, base, recipe, f" (in {params})"))
        return out
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence):
        raise ValueError(
            f"grid={grid!r} is not valid: expected a dict of parameter lists or a list of"
            " DUFMConfig / parameter dicts"
        )
    if not grid:
        raise ValueError("grid=[] is not valid: expected at least one configuration")
    check_grid_size(len(grid))
    out = []
    for i, item in enumerate(grid):
        if isinstance(item, DUFMConfig):
            out.append((item, recipe))
        elif isinstance(item, Mapping):
            out.append(_build(item, base, recipe, f" (in grid[{i}])"))
        else:
            raise ValueError(
                f"grid[{i}]={item!r} is not valid: expected a DUFMConfig or a dict of parameters"
            )
    return out


# ====================================================================== result files
# The results store is append-only: a CSV file gets one appended block of rows per finished
# chunk, a Parquet "file" is a directory of part files (part-000000.parquet, ...), one per
# chunk, each written to a hidden temporary name and renamed into place. Nothing is ever
# rewritten, so a crash or a kill can damage at most the last block: load_results() finds it,
# names it, and with repair=True (what sweep() does) drops only that broken tail, with a
# message, keeping the dropped bytes aside. Damage anywhere else is refused with the fix. A
# lock file (results.csv.lock, an OS lock released even on SIGKILL) keeps a second sweep from
# writing the same file.
class ResultsFileError(ValueError):
    """A results file that is corrupt, not a sweep results file, or in use.

    The message names the file (or part file, with the line) and the fix; ``path`` is it.
    """

    def __init__(self, path: Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(message)


class ResultsLockedError(ResultsFileError):
    """Another sweep is writing the same results file (its lock is held)."""


class ResultsRepaired(UserWarning):
    """A broken tail (a write cut off by a crash or kill) was dropped from a results file."""


def _check_out(out: str | os.PathLike | None) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.suffix.lower() not in (".parquet", ".csv"):
        raise ValueError(f"out={str(out)!r} is not valid: expected a .parquet or .csv file")
    if path.suffix.lower() == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:  # pragma: no cover - pyarrow is installed in dev and CI
            raise ValueError(
                f"out={str(out)!r} needs pyarrow (pip install 'dnc-interactive[parquet]'),"
                " or use a .csv file"
            ) from None
    elif path.is_dir():
        raise ValueError(f"out={str(out)!r} is not valid: it is a directory, not a .csv file")
    return path


_PANDAS_MAJOR = int(pd.__version__.split(".")[0])


def _columns() -> list[str]:
    return [*FIELD_NAMES, *RECIPE_FIELDS, *RESULT_COLUMNS]


# --------------------------------------------------------------------- the lock
try:  # POSIX: an flock is released by the kernel when its holder dies, even by SIGKILL
    import fcntl
except ImportError:  # pragma: no cover - Windows: O_EXCL lock file with a pid liveness check
    fcntl = None  # type: ignore[assignment]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


class _ResultsLock:
    """Exclusive writer lock on a results path: ``<name>.lock`` next to it, holding the
    writer's pid, host and start time (for the refusal message)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self._fd: int | None = None

    def _holder(self, fd: int | None = None) -> str:
        try:
            if fd is not None:
                text = os.pread(fd, 4096, 0).decode(errors="replace")
            else:
                text = self.lock_path.read_text(errors="replace")
            info = json.loads(text)
            return f"pid {info['pid']} on {info['host']}, started {info['started']}"
        except Exception:
            return "another process"

    def _refuse(self, holder: str) -> ResultsLockedError:
        return ResultsLockedError(
            self.path,
            f"{self.path} is being written by another sweep ({holder}): two writers on one"
            " results file would mix or lose rows, so this one is refused. Fix: wait for that"
            " sweep to finish (it resumes nothing twice), or give this one another out= /"
            f" --out. If no sweep is running, delete {self.lock_path}.",
        )

    def _stamp(self) -> bytes:
        return json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
        ).encode()

    def acquire(self) -> _ResultsLock:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):  # a holder may unlink the lock between our open and our lock
            if fcntl is None:  # pragma: no cover - Windows
                return self._acquire_excl()
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = self._holder(fd)
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise self._refuse(holder) from None
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, self._stamp(), 0)
            self._fd = fd
            return self
        raise self._refuse("a writer that keeps replacing the lock")  # pragma: no cover

    def _acquire_excl(self) -> _ResultsLock:  # pragma: no cover - Windows
        for _ in range(2):
            try:
                fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    pid = int(json.loads(self.lock_path.read_text())["pid"])
                except Exception:
                    raise self._refuse(self._holder()) from None
                if _pid_alive(pid):
                    raise self._refuse(self._holder()) from None
                warnings.warn(
                    f"{self.lock_path}: removed the stale lock of pid {pid} (not running)",
                    ResultsRepaired,
                    stacklevel=3,
                )
                self.lock_path.unlink(missing_ok=True)
                continue
            os.write(fd, self._stamp())
            self._fd = fd
            return self
        raise self._refuse(self._holder())

    def held_by_other(self) -> bool:
        """True if another process holds the lock now (checked without taking it)."""
        if not self.lock_path.exists():
            return False
        if fcntl is None:  # pragma: no cover - Windows
            try:
                return _pid_alive(int(json.loads(self.lock_path.read_text())["pid"]))
            except Exception:
                return False
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.lock_path.unlink(missing_ok=True)  # while still holding it (see acquire)
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> _ResultsLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# --------------------------------------------------------------------- storage types
def _default_kind(f: dataclasses.Field) -> str:
    """ "int", "bool", "str" or "float": the storage type of a config / recipe field."""
    value = f.default if f.default is not dataclasses.MISSING else None
    if value is None and f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "str"
    text = str(f.type)
    if value is None and "int" in text and "float" not in text:
        return "int"
    return "float"


def _storage_kinds() -> dict[str, str]:
    kinds = {
        f.name: _default_kind(f)
        for cls in (DUFMConfig, Recipe)
        for f in dataclasses.fields(cls)
        if f.name in FIELD_NAMES or f.name in RECIPE_FIELDS
    }
    kinds.update(dict.fromkeys(_SEQUENCE_FIELDS, "str"))  # "30" or "30,20,10"; read back as 30
    kinds.update(dict.fromkeys(("steps", "polish", "retries", "start", "rank"), "int"))
    kinds.update(is_dnc="bool")
    text = ("status", "label", "rank_pre", "rank_post", "dnc_optimality", "key", "config_json")
    kinds.update(dict.fromkeys(text, "str"))
    return {c: kinds.get(c, "float") for c in _columns()}


_STR_COLUMNS = frozenset(c for c, k in _storage_kinds().items() if k == "str")


def _arrow_schema():
    import pyarrow as pa

    types = {"str": pa.string(), "bool": pa.bool_(), "int": pa.int64(), "float": pa.float64()}
    return pa.schema([(c, types[k]) for c, k in _storage_kinds().items()])


def _arrow_table(frame: pd.DataFrame):
    """One part's table in the fixed schema, so every part (and pd.read_parquet of the whole
    directory) agrees on the column types whatever values a chunk happened to hold."""
    import pyarrow as pa

    out = frame.reindex(columns=_columns()).copy()
    kinds = _storage_kinds()
    for c in out.columns:
        if kinds[c] == "str":
            out[c] = [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                for v in out[c]
            ]
        elif kinds[c] == "bool":
            out[c] = out[c].astype(bool)
        elif kinds[c] == "float":
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    try:
        return pa.Table.from_pandas(out, schema=_arrow_schema(), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError):  # pragma: no cover
        return pa.Table.from_pandas(frame, preserve_index=False)  # unusual values: as they are


# --------------------------------------------------------------------- the stores
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - not possible on every platform
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _aside(path: Path, suffix: str) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return path.with_name(f".{path.name}.{suffix}-{stamp}-{os.getpid()}")


class _CsvStore:
    """Append-only CSV: a header line, then one appended block of complete lines per chunk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._header: list[str] | None = None

    # a scan: (frame-ready bytes end, rows, problem) with problem None or
    # (line number, byte offset, reason, is_tail)
    def _scan(self) -> tuple[list[str] | None, int, int, tuple[int, int, str, bool] | None]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, 0, 0, None
        if not data:
            return None, 0, 0, None
        lines = data.split(b"\n")
        ended = data.endswith(b"\n")
        if ended:
            lines = lines[:-1]
        header: list[str] | None = None
        offset = 0
        good_end = 0
        rows = 0
        key_at = -1
        for i, raw in enumerate(lines):
            lineno = i + 1
            last = i == len(lines) - 1
            complete = ended or not last
            reason = None
            try:
                fields = next(csv.reader([raw.decode("utf-8")]))
            except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
                fields = None
                reason = f"unreadable ({type(exc).__name__})"
            if header is None:
                if not complete:
                    reason = reason or "cut off inside the header line"
                elif fields is not None and "key" in fields and "config_json" in fields:
                    header = fields  # the current layout, or an older one (see prepare())
                    key_at = fields.index("key")
                else:
                    raise ResultsFileError(
                        self.path,
                        f"{self.path} is not a sweep results file (its first line is not the"
                        " header sweep() writes, with 'key' and 'config_json' columns)."
                        " Fix: give the sweep another out= / --out, or move this file aside.",
                    )
            elif fields is not None and len(fields) != len(header):
                reason = f"{len(fields)} fields instead of {len(header)}"
            elif fields is not None and not _is_key(fields[key_at]):
                reason = f"no configuration key ({fields[key_at][:20]!r})"
            if reason is None and not complete:
                reason = "no end of line"
            if reason is not None:
                tail = last
                return header, good_end, rows, (lineno, offset, reason, tail)
            offset += len(raw) + 1
            good_end = offset
            if lineno > 1:
                rows += 1
        return header, good_end, rows, None

    def read(self, repair: bool, writer_active: bool) -> pd.DataFrame:
        header, good_end, rows, problem = self._scan()
        self._header = header
        if problem is not None:
            lineno, offset, reason, tail = problem
            size = self.path.stat().st_size
            if not tail:
                raise ResultsFileError(
                    self.path,
                    f"{self.path}: line {lineno} is broken ({reason}) but lines after it are"
                    " intact, so this is not a write cut off by a crash and nothing is dropped"
                    f" automatically. Fix: delete line {lineno} by hand (its configurations"
                    " will be recomputed), or move the file aside and start a new one.",
                )
            if writer_active:  # a writer is appending right now: its last line is unfinished
                return self._frame(good_end)
            if not repair:
                raise ResultsFileError(
                    self.path,
                    f"{self.path}: the last line ({lineno}) is broken ({reason}): a write was"
                    " cut off (a crash or a kill). Fix: run the sweep again with the same"
                    " out= / --out (it drops that line, with a message, and recomputes its"
                    " configuration), or call load_results(path, repair=True).",
                )
            aside = _aside(self.path, "broken-tail")
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                aside.write_bytes(fh.read())
            with open(self.path, "r+b") as fh:
                fh.truncate(offset)
                fh.flush()
                os.fsync(fh.fileno())
            what = "header line" if header is None else f"line {lineno}"
            warnings.warn(
                f"{self.path}: dropped the broken {what} ({size - offset} bytes, {reason}: a"
                f" write cut off by a crash or kill); kept {rows} rows. The dropped bytes are in"
                f" {aside.name}; the configurations they held will be recomputed.",
                ResultsRepaired,
                stacklevel=4,
            )
            good_end = offset
            self._header = header if header is not None and offset > 0 else None
        return self._frame(good_end)

    def _frame(self, end: int) -> pd.DataFrame:
        if end == 0:
            return pd.DataFrame(columns=_columns())
        with open(self.path, "rb") as fh:
            data = fh.read(end)
        text = dict.fromkeys(_STR_COLUMNS & set(self._header or _columns()), str)  # "12e4.." keys
        # pandas 3: round-trip precision is the default
        exact: dict[str, Any] = {} if _PANDAS_MAJOR >= 3 else {"float_precision": "round_trip"}
        return pd.read_csv(io.BytesIO(data), dtype=text, **exact)

    def prepare(self) -> None:
        """Writer start (lock held, after :meth:`read`): a file written with another column
        layout (an older version's) is rewritten once in the current one, so that appended
        rows line up; its rows are kept, new columns are empty."""
        old = self._header
        if old is None or old == _columns():
            return
        frame = self._frame(self.path.stat().st_size)
        added = [c for c in _columns() if c not in old]
        dropped = [c for c in old if c not in _columns()]
        tmp = self.path.with_name(f".{self.path.name}.upgrade-{os.getpid()}")
        try:
            frame.reindex(columns=_columns()).to_csv(tmp, index=False, lineterminator="\n")
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._header = _columns()
        warnings.warn(
            f"{self.path}: rewrote it once in the current column layout (added {added or 'none'},"
            f" dropped {dropped or 'none'}); its {len(frame)} rows are kept.",
            ResultsRepaired,
            stacklevel=4,
        )

    def append(self, frame: pd.DataFrame) -> None:
        frame = frame.reindex(columns=_columns())
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            start = os.fstat(fd).st_size
            text = frame.to_csv(index=False, header=start == 0, lineterminator="\n")
            payload = memoryview(text.encode("utf-8"))
            try:
                while payload:
                    n = os.write(fd, payload)
                    payload = payload[n:]
                os.fsync(fd)
            except BaseException:  # Ctrl-C or a full disk mid-write: leave no partial rows
                os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)


def _is_key(text: str) -> bool:
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


_PART = re.compile(r"^part-(\d{6,})\.parquet$")


class _ParquetStore:
    """A directory of part files, one per finished chunk (a single legacy file is read too,
    and turned into the directory's first part when a sweep appends to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._next = 0

    def _migrating(self) -> Path:
        return self.path.with_name(f".{self.path.name}.migrating")

    def _parts(self) -> list[tuple[int, Path]]:
        parts = []
        foreign = []
        for p in self.path.iterdir():
            if p.name.startswith((".", "_")):
                continue
            m = _PART.match(p.name)
            if m and p.is_file():
                parts.append((int(m.group(1)), p))
            else:
                foreign.append(p.name)
        if foreign:
            raise ResultsFileError(
                self.path,
                f"{self.path} is a directory but not a sweep results directory: it holds"
                f" {sorted(foreign)[:3]} besides part files. Fix: give the sweep another out= /"
                " --out (a new .parquet name).",
            )
        return sorted(parts)

    @staticmethod
    def _read_part(path: Path) -> pd.DataFrame:
        import pyarrow.parquet as pq

        frame = pq.read_table(path).to_pandas()
        if "key" not in frame.columns or not all(_is_key(str(k)) for k in frame["key"]):
            raise ValueError("no configuration keys (not a sweep results part)")
        return frame

    def read(self, repair: bool, writer_active: bool) -> pd.DataFrame:
        if not self.path.exists() and self._migrating().is_dir():
            os.replace(self._migrating(), self.path)  # finish a migration a crash interrupted
        if not self.path.exists():
            return pd.DataFrame(columns=_columns())
        if self.path.is_file():  # a single Parquet file (written before the store appended)
            try:
                return self._read_part(self.path)
            except Exception as exc:
                raise ResultsFileError(
                    self.path,
                    f"{self.path} is not a readable sweep results file ({type(exc).__name__}:"
                    f" {str(exc)[:120]}); a single Parquet file cannot be partly recovered."
                    " Fix: move it aside (its configurations will be recomputed) or restore it"
                    " from a copy.",
                ) from None
        parts = self._parts()
        frames: list[pd.DataFrame] = []
        broken: list[tuple[int, Path, str]] = []
        for seq, p in parts:
            try:
                frames.append(self._read_part(p))
            except Exception as exc:
                broken.append((seq, p, f"{type(exc).__name__}: {str(exc)[:120]}"))
        self._next = parts[-1][0] + 1 if parts else 0
        if broken:
            first_bad = broken[0][0]
            if any(seq > first_bad for seq, _ in parts if all(seq != b[0] for b in broken)):
                seq, p, why = broken[0]
                raise ResultsFileError(
                    p,
                    f"{p} is broken ({why}) but later parts are intact, so this is not a write"
                    " cut off by a crash and nothing is dropped automatically. Fix: move that"
                    " part file out of the directory (its configurations will be recomputed).",
                )
            if not writer_active:
                names = ", ".join(p.name for _, p, _ in broken)
                if not repair:
                    raise ResultsFileError(
                        broken[0][1],
                        f"{self.path}: the last part(s) {names} are broken ({broken[0][2]}): a"
                        " write was cut off (a crash or a kill). Fix: run the sweep again with"
                        " the same out= / --out (it sets them aside, with a message, and"
                        " recomputes their configurations), or call load_results(path,"
                        " repair=True).",
                    )
                for _, p, _ in broken:
                    os.replace(p, p.with_name(f".{p.name}.broken-{os.getpid()}"))
                warnings.warn(
                    f"{self.path}: set aside the broken last part(s) {names} ({broken[0][2]}:"
                    " a write cut off by a crash or kill) as hidden .broken files; kept"
                    f" {sum(len(f) for f in frames)} rows. Their configurations will be"
                    " recomputed.",
                    ResultsRepaired,
                    stacklevel=4,
                )
        if not frames:
            return pd.DataFrame(columns=_columns())
        return pd.concat(frames, ignore_index=True)

    def prepare(self) -> None:
        """Writer start (lock held): finish or start the migration of a single-file results
        file into the directory layout, and remove temporary files of a crashed writer."""
        mig = self._migrating()
        if not self.path.exists() and mig.is_dir():
            os.replace(mig, self.path)
        if self.path.is_file():
            mig.mkdir(exist_ok=True)
            os.replace(self.path, mig / "part-000000.parquet")
            os.replace(mig, self.path)
            self._next = 1
        self.path.mkdir(parents=True, exist_ok=True)
        for p in self.path.glob(".part-*.tmp"):
            p.unlink(missing_ok=True)
        parts = self._parts()
        self._next = max(self._next, parts[-1][0] + 1 if parts else 0)

    def append(self, frame: pd.DataFrame) -> None:
        import pyarrow.parquet as pq

        self.path.mkdir(parents=True, exist_ok=True)
        name = f"part-{self._next:06d}.parquet"
        tmp = self.path / f".{name}.tmp"
        try:
            pq.write_table(_arrow_table(frame), tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.path)
        self._next += 1


def _store(path: Path) -> _CsvStore | _ParquetStore:
    return _CsvStore(path) if path.suffix.lower() == ".csv" else _ParquetStore(path)


def load_results(path: str | os.PathLike, repair: bool = False) -> pd.DataFrame:
    """Read a sweep results file written by :func:`sweep`: a ``.csv`` file, or a ``.parquet``
    directory of part files (a single ``.parquet`` file from an older version is read too).

    A broken tail (the last CSV line, or the last part files, cut off by a crash or a kill) is
    refused with the fix, or, with ``repair=True``, dropped (set aside next to the file) with a
    :class:`ResultsRepaired` warning naming what was dropped; :func:`sweep` repairs this way.
    While another sweep is writing the file its unfinished last line is simply not read.
    Damage anywhere but the tail is always refused: nothing is dropped silently.

    Raises:
        ResultsFileError: (a ``ValueError``) naming the file, the line or part and the fix.
    """
    p = Path(path)
    if p.suffix.lower() not in (".csv", ".parquet"):
        raise ParameterError("path", str(path), "a .csv or .parquet path", owner="load_results")
    if not p.exists() and not (
        p.suffix.lower() == ".parquet" and _ParquetStore(p)._migrating().is_dir()
    ):
        raise FileNotFoundError(f"{p} does not exist")
    lock = _ResultsLock(p)
    active = lock.held_by_other()
    if repair and not active:
        with lock:
            frame = _store(p).read(repair=True, writer_active=False)
    else:
        frame = _store(p).read(repair=False, writer_active=active)
    return _tidy(frame) if len(frame) else frame.reindex(columns=_columns())


def _config_columns(config: DUFMConfig, recipe: Recipe) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.to_dict().items():
        out[k] = ",".join(str(x) for x in v) if isinstance(v, list) else v
    for k, v in dataclasses.asdict(recipe).items():
        out[k] = v
    lam = config.lambda_H if config.equal_lambdas else math.nan
    out["lambda"] = lam
    out["config_json"] = config.to_json()
    return out


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed column order and types: numeric where every value is a number."""
    cols = [*FIELD_NAMES, *RECIPE_FIELDS, *RESULT_COLUMNS]
    frame = frame.reindex(columns=cols)
    for name in _SEQUENCE_FIELDS:  # one number per row -> numeric, else text ("30,20,10")
        values = frame[name]
        numbers = pd.to_numeric(values.astype(str), errors="coerce")
        if bool(numbers.notna().all()) and not any(isinstance(v, bool) for v in values):
            frame[name] = numbers
        else:
            frame[name] = values.astype(str)
    frame["momentum_boost"] = pd.to_numeric(frame["momentum_boost"], errors="coerce")
    frame["is_dnc"] = frame["is_dnc"].astype(bool)
    frame["min_rank_pre"] = pd.to_numeric(frame["min_rank_pre"], errors="coerce").astype(float)
    return frame.reset_index(drop=True)


# ====================================================================== sweep
def _chunks(
    pending: list[int], pairs: list[tuple[DUFMConfig, Recipe]], batched: bool, size: int | None
) -> list[list[int]]:
    groups: dict[tuple, list[int]] = {}
    for i in pending:
        config, recipe = pairs[i]
        groups.setdefault(shape_key(config, recipe), []).append(i)
    out = []
    for members in groups.values():
        step = 1 if not batched else (size or len(members))
        out += [members[j : j + step] for j in range(0, len(members), step)]
    return out


def sweep(
    grid: Mapping[str, Any] | Sequence[DUFMConfig | Mapping[str, Any]],
    steps: int,
    *,
    batched: bool = True,
    executor: Executor | None = None,
    base: DUFMConfig | None = None,
    recipe: Recipe | None = None,
    out: str | os.PathLike | None = None,
    record_every: int = 10,
    batch_size: int | None = None,
    threads: int | None = 1,
    polish: int = 0,
    progress: bool = True,
    on_chunk: Callable[[pd.DataFrame], Any] | None = None,
) -> pd.DataFrame:
    """Train every configuration of ``grid`` for ``steps`` steps; one tidy row per config.

    Args:
        grid: a dict of parameter lists or a list of configurations; see :func:`expand_grid`
            (parameters: DUFMConfig fields, Recipe fields such as ``lr``, and ``lambda``).
        steps: gradient steps per configuration (>= 1).
        batched: train same-shape configurations together (:class:`BatchedTrainer`); False
            trains them one at a time (the same code with B = 1). Results are the same.
        executor: any :class:`concurrent.futures.Executor` to run the chunks on (a
            ``ProcessPoolExecutor``, Dask's ``Client.get_executor()``, ...); None runs them here.
        base: defaults for the config fields the grid does not set (``DUFMConfig()``).
        recipe: defaults for the recipe fields the grid does not set (``Recipe()``).
        out: a ``.parquet`` (a directory of part files) or ``.csv`` results store. Rows
            already there (same :func:`config_key`) are reused, not recomputed; each finished
            chunk is appended at once (never a rewrite of the whole file), so an interrupted
            sweep resumes where it stopped. A broken tail left by a crash is dropped with a
            :class:`ResultsRepaired` warning; while this sweep runs, ``out`` is locked
            (``<out>.lock``) against a second writer.
        record_every: loss-check period of the divergence guard and momentum boost.
        batch_size: most configurations per chunk (None: a whole shape group per chunk, or,
            with an executor, groups split evenly over about 4 chunks per worker).
        threads: torch threads inside each chunk (1 keeps results identical on every path).
        polish: L-BFGS iterations after gradient descent, per configuration (0: none); see
            :func:`run_batch`.
        progress: show a tqdm progress bar (configurations done).
        on_chunk: called with the rows of each finished chunk (a DataFrame).

    Returns:
        One row per configuration, in grid order: the DUFMConfig fields, the Recipe fields,
        ``lambda`` (lambda_H when all lambdas are equal, else NaN), ``steps``, ``polish``,
        ``gd_loss`` (after gradient descent), ``final_loss`` (after the polish, if any),
        ``fit``, ``reg``, ``optimal_loss`` (L* of the DNC family, theory §2.2 / §6),
        ``relative_gap``, ``loss_ratio`` (final / optimal), ``status``, ``retries``,
        ``final_lr``, ``nc1`` (largest NC1' = tr Σ_W / tr Σ_B over layers 2..L), ``nc2_orth``
        and ``nc3`` (last layer), ``q_mean`` (mean output scale), ``label`` / ``is_dnc`` /
        ``rank`` / ``min_rank_pre`` / ``rank_pre`` / ``rank_post`` (from
        :func:`dnc_interactive.lowrank.classify`, theory §5), ``dnc_optimality``, ``seconds``
        (training time per configuration, shared evenly in a batch), ``key`` and
        ``config_json``.

    Raises:
        ValueError: bad grid or arguments, before any work (naming the parameter).
        ResultsFileError: (a ``ValueError``) ``out`` is damaged other than in its tail, or
            is not a sweep results file; :class:`ResultsLockedError` when another sweep is
            writing it. Both before any work, with the fix.
        SweepError: a chunk failed (e.g. a worker died); the finished chunks are in ``out``,
            so calling again resumes.
        SweepInterrupted: (a ``KeyboardInterrupt``) Ctrl-C: queued chunks were cancelled,
            every finished chunk (also those done in other workers meanwhile) is in ``out``.
    """
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):
        raise ValueError(f"steps={steps!r} is not valid: expected an int >= 1")
    if not (isinstance(record_every, int) and record_every >= 1):
        raise ValueError(f"record_every={record_every!r} is not valid: expected an int >= 1")
    if batch_size is not None and not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size={batch_size!r} is not valid: expected an int >= 1 or None")
    if threads is not None and not (isinstance(threads, int) and threads >= 1):
        raise ValueError(f"threads={threads!r} is not valid: expected an int >= 1 or None")
    if not (isinstance(polish, int) and not isinstance(polish, bool) and polish >= 0):
        raise ValueError(f"polish={polish!r} is not valid: expected an int >= 0")
    if executor is not None and not isinstance(executor, Executor):
        raise ValueError(
            f"executor={executor!r} is not valid: expected a concurrent.futures.Executor or None"
        )
    path = _check_out(out)
    pairs = expand_grid(grid, base, recipe)
    keys = [config_key(c, r, steps, record_every, polish) for c, r in pairs]
    lock = _ResultsLock(path) if path is not None else None
    if lock is not None:
        lock.acquire()  # a second writer on the same file is refused here, before any work
    try:
        return _sweep_locked(
            pairs,
            keys,
            steps,
            path,
            batched=batched,
            executor=executor,
            record_every=record_every,
            batch_size=batch_size,
            threads=threads,
            polish=polish,
            progress=progress,
            on_chunk=on_chunk,
        )
    finally:
        if lock is not None:
            lock.release()


def _sweep_locked(
    pairs: list[tuple[DUFMConfig, Recipe]],
    keys: list[str],
    steps: int,
    path: Path | None,
    *,
    batched: bool,
    executor: Executor | None,
    record_every: int,
    batch_size: int | None,
    threads: int | None,
    polish: int,
    progress: bool,
    on_chunk: Callable[[pd.DataFrame], Any] | None,
) -> pd.DataFrame:
    store = _store(path) if path is not None else None
    done = pd.DataFrame()
    if store is not None:
        done = store.read(repair=True, writer_active=False)
        store.prepare()
        done = _tidy(done) if len(done) else pd.DataFrame()
    have = set(done["key"]) if len(done) else set()
    pending = [i for i, k in enumerate(keys) if k not in have]
    seen: set[str] = set()
    # first occurrence of each key (set.add returns None, so the test is "not seen yet")
    pending = [i for i in pending if not (keys[i] in seen or seen.add(keys[i]))]  # type: ignore[func-returns-value]

    size = batch_size
    if executor is not None and batch_size is None and batched:
        workers = _worker_count(executor)
        size = max(1, math.ceil(len(pending) / (4 * workers))) if pending else None
    chunks = _chunks(pending, pairs, batched, size)

    def payload(idx: list[int]) -> list[dict[str, Any]]:
        return [
            {
                "config": pairs[i][0].to_dict(),
                "recipe": dataclasses.asdict(pairs[i][1]),
                "key": keys[i],
            }
            for i in idx
        ]

    def rows_of(idx: list[int], results: list[dict[str, Any]]) -> pd.DataFrame:
        recs = []
        for i, res in zip(idx, results, strict=True):
            recs.append({**_config_columns(*pairs[i]), **res})
        return _tidy(pd.DataFrame(recs))

    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), unit="config", disable=not progress or not pending, leave=False)
    collected = [done] if len(done) else []
    failure: BaseException | None = None
    saved = 0

    def finish(idx: list[int], results: list[dict[str, Any]], callback: bool = True) -> None:
        nonlocal saved
        frame = rows_of(idx, results)
        collected.append(frame)
        if store is not None:
            store.append(frame)  # one appended block / part file per chunk, never a rewrite
        saved += len(idx)
        bar.update(len(idx))
        if callback and on_chunk is not None:
            on_chunk(frame)

    def interrupted(exc: BaseException) -> BaseException:
        if not isinstance(exc, KeyboardInterrupt) or isinstance(exc, SweepInterrupted):
            return exc
        where = f" and saved in {str(path)!r}" if path is not None else " (no out= file)"
        return SweepInterrupted(
            f"sweep interrupted: {saved} of {len(pending)} pending configurations finished"
            f"{where}; the queued chunks were cancelled."
            + (" Run the same sweep again to resume." if path is not None else ""),
            saved=saved,
            pending=len(pending),
        )

    try:
        if executor is None:
            for idx in chunks:
                finish(idx, run_batch(payload(idx), steps, record_every, threads, polish))
        else:
            futures: dict[Future, list[int]] = {}
            handled: set[Future] = set()
            try:
                for idx in chunks:
                    fut = executor.submit(
                        run_batch, payload(idx), steps, record_every, threads, polish
                    )
                    futures[fut] = idx
                from concurrent.futures import as_completed

                for fut in as_completed(futures):
                    handled.add(fut)
                    try:
                        results = fut.result()
                    except Exception as exc:  # a worker died or the chunk raised
                        failure = failure or exc
                        continue
                    finish(futures[fut], results)
            except BaseException:
                # Ctrl-C (or a callback raising): cancel every queued chunk at once, then keep
                # every chunk that had already finished (no callback for those).
                for fut in futures:
                    fut.cancel()
                for fut, idx in futures.items():
                    if fut in handled or not fut.done() or fut.cancelled():
                        continue
                    handled.add(fut)
                    if fut.exception() is None:
                        finish(idx, fut.result(), callback=False)
                raise
    except BaseException as exc:
        new = interrupted(exc)
        if new is exc:
            raise
        raise new from exc
    finally:
        bar.close()
    if failure is not None:
        where = f"; finished chunks are saved in {str(path)!r}, run again to resume" if path else ""
        raise SweepError(
            f"a sweep chunk failed ({type(failure).__name__}: {failure}){where}"
        ) from failure

    table = _tidy(pd.concat(collected, ignore_index=True)) if collected else _tidy(pd.DataFrame())
    table = table.drop_duplicates("key", keep="last").set_index("key", drop=False)
    return table.loc[keys].reset_index(drop=True)


# ====================================================================== worker processes
def _watch_parent(ppid: int, period: float) -> None:
    while True:
        time.sleep(period)
        if os.getppid() != ppid:  # the parent died (even by SIGKILL): we were re-parented
            os._exit(1)


def _worker_init(period: float) -> None:
    """Initializer of :func:`worker_pool` processes: Ctrl-C is the parent's business (the
    terminal sends SIGINT to the whole process group; the parent cancels and terminates), and
    a watchdog thread ends the worker as soon as its parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ppid = os.getppid()
    threading.Thread(
        target=_watch_parent, args=(ppid, period), name="dnc-parent-watch", daemon=True
    ).start()


class _WorkerPool(ProcessPoolExecutor):
    """A ProcessPoolExecutor whose workers die with their parent and that can be stopped now."""

    def terminate(self) -> None:
        """Cancel the queued chunks and end the workers now (running chunks are lost)."""
        procs = list((getattr(self, "_processes", None) or {}).values())
        self.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():  # pragma: no cover - a worker ignoring SIGTERM
                p.kill()
                p.join(timeout=5)

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:  # Ctrl-C or an error: do not wait for the running chunks
            self.terminate()
            return False
        return super().__exit__(exc_type, exc, tb)


def worker_pool(workers: int, mp_context: Any = None, *, watch_period: float = 0.2) -> _WorkerPool:
    """A process pool for :func:`sweep` that loses nothing to Ctrl-C and leaves no orphans.

    * Workers ignore SIGINT: Ctrl-C in a terminal reaches the parent, whose :func:`sweep`
      cancels the queued chunks and keeps every finished one; leaving a ``with`` block by an
      exception (or calling ``terminate()``) ends the workers at once instead of waiting for
      the running chunks.
    * Each worker watches its parent (every ``watch_period`` seconds) and exits when the
      parent is gone, even after a SIGKILL, so no orphaned worker keeps computing.

    ``mp_context`` defaults to "spawn" (safe with torch's threads); the command line's
    ``--workers N`` uses this pool.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ParameterError("workers", workers, "an int >= 1", owner="worker_pool")
    if isinstance(watch_period, bool) or not (
        isinstance(watch_period, (int, float)) and 0 < watch_period <= 60
    ):
        raise ParameterError(
            "watch_period", watch_period, "seconds in (0, 60]", owner="worker_pool"
        )
    ctx = mp_context if mp_context is not None else mp.get_context("spawn")
    return _WorkerPool(
        workers, mp_context=ctx, initializer=_worker_init, initargs=(float(watch_period),)
    )


def _worker_count(executor: Executor) -> int:
    for attr in ("_max_workers", "max_workers"):
        n = getattr(executor, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    client = getattr(executor, "_client", None)  # dask.distributed ClientExecutor
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # pragma: no cover - defensive
            return 1
    return 1


# ====================================================================== summaries
def dnc_probability(frame: pd.DataFrame, by: str | Sequence[str] = "width") -> pd.DataFrame:
    """Fraction of runs that ended DNC, per group (theory §5, follow-up Fig. 3 right).

    Returns columns ``*by``, ``runs``, ``dnc`` (count), ``p_dnc`` and a 95 % Wilson interval
    ``p_low`` / ``p_high``. Diverged runs are left out.
    """
    by = [by] if isinstance(by, str) else list(by)
    _require(frame, [*by, "is_dnc", "status"], "frame")
    ok = frame[frame["status"] != "diverged"]
    g = ok.groupby(by, as_index=False).agg(runs=("is_dnc", "size"), dnc=("is_dnc", "sum"))
    z = 1.959963984540054
    n = g["runs"].astype(float)
    p = g["dnc"] / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    g["dnc"] = g["dnc"].astype(int)
    g["p_dnc"] = p
    g["p_low"] = (centre - half).clip(lower=0.0)
    g["p_high"] = (centre + half).clip(upper=1.0)
    return g


def rank_summary(frame: pd.DataFrame, by: str | Sequence[str] = "lambda") -> pd.DataFrame:
    """Mean, min and max of the solution rank per group (theory §5, follow-up Fig. 3 middle).

    ``rank`` is K for DNC solutions and r for low-rank ones (:func:`lowrank.classify`).
    Returns columns ``*by``, ``runs``, ``rank_mean``, ``rank_min``, ``rank_max``,
    ``loss_ratio_mean``.
    """
    by = [by] if isinstance(by, str) else list(by)
    _require(frame, [*by, "rank", "loss_ratio", "status"], "frame")
    ok = frame[frame["status"] != "diverged"]
    return ok.groupby(by, as_index=False).agg(
        runs=("rank", "size"),
        rank_mean=("rank", "mean"),
        rank_min=("rank", "min"),
        rank_max=("rank", "max"),
        loss_ratio_mean=("loss_ratio", "mean"),
    )


def _require(frame: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{name} is not valid: expected a pandas DataFrame")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks column(s) {missing}: expected a sweep() result")


def theory_frame(
    grid: Mapping[str, Any] | Sequence[DUFMConfig | Mapping[str, Any]],
    base: DUFMConfig | None = None,
    srg: bool = True,
) -> pd.DataFrame:
    """The theory's prediction for every configuration of a grid, one tidy row each.

    Columns: the config fields, ``lambda``, ``optimal_loss`` (L_DNC, theory §2.2 / §6),
    ``q_star`` (mean optimal output scale), ``critical_scale`` and, when K = r(r-1)/2 and
    ``srg`` is true, ``srg_loss`` (the canonical SRG construction's loss,
    :func:`lowrank.srg_loss`) and ``srg_ratio`` = srg_loss / optimal_loss; ``predicted`` is
    "trivial" when q* = 0, "low-rank" when the SRG construction beats DNC, else "DNC" (for
    K > 2, L >= 3 this is a comparison with one low-rank family, not a proof).
    Recipe fields in the grid are accepted and ignored; duplicate configurations (e.g. several
    seeds) give duplicate rows.
    """
    rows = []
    for config, _ in expand_grid(grid, base):
        c = config.replace(seed=0)
        L_dnc = theory.optimal_loss(c)
        qs = theory.optimal_q(c)
        rec = {k: v for k, v in _config_columns(config, Recipe()).items() if k in FIELD_NAMES}
        rec["lambda"] = config.lambda_H if config.equal_lambdas else math.nan
        rec["optimal_loss"] = L_dnc
        rec["q_star"] = sum(qs) / len(qs)
        rec["critical_scale"] = theory.critical_scale(c)
        r = lowrank.srg_r(config.K)
        srg_l = (
            lowrank.srg_loss(c).loss
            if srg and r is not None and c.loss == "mse" and c.L >= 2 and c.balanced
            else math.nan
        )
        rec["srg_loss"] = srg_l
        rec["srg_ratio"] = srg_l / L_dnc if L_dnc and math.isfinite(srg_l) else math.nan
        if rec["q_star"] == 0.0:
            pred = "trivial"
        elif math.isfinite(rec["srg_ratio"]) and rec["srg_ratio"] < 1.0:
            pred = "low-rank"
        else:
            pred = "DNC"
        rec["predicted"] = pred
        rec["predicted_dnc"] = pred == "DNC"
        rows.append(rec)
    frame = pd.DataFrame(rows)
    for name in _SEQUENCE_FIELDS:
        if all(isinstance(v, (int, float)) for v in frame[name]):
            frame[name] = pd.to_numeric(frame[name])
        else:
            frame[name] = frame[name].astype(str)
    return frame
