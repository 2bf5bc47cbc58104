"""One pass of the monitor over the data: forward hooks feeding streaming accumulators
(theory §3).

:class:`_Pass` holds, per monitored module, the roles it plays (its output is a layer, its
input feeds a linear layer or the classifier, it is the head's first or last module, NC4) and
one :class:`~dnc_interactive.metrics.CollapseAccumulator` per feature set; its hook checks
each batch and updates them. :func:`_run_pass` attaches the hooks for one pass in eval mode
under ``torch.no_grad()``; :func:`_compute` and :func:`_nc3` turn the sums into the metrics
(NC3/DNC3, theory §3.4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from dnc_interactive import metrics
from dnc_interactive.metrics.nc4 import _nc4_core
from dnc_interactive.monitor._inputs import F64, _missing_classes, _model_device_dtype, _split_batch
from dnc_interactive.monitor._lookup import _has_bias, _linear_weight, _reduce


@dataclass
class _Pass:
    """What one pass over the data collects (per module name, a set of roles) and its sums."""

    roles: dict[str, set[str]]
    K: int
    spatial: str
    max_dim: int
    ncc_means: Tensor | None = None
    accs: dict[tuple[str, str], metrics.CollapseAccumulator] = field(default_factory=dict)
    how: dict[tuple[str, str], tuple[tuple[int, ...], str]] = field(default_factory=dict)
    alias: dict[tuple[str, str], tuple[str, str] | None] = field(default_factory=dict)
    y: Tensor | None = None
    batches: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    seen: list[tuple[Tensor, int, tuple[str, str]]] = field(default_factory=list)
    correct: Tensor | float = 0.0
    fit: Tensor | float = 0.0
    h_sq: Tensor | float = 0.0
    mismatch: Tensor | float = 0.0
    counts: Tensor | None = None

    def update(self, key: tuple[str, str], feats: Tensor, y: Tensor) -> None:
        acc = self.accs.get(key)
        if acc is None:
            acc = self.accs[key] = metrics.CollapseAccumulator(self.K, int(feats.shape[1]))
        acc.update(feats.T, y)

    def hook(self, name: str, module: nn.Module, args: tuple, output: Any) -> None:
        n = self.calls[name] = self.calls.get(name, 0) + 1
        if n > 1:
            raise ValueError(
                f"layer {name!r} ran {n} times in one forward pass: the monitor needs modules"
                " that run once per batch (monitor a module that is not shared)"
            )
        roles = self.roles[name]
        y = cast(Tensor, self.y)  # new_batch sets it before every forward pass
        B = int(y.shape[0])
        inp = args[0] if args and isinstance(args[0], Tensor) else None
        needs_input = roles & {"lin_in", "clf_in", "h1", "nc4"}
        if needs_input and inp is None:
            raise ValueError(f"layer {name!r}: its first input is not a tensor")
        inp = cast(Tensor, inp)  # a tensor for every role below that reads it (checked above)
        if "feat" in roles:
            if not isinstance(output, Tensor):
                raise ValueError(
                    f"layer {name!r} returned a {type(output).__name__}, not a tensor: monitor a"
                    " module whose output is one tensor"
                )
            if output.ndim == 0 or output.shape[0] != B:
                raise ValueError(
                    f"layer {name!r} returned shape {tuple(output.shape)} for a batch of {B}"
                    " samples: the monitor needs batch-first outputs"
                )
            feats, how = _reduce(output, self.spatial, self.max_dim, name)
            self.how.setdefault(("out", name), (tuple(output.shape[1:]), how))
            self.update(("out", name), feats, y)
            self.seen.append((output, output._version, ("out", name)))
        for role in ("lin_in", "clf_in"):
            if role not in roles:
                continue
            if inp.ndim != 2 or inp.shape[0] != B:
                if role == "clf_in":
                    raise ValueError(
                        f"classifier {name!r} got input of shape {tuple(inp.shape)}: expected"
                        f" (batch, features) with batch = {B}"
                    )
                continue
            key = ("in", name)
            src = next((k for t, v, k in self.seen if t is inp and t._version == v), None)
            if self.batches == 0:
                self.alias[key] = src
            elif self.alias.get(key) != src:
                raise RuntimeError(
                    f"the input of layer {name!r} was the output of {self.alias.get(key)} in the"
                    f" first batch but of {src} later: the model's graph changes between batches"
                )
            if src is None and role == "clf_in":  # the classifier's input is a layer too
                self.how.setdefault(key, ((int(inp.shape[1]),), "none"))
                self.update(key, inp, y)
        if "zout" in roles:
            if not isinstance(output, Tensor) or tuple(output.shape) != (B, self.K):
                shape = tuple(output.shape) if isinstance(output, Tensor) else type(output)
                raise ValueError(
                    f"classifier {name!r} returned {shape}, expected ({B}, K={self.K})"
                )
            z = output.detach().to(F64)
            self.update(("z", name), z, y)
            self.correct = self.correct + (z.argmax(1) == y).sum()
            self.fit = self.fit + (z - nn.functional.one_hot(y, self.K).to(F64)).pow(2).sum()
        if "h1" in roles:
            self.h_sq = self.h_sq + inp.detach().to(F64).pow(2).sum()
        if "nc4" in roles:
            x = inp.detach().to(F64).T
            z = output.detach().to(F64).T
            means = cast(Tensor, self.ncc_means)  # an nc4 pass is built with ncc_means
            self.mismatch = self.mismatch + _nc4_core(x, means, z) * B

    def new_batch(self, y: Tensor) -> None:
        self.y = y
        self.calls.clear()
        self.seen.clear()
        bc = torch.bincount(y, minlength=self.K)
        if bc.numel() > self.K:
            raise ValueError(
                f"data: labels must lie in 0..{self.K - 1} (num_classes={self.K}), got"
                f" {int(y.max())}"
            )
        self.counts = bc if self.counts is None else self.counts + bc

    def end_batch(self) -> None:
        self.batches += 1
        self.seen.clear()


def _run_pass(model: nn.Module, data: Iterable, K: int, p: _Pass) -> _Pass:
    """One pass over ``data`` with hooks for ``p.roles``, in eval mode, no grad (the modules'
    train/eval flags are restored afterwards); ValueError for empty data or a missing class."""
    device, dtype = _model_device_dtype(model)
    modules = dict(model.named_modules())
    modes = [(m, m.training) for m in model.modules()]
    handles = []
    try:
        for name in p.roles:
            handles.append(
                modules[name].register_forward_hook(
                    lambda mod, args, out, _n=name: p.hook(_n, mod, args, out)
                )
            )
        model.eval()
        with torch.no_grad():
            for batch in data:
                x, y = _split_batch(batch)
                if isinstance(x, np.ndarray):
                    x = torch.from_numpy(x)
                if isinstance(x, Tensor):
                    x = x.to(device)
                    if x.is_floating_point() and dtype is not None and x.dtype != dtype:
                        x = x.to(dtype)
                y = y.to(device=device, dtype=torch.long)
                if y.numel() == 0:
                    continue
                p.new_batch(y)
                model(x)
                for name in p.roles:
                    if name not in p.calls:
                        raise ValueError(f"layer {name!r} did not run in the model's forward pass")
                p.end_batch()
    finally:
        for h in handles:
            h.remove()
        for m, was in modes:
            m.training = was
    if p.counts is None or int(p.counts.sum()) == 0:
        raise ValueError("data is empty: it yields no samples")
    missing = _missing_classes(p.counts)
    if missing:
        raise ValueError(
            f"data: class(es) {missing} have no samples: every class 0..{K - 1} needs at least one"
        )
    return p


def _compute(acc: metrics.CollapseAccumulator) -> dict:
    """The accumulator's metrics, or NaN metrics (and the means) when its sums overflowed."""
    finite = bool(torch.isfinite(acc.scatter).all()) and bool(torch.isfinite(acc.means).all())
    if finite:
        return acc.compute()
    out: dict = {m: math.nan for m in metrics.FEATURE_METRICS}
    out["means"] = acc.means.clone()
    return out


def _nc3(module: nn.Module, st: dict, dual: bool) -> float:
    """NC3 self-duality (``dual``) or the DNC3 subspace error of a linear module's weight
    against the class means ``st["means"]`` of its input, centred when it has a bias."""
    M = st["means"]
    if not bool(torch.isfinite(M).all()):
        return math.nan
    # only called for linear modules: the weight is a tensor
    W = cast(Tensor, _linear_weight(module)).detach().to(device=M.device, dtype=F64)
    if _has_bias(module):
        M = M - M.mean(dim=1, keepdim=True)
    if dual:
        return metrics.nc3_self_duality(W, M)
    return metrics.dnc3_subspace(W, M)
