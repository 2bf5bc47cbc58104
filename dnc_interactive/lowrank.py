"""Low-rank solutions of the DUFM and the DNC / low-rank classifier (theory §5).

The follow-up paper (arXiv 2405.14468) shows that for K > 2 classes and L >= 3 layers deep
neural collapse is no longer optimal: a *strongly regular graph* (SRG) construction of lower
rank beats it. This module builds that construction explicitly, computes its loss, and labels
trained solutions as "DNC" or "low-rank (rank r)".

**The SRG construction** (theory §5 "Reconstruction"; the paper's exact matrices are not
available, so this is our derivation). K = r(r-1)/2 classes are the edges of the complete graph
K_r; ``B`` in {0,1}^{r x K} is its vertex-edge incidence matrix (:func:`incidence_matrix`,
edges in lexicographic order, r - 1 ones per row). With ``J`` an all-ones matrix and ``P_l``
the embedding of the first rows of R^{d_l}, the *canonical* construction is

* H_1 class means ``M_1 = a P_1 B`` (so ``H_1 = M_1 ⊗ 1_n^T``),
* ``W_l = s_l P_{l+1} P_l^T`` for l = 1..L-2 (identity on an r-dim block), so
  M~_l = M_l = (a s_1..s_{l-1}) B >= 0 for 2 <= l <= L-1,
* ``W_{L-1} = s_{L-1} P_L (B^T - J/2)`` (K x r), so
  ``M~_L = b (B^T B - J)``: 1 on the diagonal, 0 for edges sharing a vertex, -1 for disjoint
  edges. Its rank is r (r - 1 when r = 4, where the trivial eigenvalue 2(r-1) - K vanishes),
  while ``M_L = σ(M~_L) = b I_K`` has rank K,
* ``W_L = s_L [I_K 0]``, so the output class means are ``q I_K`` with q = a s_1 ... s_L.

With t = (a, s_1, .., s_L) and the norm constants ||H_1||^2 = 2nK a^2, ||W_l||^2 = r s_l^2
(l = 1..L-2), ||W_{L-1}||^2 = (K r / 4) s_{L-1}^2 and ||W_L||^2 = K s_L^2, i.e.
``kappa = (2nK, r, .., r, Kr/4, K)``, the loss is
``1/2 (1-q)^2 + sum_i (lambda_i kappa_i / 2) t_i^2``. Minimising over the scales at fixed q
(AM-GM, as in theory §2.2) makes every block equal and leaves
``phi_L(q; C)`` with ``C = (prod_i lambda_i kappa_i)^{1/(L+1)}``: the DNC formula with c
replaced by C (for DNC, kappa = (nK, K, .., K)). The remaining 1-D problem over q is solved
by :func:`dnc_interactive.theory.solve_q`. So ``L_SRG = min_q phi_L(q; C)`` exactly
(:func:`srg_loss`); C / c_DNC = (r 2^{L-3} / (r-1)^{L-2})^{1/(L+1)}, below 1 (SRG better)
for L >= 4 and every r >= 4, above 1 for L = 3.

**The symmetric family** (:func:`srg_optimize`): every matrix is replaced by the most general
combination that commutes with the symmetries of K_r (vertex permutations):
``M_1 = x_1 B + y_1 J``, ``W_l = u_l I + v_l J`` (l = 1..L-2), ``W_{L-1} = w_1 B^T + w_2 J``,
``W_L = z_0 I + z_1 A_1 + z_2 A_2`` (A_1: edges sharing a vertex, A_2: disjoint edges), and the
2L + 3 scalars are optimised numerically (from the canonical point and perturbed
starts; BFGS) with the true ReLU objective of theory §1.2 evaluated on the class means. It is never
worse than the canonical construction and measurably better (e.g. K = 10, L = 4,
lambda = 0.004, n = 5: 0.8830 L_DNC against 0.9113).

**Classifier** (:func:`classify`): numerical ranks (sigma_i > rtol sigma_max, theory §3) of the
class means. Decision, justified by theory §2.3: at a DNC solution M_l (post-ReLU, l >= 2) and
M~_l (pre-ReLU, l >= 3) are orthogonal frames, rank K exactly, while H_1 and M~_2 = W_1 M_1
are *not* unique and may be rank-deficient at the optimum (K = 2: antipodal H_1 means have
rank 1; any Gram with non-positive off-diagonals is optimal, e.g. the simplex ETF of rank
K - 1). So layers 1 and 2 pre-ReLU are reported but not used. A solution is "DNC" when every
used layer has rank K, "low-rank (rank r)" when some has rank r < K (r the smallest), and
"trivial" when the last layer's class means vanish (the q = 0 optimum of theory §2.2).

Layering: imports config, model, metrics and theory only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from dnc_interactive import metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DTYPES, DUFM

__all__ = [
    "SRGResult",
    "Verdict",
    "classify",
    "compare_srg_dnc",
    "incidence_matrix",
    "srg_construction",
    "srg_loss",
    "srg_optimize",
    "srg_r",
    "srg_symmetric_matrices",
]

F64 = torch.float64


# ====================================================================== the graph
def srg_r(num_classes: int) -> int | None:
    """r with K = r(r-1)/2 and r >= 3, or None when K is not such a triangular number."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} is not valid: expected an int >= 1")
    r = int(round((1 + math.sqrt(1 + 8 * num_classes)) / 2))
    return r if r >= 3 and r * (r - 1) // 2 == num_classes else None


def incidence_matrix(r: int) -> Tensor:
    """Vertex-edge incidence matrix B in {0,1}^{r x K} of K_r, K = r(r-1)/2 (theory §5).

    Columns are the edges (i, j), i < j, in lexicographic order; each column has two ones and
    each row r - 1 ones. float64.
    """
    if not isinstance(r, int) or isinstance(r, bool) or r < 3:
        raise ValueError(f"r={r!r} is not valid: expected an int >= 3")
    edges = list(itertools.combinations(range(r), 2))
    B = torch.zeros(r, len(edges), dtype=F64)
    for e, (i, j) in enumerate(edges):
        B[i, e] = B[j, e] = 1.0
    return B


def _edge_graphs(B: Tensor) -> tuple[Tensor, Tensor]:
    """(A_1, A_2): adjacency of edges that share a vertex / that are disjoint."""
    K = B.shape[1]
    eye = torch.eye(K, dtype=F64)
    A1 = B.T @ B - 2 * eye
    A2 = 1.0 - A1 - eye
    return A1, A2


# ====================================================================== the canonical SRG loss
@dataclass(frozen=True)
class SRGResult:
    """Loss of an SRG construction for one configuration (theory §5).

    Attributes:
        r, K, L: graph size, classes, depth.
        method: "canonical" (closed form) or "symmetric" (optimised family).
        loss: L_SRG; ``fit`` and ``reg_terms`` (lambda_H/2 ||H_1||^2, lambda_W_l/2 ||W_l||^2)
            are its pieces. ``dnc_loss``: L_DNC of :func:`theory.optimal_loss`;
            ``ratio`` = loss / dnc_loss.
        q: output scale (canonical: output class means q I_K); NaN for "symmetric".
        C: the constant of phi_L(q; C) (canonical); NaN for "symmetric".
        kappa: the norm constants (canonical), ``scales`` the balanced scales t_i.
        params: the 2L + 3 scalars of the symmetric family (empty for canonical).
    """

    r: int
    K: int
    L: int
    method: str
    loss: float
    fit: float
    reg_terms: tuple[float, ...]
    dnc_loss: float
    q: float
    C: float
    kappa: tuple[float, ...]
    scales: tuple[float, ...]
    params: tuple[float, ...] = ()

    @property
    def ratio(self) -> float:
        return self.loss / self.dnc_loss if self.dnc_loss > 0 else math.nan


def _check_config(config: DUFMConfig, r: int | None, need_widths: bool) -> int:
    if not isinstance(config, DUFMConfig):
        raise ValueError(f"config={config!r} is not valid: expected a DUFMConfig")
    if config.loss != "mse":
        raise ValueError(f"loss={config.loss!r} is not valid here: expected 'mse' (theory §5)")
    if config.activation != "relu":
        raise ValueError(
            f"activation={config.activation!r} is not valid here: expected 'relu' (the SRG"
            " construction needs the ReLU)"
        )
    if config.L < 2:
        raise ValueError(f"depth={config.L} is not valid here: expected an int >= 2")
    if not config.balanced:
        raise ValueError(
            f"samples_per_class={config.samples_per_class!r} is not valid here: expected"
            " balanced classes"
        )
    lams = (config.lambda_H, *config.lambda_Ws)
    if min(lams) <= 0:
        raise ValueError(
            f"lambdas {lams} are not valid here: expected every lambda > 0 (with a zero lambda"
            " the infimum 0 is not attained)"
        )
    found = srg_r(config.K)
    if r is None:
        r = found
    if found is None or r != found:
        raise ValueError(
            f"num_classes={config.K} is not valid here: expected K = r(r-1)/2 (3, 6, 10, 15,"
            f" 21, ...){'' if r is None else f' with r={r}'}"
        )
    if need_widths:
        w = config.widths
        for l in range(config.L - 1):
            if w[l] < r:
                raise ValueError(f"width d_{l + 1}={w[l]} is too small: expected >= r={r}")
        if w[-1] < config.K:
            raise ValueError(f"width d_{config.L}={w[-1]} is too small: expected >= K={config.K}")
    return r


def _kappa(config: DUFMConfig, r: int) -> tuple[float, ...]:
    K, L, n = config.K, config.L, config.class_sizes[0]
    return (2.0 * n * K, *([float(r)] * (L - 2)), K * r / 4.0, float(K))


def srg_loss(config: DUFMConfig, r: int | None = None) -> SRGResult:
    """Loss of the canonical SRG construction with its free scales optimised (closed form).

    What is optimised: the L + 1 block scales t = (a, s_1, .., s_L) of the canonical matrices
    (module docstring). At fixed q = prod t_i, AM-GM gives equal blocks
    ``lambda_i kappa_i t_i^2 = C q^{2/(L+1)}``; then q minimises ``phi_L(q; C)``
    (:func:`theory.solve_q`; q = 0, loss 1/2, once C >= c*_L). Needs K = r(r-1)/2, ReLU, MSE,
    balanced classes, L >= 2 and every lambda > 0 (widths are not needed here).
    """
    r = _check_config(config, r, need_widths=False)
    L = config.L
    kappa = _kappa(config, r)
    lams = (config.lambda_H, *config.lambda_Ws)
    logC = sum(math.log(lam * k) for lam, k in zip(lams, kappa, strict=True)) / (L + 1)
    C = math.exp(logC)
    q = theory.solve_q(C, L)
    block = C * q ** (2.0 / (L + 1))
    scales = tuple(math.sqrt(block / (lam * k)) for lam, k in zip(lams, kappa, strict=True))
    fit = 0.5 * (1.0 - q) ** 2
    reg_terms = tuple(0.5 * block for _ in lams)
    return SRGResult(
        r=r,
        K=config.K,
        L=L,
        method="canonical",
        loss=fit + sum(reg_terms),
        fit=fit,
        reg_terms=reg_terms,
        dnc_loss=theory.optimal_loss(config),
        q=q,
        C=C,
        kappa=kappa,
        scales=scales,
    )


def _pad(M: Tensor, rows: int, cols: int) -> Tensor:
    out = torch.zeros(rows, cols, dtype=F64)
    out[: M.shape[0], : M.shape[1]] = M
    return out


def _to_model_matrices(
    config: DUFMConfig, M1: Tensor, Ws: Sequence[Tensor]
) -> tuple[Tensor, list[Tensor]]:
    """Pad the small matrices to the config's widths; H_1 = M_1 ⊗ 1_n^T (class-ordered)."""
    dims = (*config.widths, config.K)
    dtype = DTYPES[config.dtype]
    device = torch.device(config.device)
    labels = torch.tensor(config.labels())
    H1 = _pad(M1, dims[0], config.K)[:, labels]
    weights = [_pad(W, dims[l + 1], dims[l]) for l, W in enumerate(Ws)]
    return H1.to(dtype=dtype, device=device), [W.to(dtype=dtype, device=device) for W in weights]


def srg_construction(
    config: DUFMConfig, r: int | None = None, scales: Sequence[float] | None = None
) -> tuple[Tensor, list[Tensor]]:
    """Explicit (H_1, [W_1..W_L]) of the canonical SRG construction, at the config's widths.

    ``scales`` = (a, s_1, .., s_L); default: the optimal scales of :func:`srg_loss`. Load them
    with ``DUFM(config).load_matrices(*srg_construction(config))``. Needs d_1..d_{L-1} >= r
    and d_L >= K.
    """
    r = _check_config(config, r, need_widths=True)
    L, K = config.L, config.K
    if scales is None:
        scales = srg_loss(config, r).scales
    scales = tuple(float(s) for s in scales)
    if len(scales) != L + 1:
        raise ValueError(f"scales has {len(scales)} entries: expected L + 1 = {L + 1}")
    B = incidence_matrix(r)
    M1 = scales[0] * B
    Ws = [scales[l] * torch.eye(r, dtype=F64) for l in range(1, L - 1)]
    Ws.append(scales[L - 1] * (B.T - 0.5 * torch.ones(K, r, dtype=F64)))
    Ws.append(scales[L] * torch.eye(K, dtype=F64))
    return _to_model_matrices(config, M1, Ws)


# ====================================================================== symmetric family
def srg_symmetric_matrices(
    params: Tensor | Sequence[float], r: int, L: int
) -> tuple[Tensor, list[Tensor]]:
    """(M_1, [W_1..W_L]) of the S_r-symmetric family (unpadded, float64; differentiable).

    ``params`` = (x_1, y_1, u_1, v_1, .., u_{L-2}, v_{L-2}, w_1, w_2, z_0, z_1, z_2): see the
    module docstring. M_1 is r x K, W_l (l <= L-2) r x r, W_{L-1} K x r, W_L K x K.
    """
    th = torch.as_tensor(params, dtype=F64)
    if th.shape != (2 * L + 3,):
        raise ValueError(f"params has shape {tuple(th.shape)}: expected ({2 * L + 3},)")
    B = incidence_matrix(r)
    K = B.shape[1]
    A1, A2 = _edge_graphs(B)
    eye_r, eye_K = torch.eye(r, dtype=F64), torch.eye(K, dtype=F64)
    M1 = th[0] * B + th[1] * torch.ones(r, K, dtype=F64)
    Ws = [th[2 + 2 * l] * eye_r + th[3 + 2 * l] * torch.ones(r, r, dtype=F64) for l in range(L - 2)]
    i = 2 * (L - 1)
    Ws.append(th[i] * B.T + th[i + 1] * torch.ones(K, r, dtype=F64))
    Ws.append(th[i + 2] * eye_K + th[i + 3] * A1 + th[i + 4] * A2)
    return M1, Ws


def _mean_objective(
    M1: Tensor, Ws: Sequence[Tensor], n: int, lams: Sequence[float]
) -> tuple[Tensor, list[Tensor]]:
    """(fit, reg terms) of theory §1.2 for DNC1 features (H_1 = M_1 ⊗ 1_n^T, balanced)."""
    K = M1.shape[1]
    X = M1
    for W in Ws[:-1]:
        X = torch.relu(W @ X)
    Z = Ws[-1] @ X
    fit = (Z - torch.eye(K, dtype=F64)).pow(2).sum() / (2 * K)
    regs = [0.5 * lams[0] * n * M1.pow(2).sum()]
    regs += [0.5 * lam * W.pow(2).sum() for lam, W in zip(lams[1:], Ws, strict=True)]
    return fit, regs


def _canonical_params(res: SRGResult) -> list[float]:
    t, L = res.scales, res.L
    th = [t[0], 0.0]
    for l in range(1, L - 1):
        th += [t[l], 0.0]
    th += [t[L - 1], -0.5 * t[L - 1], t[L], 0.0, 0.0]
    return th


def _bfgs(f, x0: Tensor, max_iter: int) -> tuple[Tensor, float]:
    """Minimise a scalar torch function of a small vector: BFGS with Armijo backtracking.

    Written here (a few dozen parameters at most) to keep ``torch.optim`` and its slow first
    import out of the way. Deterministic; stops after ``max_iter`` iterations or when no step
    decreases f.
    """

    def fg(x: Tensor) -> tuple[float, Tensor]:
        x = x.detach().requires_grad_(True)
        v = f(x)
        (g,) = torch.autograd.grad(v, x)
        return float(v.detach()), g

    x = x0.detach().clone()
    fx, g = fg(x)
    n = x.numel()
    Hinv = torch.eye(n, dtype=F64)
    stalled = 0
    for _ in range(max_iter):
        if stalled >= 5:  # five steps in a row without a relative gain of 1e-15
            break
        d = -(Hinv @ g)
        slope = float(g @ d)
        if slope >= 0:  # not a descent direction: restart from steepest descent
            Hinv = torch.eye(n, dtype=F64)
            d, slope = -g, -float(g @ g)
        if slope == 0:
            break
        t, accepted = 1.0, False
        for _ in range(40):
            x_new = x + t * d
            f_new, g_new = fg(x_new)
            if math.isfinite(f_new) and f_new <= fx + 1e-4 * t * slope:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        s_vec, y_vec = x_new - x, g_new - g
        sy = float(s_vec @ y_vec)
        if sy > 1e-300:
            rho = 1.0 / sy
            eye = torch.eye(n, dtype=F64)
            V = eye - rho * torch.outer(s_vec, y_vec)
            Hinv = V @ Hinv @ V.T + rho * torch.outer(s_vec, s_vec)
        stalled = stalled + 1 if fx - f_new <= 1e-15 * abs(fx) else 0
        x, fx, g = x_new, f_new, g_new
    return x, fx


def srg_optimize(
    config: DUFMConfig,
    r: int | None = None,
    *,
    starts: int = 4,
    seed: int = 0,
    max_iter: int = 400,
) -> tuple[SRGResult, tuple[Tensor, list[Tensor]]]:
    """Best member of the S_r-symmetric SRG family found by BFGS (theory §5).

    What is optimised: the 2L + 3 scalars of :func:`srg_symmetric_matrices` (module
    docstring), on the exact ReLU objective of theory §1.2 with DNC1 features, by BFGS with
    backtracking (``max_iter`` iterations per start) from the canonical construction and
    ``starts - 1`` perturbed copies of it (multiplicative noise 30 %, seeded). The result is
    never above :func:`srg_loss` and is an upper bound on the best symmetric SRG-type
    solution (a local search, not a certificate).

    Returns ``(result, (H_1, [W_1..W_L]))``, the matrices padded to the config's widths.
    """
    r = _check_config(config, r, need_widths=True)
    if not (isinstance(starts, int) and starts >= 1):
        raise ValueError(f"starts={starts!r} is not valid: expected an int >= 1")
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"max_iter={max_iter!r} is not valid: expected an int >= 1")
    canon = srg_loss(config, r)
    L, n = config.L, config.class_sizes[0]
    lams = (config.lambda_H, *config.lambda_Ws)
    th0 = torch.tensor(_canonical_params(canon), dtype=F64)
    gen = torch.Generator().manual_seed(seed)

    def value(th: Tensor) -> Tensor:
        fit, regs = _mean_objective(*srg_symmetric_matrices(th, r, L), n, lams)
        return fit + sum(regs)

    best_th, best = th0.clone(), float(value(th0))
    for s in range(starts):
        noise = torch.randn(th0.shape, generator=gen, dtype=F64)
        jitter = torch.randn(th0.shape, generator=gen, dtype=F64)
        start = th0 if s == 0 else th0 * (1 + 0.3 * noise) + 0.02 * jitter
        th, v = _bfgs(value, start, max_iter)
        if math.isfinite(v) and v < best:
            best, best_th = v, th
    with torch.no_grad():
        M1, Ws = srg_symmetric_matrices(best_th, r, L)
        fit, regs = _mean_objective(M1, Ws, n, lams)
    result = SRGResult(
        r=r,
        K=config.K,
        L=L,
        method="symmetric",
        loss=float(fit) + sum(float(x) for x in regs),
        fit=float(fit),
        reg_terms=tuple(float(x) for x in regs),
        dnc_loss=canon.dnc_loss,
        q=math.nan,
        C=math.nan,
        kappa=(),
        scales=(),
        params=tuple(best_th.tolist()),
    )
    return result, _to_model_matrices(config, M1, Ws)


def compare_srg_dnc(
    rs: Sequence[int] = (4, 5, 6),
    depths: Sequence[int] = (3, 4, 5),
    lam: float = 0.004,
    samples_per_class: int = 5,
    optimize: bool = True,
) -> pd.DataFrame:
    """L_SRG / L_DNC for K = r(r-1)/2 over r and L, all lambdas equal (follow-up Fig. 3 left).

    Columns r, K, depth, lambda, samples_per_class, dnc_loss, srg_loss (canonical),
    srg_ratio, and with ``optimize`` srg_sym_loss / srg_sym_ratio (:func:`srg_optimize`).
    The paper's values are not known here (theory §5); these are our constructions.
    """
    rows = []
    for r in rs:
        K = r * (r - 1) // 2
        for L in depths:
            cfg = DUFMConfig(
                num_classes=K,
                samples_per_class=samples_per_class,
                depth=L,
                width=max(K, r),
                lambda_H=lam,
                lambda_W=lam,
                dtype="float64",
            )
            canon = srg_loss(cfg, r)
            row = {
                "r": r,
                "K": K,
                "depth": L,
                "lambda": lam,
                "samples_per_class": samples_per_class,
                "dnc_loss": canon.dnc_loss,
                "srg_loss": canon.loss,
                "srg_ratio": canon.ratio,
            }
            if optimize:
                sym, _ = srg_optimize(cfg, r)
                row["srg_sym_loss"] = sym.loss
                row["srg_sym_ratio"] = sym.ratio
            rows.append(row)
    return pd.DataFrame(rows)


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
