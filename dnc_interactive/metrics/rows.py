"""Per-layer metrics of a DUFM: tidy history rows and the collapse report (theory §3).

:func:`layer_metric_rows` (the ``(layer, kind, metric, value)`` contract with the trainer's
history and the charts), :func:`nc1_layer_details` and :func:`collapse_report` read a
:class:`~dnc_interactive.model.DUFM`, put every layer's features in one zero-padded float64
batch (:func:`~dnc_interactive.metrics.batch._feature_cores`) and move the values off the
device in one transfer. The metrics know nothing of training.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor

from dnc_interactive.metrics._checks import _f64
from dnc_interactive.metrics._scaling import _same, _unit
from dnc_interactive.metrics.alignment import (
    _dnc3_core,
    _nc3_class_core,
    _nc3_core,
    _nc3_general_core,
)
from dnc_interactive.metrics.batch import _feature_cores
from dnc_interactive.metrics.names import (
    CLASS_METRICS,
    COLLAPSE_TOL,
    EXTENDED_METRICS,
    F64,
    FEATURE_METRICS,
    NC1_RCOND,
    RANK_RTOL,
    class_metric,
)
from dnc_interactive.metrics.nc4 import _nc4_core
from dnc_interactive.metrics.variability import _DETAIL_KEYS, NC1Details
from dnc_interactive.model import DUFM, Features
from dnc_interactive.validation import ParameterError


def _features(model: DUFM, features: Features | None) -> Features:
    if features is None:
        with torch.no_grad():
            features = model.forward()
    return features


def _layer_sets(model: DUFM, features: Features) -> list[tuple[int, str, Tensor]]:
    """(layer, kind, features) for l = 1..L, kinds pre and post (not converted)."""
    out = []
    for l in range(1, model.config.L + 1):
        out += [(l, "pre", features.pre[l - 1]), (l, "post", features.post[l - 1])]
    return out


def _stack_padded(mats: list[Tensor], cols: int = 0) -> Tensor:
    """Stack 2-D tensors into one float64 batch, zero-padded to the largest shape (and >= cols).

    Zero rows/columns change none of the metrics (norms, Gram matrices, singular values and the
    projections all ignore them), so layers of different widths share one batch.
    """
    shapes = {tuple(m.shape) for m in mats}
    cols = max(cols, *(m.shape[1] for m in mats))
    if len(shapes) == 1 and mats[0].shape[1] == cols:
        return torch.stack([m.detach() for m in mats]).to(F64)
    rows = max(m.shape[0] for m in mats)
    out = torch.zeros(len(mats), rows, cols, dtype=F64, device=mats[0].device)
    for i, m in enumerate(mats):
        out[i, : m.shape[0], : m.shape[1]] = m.detach()
    return out


def _set_name(l: int, kind: str) -> str:
    return "H1" if l == 1 else ("H~" if kind == "pre" else "H") + f"_{l}"


#: Largest entries in [2^-200, 2^200] (or exactly 0): products and norms of such matrices can
#: neither overflow nor underflow, so the model-level helpers skip the scaling (same values).
_SAFE_EXP = 200.0


def _screen(named: list[tuple[str, Tensor]], batch: Tensor, batch_names: list[str]) -> bool:
    """One device sync: raise ValueError naming every non-finite tensor, and return whether
    any entry magnitude lies outside the safe range (then the cores scale their inputs)."""
    peaks = torch.cat(
        [batch.abs().amax(dim=(-2, -1)), torch.stack([t.detach().abs().amax() for _, t in named])]
    ).tolist()
    names = [*batch_names, *(n for n, _ in named)]
    bad = [n for n, v in zip(names, peaks, strict=True) if not math.isfinite(v)]
    if bad:
        raise ValueError(
            f"the model's {', '.join(bad)} contain non-finite values (NaN or inf): the collapse"
            " metrics are undefined for them (did the training diverge?)"
        )
    lo, hi = 2.0**-_SAFE_EXP, 2.0**_SAFE_EXP
    return any(v != 0.0 and not lo <= v <= hi for v in peaks)


def _layer_rows(
    model: DUFM, features: Features | None = None, details: bool = False, extended: bool = False
) -> tuple[list[tuple[int, str, str, float]], dict[tuple[int, str], NC1Details]]:
    """:func:`layer_metric_rows` (with ``extended``, its extended rows after the standard
    ones) and, with ``details``, each feature set's NC1Details."""
    features = _features(model, features)
    cfg = model.config
    K, L = cfg.K, cfg.L
    y = model.labels
    E = torch.nn.functional.one_hot(y, K).to(F64).T  # every class has >= 1 sample (config)
    A = (E / E.sum(1, keepdim=True)).T

    # Distinct feature tensors (H~_1 is H_1; with a linear activation pre is post throughout).
    sets = _layer_sets(model, features)
    unique: list[Tensor] = []
    names: list[str] = []
    slot: list[int] = []
    for l, kind, X in sets:
        j = next((i for i, u in enumerate(unique) if u is X), None)
        if j is None:
            unique.append(X)
            names.append(_set_name(l, kind))
            j = len(unique) - 1
        slot.append(j)
    batch = _stack_padded(unique)
    weights = [(f"W_{l}", model.W[l - 1]) for l in range(1, L + 1)]
    scaled = _screen([*weights, ("Z", features.output)], batch, names)
    unit = _unit if scaled else _same
    dims = torch.tensor([u.shape[0] for u in unique], device=batch.device)
    stats = _feature_cores(
        batch, A, E, NC1_RCOND, RANK_RTOL, dims, scaled=scaled, details=details, extended=extended
    )
    table = torch.stack([stats[name] for name in FEATURE_METRICS], dim=1)  # (B, 8)
    extra = [torch.stack([stats[k] for k in _DETAIL_KEYS], dim=1).flatten()] if details else []

    post = [slot[2 * (l - 1) + 1] for l in range(1, L + 1)]  # batch index of H_l
    Ws = [model.W[l - 1] for l in range(1, L)]
    weight_vals = []
    if Ws:
        Wb = _stack_padded(Ws, cols=stats["UM"].shape[-2])
        idx = torch.tensor(post[:-1], device=y.device)
        weight_vals.append(_dnc3_core(unit(Wb), stats["UM"][idx], stats["sM"][idx], NC1_RCOND))
    W_L = unit(_f64(model.W[L - 1]))
    d_L = W_L.shape[1]
    M_L = stats["M"][post[-1], :d_L]  # scaled by stats["scale"][post[-1]], as X_L below
    weight_vals.append(_nc3_core(W_L, unit(M_L))[None])
    X_L = _f64(features.post[L - 1])
    if scaled:
        X_L = X_L / stats["scale"][post[-1]]
    Z = W_L @ X_L  # argmax only: any positive scale
    q = torch.diagonal(_f64(features.output) @ A)  # the model's own Z, as output_scale_frame
    out_vals = torch.cat([_nc4_core(X_L, M_L, Z)[None], q])
    if extended:
        norms = torch.linalg.vector_norm(stats["M"], dim=-2) * stats["scale"][..., 0]
        ext = torch.cat(
            [torch.stack([stats[k] for k in EXTENDED_METRICS], dim=1)]
            + [stats["nc1_class"], stats["cdnv_class"], norms],
            dim=1,
        )  # (B, 3 + 3K), in the order of _extended_rows
        per = _nc3_class_core(W_L, M_L)
        extra += [ext.flatten(), _nc3_general_core(per, W_L, M_L)[None], per]
    values = torch.cat([table.flatten(), *weight_vals, out_vals, *extra]).tolist()

    n = len(FEATURE_METRICS)
    nd = len(_DETAIL_KEYS)
    rows: list[tuple[int, str, str, float]] = []
    nc1_info: dict[tuple[int, str], NC1Details] = {}
    tail_start = table.numel() + L + 1 + K
    for i, (l, kind, _) in enumerate(sets):
        base = slot[i] * n
        rows += [(l, kind, m, values[base + j]) for j, m in enumerate(FEATURE_METRICS)]
        if details:
            nc1_info[(l, kind)] = NC1Details._from(values[tail_start + nd * slot[i] :][:nd])
        if kind == "post":
            rows.append((l, "weight", "nc3", values[table.numel() + l - 1]))
    tail = values[table.numel() + L :]
    rows.append((L + 1, "output", "nc4", tail[0]))
    rows += [(L + 1, "output", f"q_{k}", tail[1 + k]) for k in range(K)]
    if extended:
        start = tail_start + (nd * len(unique) if details else 0)
        rows += _extended_rows(sets, slot, values[start:], K, L)
    return rows, nc1_info


def _extended_rows(
    sets: list[tuple[int, str, Tensor]], slot: list[int], ext: list[float], K: int, L: int
) -> list[tuple[int, str, str, float]]:
    """The rows of ``layer_metric_rows(extended=True)`` after the standard ones, from the
    flattened (B, 3 + 3K) per-set table followed by nc3_general and the K nc3_class_k."""
    width = len(EXTENDED_METRICS) + len(CLASS_METRICS) * K
    names = [*EXTENDED_METRICS, *(class_metric(c, k) for c in CLASS_METRICS for k in range(K))]
    rows: list[tuple[int, str, str, float]] = []
    for i, (l, kind, _) in enumerate(sets):
        vals = ext[slot[i] * width :][:width]
        rows += [(l, kind, name, v) for name, v in zip(names, vals, strict=True)]
    weight = ext[(max(slot) + 1) * width :]
    rows.append((L, "weight", "nc3_general", weight[0]))
    rows += [(L, "weight", class_metric("nc3_class", k), weight[1 + k]) for k in range(K)]
    return rows


@torch.no_grad()
def layer_metric_rows(
    model: DUFM, features: Features | None = None, *, extended: bool = False
) -> list[tuple[int, str, str, float]]:
    """Per-layer DNC metrics as tidy ``(layer, kind, metric, value)`` rows (theory §3).

    Schema (a contract with the trainer's history and the charts):

    * layers l = 1..L, kinds ``"pre"`` (H~_l) and ``"post"`` (H_l): the metrics of
      :data:`FEATURE_METRICS` (nc1, nc1_trace, nc2_orth, nc2_etf, equinorm, coherence, rank,
      mean_norm = mean_c ||mu_c||). Layer 1 has pre == post == H1; both are emitted.
    * layers l = 1..L, kind ``"weight"``: metric ``"nc3"`` = :func:`nc3_self_duality` (W_L, M_L)
      for l = L and :func:`dnc3_subspace` (W_l, M_l) for l < L, with M_l the post-activation
      class means of W_l's input.
    * layer L+1, kind ``"output"``: ``"nc4"`` (:func:`nc4_ncc_mismatch` with X = H_L, W = W_L)
      and ``"q_0"``..``"q_{K-1}"``, q_k = mean over the samples of class k of Z[k, i].

    Rows come in this order: for each layer its pre metrics, post metrics and weight metric,
    then the output rows. Values are the same as the one-shot functions'. For speed, all
    layers are processed as one zero-padded float64 batch (each class-mean matrix is computed
    once) and the values leave the device in one transfer. ``features`` (from
    ``model.forward()``) is reused when given. Non-finite features or weights raise
    ``ValueError`` naming the tensor (H1, H~_l, H_l, W_l or Z).

    ``extended=True`` appends, after exactly the rows above, the imbalance-aware and
    per-class rows (theory §3.7-§3.9), so that a run at the imbalanced optimum reads as
    collapsed and no minority-class signal is averaged away:

    * for each layer l = 1..L and kind ``"pre"`` / ``"post"``: the metrics of
      :data:`EXTENDED_METRICS` (nc2_general_orth, cdnv, cdnv_max) and, per class k, those of
      :data:`CLASS_METRICS` named by :func:`class_metric` (``nc1_class_k``,
      ``cdnv_class_k``, ``norm_class_k`` = ||mu_k||), set by set in the order of the rows
      above;
    * layer L, kind ``"weight"``: ``"nc3_general"`` (:func:`nc3_general` of W_L, M_L) and
      ``nc3_class_k`` (:func:`nc3_per_class`).
    """
    return _layer_rows(model, features, extended=extended)[0]


@torch.no_grad()
def nc1_layer_details(
    model: DUFM, features: Features | None = None
) -> dict[tuple[int, str], NC1Details]:
    """:class:`NC1Details` of every feature set, keyed ``(layer, kind)`` with kinds "pre" and
    "post" for l = 1..L (computed with :func:`layer_metric_rows`' batch).

    ``all(d.collapsed(tol) for d in nc1_layer_details(model).values())`` is the honest
    "every layer has collapsed" test: it fails when a layer's class means have not separated
    along a direction the NC1 cut-off dropped.
    """
    return _layer_rows(model, features, details=True)[1]


def _max_or_nan(values: Sequence[float]) -> float:
    return math.nan if any(math.isnan(v) for v in values) else max(values)


def collapse_report(model: DUFM, kind: str = "post", per_class: bool = False) -> pd.DataFrame:
    """Per-layer DNC summary as a DataFrame (theory §3).

    One row per layer (``kind="pre"`` or ``"post"``) or per layer x kind (``kind="both"``),
    with columns ``layer`` (1..L), ``kind``, nc1, nc1_trace, nc2_orth, nc2_etf, equinorm,
    coherence, nc3 (the weight metric of that layer: self-duality for L, subspace error below),
    rank, mean_norm, ``nc1_dropped`` (directions of Sigma_B that NC1's pseudo-inverse cut-off
    dropped, out of min(d, K - 1); NC1 does not see the within-class variance along them),
    ``nc1_hidden`` (a lower bound on what they would add to NC1, see :class:`NC1Details`) and
    ``collapsed`` (``nc1 + nc1_hidden < 1e-2``: never True for a layer whose class means
    have not separated). Built from :func:`layer_metric_rows`.

    Then the imbalance-aware columns (theory §3.7-§3.9), which read 0 at the optimum for any
    class sizes: ``nc2_general_orth``, ``nc3_general`` (:func:`nc3_general` for layer L; for
    l < L the subspace error ``nc3``, which already holds for unequal class sizes), ``cdnv``,
    ``cdnv_max`` (the worst pair of classes) and ``nc1_class_max`` (the worst class's
    :func:`nc1_per_class`), so that one unconverged minority class shows in the summary.
    ``per_class=True`` adds, per class k, ``nc1_class_k``, ``cdnv_class_k``,
    ``norm_class_k`` (||mu_k||) and ``nc3_class_k`` (:func:`nc3_per_class`, layer L only;
    ``nan`` below).
    """
    if kind not in ("pre", "post", "both"):
        raise ParameterError("kind", kind, "'pre', 'post' or 'both'")
    if not isinstance(per_class, bool):
        raise ParameterError("per_class", per_class, "True or False")
    with torch.no_grad():
        rows, info = _layer_rows(model, details=True, extended=True)
    K, L = model.config.K, model.config.L
    kinds = ("pre", "post") if kind == "both" else (kind,)
    weight = {(l, m): v for l, k, m, v in rows if k == "weight"}
    records: dict[tuple[int, str], dict] = {}
    for l, k, m, v in rows:
        if k in kinds:
            records.setdefault((l, k), {"layer": l, "kind": k})[m] = v
    ordered = sorted(records, key=lambda lk: (lk[0], kinds.index(lk[1])))
    nc1_cls = [class_metric("nc1_class", k) for k in range(K)]
    nc3_cls = [class_metric("nc3_class", k) for k in range(K)]
    data = []
    for lk in ordered:
        l = lk[0]
        rec = records[lk]
        rec["nc3"] = weight[(l, "nc3")]
        rec["rank"] = int(rec["rank"])
        d = info[lk]
        rec["nc1_dropped"] = d.dropped
        rec["nc1_hidden"] = d.hidden
        rec["collapsed"] = d.collapsed(COLLAPSE_TOL)
        rec["nc3_general"] = weight[(l, "nc3_general")] if l == L else rec["nc3"]
        rec["nc1_class_max"] = _max_or_nan([rec[c] for c in nc1_cls])
        for c in nc3_cls:
            rec[c] = weight[(l, c)] if l == L else math.nan
        data.append(rec)
    columns = [
        "layer",
        "kind",
        *FEATURE_METRICS[:6],
        "nc3",
        "rank",
        "mean_norm",
        "nc1_dropped",
        "nc1_hidden",
        "collapsed",
        "nc2_general_orth",
        "nc3_general",
        "cdnv",
        "cdnv_max",
        "nc1_class_max",
    ]
    if per_class:
        columns += [class_metric(c, k) for c in CLASS_METRICS for k in range(K)] + nc3_cls
    return pd.DataFrame(data, columns=columns)
