"""The closed-form optimum of one configuration (theory §2.2, §2.3, §6): Lambda, the per-class
c_k and q_k, L*, which optimum it is, the full :class:`Optimum` (evaluated once per config and
cached) and the explicit optimal matrices (re-exported by :mod:`dnc_interactive.theory`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import torch_dtype
from dnc_interactive.theory.scalar import (
    THRESHOLD_BAND,
    _near,
    _phi_from_r,
    _solve_r,
    c_star,
    phi,
    solve_q,
)

OPTIMALITY_PROVEN = "proven (K=2)"
OPTIMALITY_K2_IMBALANCED = "checked numerically (K=2, imbalanced, theory §6)"
OPTIMALITY_LINEAR = "global optimum (linear)"
OPTIMALITY_DNC_ONLY = "DNC family only (K>2, L>=3: low-rank solutions may be lower, theory §5)"
OPTIMALITY_UNVERIFIED = "unverified"
OPTIMALITY_NOT_APPLICABLE = "not applicable (loss='ce')"


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
