"""Class-distance normalised variance, per pair, per class and on average (theory §3.7, §3.9).

``CDNV_ij = (Var_i + Var_j) / (2 ||mu_i - mu_j||^2)`` (Galanti, Gyorgy & Hutter, ICLR 2022),
with Var_k the mean squared distance of class k's samples to their mean: every pair of classes
counts alike, whatever the class sizes. Batched cores (:func:`_class_variances`,
:func:`_cdnv_core`, :func:`_cdnv_summary`) and the one-shot functions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from dnc_interactive.metrics._checks import _check_xy
from dnc_interactive.metrics._scaling import _unit
from dnc_interactive.metrics.means import _mean_operator


def _class_variances(R: Tensor, A: Tensor) -> Tensor:
    """(..., K) Var_k = mean_{i in class k} ||r_i||^2 of the residuals R = X - M[:, y]
    (..., d, N), with ``A`` (N, K) the class averaging operator."""
    return R.pow(2).sum(-2) @ A


def _cdnv_core(M: Tensor, var: Tensor) -> Tensor:
    """(..., K, K) CDNV matrix (Var_i + Var_j) / (2 ||mu_i - mu_j||^2) from the class means M
    (..., d, K) and the class variances ``var`` (..., K); 0 on the diagonal and nan where two
    means coincide."""
    K = M.shape[-1]
    D2 = (M[..., :, :, None] - M[..., :, None, :]).pow(2).sum(-3)
    num = 0.5 * (var[..., :, None] + var[..., None, :])
    C = torch.where(D2 > 0, num / torch.where(D2 > 0, D2, torch.ones_like(D2)), math.nan)
    eye = torch.eye(K, dtype=torch.bool, device=M.device)
    return torch.where(eye, 0.0, C)


def _cdnv_summary(C: Tensor) -> dict[str, Tensor]:
    """Mean over the pairs i != j (``cdnv``), the largest pair (``cdnv_max``) and the per-class
    row means ``cdnv_class`` (..., K) of a CDNV matrix; nan propagates."""
    K = C.shape[-1]
    off = ~torch.eye(K, dtype=torch.bool, device=C.device)
    return {
        "cdnv": C.sum((-2, -1)) / (K * (K - 1)),
        "cdnv_max": torch.where(off, C, -math.inf).amax((-2, -1)),
        "cdnv_class": C.sum(-1) / (K - 1),
    }


def cdnv_matrix(X: Tensor, y: Tensor, num_classes: int | None = None) -> Tensor:
    """Class-distance normalised variance of every pair of classes, (K, K) float64 (theory §3.7).

    ``CDNV_ij = (Var_i + Var_j) / (2 ||mu_i - mu_j||^2)`` for i != j (Galanti, Gyorgy &
    Hutter, ICLR 2022, arXiv 2112.15121), with ``Var_k = (1/n_k) sum_{i: y_i = k}
    ||x_i - mu_k||^2`` the mean squared distance of class k's samples to their mean.
    Symmetric; the diagonal is 0 by convention (the CDNV is defined for i != j only); an
    entry is ``nan`` where the two means coincide. Scale-invariant and computed scale-safely.

    Raises:
        ValueError: non-finite or empty ``X``, fewer than 2 classes, bad labels, an empty class.
    """
    X, y, K = _check_xy(X, y, num_classes)
    A, _ = _mean_operator(y, K)
    X = _unit(X)
    M = X @ A
    return _cdnv_core(M, _class_variances(X - M[:, y], A))


def cdnv(X: Tensor, y: Tensor, num_classes: int | None = None) -> float:
    """Mean CDNV over the pairs of classes (theory §3.7; Galanti et al., ICLR 2022).

    ``cdnv = (1/(K(K-1))) sum_{i != j} CDNV_ij`` with CDNV_ij as in :func:`cdnv_matrix`. It
    tends to 0 under NC1; unlike NC1 every pair counts alike, whatever the class sizes.
    ``nan`` when two class means coincide. Raises as :func:`cdnv_matrix`.
    """
    return float(_cdnv_summary(cdnv_matrix(X, y, num_classes))["cdnv"])


def cdnv_per_class(X: Tensor, y: Tensor, num_classes: int | None = None) -> Tensor:
    """Per-class CDNV ``(1/(K-1)) sum_{j != k} CDNV_kj``, (K,) float64 (theory §3.7, §3.9).

    The row means of :func:`cdnv_matrix`: how far class k is from having collapsed relative
    to its distance to the other classes. Their mean is :func:`cdnv`.
    """
    return _cdnv_summary(cdnv_matrix(X, y, num_classes))["cdnv_class"]
