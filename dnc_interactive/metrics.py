"""Deep neural collapse metrics (theory §3), one function per metric, plus a streaming accumulator.

Conventions (one vocabulary across the package):

* ``X`` is a (d, N) feature matrix whose columns are samples, ``y`` an (N,) integer label
  tensor with values 0..K-1 (classes may have different sizes), ``M`` a (d, K) class-mean
  matrix and ``W`` a layer's weight matrix (d_out, d_in).
* Every computation runs in float64, whatever the input dtype; scalar metrics return Python
  floats.
* Class means and the global mean (theory §3)::

      mu_c = (1/n_c) sum_{i: y_i = c} x_i,        mu_G = (1/K) sum_c mu_c

  mu_G is the mean of the class means (not the sample mean; they agree for balanced data), and
  ``Mbar = M - mu_G 1^T`` is the centred mean matrix.
* Scatter matrices (theory §3), with N the total number of samples::

      Sigma_W = (1/N) sum_c sum_{i: y_i = c} (x_i - mu_c)(x_i - mu_c)^T
      Sigma_B = (1/K) sum_c (mu_c - mu_G)(mu_c - mu_G)^T = (1/K) Mbar Mbar^T

* A metric whose normalisation is 0 (all class means equal for NC1, a zero matrix for the
  normalised Gram errors, zero-norm centred means for equinorm/coherence, a zero ``W`` for the
  NC3 errors) is undefined and returns ``nan``.

Nothing in here forms or inverts a d x d matrix for the one-shot metrics: every between-class
quantity comes from the SVD of the (d, K) mean matrix. The model-level helpers
(:func:`layer_metric_rows`, :func:`collapse_report` and the ``*_frame`` snapshot builders) read a
:class:`~dnc_interactive.model.DUFM`; the metrics know nothing of training.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd
import torch
from torch import Tensor

from dnc_interactive.model import DUFM, Features
from dnc_interactive.validation import ParameterError

F64 = torch.float64
NC1_RCOND = 1e-6
RANK_RTOL = 1e-3
#: NC1 threshold of :func:`collapse_report`'s ``collapsed`` column.
COLLAPSE_TOL = 1e-2

#: Metrics emitted per layer and kind ("pre"/"post") by :func:`layer_metric_rows`.
FEATURE_METRICS: tuple[str, ...] = (
    "nc1",
    "nc1_trace",
    "nc2_orth",
    "nc2_etf",
    "equinorm",
    "coherence",
    "rank",
    "mean_norm",
)

#: Imbalance-aware metrics emitted per layer and kind ("pre"/"post") by
#: ``layer_metric_rows(extended=True)`` (theory §3.7, §3.8): :func:`nc2_general_orth`,
#: :func:`cdnv` and the largest pairwise CDNV.
EXTENDED_METRICS: tuple[str, ...] = ("nc2_general_orth", "cdnv", "cdnv_max")

#: Per-class metrics emitted per layer and kind by ``layer_metric_rows(extended=True)``, one
#: row ``f"{name}_{k}"`` per class k (:func:`class_metric`; theory §3.9): the per-class NC1
#: (:func:`nc1_per_class`), per-class CDNV (:func:`cdnv_per_class`) and the norm ||mu_k||.
CLASS_METRICS: tuple[str, ...] = ("nc1_class", "cdnv_class", "norm_class")


def class_metric(name: str, k: int) -> str:
    """The history name of per-class metric ``name`` for class ``k``: ``f"{name}_{k}"``
    (``nc1_class_0``, ``nc3_class_1``, ...; theory §3.9)."""
    return f"{name}_{k}"


# ====================================================================== input handling
def _f64(t: Tensor) -> Tensor:
    return t.detach().to(F64)


def _describe_nonfinite(A: Tensor) -> str:
    nan = int(torch.isnan(A).sum())
    inf = int(torch.isinf(A).sum())
    parts = [f"{nan} NaN" if nan else "", f"{inf} inf" if inf else ""]
    return " and ".join(p for p in parts if p) + f" of {A.numel()} entries"


def _check_finite(name: str, A: Tensor) -> Tensor:
    if not bool(torch.isfinite(A).all()):
        raise ValueError(
            f"{name} contains non-finite values ({_describe_nonfinite(A)}): the collapse metrics"
            " are undefined for NaN or inf input (did the training diverge?)"
        )
    return A


def _check_matrix(name: str, A: Tensor, what: str = "rows", finite: bool = True) -> Tensor:
    """A finite (unless ``finite=False``), non-empty 2-D tensor, as float64. ``what`` names
    the rows in messages."""
    if not isinstance(A, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(A).__name__}")
    if A.ndim != 2:
        raise ValueError(f"{name} must be a 2-D tensor, got shape {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError(f"{name} must be real, got dtype {A.dtype}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(
            f"{name} has shape {tuple(A.shape)}: expected at least one row ({what}) and one"
            " column, the metrics are undefined for an empty matrix"
        )
    A = _f64(A)
    return _check_finite(name, A) if finite else A


def _check_tolerance(name: str, value: object) -> float:
    """A relative cut-off (``rcond`` / ``rtol``): a real number in [0, 1)."""
    allowed = "a real number in [0, 1)"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ParameterError(
            name, value, allowed, message=f"{name}={value!r} is not valid: expected {allowed}"
        )
    v = float(value)
    if not (0.0 <= v < 1.0):  # also rejects NaN
        raise ParameterError(
            name,
            value,
            allowed,
            message=f"{name}={value!r} is not valid: expected {allowed} (a cut-off relative to"
            " the largest singular value; >= 1 would drop every direction)",
        )
    return v


def _check_num_classes(num_classes: object, minimum: int = 2) -> int | None:
    if num_classes is None:
        return None
    allowed = f"an int >= {minimum} or None"
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or int(num_classes) < minimum
    ):
        raise ParameterError(
            "num_classes",
            num_classes,
            allowed,
            message=f"num_classes={num_classes!r} is not valid: expected {allowed}",
        )
    return int(num_classes)


def _check_xy(
    X: Tensor,
    y: Tensor,
    num_classes: int | None,
    min_classes: int = 2,
    name: str = "X",
    finite: bool = True,
) -> tuple[Tensor, Tensor, int]:
    if not isinstance(y, Tensor) or y.ndim != 1:
        raise ValueError(f"y must be a 1-D integer tensor, got {y!r:.60}")
    if y.dtype.is_floating_point or y.dtype == torch.bool or y.dtype.is_complex:
        raise ValueError(f"y must hold integer labels, got dtype {y.dtype}")
    if y.numel() == 0:
        raise ValueError("no samples: X and y are empty (X must be (d, N) with N >= 1)")
    X = _check_matrix(name, X, what="d >= 1 features", finite=finite)
    if y.shape[0] != X.shape[1]:
        raise ValueError(
            f"{name} has {X.shape[1]} columns (samples) but y has {y.shape[0]} labels:"
            f" {name} must be (d, N) with one column per sample"
        )
    num_classes = _check_num_classes(num_classes, min_classes)
    y = y.to(device=X.device, dtype=torch.long)
    lo, hi = int(y.min()), int(y.max())
    K = hi + 1 if num_classes is None else num_classes
    if lo < 0 or hi >= K:
        raise ValueError(f"labels must lie in 0..{K - 1}, got values in {lo}..{hi}")
    if K < min_classes:
        raise ValueError(
            f"y has only K = {K} class(es) (labels 0..{hi}): the collapse metrics compare"
            f" classes and need K >= {min_classes} (pass num_classes= if classes are missing)"
        )
    return X, y, K


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


def _mean_operator(y: Tensor, K: int) -> tuple[Tensor, Tensor]:
    """(N, K) matrix A with ``X @ A`` = class means, and the counts n_c. Empty class -> error."""
    onehot = torch.nn.functional.one_hot(y, K).to(F64)
    counts = onehot.sum(0)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"class(es) {missing} have no samples: their means are undefined")
    return onehot / counts, counts


def _onehot_rows(y: Tensor, K: int) -> Tensor:
    """(K, N) one-hot matrix E with ``M @ E = M[:, y]``."""
    return torch.nn.functional.one_hot(y, K).to(F64).T


# ====================================================================== tensor-valued cores
# Each public metric is a float() around one of these; the model-level helpers call the cores
# directly, batched over layers (a leading batch dimension), and convert everything to Python
# numbers with a single .tolist(). All cores accept a leading batch dimension. Scale safety:
# the callers pass matrices divided by a power of two near their largest entry (_unit,
# _pow2_scale), so no product or norm overflows or underflows for entries near 1e200 or
# 1e-200, and ordinary inputs give bitwise the values of the unscaled formulas (every metric
# here but mean_norm is invariant under scaling).
def _nan_like(t: Tensor) -> Tensor:
    return torch.full_like(t, math.nan)


def _centre(M: Tensor) -> Tensor:
    return M - M.mean(dim=-1, keepdim=True)


def _nc1_keep(s: Tensor, rcond: float, rmax: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(s^2, kept, structural) masks of NC1's cut-off (see :func:`_nc1_core`): direction i is
    structural iff i < rmax and kept iff also s_i^2 > rcond s_1^2."""
    s2 = s * s
    index = torch.arange(s.shape[-1], device=s.device)
    structural = index < rmax[..., None]
    keep = (s2 > rcond * s2[..., :1]) & structural
    return s2, keep, structural


def _nc1_core(
    s: Tensor, quad: Tensor, rcond: float, rmax: Tensor, details: bool = True
) -> dict[str, Tensor]:
    """NC1 and what its cut-off dropped, from the SVD of Mbar.

    ``s`` are the singular values of Mbar (descending), ``quad_i = u_i^T Sigma_W u_i`` and
    ``rmax`` = min(d, K - 1), the rank Sigma_B has when the K class means are in general
    position (the centring makes index K - 1 structurally zero; it is never counted).
    Sigma_B = (1/K) U diag(s^2) U^T, so Sigma_B^+ = K sum_kept s_i^-2 u_i u_i^T; an eigenvalue
    s_i^2/K of Sigma_B is kept iff it exceeds rcond times the largest one (s_i^2 > rcond s_1^2).

    Returns ``nc1`` = sum over kept i of quad_i / s_i^2 = tr(Sigma_W Sigma_B^+)/K, ``kept``,
    ``dropped`` = rmax - kept (directions the cut-off, or an exact degeneracy, left out) and
    ``hidden`` = sum over the dropped i < rmax of quad_i / (rcond s_1^2): a lower bound on what
    those directions would add to NC1 (s_i^2 <= rcond s_1^2 there), 0 when no within-class
    variance lies along them. ``nc1 + hidden`` can only be small if the classes have
    separated in every direction the means could span. ``details=False``: ``nc1`` only.
    """
    s2, keep, structural = _nc1_keep(s, rcond, rmax)
    top = s2[..., :1]
    val = torch.where(keep, quad / torch.where(keep, s2, torch.ones_like(s2)), 0.0).sum(-1)
    defined = top[..., 0] > 0
    if not details:
        return {"nc1": torch.where(defined, val, _nan_like(val))}
    floor = rcond * top  # 0 for rcond = 0: only exact zeros are dropped, any variance is inf
    ratio = torch.where(
        floor > 0,
        quad / torch.where(floor > 0, floor, torch.ones_like(floor)),
        torch.where(quad > 0, math.inf, 0.0),
    )
    hidden = torch.where(structural & ~keep, ratio, 0.0).sum(-1)
    kept = keep.sum(-1).to(F64)
    return {
        "nc1": torch.where(defined, val, _nan_like(val)),
        "nc1_kept": kept,
        "nc1_dropped": rmax.to(F64) - kept,
        "nc1_hidden": torch.where(defined, hidden, _nan_like(hidden)),
    }


def _separation_core(Mbar: Tensor, rcond: float) -> dict[str, Tensor]:
    """``separation`` = min over pairs c != c' of ||mu_c - mu_c'|| divided by the max (``nan``
    when all means are equal) and ``separated`` (1.0 iff the smallest squared distance exceeds
    ``rcond`` times the largest, the cut-off NC1 applies to Sigma_B's eigenvalues)."""
    K = Mbar.shape[-1]
    G = Mbar.mT @ Mbar
    sq = torch.diagonal(G, dim1=-2, dim2=-1)
    D2 = (sq[..., :, None] + sq[..., None, :] - 2.0 * G).clamp_min(0.0)
    off = ~torch.eye(K, dtype=torch.bool, device=Mbar.device)
    lo = torch.where(off, D2, math.inf).amin((-2, -1))
    hi = torch.where(off, D2, -math.inf).amax((-2, -1))
    ratio = torch.where(hi > 0, (lo / torch.where(hi > 0, hi, 1.0)).sqrt(), _nan_like(hi))
    return {"nc1_separation": ratio, "nc1_separated": ((hi > 0) & (lo > rcond * hi)).to(F64)}


def _trace_ratio_core(trW: Tensor, trB: Tensor) -> Tensor:
    return torch.where(trB > 0, trW / torch.where(trB > 0, trB, 1.0), _nan_like(trB))


def _normalised_gram_error(M: Tensor, target: Tensor) -> Tensor:
    """|| G/||G||_F - target ||_F for G = M^T M (M scaled to entries ~ 1 by the caller)."""
    G = M.mT @ M
    norm = torch.linalg.matrix_norm(G)[..., None, None]
    return torch.linalg.matrix_norm(G / norm - target)


def _nc2_orth_core(M: Tensor) -> Tensor:
    K = M.shape[-1]
    eye = torch.eye(K, dtype=F64, device=M.device)
    return _normalised_gram_error(M, eye / math.sqrt(K))


def _nc2_etf_core(Mbar: Tensor) -> Tensor:
    K = Mbar.shape[-1]
    eye = torch.eye(K, dtype=F64, device=Mbar.device)
    return _normalised_gram_error(Mbar, (eye - 1.0 / K) / math.sqrt(K - 1))


def _equinorm_core(Mbar: Tensor) -> Tensor:
    """std_c / mean_c of the norms ||mu_c - mu_G|| (the columns of Mbar)."""
    norms = torch.linalg.vector_norm(Mbar, dim=-2)
    return norms.std(dim=-1, correction=0) / norms.mean(dim=-1)


def _coherence_core(Mbar: Tensor) -> Tensor:
    K = Mbar.shape[-1]
    norms = torch.linalg.vector_norm(Mbar, dim=-2)
    cos = (Mbar.mT @ Mbar) / (norms[..., :, None] * norms[..., None, :])
    off = ~torch.eye(K, dtype=torch.bool, device=Mbar.device)
    return ((cos + 1.0 / (K - 1)).abs() * off).sum((-2, -1)) / (K * (K - 1))


def _rank_core(s: Tensor, rtol: float) -> Tensor:
    return (s > rtol * s[..., :1]).sum(-1)


def _nc3_core(W: Tensor, M: Tensor) -> Tensor:
    return torch.linalg.matrix_norm(
        W / torch.linalg.matrix_norm(W) - M.mT / torch.linalg.matrix_norm(M)
    )


def _dnc3_core(W: Tensor, U: Tensor, s: Tensor, rcond: float) -> Tensor:
    """||W (I - P) ||_F / ||W||_F with P = Uk Uk^T, Uk the left singular vectors of M kept."""
    Uk = U * (s > rcond * s[..., :1])[..., None, :]
    resid = W - (W @ Uk) @ Uk.mT
    return torch.linalg.matrix_norm(resid) / torch.linalg.matrix_norm(W)


def _nc4_core(X: Tensor, M: Tensor, Z: Tensor) -> Tensor:
    """``X`` and ``M`` must be scaled alike (the nearest mean does not change), ``Z`` any way."""
    ncc = ((M * M).sum(0)[:, None] - 2.0 * (M.T @ X)).argmin(dim=0)
    return (Z.argmax(dim=0) != ncc).to(F64).mean()


# ---------------------------------------------------------------- imbalance-aware cores
# theory §3.7-§3.9: CDNV, the general orthogonal frame and per-class NC1 / NC3. Every class
# counts once, whatever its size or norm, so a minority class is never averaged away.
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


def _nc2_general_orth_core(M: Tensor) -> Tensor:
    """sqrt(mean_{c != c'} cos^2(mu_c, mu_c')), cos = 0 next to a zero column; nan for M = 0."""
    K = M.shape[-1]
    U = _unit_columns(M)
    C = U.mT @ U
    off = ~torch.eye(K, dtype=torch.bool, device=M.device)
    val = (torch.where(off, C, 0.0).pow(2).sum((-2, -1)) / (K * (K - 1))).sqrt()
    return torch.where(_nonzero(M), val, _nan_like(val))


def _nc3_class_core(W: Tensor, M: Tensor) -> Tensor:
    """(..., K): ||w_k/||w_k|| - mu_k/||mu_k||||, a zero row / column counting as the 0 vector."""
    return torch.linalg.vector_norm(_unit_columns(W.mT) - _unit_columns(M), dim=-2)


def _nc3_general_core(per_class: Tensor, W: Tensor, M: Tensor) -> Tensor:
    val = per_class.pow(2).mean(-1).sqrt()
    return torch.where(_nonzero(W) & _nonzero(M), val, _nan_like(val))


def _nc1_class_core(
    U: Tensor, s: Tensor, P2: Tensor, A: Tensor, rcond: float, rmax: Tensor
) -> Tensor:
    """(..., K) per-class NC1 tr(Sigma_W^(k) Sigma_B^+)/K, Sigma_W^(k) the class-k covariance.

    ``P2 = (U^T R)^2`` (..., r, N) holds the squared projections of the residuals on the left
    singular vectors of Mbar; ``A`` (N, K) averages over each class. Same cut-off as NC1, so
    ``sum_k (n_k/N) nc1_class_k = nc1``.
    """
    s2, keep, _ = _nc1_keep(s, rcond, rmax)
    inv = torch.where(keep, 1.0 / torch.where(keep, s2, torch.ones_like(s2)), 0.0)
    val = (inv[..., None] * P2).sum(-2) @ A
    return torch.where(s2[..., :1] > 0, val, _nan_like(val))


def _class_variances(R: Tensor, A: Tensor) -> Tensor:
    """(..., K) Var_k = mean_{i in class k} ||r_i||^2 of the residuals R = X - M[:, y]
    (..., d, N), with ``A`` (N, K) the class averaging operator."""
    return R.pow(2).sum(-2) @ A


def _cdnv_core(M: Tensor, var: Tensor) -> Tensor:
    """(..., K, K) CDNV matrix (Var_i + Var_j) / (2 ||mu_i - mu_j||^2) from the class means M
    (..., d, K) and the class variances ``var`` (..., K); 0 on the diagonal and nan where two
    means coincide."""
    K = M.shape[-1]
    D2 = (M[..., :, :, None] - M[..., :, None, :]).pow(2).sum(-3)
    num = 0.5 * (var[..., :, None] + var[..., None, :])
    C = torch.where(D2 > 0, num / torch.where(D2 > 0, D2, torch.ones_like(D2)), math.nan)
    eye = torch.eye(K, dtype=torch.bool, device=M.device)
    return torch.where(eye, 0.0, C)


def _cdnv_summary(C: Tensor) -> dict[str, Tensor]:
    """Mean over the pairs i != j (``cdnv``), the largest pair (``cdnv_max``) and the per-class
    row means ``cdnv_class`` (..., K) of a CDNV matrix; nan propagates."""
    K = C.shape[-1]
    off = ~torch.eye(K, dtype=torch.bool, device=C.device)
    return {
        "cdnv": C.sum((-2, -1)) / (K * (K - 1)),
        "cdnv_max": torch.where(off, C, -math.inf).amax((-2, -1)),
        "cdnv_class": C.sum(-1) / (K - 1),
    }


def _same(A: Tensor) -> Tensor:
    return A


def _feature_cores(
    X: Tensor,
    A: Tensor,
    E: Tensor,
    rcond: float,
    rtol: float,
    dims: Tensor | None = None,
    *,
    scaled: bool = True,
    details: bool = True,
    extended: bool = False,
) -> dict:
    """Per-layer feature metrics of a batch (B, d, N) of float64 feature matrices.

    ``A`` (N, K) maps features to class means (``X @ A = M``), ``E`` (K, N) is the one-hot
    label matrix (``M @ E = M[:, y]``), ``dims`` (B,) the true feature dimension of each
    matrix when the batch is zero-padded (default d). Returns (B,) tensors for the metrics of
    :data:`FEATURE_METRICS`, with ``details`` NC1's ``nc1_kept`` / ``nc1_dropped`` /
    ``nc1_hidden`` and the separation of the means, and the intermediate ``scale`` (B, 1, 1)
    (the power of two the features were divided by), the scaled class means
    ``M`` = (X / scale) @ A and their SVD (UM, sM). ``scaled=False`` skips the scaling (for
    entries known to lie far from overflow and underflow; the values are bitwise the same).
    ``extended`` adds the imbalance-aware and per-class metrics of theory §3.7-§3.9:
    ``nc2_general_orth``, ``cdnv``, ``cdnv_max`` (B,) and ``nc1_class``, ``cdnv_class`` (B, K).
    """
    N, K = A.shape
    B = X.shape[0]
    unit = _unit if scaled else _same
    if scaled:
        scale = _pow2_scale(X)
        X = X / scale
    else:
        scale = torch.ones(B, 1, 1, dtype=X.dtype, device=X.device)
    M = X @ A
    R = X - M @ E
    Mbar = _centre(M)
    Us, ss, _ = torch.linalg.svd(torch.cat([Mbar, M]), full_matrices=False)  # one LAPACK batch
    U, s, UM, sM = Us[:B], ss[:B], Us[B:], ss[B:]
    P2 = (U.mT @ R).pow(2)
    quad = P2.sum(-1) / N
    Mbu = unit(Mbar)  # the centred means can be much smaller than the samples
    if dims is None:
        dims = torch.full((B,), X.shape[-2], device=X.device)
    rmax = torch.clamp(dims.to(X.device), max=K - 1)
    out = {
        "M": M,
        "scale": scale,
        "UM": UM,
        "sM": sM,
        **_nc1_core(s, quad, rcond, rmax, details),
        "nc1_trace": _trace_ratio_core(R.pow(2).sum((-2, -1)) / N, s.pow(2).sum(-1) / K),
        "nc2_orth": _nc2_orth_core(unit(M)),
        "nc2_etf": _nc2_etf_core(Mbu),
        "equinorm": _equinorm_core(Mbu),
        "coherence": _coherence_core(Mbu),
        "rank": _rank_core(sM, rtol).to(F64),
        "mean_norm": torch.linalg.vector_norm(M, dim=-2).mean(-1) * scale[..., 0, 0],
    }
    if details:
        out.update(_separation_core(Mbu, rcond))
    if extended:
        out["nc2_general_orth"] = _nc2_general_orth_core(M)
        out["nc1_class"] = _nc1_class_core(U, s, P2, A, rcond, rmax)
        out.update(_cdnv_summary(_cdnv_core(M, _class_variances(R, A))))
    return out


def _one_shot_cores(
    X: Tensor, y: Tensor, num_classes: int | None, rcond: float, extended: bool = False
) -> dict:
    X, y, K = _check_xy(X, y, num_classes)
    A, _ = _mean_operator(y, K)
    return _feature_cores(X[None], A, _onehot_rows(y, K), rcond, RANK_RTOL, extended=extended)


# ====================================================================== one-shot metrics
_DETAIL_KEYS = ("nc1", "nc1_kept", "nc1_dropped", "nc1_hidden", "nc1_separation", "nc1_separated")


class NC1Details(NamedTuple):
    """NC1 with what its pseudo-inverse cut-off left out (:func:`nc1_details`).

    Attributes:
        value: NC1 = tr(Sigma_W Sigma_B^+) / K, as :func:`nc1` returns it (``nan`` when all
            class means are equal).
        kept: directions of Sigma_B kept by the cut-off.
        dropped: ``min(d, K - 1) - kept``: directions the class means could span but do not
            (below the cut-off, or exactly degenerate, e.g. two equal class means). NC1 does
            not see the within-class variance along them.
        hidden: a lower bound on what the dropped directions would add to NC1, the
            within-class variance along them divided by the cut-off ``rcond * s_1^2`` (0 when
            nothing is dropped or no within-class variance lies there; ``inf`` for variance
            along an exactly degenerate direction with ``rcond = 0``).
        separation: the smallest distance between two class means over the largest (``nan``
            when all means are equal): 0 when two classes share their mean.
        separated: ``separation**2 > rcond``, the cut-off NC1 applies to Sigma_B: every pair
            of class means is apart at the resolution NC1 works at.
    """

    value: float
    kept: int
    dropped: int
    hidden: float
    separation: float
    separated: bool

    @property
    def bound(self) -> float:
        """``value + hidden``: NC1 with the dropped directions counted at the cut-off."""
        return self.value + self.hidden

    def collapsed(self, tol: float) -> bool:
        """True iff NC1 is below ``tol``, the cut-off hides nothing that could exceed it
        (``value + hidden < tol``) and every pair of class means is apart (``separated``).
        False for ``nan``. Classes whose means have not separated (equal means, or a dropped
        direction carrying within-class variance) are never reported collapsed."""
        return bool(self.separated and self.bound < tol)

    @classmethod
    def _from(cls, v: Sequence[float]) -> NC1Details:
        return cls(v[0], int(v[1]), int(v[2]), v[3], v[4], bool(v[5]))


def class_means(X: Tensor, y: Tensor, num_classes: int | None = None) -> Tensor:
    """Class-mean matrix M = [mu_0, ..., mu_{K-1}] in float64, shape (d, K) (theory §3).

    ``mu_c = (1/n_c) sum_{i: y_i = c} x_i``; classes may have different sizes. K is
    ``num_classes`` or ``max(y) + 1`` (K = 1 allowed here). A class with no sample, an empty
    or non-finite ``X`` raise ``ValueError``.
    """
    X, y, K = _check_xy(X, y, num_classes, min_classes=1)
    A, _ = _mean_operator(y, K)
    return X @ A


def nc1(X: Tensor, y: Tensor, rcond: float = NC1_RCOND, num_classes: int | None = None) -> float:
    """NC1 = tr(Sigma_W Sigma_B^+) / K (theory §3, NC1/DNC1; the definition of [S7], [S8]).

    The pseudo-inverse has a *relative* cut-off (theory §3, practical note): an eigenvalue of
    Sigma_B is kept iff it is larger than ``rcond`` times the largest eigenvalue of Sigma_B (the
    convention of ``numpy.linalg.pinv(Sigma_B, rcond)``). Since Sigma_B = (1/K) Mbar Mbar^T, its
    eigenvalues are s_i^2 / K for the singular values s_i of Mbar: direction i is kept iff
    ``s_i^2 > rcond * s_1^2`` (i.e. ``s_i > sqrt(rcond) * s_1``), for i < min(d, K - 1) (the
    centring makes the K-th direction zero by construction). ``rcond`` must lie in [0, 1).

    Computed without any d x d matrix: with Mbar = U diag(s) V^T,
    ``tr(Sigma_W Sigma_B^+)/K = sum_kept ||u_i^T (X - M[:, y])||^2 / (N s_i^2)``.
    Returns ``nan`` when Sigma_B = 0 (all class means equal). A small value does not say that
    every class has separated: see :func:`nc1_details` for the directions the cut-off dropped.

    Raises:
        ValueError: non-finite or empty ``X``, fewer than 2 classes, bad labels or ``rcond``.
    """
    return nc1_details(X, y, rcond, num_classes).value


def nc1_details(
    X: Tensor, y: Tensor, rcond: float = NC1_RCOND, num_classes: int | None = None
) -> NC1Details:
    """NC1 (as :func:`nc1`) with the number of directions its cut-off dropped (:class:`NC1Details`).

    Use ``nc1_details(X, y).collapsed(tol)`` rather than ``nc1(X, y) < tol`` to decide that a
    layer has collapsed: NC1 ignores the within-class variance along the directions the
    cut-off drops, so classes whose means have not separated can give a small NC1.
    """
    rcond = _check_tolerance("rcond", rcond)
    out = _one_shot_cores(X, y, num_classes, rcond)
    return NC1Details._from(torch.stack([out[k][0] for k in _DETAIL_KEYS]).tolist())


def nc1_trace(X: Tensor, y: Tensor, num_classes: int | None = None) -> float:
    """NC1' = tr(Sigma_W) / tr(Sigma_B) (theory §3, the robust NC1 alternative).

    ``tr(Sigma_W) = ||X - M[:, y]||_F^2 / N`` and ``tr(Sigma_B) = ||Mbar||_F^2 / K``. Returns
    ``nan`` when tr(Sigma_B) = 0 (all class means equal).
    """
    return float(_one_shot_cores(X, y, num_classes, NC1_RCOND)["nc1_trace"][0])


def _check_means(M: Tensor, name: str = "M") -> Tensor:
    M = _check_matrix(name, M, what="d >= 1 features")
    if M.shape[1] < 2:
        raise ValueError(
            f"{name} has shape {tuple(M.shape)}: K = {M.shape[1]} class mean(s), the collapse"
            " metrics compare classes and need K >= 2 columns"
        )
    return M


def nc2_orthogonal(M: Tensor) -> float:
    """NC2 orthogonal-frame error ``|| M^T M/||M^T M||_F - I_K/sqrt(K) ||_F`` (theory §3, NC2).

    Uncentred (bias-free MSE, [S7] ``compute_NC2_Identity``): 0 iff the class means are
    orthogonal with equal norms. ``nan`` for M = 0. Scale-safe: M is normalised before its
    Gram matrix is formed.
    """
    return float(_nc2_orth_core(_unit(_check_means(M))))


def nc2_etf(M: Tensor) -> float:
    """NC2 simplex-ETF error (theory §3, NC2; [S7], [S8]).

    ``|| Mbar^T Mbar/||Mbar^T Mbar||_F - (I_K - 1 1^T/K)/sqrt(K-1) ||_F`` with
    ``Mbar = M - mu_G 1^T`` and mu_G the mean of the columns. 0 iff the centred means form a
    simplex ETF (a centred orthogonal frame is one). ``nan`` when all columns are equal.
    """
    return float(_nc2_etf_core(_unit(_centre(_unit(_check_means(M))))))


def equinorm(M: Tensor) -> float:
    """Equinorm error ``std_c ||mu_c - mu_G|| / mean_c ||mu_c - mu_G||`` (theory §3, NC2).

    Papyan's ``norm_M_CoV`` [S9]. The standard deviation is the *population* one
    (``correction=0``, i.e. ``unbiased=False``: divide by K, not K - 1), so K equal-spread
    norms give the same value whatever K. ``nan`` when all columns are equal.
    """
    return float(_equinorm_core(_unit(_centre(_unit(_check_means(M))))))


def coherence(M: Tensor) -> float:
    """Coherence error ``mean_{c != c'} |cos(mu_c - mu_G, mu_c' - mu_G) + 1/(K-1)|`` (theory §3).

    Papyan's ``cos_M`` [S9]: 0 for a simplex ETF. ``nan`` when a centred mean is 0.
    """
    return float(_coherence_core(_unit(_centre(_unit(_check_means(M))))))


def nc3_self_duality(W: Tensor, M: Tensor) -> float:
    """NC3 self-duality error ``|| W/||W||_F - M^T/||M||_F ||_F`` (theory §3, NC3; [S7]).

    ``W`` is the last layer W_L (K, d) and ``M`` the (d, K) post-activation class means of its
    input H_L; uncentred (bias-free). ``nan`` if W or M is 0.
    """
    W, M = _check_matrix("W", W), _check_means(M)
    if W.shape != M.T.shape:
        raise ValueError(f"W has shape {tuple(W.shape)} but M^T has shape {tuple(M.T.shape)}")
    return float(_nc3_core(_unit(W), _unit(M)))


def dnc3_subspace(W: Tensor, M: Tensor, rcond: float = NC1_RCOND) -> float:
    """DNC3 subspace error ``|| W (I - P_M) ||_F / ||W||_F`` (theory §3, NC3/DNC3; [S6]).

    ``W`` is (d_out, d), ``M`` the (d, K) class means of W's input, P_M the orthogonal projector
    onto span(M) built from the left singular vectors of M whose singular value exceeds
    ``rcond`` (in [0, 1)) times the largest one (relative rank cut-off on the singular values
    of M itself). 0 iff every row of W lies in span(M); 1 for M = 0; ``nan`` for W = 0.
    """
    rcond = _check_tolerance("rcond", rcond)
    W, M = _check_matrix("W", W), _check_means(M)
    if W.shape[1] != M.shape[0]:
        raise ValueError(f"W has {W.shape[1]} columns but M has {M.shape[0]} rows")
    U, s, _ = torch.linalg.svd(_unit(M), full_matrices=False)
    return float(_dnc3_core(_unit(W), U, s, rcond))


def nc4_ncc_mismatch(X: Tensor, y: Tensor, W: Tensor, num_classes: int | None = None) -> float:
    """NC4: fraction of samples with ``argmax_c (W x)_c != argmin_c ||x - mu_c||`` (theory §3).

    Papyan's ``NCC_mismatch`` [S9]; the means are computed from ``X`` and ``y``. Ties go to
    the lowest class index on both sides.
    """
    W = _check_matrix("W", W, what="one per class")
    if num_classes is None and W.shape[0] < 2:
        raise ValueError(
            f"W has shape {tuple(W.shape)}: K = {W.shape[0]} class row(s), the collapse metrics"
            " compare classes and need K >= 2"
        )
    X, y, K = _check_xy(X, y, num_classes if num_classes is not None else W.shape[0])
    if W.shape[1] != X.shape[0] or W.shape[0] != K:
        raise ValueError(f"W has shape {tuple(W.shape)}, expected ({K}, {X.shape[0]})")
    A, _ = _mean_operator(y, K)
    X = _unit(X)
    return float(_nc4_core(X, X @ A, _unit(W) @ X))


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


def gram(M: Tensor) -> Tensor:
    """Normalised Gram matrix ``M^T M / ||M^T M||_F`` (K x K, float64; theory §3, NC2 heat-map).

    All zeros for M = 0. Scale-safe (M is normalised before the product).
    """
    M = _unit(_check_matrix("M", M))
    G = M.T @ M
    n = torch.linalg.matrix_norm(G)
    return G / n if float(n) > 0 else G


# ====================================================================== imbalance-aware metrics
# theory §3.7 (CDNV), §3.8 (the general orthogonal frame) and §3.9 (per-class breakdown). The
# balanced definitions above stay as they are; these sit next to them.
def cdnv_matrix(X: Tensor, y: Tensor, num_classes: int | None = None) -> Tensor:
    """Class-distance normalised variance of every pair of classes, (K, K) float64 (theory §3.7).

    ``CDNV_ij = (Var_i + Var_j) / (2 ||mu_i - mu_j||^2)`` for i != j (Galanti, Gyorgy &
    Hutter, ICLR 2022, arXiv 2112.15121), with ``Var_k = (1/n_k) sum_{i: y_i = k}
    ||x_i - mu_k||^2`` the mean squared distance of class k's samples to their mean.
    Symmetric; the diagonal is 0 by convention (the CDNV is defined for i != j only); an
    entry is ``nan`` where the two means coincide. Scale-invariant and computed scale-safely.

    Raises:
        ValueError: non-finite or empty ``X``, fewer than 2 classes, bad labels, an empty class.
    """
    X, y, K = _check_xy(X, y, num_classes)
    A, _ = _mean_operator(y, K)
    X = _unit(X)
    M = X @ A
    return _cdnv_core(M, _class_variances(X - M[:, y], A))


def cdnv(X: Tensor, y: Tensor, num_classes: int | None = None) -> float:
    """Mean CDNV over the pairs of classes (theory §3.7; Galanti et al., ICLR 2022).

    ``cdnv = (1/(K(K-1))) sum_{i != j} CDNV_ij`` with CDNV_ij as in :func:`cdnv_matrix`. It
    tends to 0 under NC1; unlike NC1 every pair counts alike, whatever the class sizes.
    ``nan`` when two class means coincide. Raises as :func:`cdnv_matrix`.
    """
    return float(_cdnv_summary(cdnv_matrix(X, y, num_classes))["cdnv"])


def cdnv_per_class(X: Tensor, y: Tensor, num_classes: int | None = None) -> Tensor:
    """Per-class CDNV ``(1/(K-1)) sum_{j != k} CDNV_kj``, (K,) float64 (theory §3.7, §3.9).

    The row means of :func:`cdnv_matrix`: how far class k is from having collapsed relative
    to its distance to the other classes. Their mean is :func:`cdnv`.
    """
    return _cdnv_summary(cdnv_matrix(X, y, num_classes))["cdnv_class"]


def nc1_per_class(
    X: Tensor, y: Tensor, rcond: float = NC1_RCOND, num_classes: int | None = None
) -> Tensor:
    """Per-class NC1 ``tr(Sigma_W^(k) Sigma_B^+) / K``, (K,) float64 (theory §3.9).

    ``Sigma_W^(k) = (1/n_k) sum_{i: y_i = k} (x_i - mu_k)(x_i - mu_k)^T`` is class k's own
    covariance and Sigma_B^+ is NC1's pseudo-inverse with the same relative cut-off
    ``rcond`` (theory §3.2). Since ``Sigma_W = sum_k (n_k/N) Sigma_W^(k)``,
    ``nc1 = sum_k (n_k/N) nc1_per_class[k]``: NC1 weights a class by its size, so a
    5-sample class that has not collapsed barely moves it; this breakdown shows it.
    ``nan`` (every entry) when all class means are equal.
    """
    rcond = _check_tolerance("rcond", rcond)
    return _one_shot_cores(X, y, num_classes, rcond, extended=True)["nc1_class"][0]


def nc2_general_orth(M: Tensor) -> float:
    """General-orthogonal-frame error ``sqrt(mean_{c != c'} cos^2(mu_c, mu_c'))`` (theory §3.8).

    Uncentred, like :func:`nc2_orthogonal`, but the norms are free: 0 iff the class means are
    mutually orthogonal, whatever their lengths (the imbalanced optimum of theory §6.1, where
    ``M_l^T M_l = diag(b_{l,k}^2)``; Dang et al.'s "general orthogonal frame" [S14]). Every
    pair of classes counts alike, whatever the norms. A zero column (a class collapsed to 0,
    theory §6.2) is orthogonal to everything; ``nan`` for M = 0. Scale-safe per column.
    """
    return float(_nc2_general_orth_core(_check_means(M)))


def _check_wm(W: Tensor, M: Tensor) -> tuple[Tensor, Tensor]:
    W, M = _check_matrix("W", W), _check_means(M)
    if W.shape != M.T.shape:
        raise ValueError(f"W has shape {tuple(W.shape)} but M^T has shape {tuple(M.T.shape)}")
    return W, M


def nc3_per_class(W: Tensor, M: Tensor) -> Tensor:
    """Per-class self-duality error ``|| w_k/||w_k|| - mu_k/||mu_k|| ||``, (K,) (theory §3.8).

    ``W`` is the last layer W_L (K, d), ``w_k`` its row k, ``M`` the (d, K) post-activation
    class means of its input. 0 iff classifier row k points along class mean k, whatever the
    two lengths; 2 when they point in opposite directions. A zero row or column counts as the
    zero vector (0 when both are 0: a class collapsed to 0, theory §6.2; 1 when only one is).
    """
    W, M = _check_wm(W, M)
    return _nc3_class_core(W, M)


def nc3_general(W: Tensor, M: Tensor) -> float:
    """Imbalance-aware NC3 ``sqrt((1/K) sum_k || w_k/||w_k|| - mu_k/||mu_k|| ||^2)`` (theory §3.8).

    The root mean square of :func:`nc3_per_class`: 0 iff ``W = D M^T`` for a diagonal D with
    positive entries on the classes that have not collapsed. At the optimum of theory §6.1,
    ``W_L = diag(q_k / b_{L,k}^2) M_L^T`` (theory §3.8), so this is 0 there for any class
    sizes, while :func:`nc3_self_duality` (which asks for D proportional to I) is not. For
    balanced classes at the optimum both are 0. ``nan`` if W or M is 0.
    """
    W, M = _check_wm(W, M)
    return float(_nc3_general_core(_nc3_class_core(W, M), W, M))


def norm_ratio_error(M: Tensor, target_norms: Tensor | Sequence[float]) -> float:
    """Class-mean norms against a target profile, ``|| r/||r|| - t/||t|| ||`` (theory §3.8).

    ``r_k = ||mu_k||`` are the norms of the columns of M (d, K) and ``t`` the K target norms,
    e.g. the optimum's ``theory.layer_norms(config)[l - 1]`` (a_k for H_1, b_{l,k} for H_l).
    Scale-invariant: only the ratios between classes matter. With
    :func:`nc2_general_orth` it checks the whole general orthogonal frame of the imbalanced
    optimum: orthogonal means *and* the predicted relative lengths. With equal targets it is
    an uncentred equinorm. ``nan`` for M = 0.

    Raises:
        ValueError: ``target_norms`` is not K finite non-negative numbers with one > 0.
    """
    M = _check_means(M)
    K = M.shape[1]
    allowed = f"{K} finite numbers >= 0, not all 0 (one per column of M)"
    try:
        t = torch.as_tensor(target_norms, dtype=F64).to(M.device)
    except (TypeError, ValueError, RuntimeError):
        raise ParameterError("target_norms", target_norms, allowed) from None
    if (
        t.shape != (K,)
        or not bool(torch.isfinite(t).all())
        or bool((t < 0).any())
        or not bool((t > 0).any())
    ):
        raise ParameterError("target_norms", target_norms, allowed)
    r = torch.linalg.vector_norm(_unit(M), dim=0)
    if not bool((r > 0).any()):
        return math.nan
    t = t / _pow2_scale(t[None])[0, 0]
    return float(torch.linalg.vector_norm(r / r.norm() - t / t.norm()))


# ====================================================================== streaming accumulator
class CollapseAccumulator:
    """Streaming NC1/NC2 metrics over batches (torchmetrics-style: update / compute / reset).

    Keeps, in float64, the per-class counts n_c, the per-class running means mu_c (equivalently
    the per-class sums n_c mu_c) and one d x d within-class scatter matrix
    ``S = sum_c sum_i (x_i - mu_c)(x_i - mu_c)^T``, so Sigma_W = S / N. The scatter is merged
    with the parallel-variance rule of Chan et al. (1979): adding a batch of m_c samples of class
    c with mean nu_c and scatter S_c to (n_c, mu_c) adds
    ``S_c + n_c m_c/(n_c + m_c) (mu_c - nu_c)(mu_c - nu_c)^T``. This equals the raw-moment
    formula ``Sigma_W = (1/N) sum x x^T - sum_c (n_c/N) mu_c mu_c^T`` but does not lose digits
    to cancellation when the features are collapsed (Sigma_W tiny against the means).

    :meth:`compute` gives the same numbers as the one-shot functions on the concatenated data.
    """

    def __init__(self, num_classes: int, dim: int, rcond: float = NC1_RCOND) -> None:
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ParameterError("num_classes", num_classes, "an int >= 2")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ParameterError("dim", dim, "an int >= 1")
        self.num_classes = num_classes
        self.dim = dim
        self.rcond = _check_tolerance("rcond", rcond)
        self.reset()

    def reset(self) -> None:
        """Forget every batch."""
        self._device: torch.device | None = None
        self.counts = torch.zeros(self.num_classes, dtype=F64)
        # Means and scatter are kept in units of c, a power of two near the first batch's
        # largest entry (so features near 1e-200 or 1e150 neither underflow nor overflow).
        self._c = torch.ones((), dtype=F64)
        self._means = torch.zeros(self.dim, self.num_classes, dtype=F64)
        self._scatter = torch.zeros(self.dim, self.dim, dtype=F64)
        self._class_ss = torch.zeros(self.num_classes, dtype=F64)  # tr of each class's scatter
        self._nonfinite: list[int] = []  # 1-based numbers of the updates with NaN/inf features
        self._finite_flags: list[Tensor] = []  # per update, checked in compute() (no sync here)
        self._updates = 0

    @property
    def means(self) -> Tensor:
        """The (d, K) running class means, float64."""
        return self._means * self._c

    @property
    def scatter(self) -> Tensor:
        """The (d, d) within-class scatter S (Sigma_W = S / N), float64."""
        return self._scatter * (self._c * self._c)

    @property
    def num_samples(self) -> int:
        return int(self.counts.sum())

    @torch.no_grad()
    def update(self, X_batch: Tensor, y_batch: Tensor) -> None:
        """Add a (d, B) batch of features with its (B,) labels; classes may be missing.

        Non-finite features are accepted here (no device synchronisation per batch) and make
        :meth:`compute` raise, naming the update.
        """
        X, y, K = _check_xy(X_batch, y_batch, self.num_classes, name="X_batch", finite=False)
        if X.shape[0] != self.dim:
            raise ValueError(f"X_batch has {X.shape[0]} rows, expected dim={self.dim}")
        if self._device is None:
            self._device = X.device
            self.counts = self.counts.to(X.device)
            self._means = self._means.to(X.device)
            self._scatter = self._scatter.to(X.device)
            self._class_ss = self._class_ss.to(X.device)
            self._c = _pow2_scale(X.to(X.device))[0, 0]
        X, y = X.to(self._device) / self._c, y.to(self._device)
        self._updates += 1
        self._finite_flags.append(torch.isfinite(X).all())
        onehot = torch.nn.functional.one_hot(y, K).to(F64)
        m = onehot.sum(0)
        nu = (X @ onehot) / m.clamp_min(1.0)
        R = X - nu[:, y]
        n = self.counts
        total = n + m
        weight = torch.where(total > 0, n * m / total.clamp_min(1.0), 0.0)
        delta = self._means - nu
        self._scatter += R @ R.T + (delta * weight) @ delta.T
        self._class_ss += R.pow(2).sum(0) @ onehot + weight * delta.pow(2).sum(0)
        frac = torch.where(total > 0, m / total.clamp_min(1.0), 0.0)
        self._means = self._means - delta * frac
        self.counts = total

    @torch.no_grad()
    def compute(self) -> dict:
        """Metrics of everything seen so far.

        Keys: nc1, nc1_trace, nc2_orth, nc2_etf, equinorm, coherence, rank, mean_norm (Python
        numbers, as the one-shot functions), ``nc1_details`` (:class:`NC1Details`), ``means``
        (d, K) and ``counts`` (K,) tensors and ``num_samples``; and the imbalance-aware
        ``nc2_general_orth``, ``cdnv``, ``cdnv_max`` (numbers) and ``cdnv_class`` (a (K,)
        tensor) of theory §3.7-§3.9 (the per-class traces of the scatter are kept, merged
        with the same rule, for the class variances). Raises ``ValueError`` before
        any update, while a class has no sample, or after an update with non-finite features.
        """
        if self._device is None or self.num_samples == 0:
            raise ValueError("compute() called before any update(): no samples seen")
        if bool((self.counts == 0).any()):
            missing = torch.nonzero(self.counts == 0).flatten().tolist()
            raise ValueError(f"class(es) {missing} have no samples yet: their means are undefined")
        if self._finite_flags:
            flags = torch.stack(self._finite_flags).tolist()
            first = self._updates - len(flags) + 1
            self._nonfinite += [first + i for i, ok in enumerate(flags) if not ok]
            self._finite_flags = []
        if self._nonfinite:
            raise ValueError(
                f"X_batch of update(s) {self._nonfinite} contained non-finite values (NaN or"
                " inf): the collapse metrics are undefined (did the training diverge?); call"
                " reset() and feed finite features"
            )
        if not bool(torch.isfinite(self._scatter).all() & torch.isfinite(self._means).all()):
            raise ValueError(
                "the accumulated scatter overflowed float64 (later batches about 1e150 times"
                " larger than the first): rescale the features before update()"
            )
        N = self.counts.sum()
        K = self.num_classes
        # scale-safe: means by a power of two c near their size, the scatter by c^2
        big = torch.maximum(self._means.abs().max(), self._scatter.abs().max().sqrt() / N.sqrt())
        c = _pow2_scale(big.view(1, 1))[0, 0]
        M = self._means / c
        Sw = self._scatter / N / (c * c)
        var = self._class_ss / self.counts / (c * c)
        c = c * self._c
        Mbar = _centre(M)
        U, s, _ = torch.linalg.svd(Mbar, full_matrices=False)
        sM = torch.linalg.svdvals(M)
        quad = ((Sw @ U) * U).sum(0)
        Mbu = _unit(Mbar)
        rmax = torch.tensor(min(self.dim, K - 1), device=M.device)
        nc1 = _nc1_core(s, quad, self.rcond, rmax)
        cd = _cdnv_summary(_cdnv_core(M, var))
        vals = torch.stack(
            [
                nc1["nc1"],
                _trace_ratio_core(torch.trace(Sw), s.pow(2).sum() / K),
                _nc2_orth_core(M),
                _nc2_etf_core(Mbu),
                _equinorm_core(Mbu),
                _coherence_core(Mbu),
                _rank_core(sM, RANK_RTOL).to(F64),
                torch.linalg.vector_norm(M, dim=0).mean() * c,
                *(nc1[k] for k in _DETAIL_KEYS[1:4]),
                *_separation_core(Mbu, self.rcond).values(),
                _nc2_general_orth_core(M),
                *(cd[k] for k in ("cdnv", "cdnv_max")),
            ]
        ).tolist()
        n = len(FEATURE_METRICS)
        out: dict = dict(zip(FEATURE_METRICS, vals[:n], strict=True))
        out["rank"] = int(out["rank"])
        out["nc1_details"] = NC1Details._from([vals[0], *vals[n : n + 5]])
        out["nc2_general_orth"], out["cdnv"], out["cdnv_max"] = vals[n + 5 :]
        out["cdnv_class"] = cd["cdnv_class"]
        out["means"] = self.means.clone()
        out["counts"] = self.counts.clone()
        out["num_samples"] = self.num_samples
        return out


# ====================================================================== model-level helpers
def _features(model: DUFM, features: Features | None) -> Features:
    if features is None:
        with torch.no_grad():
            features = model.forward()
    return features


def _layer_sets(model: DUFM, features: Features) -> list[tuple[int, str, Tensor]]:
    """(layer, kind, features) for l = 1..L, kinds pre and post (not converted)."""
    out = []
    for l in range(1, model.config.L + 1):
        out += [(l, "pre", features.pre[l - 1]), (l, "post", features.post[l - 1])]
    return out


def _stack_padded(mats: list[Tensor], cols: int = 0) -> Tensor:
    """Stack 2-D tensors into one float64 batch, zero-padded to the largest shape (and >= cols).

    Zero rows/columns change none of the metrics (norms, Gram matrices, singular values and the
    projections all ignore them), so layers of different widths share one batch.
    """
    shapes = {tuple(m.shape) for m in mats}
    cols = max(cols, *(m.shape[1] for m in mats))
    if len(shapes) == 1 and mats[0].shape[1] == cols:
        return torch.stack([m.detach() for m in mats]).to(F64)
    rows = max(m.shape[0] for m in mats)
    out = torch.zeros(len(mats), rows, cols, dtype=F64, device=mats[0].device)
    for i, m in enumerate(mats):
        out[i, : m.shape[0], : m.shape[1]] = m.detach()
    return out


def _set_name(l: int, kind: str) -> str:
    return "H1" if l == 1 else ("H~" if kind == "pre" else "H") + f"_{l}"


#: Largest entries in [2^-200, 2^200] (or exactly 0): products and norms of such matrices can
#: neither overflow nor underflow, so the model-level helpers skip the scaling (same values).
_SAFE_EXP = 200.0


def _screen(named: list[tuple[str, Tensor]], batch: Tensor, batch_names: list[str]) -> bool:
    """One device sync: raise ValueError naming every non-finite tensor, and return whether
    any entry magnitude lies outside the safe range (then the cores scale their inputs)."""
    peaks = torch.cat(
        [batch.abs().amax(dim=(-2, -1)), torch.stack([t.detach().abs().amax() for _, t in named])]
    ).tolist()
    names = [*batch_names, *(n for n, _ in named)]
    bad = [n for n, v in zip(names, peaks, strict=True) if not math.isfinite(v)]
    if bad:
        raise ValueError(
            f"the model's {', '.join(bad)} contain non-finite values (NaN or inf): the collapse"
            " metrics are undefined for them (did the training diverge?)"
        )
    lo, hi = 2.0**-_SAFE_EXP, 2.0**_SAFE_EXP
    return any(v != 0.0 and not lo <= v <= hi for v in peaks)


def _layer_rows(
    model: DUFM, features: Features | None = None, details: bool = False, extended: bool = False
) -> tuple[list[tuple[int, str, str, float]], dict[tuple[int, str], NC1Details]]:
    """:func:`layer_metric_rows` (with ``extended``, its extended rows after the standard
    ones) and, with ``details``, each feature set's NC1Details."""
    features = _features(model, features)
    cfg = model.config
    K, L = cfg.K, cfg.L
    y = model.labels
    E = torch.nn.functional.one_hot(y, K).to(F64).T  # every class has >= 1 sample (config)
    A = (E / E.sum(1, keepdim=True)).T

    # Distinct feature tensors (H~_1 is H_1; with a linear activation pre is post throughout).
    sets = _layer_sets(model, features)
    unique: list[Tensor] = []
    names: list[str] = []
    slot: list[int] = []
    for l, kind, X in sets:
        j = next((i for i, u in enumerate(unique) if u is X), None)
        if j is None:
            unique.append(X)
            names.append(_set_name(l, kind))
            j = len(unique) - 1
        slot.append(j)
    batch = _stack_padded(unique)
    weights = [(f"W_{l}", model.W[l - 1]) for l in range(1, L + 1)]
    scaled = _screen([*weights, ("Z", features.output)], batch, names)
    unit = _unit if scaled else _same
    dims = torch.tensor([u.shape[0] for u in unique], device=batch.device)
    stats = _feature_cores(
        batch, A, E, NC1_RCOND, RANK_RTOL, dims, scaled=scaled, details=details, extended=extended
    )
    table = torch.stack([stats[name] for name in FEATURE_METRICS], dim=1)  # (B, 8)
    extra = [torch.stack([stats[k] for k in _DETAIL_KEYS], dim=1).flatten()] if details else []

    post = [slot[2 * (l - 1) + 1] for l in range(1, L + 1)]  # batch index of H_l
    Ws = [model.W[l - 1] for l in range(1, L)]
    weight_vals = []
    if Ws:
        Wb = _stack_padded(Ws, cols=stats["UM"].shape[-2])
        idx = torch.tensor(post[:-1], device=y.device)
        weight_vals.append(_dnc3_core(unit(Wb), stats["UM"][idx], stats["sM"][idx], NC1_RCOND))
    W_L = unit(_f64(model.W[L - 1]))
    d_L = W_L.shape[1]
    M_L = stats["M"][post[-1], :d_L]  # scaled by stats["scale"][post[-1]], as X_L below
    weight_vals.append(_nc3_core(W_L, unit(M_L))[None])
    X_L = _f64(features.post[L - 1])
    if scaled:
        X_L = X_L / stats["scale"][post[-1]]
    Z = W_L @ X_L  # argmax only: any positive scale
    q = torch.diagonal(_f64(features.output) @ A)  # the model's own Z, as output_scale_frame
    out_vals = torch.cat([_nc4_core(X_L, M_L, Z)[None], q])
    if extended:
        norms = torch.linalg.vector_norm(stats["M"], dim=-2) * stats["scale"][..., 0]
        ext = torch.cat(
            [torch.stack([stats[k] for k in EXTENDED_METRICS], dim=1)]
            + [stats["nc1_class"], stats["cdnv_class"], norms],
            dim=1,
        )  # (B, 3 + 3K), in the order of _extended_rows
        per = _nc3_class_core(W_L, M_L)
        extra += [ext.flatten(), _nc3_general_core(per, W_L, M_L)[None], per]
    values = torch.cat([table.flatten(), *weight_vals, out_vals, *extra]).tolist()

    n = len(FEATURE_METRICS)
    nd = len(_DETAIL_KEYS)
    rows: list[tuple[int, str, str, float]] = []
    nc1_info: dict[tuple[int, str], NC1Details] = {}
    tail_start = table.numel() + L + 1 + K
    for i, (l, kind, _) in enumerate(sets):
        base = slot[i] * n
        rows += [(l, kind, m, values[base + j]) for j, m in enumerate(FEATURE_METRICS)]
        if details:
            nc1_info[(l, kind)] = NC1Details._from(values[tail_start + nd * slot[i] :][:nd])
        if kind == "post":
            rows.append((l, "weight", "nc3", values[table.numel() + l - 1]))
    tail = values[table.numel() + L :]
    rows.append((L + 1, "output", "nc4", tail[0]))
    rows += [(L + 1, "output", f"q_{k}", tail[1 + k]) for k in range(K)]
    if extended:
        start = tail_start + (nd * len(unique) if details else 0)
        rows += _extended_rows(sets, slot, values[start:], K, L)
    return rows, nc1_info


def _extended_rows(
    sets: list[tuple[int, str, Tensor]], slot: list[int], ext: list[float], K: int, L: int
) -> list[tuple[int, str, str, float]]:
    """The rows of ``layer_metric_rows(extended=True)`` after the standard ones, from the
    flattened (B, 3 + 3K) per-set table followed by nc3_general and the K nc3_class_k."""
    width = len(EXTENDED_METRICS) + len(CLASS_METRICS) * K
    names = [*EXTENDED_METRICS, *(class_metric(c, k) for c in CLASS_METRICS for k in range(K))]
    rows: list[tuple[int, str, str, float]] = []
    for i, (l, kind, _) in enumerate(sets):
        vals = ext[slot[i] * width :][:width]
        rows += [(l, kind, name, v) for name, v in zip(names, vals, strict=True)]
    weight = ext[(max(slot) + 1) * width :]
    rows.append((L, "weight", "nc3_general", weight[0]))
    rows += [(L, "weight", class_metric("nc3_class", k), weight[1 + k]) for k in range(K)]
    return rows


@torch.no_grad()
def layer_metric_rows(
    model: DUFM, features: Features | None = None, *, extended: bool = False
) -> list[tuple[int, str, str, float]]:
    """Per-layer DNC metrics as tidy ``(layer, kind, metric, value)`` rows (theory §3).

    Schema (a contract with the trainer's history and the charts):

    * layers l = 1..L, kinds ``"pre"`` (H~_l) and ``"post"`` (H_l): the metrics of
      :data:`FEATURE_METRICS` (nc1, nc1_trace, nc2_orth, nc2_etf, equinorm, coherence, rank,
      mean_norm = mean_c ||mu_c||). Layer 1 has pre == post == H1; both are emitted.
    * layers l = 1..L, kind ``"weight"``: metric ``"nc3"`` = :func:`nc3_self_duality` (W_L, M_L)
      for l = L and :func:`dnc3_subspace` (W_l, M_l) for l < L, with M_l the post-activation
      class means of W_l's input.
    * layer L+1, kind ``"output"``: ``"nc4"`` (:func:`nc4_ncc_mismatch` with X = H_L, W = W_L)
      and ``"q_0"``..``"q_{K-1}"``, q_k = mean over the samples of class k of Z[k, i].

    Rows come in this order: for each layer its pre metrics, post metrics and weight metric,
    then the output rows. Values are the same as the one-shot functions'. For speed, all
    layers are processed as one zero-padded float64 batch (each class-mean matrix is computed
    once) and the values leave the device in one transfer. ``features`` (from
    ``model.forward()``) is reused when given. Non-finite features or weights raise
    ``ValueError`` naming the tensor (H1, H~_l, H_l, W_l or Z).

    ``extended=True`` appends, after exactly the rows above, the imbalance-aware and
    per-class rows (theory §3.7-§3.9), so that a run at the imbalanced optimum reads as
    collapsed and no minority-class signal is averaged away:

    * for each layer l = 1..L and kind ``"pre"`` / ``"post"``: the metrics of
      :data:`EXTENDED_METRICS` (nc2_general_orth, cdnv, cdnv_max) and, per class k, those of
      :data:`CLASS_METRICS` named by :func:`class_metric` (``nc1_class_k``,
      ``cdnv_class_k``, ``norm_class_k`` = ||mu_k||), set by set in the order of the rows
      above;
    * layer L, kind ``"weight"``: ``"nc3_general"`` (:func:`nc3_general` of W_L, M_L) and
      ``nc3_class_k`` (:func:`nc3_per_class`).
    """
    return _layer_rows(model, features, extended=extended)[0]


@torch.no_grad()
def nc1_layer_details(
    model: DUFM, features: Features | None = None
) -> dict[tuple[int, str], NC1Details]:
    """:class:`NC1Details` of every feature set, keyed ``(layer, kind)`` with kinds "pre" and
    "post" for l = 1..L (computed with :func:`layer_metric_rows`' batch).

    ``all(d.collapsed(tol) for d in nc1_layer_details(model).values())`` is the honest
    "every layer has collapsed" test: it fails when a layer's class means have not separated
    along a direction the NC1 cut-off dropped.
    """
    return _layer_rows(model, features, details=True)[1]


def _max_or_nan(values: Sequence[float]) -> float:
    return math.nan if any(math.isnan(v) for v in values) else max(values)


def collapse_report(model: DUFM, kind: str = "post", per_class: bool = False) -> pd.DataFrame:
    """Per-layer DNC summary as a DataFrame (theory §3).

    One row per layer (``kind="pre"`` or ``"post"``) or per layer x kind (``kind="both"``),
    with columns ``layer`` (1..L), ``kind``, nc1, nc1_trace, nc2_orth, nc2_etf, equinorm,
    coherence, nc3 (the weight metric of that layer: self-duality for L, subspace error below),
    rank, mean_norm, ``nc1_dropped`` (directions of Sigma_B that NC1's pseudo-inverse cut-off
    dropped, out of min(d, K - 1); NC1 does not see the within-class variance along them),
    ``nc1_hidden`` (a lower bound on what they would add to NC1, see :class:`NC1Details`) and
    ``collapsed`` (``nc1 + nc1_hidden < 1e-2``: never True for a layer whose class means
    have not separated). Built from :func:`layer_metric_rows`.

    Then the imbalance-aware columns (theory §3.7-§3.9), which read 0 at the optimum for any
    class sizes: ``nc2_general_orth``, ``nc3_general`` (:func:`nc3_general` for layer L; for
    l < L the subspace error ``nc3``, which already holds for unequal class sizes), ``cdnv``,
    ``cdnv_max`` (the worst pair of classes) and ``nc1_class_max`` (the worst class's
    :func:`nc1_per_class`), so that one unconverged minority class shows in the summary.
    ``per_class=True`` adds, per class k, ``nc1_class_k``, ``cdnv_class_k``,
    ``norm_class_k`` (||mu_k||) and ``nc3_class_k`` (:func:`nc3_per_class`, layer L only;
    ``nan`` below).
    """
    if kind not in ("pre", "post", "both"):
        raise ParameterError("kind", kind, "'pre', 'post' or 'both'")
    if not isinstance(per_class, bool):
        raise ParameterError("per_class", per_class, "True or False")
    with torch.no_grad():
        rows, info = _layer_rows(model, details=True, extended=True)
    K, L = model.config.K, model.config.L
    kinds = ("pre", "post") if kind == "both" else (kind,)
    weight = {(l, m): v for l, k, m, v in rows if k == "weight"}
    records: dict[tuple[int, str], dict] = {}
    for l, k, m, v in rows:
        if k in kinds:
            records.setdefault((l, k), {"layer": l, "kind": k})[m] = v
    ordered = sorted(records, key=lambda lk: (lk[0], kinds.index(lk[1])))
    nc1_cls = [class_metric("nc1_class", k) for k in range(K)]
    nc3_cls = [class_metric("nc3_class", k) for k in range(K)]
    data = []
    for lk in ordered:
        l = lk[0]
        rec = records[lk]
        rec["nc3"] = weight[(l, "nc3")]
        rec["rank"] = int(rec["rank"])
        d = info[lk]
        rec["nc1_dropped"] = d.dropped
        rec["nc1_hidden"] = d.hidden
        rec["collapsed"] = d.collapsed(COLLAPSE_TOL)
        rec["nc3_general"] = weight[(l, "nc3_general")] if l == L else rec["nc3"]
        rec["nc1_class_max"] = _max_or_nan([rec[c] for c in nc1_cls])
        for c in nc3_cls:
            rec[c] = weight[(l, c)] if l == L else math.nan
        data.append(rec)
    columns = [
        "layer",
        "kind",
        *FEATURE_METRICS[:6],
        "nc3",
        "rank",
        "mean_norm",
        "nc1_dropped",
        "nc1_hidden",
        "collapsed",
        "nc2_general_orth",
        "nc3_general",
        "cdnv",
        "cdnv_max",
        "nc1_class_max",
    ]
    if per_class:
        columns += [class_metric(c, k) for c in CLASS_METRICS for k in range(K)] + nc3_cls
    return pd.DataFrame(data, columns=columns)


def _all_sets(model: DUFM, features: Features) -> list[tuple[int, str, Tensor]]:
    """Every feature set as float64, after one check that all are finite (ValueError naming
    the non-finite ones, as :func:`layer_metric_rows`)."""
    sets = [*_layer_sets(model, features), (model.config.L + 1, "output", features.output)]
    named = [("Z" if k == "output" else _set_name(l, k), X) for l, k, X in sets]
    ok = torch.stack([torch.isfinite(X).all() for _, X in named]).tolist()
    bad = list(dict.fromkeys(n for (n, _), good in zip(named, ok, strict=True) if not good))
    if bad:
        raise ValueError(
            f"the model's {', '.join(bad)} contain non-finite values (NaN or inf): the collapse"
            " metrics are undefined for them (did the training diverge?)"
        )
    return [(l, kind, _f64(X)) for l, kind, X in sets]


def gram_frame(model: DUFM, features: Features | None = None) -> pd.DataFrame:
    """Normalised Gram matrices of the class means, tidy (theory §3 NC2 heat-map, §7.4).

    Columns layer, kind, row, col, value: :func:`gram` of M~_l ("pre") and M_l ("post") for
    l = 1..L and of the output class means (layer L+1, kind "output").
    """
    features = _features(model, features)
    K = model.config.K
    A, _ = _mean_operator(model.labels, K)
    rows, cols = torch.meshgrid(torch.arange(K), torch.arange(K), indexing="ij")
    frames = []
    for l, kind, X in _all_sets(model, features):
        G = gram(X @ A).cpu()
        frames.append(
            pd.DataFrame(
                {
                    "layer": l,
                    "kind": kind,
                    "row": rows.flatten().numpy(),
                    "col": cols.flatten().numpy(),
                    "value": G.flatten().numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def _fix_sign(u: Tensor) -> Tensor:
    """Deterministic sign: the entry of largest magnitude is made positive."""
    return u if float(u[int(u.abs().argmax())]) >= 0 else -u


def _principal_directions(X: Tensor, M: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Two orthonormal directions for :func:`projection_frame` (see its docstring)."""
    d = X.shape[0]
    zero = torch.zeros(d, dtype=F64, device=X.device)
    centred = X - M.mean(dim=1, keepdim=True)
    sources = (_centre(M), X - M[:, y], centred)
    tol = 1e-6 * max(float(torch.linalg.matrix_norm(S)) for S in sources)
    found: list[Tensor] = []
    for S in sources:
        if len(found) == 2 or tol == 0:
            break
        if found:
            P = torch.stack(found, dim=1)
            S = S - P @ (P.T @ S)
        U, s, _ = torch.linalg.svd(S, full_matrices=False)
        for i in range(min(2 - len(found), s.numel())):
            if float(s[i]) > tol:
                found.append(_fix_sign(U[:, i]))
    found += [zero] * (2 - len(found))
    return found[0], found[1]


def projection_frame(
    model: DUFM, max_per_class: int = 50, features: Features | None = None
) -> pd.DataFrame:
    """2-D projections of the samples of every layer, tidy (columns layer, kind, sample,
    label, x, y).

    Each layer's samples (H~_l "pre", H_l "post", l = 1..L, and the output Z as layer L+1 kind
    "output") are centred at mu_G and projected on two orthonormal directions: the top-2 left
    singular vectors of the centred class means Mbar. When Mbar has rank < 2 (always for K = 2)
    the missing direction is the top principal direction of the within-class residuals
    X - M[:, y] orthogonal to the first one; if those vanish too (perfect collapse), that of the
    centred samples; if nothing is left, the coordinate is 0. Signs are fixed so that each
    direction's largest-magnitude entry is positive, which makes the frame deterministic.
    The first ``max_per_class`` samples of each class (in column order) are kept.
    """
    if isinstance(max_per_class, bool) or not isinstance(max_per_class, int) or max_per_class < 1:
        raise ParameterError("max_per_class", max_per_class, "an int >= 1")
    features = _features(model, features)
    K = model.config.K
    y = model.labels
    A, _ = _mean_operator(y, K)
    rank_in_class = torch.zeros_like(y)
    for k in range(K):
        idx = torch.nonzero(y == k).flatten()
        rank_in_class[idx] = torch.arange(idx.numel(), device=y.device)
    keep = torch.nonzero(rank_in_class < max_per_class).flatten()
    labels = y[keep].cpu().numpy()
    frames = []
    for l, kind, X in _all_sets(model, features):
        M = X @ A
        u1, u2 = _principal_directions(X, M, y)
        C = X[:, keep] - M.mean(dim=1, keepdim=True)
        frames.append(
            pd.DataFrame(
                {
                    "layer": l,
                    "kind": kind,
                    "sample": keep.cpu().numpy(),
                    "label": labels,
                    "x": (u1 @ C).cpu().numpy(),
                    "y": (u2 @ C).cpu().numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def singular_value_frame(model: DUFM, features: Features | None = None) -> pd.DataFrame:
    """Singular values of the (uncentred) class-mean matrices, tidy (theory §3, rank; [S5]).

    Columns layer, kind, index (1-based: index 1 is sigma_max), value (sigma_i / sigma_max, 0
    for a zero matrix) and raw (sigma_i), for M~_l ("pre"), M_l ("post"), l = 1..L, and the
    output class means (layer L+1, kind "output").
    """
    features = _features(model, features)
    A, _ = _mean_operator(model.labels, model.config.K)
    frames = []
    for l, kind, X in _all_sets(model, features):
        s = torch.linalg.svdvals(X @ A).cpu()
        rel = s / s[0] if float(s[0]) > 0 else s
        frames.append(
            pd.DataFrame(
                {
                    "layer": l,
                    "kind": kind,
                    "index": range(1, s.numel() + 1),
                    "value": rel.numpy(),
                    "raw": s.numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def output_scale_frame(model: DUFM, features: Features | None = None) -> pd.DataFrame:
    """Per-class output scale q_k = mean_{i: y_i = k} Z[k, i] (theory §2.2, §6), tidy.

    Columns label (k), n (n_k) and q (q_k).
    """
    features = _features(model, features)
    A, counts = _mean_operator(model.labels, model.config.K)
    Z = _all_sets(model, features)[-1][2]  # checks every feature set is finite
    q = torch.diagonal(Z @ A).cpu()
    return pd.DataFrame(
        {
            "label": range(model.config.K),
            "n": counts.cpu().numpy().astype(int),
            "q": q.numpy(),
        }
    )


__all__ = [
    "CLASS_METRICS",
    "COLLAPSE_TOL",
    "EXTENDED_METRICS",
    "FEATURE_METRICS",
    "NC1Details",
    "CollapseAccumulator",
    "cdnv",
    "cdnv_matrix",
    "cdnv_per_class",
    "class_means",
    "class_metric",
    "coherence",
    "collapse_report",
    "dnc3_subspace",
    "equinorm",
    "gram",
    "gram_frame",
    "layer_metric_rows",
    "nc1",
    "nc1_details",
    "nc1_layer_details",
    "nc1_per_class",
    "nc1_trace",
    "nc2_etf",
    "nc2_general_orth",
    "nc2_orthogonal",
    "nc3_general",
    "nc3_per_class",
    "nc3_self_duality",
    "nc4_ncc_mismatch",
    "norm_ratio_error",
    "output_scale_frame",
    "projection_frame",
    "rank",
    "singular_value_frame",
    "singular_values",
]
