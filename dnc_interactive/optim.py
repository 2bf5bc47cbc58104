"""The batch-aware optimisation core: B same-shape DUFMs trained as one tensor program.

:class:`BatchedTrainer` trains B configurations *of the same shape* (K, n_k, L, widths,
activation, loss, dtype, device, optimizer; :func:`shape_key`) at once: parameters are stacked
into (B, d_out, d_in) tensors and every matrix product is one ``torch.bmm`` /
``torch.baddbmm``. Each configuration keeps its own lambda_H, lambda_W, initialisation (seed,
init_scale, init kind) and :class:`~dnc_interactive.recipes.Recipe` (lr, momentum, momentum
boost, divergence guard): heavy-ball GD (or Adam) on the hand-written batched gradient of
:func:`~dnc_interactive.model.batched_gradients`, the loss checked every ``record_every`` steps,
the momentum raised to ``momentum_boost`` once the relative gap to L* is below ``boost_gap``,
and on a non-finite loss the last finite state restored and the learning rate halved
(``max_retries`` times, then the member stops with status ``"diverged"`` while the others go
on). H1 can be held fixed (``train_H1=False``: a head trained on given features).

The update rules, :func:`~dnc_interactive.updates.heavy_ball_update` and
:func:`~dnc_interactive.updates.adam_update`, live once in :mod:`dnc_interactive.updates`
(importable from here too); the core and the real-network optimiser
(:mod:`dnc_interactive.realnets.train`) both call them.

The robust recipe's fallback phase, :class:`~dnc_interactive.race.Race` and the stall test
:func:`~dnc_interactive.race.stalled`, live in :mod:`dnc_interactive.race` (still importable
from here).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

from dnc_interactive import theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM, batched_forward, batched_gradients, torch_dtype
from dnc_interactive.recipes import Recipe
from dnc_interactive.schema import BATCH_STATUSES
from dnc_interactive.updates import (  # the update rules, importable from here too
    ADAM_BETA2,
    ADAM_EPS,
    _heavy_ball,
    adam_update,
)
from dnc_interactive.updates import Scalar as Scalar
from dnc_interactive.updates import heavy_ball_update as heavy_ball_update


def relative_gap(loss: float, optimal: float) -> float:
    """(loss - L*) / L*; NaN when L* is undefined (NaN) or zero."""
    if not math.isfinite(optimal) or optimal <= 0:
        return math.nan
    return (loss - optimal) / optimal


def shape_key(config: DUFMConfig, recipe: Recipe | None = None) -> tuple:
    """What configurations must share to be trained in one batch.

    (K, n_k, L, widths, activation, loss, dtype, device, optimizer): everything that fixes the
    tensor shapes and the program. lambdas, seed, init_scale and the numeric recipe fields
    (lr, momentum, ...) may differ within a batch.
    """
    return (
        config.K,
        config.class_sizes,
        config.L,
        config.widths,
        config.activation,
        config.loss,
        config.dtype,
        config.device,
        (recipe or Recipe()).optimizer,
    )


def _col(values: Sequence[float], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A (B, 1, 1) tensor of per-configuration scalars."""
    return torch.tensor(list(values), dtype=dtype, device=device).view(-1, 1, 1)


class BatchedTrainer:
    """Gradient descent on B same-shape DUFMs at once (see the module docstring).

    Args:
        configs: B configurations with the same :func:`shape_key`.
        recipes: one :class:`Recipe` for all, or one per configuration (same optimizer).
        record_every: check the loss (divergence guard, momentum boost) every this many steps,
            as :class:`~dnc_interactive.training.Trainer` does.
        inits: the initialisation kind (:data:`~dnc_interactive.model.INITS`), one for all or
            one per configuration.
        models: start from these models' current matrices instead (one per configuration);
            the trainer's B = 1 case.
        train_H1: False holds H1 fixed (frozen features: the real-network recovery test's
            head on given features): H1 gets no update and no optimiser state, its
            regulariser (lambda_H/2)||H1||^2 stays in the loss.

    The initial parameters are those of ``DUFM(config, init)`` for each configuration (or of
    ``models``), so a batch of B reproduces B single :class:`Trainer` runs with the same recipes
    and ``record_every``; :class:`~dnc_interactive.training.Trainer` is the B = 1 case.
    ``losses`` holds the loss of every configuration at every check (a (checks, B) list);
    ``status[b]`` is one of :attr:`STATUSES` (:data:`dnc_interactive.schema.BATCH_STATUSES`).
    """

    STATUSES: tuple[str, ...] = BATCH_STATUSES

    def __init__(
        self,
        configs: Sequence[DUFMConfig],
        recipes: Recipe | Sequence[Recipe] | None = None,
        *,
        record_every: int = 10,
        inits: str | Sequence[str] = "random",
        models: Sequence[DUFM] | None = None,
        train_H1: bool = True,
    ) -> None:
        configs = list(configs)
        if not configs:
            raise ValueError("configs=[] is not valid: expected at least one DUFMConfig")
        for i, c in enumerate(configs):
            if not isinstance(c, DUFMConfig):
                raise ValueError(f"configs[{i}]={c!r} is not valid: expected a DUFMConfig")
        if recipes is None or isinstance(recipes, Recipe):
            recipes = [recipes or Recipe()] * len(configs)
        recipes = list(recipes)
        if len(recipes) != len(configs):
            raise ValueError(
                f"recipes has {len(recipes)} entries but there are {len(configs)} configs:"
                " expected one Recipe or one per config"
            )
        keys = {shape_key(c, r) for c, r in zip(configs, recipes, strict=True)}
        if len(keys) != 1:
            raise ValueError(
                "configs do not share one shape (K, n_k, L, widths, activation, loss, dtype,"
                f" device, optimizer): got {len(keys)} different shapes; group them first"
            )
        if not (isinstance(record_every, int) and record_every >= 1):
            raise ValueError(f"record_every={record_every!r} is not valid: expected an int >= 1")
        first = configs[0]
        self.configs = configs
        self.recipes = recipes
        self.record_every = record_every
        self.optimizer = recipes[0].optimizer
        self.B = len(configs)
        self.L = first.L
        self.N = first.N
        self.activation = first.activation
        self.loss_kind = first.loss
        dtype = torch_dtype(first.dtype)
        device = torch.device(first.device)
        self.dtype, self.device = dtype, device

        if isinstance(inits, str):
            inits = [inits] * len(configs)
        inits = list(inits)
        if len(inits) != len(configs):
            raise ValueError(
                f"inits has {len(inits)} entries but there are {len(configs)} configs:"
                " expected one init or one per config"
            )
        if models is None:
            built = [DUFM(c, init=i) for c, i in zip(configs, inits, strict=True)]
        else:
            built = list(models)
            if len(built) != len(configs) or any(
                m.config is not c for m, c in zip(built, configs, strict=True)
            ):
                raise ValueError("models must be one DUFM per config, built from that config")
        self.labels = built[0].labels
        self.Y = built[0].Y
        self.params: list[Tensor] = [torch.stack([m.H1.data for m in built])]
        for l in range(self.L):
            self.params.append(torch.stack([m.W[l].data for m in built]))
        del built
        self.lambdas: list[Tensor] = [_col([c.lambda_H for c in configs], dtype, device)]
        for l in range(self.L):
            self.lambdas.append(_col([c.lambda_Ws[l] for c in configs], dtype, device))
        self.optimal = [theory.optimum(c).loss for c in configs]  # once per config (cached)

        self.lr = [float(r.lr) for r in recipes]
        self.momentum = [float(r.momentum) for r in recipes]
        self.retries = [0] * self.B
        self.status = ["ready"] * self.B
        self.messages = [""] * self.B
        self.steps = 0
        self.seconds = 0.0
        self._lr_t = _col(self.lr, dtype, device)
        self._mom_t = _col(self.momentum, dtype, device)
        self.train_H1 = bool(train_H1)
        self._first = 0 if self.train_H1 else 1  # index of the first trained matrix
        self._trainable = self.params[self._first :]
        self._buf = [torch.zeros_like(p) for p in self._trainable]
        adam = self.optimizer == "adam"
        self._sq = [torch.zeros_like(p) for p in self._trainable] if adam else []
        self._good = [p.clone() for p in self.params]
        self._cache: tuple[list[Tensor], Tensor] | None = None
        self.terms: list[dict[str, float]] = [{} for _ in range(self.B)]
        self.losses: list[list[float]] = []
        self._check(initial=True)

    # ------------------------------------------------------------------ gradients
    def _forward(self) -> tuple[list[Tensor], Tensor]:
        """Post-activations [H_1..H_L] and the output Z of every configuration."""
        return batched_forward(self.params, self.activation)

    def _gradients(self) -> list[Tensor | None]:
        """:func:`~dnc_interactive.model.batched_gradients` at the current parameters (the
        forward pass of the last check reused when it is still valid)."""
        cached, self._cache = self._cache, None
        posts, Z = cached if cached is not None else self._forward()
        return batched_gradients(
            self.params,
            self.lambdas,
            self.Y,
            posts,
            Z,
            self.activation,
            self.loss_kind,
            train_H1=self.train_H1,
        )

    @torch.no_grad()
    def loss_terms(self) -> tuple[Tensor, Tensor, Tensor]:
        """(fit, reg, reg_H) of every configuration now, each a (B,) float64 tensor.

        The forward pass is kept for the next gradient (the parameters do not change between
        a check and the next step).
        """
        posts, Z = self._forward()
        self._cache = (posts, Z)
        if self.loss_kind == "mse":
            fit = (Z - self.Y).pow(2).sum(dim=(1, 2)) / (2 * self.N)
        else:
            logp = torch.log_softmax(Z, dim=1)
            fit = -(logp * self.Y).sum(dim=(1, 2)) / self.N
        regs = [
            0.5 * lam.view(-1) * p.pow(2).sum(dim=(1, 2))
            for lam, p in zip(self.lambdas, self.params, strict=True)
        ]
        reg = regs[0]
        for r in regs[1:]:
            reg = reg + r
        return fit.double(), reg.double(), regs[0].double()

    # ------------------------------------------------------------------ stepping
    @torch.no_grad()
    def _advance(self, n: int) -> None:
        params, first = self._trainable, self._first
        if self.optimizer == "gd":
            neg_lr, mom = -self._lr_t, self._mom_t
            for _ in range(n):
                grads = cast(list[Tensor], self._gradients()[first:])
                _heavy_ball(params, self._buf, grads, neg_lr, mom)  # heavy_ball_update's rule
                self.steps += 1
            return
        for _ in range(n):
            grads = cast(list[Tensor], self._gradients()[first:])
            self.steps += 1
            lr, b1 = self._lr_t, self._mom_t
            adam_update(
                params, self._buf, self._sq, grads, lr, b1, ADAM_BETA2, ADAM_EPS, self.steps
            )

    def step(self, n: int = 1) -> BatchedTrainer:
        """Advance ``n`` steps, checking the loss every ``record_every`` steps and at the end."""
        if not (isinstance(n, int) and n >= 0):
            raise ValueError(f"n={n!r} is not valid: expected an int >= 0")
        t0 = time.perf_counter()
        for i, s in enumerate(self.status):
            if s in ("ready", "stopped"):
                self.status[i] = "running"
        remaining = n
        while remaining > 0 and not all(s == "diverged" for s in self.status):
            chunk = min(remaining, self.record_every - self.steps % self.record_every)
            self._advance(chunk)
            remaining -= chunk
            if self.steps % self.record_every == 0 or remaining == 0:
                self._check()
        self.status = ["stopped" if s == "running" else s for s in self.status]
        self.seconds += time.perf_counter() - t0
        return self

    def run(self, steps: int) -> BatchedTrainer:
        """Exactly ``steps`` more steps; configurations that did not diverge end "max_steps"."""
        self.step(steps)
        self.status = ["max_steps" if s != "diverged" else s for s in self.status]
        return self

    # ------------------------------------------------------------------ checks
    @torch.no_grad()
    def _check(self, initial: bool = False) -> None:
        fit, reg, reg_H = self.loss_terms()
        fits, regs, reg_Hs = fit.tolist(), reg.tolist(), reg_H.tolist()
        losses = [f + r for f, r in zip(fits, regs, strict=True)]
        if not initial and self.optimizer == "gd" and self.losses:
            # adaptive restart (O'Donoghue & Candes 2015): a heavy-ball member whose loss rose
            # since the last check forgets its velocity, so it does not oscillate about L*
            for b, (now, before) in enumerate(zip(losses, self.losses[-1], strict=True)):
                if self.recipes[b].momentum_restart and now > before:
                    for buf in self._buf:
                        buf[b].zero_()
        self.losses.append(losses)
        if initial:  # Trainer's ceiling: blowup x max(initial loss, 1/2 = the zero solution's)
            self._ceiling = [r.blowup * max(v, 0.5) for r, v in zip(self.recipes, losses)]
        # "not loss <= ceiling" is True for NaN/inf and for a blow-up (as Trainer's check)
        finite = [v <= c or s == "diverged" for v, c, s in zip(losses, self._ceiling, self.status)]
        if all(finite):  # save the last finite state (diverged ones are frozen, finite too)
            for g, p in zip(self._good, self.params, strict=True):
                g.copy_(p)
        else:
            idx = torch.tensor(
                [b for b, ok in enumerate(finite) if ok], dtype=torch.long, device=self.device
            )
            for g, p in zip(self._good, self.params, strict=True):
                g[idx] = p[idx]
        changed = False
        for b in range(self.B):
            if self.status[b] == "diverged":
                continue
            loss = losses[b]
            if not finite[b]:
                self._on_divergence(b, loss)
                changed = True
                continue
            gap = relative_gap(loss, self.optimal[b])
            self.terms[b] = {
                "loss": loss,
                "fit": fits[b],
                "reg": regs[b],
                "reg_H": reg_Hs[b],
                "relative_gap": gap,
            }
            r = self.recipes[b]
            boost = r.momentum_boost
            if (
                not initial
                and self.optimizer == "gd"
                and boost is not None
                and self.momentum[b] < boost
                and gap < r.boost_gap
            ):
                self.momentum[b] = float(boost)
                changed = True
        if changed:
            self._lr_t = _col(self.lr, self.dtype, self.device)
            self._mom_t = _col(self.momentum, self.dtype, self.device)

    def _on_divergence(self, b: int, value: float) -> None:
        self._cache = None  # the forward pass of the check is stale after a restore
        for g, p in zip(self._good, self.params, strict=True):
            p[b].copy_(g[b])
        for s in (*self._buf, *self._sq):
            s[b].zero_()
        r = self.recipes[b]
        if r.guard and self.retries[b] < r.max_retries:
            self.retries[b] += 1
            self.lr[b] /= 2
            self.momentum[b] = float(r.momentum)
            return
        self.status[b] = "diverged"
        self.messages[b] = (
            f"diverged: the loss became {value} at step {self.steps} (lr={self.lr[b]:g});"
            " parameters restored to the last finite check"
        )
        self.lr[b] = 0.0  # frozen: p - 0 * buf leaves the restored state unchanged
        self.momentum[b] = 0.0

    # ------------------------------------------------------------------ members
    @torch.no_grad()
    def reset(self, b: int, config: DUFMConfig, recipe: Recipe, init: str = "random") -> None:
        """Replace member ``b`` by a fresh start: ``DUFM(config, init)`` trained with ``recipe``.

        ``config`` and ``recipe`` must keep the batch's shape (:func:`shape_key`).
        """
        if shape_key(config, recipe) != shape_key(self.configs[0], self.recipes[0]):
            raise ValueError("config does not share the batch's shape (see shape_key)")
        fresh = DUFM(config, init=init)
        self.configs[b] = config
        for lam, value in zip(self.lambdas, (config.lambda_H, *config.lambda_Ws), strict=True):
            lam[b] = value
        self.optimal[b] = theory.optimum(config).loss
        self.load(b, [fresh.H1.data, *[W.data for W in fresh.W]], recipe)

    @torch.no_grad()
    def load(self, b: int, matrices: Sequence[Tensor], recipe: Recipe | None = None) -> None:
        """Restart member ``b`` from ``matrices`` ([H1, W_1..W_L]) with ``recipe``'s lr and
        momentum (its own recipe when None): buffers zeroed, guard and ceiling reset."""
        recipe = recipe or self.recipes[b]
        for p, g, x in zip(self.params, self._good, matrices, strict=True):
            p[b].copy_(x)
            g[b].copy_(x)
        for s in (*self._buf, *self._sq):
            s[b].zero_()
        self.recipes[b] = recipe
        self.lr[b], self.momentum[b] = float(recipe.lr), float(recipe.momentum)
        self.retries[b], self.status[b], self.messages[b] = 0, "running", ""
        self._lr_t = _col(self.lr, self.dtype, self.device)
        self._mom_t = _col(self.momentum, self.dtype, self.device)
        self._cache = None
        fit, reg, reg_H = (t[b].item() for t in self.loss_terms())
        self._cache = None
        loss = fit + reg
        if self.losses:  # the member's loss at the last check is its new start's
            self.losses[-1][b] = loss
        self._ceiling[b] = recipe.blowup * max(loss, 0.5)
        gap = relative_gap(loss, self.optimal[b])
        self.terms[b] = {"loss": loss, "fit": fit, "reg": reg, "reg_H": reg_H, "relative_gap": gap}

    def set_lr(self, lr: float, b: int | None = None) -> None:
        """Set the learning rate of member ``b`` (every member when None)."""
        for i in range(self.B) if b is None else (b,):
            if self.status[i] != "diverged":
                self.lr[i] = float(lr)
        self._lr_t = _col(self.lr, self.dtype, self.device)

    # ------------------------------------------------------------------ results
    def matrices(self, b: int) -> tuple[Tensor, list[Tensor]]:
        """(H1, [W_1..W_L]) of configuration ``b`` (copies)."""
        if not (isinstance(b, int) and 0 <= b < self.B):
            raise ValueError(f"b={b!r} is not valid: expected an int in [0, {self.B - 1}]")
        return self.params[0][b].clone(), [p[b].clone() for p in self.params[1:]]

    def model(self, b: int) -> DUFM:
        """A :class:`DUFM` holding configuration ``b``'s current parameters."""
        H1, Ws = self.matrices(b)
        return DUFM(self.configs[b]).load_matrices(H1, Ws)

    def summary(self, b: int) -> dict[str, Any]:
        """Final numbers of configuration ``b`` (as :meth:`Trainer.summary`)."""
        t = self.terms[b]
        return {
            "loss": t.get("loss", math.nan),
            "fit": t.get("fit", math.nan),
            "reg": t.get("reg", math.nan),
            "optimal_loss": self.optimal[b],
            "relative_gap": t.get("relative_gap", math.nan),
            "steps": self.steps,
            "status": self.status[b],
            "message": self.messages[b],
            "retries": self.retries[b],
            "lr": self.lr[b],
        }


if TYPE_CHECKING:
    from dnc_interactive.race import Race as Race
    from dnc_interactive.race import stalled as stalled


def __getattr__(name: str) -> Any:
    """``Race`` and ``stalled`` moved to :mod:`dnc_interactive.race`; still importable here."""
    if name in ("Race", "stalled"):
        from dnc_interactive import race

        return getattr(race, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
