"""NC4: agreement of the classifier with the nearest class centre (theory §3.5).

The fraction of samples whose ``argmax_c (W x)_c`` differs from ``argmin_c ||x - mu_c||``
(Papyan's ``NCC_mismatch``), as a batched core and the checked one-shot function.
"""

from __future__ import annotations

from torch import Tensor

from dnc_interactive.metrics._checks import _check_matrix, _check_xy
from dnc_interactive.metrics._scaling import _unit
from dnc_interactive.metrics.means import _mean_operator
from dnc_interactive.metrics.names import F64


def _nc4_core(X: Tensor, M: Tensor, Z: Tensor) -> Tensor:
    """``X`` and ``M`` must be scaled alike (the nearest mean does not change), ``Z`` any way."""
    ncc = ((M * M).sum(0)[:, None] - 2.0 * (M.T @ X)).argmin(dim=0)
    return (Z.argmax(dim=0) != ncc).to(F64).mean()


def nc4_ncc_mismatch(X: Tensor, y: Tensor, W: Tensor, num_classes: int | None = None) -> float:
    """NC4: fraction of samples with ``argmax_c (W x)_c != argmin_c ||x - mu_c||`` (theory §3).

    Papyan's ``NCC_mismatch`` [S9]; the means are computed from ``X`` and ``y``. Ties go to
    the lowest class index on both sides.
    """
    W = _check_matrix("W", W, what="one per class")
    if num_classes is None and W.shape[0] < 2:
        raise ValueError(
            f"W has shape {tuple(W.shape)}: K = {W.shape[0]} class row(s), the collapse metrics"
            " compare classes and need K >= 2"
        )
    X, y, K = _check_xy(X, y, num_classes if num_classes is not None else W.shape[0])
    if W.shape[1] != X.shape[0] or W.shape[0] != K:
        raise ValueError(f"W has shape {tuple(W.shape)}, expected ({K}, {X.shape[0]})")
    A, _ = _mean_operator(y, K)
    X = _unit(X)
    return float(_nc4_core(X, X @ A, _unit(W) @ X))
