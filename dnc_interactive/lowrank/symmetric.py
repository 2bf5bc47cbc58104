"""The S_r-symmetric SRG family, optimised by BFGS, and the SRG / DNC table (theory §5).

Every matrix of the canonical construction (:mod:`dnc_interactive.lowrank.srg`) is replaced by
the most general combination that commutes with the vertex permutations of K_r; the 2L + 3
scalars are optimised on the exact ReLU objective (see :mod:`dnc_interactive.lowrank`).

Layering: imports config, model, theory and :mod:`dnc_interactive.lowrank.srg` only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pandas as pd
import torch
from torch import Tensor

from dnc_interactive.config import DUFMConfig
from dnc_interactive.lowrank.srg import (
    F64,
    SRGResult,
    _check_config,
    _edge_graphs,
    _to_model_matrices,
    incidence_matrix,
    srg_loss,
)

__all__ = ["compare_srg_dnc", "srg_optimize", "srg_symmetric_matrices"]


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


def _bfgs(f: Callable[[Tensor], Tensor], x0: Tensor, max_iter: int) -> tuple[Tensor, float]:
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
