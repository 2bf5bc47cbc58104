"""Input checks of the collapse metrics: one place that turns what a caller passed into
finite float64 matrices, labels 0..K-1 and cut-offs in [0, 1), or raises.

Every public metric runs its arguments through these before any arithmetic: a feature
matrix ``X`` (d, N) with its (N,) labels ``y`` (:func:`_check_xy`), a class-mean matrix ``M``
(d, K) with K >= 2 (:func:`_check_means`), a classifier ``W`` against ``M``
(:func:`_check_wm`), a relative cut-off (:func:`_check_tolerance`) and ``num_classes``. Errors
name the argument and say what was expected (``ValueError``, ``TypeError`` or
:class:`~dnc_interactive.validation.ParameterError`).
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from dnc_interactive.metrics.names import F64
from dnc_interactive.validation import ParameterError


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


def _check_means(M: Tensor, name: str = "M") -> Tensor:
    M = _check_matrix(name, M, what="d >= 1 features")
    if M.shape[1] < 2:
        raise ValueError(
            f"{name} has shape {tuple(M.shape)}: K = {M.shape[1]} class mean(s), the collapse"
            " metrics compare classes and need K >= 2 columns"
        )
    return M


def _check_wm(W: Tensor, M: Tensor) -> tuple[Tensor, Tensor]:
    W, M = _check_matrix("W", W), _check_means(M)
    if W.shape != M.T.shape:
        raise ValueError(f"W has shape {tuple(W.shape)} but M^T has shape {tuple(M.T.shape)}")
    return W, M
