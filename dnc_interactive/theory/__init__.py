"""Closed-form optimum of the deep unconstrained features model (theory §2.2, §2.3, §6).

The L-DUFM objective of theory §1.2 (MSE fit, no biases, L weight matrices, ReLU between them)
has, within the deep-neural-collapse (DNC) family, a closed-form optimum. Classes decouple
(theory §6): class k with n_k samples ends at an output class mean q_k e_k, and everything
follows from one scalar problem per class. The symbols, each defined once here:

* ``N = sum_k n_k``: the number of samples.
* ``Lambda = lambda_H * prod_l lambda_{W_l}``: the single effective regularisation constant
  (theory §2.2); only this product matters.
* ``c_k = N (Lambda / n_k^L)^{1/(L+1)}``: the effective constant of class k (theory §6); for
  balanced data (n_k = n, N = K n) it is ``c = K (n Lambda)^{1/(L+1)}`` (theory §2.2).
* ``phi_L(q; c) = 1/2 (1 - q)^2 + ((L+1)/2) c q^{2/(L+1)}``: the total loss of one class,
  per unit of its weight n_k/N, when its output scale is q (theory §2.2). The first term is the
  fit, the second the smallest regulariser (by AM-GM over the L+1 blocks) that yields scale q.
* ``q_k = argmin_{q in [0,1]} phi_L(q; c_k)``: the optimal output scale; stationary points
  satisfy ``(1 - q) q^{(L-1)/(L+1)} = c`` (theory §2.2).
* ``c*_L = (1/L) ((L-1)/L)^{(L-1)/(L+1)}``: the threshold; for L >= 2 the non-zero root is the
  global minimiser iff ``c < c*_L``, and at ``c = c*_L`` it equals ``(L-1)/L`` and ties with
  q = 0 (phi = 1/2 at both). For L = 1, ``q* = max(0, 1 - c)`` (continuous transition).
* ``L* = sum_k (n_k/N) phi_L(q_k; c_k)``: the optimal loss (theory §2.2, §6).
* ``tau_k = c_k q_k^{2/(L+1)}``: the block value of theory §2.2 generalised per class; for
  balanced data every block has ``lambda ||.||_F^2 = tau`` (balancedness). In general every
  block has ``lambda ||.||_F^2 = sum_k (n_k/N) tau_k`` (:attr:`Optimum.block_value`).
* ``a_k``, ``s_{l,k}``, ``b_{l,k}``: norms of the explicit optimum of theory §2.3, see
  :class:`Optimum`.

Which optimum this is (theory §2.1, §2.4, §5; see :func:`dnc_optimality`): the global optimum
of the linear DUFM (any K, also L = 1, which has no ReLU); proven global for the ReLU DUFM with
K = 2; for K > 2 and L >= 3 only the best DNC-type solution (low-rank solutions may be lower);
for K > 2 and L = 2 unverified. None of it applies to ``loss="ce"``: the functions that take a
config return ``math.nan`` (or raise, for :func:`construct_optimum`) there.

The package's modules, by job (every public name is importable from here):
:mod:`.scalar` (the one-class problem: c*_L, phi_L, q*), :mod:`.closed_form` (the config's
Lambda, c_k, q_k, L* and the cached :class:`Optimum`, the explicit matrices) and
:mod:`.thresholds` (critical lambdas, minority collapse, near-threshold notes).

Layering: this package imports :mod:`dnc_interactive.config` and :mod:`dnc_interactive.model`
only; it knows nothing of training.
"""

from __future__ import annotations

from dnc_interactive.theory.closed_form import (
    OPTIMALITY_DNC_ONLY,
    OPTIMALITY_K2_IMBALANCED,
    OPTIMALITY_LINEAR,
    OPTIMALITY_NOT_APPLICABLE,
    OPTIMALITY_PROVEN,
    OPTIMALITY_UNVERIFIED,
    Lambda,
    Optimum,
    construct_optimum,
    dnc_optimality,
    effective_c,
    layer_norms,
    optimal_loss,
    optimal_q,
    optimum,
)
from dnc_interactive.theory.scalar import THRESHOLD_BAND, c_star, metastable_limit, phi, solve_q
from dnc_interactive.theory.thresholds import (
    critical_lambda,
    critical_lambda_of,
    critical_scale,
    minority_collapse_threshold,
    near_threshold,
    threshold_message,
)

__all__ = [
    "THRESHOLD_BAND",
    "OPTIMALITY_DNC_ONLY",
    "OPTIMALITY_K2_IMBALANCED",
    "OPTIMALITY_LINEAR",
    "OPTIMALITY_NOT_APPLICABLE",
    "OPTIMALITY_PROVEN",
    "OPTIMALITY_UNVERIFIED",
    "Lambda",
    "Optimum",
    "c_star",
    "construct_optimum",
    "critical_lambda",
    "critical_lambda_of",
    "critical_scale",
    "dnc_optimality",
    "effective_c",
    "layer_norms",
    "minority_collapse_threshold",
    "metastable_limit",
    "near_threshold",
    "optimal_loss",
    "optimal_q",
    "optimum",
    "phi",
    "solve_q",
    "threshold_message",
]
