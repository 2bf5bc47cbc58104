"""Snapshot frames of a DUFM for the charts: Gram matrices, 2-D projections, singular values
and output scales (theory §3.3, §3.6, §7.4).

Each builder reads every feature set of the model (after one finiteness check,
:func:`_all_sets`) and returns a tidy ``pandas.DataFrame``.
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import Tensor

from dnc_interactive.metrics._checks import _f64
from dnc_interactive.metrics.geometry import gram
from dnc_interactive.metrics.means import _centre, _mean_operator
from dnc_interactive.metrics.names import F64
from dnc_interactive.metrics.rows import _features, _layer_sets, _set_name
from dnc_interactive.model import DUFM, Features
from dnc_interactive.validation import ParameterError


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
