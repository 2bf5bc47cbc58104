"""The dashboard's engine: one trainer, one asyncio task, settings changes and the status line.

:class:`TrainingSession` knows nothing of ipywidgets, so it can be driven and tested from plain
Python. It owns the current :class:`~dnc_interactive.training.Trainer` (rebuilt on every
structural change), plays it as **one** asyncio task on the running event loop, and tells its
listeners about new history rows at most ~7-10 times per second.

Responsiveness at every model size: the play task hands the training steps, in pieces of at
most :data:`YIELD_SECONDS` (50 ms) of compute, to one worker thread and awaits each piece, so
the event loop (a Jupyter kernel's) is never blocked by training and Pause, the sliders and
the status line answer at once whatever the speed setting and the model; training itself
stops at the end of the piece in flight. Pieces end on the trainer's record grid whenever a
record interval fits in 50 ms; for bigger models a piece may end inside an interval (the
trainer's inner loop, no checkpoint), so the trajectory and the records are those of the
unsplit run. Listeners are always called on the event loop's thread, between pieces.

Concurrency rules:

* at most one play task trains at a time: a new task first cancels and awaits the previous one,
  and a cancelled task waits for its piece in flight before it ends, so a trainer is never
  stepped by two threads;
* every trainer belongs to a *generation*; a structural change bumps it, so rows of an old
  trainer can never reach a listener after the reset;
* ``run(steps)`` and ``step(n)`` are the blocking paths for scripts and tests (on the
  caller's thread, after the piece in flight).

Besides the history, a session keeps a :class:`~dnc_interactive.widgets.probe.Probe` of the
model (ranks, singular values and the DNC / low-rank verdict of every layer's class means,
theory §3.6 and §5, and the feature clouds of the chosen layers when a
:class:`~dnc_interactive.widgets.probe.CloudProjector` is set). It is measured at most every
:data:`PROBE_SECONDS` while playing — on the worker thread after a piece when the model is
big, between pieces otherwise — and at every final update, never while Pause is answered.

With ``auto_pause`` the play task stops at the first update where the run is collapsed (the
status line's "collapsed: yes"); the first collapse of a run is marked on the loss chart (an
``("event", "collapsed")`` row) whether or not it pauses.

For long runs the recording interval doubles every :data:`RECORDS_PER_LEVEL` records (the
trainer's ``record_every`` / ``metrics_every``), so the history grows with the logarithm of the
number of steps and the kernel's memory stays bounded however long it plays.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import math
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pandas as pd
import torch

from dnc_interactive.diagnosis import Diagnosis
from dnc_interactive.model import DUFM
from dnc_interactive.training import HISTORY_COLUMNS, Callback, Row, Trainer
from dnc_interactive.validation import check_device_available, dufm_estimate, one_line
from dnc_interactive.widgets import probe as probes
from dnc_interactive.widgets.playback import (
    CHUNK_SECONDS,
    FAST_UPDATE_SECONDS,
    FIRST_CHUNK,
    HEARTBEAT_SECONDS,
    RECORDS_PER_LEVEL,
    TICK_SECONDS,
    YIELD_SECONDS,
    Playback,
)
from dnc_interactive.widgets.state import CONTINUING_FIELDS, OBJECTIVE_FIELDS, Settings
from dnc_interactive.widgets.status_line import (
    COLLAPSE_TOL,
    DIAGNOSIS_SECONDS,
    StatusLine,
    _fmt,
)

#: While playing, the probe (ranks, verdict, feature clouds) is measured at most this often.
PROBE_SECONDS = 0.2

#: What a failed rebuild restores (the current run goes on).
_RUN_STATE = ("generation", "_pending", "_nc1_max", "_chunk", "_per_step", "_unrecorded")

UpdateListener = Callable[["TrainingSession", list[Row], bool], Any]
ResetListener = Callable[["TrainingSession"], Any]


class TrainingSession(Playback, StatusLine):
    """Settings, the current trainer and the play task of one dashboard.

    Args:
        settings: the starting settings.
        record_every: the trainer's recording interval at the start of a run (steps).
        metrics_every: the trainer's interval for the per-layer metrics (a multiple of
            ``record_every``).

    Listeners: ``on_update(session, rows, final)`` receives the history rows recorded since the
    previous call (``final`` is True when playback stopped or a blocking call ended);
    ``on_reset(session)`` is called after a new trainer replaced the old one;
    ``on_objective(session)`` after a λ change, when a trainer for the new objective goes on
    from the current weights (it redraws from :attr:`history`; the others hear of the new
    trainer's first record as an update).
    """

    def __init__(
        self, settings: Settings | None = None, *, record_every: int = 10, metrics_every: int = 50
    ) -> None:
        self.settings = settings or Settings()
        self.record_every = record_every
        self.metrics_every = metrics_every
        self.on_update: list[UpdateListener] = []
        self.on_reset: list[ResetListener] = []
        #: Called after a λ change made a new trainer go on from the current weights.
        self.on_objective: list[ResetListener] = []
        #: Steps at which λ changed during this run (the run went on from its weights).
        self.objective_changes: list[int] = []
        self._past: list[Row] = []  # rows of the trainers before the last λ change
        self._skip = 0  # leading rows of the current trainer's history kept in _past
        self._frame: pd.DataFrame | None = None
        self._frame_key: tuple[int, int, int] | None = None
        self.generation = 0
        self.playing = False
        self.error: str | None = None
        self.note: str | None = None
        self.updates = 0
        self._task: asyncio.Task | None = None
        self._pending: list[Row] = []
        self._last_emit = 0.0
        self._chunk = FIRST_CHUNK
        self._nc1_max = math.nan
        self._lock = threading.Lock()
        self._inflight: concurrent.futures.Future | None = None
        self._per_step: float | None = None  # measured seconds per step of this trainer
        self._piece_max = 0.0  # a decaying maximum of the seconds one piece took
        self._unrecorded = False  # the trainer stands inside a record interval, unrecorded
        self.markers: list[tuple[int, str]] = []  # (step, diagnosis code) where it changed
        self._diagnosis: Diagnosis | None = None
        self._diagnosis_step: tuple[int, int] | None = None
        self._diagnosis_time = 0.0
        self.auto_pause = False
        self.collapsed_at: int | None = None
        self.auto_paused_at: int | None = None
        self.projector: probes.CloudProjector | None = None
        self.probe: probes.Probe | None = None
        self._probe_key: tuple[int, int, int] | None = None
        self._probe_time = 0.0
        try:
            self.trainer = self._build()
        except ValueError:
            raise
        except Exception as exc:  # torch raises AssertionError for CUDA without a GPU
            raise ValueError(
                f"could not build the model for these settings: {one_line(exc)}"
            ) from None

    # ------------------------------------------------------------------ trainer
    def _build(self) -> Trainer:
        s = self.settings
        gen = self.generation
        check_device_available(s.config.device)  # e.g. 'cuda' on a CPU-only machine
        with self._lock:
            self._pending = []
        self._nc1_max = math.nan
        self._chunk = FIRST_CHUNK
        self._per_step = None
        self._unrecorded = False
        self.collapsed_at = self.auto_paused_at = None
        self.probe = None
        self._probe_key = None
        # the longest piece so far, first from the budget's work estimate at ~2 GFLOP/s
        cfg = s.config
        # DUFMConfig leaves ints or tuples in its listable fields
        work = dufm_estimate(
            cfg.num_classes,
            cast("int | tuple[int, ...]", cfg.samples_per_class),
            cfg.depth,
            cast("int | tuple[int, ...]", cfg.width),
            cfg.dtype,
        ).work
        self._piece_max = work / 2e9
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # narrow widths: shown in the status
            return Trainer(
                s.config,
                record_every=self.record_every,
                metrics_every=self.metrics_every,
                callbacks=[cast(Callback, lambda tr, rows, gen=gen: self._collect(gen, rows))],
                lr=s.lr,
                optimizer=s.optimizer,
                guard=s.guard,
            )

    def _collect(self, gen: int, rows: list[Row]) -> None:
        with self._lock:  # rows arrive on the worker thread while playing
            if gen != self.generation:
                return  # a stale trainer's piece that was still in flight
            self._pending.extend(rows)
            nc1 = [v for _, _, kind, m, v in rows if m == "nc1" and kind in ("pre", "post")]
            if nc1:
                finite = [v for v in nc1 if math.isfinite(v)]
                self._nc1_max = max(finite) if len(finite) == len(nc1) else math.nan

    # ------------------------------------------------------------------ settings
    def update(self, **changes: Any) -> str:
        """Apply settings changes; returns ``"none"``, ``"continue"`` or ``"reset"``.

        The learning rate, the guard and the speed apply to the running trainer; a change of
        λ (``lambda_H``, ``lambda_W``: :data:`~dnc_interactive.widgets.state.OBJECTIVE_FIELDS`)
        changes the objective and the run continues from its current weights
        (:meth:`change_objective`: L* is recomputed, the history goes on). Everything else
        (K, n_k, L, widths, activation, loss, dtype, seed, ...) needs a fresh model, built
        from its seed; the status line says so. After a divergence a new learning rate or λ
        starts a fresh run. Raises ``ValueError`` with the config's message for an invalid
        value; the settings are then left unchanged.
        """
        old = self.settings
        new = old.replace(**changes)
        changed = old.changed_fields(new)
        self.settings = new
        self.error = None
        if not changed:
            return "none"
        keeps = CONTINUING_FIELDS | OBJECTIVE_FIELDS
        if changed <= keeps and not (self.trainer.diverged and changed - {"guard", "speed"}):
            if changed & OBJECTIVE_FIELDS:
                try:
                    self.change_objective()
                except Exception as exc:
                    self.settings = old
                    raise ValueError(f"could not change the objective: {one_line(exc)}") from None
            tr = self.trainer
            if "lr" in changed:
                tr.set_lr(new.lr)
            if "guard" in changed:
                tr.recipe = dataclasses.replace(tr.recipe, guard=new.guard)
            return "continue"
        try:
            self.reset()
        except Exception as exc:  # torch raises AssertionError for CUDA without a GPU
            self.settings = old
            raise ValueError(
                f"could not build the model for these settings: {one_line(exc)}"
            ) from None
        structural = sorted(changed - keeps)
        if structural and old.config.seed == new.config.seed:
            self.note = (
                f"{', '.join(structural)} changed: a fresh model from seed {new.config.seed}"
                " (K, n_k, L, widths, activation, loss and dtype need a new model; λ, the"
                " learning rate and the speed do not)"
            )
        return "reset"

    def change_objective(self) -> None:
        """Go on with the current weights under the current settings' λ (theory §1.2).

        A new trainer for the new objective starts from a copy of the current matrices
        (momentum buffers zeroed), at the same step; its first record, at this step, carries
        the new L* and gap, so the loss chart's optimum line jumps while the history goes on
        (the earlier rows are kept). If playing, playback continues on the new trainer."""
        self._join()  # the piece in flight ends first: then the weights stand still
        self._emit()  # the rows recorded so far, before the objective changes
        old = self.trainer
        s = self.settings
        model = DUFM(s.config)
        with torch.no_grad():
            for p, q in zip([model.H1, *model.W], [old.model.H1, *old.model.W], strict=True):
                p.data.copy_(q.data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tr = Trainer(
                model,
                record_every=old.record_every,
                metrics_every=old.metrics_every,
                lr=s.lr,
                optimizer=s.optimizer,
                guard=s.guard,
            )
        offset = old.steps
        tr.steps = offset
        first = [(offset, *row[1:]) for row in tr.history.itertuples(index=False, name=None)]
        self._past.extend(self._own_rows(old))
        self._past.extend(first)
        self._skip = len(first)
        self._frame = None
        self.generation += 1
        gen = self.generation
        tr.callbacks.append(cast(Callback, lambda t, rows, gen=gen: self._collect(gen, rows)))
        if not self.on_objective:  # those listeners redraw from the history instead
            with self._lock:
                self._pending.extend(first)
        self._unrecorded = False
        self.collapsed_at = self.auto_paused_at = None
        self.probe = None
        self._probe_key = None
        self.trainer = tr
        self.objective_changes.append(offset)
        self.note = (
            f"λ changed at step {offset}: the run goes on from its current weights"
            f" (L* = {_fmt(tr.optimal_loss)} for the new λ)"
        )
        self._go_on(self.on_objective)

    def _own_rows(self, tr: Trainer) -> list[Row]:
        """The rows of ``tr``'s history that belong to this run (without the first record of
        a trainer that took over after a λ change: that one is kept at its true step)."""
        rows = list(tr.history.itertuples(index=False, name=None))
        return cast("list[Row]", rows[self._skip :])

    def rewind(self) -> None:
        """Start again from exactly the same initial weights as the current run (the same
        settings and seed): the same numbers step for step. A λ changed while playing stays
        at its new value (the run restarts under it)."""
        self.reset()

    def set_settings(self, settings: Settings) -> str:
        """Replace all settings at once (a preset or a state string); resets unless equal."""
        return self.update(**settings.to_dict())

    def reset(self) -> None:
        """A fresh trainer from the current settings (same seed: the same initialisation).

        If playing, playback continues on the new trainer; the old task is cancelled first.
        """
        saved = {name: getattr(self, name) for name in _RUN_STATE}
        self.generation += 1
        try:
            trainer = self._build()
        except Exception:  # e.g. device="cuda" without a GPU: keep the current run
            for name, value in saved.items():
                setattr(self, name, value)
            raise
        self.note = None
        self.markers = []
        self._past, self._skip, self._frame = [], 0, None
        self.objective_changes = []
        self.trainer = trainer
        self.projector = None
        self._go_on(self.on_reset)

    def _go_on(self, listeners: list[ResetListener]) -> None:
        """A new trainer is in place: tell ``listeners``, then play on with it (or hand its
        first rows to the update listeners)."""
        for f in list(listeners):
            f(self)
        if self.playing:
            self._start_task()
        else:
            self._emit(final=True)

    def flush(self) -> None:
        """Hand the rows recorded so far to the listeners now (a final update)."""
        self._emit(final=True)

    def _mark_collapse(self) -> None:
        """The run's first collapse becomes a marker row (``("event", "collapsed")``)."""
        if self.collapsed_at is not None or self.trainer.steps == 0 or not self.collapsed:
            return
        self.collapsed_at = self.trainer.steps
        with self._lock:
            self._pending.append((self.collapsed_at, 0, "event", "collapsed", 1.0))

    def _measure(self, trainer: Trainer | None = None, force: bool = False) -> None:
        """Refresh :attr:`probe` (theory §3.6, §5; the clouds of :attr:`projector`).

        On the worker thread (``trainer`` given) after a piece of a big model, at most every
        :data:`PROBE_SECONDS`; on the event loop's thread between pieces of a small model, or
        with ``force`` (a final update), unless the worker is stepping the model."""
        tr = self.trainer
        if trainer is not None and trainer is not tr:
            return  # a stale trainer's piece, after a reset
        projector = self.projector
        key = (id(tr), tr.steps, id(projector))
        if self.probe is not None and self._probe_key == key:
            return
        if trainer is None:
            busy = self._inflight is not None and not self._inflight.done()
            heavy = self.playing and self._piece_max > YIELD_SECONDS / 2
            if busy or (heavy and self.probe is not None):
                return  # the worker steps (and measures) this model
        if not force and time.perf_counter() - self._probe_time < PROBE_SECONDS:
            return
        self._probe_time = time.perf_counter()
        try:
            result = probes.measure(tr.model, projector, tr.steps)
        except Exception:  # a probe never breaks the page (e.g. non-finite features)
            return
        with self._lock:
            if tr is self.trainer:
                self.probe, self._probe_key = result, key

    def measure(self) -> probes.Probe | None:
        """Measure the probe now (unless the worker is stepping the model) and return it."""
        self._measure(force=True)
        return self.probe

    def _emit(self, final: bool = False) -> None:
        self._track_diagnosis()
        self._measure(force=final)
        self._mark_collapse()
        with self._lock:
            rows, self._pending = self._pending, []
        self._last_emit = time.perf_counter()
        self.updates += 1
        for f in list(self.on_update):
            f(self, rows, final)

    def new_seed(self) -> str:
        """A fresh initialisation: the same settings with the next seed (the run restarts)."""
        return self.update(seed=self.settings.config.seed + 1)

    # ------------------------------------------------------------------ reading
    @property
    def history(self) -> pd.DataFrame:
        """The current run's tidy history (columns step, layer, kind, metric, value), across
        λ changes (:meth:`change_objective`): one run, one history."""
        tr = self.trainer
        if not self._past:
            return tr.history
        key = (id(tr), len(self._past), len(tr.history))
        if self._frame is None or self._frame_key != key:
            rows = self._past + self._own_rows(tr)
            self._frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
            self._frame_key = key
        return self._frame

    @property
    def steps(self) -> int:
        return self.trainer.steps

    def export_history(self, path: str | Path) -> Path:
        """Write the history to ``path`` (.csv, or .parquet which needs pyarrow)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise ValueError(f"path={str(path)!r} is not valid: expected a .csv or .parquet file")
        self._join()  # not while a piece of training is appending rows
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            self.history.to_csv(path, index=False)
        else:
            try:
                self.history.to_parquet(path, index=False)
            except ImportError as exc:
                raise ValueError(
                    f"path={str(path)!r}: writing Parquet needs pyarrow (pip install pyarrow)"
                    f" ({exc})"
                ) from None
        return path

    def close(self) -> None:
        """Stop playing and drop the listeners."""
        self.pause()
        self.on_update.clear()
        self.on_reset.clear()
        with contextlib.suppress(Exception):
            if self._task is not None:
                self._task.cancel()


__all__ = [
    "CHUNK_SECONDS",
    "COLLAPSE_TOL",
    "DIAGNOSIS_SECONDS",
    "FAST_UPDATE_SECONDS",
    "FIRST_CHUNK",
    "HEARTBEAT_SECONDS",
    "PROBE_SECONDS",
    "RECORDS_PER_LEVEL",
    "TICK_SECONDS",
    "YIELD_SECONDS",
    "TrainingSession",
]
