"""The geometry of the class means: NC2, equinorm, coherence, the general frame (theory §3.3, §3.8).

The normalised Gram errors against the orthogonal frame and the simplex ETF (NC2, theory
§3.3), the equinorm and coherence errors of the centred means, the Gram heat-map
(:func:`gram`) and the imbalance-aware general orthogonal frame with its norm profile
(:func:`nc2_general_orth`, :func:`norm_ratio_error`, theory §3.8). Each public function is a
``float()`` around a batched core (``_*_core``) that the model-level helpers call directly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from dnc_interactive.metrics._checks import _check_matrix, _check_means
from dnc_interactive.metrics._scaling import _nan_like, _nonzero, _pow2_scale, _unit, _unit_columns
from dnc_interactive.metrics.means import _centre
from dnc_interactive.metrics.names import F64
from dnc_interactive.validation import ParameterError


def _normalised_gram_error(M: Tensor, target: Tensor) -> Tensor:
    """|| G/||G||_F - target ||_F for G = M^T M (M scaled to entries ~ 1 by the caller)."""
    G = M.mT @ M
    norm = torch.linalg.matrix_norm(G)[..., None, None]
    return torch.linalg.matrix_norm(G / norm - target)


def _nc2_orth_core(M: Tensor) -> Tensor:
    K = M.shape[-1]
    eye = torch.eye(K, dtype=F64, device=M.device)
    return _normalised_gram_error(M, eye / math.sqrt(K))


def _nc2_etf_core(Mbar: Tensor) -> Tensor:
    K = Mbar.shape[-1]
    eye = torch.eye(K, dtype=F64, device=Mbar.device)
    return _normalised_gram_error(Mbar, (eye - 1.0 / K) / math.sqrt(K - 1))


def _equinorm_core(Mbar: Tensor) -> Tensor:
    """std_c / mean_c of the norms ||mu_c - mu_G|| (the columns of Mbar)."""
    norms = torch.linalg.vector_norm(Mbar, dim=-2)
    return norms.std(dim=-1, correction=0) / norms.mean(dim=-1)


def _coherence_core(Mbar: Tensor) -> Tensor:
    K = Mbar.shape[-1]
    norms = torch.linalg.vector_norm(Mbar, dim=-2)
    cos = (Mbar.mT @ Mbar) / (norms[..., :, None] * norms[..., None, :])
    off = ~torch.eye(K, dtype=torch.bool, device=Mbar.device)
    return ((cos + 1.0 / (K - 1)).abs() * off).sum((-2, -1)) / (K * (K - 1))


def _centred_cores(Mbar: Tensor) -> dict[str, Tensor]:
    """``nc2_etf``, ``equinorm`` and ``coherence`` of the (scaled) centred means, in that order."""
    return {
        "nc2_etf": _nc2_etf_core(Mbar),
        "equinorm": _equinorm_core(Mbar),
        "coherence": _coherence_core(Mbar),
    }


def _nc2_general_orth_core(M: Tensor) -> Tensor:
    """sqrt(mean_{c != c'} cos^2(mu_c, mu_c')), cos = 0 next to a zero column; nan for M = 0."""
    K = M.shape[-1]
    U = _unit_columns(M)
    C = U.mT @ U
    off = ~torch.eye(K, dtype=torch.bool, device=M.device)
    val = (torch.where(off, C, 0.0).pow(2).sum((-2, -1)) / (K * (K - 1))).sqrt()
    return torch.where(_nonzero(M), val, _nan_like(val))


def nc2_orthogonal(M: Tensor) -> float:
    """NC2 orthogonal-frame error ``|| M^T M/||M^T M||_F - I_K/sqrt(K) ||_F`` (theory §3, NC2).

    Uncentred (bias-free MSE, [S7] ``compute_NC2_Identity``): 0 iff the class means are
    orthogonal with equal norms. ``nan`` for M = 0. Scale-safe: M is normalised before its
    Gram matrix is formed.
    """
    return float(_nc2_orth_core(_unit(_check_means(M))))


def nc2_etf(M: Tensor) -> float:
    """NC2 simplex-ETF error (theory §3, NC2; [S7], [S8]).

    ``|| Mbar^T Mbar/||Mbar^T Mbar||_F - (I_K - 1 1^T/K)/sqrt(K-1) ||_F`` with
    ``Mbar = M - mu_G 1^T`` and mu_G the mean of the columns. 0 iff the centred means form a
    simplex ETF (a centred orthogonal frame is one). ``nan`` when all columns are equal.
    """
    return float(_nc2_etf_core(_unit(_centre(_unit(_check_means(M))))))


def equinorm(M: Tensor) -> float:
    """Equinorm error ``std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||`` (theory §3, NC2).

    Papyan's ``norm_M_CoV`` [S9]. The standard deviation is the *population* one
    (``correction=0``, i.e. ``unbiased=False``: divide by K, not K - 1), so K equal-spread
    norms give the same value whatever K. ``nan`` when all columns are equal.
    """
    return float(_equinorm_core(_unit(_centre(_unit(_check_means(M))))))


def coherence(M: Tensor) -> float:
    """Coherence error ``mean_{c != c'} |cos(mu_c - mu_G, mu_c' - mu_G) + 1/(K-1)|`` (theory §3).

    Papyan's ``cos_M`` [S9]: 0 for a simplex ETF. ``nan`` when a centred mean is 0.
    """
    return float(_coherence_core(_unit(_centre(_unit(_check_means(M))))))


def gram(M: Tensor) -> Tensor:
    """Normalised Gram matrix ``M^T M / ||M^T M||_F`` (K x K, float64; theory §3, NC2 heat-map).

    All zeros for M = 0. Scale-safe (M is normalised before the product).
    """
    M = _unit(_check_matrix("M", M))
    G = M.T @ M
    n = torch.linalg.matrix_norm(G)
    return G / n if float(n) > 0 else G


def nc2_general_orth(M: Tensor) -> float:
    """General-orthogonal-frame error ``sqrt(mean_{c != c'} cos^2(mu_c, mu_c'))`` (theory §3.8).

    Uncentred, like :func:`nc2_orthogonal`, but the norms are free: 0 iff the class means are
    mutually orthogonal, whatever their lengths (the imbalanced optimum of theory §6.1, where
    ``M_l^T M_l = diag(b_{l,k}^2)``; Dang et al.'s "general orthogonal frame" [S14]). Every
    pair of classes counts alike, whatever the norms. A zero column (a class collapsed to 0,
    theory §6.2) is orthogonal to everything; ``nan`` for M = 0. Scale-safe per column.
    """
    return float(_nc2_general_orth_core(_check_means(M)))


def norm_ratio_error(M: Tensor, target_norms: Tensor | Sequence[float]) -> float:
    """Class-mean norms against a target profile, ``|| r/||r|| - t/||t|| ||`` (theory §3.8).

    ``r_k = ||mu_k||`` are the norms of the columns of M (d, K) and ``t`` the K target norms,
    e.g. the optimum's ``theory.layer_norms(config)[l - 1]`` (a_k for H_1, b_{l,k} for H_l).
    Scale-invariant: only the ratios between classes matter. With
    :func:`nc2_general_orth` it checks the whole general orthogonal frame of the imbalanced
    optimum: orthogonal means *and* the predicted relative lengths. With equal targets it is
    an uncentred equinorm. ``nan`` for M = 0.

    Raises:
        ValueError: ``target_norms`` is not K finite non-negative numbers with one > 0.
    """
    M = _check_means(M)
    K = M.shape[1]
    allowed = f"{K} finite numbers >= 0, not all 0 (one per column of M)"
    try:
        t = torch.as_tensor(target_norms, dtype=F64).to(M.device)
    except (TypeError, ValueError, RuntimeError):
        raise ParameterError("target_norms", target_norms, allowed) from None
    if (
        t.shape != (K,)
        or not bool(torch.isfinite(t).all())
        or bool((t < 0).any())
        or not bool((t > 0).any())
    ):
        raise ParameterError("target_norms", target_norms, allowed)
    r = torch.linalg.vector_norm(_unit(M), dim=0)
    if not bool((r > 0).any()):
        return math.nan
    t = t / _pow2_scale(t[None])[0, 0]
    return float(torch.linalg.vector_norm(r / r.norm() - t / t.norm()))
