"""The play loop of a :class:`~dnc_interactive.widgets.session.TrainingSession`: training
as one asyncio task in pieces of at most :data:`YIELD_SECONDS` of compute, the blocking
``step`` / ``run`` paths, and the record grid that keeps the numbers independent of how the
steps are chunked (see the session's module docstring for the concurrency rules).

:class:`Playback` is a mixin: the session holds the trainer, the settings and the listeners;
this class only advances them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
import warnings
from typing import TYPE_CHECKING, TypeVar

import torch

from dnc_interactive.training import Trainer
from dnc_interactive.validation import one_line
from dnc_interactive.widgets.state import Settings
from dnc_interactive.widgets.worker import _WORKER, _in_worker, _pool

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
#: Most seconds of compute in one piece of a play task, between two awaits on the event loop
#: (a piece that holds a metrics record may take longer; it runs on the worker thread).
YIELD_SECONDS = 0.05
#: While playing at a fixed speed, the listeners hear of progress inside a long tick (a big
#: model at 200 steps per update) at least this often.
HEARTBEAT_SECONDS = 1.0

_S = TypeVar("_S", bound="Playback")


class Playback:
    """Play, pause, step and run a session's trainer (a mixin of the session)."""

    settings: Settings
    trainer: Trainer
    generation: int
    playing: bool
    error: str | None
    note: str | None
    auto_pause: bool
    collapsed_at: int | None
    auto_paused_at: int | None
    _task: asyncio.Task | None
    _inflight: concurrent.futures.Future | None
    _chunk: int
    _per_step: float | None
    _piece_max: float
    _unrecorded: bool
    _last_emit: float

    if TYPE_CHECKING:  # provided by the session

        def _emit(self, final: bool = False) -> None: ...
        def _track_diagnosis(self, trainer: Trainer | None = None) -> None: ...
        def _measure(self, trainer: Trainer | None = None, force: bool = False) -> None: ...
        @property
        def collapsed(self) -> bool: ...

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

    def run(self: _S, steps: int, *, until_collapsed: bool = False) -> _S:
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

    def _auto_pause_now(self) -> bool:
        """With ``auto_pause``: stop playing at the run's first collapse (after its update)."""
        if not (self.auto_pause and self.playing) or self.collapsed_at is None:
            return False
        if self.auto_paused_at is not None:
            return False  # once per run: Play after an auto-pause goes on
        self.auto_paused_at = self.collapsed_at
        self.playing = False
        return True


__all__ = [
    "CHUNK_SECONDS",
    "FAST_UPDATE_SECONDS",
    "FIRST_CHUNK",
    "HEARTBEAT_SECONDS",
    "RECORDS_PER_LEVEL",
    "TICK_SECONDS",
    "YIELD_SECONDS",
    "Playback",
]
