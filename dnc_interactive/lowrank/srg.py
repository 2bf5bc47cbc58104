"""The SRG construction: the graph, the canonical loss and its explicit matrices (theory §5).

K = r(r-1)/2 classes are the edges of the complete graph K_r; see :mod:`dnc_interactive.lowrank`
for the construction and its loss ``L_SRG = min_q phi_L(q; C)``.

Layering: imports config, model and theory only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dnc_interactive import theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DTYPES

__all__ = ["SRGResult", "incidence_matrix", "srg_construction", "srg_loss", "srg_r"]

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
