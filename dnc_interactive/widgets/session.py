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

from dnc_interactive import theory
from dnc_interactive.diagnosis import CODES as DIAGNOSIS_CODES
from dnc_interactive.diagnosis import Diagnosis
from dnc_interactive.model import DUFM
from dnc_interactive.training import HISTORY_COLUMNS, Callback, Row, Trainer
from dnc_interactive.validation import check_device_available, dufm_estimate, one_line
from dnc_interactive.widgets import probe as probes
from dnc_interactive.widgets.state import CONTINUING_FIELDS, OBJECTIVE_FIELDS, Settings

#: Seconds between two updates when playing at a fixed speed (10 updates per second).
TICK_SECONDS = 0.1
#: Least seconds between two updates at full speed (about 7 updates per second).
FAST_UPDATE_SECONDS = 0.15
#: Target duration of one training chunk at full speed, between two yields to the event loop.
CHUNK_SECONDS = 0.03
#: Steps of one chunk at full speed, before it adapts to :data:`CHUNK_SECONDS`.
FIRST_CHUNK = 20
#: Records kept per recording level before the recording interval doubles.
RECORDS_PER_LEVEL = 2000
#: Collapse criterion of the status line: |gap| and every layer's NC1 below this.
COLLAPSE_TOL = 1e-3
#: Most seconds of compute in one piece of a play task, between two awaits on the event loop
#: (a piece that holds a metrics record may take longer; it runs on the worker thread).
YIELD_SECONDS = 0.05
#: While playing a big model, the diagnosis is refreshed (on the worker) at most this often.
DIAGNOSIS_SECONDS = 0.5
#: While playing at a fixed speed, the listeners hear of progress inside a long tick (a big
#: model at 200 steps per update) at least this often.
HEARTBEAT_SECONDS = 1.0
#: While playing, the probe (ranks, verdict, feature clouds) is measured at most this often.
PROBE_SECONDS = 0.2

_POOL: concurrent.futures.ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()
_WORKER = threading.local()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """The one worker thread every session's play task trains on (one piece at a time)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dnc-play")
            _quiet_worker_warnings()
            _POOL.submit(_in_worker, torch.get_num_threads(), torch.ones(8).sum)  # start it
        return _POOL


def _quiet_worker_warnings() -> None:
    """Drop RuntimeWarnings raised on the play worker thread (a divergence: the status line
    says it). ``warnings.catch_warnings`` is process-wide, so it cannot be used there; this
    wraps ``warnings.showwarning`` once and passes every other warning through."""
    show = warnings.showwarning
    if getattr(show, "_dnc_play_filter", False):
        return

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if getattr(_WORKER, "quiet", False) and issubclass(category, RuntimeWarning):
            return None
        return show(message, category, filename, lineno, file, line)

    showwarning._dnc_play_filter = True  # type: ignore[attr-defined]
    warnings.showwarning = showwarning


def _in_worker(threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    # OpenMP / MKL thread counts are per calling thread: without this the worker's matmuls
    # use every core and spin-wait for the busy one (x100 slower on a loaded 2-core kernel),
    # and a different count could change the sums' rounding
    torch.set_num_threads(threads)
    _WORKER.quiet = True
    try:
        return fn(*args)
    finally:
        _WORKER.quiet = False


UpdateListener = Callable[["TrainingSession", list[Row], bool], Any]
ResetListener = Callable[["TrainingSession"], Any]


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.{digits}e}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.{digits + 3}f}"


class TrainingSession:
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

    def _advance(
        self,
        n: int,
        align: bool = False,
        limit: int | None = None,
        seconds: float | None = None,
        trainer: Trainer | None = None,
        gen: int | None = None,
    ) -> None:
        """``n`` training steps, with the divergence warning turned into the status line.

        Long runs record more coarsely: once the run reaches RECORDS_PER_LEVEL records at the
        current interval, ``record_every`` and ``metrics_every`` double (exactly at that step).
        The history then grows like log(steps), not like steps.

        The trainer checkpoints at the end of every ``step`` call, so with ``align`` the call
        ends on the record grid (a multiple of the current ``record_every``, at most ``limit``):
        then the records and the trajectory do not depend on how playback chunks the steps.

        With ``seconds`` (the play task's pieces, on the worker thread) the call returns once
        about that much compute is spent, possibly before the ``n`` steps: each step() call is
        sized from the measured time per step, and when one record interval does not fit it
        advances inside the interval without a checkpoint (see :meth:`_piece`).
        """
        tr = trainer or self.trainer
        target = tr.steps + n

        def aligned(t: int) -> int:
            if not align:
                return t
            every = tr.record_every
            t = -(-t // every) * every
            return t if limit is None else min(t, limit)

        target = aligned(target)
        quiet = (
            contextlib.nullcontext()
            if getattr(_WORKER, "quiet", False)
            else warnings.catch_warnings()
        )
        t0 = time.perf_counter()
        with quiet:
            if not getattr(_WORKER, "quiet", False):
                warnings.simplefilter("ignore", RuntimeWarning)
            while tr.steps < target and not tr.diverged:
                switch = RECORDS_PER_LEVEL * tr.record_every
                stop = min(target, switch) if tr.steps < switch else target
                count = stop - tr.steps
                if seconds is not None:
                    left = seconds - (time.perf_counter() - t0)
                    if left <= 0:
                        break
                    count = self._fit(tr, count, left, stop)
                self._piece(tr, count, stop)
                if tr.steps == switch and tr.metrics_every:
                    tr.record_every *= 2
                    tr.metrics_every *= 2
                    target = aligned(target)
        if tr.diverged and (gen is None or gen == self.generation):
            self.playing = False

    def _fit(self, tr: Trainer, count: int, left: float, stop: int) -> int:
        """Steps of the next step() call that fit in ``left`` seconds: all ``count`` if they
        fit, else up to a record-grid point, else (one interval is too long) what fits."""
        per = self._per_step
        if per is None:
            return 1  # measure one step first
        fit = max(1, int(left / per))
        if fit >= count:
            return count
        every = tr.record_every
        to_grid = every - tr.steps % every
        if fit >= to_grid:
            return to_grid + (fit - to_grid) // every * every
        return fit

    def _piece(self, tr: Trainer, count: int, stop: int) -> None:
        """``count`` steps, timed. Through ``Trainer.step`` (a checkpoint at its end) when they
        end on the record grid or at ``stop``; else they end inside a record interval and go
        through the trainer's inner loop, without a checkpoint, exactly as the steps inside
        an interval of one long step() call (so the numbers do not depend on the split)."""
        t0 = time.perf_counter()
        end = tr.steps + count
        inner = getattr(tr, "_advance", None)
        if end == stop or end % tr.record_every == 0 or inner is None:
            tr.step(count)
            unrecorded = False
        else:
            flush = torch.set_flush_denormal(True)  # as Trainer.step: subnormals are slow
            try:
                inner(count)
            finally:
                if flush:
                    torch.set_flush_denormal(False)
            tr.seconds += time.perf_counter() - t0
            unrecorded = True
        if tr is self.trainer:  # not a stale trainer's piece finishing after a reset
            self._unrecorded = unrecorded
            took = time.perf_counter() - t0
            per = took / max(count, 1)
            old = self._per_step
            # quick to fall, slow to rise: one preempted piece does not shrink the next ones
            self._per_step = per if old is None or per < old else 0.8 * old + 0.2 * per
            self._piece_max = max(took, 0.95 * self._piece_max)

    def _record_now(self) -> None:
        """After a pause inside a record interval: record the loss at the current step (what
        a step() call ending here would have done), so the status line is current."""
        tr = self.trainer
        if not self._unrecorded or tr.diverged:
            return
        self._unrecorded = False
        checkpoint = getattr(tr, "_checkpoint", None)
        if checkpoint is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                checkpoint()

    def _grid(self, n: int) -> int:
        """``n`` rounded to a positive multiple of the recording interval."""
        every = self.trainer.record_every
        return max(1, round(n / every)) * every

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
        for f in list(self.on_objective):
            f(self)
        if self.playing:
            self._start_task()
        else:
            self._emit(final=True)

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
        saved = (
            self.generation,
            self._pending,
            self._nc1_max,
            self._chunk,
            self._per_step,
            self._unrecorded,
        )
        self.generation += 1
        try:
            trainer = self._build()
        except Exception:  # e.g. device="cuda" without a GPU: keep the current run
            (
                self.generation,
                self._pending,
                self._nc1_max,
                self._chunk,
                self._per_step,
                self._unrecorded,
            ) = saved
            raise
        self.note = None
        self.markers = []
        self._past, self._skip, self._frame = [], 0, None
        self.objective_changes = []
        self.trainer = trainer
        self.projector = None
        for f in list(self.on_reset):
            f(self)
        if self.playing:
            self._start_task()
        else:
            self._emit(final=True)

    # ------------------------------------------------------------------ playback
    @property
    def task(self) -> asyncio.Task | None:
        """The current play task (None before the first play)."""
        return self._task

    def play(self) -> asyncio.Task | None:
        """Start playing as a task on the running asyncio loop (the kernel's, in Jupyter).

        Returns the task, or None when nothing can be played (diverged run: reset first).
        Raises ``RuntimeError`` outside an event loop: use :meth:`run` in scripts.
        """
        if self.trainer.diverged:
            self.note = "the run diverged: press reset (or lower the learning rate) to start over"
            self._emit(final=True)
            return None
        if self.playing and self._task is not None and not self._task.done():
            return self._task
        self.playing = True
        self.error = None
        return self._start_task()

    def _start_task(self) -> asyncio.Task:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.playing = False
            raise RuntimeError(
                "play() needs a running asyncio event loop (a Jupyter kernel has one);"
                " in a script call run(steps) instead"
            ) from None
        previous = self._task
        if previous is not None and not previous.done():
            previous.cancel()
        self._task = loop.create_task(self._loop(self.generation, previous))
        return self._task

    def pause(self) -> None:
        """Stop playing. Answers at once (the event loop is never blocked by training); the
        piece of training in flight (at most ~50 ms of compute) ends first, and the play
        task's last act is a final update to the listeners."""
        was = self.playing
        self.playing = False
        if self._task is not None and not self._task.done():
            self._task.cancel()
        elif was:
            self._emit(final=True)

    async def wait(self) -> None:
        """Wait until the current play task has finished (after a pause or a divergence)."""
        if self._task is not None:
            await asyncio.wait([self._task])

    async def _compute(self, tr: Trainer, gen: int, n: int, align: bool) -> None:
        """About :data:`YIELD_SECONDS` of training, then back to the event loop.

        A small model (every piece, checkpoint and metrics record included, well under
        :data:`YIELD_SECONDS`) trains right here between two awaits; a bigger one on the
        worker thread, awaited, so that the event loop keeps handling messages even while one
        long piece (a metrics record of the largest model) computes."""
        if self._piece_max <= YIELD_SECONDS / 2:
            self._advance(n, align, None, YIELD_SECONDS, tr, gen)
            await asyncio.sleep(0)
            return
        threads = torch.get_num_threads()
        cf = _pool().submit(_in_worker, threads, self._piece_and_diagnosis, n, align, tr, gen)
        self._inflight = cf
        try:
            await asyncio.wrap_future(cf)
        except asyncio.CancelledError:
            if not cf.done():  # running: the task ends after its piece, never beside it
                with contextlib.suppress(Exception):
                    await asyncio.wait([asyncio.wrap_future(cf)])
            raise

    def _piece_and_diagnosis(self, n: int, align: bool, tr: Trainer, gen: int) -> None:
        """On the worker thread: one piece of training, then the diagnosis of the new state."""
        self._advance(n, align, None, YIELD_SECONDS, tr, gen)
        if gen == self.generation:
            self._track_diagnosis(tr)
            self._measure(tr)

    def _join(self) -> None:
        """Block until the play task's piece in flight (if any) has finished."""
        cf = self._inflight
        if cf is not None and not cf.done():
            with contextlib.suppress(Exception):
                cf.result()

    async def _loop(self, gen: int, previous: asyncio.Task | None) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # never two trainers stepping
        tr = self.trainer
        try:
            while self.playing and gen == self.generation and not tr.diverged:
                speed = self.settings.speed
                t0 = time.perf_counter()
                if speed:
                    # one tick of `speed` steps, in pieces of at most YIELD_SECONDS each
                    target = tr.steps + speed
                    while tr.steps < target and not tr.diverged:
                        await self._compute(tr, gen, target - tr.steps, False)
                        if time.perf_counter() - self._last_emit >= HEARTBEAT_SECONDS:
                            self._emit()
                    self._emit()
                    if self._auto_pause_now():
                        break
                    await asyncio.sleep(max(0.0, TICK_SECONDS - (time.perf_counter() - t0)))
                else:
                    # Chunks on the record grid: the same trajectory at every speed that is a
                    # multiple of record_every (the trainer checkpoints at the end of a call).
                    every = tr.record_every
                    await self._compute(tr, gen, max(1, round(self._chunk / every)) * every, True)
                    took = time.perf_counter() - t0
                    scale = min(2.0, max(0.5, CHUNK_SECONDS / max(took, 1e-6)))
                    self._chunk = max(1, min(5000, int(self._chunk * scale)))
                    if time.perf_counter() - self._last_emit >= FAST_UPDATE_SECONDS:
                        self._emit()
                        if self._auto_pause_now():
                            break
                    await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug or a device error: report it, keep the controls alive
            self.playing = False
            self.error = f"training stopped by an error: {type(exc).__name__}: {one_line(exc)}"
        finally:
            if gen == self.generation:
                if tr.diverged:
                    self.playing = False
                if not self.playing:
                    self._record_now()
                    self._emit(final=True)

    def step(self, n: int | None = None) -> None:
        """Advance ``n`` steps now (default: one update's worth at the current speed)."""
        if n is None:
            n = self.settings.speed or 10 * self.trainer.record_every
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
            raise ValueError(f"n={n!r} is not valid: expected an int >= 1")
        if self.playing:
            self.pause()
        self._join()
        self._advance(n)
        self._emit(final=True)

    def run(self, steps: int, *, until_collapsed: bool = False) -> TrainingSession:
        """Blocking: train ``steps`` more steps (stops early on divergence, and with
        ``until_collapsed`` as soon as the status line says "collapsed: yes"), updating the
        listeners as it goes. For scripts, tests and notebooks run top to bottom."""
        if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 0):
            raise ValueError(f"steps={steps!r} is not valid: expected an int >= 0")
        if self.playing:
            self.pause()
        self._join()
        target = self.trainer.steps + steps
        while self.trainer.steps < target and not self.trainer.diverged:
            if until_collapsed and self.collapsed:
                break
            n = min(target - self.trainer.steps, self._grid(max(self._chunk, 50)))
            self._advance(n, align=True, limit=target)
            if time.perf_counter() - self._last_emit >= FAST_UPDATE_SECONDS:
                self._emit()
        self._emit(final=True)
        return self

    def flush(self) -> None:
        """Hand the rows recorded so far to the listeners now (a final update)."""
        self._emit(final=True)

    def _auto_pause_now(self) -> bool:
        """With ``auto_pause``: stop playing at the run's first collapse (after its update)."""
        if not (self.auto_pause and self.playing) or self.collapsed_at is None:
            return False
        if self.auto_paused_at is not None:
            return False  # once per run: Play after an auto-pause goes on
        self.auto_paused_at = self.collapsed_at
        self.playing = False
        return True

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

    def _track_diagnosis(self, trainer: Trainer | None = None) -> None:
        """Re-diagnose after new steps; a change of code becomes a marker (an "event" row).

        A diagnosis reads the whole model (~0.1 s at the largest one): while playing a big
        model it is made on the worker thread after each piece (``trainer`` given), and the
        event loop's thread keeps the latest one while a piece is in flight, so neither a
        Pause click nor the status line waits for it (nor reads a model being stepped)."""
        tr = self.trainer
        if trainer is not None and trainer is not tr:
            return  # a stale trainer's piece, after a reset
        if self._diagnosis is not None and self._diagnosis_step == (id(tr), tr.steps):
            return
        cached = self._diagnosis_step is not None and self._diagnosis_step[0] == id(tr)
        if cached and trainer is None:
            busy = self._inflight is not None and not self._inflight.done()
            heavy = self.playing and self._piece_max > YIELD_SECONDS / 2
            if busy or heavy:
                return  # the worker steps (and diagnoses) this model: the latest one stands
        if cached and trainer is not None:
            if time.perf_counter() - self._diagnosis_time < DIAGNOSIS_SECONDS:
                return  # on the worker: at most every DIAGNOSIS_SECONDS of play
        self._diagnosis_time = time.perf_counter()
        try:
            d = tr.diagnosis()
        except Exception:  # a diagnosis never breaks the page
            return
        previous = self._diagnosis.code if self._diagnosis is not None else None
        fresh = self._diagnosis_step is None or self._diagnosis_step[0] != id(tr)
        self._diagnosis, self._diagnosis_step = d, (id(tr), tr.steps)
        if not fresh and d.code != previous and d.code in DIAGNOSIS_CODES:
            self.markers.append((tr.steps, d.code))
            with self._lock:
                self._pending.append(
                    (tr.steps, 0, "event", "diagnosis", float(DIAGNOSIS_CODES.index(d.code)))
                )

    @property
    def diagnosis(self) -> Diagnosis:
        """Why the run is (or is not) at the optimum (:mod:`dnc_interactive.diagnosis`)."""
        self._track_diagnosis()
        if self._diagnosis is None:
            return self.trainer.diagnosis()
        return self._diagnosis

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

    @property
    def max_nc1(self) -> float:
        """The largest NC1 over all layers (pre and post) at the latest metrics record."""
        return self._nc1_max

    @property
    def collapsed(self) -> bool:
        """|gap| < 1e-3 (when L* is known) and NC1 < 1e-3 in every layer."""
        tr = self.trainer
        nc1_ok = math.isfinite(self._nc1_max) and self._nc1_max < COLLAPSE_TOL
        if not math.isfinite(tr.optimal_loss):
            return nc1_ok
        return nc1_ok and math.isfinite(tr.gap) and abs(tr.gap) < COLLAPSE_TOL

    @property
    def at_zero_solution(self) -> bool:
        """Theory says every class's optimal output is 0 and the loss is within 1e-3 of 1/2."""
        cfg = self.settings.config
        if cfg.loss != "mse" or any(q > 0 for q in theory.optimal_q(cfg)):
            return False
        return abs(self.trainer.loss - 0.5) < 1e-3 * 0.5

    def status_parts(self) -> dict[str, str]:
        """The status line in pieces: state, numbers, verdict and notes (plain text)."""
        tr = self.trainer
        cfg = self.settings.config
        if tr.diverged:
            state = "diverged"
        elif self.playing:
            state = "playing"
        elif tr.steps == 0:
            state = "ready"
        else:
            state = "paused"
        numbers = f"step {tr.steps} · loss {_fmt(tr.loss)}"
        if math.isfinite(tr.optimal_loss):
            numbers += f" · L* {_fmt(tr.optimal_loss)} · gap {_fmt(tr.gap, 2)}"
        numbers += f" · max NC1 {_fmt(self._nc1_max, 2)}"
        start = tr.current_start
        if tr.attempt:
            numbers += (
                f" · fallback start {tr.attempt} ({start.init}; the first start stalled and a race"
                " of fallback starts took over)"
            )
        if tr.lr != start.lr:
            numbers += f" · lr {tr.lr:g} (halved by the guard)"
        if self.at_zero_solution:
            verdict = "zero solution: features and outputs vanished (λ past the threshold)"
        elif self.collapsed:
            verdict = "collapsed: yes (gap and NC1 < 1e-3)"
        elif math.isfinite(tr.gap) and tr.gap < -COLLAPSE_TOL:
            verdict = "below L*: a lower-loss (low-rank) solution than DNC"
        else:
            verdict = "collapsed: not yet"
            d = self.diagnosis
            if d.code not in ("converging", "at_optimum", "below_optimum") and tr.steps > 0:
                verdict += f" — {d.line()}"
        solution = self.solution_parts()
        notes = []
        if self.auto_paused_at is not None and not self.playing:
            notes.append(f"auto-paused at step {self.auto_paused_at}: collapsed")
        if self.error:
            notes.append(self.error)
        if tr.diverged:
            notes.append(tr.message)
        if self.note:
            notes.append(self.note)
        message = theory.threshold_message(cfg)
        if message and theory.near_threshold(cfg):
            notes.append("near a threshold: " + message)
        elif message:
            notes.append(message)
        narrow = [d for d in cfg.widths[1:] if d < cfg.K] if cfg.activation == "relu" else []
        if narrow:
            notes.append(f"width {narrow[0]} < K = {cfg.K}: the DNC optimum may be unreachable")
        return {
            "state": state,
            "numbers": numbers,
            "verdict": verdict,
            "solution": solution,
            "notes": " ".join(notes),
        }

    @property
    def solution(self) -> str:
        """The solution type now (theory §5): "DNC", "low-rank (rank r)", "in between" or
        "zero" (:func:`~dnc_interactive.widgets.probe.solution_type`); "" before a probe."""
        p = self.probe
        if p is None:
            return ""
        tr = self.trainer
        gap = tr.gap if math.isfinite(tr.optimal_loss) else math.nan
        return probes.solution_type(p.verdict, gap, self._nc1_max, zero=self.at_zero_solution)

    def solution_parts(self) -> str:
        """'solution: low-rank (rank 6) · ranks M̃_l 10 6 6 6 · M_l 10 10 10 10' (from the
        latest probe, at its step; "" before the first)."""
        p = self.probe
        if p is None:
            return ""
        return f"solution: {self.solution} · {probes.rank_text(p.ranks_pre, p.ranks_post)}"

    @property
    def status(self) -> str:
        """The status line as plain text."""
        p = self.status_parts()
        text = f"{p['state']} · {p['numbers']} · {p['verdict']}"
        if p["solution"]:
            text += f" · {p['solution']}"
        return f"{text}. {p['notes']}" if p["notes"] else text

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


__all__ = ["COLLAPSE_TOL", "PROBE_SECONDS", "YIELD_SECONDS", "TrainingSession"]
