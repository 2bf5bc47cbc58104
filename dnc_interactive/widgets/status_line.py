"""The status line of a :class:`~dnc_interactive.widgets.session.TrainingSession`: state,
step, loss against L*, the gap, the largest NC1, the verdict (collapsed, below L*, the zero
solution, the diagnosis, tracked as the run goes with a marker where it changes), the
solution type (theory §5) and the notes.

:class:`StatusLine` is a mixin of the session: it only reads the session's trainer, probe
and settings.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
import time

from dnc_interactive import theory
from dnc_interactive.diagnosis import CODES as DIAGNOSIS_CODES
from dnc_interactive.diagnosis import Diagnosis
from dnc_interactive.training import Row, Trainer
from dnc_interactive.widgets import probe as probes
from dnc_interactive.widgets.playback import YIELD_SECONDS
from dnc_interactive.widgets.state import Settings

#: Collapse criterion of the status line: |gap| and every layer's NC1 below this.
COLLAPSE_TOL = 1e-3
#: While playing a big model, the diagnosis is refreshed (on the worker) at most this often.
DIAGNOSIS_SECONDS = 0.5


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    return f"{x:.{digits}e}" if abs(x) < 1e-3 or abs(x) >= 1e4 else f"{x:.{digits + 3}f}"


class StatusLine:
    """What the status line says about a session (a mixin of the session)."""

    settings: Settings
    trainer: Trainer
    playing: bool
    error: str | None
    note: str | None
    auto_paused_at: int | None
    probe: probes.Probe | None
    _nc1_max: float

    markers: list[tuple[int, str]]
    _diagnosis: Diagnosis | None
    _diagnosis_step: tuple[int, int] | None
    _diagnosis_time: float
    _inflight: concurrent.futures.Future | None
    _piece_max: float
    _lock: threading.Lock
    _pending: list[Row]

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


__all__ = ["COLLAPSE_TOL", "DIAGNOSIS_SECONDS", "StatusLine"]
