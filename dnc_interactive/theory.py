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

Layering: this module imports :mod:`dnc_interactive.config` and :mod:`dnc_interactive.model`
only; it knows nothing of training.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import torch_dtype

OPTIMALITY_PROVEN = "proven (K=2)"
OPTIMALITY_K2_IMBALANCED = "checked numerically (K=2, imbalanced, theory §6)"
OPTIMALITY_LINEAR = "global optimum (linear)"
OPTIMALITY_DNC_ONLY = "DNC family only (K>2, L>=3: low-rank solutions may be lower, theory §5)"
OPTIMALITY_UNVERIFIED = "unverified"
OPTIMALITY_NOT_APPLICABLE = "not applicable (loss='ce')"

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


# ---------------------------------------------------------------------- validation helpers
def _check_depth(L: object, name: str = "L") -> int:
    if not isinstance(L, numbers.Integral) or isinstance(L, bool) or L < 1:
        raise ValueError(f"{name}={L!r} is not valid: expected an int >= 1")
    return int(L)


def _check_c(c: object, name: str = "c") -> float:
    if not isinstance(c, numbers.Real) or isinstance(c, bool):
        raise ValueError(f"{name}={c!r} is not valid: expected a finite float >= 0")
    c = float(c)
    if not math.isfinite(c) or c < 0:
        raise ValueError(f"{name}={c!r} is not valid: expected a finite float >= 0")
    return c


def _check_array(value: object, name: str, low: float, high: float, allowed: str) -> np.ndarray:
    if isinstance(value, (str, bytes, bool)):
        raise ValueError(f"{name}={value!r} is not valid: expected {allowed}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r} is not valid: expected {allowed}") from None
    if not np.all(np.isfinite(arr)) or np.any(arr < low):
        raise ValueError(f"{name}={value!r} is not valid: expected {allowed}")
    if np.any(arr > high):
        raise ValueError(f"{name}={value!r} is not valid: expected {allowed}")
    return arr


# ---------------------------------------------------------------------- scalar problem
#: Relative half-width of the band around c*_L in which two minima genuinely compete:
#: c_k / c*_L in [1 - THRESHOLD_BAND, 1 + THRESHOLD_BAND] (theory §4.1, §8). Outside the band the
#: default recipe reaches L* (measured by ``benchmarks/bench_fidelity.py``).
THRESHOLD_BAND = 0.12


def c_star(L: int) -> float:
    """The threshold c*_L = (1/L) ((L-1)/L)^{(L-1)/(L+1)} of theory §2.2 (c*_1 = 1).

    For L >= 2 the non-zero output scale is the global minimiser of phi_L(.; c) iff
    c < c*_L; at c = c*_L the non-zero minimiser is q = (L-1)/L and phi = 1/2 there, a tie with
    the trivial solution q = 0 (derivation: phi(q) = 1/2 and phi'(q) = 0 together give
    q = (L-1)/L). Values: theory §7.1.
    """
    L = _check_depth(L)
    if L == 1:
        return 1.0
    return (1.0 / L) * ((L - 1) / L) ** ((L - 1) / (L + 1))


def metastable_limit(L: int) -> float:
    """c_max / c*_L: up to this multiple of the threshold a non-zero local minimum survives.

    The non-zero branch of phi_L(.; c) exists while (1 - q) q^p = c, p = (L-1)/(L+1), has a
    root, i.e. for c <= c_max = max_q (1 - q) q^p, attained at q_m = (L-1)/(2L):
    c_max = (1 - q_m) q_m^p (theory §2.2). Between c*_L and c_max that minimum is metastable
    (its loss is above 1/2, the trivial solution's) and gradient descent can stop there. For
    L = 1 there is no second minimum and the limit is 1. Values: 1.19 (L = 2), 1.41 (L = 3),
    1.65 (L = 4).
    """
    L = _check_depth(L)
    if L == 1:
        return 1.0
    p = (L - 1) / (L + 1)
    qm = (L - 1) / (2 * L)
    return (1.0 - qm) * qm**p / c_star(L)


def phi(q: float | np.ndarray, c: float | np.ndarray, L: int) -> float | np.ndarray:
    """phi_L(q; c) = 1/2 (1 - q)^2 + ((L+1)/2) c q^{2/(L+1)} (theory §2.2).

    The total loss of the DNC-family solution with output scale q (per unit class weight):
    fit 1/2 (1-q)^2 plus the minimal regulariser ((L+1)/2) c q^{2/(L+1)}. ``q`` in [0, 1] and
    ``c`` >= 0 may be floats or numpy arrays (broadcast); returns a float for scalar inputs.
    """
    L = _check_depth(L)
    q_arr = _check_array(q, "q", 0.0, 1.0, "a float (or array) in [0, 1]")
    c_arr = _check_array(c, "c", 0.0, math.inf, "a finite float (or array) >= 0")
    out = 0.5 * (1.0 - q_arr) ** 2 + 0.5 * (L + 1) * c_arr * q_arr ** (2.0 / (L + 1))
    return float(out) if out.ndim == 0 else out


def _phi_from_r(r: float, c: float, L: int) -> float:
    """phi_L at q = 1 - r, evaluated with r (accurate when q is close to 1)."""
    q = 1.0 - r
    return 0.5 * r * r + 0.5 * (L + 1) * c * q ** (2.0 / (L + 1))


def _solve_r(c: float, L: int) -> float:
    """r = 1 - q of the larger root of (1 - q) q^p = c, p = (L-1)/(L+1), for 0 < c < c*_L.

    g(q) = (1 - q) q^p has g'(q) = q^{p-1} (p (1 - q) - q), so its maximum is at
    q_m = p / (1 + p) = (L-1)/(2L) and g decreases on [q_m, 1] from g(q_m) > c*_L >= c to 0.
    The larger root therefore lies in q in [q_m, 1], i.e. r in [0, 1 - q_m], where
    h(r) = r (1 - r)^p - c increases. Bisection in r down to adjacent floats gives the root to
    full relative precision in r (and so in 1 - q, even for q near 1).
    """
    p = (L - 1) / (L + 1)
    lo, hi = 0.0, 1.0 - (L - 1) / (2 * L)  # h(lo) = -c < 0 <= h(hi)
    for _ in range(4000):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if mid * (1.0 - mid) ** p < c:
            lo = mid
        else:
            hi = mid
    # pick the endpoint with the smaller residual
    return lo if abs(lo * (1.0 - lo) ** p - c) <= abs(hi * (1.0 - hi) ** p - c) else hi


def solve_q(c: float, L: int) -> float:
    """The global minimiser q* in [0, 1] of phi_L(.; c) (theory §2.2).

    * L = 1: ``q* = max(0, 1 - c)`` (continuous transition at c = 1).
    * L >= 2: the larger root of ``(1 - q) q^{(L-1)/(L+1)} = c`` when ``c < c*_L``, else 0.
      (The root exists and beats phi(0) = 1/2 exactly when c < c*_L, because the minimum value
      over the non-zero branch increases with c and equals 1/2 at c*_L.) The root is found by
      bisection on the bracket derived in :func:`_solve_r` to machine precision.

    Tie: at exactly ``c = c*_L`` (L >= 2) both q = (L-1)/L and q = 0 are global minimisers;
    this function returns **0** (the non-zero branch is returned only for c < c*_L, matching
    theory §2.2's "globally optimal iff c < c*_L"). ``c = 0`` gives q* = 1.
    """
    L = _check_depth(L)
    c = _check_c(c)
    if L == 1:
        return max(0.0, 1.0 - c)
    if c == 0.0:
        return 1.0
    if c >= c_star(L):
        return 0.0
    return 1.0 - _solve_r(c, L)


# ---------------------------------------------------------------------- config quantities
def _log_Lambda(config: DUFMConfig) -> float:
    """log Lambda (-inf when some lambda is 0); avoids underflow of the product at large L."""
    lams = (config.lambda_H, *config.lambda_Ws)
    if any(lam == 0.0 for lam in lams):
        return -math.inf
    return sum(math.log(lam) for lam in lams)


def Lambda(config: DUFMConfig) -> float:
    """Lambda = lambda_H * prod_{l=1}^{L} lambda_{W_l} (theory §2.2); 0 if any lambda is 0."""
    out = config.lambda_H
    for lam in config.lambda_Ws:
        out *= lam
    return out


def effective_c(config: DUFMConfig) -> tuple[float, ...]:
    """Per-class constants c_k = N (Lambda / n_k^L)^{1/(L+1)} (theory §6).

    For balanced data this is K (n Lambda)^{1/(L+1)} for every class (theory §2.2). Computed in
    log space, so tiny products Lambda do not underflow. A property of the lambdas and the
    n_k only, so it is returned for ``loss="ce"`` too.
    """
    L, N = config.L, config.N
    log_lam = _log_Lambda(config)
    if log_lam == -math.inf:
        return (0.0,) * config.K
    return tuple(N * math.exp((log_lam - L * math.log(n)) / (L + 1)) for n in config.class_sizes)


def optimal_q(config: DUFMConfig) -> tuple[float, ...]:
    """Per-class optimal output scales q_k = argmin phi_L(.; c_k) (theory §6).

    At the optimum the class-k output mean is q_k e_k. ``math.nan`` for every class when
    ``config.loss == "ce"`` (the closed form is for the MSE loss only).
    """
    return optimum(config).q


def _solve_classes(config: DUFMConfig) -> tuple[float, ...]:
    """q_k = argmin phi_L(.; c_k) per class (MSE only): the one root-finding per config."""
    return tuple(solve_q(c, config.L) for c in effective_c(config))


def _class_losses(c: tuple[float, ...], q: tuple[float, ...], L: int) -> tuple[float, ...]:
    """phi_L(q_k; c_k) per class, with the fit term evaluated accurately via r = 1 - q."""
    out = []
    for ck, qk in zip(c, q, strict=True):
        if qk == 0.0:
            out.append(0.5)
        elif L == 1 or ck == 0.0:
            out.append(float(phi(qk, ck, L)))
        else:
            out.append(_phi_from_r(_solve_r(ck, L), ck, L))
    return tuple(out)


def optimal_loss(config: DUFMConfig) -> float:
    """The optimal loss L* = sum_k (n_k/N) phi_L(q_k; c_k) (theory §2.2, §6).

    The global optimum for ``activation="linear"`` (any K) and for the ReLU DUFM with K = 2;
    for the ReLU DUFM with K > 2 the best DNC-type solution (see :func:`dnc_optimality`).
    ``math.nan`` when ``config.loss == "ce"``. With some (not all) lambda equal to 0 it is the
    infimum 0, which is not attained.
    """
    return optimum(config).loss


def _loss_of(config: DUFMConfig, c: tuple[float, ...], q: tuple[float, ...]) -> float:
    """sum_k (n_k/N) phi_L(q_k; c_k), the fit term evaluated accurately via r = 1 - q."""
    losses = _class_losses(c, q, config.L)
    N = config.N
    return sum(n / N * v for n, v in zip(config.class_sizes, losses, strict=True))


def dnc_optimality(config: DUFMConfig) -> str:
    """How the closed-form L* relates to the true global optimum of ``config`` (theory §2, §5).

    Returns one of the module constants:

    * :data:`OPTIMALITY_LINEAR` ``"global optimum (linear)"``: ``activation="linear"``, or
      L = 1 (no ReLU at all), any K (theory §2.4).
    * :data:`OPTIMALITY_PROVEN` ``"proven (K=2)"``: ReLU, K = 2, balanced (theory §2.1).
    * :data:`OPTIMALITY_K2_IMBALANCED`: ReLU, K = 2, imbalanced (derived and checked by GD,
      theory §6; the paper's theorem is for balanced classes).
    * :data:`OPTIMALITY_UNVERIFIED` ``"unverified"``: ReLU, K > 2, L = 2 (theory §2.4: GD
      agrees, no proof available).
    * :data:`OPTIMALITY_DNC_ONLY`: ReLU, K > 2, L >= 3: only the best DNC-type solution;
      low-rank solutions may have lower loss (theory §5).
    * :data:`OPTIMALITY_NOT_APPLICABLE`: ``loss="ce"``.

    Widths are not considered here: the DNC construction needs d_l >= K in the layers
    (see :func:`construct_optimum`).
    """
    if config.loss != "mse":
        return OPTIMALITY_NOT_APPLICABLE
    if config.activation == "linear" or config.L == 1:
        return OPTIMALITY_LINEAR
    if config.K == 2:
        return OPTIMALITY_PROVEN if config.balanced else OPTIMALITY_K2_IMBALANCED
    return OPTIMALITY_UNVERIFIED if config.L == 2 else OPTIMALITY_DNC_ONLY


# ---------------------------------------------------------------------- thresholds
def critical_lambda(num_classes: int, samples_per_class: int, depth: int) -> float:
    """lambda_crit = c*_L / (K n^{1/(L+1)}) with all lambdas equal (theory §2.2, §7.1).

    With every lambda equal to lambda, c = K n^{1/(L+1)} lambda; the optimum is non-zero iff
    lambda < lambda_crit (balanced data, K = num_classes, n = samples_per_class, L = depth).
    """
    for name, value, low in (
        ("num_classes", num_classes, 2),
        ("samples_per_class", samples_per_class, 1),
    ):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}={value!r} is not valid: expected an int >= {low}")
    L = _check_depth(depth, "depth")
    return c_star(L) / (num_classes * samples_per_class ** (1.0 / (L + 1)))


def critical_scale(config: DUFMConfig) -> float:
    """The factor t such that multiplying ALL lambdas of ``config`` by t puts max_k c_k at c*_L.

    Scaling every lambda by t multiplies Lambda by t^{L+1} and every c_k by t, so
    ``t = c*_L / max_k c_k`` (the largest c_k belongs to the smallest class). t > 1 means the
    config is below the threshold (every class has q_k > 0 for L >= 2, unless t is exactly 1);
    t <= 1 means the smallest class has collapsed. ``math.inf`` when some lambda is 0,
    ``math.nan`` for ``loss="ce"``. Works for unequal lambdas and imbalanced classes.
    """
    if config.loss != "mse":
        return math.nan
    cmax = max(effective_c(config))
    return math.inf if cmax == 0.0 else c_star(config.L) / cmax


def critical_lambda_of(config: DUFMConfig) -> float:
    """The common lambda (all lambda_H = lambda_{W_l} equal) at which ``config``'s smallest
    class reaches the threshold c*_L, for its K, class sizes and depth (theory §6, §7.5).

    With all lambdas equal to lambda, c_k = N n_k^{-L/(L+1)} lambda, so
    ``lambda_crit = c*_L n_min^{L/(L+1)} / N``; for balanced data this is
    :func:`critical_lambda`. Independent of the config's own lambdas. ``math.nan`` for
    ``loss="ce"``.
    """
    if config.loss != "mse":
        return math.nan
    L, n_min = config.L, min(config.class_sizes)
    return c_star(L) * n_min ** (L / (L + 1)) / config.N


def minority_collapse_threshold(config: DUFMConfig) -> float:
    """Class size below which a class's optimal output collapses to 0 (theory §6).

    ``n_k < (N / c*_L)^{(L+1)/L} Lambda^{1/L}`` is the same as c_k > c*_L. The total N is held
    fixed (changing one n_k alone would also change N, hence every c_k): this is the threshold
    for the config's own N and Lambda. With the tie convention of :func:`solve_q`, q_k = 0 iff
    n_k <= threshold. For L = 1 it is N^2 Lambda. 0 when some lambda is 0; ``math.nan`` for
    ``loss="ce"``.
    """
    if config.loss != "mse":
        return math.nan
    L = config.L
    log_lam = _log_Lambda(config)
    if log_lam == -math.inf:
        return 0.0
    return math.exp((L + 1) / L * (math.log(config.N) - math.log(c_star(L))) + log_lam / L)


def near_threshold(config: DUFMConfig, margin: float = THRESHOLD_BAND) -> bool:
    """True when some c_k is within relative distance ``margin`` of c*_L: |c_k/c*_L - 1| < margin.

    For L >= 2 this is where phi_L has two competing minima of nearly equal value (q = 0 and
    q near (L-1)/L), so gradient descent may land in either (theory §4.1, §7.7): test the
    formula, not GD, there. For L = 1 the transition is continuous (no second minimum), but
    q_k is then near 0 and convergence is slow. Always False for ``loss="ce"``.
    """
    if not isinstance(margin, numbers.Real) or isinstance(margin, bool):
        raise ValueError(f"margin={margin!r} is not valid: expected a finite float > 0")
    if not math.isfinite(margin) or margin <= 0:
        raise ValueError(f"margin={margin!r} is not valid: expected a finite float > 0")
    if config.loss != "mse":
        return False
    if margin == THRESHOLD_BAND:
        return optimum(config).near_threshold
    return _near(effective_c(config), config.L, margin)


def _near(c: tuple[float, ...], L: int, margin: float) -> bool:
    cs = c_star(L)
    return any(abs(ck / cs - 1.0) < margin for ck in c)


def threshold_message(config: DUFMConfig, margin: float = THRESHOLD_BAND) -> str | None:
    """A human-readable note when ``config`` is near or past the threshold, else None.

    Mentions the collapsed classes (q_k = 0, the trivial solution wins for them) and whether
    some c_k is within ``margin`` of c*_L (see :func:`near_threshold`). None for ``"ce"``.
    """
    if config.loss != "mse":
        return None
    L = config.L
    c = effective_c(config)
    q = optimal_q(config)
    cs = c_star(L)
    t = critical_scale(config)
    parts = []
    zero = [k for k, qk in enumerate(q) if qk == 0.0]
    if zero:
        who = "every class" if len(zero) == config.K else f"class(es) {zero}"
        parts.append(
            f"The regularisation is past the threshold for {who}: c_k >= c*_{L} = {cs:.6g}, so"
            f" the optimal output of {who} is exactly 0 (the trivial solution wins)."
            f" Multiply all lambdas by less than {t:.4g} to bring it back."
        )
    if near_threshold(config, margin):
        k = min(range(config.K), key=lambda i: abs(c[i] / cs - 1.0))
        rel = c[k] / cs - 1.0
        if L >= 2:
            parts.append(
                f"c_{k} = {c[k]:.6g} is within {abs(rel):.1%} of c*_{L} = {cs:.6g}: two competing"
                f" minima (q = 0 and q near {(L - 1) / L:.3g}) have nearly equal loss, so"
                " gradient descent may end in either (theory §4.1). Lambda x"
                f" {t:.4g} is the exact threshold."
            )
        else:
            parts.append(
                f"c_{k} = {c[k]:.6g} is within {abs(rel):.1%} of c*_1 = 1: the output scale"
                f" q_{k} = {q[k]:.3g} is near 0 (continuous transition for L = 1)."
            )
    return " ".join(parts) if parts else None


# ---------------------------------------------------------------------- the full optimum
@dataclass(frozen=True)
class Optimum:
    """The closed-form optimum of one config (theory §2.2, §2.3, §6). Per-class tuples are
    indexed by class k = 0..K-1.

    Attributes:
        K, L, class_sizes: copied from the config.
        Lambda: lambda_H prod_l lambda_{W_l}.
        c: per-class c_k = N (Lambda / n_k^L)^{1/(L+1)}.
        c_star: the threshold c*_L.
        q: per-class output scales q_k (class-k output mean = q_k e_k).
        loss: L* = sum_k (n_k/N) phi_L(q_k; c_k); ``fit`` + ``reg``.
        fit: sum_k n_k/(2N) (1 - q_k)^2.
        reg: (L+1)/2 * block_value, the total regulariser.
        tau: per-class tau_k = c_k q_k^{2/(L+1)}; for balanced data this is the tau of theory §2.2,
            the common value lambda_H ||H_1||^2 = lambda_{W_l} ||W_l||^2 (theory §2.2).
        block_value: lambda_H ||H_1||_F^2 = lambda_{W_l} ||W_l||_F^2 for every l, equal to
            sum_k (n_k/N) tau_k (balancedness across the L+1 blocks).
        H1_mean_norms: a_k = ||mu_k^(1)|| = sqrt(tau_k / (lambda_H N)) (theory §2.3).
        singular_values: ``singular_values[l-1][k]`` = s_{l,k} = sqrt(n_k tau_k / (N
            lambda_{W_l})), the singular value of W_l in class k's direction (balanced:
            s_l = sqrt(tau / (K lambda_{W_l})), theory §2.3). For W_1 this holds for the
            orthogonal-H_1 construction; other optimal H_1 give W_1 other singular values with
            the same Frobenius norm (theory §2.3).
        post_mean_norms: ``post_mean_norms[l-2][k]`` = b_{l,k}, the post-ReLU class-mean norm
            of layer l = 2..L: b_2 = s_1 a, b_{l+1} = s_l b_l (empty for L = 1).
        zero_wins: per class, True when q_k = 0 (features, classifier row and output of the
            class are exactly 0).
        near_threshold: :func:`near_threshold` with the default margin.
        optimality: :func:`dnc_optimality`.
        attained: False when the infimum is not attained (some but not all lambdas are 0) or
            the theory does not apply (``loss="ce"``); the scale fields are then NaN.

    For ``loss="ce"`` every number is NaN.
    """

    K: int
    L: int
    class_sizes: tuple[int, ...]
    Lambda: float
    c: tuple[float, ...]
    c_star: float
    q: tuple[float, ...]
    loss: float
    fit: float
    reg: float
    tau: tuple[float, ...]
    block_value: float
    H1_mean_norms: tuple[float, ...]
    singular_values: tuple[tuple[float, ...], ...]
    post_mean_norms: tuple[tuple[float, ...], ...]
    zero_wins: tuple[bool, ...]
    near_threshold: bool
    optimality: str
    attained: bool

    @property
    def output_scales(self) -> tuple[float, ...]:
        """q_k: the class-k output mean is q_k e_k (same as :attr:`q`)."""
        return self.q

    @property
    def classifier_norms(self) -> tuple[float, ...]:
        """||row k of W_L|| = s_{L,k} (self-duality: W_L = diag(q_k / b_{L,k}^2) M_L^T)."""
        return self.singular_values[-1]

    @property
    def s(self) -> tuple[float, ...] | None:
        """Balanced case: the K-fold singular value s_l of each W_l; None if the s_{l,k} differ
        between classes."""
        return _common(self.singular_values)

    @property
    def b(self) -> tuple[float, ...] | None:
        """Balanced case: the post-ReLU class-mean norm b_l, l = 2..L; None if they differ."""
        return _common(self.post_mean_norms)

    @property
    def a(self) -> float | None:
        """Balanced case: the H_1 class-mean norm a; None if it differs between classes."""
        common = _common((self.H1_mean_norms,))
        return None if common is None else common[0]


def _common(rows: tuple[tuple[float, ...], ...]) -> tuple[float, ...] | None:
    out = []
    for row in rows:
        if any(not math.isclose(v, row[0], rel_tol=1e-12, abs_tol=0.0) for v in row):
            return None
        out.append(row[0])
    return tuple(out)


def _scales(
    config: DUFMConfig, c: tuple[float, ...], q: tuple[float, ...]
) -> tuple[tuple[float, ...], tuple[float, ...], tuple[tuple[float, ...], ...], bool]:
    """(tau_k, a_k, s_{l,k} [l][k], attained) of the theory §2.3 construction per class.

    Per class the L+1 blocks share beta_k = (n_k/N) tau_k = lambda_H n_k a_k^2
    = lambda_{W_l} s_{l,k}^2 (AM-GM equality), and a_k prod_l s_{l,k} = q_k.
    """
    L, N, K = config.L, config.N, config.K
    lams = config.lambda_Ws
    tau = tuple(ck * qk ** (2.0 / (L + 1)) for ck, qk in zip(c, q, strict=True))
    all_lams = (config.lambda_H, *lams)
    if all(lam == 0.0 for lam in all_lams):
        # No regularisation: any interpolating solution is optimal; a canonical one.
        return tau, (1.0,) * K, tuple((1.0,) * K for _ in range(L)), True
    if any(lam == 0.0 for lam in all_lams):
        nan = math.nan
        return tau, (nan,) * K, tuple((nan,) * K for _ in range(L)), False
    beta = [n / N * t for n, t in zip(config.class_sizes, tau, strict=True)]
    a = tuple(
        math.sqrt(bk / (config.lambda_H * n))
        for bk, n in zip(beta, config.class_sizes, strict=True)
    )
    s = tuple(tuple(math.sqrt(bk / lam) for bk in beta) for lam in lams)
    return tau, a, s, True


def optimum(config: DUFMConfig) -> Optimum:
    """Every closed-form quantity of the optimum of ``config`` (theory §2.2, §2.3, §6).

    Evaluated once per configuration: configs are frozen (hashable) and the result is
    immutable, so the last 256 distinct configs are cached; :func:`optimal_loss`,
    :func:`optimal_q`, :func:`near_threshold` and the trainers all read this.
    """
    return _optimum_cached(config)


@functools.lru_cache(maxsize=256)
def _optimum_cached(config: DUFMConfig) -> Optimum:
    return _closed_form(config)


def _closed_form(config: DUFMConfig) -> Optimum:
    """The closed-form solve behind :func:`optimum` (uncached; one root-finding per class)."""
    K, L, N = config.K, config.L, config.N
    sizes = config.class_sizes
    if config.loss != "mse":
        nan = math.nan
        nans = (nan,) * K
        return Optimum(
            K=K,
            L=L,
            class_sizes=sizes,
            Lambda=Lambda(config),
            c=effective_c(config),
            c_star=c_star(L),
            q=nans,
            loss=nan,
            fit=nan,
            reg=nan,
            tau=nans,
            block_value=nan,
            H1_mean_norms=nans,
            singular_values=tuple(nans for _ in range(L)),
            post_mean_norms=tuple(nans for _ in range(L - 1)),
            zero_wins=(False,) * K,
            near_threshold=False,
            optimality=dnc_optimality(config),
            attained=False,
        )
    c = effective_c(config)
    q = _solve_classes(config)
    tau, a, s, attained = _scales(config, c, q)
    post = []
    b = a
    for l in range(L - 1):
        b = tuple(bk * sk for bk, sk in zip(b, s[l], strict=True))
        post.append(b)
    fit = sum(n / (2 * N) * (1.0 - qk) ** 2 for n, qk in zip(sizes, q, strict=True))
    block_value = sum(n / N * t for n, t in zip(sizes, tau, strict=True))
    return Optimum(
        K=K,
        L=L,
        class_sizes=sizes,
        Lambda=Lambda(config),
        c=c,
        c_star=c_star(L),
        q=q,
        loss=_loss_of(config, c, q),
        fit=fit,
        reg=0.5 * (L + 1) * block_value,
        tau=tau,
        block_value=block_value,
        H1_mean_norms=a,
        singular_values=s,
        post_mean_norms=tuple(post),
        zero_wins=tuple(qk == 0.0 for qk in q),
        near_threshold=_near(c, L, THRESHOLD_BAND),
        optimality=dnc_optimality(config),
        attained=attained,
    )


def layer_norms(config: DUFMConfig) -> tuple[tuple[float, ...], ...]:
    """Expected class-mean norms ``[l-1][k]`` of the post-activation features H_l, l = 1..L.

    Layer 1 is H_1 (a_k), layers 2..L are b_{l,k} (theory §2.3). The pre-ReLU norms equal these
    for l >= 3; for l = 2 they are b_2 sqrt(1 + gamma^2) for a non-unique gamma in [-1, 0]
    (theory §2.3), so they are not given. The output means have norm q_k (:func:`optimal_q`).
    """
    opt = optimum(config)
    return (opt.H1_mean_norms, *opt.post_mean_norms)


def construct_optimum(config: DUFMConfig) -> tuple[Tensor, list[Tensor]]:
    """The explicit optimal matrices (H1, [W_1..W_L]) of theory §2.3, generalised per class (§6).

    Class k uses the standard basis vector e_k in every layer (non-negative, so the ReLU is
    the identity on the features and the class means are mutually orthogonal, also in H_1):

    * H1[:, columns of class k] = a_k e_k, so ||mu_k^(1)|| = a_k;
    * W_l = sum_k s_{l,k} e_k e_k^T (l = 1..L, rectangular d_{l+1} x d_l; d_{L+1} = K), so the
      post-activation class means are b_{l,k} e_k, the output mean of class k is q_k e_k, and
      W_L = diag(q_k / b_{L,k}^2) M_L^T is self-dual.

    Classes with q_k = 0 get zero features and zero rows/columns. The matrices are in the
    config's dtype and device and shaped like ``DUFM(config).H1`` / ``.W``; loading them into
    ``DUFM(config)`` gives loss :func:`optimal_loss` (to ~1e-16 in float64, theory §7.6).

    Raises:
        ValueError: ``loss="ce"`` (no closed form); some width d_l < K (naming ``width`` and
            the minimum K); some but not all lambdas 0 (the infimum is not attained).
    """
    if config.loss != "mse":
        raise ValueError(
            f"loss={config.loss!r} is not valid for construct_optimum: the closed form needs"
            " loss='mse'"
        )
    K = config.K
    if min(config.widths) < K:
        raise ValueError(
            f"width={config.width!r} is too small for construct_optimum: expected every d_l >="
            f" num_classes={K} (the construction uses K orthonormal vectors per layer)"
        )
    opt = optimum(config)
    if not opt.attained:
        raise ValueError(
            f"lambda_H={config.lambda_H!r}, lambda_W={config.lambda_W!r} are not valid for"
            " construct_optimum: with some but not all lambdas 0 the optimum is not attained;"
            " expected all lambdas > 0 (or all 0)"
        )
    dims = (*config.widths, K)
    H1 = torch.zeros(dims[0], config.N, dtype=torch.float64)
    start = 0
    for k, n in enumerate(config.class_sizes):
        H1[k, start : start + n] = opt.H1_mean_norms[k]
        start += n
    weights = []
    for l in range(config.L):
        W = torch.zeros(dims[l + 1], dims[l], dtype=torch.float64)
        idx = torch.arange(K)
        W[idx, idx] = torch.tensor(opt.singular_values[l], dtype=torch.float64)
        weights.append(W)
    dtype, device = torch_dtype(config.dtype), torch.device(config.device)
    return H1.to(device=device, dtype=dtype), [W.to(device=device, dtype=dtype) for W in weights]
