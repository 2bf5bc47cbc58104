"""Streaming collapse metrics over batches: :class:`CollapseAccumulator` (theory §3.1-§3.3,
§3.6-§3.8).

Per-class counts, running means and one within-class scatter matrix in float64, merged with
the parallel-variance rule of Chan et al. (1979), so that :meth:`CollapseAccumulator.compute`
gives the numbers of the one-shot functions on the concatenated data, through the same cores.
"""

from __future__ import annotations

import torch
from torch import Tensor

from dnc_interactive.metrics._checks import _check_tolerance, _check_xy
from dnc_interactive.metrics._scaling import _pow2_scale, _unit
from dnc_interactive.metrics.class_distance import _cdnv_core, _cdnv_summary
from dnc_interactive.metrics.geometry import _centred_cores, _nc2_general_orth_core, _nc2_orth_core
from dnc_interactive.metrics.means import _centre
from dnc_interactive.metrics.names import F64, FEATURE_METRICS, NC1_RCOND, RANK_RTOL
from dnc_interactive.metrics.spectrum import _rank_core
from dnc_interactive.metrics.variability import (
    _DETAIL_KEYS,
    NC1Details,
    _nc1_core,
    _separation_core,
    _trace_ratio_core,
)
from dnc_interactive.validation import ParameterError


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
                *_centred_cores(Mbu).values(),
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
