"""Sweeps over many DUFM configurations: batched training, executors, resumable results.

Researchers explore the DUFM (theory §1.2) by sweeping: depth x lambda phase diagrams, the
probability that gradient descent finds deep neural collapse as the width grows, the loss ratio
of low-rank solutions to DNC as K grows (theory §5). This module makes such sweeps cheap:

* :class:`BatchedTrainer` trains B configurations *of the same shape* (K, n_k, L, widths,
  activation, loss, dtype, device, optimizer) as one batched tensor program: parameters are
  stacked into (B, d_out, d_in) tensors and every matrix product is one ``torch.bmm`` /
  ``torch.baddbmm``. Each configuration keeps its own lambda_H, lambda_W, initialisation (seed,
  init_scale) and :class:`~dnc_interactive.training.Recipe` (lr, momentum, momentum boost,
  divergence guard). The update rule is exactly the one of
  :class:`~dnc_interactive.training.Trainer`: heavy-ball GD (or Adam) on the hand-written
  gradient of :func:`~dnc_interactive.model.loss_and_grad`, with the loss checked every
  ``record_every`` steps, the momentum raised to ``momentum_boost`` once the relative gap to L*
  is below ``boost_gap``, and on a non-finite loss the last finite state restored and the
  learning rate halved (``max_retries`` times, then the configuration stops with status
  ``"diverged"`` while the others go on).
* :func:`sweep` expands a grid (a dict of parameter lists named like
  :class:`~dnc_interactive.config.DUFMConfig`'s fields plus the :class:`Recipe` fields such as
  ``lr``) into configurations, validates all of them before any work starts, groups them by
  shape into chunks, runs the chunks locally or on any :class:`concurrent.futures.Executor`
  (a process pool, or Dask's ``Client.get_executor()``), and returns one tidy DataFrame: one
  row per configuration with its parameters, ``final_loss``, ``optimal_loss`` (the DNC optimum
  L* of theory §2.2 / §6), ``relative_gap``, final metrics (theory §3) and the DNC / low-rank label
  of :func:`dnc_interactive.lowrank.classify` (theory §5). With ``out=`` every finished chunk is
  written to a Parquet (or CSV) file, and a rerun skips the configurations already there
  (keyed by :func:`config_key`), so an interrupted sweep loses at most the chunks in flight.

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

import dataclasses
import hashlib
import itertools
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from dnc_interactive import lowrank, metrics, theory
from dnc_interactive.config import FIELD_NAMES, DUFMConfig
from dnc_interactive.model import DTYPES, DUFM
from dnc_interactive.training import Recipe, Trainer, relative_gap

__all__ = [
    "RECIPE_FIELDS",
    "RESULT_COLUMNS",
    "BatchedTrainer",
    "SweepError",
    "config_key",
    "dnc_probability",
    "expand_grid",
    "load_results",
    "rank_summary",
    "run_batch",
    "shape_key",
    "sweep",
    "theory_frame",
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


# ====================================================================== batched training
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

    The initial parameters are those of ``DUFM(config)`` for each configuration, so a batch of
    B reproduces B single :class:`Trainer` runs with the same recipes and ``record_every``.
    ``losses`` holds the loss of every configuration at every check (a (checks, B) list).
    """

    def __init__(
        self,
        configs: Sequence[DUFMConfig],
        recipes: Recipe | Sequence[Recipe] | None = None,
        *,
        record_every: int = 10,
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
        dtype = DTYPES[first.dtype]
        device = torch.device(first.device)
        self.dtype, self.device = dtype, device

        models = [DUFM(c) for c in configs]
        self.labels = models[0].labels
        self.Y = models[0].Y
        self.params: list[Tensor] = [torch.stack([m.H1.data for m in models])]
        for l in range(self.L):
            self.params.append(torch.stack([m.W[l].data for m in models]))
        del models
        self.lambdas: list[Tensor] = [_col([c.lambda_H for c in configs], dtype, device)]
        for l in range(self.L):
            self.lambdas.append(_col([c.lambda_Ws[l] for c in configs], dtype, device))
        self.optimal = [theory.optimal_loss(c) for c in configs]

        self.lr = [float(r.lr) for r in recipes]
        self.momentum = [float(r.momentum) for r in recipes]
        self.retries = [0] * self.B
        self.status = ["ready"] * self.B
        self.messages = [""] * self.B
        self.steps = 0
        self.seconds = 0.0
        self._lr_t = _col(self.lr, dtype, device)
        self._mom_t = _col(self.momentum, dtype, device)
        self._buf = [torch.zeros_like(p) for p in self.params]
        self._sq = [torch.zeros_like(p) for p in self.params] if self.optimizer == "adam" else []
        self._good = [p.clone() for p in self.params]
        self._cache: tuple[list[Tensor], Tensor] | None = None
        self.terms: list[dict[str, float]] = [{} for _ in range(self.B)]
        self.losses: list[list[float]] = []
        self._check(initial=True)

    # ------------------------------------------------------------------ gradients
    def _forward(self) -> tuple[list[Tensor], Tensor]:
        """Post-activations [H_1..H_L] and the output Z of every configuration."""
        posts = [self.params[0]]
        X = self.params[0]
        relu = self.activation == "relu"
        for W in self.params[1:-1]:
            X = torch.bmm(W, X)
            if relu:
                X = X.relu_()  # equals Trainer's P * (P > 0) up to the sign of zeros
            posts.append(X)
        return posts, torch.bmm(self.params[-1], X)

    def _gradients(self) -> list[Tensor]:
        """The batched version of :func:`~dnc_interactive.model.loss_and_grad`.

        The ReLU backward ``G * (P > 0)`` is aten's fused ``threshold_backward(G, H, 0)``
        (same values; one vectorised pass instead of a mask, its promotion and a product).
        """
        cached, self._cache = self._cache, None
        posts, Z = cached if cached is not None else self._forward()
        N = self.N
        if self.loss_kind == "mse":
            G = (Z - self.Y) / N
        else:
            G = (torch.softmax(Z, dim=1) - self.Y) / N
        grads: list[Tensor] = [None] * (self.L + 1)  # type: ignore[list-item]
        relu = self.activation == "relu"
        for l in range(self.L, 0, -1):
            W = self.params[l]
            grads[l] = (W * self.lambdas[l]).baddbmm_(G, posts[l - 1].transpose(1, 2))
            G = torch.bmm(W.transpose(1, 2), G)
            if l > 1 and relu:
                G = torch.ops.aten.threshold_backward(G, posts[l - 1], 0)
        grads[0] = G.addcmul_(self.params[0], self.lambdas[0])  # G is a fresh tensor here
        return grads

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
        params, buf = self.params, self._buf
        if self.optimizer == "gd":
            neg_lr, mom = -self._lr_t, self._mom_t
            for _ in range(n):
                grads = self._gradients()
                for i, g in enumerate(grads):
                    g.addcmul_(buf[i], mom)  # the new buffer g + mom * b, in g's fresh memory
                    buf[i] = g
                    params[i].addcmul_(g, neg_lr)  # p <- p - lr * b
                self.steps += 1
            return
        sq = self._sq
        b1 = self._mom_t
        for _ in range(n):
            grads = self._gradients()
            self.steps += 1
            c1 = 1 - b1.pow(self.steps)
            c2 = 1 - 0.999**self.steps
            scale = -self._lr_t / c1
            for p, m, v, g in zip(params, buf, sq, grads, strict=True):
                m.lerp_(g, 1 - b1)
                v.mul_(0.999).addcmul_(g, g, value=1 - 0.999)
                denom = v.sqrt().div_(math.sqrt(c2)).add_(1e-8)
                p.addcmul_(m / denom, scale)

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
        per = (time.perf_counter() - t0) / len(items)
        out = []
        for b, it in enumerate(items):
            s = bt.summary(b)
            model = bt.model(b)
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
            the config / recipe rejects, before any training starts.
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
    return path


def load_results(path: str | os.PathLike) -> pd.DataFrame:
    """Read a sweep results file (.parquet or .csv) written by :func:`sweep`."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path)
    return pd.read_parquet(path)


def _write(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically (temporary file, then rename) so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".csv":
        frame.to_csv(tmp, index=False)
    else:
        frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


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
    for name in _SEQUENCE_FIELDS:
        values = frame[name]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            frame[name] = pd.to_numeric(values)
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
        out: a ``.parquet`` (or ``.csv``) results file. Rows already there (same
            :func:`config_key`) are reused, not recomputed; each finished chunk is written at
            once, so an interrupted sweep resumes where it stopped.
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
        SweepError: a chunk failed (e.g. a worker died); the finished chunks are in ``out``,
            so calling again resumes.
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

    done = pd.DataFrame()
    if path is not None and path.exists():
        done = load_results(path)
        if "key" not in done.columns:
            raise ValueError(f"out={str(path)!r} is not a sweep results file (no 'key' column)")
    have = set(done["key"]) if len(done) else set()
    pending = [i for i, k in enumerate(keys) if k not in have]
    seen: set[str] = set()
    pending = [i for i in pending if not (keys[i] in seen or seen.add(keys[i]))]

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

    def finish(idx: list[int], results: list[dict[str, Any]]) -> None:
        frame = rows_of(idx, results)
        collected.append(frame)
        if path is not None:
            _write(_tidy(pd.concat(collected, ignore_index=True)), path)
        if on_chunk is not None:
            on_chunk(frame)
        bar.update(len(idx))

    try:
        if executor is None:
            for idx in chunks:
                finish(idx, run_batch(payload(idx), steps, record_every, threads, polish))
        else:
            futures: dict[Future, list[int]] = {
                executor.submit(run_batch, payload(idx), steps, record_every, threads, polish): idx
                for idx in chunks
            }
            from concurrent.futures import as_completed

            for fut in as_completed(futures):
                try:
                    results = fut.result()
                except Exception as exc:  # a worker died or the chunk raised
                    failure = failure or exc
                    continue
                finish(futures[fut], results)
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
