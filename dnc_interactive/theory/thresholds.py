"""Thresholds of the closed form (theory §2.2, §4.1, §6, §7.1): the critical lambdas and
scale, the minority-collapse class size, and whether a configuration is near c*_L
(re-exported by :mod:`dnc_interactive.theory`).
"""

from __future__ import annotations

import math
import numbers

from dnc_interactive.config import DUFMConfig
from dnc_interactive.theory.closed_form import _log_Lambda, effective_c, optimal_q, optimum
from dnc_interactive.theory.scalar import THRESHOLD_BAND, _check_depth, _near, c_star


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
