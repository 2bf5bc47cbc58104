"""One chunk of same-shape configurations trained together: :func:`run_batch`, what
executors run (plain picklable data in, one result row per configuration out).

:class:`~dnc_interactive.optim.BatchedTrainer`, :class:`~dnc_interactive.optim.Race` and
:func:`~dnc_interactive.optim.shape_key` live in :mod:`dnc_interactive.optim` and are
re-exported here."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from dnc_interactive import lowrank, metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.optim import BatchedTrainer, shape_key
from dnc_interactive.race import Race
from dnc_interactive.race import stalled as _stall_test
from dnc_interactive.sweeps.grid import RECIPE_FIELDS
from dnc_interactive.training import Recipe, Trainer, relative_gap

__all__ = ["BatchedTrainer", "Race", "run_batch", "shape_key"]


def _final_metrics(model: DUFM) -> dict[str, Any]:
    """Final metrics of one trained model (theory §3) and its DNC / low-rank label (theory §5)."""
    cfg = model.config
    rows = metrics.layer_metric_rows(model)
    get: dict[tuple[int, str, str], float] = {(l, k, m): v for l, k, m, v in rows}
    L, K = cfg.L, cfg.K
    nc1 = [get[(l, k, "nc1_trace")] for l in range(2, L + 1) for k in ("pre", "post")]
    nc1 = [v for v in nc1 if math.isfinite(v)]
    verdict = lowrank.classify(model)
    nc1_trace = max(nc1) if nc1 else math.nan
    return {
        "nc1": nc1_trace,  # deprecated alias of nc1_trace (same value)
        "nc1_trace": nc1_trace,
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
