"""Exact power-of-two scaling of the inputs, so that no metric overflows or underflows.

The scale-invariant metrics are computed from a matrix divided by a power of two near its
largest entry (:func:`_unit`; per column :func:`_unit_columns`): dividing by a power of two
is exact, so ordinary inputs give bitwise the values of the unscaled formulas, and entries
near 1e200 or 1e-200 stay finite and accurate. Also the small tensor helpers the metric
cores share (a ``nan`` of the same shape, the "any entry non-zero" test, the identity).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _pow2_scale(A: Tensor) -> Tensor:
    """Power-of-two factor s (shape (..., 1, 1)) with max|A / s| in [1, 2); 1 where A = 0.

    Dividing by a power of two is exact, so scale-invariant metrics computed from ``A / s``
    are bitwise those of ``A`` whenever ``A``'s products neither overflow nor underflow, and
    stay finite and accurate when they would (entries near 1e200 or 1e-200).
    """
    m = A.abs().amax(dim=(-2, -1), keepdim=True)
    _, e = torch.frexp(m)
    s = torch.exp2((e - 1).to(A.dtype))
    return torch.where(m > 0, s, torch.ones_like(m))


def _unit(A: Tensor) -> Tensor:
    return A / _pow2_scale(A)


def _unit_columns(A: Tensor) -> Tensor:
    """The columns of A divided by their norms; a zero column stays 0.

    Scale-safe and exact in the scaling: each column is first divided by a power of two near
    its own largest entry (so a column 1e-200 times smaller than the others keeps its
    direction)."""
    peak = A.abs().amax(dim=-2, keepdim=True)
    _, e = torch.frexp(peak)
    B = A / torch.where(peak > 0, torch.exp2((e - 1).to(A.dtype)), torch.ones_like(peak))
    n = torch.linalg.vector_norm(B, dim=-2, keepdim=True)
    return torch.where(n > 0, B / torch.where(n > 0, n, torch.ones_like(n)), 0.0)


def _nonzero(A: Tensor) -> Tensor:
    return (A != 0).flatten(-2).any(-1)


def _nan_like(t: Tensor) -> Tensor:
    return torch.full_like(t, math.nan)


def _same(A: Tensor) -> Tensor:
    return A
