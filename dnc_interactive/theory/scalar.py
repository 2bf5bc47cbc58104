"""The scalar problem of one class (theory §2.2): the threshold c*_L, phi_L(q; c) and its
minimiser q*(c), with the argument checks shared by the theory modules. Pure numbers: no
configuration, no torch (re-exported by :mod:`dnc_interactive.theory`).
"""

from __future__ import annotations

import math
import numbers

import numpy as np


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


def _near(c: tuple[float, ...], L: int, margin: float) -> bool:
    cs = c_star(L)
    return any(abs(ck / cs - 1.0) < margin for ck in c)
