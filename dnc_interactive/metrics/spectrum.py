"""Numerical rank and the normalised singular values of a matrix (theory §3.6).

``rank = #{sigma_i > rtol * sigma_max}`` with a relative cut-off, and the spectrum
``sigma_i / sigma_max`` the singular-value charts show.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dnc_interactive.metrics._checks import _check_matrix, _check_tolerance
from dnc_interactive.metrics._scaling import _unit
from dnc_interactive.metrics.names import RANK_RTOL


def _rank_core(s: Tensor, rtol: float) -> Tensor:
    return (s > rtol * s[..., :1]).sum(-1)


def singular_values(M: Tensor) -> Tensor:
    """Singular values of M divided by the largest, descending, float64 (theory §3, rank).

    A zero matrix gives all zeros.
    """
    s = torch.linalg.svdvals(_unit(_check_matrix("M", M)))
    return s / s[0] if float(s[0]) > 0 else s


def rank(M: Tensor, rtol: float = RANK_RTOL) -> int:
    """Numerical rank ``#{sigma_i > rtol * sigma_max}`` (theory §3; the follow-up's [S5]).

    ``rtol`` must lie in [0, 1). 0 for a zero matrix.
    """
    rtol = _check_tolerance("rtol", rtol)
    s = torch.linalg.svdvals(_unit(_check_matrix("M", M)))
    return int(_rank_core(s, rtol))
