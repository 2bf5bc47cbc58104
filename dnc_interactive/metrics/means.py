"""Class means, centring and the class-averaging operators (theory §3.1).

``mu_c = (1/n_c) sum_{i: y_i = c} x_i`` (classes may have different sizes) is ``X @ A`` for
the (N, K) averaging operator ``A`` of :func:`_mean_operator`; ``M @ E = M[:, y]`` for the
one-hot matrix ``E`` of :func:`_onehot_rows`; the global mean mu_G is the mean of the class
means and ``Mbar = M - mu_G 1^T`` (:func:`_centre`). The scatter matrices Sigma_W and
Sigma_B of theory §3.1 are never formed: their traces and projections come from the residuals
``X - M[:, y]`` and the SVD of ``Mbar`` in the metric cores.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dnc_interactive.metrics._checks import _check_xy
from dnc_interactive.metrics.names import F64


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


def _centre(M: Tensor) -> Tensor:
    return M - M.mean(dim=-1, keepdim=True)


def class_means(X: Tensor, y: Tensor, num_classes: int | None = None) -> Tensor:
    """Class-mean matrix M = [mu_0, ..., mu_{K-1}] in float64, shape (d, K) (theory §3).

    ``mu_c = (1/n_c) sum_{i: y_i = c} x_i``; classes may have different sizes. K is
    ``num_classes`` or ``max(y) + 1`` (K = 1 allowed here). A class with no sample, an empty
    or non-finite ``X`` raise ``ValueError``.
    """
    X, y, K = _check_xy(X, y, num_classes, min_classes=1)
    A, _ = _mean_operator(y, K)
    return X @ A
