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

The package's modules, one job each (every name below is re-exported here, so
``from dnc_interactive.sweeps import X`` keeps working):

* :mod:`.grid`: :func:`expand_grid` and :func:`config_key` (grids, their validation and
  size checks);
* :mod:`.batch`: :func:`run_batch`, one chunk of same-shape configurations trained together
  (with the fallback race); re-exports :class:`~dnc_interactive.optim.BatchedTrainer`,
  :class:`~dnc_interactive.optim.Race` and :func:`~dnc_interactive.optim.shape_key`;
* :mod:`.columns`: the result columns (:data:`RESULT_COLUMNS`), their storage types and the
  tidy frame;
* :mod:`.store`: the append-only results store and :func:`load_results`; :mod:`.lock`: its
  writer lock;
* :mod:`.run`: :func:`sweep` (orchestration, executors, Ctrl-C) and :func:`worker_pool`;
* :mod:`.summaries`: :func:`dnc_probability`, :func:`rank_summary`, :func:`theory_frame`;
* :mod:`.errors`: :class:`SweepError`, :class:`SweepInterrupted`, :class:`ResultsFileError`,
  :class:`ResultsLockedError`, :class:`ResultsRepaired`.

Layering: imports config, model, metrics, theory, optim, training and lowrank; knows nothing
of charts.
"""

from dnc_interactive.config import FIELD_NAMES as FIELD_NAMES
from dnc_interactive.sweeps.batch import BatchedTrainer, run_batch, shape_key
from dnc_interactive.sweeps.batch import Race as Race
from dnc_interactive.sweeps.columns import RESULT_COLUMNS
from dnc_interactive.sweeps.columns import _columns as _columns
from dnc_interactive.sweeps.errors import (
    ResultsFileError,
    ResultsLockedError,
    ResultsRepaired,
    SweepError,
    SweepInterrupted,
)
from dnc_interactive.sweeps.grid import RECIPE_FIELDS, config_key, expand_grid
from dnc_interactive.sweeps.lock import _ResultsLock as _ResultsLock
from dnc_interactive.sweeps.run import sweep, worker_pool
from dnc_interactive.sweeps.store import load_results
from dnc_interactive.sweeps.summaries import dnc_probability, rank_summary, theory_frame

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

# Also importable from here, as before the split (tests and older code use them):
# FIELD_NAMES, Race, _columns, _ResultsLock.
