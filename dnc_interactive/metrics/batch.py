"""Every feature metric of a batch of feature matrices in one pass, and the one-shot NC1
functions that read a single matrix through it (theory §3.1-§3.3, §3.6-§3.9).

:func:`_feature_cores` scales a (B, d, N) batch, forms the class means once, takes one
batched SVD and evaluates the cores of :mod:`~dnc_interactive.metrics.variability`,
:mod:`~dnc_interactive.metrics.geometry`, :mod:`~dnc_interactive.metrics.spectrum` and
:mod:`~dnc_interactive.metrics.class_distance` on it; :func:`nc1`, :func:`nc1_details`,
:func:`nc1_trace` and :func:`nc1_per_class` are that pass on a batch of one. No d x d matrix
is formed or inverted: every between-class quantity comes from the SVD of the (d, K) means.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dnc_interactive.metrics._checks import _check_tolerance, _check_xy
from dnc_interactive.metrics._scaling import _pow2_scale, _same, _unit
from dnc_interactive.metrics.class_distance import _cdnv_core, _cdnv_summary, _class_variances
from dnc_interactive.metrics.geometry import _centred_cores, _nc2_general_orth_core, _nc2_orth_core
from dnc_interactive.metrics.means import _centre, _mean_operator, _onehot_rows
from dnc_interactive.metrics.names import F64, NC1_RCOND, RANK_RTOL
from dnc_interactive.metrics.spectrum import _rank_core
from dnc_interactive.metrics.variability import (
    _DETAIL_KEYS,
    NC1Details,
    _nc1_class_core,
    _nc1_core,
    _separation_core,
    _trace_ratio_core,
)


def _feature_cores(
    X: Tensor,
    A: Tensor,
    E: Tensor,
    rcond: float,
    rtol: float,
    dims: Tensor | None = None,
    *,
    scaled: bool = True,
    details: bool = True,
    extended: bool = False,
) -> dict:
    """Per-layer feature metrics of a batch (B, d, N) of float64 feature matrices.

    ``A`` (N, K) maps features to class means (``X @ A = M``), ``E`` (K, N) is the one-hot
    label matrix (``M @ E = M[:, y]``), ``dims`` (B,) the true feature dimension of each
    matrix when the batch is zero-padded (default d). Returns (B,) tensors for the metrics of
    :data:`FEATURE_METRICS`, with ``details`` NC1's ``nc1_kept`` / ``nc1_dropped`` /
    ``nc1_hidden`` and the separation of the means, and the intermediate ``scale`` (B, 1, 1)
    (the power of two the features were divided by), the scaled class means
    ``M`` = (X / scale) @ A and their SVD (UM, sM). ``scaled=False`` skips the scaling (for
    entries known to lie far from overflow and underflow; the values are bitwise the same).
    ``extended`` adds the imbalance-aware and per-class metrics of theory §3.7-§3.9:
    ``nc2_general_orth``, ``cdnv``, ``cdnv_max`` (B,) and ``nc1_class``, ``cdnv_class`` (B, K).
    """
    N, K = A.shape
    B = X.shape[0]
    unit = _unit if scaled else _same
    if scaled:
        scale = _pow2_scale(X)
        X = X / scale
    else:
        scale = torch.ones(B, 1, 1, dtype=X.dtype, device=X.device)
    M = X @ A
    R = X - M @ E
    Mbar = _centre(M)
    Us, ss, _ = torch.linalg.svd(torch.cat([Mbar, M]), full_matrices=False)  # one LAPACK batch
    U, s, UM, sM = Us[:B], ss[:B], Us[B:], ss[B:]
    P2 = (U.mT @ R).pow(2)
    quad = P2.sum(-1) / N
    Mbu = unit(Mbar)  # the centred means can be much smaller than the samples
    if dims is None:
        dims = torch.full((B,), X.shape[-2], device=X.device)
    rmax = torch.clamp(dims.to(X.device), max=K - 1)
    out = {
        "M": M,
        "scale": scale,
        "UM": UM,
        "sM": sM,
        **_nc1_core(s, quad, rcond, rmax, details),
        "nc1_trace": _trace_ratio_core(R.pow(2).sum((-2, -1)) / N, s.pow(2).sum(-1) / K),
        "nc2_orth": _nc2_orth_core(unit(M)),
        **_centred_cores(Mbu),
        "rank": _rank_core(sM, rtol).to(F64),
        "mean_norm": torch.linalg.vector_norm(M, dim=-2).mean(-1) * scale[..., 0, 0],
    }
    if details:
        out.update(_separation_core(Mbu, rcond))
    if extended:
        out["nc2_general_orth"] = _nc2_general_orth_core(M)
        out["nc1_class"] = _nc1_class_core(U, s, P2, A, rcond, rmax)
        out.update(_cdnv_summary(_cdnv_core(M, _class_variances(R, A))))
    return out


def _one_shot_cores(
    X: Tensor, y: Tensor, num_classes: int | None, rcond: float, extended: bool = False
) -> dict:
    X, y, K = _check_xy(X, y, num_classes)
    A, _ = _mean_operator(y, K)
    return _feature_cores(X[None], A, _onehot_rows(y, K), rcond, RANK_RTOL, extended=extended)


def nc1(X: Tensor, y: Tensor, rcond: float = NC1_RCOND, num_classes: int | None = None) -> float:
    """NC1 = tr(Sigma_W Sigma_B^+) / K (theory §3, NC1/DNC1; the definition of [S7], [S8]).

    The pseudo-inverse has a *relative* cut-off (theory §3, practical note): an eigenvalue of
    Sigma_B is kept iff it is larger than ``rcond`` times the largest eigenvalue of Sigma_B (the
    convention of ``numpy.linalg.pinv(Sigma_B, rcond)``). Since Sigma_B = (1/K) Mbar Mbar^T, its
    eigenvalues are s_i^2 / K for the singular values s_i of Mbar: direction i is kept iff
    ``s_i^2 > rcond * s_1^2`` (i.e. ``s_i > sqrt(rcond) * s_1``), for i < min(d, K - 1) (the
    centring makes the K-th direction zero by construction). ``rcond`` must lie in [0, 1).

    Computed without any d x d matrix: with Mbar = U diag(s) V^T,
    ``tr(Sigma_W Sigma_B^+)/K = sum_kept ||u_i^T (X - M[:, y])||^2 / (N s_i^2)``.
    Returns ``nan`` when Sigma_B = 0 (all class means equal). A small value does not say that
    every class has separated: see :func:`nc1_details` for the directions the cut-off dropped.

    Raises:
        ValueError: non-finite or empty ``X``, fewer than 2 classes, bad labels or ``rcond``.
    """
    return nc1_details(X, y, rcond, num_classes).value


def nc1_details(
    X: Tensor, y: Tensor, rcond: float = NC1_RCOND, num_classes: int | None = None
) -> NC1Details:
    """NC1 (as :func:`nc1`) with the number of directions its cut-off dropped (:class:`NC1Details`).

    Use ``nc1_details(X, y).collapsed(tol)`` rather than ``nc1(X, y) < tol`` to decide that a
    layer has collapsed: NC1 ignores the within-class variance along the directions the
    cut-off drops, so classes whose means have not separated can give a small NC1.
    """
    rcond = _check_tolerance("rcond", rcond)
    out = _one_shot_cores(X, y, num_classes, rcond)
    return NC1Details._from(torch.stack([out[k][0] for k in _DETAIL_KEYS]).tolist())


def nc1_trace(X: Tensor, y: Tensor, num_classes: int | None = None) -> float:
    """NC1' = tr(Sigma_W) / tr(Sigma_B) (theory §3, the robust NC1 alternative).

    ``tr(Sigma_W) = ||X - M[:, y]||_F^2 / N`` and ``tr(Sigma_B) = ||Mbar||_F^2 / K``. Returns
    ``nan`` when tr(Sigma_B) = 0 (all class means equal).
    """
    return float(_one_shot_cores(X, y, num_classes, NC1_RCOND)["nc1_trace"][0])


def nc1_per_class(
    X: Tensor, y: Tensor, rcond: float = NC1_RCOND, num_classes: int | None = None
) -> Tensor:
    """Per-class NC1 ``tr(Sigma_W^(k) Sigma_B^+) / K``, (K,) float64 (theory §3.9).

    ``Sigma_W^(k) = (1/n_k) sum_{i: y_i = k} (x_i - mu_k)(x_i - mu_k)^T`` is class k's own
    covariance and Sigma_B^+ is NC1's pseudo-inverse with the same relative cut-off
    ``rcond`` (theory §3.2). Since ``Sigma_W = sum_k (n_k/N) Sigma_W^(k)``,
    ``nc1 = sum_k (n_k/N) nc1_per_class[k]``: NC1 weights a class by its size, so a
    5-sample class that has not collapsed barely moves it; this breakdown shows it.
    ``nan`` (every entry) when all class means are equal.
    """
    rcond = _check_tolerance("rcond", rcond)
    return _one_shot_cores(X, y, num_classes, rcond, extended=True)["nc1_class"][0]
