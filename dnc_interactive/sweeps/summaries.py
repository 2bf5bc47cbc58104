"""Summaries of sweep results and the theory's prediction for a grid (theory §5): P(DNC)
with its interval, rank statistics, and :func:`theory_frame`."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pandas as pd

from dnc_interactive import lowrank, theory
from dnc_interactive.config import FIELD_NAMES, DUFMConfig
from dnc_interactive.sweeps.columns import _config_columns
from dnc_interactive.sweeps.grid import _SEQUENCE_FIELDS, expand_grid
from dnc_interactive.training import Recipe

__all__ = ["dnc_probability", "rank_summary", "theory_frame"]


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
