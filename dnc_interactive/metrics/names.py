"""The metric names and default cut-offs of the collapse metrics: the history schema.

The names emitted per layer and kind by :func:`~dnc_interactive.metrics.layer_metric_rows`
(:data:`FEATURE_METRICS`, the imbalance-aware :data:`EXTENDED_METRICS` and the per-class
:data:`CLASS_METRICS`, theory §3.7-§3.9), the per-class row name :func:`class_metric`, the
float64 dtype every metric computes in and the relative cut-offs of NC1's pseudo-inverse
(theory §3.2), the numerical rank (theory §3.6) and the ``collapsed`` verdict.
"""

from __future__ import annotations

import torch

F64 = torch.float64


NC1_RCOND = 1e-6


RANK_RTOL = 1e-3


#: NC1 threshold of :func:`collapse_report`'s ``collapsed`` column.
COLLAPSE_TOL = 1e-2


#: Metrics emitted per layer and kind ("pre"/"post") by :func:`layer_metric_rows`.
FEATURE_METRICS: tuple[str, ...] = (
    "nc1",
    "nc1_trace",
    "nc2_orth",
    "nc2_etf",
    "equinorm",
    "coherence",
    "rank",
    "mean_norm",
)


#: Imbalance-aware metrics emitted per layer and kind ("pre"/"post") by
#: ``layer_metric_rows(extended=True)`` (theory §3.7, §3.8): :func:`nc2_general_orth`,
#: :func:`cdnv` and the largest pairwise CDNV.
EXTENDED_METRICS: tuple[str, ...] = ("nc2_general_orth", "cdnv", "cdnv_max")


#: Per-class metrics emitted per layer and kind by ``layer_metric_rows(extended=True)``, one
#: row ``f"{name}_{k}"`` per class k (:func:`class_metric`; theory §3.9): the per-class NC1
#: (:func:`nc1_per_class`), per-class CDNV (:func:`cdnv_per_class`) and the norm ||mu_k||.
CLASS_METRICS: tuple[str, ...] = ("nc1_class", "cdnv_class", "norm_class")


def class_metric(name: str, k: int) -> str:
    """The history name of per-class metric ``name`` for class ``k``: ``f"{name}_{k}"``
    (``nc1_class_0``, ``nc3_class_1``, ...; theory §3.9)."""
    return f"{name}_{k}"
