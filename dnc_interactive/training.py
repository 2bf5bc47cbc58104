"""Full-batch gradient descent on the L-DUFM objective (theory §1.2, §4.1, §8).

:class:`Trainer` advances a :class:`~dnc_interactive.model.DUFM` in chunks (``step(n)``) or to a
stop condition (``run``), records a tidy history (one row per step x layer x metric, see
:data:`HISTORY_COLUMNS`) with the loss terms next to the theoretical optimum L* of theory §2.2 /
§6, calls user callbacks every ``record_every`` steps, and says why a run is not at the optimum
(:meth:`Trainer.diagnosis`, see :mod:`dnc_interactive.diagnosis`).

The default recipe ("robust", theory §8; :mod:`dnc_interactive.recipes`) is heavy-ball
gradient descent on the paper's loss (no change to the objective): a fast first start from the
config's random initialisation and, if it stalls, a race of fallback starts trained side by side
in one batch (:class:`~dnc_interactive.optim.Race`); the model always holds the race's leader
(the lowest loss), and at the end of :meth:`Trainer.run` the lowest-loss state over all starts
is kept. ``Recipe.named("fast")`` is the first start alone; ``Recipe.named("paper")`` is the
paper's plain gradient descent (momentum 0, constant learning rate 0.1, no restarts).
A guard restores the last finite state and halves the learning rate if the loss becomes NaN/inf;
with ``guard=False`` (or once ``max_retries`` halvings are used up) the run stops itself with
``status == "diverged"``, a message, and its history up to the last finite record.

The update rules, the divergence guard, the momentum boost and the check grid live once, in the
batch-aware core :class:`~dnc_interactive.optim.BatchedTrainer`; a Trainer is its B = 1 case (the
model's parameters are views of the core's batch) plus the history, the stop conditions, the
restarts and the diagnosis. Gradients come from the hand-written batched backward pass, with no
autograd graph: about 2x the steps per second of an ``nn.Parameter`` + ``torch.optim.SGD`` +
autograd loop (``benchmarks/bench_trainer.py``).
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from dnc_interactive import diagnosis as _diagnosis
from dnc_interactive import metrics, theory
from dnc_interactive import schema as _schema
from dnc_interactive.config import DUFMConfig
from dnc_interactive.history import RecordedHistory, Row, lbfgs_polish, loss_rows
from dnc_interactive.model import DUFM
from dnc_interactive.optim import BatchedTrainer, relative_gap
from dnc_interactive.race import Race, stalled
from dnc_interactive.recipes import (
    FALLBACK_STARTS,
    OPTIMIZERS,
    RECIPES,
    RULES,
    SMALL_START,
    Recipe,
    Start,
    structured_start,
)

__all__ = [
    "FALLBACK_STARTS",
    "HISTORY_COLUMNS",
    "OPTIMIZERS",
    "RECIPES",
    "RULES",
    "SMALL_START",
    "STATUSES",
    "RecordedHistory",
    "Recipe",
    "Start",
    "Trainer",
    "relative_gap",
    "structured_start",
    "train",
]

#: The columns of the tidy history (:data:`dnc_interactive.schema.HISTORY_COLUMNS`).
HISTORY_COLUMNS = _schema.HISTORY_COLUMNS
#: The statuses a Trainer can be in (:data:`dnc_interactive.schema.TRAINER_STATUSES`).
STATUSES = _schema.TRAINER_STATUSES

Callback = Callable[["Trainer", list[Row]], Any]


class Trainer(RecordedHistory):
    """Gradient descent on one DUFM, with a tidy history.

    Args:
        model: a :class:`DUFM`, or a :class:`DUFMConfig` (a model is built from it).
        recipe: optimiser settings; keyword arguments (``lr=...``, ``optimizer=...``) override
            fields of the default :class:`Recipe`.
        record_every: record the loss terms every this many steps (>= 1).
        metrics_every: record the per-layer collapse metrics of theory §3 every this many steps
            (a multiple of ``record_every``; 0 disables them).
        callbacks: functions ``f(trainer, new_rows)`` called after each record.
        train_H1: False holds the features H1 fixed (a head trained on given features, the
            real-network recovery test): only W_1..W_L are updated, the regulariser of H1
            stays in the loss, and no fallback starts are raced (they would re-draw H1).

    The history (``trainer.history``) has columns ``step, layer, kind, metric, value``:
    layer 0 / kind "model" holds loss, fit, reg, reg_H, optimal_loss, relative_gap and lr;
    layers 1..L (kinds "pre", "post", "weight") and L+1 ("output") hold the metrics of
    :func:`dnc_interactive.metrics.layer_metric_rows`.
    """

    def __init__(
        self,
        model: DUFM | DUFMConfig | None = None,
        recipe: Recipe | None = None,
        *,
        record_every: int = 10,
        metrics_every: int = 50,
        callbacks: Sequence[Callback] = (),
        train_H1: bool = True,
        **recipe_overrides: Any,
    ) -> None:
        if model is None or isinstance(model, DUFMConfig):
            model = DUFM(model)
        if not isinstance(model, DUFM):
            raise ValueError(f"model={model!r} is not valid: expected a DUFM or a DUFMConfig")
        if not (isinstance(record_every, int) and record_every >= 1):
            raise ValueError(f"record_every={record_every!r} is not valid: expected an int >= 1")
        if not (isinstance(metrics_every, int) and metrics_every >= 0):
            raise ValueError(f"metrics_every={metrics_every!r} is not valid: expected an int >= 0")
        if metrics_every and metrics_every % record_every:
            raise ValueError(
                f"metrics_every={metrics_every} is not valid: expected a multiple of"
                f" record_every={record_every} (or 0)"
            )
        recipe = recipe or Recipe()
        if recipe_overrides:
            fields = {**recipe.__dict__, **recipe_overrides}
            unknown = sorted(set(recipe_overrides) - set(recipe.__dict__))
            if unknown:
                raise ValueError(f"unknown Trainer option(s) {unknown}")
            recipe = Recipe(**fields)
        self.model = model
        self.config: DUFMConfig = model.config
        self.recipe = recipe
        self.record_every = record_every
        self.metrics_every = metrics_every
        self.callbacks: list[Callback] = list(callbacks)
        optimum = theory.optimum(self.config)  # the closed form, once per config (cached)
        self.optimal_loss: float = optimum.loss
        self.near_threshold: bool = optimum.near_threshold
        self._trivial_optimum = all(q == 0.0 for q in optimum.q)
        self.train_H1 = bool(train_H1)
        self.steps = 0
        self._start: Start = recipe.first_start()
        self.attempt = 0  # index into recipe.starts() of the start being trained
        self.lr = float(recipe.lr)
        self.momentum = float(recipe.momentum)
        self.status = "ready"
        self.message = ""
        self.seconds = 0.0
        self.retries = 0
        self.attempt_changed = False
        self._init_history()
        # the optimisation core, B = 1: the model's parameters become views of its batch
        self._core = BatchedTrainer(
            [self.config], [recipe], record_every=record_every, models=[model], train_H1=train_H1
        )
        for param, batch in zip([model.H1, *model.W], self._core.params, strict=True):
            param.data = batch[0]
        self._params = [model.H1.data, *[W.data for W in model.W]]
        self._losses: list[float] = []  # loss at every on-grid record of the current start
        self._attempt_step = 0  # step at which the current start began
        self._best: tuple[float, list[torch.Tensor], int] | None = None  # (loss, params, attempt)
        self._race: Race | None = None  # the fallback race, once the first start stalled
        self._record(with_metrics=bool(metrics_every))
        self._losses.append(self._last["loss"])

    # ------------------------------------------------------------------ public API
    @property
    def done(self) -> bool:
        """True once a stop condition ended the run (converged, plateau, diverged, ...)."""
        return self.status not in ("ready", "running", "stopped")

    @property
    def current_start(self) -> Start:
        """The start being trained (``recipe.starts()[attempt]``); its lr before any halving."""
        return self._start

    def set_lr(self, lr: float) -> None:
        """Change the learning rate; the run continues from its current state."""
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr={lr!r} is not valid: expected a finite float > 0")
        self.lr = float(lr)
        self._start = dataclasses.replace(self._start, lr=self.lr)
        (self._race.bt if self._race is not None else self._core).set_lr(self.lr)

    def step(self, n: int = 1) -> Trainer:
        """Advance ``n`` gradient steps (recording and checking every ``record_every``)."""
        if not (isinstance(n, int) and n >= 0):
            raise ValueError(f"n={n!r} is not valid: expected an int >= 0")
        if self.diverged:
            return self
        self.status = "running"
        self._core._cache = None  # the model may have been changed since the last check
        t0 = time.perf_counter()
        # weights decaying towards 0 (the trivial solution, a collapsed minority class) turn
        # into subnormal floats, which are ~100x slower on CPUs: flush them to zero while stepping
        flush = torch.set_flush_denormal(True)
        try:
            remaining = n
            while remaining > 0 and not self.diverged:
                chunk = min(remaining, self.record_every - self.steps % self.record_every)
                self._advance(chunk)
                remaining -= chunk
                if self.steps % self.record_every == 0 or remaining == 0:
                    self._checkpoint()
        finally:
            if flush:
                torch.set_flush_denormal(False)
            self.seconds += time.perf_counter() - t0
        if self.status == "running":
            self.status = "stopped"
        return self

    def run(
        self,
        steps: int | None = None,
        *,
        tol: float | None = None,
        max_steps: int = 20_000,
        plateau: int | None = None,
        plateau_rtol: float = 1e-9,
    ) -> Trainer:
        """Train until a stop condition holds.

        Args:
            steps: run exactly this many more steps (unless the run diverges).
            tol: stop once the relative gap to L* is below ``tol`` and every layer's NC1
                (pre and post) is below ``tol`` (NC1 alone when L* is undefined, e.g. CE).
            max_steps: upper bound on the total number of steps when ``steps`` is None.
            plateau: stop when the loss improved by less than ``plateau_rtol`` (relative)
                over the last ``plateau`` records.
        """
        if steps is not None:
            self.step(steps)
            if not self.diverged:
                self.status = "max_steps"
                self.keep_best()
            return self
        if tol is not None and not (isinstance(tol, (int, float)) and tol > 0):
            raise ValueError(f"tol={tol!r} is not valid: expected a float > 0")
        if not (isinstance(max_steps, int) and max_steps >= 1):
            raise ValueError(f"max_steps={max_steps!r} is not valid: expected an int >= 1")
        losses: list[float] = []
        while not self.diverged:
            if tol is not None and self.converged(tol):
                self.status = "converged"
                self.message = f"converged at step {self.steps} (tol {tol:g})"
                break
            if self.steps >= max_steps:
                self.status = "max_steps"
                self.message = f"stopped at max_steps={max_steps}"
                break
            self.step(min(self.record_every, max_steps - self.steps))
            if self.attempt_changed:
                self.attempt_changed = False
                losses.clear()
                continue
            if plateau:
                losses.append(self.loss)
                if len(losses) > plateau:
                    old = losses[-plateau - 1]
                    if abs(old - self.loss) <= plateau_rtol * abs(old):
                        self.status = "plateau"
                        self.message = f"loss plateaued at step {self.steps}"
                        break
        if self.status != "converged":
            self.keep_best()
        return self

    def keep_best(self) -> Trainer:
        """Restore the lowest-loss state over all starts tried so far (if better than now)."""
        if self._best is None or self.diverged or not self._best[0] < self.loss:
            return self
        loss, params, attempt = self._best
        self._resume_single(params, attempt)
        self._append([(self.steps, 0, "model", "restart", float(attempt))])
        self.attempt = attempt
        self._record(with_metrics=bool(self.metrics_every))
        self.message = (self.message + f"; kept start {attempt} (lowest loss)").lstrip("; ")
        return self

    def diagnosis(self, tol: float = 1e-4) -> _diagnosis.Diagnosis:
        """Why the run is (or is not) at the theorem's optimum now (:mod:`~.diagnosis`)."""
        losses = [*self._losses]
        if not losses or losses[-1] != self.loss:
            losses.append(self.loss)
        return _diagnosis.diagnose(
            self.model,
            losses,
            optimal_loss=self.optimal_loss,
            diverged=self.diverged,
            tol=tol,
            window=max(1, self.recipe.stall_steps // self.record_every),
        )

    def converged(self, tol: float) -> bool:
        """Relative gap below ``tol`` (if L* is defined) and every layer collapsed.

        "Collapsed" is :meth:`~dnc_interactive.metrics.NC1Details.collapsed`: NC1 below ``tol``
        with nothing hidden by its pseudo-inverse cut-off and every pair of class means apart,
        for every layer, pre- and post-activation (theory §3.2) — never a cut-off that hides
        classes whose means have not separated. When the optimum is the trivial solution
        (every q*_k = 0, theory §2.2) the features shrink to 0 and NC1 is 0/0: the gap alone
        decides.
        """
        gap = self.gap
        if math.isfinite(self.optimal_loss) and not (math.isfinite(gap) and abs(gap) < tol):
            if not (self.optimal_loss == 0 and self.loss < tol):
                return False
        if self._trivial_optimum:
            return True
        with torch.no_grad():
            details = metrics.nc1_layer_details(self.model)
        return all(d.collapsed(tol) for d in details.values())

    def max_nc1(self) -> float:
        """The largest NC1 over all layers and both kinds, computed now."""
        with torch.no_grad():
            f = self.model.forward()
            y = self.model.labels
            vals = [metrics.nc1(X, y) for X in (*f.pre, *f.post[1:])]
        vals = [v for v in vals if not math.isnan(v)]
        return max(vals) if vals else math.inf

    def polish(self, max_iter: int = 200) -> Trainer:
        """An L-BFGS phase (strong Wolfe line search) from the current state.

        L-BFGS can stall at ReLU kinks (theory §4.1); the state is kept only if the
        loss went down. Each L-BFGS iteration counts as one step in the history.
        """
        if not (isinstance(max_iter, int) and max_iter >= 1):
            raise ValueError(f"max_iter={max_iter!r} is not valid: expected an int >= 1")
        if self.diverged:
            return self
        t0 = time.perf_counter()
        iters = lbfgs_polish(self.model, max_iter)
        self._resume_single([p.clone() for p in self._params], self.attempt)
        self.steps += iters
        self.seconds += time.perf_counter() - t0
        self._checkpoint(force_metrics=True)
        return self

    def summary(self) -> dict[str, Any]:
        """Final numbers of the run: loss, optimum, gap, steps, seconds and status."""
        return {
            "loss": self.loss,
            "fit": self._last.get("fit", math.nan),
            "reg": self._last.get("reg", math.nan),
            "optimal_loss": self.optimal_loss,
            "relative_gap": self.gap,
            "steps": self.steps,
            "seconds": self.seconds,
            "status": self.status,
            "message": self.message,
            "near_threshold": self.near_threshold,
            "start": self.attempt,
            "diagnosis": self.diagnosis().to_dict(),
        }

    # ------------------------------------------------------------------ internals
    @torch.no_grad()
    def _advance(self, n: int) -> None:
        if self._race is not None:
            self._race.step(n)
            self.steps += n
            self._follow_leader()
            return
        self._core._advance(n)
        self.steps += n

    @torch.no_grad()
    def _resume_single(self, params: list[torch.Tensor], attempt: int) -> None:
        """Go on from ``params`` as start ``attempt`` alone (the race, if any, ends)."""
        self._race = None
        self._start = self.recipe.starts()[attempt]
        recipe = self.recipe if attempt == 0 else self._start.recipe_for(self.recipe)
        self._core.load(0, params, recipe)  # also writes the model's parameters (views)
        self.lr, self.momentum = self._core.lr[0], self._core.momentum[0]
        self.retries = 0

    @torch.no_grad()
    def _loss_terms(self) -> dict[str, float]:
        terms = self.model.loss()
        reg_W = [float(r) for r in terms.reg_W]
        out = {
            "fit": float(terms.fit),
            "reg_H": float(terms.reg_H),
            "reg": float(terms.reg_H) + sum(reg_W),
        }
        out["loss"] = out["fit"] + out["reg"]
        return out

    def _checkpoint(self, force_metrics: bool = False) -> None:
        """Record, check for divergence and update the schedule.

        Only checkpoints on the record grid (steps % record_every == 0, or a forced one after
        L-BFGS) run the core's check (the guard's snapshot, the momentum boost, a divergence
        restore), so a run gives the same numbers however it is chunked into ``step(n)``
        calls. A call that ends off the grid still records the loss terms (and stops a
        diverged run when the guard is off).
        """
        on_grid = force_metrics or self.steps % self.record_every == 0
        if self._race is not None:  # the race's members guard and boost themselves
            with_metrics = force_metrics or bool(
                on_grid and self.metrics_every and self.steps % self.metrics_every == 0
            )
            self._record(self._loss_terms(), with_metrics=with_metrics)
            return
        core = self._core
        if not on_grid:
            terms = self._loss_terms()
            if not terms["loss"] <= core._ceiling[0]:  # NaN/inf, or blowing up
                if not self.recipe.guard:
                    lr = core.lr[0]
                    core._on_divergence(0, terms["loss"])
                    self._stop_diverged(terms["loss"], lr)
                return
            self._record(terms, with_metrics=False)
            return
        lr, retries = core.lr[0], core.retries[0]
        core._check()
        if core.status[0] == "diverged":
            self._stop_diverged(core.losses[-1][0], lr)
            return
        self.lr, self.momentum = core.lr[0], core.momentum[0]
        if core.retries[0] > retries:  # the guard restored the last good state, lr halved
            self.retries = core.retries[0]
            self._append([(self.steps, 0, "model", "lr", self.lr)])
            return
        terms = dict(core.terms[0])
        with_metrics = force_metrics or bool(
            self.metrics_every and self.steps % self.metrics_every == 0
        )
        self._record(terms, with_metrics=with_metrics)
        self._losses.append(terms["loss"])
        if self._stalled():
            self._restart()

    def _stalled(self) -> bool:
        """The first start plateaued above L* and the recipe has fallback starts to race."""
        if self.attempt != 0 or self._race is not None or not self.recipe.fallback_starts():
            return False
        if not self.train_H1:  # a fallback start would re-draw the fixed features
            return False
        steps = self.steps - self._attempt_step
        return stalled(self._losses, self.optimal_loss, steps, self.recipe, self.record_every)

    @torch.no_grad()
    def _restart(self) -> None:
        """Keep the first start's state and go on with the race of fallback starts."""
        if self._best is None or self.loss < self._best[0]:
            self._best = (self.loss, [p.clone() for p in self._params], self.attempt)
        self._race = Race(self.config, self.recipe, record_every=self.record_every)
        self._attempt_step = self.steps
        self.attempt_changed = True
        self.attempt = -1  # _follow_leader records the leader's start
        self._follow_leader()
        self._last = {**self._loss_terms()}
        self._last["relative_gap"] = relative_gap(self._last["loss"], self.optimal_loss)

    @torch.no_grad()
    def _follow_leader(self) -> None:
        """Copy the race's leader into the model (its start, lr and losses too)."""
        race = self._race
        assert race is not None
        b = race.leader()
        for p, q in zip(self._params, race.bt.params, strict=True):
            p.copy_(q[b])
        self.lr, self.momentum = race.bt.lr[b], race.bt.momentum[b]
        self.retries = race.bt.retries[b]
        self._losses = race.losses(b)
        if race.member_start[b] != self.attempt:
            self.attempt = race.member_start[b]
            self._start = self.recipe.starts()[self.attempt]
            self._append([(self.steps, 0, "model", "restart", float(self.attempt))])

    def _stop_diverged(self, value: float, lr: float) -> None:
        """The core gave up (guard off or out of retries): stop with a message."""
        self.status = "diverged"
        self.message = _schema.diverged_message(value, self.steps, lr, " and reset")
        warnings.warn(self.message, RuntimeWarning, stacklevel=4)

    def _record(self, terms: dict[str, float] | None = None, with_metrics: bool = True) -> None:
        terms = terms or self._loss_terms()
        gap = relative_gap(terms["loss"], self.optimal_loss)
        self._last = {**terms, "relative_gap": gap}
        s = self.steps
        rows = loss_rows(s, terms, self.optimal_loss, gap, self.lr)
        if with_metrics:
            with torch.no_grad():
                rows += [
                    (s, layer, kind, name, float(value))
                    for layer, kind, name, value in metrics.layer_metric_rows(self.model)
                ]
        self._append(rows)

    def _append(self, rows: list[Row]) -> None:
        self._rows.extend(rows)
        for cb in self.callbacks:
            cb(self, rows)


def train(config: DUFMConfig | None = None, **kwargs: Any) -> Trainer:
    """Convenience: build a model, train it with :meth:`Trainer.run` and return the trainer.

    Keyword arguments go to :class:`Trainer` (recipe fields, record_every, ...) or to
    :meth:`Trainer.run` (steps, tol, max_steps, plateau).
    """
    run_keys = {"steps", "tol", "max_steps", "plateau", "plateau_rtol"}
    run_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in run_keys}
    return Trainer(config or DUFMConfig(), **kwargs).run(**run_kwargs)
