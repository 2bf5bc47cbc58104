"""The DNC / low-rank classifier of trained solutions (theory §5, rule in
:mod:`dnc_interactive.lowrank`).

Layering: imports model and metrics only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dnc_interactive import metrics
from dnc_interactive.model import DUFM

__all__ = ["Verdict", "classify"]

F64 = torch.float64


# ====================================================================== classifier
@dataclass(frozen=True)
class Verdict:
    """Label of a solution (theory §5): "DNC", "low-rank (rank r)" or "trivial".

    ``rank`` is K for DNC, r for low-rank and 0 for trivial; ``ranks_pre`` / ``ranks_post``
    are the numerical ranks of M~_l / M_l for l = 1..L; ``min_rank_pre`` the smallest
    pre-ReLU rank over l >= 3 (None when L < 3).
    """

    label: str
    is_dnc: bool
    rank: int
    ranks_pre: tuple[int, ...]
    ranks_post: tuple[int, ...]
    min_rank_pre: int | None


def _class_means_of(model: DUFM) -> tuple[list[Tensor], list[Tensor]]:
    with torch.no_grad():
        f = model.forward()
    y, K = model.labels, model.config.K
    pre = [metrics.class_means(X, y, K) for X in f.pre]
    post = [metrics.class_means(X, y, K) for X in f.post]
    return pre, post


def classify(
    model: DUFM | None = None,
    *,
    pre: Sequence[Tensor] | None = None,
    post: Sequence[Tensor] | None = None,
    rtol: float = metrics.RANK_RTOL,
    zero_tol: float = 1e-8,
) -> Verdict:
    """Label a solution "DNC", "low-rank (rank r)" or "trivial" (theory §5; rule in the module
    docstring).

    Give either a trained :class:`DUFM` or the class-mean matrices ``pre`` = [M~_1..M~_L] and
    ``post`` = [M_1..M_L] (each d_l x K; M~_1 = M_1 is H_1's). Numerical rank:
    #{sigma_i > rtol sigma_max} (theory §3). "trivial" when the largest singular value of M_L
    is at most ``zero_tol``.
    """
    if model is not None:
        if pre is not None or post is not None:
            raise ValueError("give either model or pre/post class means, not both")
        if not isinstance(model, DUFM):
            raise ValueError(f"model={model!r} is not valid: expected a DUFM")
        pre, post = _class_means_of(model)
    elif pre is None or post is None:
        raise ValueError("give a model, or both pre and post class-mean lists")
    pre, post = list(pre), list(post)
    if len(pre) != len(post) or not pre:
        raise ValueError(
            f"pre has {len(pre)} and post {len(post)} matrices: expected the same number >= 1"
        )
    if not (isinstance(rtol, (int, float)) and 0 < rtol < 1):
        raise ValueError(f"rtol={rtol!r} is not valid: expected a float in (0, 1)")
    K = int(post[-1].shape[1])
    for name, mats in (("pre", pre), ("post", post)):
        for l, M in enumerate(mats, start=1):
            if M.ndim != 2 or M.shape[1] != K:
                raise ValueError(f"{name}[{l - 1}] has shape {tuple(M.shape)}: expected (d, {K})")
    L = len(pre)
    ranks_pre = tuple(metrics.rank(M, rtol) for M in pre)
    ranks_post = tuple(metrics.rank(M, rtol) for M in post)
    top = float(torch.linalg.svdvals(post[-1].detach().to(F64))[0])
    min_pre = min(ranks_pre[2:]) if L >= 3 else None
    if not top > zero_tol:
        return Verdict("trivial", False, 0, ranks_pre, ranks_post, min_pre)
    used = [*ranks_post[1:], *ranks_pre[2:]]
    r = min(used) if used else K
    if r >= K:
        return Verdict("DNC", True, K, ranks_pre, ranks_post, min_pre)
    return Verdict(f"low-rank (rank {r})", False, r, ranks_pre, ranks_post, min_pre)
