"""Classifier-to-means alignment: NC3 self-duality, the DNC3 subspace error and the
imbalance-aware per-class NC3 (theory §3.4, §3.8).

``|| W/||W||_F - M^T/||M||_F ||_F`` for the last layer, ``|| W (I - P_M) ||_F / ||W||_F`` for the
layers below, and the row-by-row ``|| w_k/||w_k|| - mu_k/||mu_k|| ||`` with its root mean square,
which reads 0 at the imbalanced optimum. Public functions check their input and call the
batched cores (``_*_core``) that the model-level helpers use.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dnc_interactive.metrics._checks import _check_matrix, _check_means, _check_tolerance, _check_wm
from dnc_interactive.metrics._scaling import _nan_like, _nonzero, _unit, _unit_columns
from dnc_interactive.metrics.names import NC1_RCOND


def _nc3_core(W: Tensor, M: Tensor) -> Tensor:
    return torch.linalg.matrix_norm(
        W / torch.linalg.matrix_norm(W) - M.mT / torch.linalg.matrix_norm(M)
    )


def _dnc3_core(W: Tensor, U: Tensor, s: Tensor, rcond: float) -> Tensor:
    """||W (I - P) ||_F / ||W||_F with P = Uk Uk^T, Uk the left singular vectors of M kept."""
    Uk = U * (s > rcond * s[..., :1])[..., None, :]
    resid = W - (W @ Uk) @ Uk.mT
    return torch.linalg.matrix_norm(resid) / torch.linalg.matrix_norm(W)


def _nc3_class_core(W: Tensor, M: Tensor) -> Tensor:
    """(..., K): ||w_k/||w_k|| - mu_k/||mu_k||||, a zero row / column counting as the 0 vector."""
    return torch.linalg.vector_norm(_unit_columns(W.mT) - _unit_columns(M), dim=-2)


def _nc3_general_core(per_class: Tensor, W: Tensor, M: Tensor) -> Tensor:
    val = per_class.pow(2).mean(-1).sqrt()
    return torch.where(_nonzero(W) & _nonzero(M), val, _nan_like(val))


def nc3_self_duality(W: Tensor, M: Tensor) -> float:
    """NC3 self-duality error ``|| W/||W||_F - M^T/||M||_F ||_F`` (theory §3, NC3; [S7]).

    ``W`` is the last layer W_L (K, d) and ``M`` the (d, K) post-activation class means of its
    input H_L; uncentred (bias-free). ``nan`` if W or M is 0.
    """
    W, M = _check_matrix("W", W), _check_means(M)
    if W.shape != M.T.shape:
        raise ValueError(f"W has shape {tuple(W.shape)} but M^T has shape {tuple(M.T.shape)}")
    return float(_nc3_core(_unit(W), _unit(M)))


def dnc3_subspace(W: Tensor, M: Tensor, rcond: float = NC1_RCOND) -> float:
    """DNC3 subspace error ``|| W (I - P_M) ||_F / ||W||_F`` (theory §3, NC3/DNC3; [S6]).

    ``W`` is (d_out, d), ``M`` the (d, K) class means of W's input, P_M the orthogonal projector
    onto span(M) built from the left singular vectors of M whose singular value exceeds
    ``rcond`` (in [0, 1)) times the largest one (relative rank cut-off on the singular values
    of M itself). 0 iff every row of W lies in span(M); 1 for M = 0; ``nan`` for W = 0.
    """
    rcond = _check_tolerance("rcond", rcond)
    W, M = _check_matrix("W", W), _check_means(M)
    if W.shape[1] != M.shape[0]:
        raise ValueError(f"W has {W.shape[1]} columns but M has {M.shape[0]} rows")
    U, s, _ = torch.linalg.svd(_unit(M), full_matrices=False)
    return float(_dnc3_core(_unit(W), U, s, rcond))


def nc3_per_class(W: Tensor, M: Tensor) -> Tensor:
    """Per-class self-duality error ``|| w_k/||w_k|| - mu_k/||mu_k|| ||``, (K,) (theory §3.8).

    ``W`` is the last layer W_L (K, d), ``w_k`` its row k, ``M`` the (d, K) post-activation
    class means of its input. 0 iff classifier row k points along class mean k, whatever the
    two lengths; 2 when they point in opposite directions. A zero row or column counts as the
    zero vector (0 when both are 0: a class collapsed to 0, theory §6.2; 1 when only one is).
    """
    W, M = _check_wm(W, M)
    return _nc3_class_core(W, M)


def nc3_general(W: Tensor, M: Tensor) -> float:
    """Imbalance-aware NC3 ``sqrt((1/K) sum_k || w_k/||w_k|| - mu_k/||mu_k|| ||^2)`` (theory §3.8).

    The root mean square of :func:`nc3_per_class`: 0 iff ``W = D M^T`` for a diagonal D with
    positive entries on the classes that have not collapsed. At the optimum of theory §6.1,
    ``W_L = diag(q_k / b_{L,k}^2) M_L^T`` (theory §3.8), so this is 0 there for any class
    sizes, while :func:`nc3_self_duality` (which asks for D proportional to I) is not. For
    balanced classes at the optimum both are 0. ``nan`` if W or M is 0.
    """
    W, M = _check_wm(W, M)
    return float(_nc3_general_core(_nc3_class_core(W, M), W, M))
