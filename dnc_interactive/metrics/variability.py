"""NC1 from the SVD of the centred class means, and what its cut-off left out (theory §3.2).

``NC1 = tr(Sigma_W Sigma_B^+) / K`` with a relative pseudo-inverse cut-off (:func:`_nc1_core`),
the class-mean separation that tells whether every pair of classes is apart
(:func:`_separation_core`), the trace ratio NC1' (:func:`_trace_ratio_core`), the per-class NC1
of theory §3.9 (:func:`_nc1_class_core`) and :class:`NC1Details`, NC1 with the directions its
cut-off dropped. The cores accept a leading batch dimension; the one-shot functions
(:func:`~dnc_interactive.metrics.nc1` and friends) read them through
:mod:`dnc_interactive.metrics.batch`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from dnc_interactive.metrics._scaling import _nan_like
from dnc_interactive.metrics.names import F64


def _nc1_keep(s: Tensor, rcond: float, rmax: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(s^2, kept, structural) masks of NC1's cut-off (see :func:`_nc1_core`): direction i is
    structural iff i < rmax and kept iff also s_i^2 > rcond s_1^2."""
    s2 = s * s
    index = torch.arange(s.shape[-1], device=s.device)
    structural = index < rmax[..., None]
    keep = (s2 > rcond * s2[..., :1]) & structural
    return s2, keep, structural


def _nc1_core(
    s: Tensor, quad: Tensor, rcond: float, rmax: Tensor, details: bool = True
) -> dict[str, Tensor]:
    """NC1 and what its cut-off dropped, from the SVD of Mbar.

    ``s`` are the singular values of Mbar (descending), ``quad_i = u_i^T Sigma_W u_i`` and
    ``rmax`` = min(d, K - 1), the rank Sigma_B has when the K class means are in general
    position (the centring makes index K - 1 structurally zero; it is never counted).
    Sigma_B = (1/K) U diag(s^2) U^T, so Sigma_B^+ = K sum_kept s_i^-2 u_i u_i^T; an eigenvalue
    s_i^2/K of Sigma_B is kept iff it exceeds rcond times the largest one (s_i^2 > rcond s_1^2).

    Returns ``nc1`` = sum over kept i of quad_i / s_i^2 = tr(Sigma_W Sigma_B^+)/K, ``kept``,
    ``dropped`` = rmax - kept (directions the cut-off, or an exact degeneracy, left out) and
    ``hidden`` = sum over the dropped i < rmax of quad_i / (rcond s_1^2): a lower bound on what
    those directions would add to NC1 (s_i^2 <= rcond s_1^2 there), 0 when no within-class
    variance lies along them. ``nc1 + hidden`` can only be small if the classes have
    separated in every direction the means could span. ``details=False``: ``nc1`` only.
    """
    s2, keep, structural = _nc1_keep(s, rcond, rmax)
    top = s2[..., :1]
    val = torch.where(keep, quad / torch.where(keep, s2, torch.ones_like(s2)), 0.0).sum(-1)
    defined = top[..., 0] > 0
    if not details:
        return {"nc1": torch.where(defined, val, _nan_like(val))}
    floor = rcond * top  # 0 for rcond = 0: only exact zeros are dropped, any variance is inf
    ratio = torch.where(
        floor > 0,
        quad / torch.where(floor > 0, floor, torch.ones_like(floor)),
        torch.where(quad > 0, math.inf, 0.0),
    )
    hidden = torch.where(structural & ~keep, ratio, 0.0).sum(-1)
    kept = keep.sum(-1).to(F64)
    return {
        "nc1": torch.where(defined, val, _nan_like(val)),
        "nc1_kept": kept,
        "nc1_dropped": rmax.to(F64) - kept,
        "nc1_hidden": torch.where(defined, hidden, _nan_like(hidden)),
    }


def _separation_core(Mbar: Tensor, rcond: float) -> dict[str, Tensor]:
    """``separation`` = min over pairs c != c' of ||mu_c - mu_c'|| divided by the max (``nan``
    when all means are equal) and ``separated`` (1.0 iff the smallest squared distance exceeds
    ``rcond`` times the largest, the cut-off NC1 applies to Sigma_B's eigenvalues)."""
    K = Mbar.shape[-1]
    G = Mbar.mT @ Mbar
    sq = torch.diagonal(G, dim1=-2, dim2=-1)
    D2 = (sq[..., :, None] + sq[..., None, :] - 2.0 * G).clamp_min(0.0)
    off = ~torch.eye(K, dtype=torch.bool, device=Mbar.device)
    lo = torch.where(off, D2, math.inf).amin((-2, -1))
    hi = torch.where(off, D2, -math.inf).amax((-2, -1))
    ratio = torch.where(hi > 0, (lo / torch.where(hi > 0, hi, 1.0)).sqrt(), _nan_like(hi))
    return {"nc1_separation": ratio, "nc1_separated": ((hi > 0) & (lo > rcond * hi)).to(F64)}


def _trace_ratio_core(trW: Tensor, trB: Tensor) -> Tensor:
    return torch.where(trB > 0, trW / torch.where(trB > 0, trB, 1.0), _nan_like(trB))


def _nc1_class_core(
    U: Tensor, s: Tensor, P2: Tensor, A: Tensor, rcond: float, rmax: Tensor
) -> Tensor:
    """(..., K) per-class NC1 tr(Sigma_W^(k) Sigma_B^+)/K, Sigma_W^(k) the class-k covariance.

    ``P2 = (U^T R)^2`` (..., r, N) holds the squared projections of the residuals on the left
    singular vectors of Mbar; ``A`` (N, K) averages over each class. Same cut-off as NC1, so
    ``sum_k (n_k/N) nc1_class_k = nc1``.
    """
    s2, keep, _ = _nc1_keep(s, rcond, rmax)
    inv = torch.where(keep, 1.0 / torch.where(keep, s2, torch.ones_like(s2)), 0.0)
    val = (inv[..., None] * P2).sum(-2) @ A
    return torch.where(s2[..., :1] > 0, val, _nan_like(val))


_DETAIL_KEYS = ("nc1", "nc1_kept", "nc1_dropped", "nc1_hidden", "nc1_separation", "nc1_separated")


class NC1Details(NamedTuple):
    """NC1 with what its pseudo-inverse cut-off left out (:func:`nc1_details`).

    Attributes:
        value: NC1 = tr(Sigma_W Sigma_B^+) / K, as :func:`nc1` returns it (``nan`` when all
            class means are equal).
        kept: directions of Sigma_B kept by the cut-off.
        dropped: ``min(d, K - 1) - kept``: directions the class means could span but do not
            (below the cut-off, or exactly degenerate, e.g. two equal class means). NC1 does
            not see the within-class variance along them.
        hidden: a lower bound on what the dropped directions would add to NC1, the
            within-class variance along them divided by the cut-off ``rcond * s_1^2`` (0 when
            nothing is dropped or no within-class variance lies there; ``inf`` for variance
            along an exactly degenerate direction with ``rcond = 0``).
        separation: the smallest distance between two class means over the largest (``nan``
            when all means are equal): 0 when two classes share their mean.
        separated: ``separation**2 > rcond``, the cut-off NC1 applies to Sigma_B: every pair
            of class means is apart at the resolution NC1 works at.
    """

    value: float
    kept: int
    dropped: int
    hidden: float
    separation: float
    separated: bool

    @property
    def bound(self) -> float:
        """``value + hidden``: NC1 with the dropped directions counted at the cut-off."""
        return self.value + self.hidden

    def collapsed(self, tol: float) -> bool:
        """True iff NC1 is below ``tol``, the cut-off hides nothing that could exceed it
        (``value + hidden < tol``) and every pair of class means is apart (``separated``).
        False for ``nan``. Classes whose means have not separated (equal means, or a dropped
        direction carrying within-class variance) are never reported collapsed."""
        return bool(self.separated and self.bound < tol)

    @classmethod
    def _from(cls, v: Sequence[float]) -> NC1Details:
        return cls(v[0], int(v[1]), int(v[2]), v[3], v[4], bool(v[5]))
