"""Bring your own network: deep neural collapse metrics of any ``torch.nn.Module`` (theory §3).

::

    from dnc_interactive import monitor
    mon = monitor(model, loader, layers=["fc1", "fc2", "fc3"])   # or (X, y) tensors
    for epoch in range(epochs):
        train_one_epoch(model)
        mon(epoch, loss=train_loss)        # records every ``every``-th call
    mon.history                            # tidy: step, layer, kind, metric, value
    charts.metric_chart(mon.history)       # the same charts as a DUFM run; or mon.show()
    mon.dufm_comparison(lambda_H=1e-3, lambda_W=1e-3)   # the head against the DUFM's L*

A record is one pass over ``data`` in evaluation mode under ``torch.no_grad()`` (the modules'
own train/eval flags are restored afterwards). Forward hooks, attached for the pass only, feed
each batch's features to one :class:`~dnc_interactive.metrics.CollapseAccumulator` per layer
(float64, streaming), so memory grows with the layer widths, never with N. The numbers are
those of the one-shot functions of :mod:`dnc_interactive.metrics` on the concatenated features.

What is recorded at each step (the schema of the trainer's history,
:data:`~dnc_interactive.training.HISTORY_COLUMNS`, so every history chart works unchanged):

* **layers 1..n, kind "post"**: the features of the monitored modules, in the order given: a
  module's output, one row per sample (batch first), flattened; a feature map larger than
  ``max_dim`` values per sample is averaged over its spatial dimensions (channels first,
  ``spatial="auto"``). Metrics: :data:`~dnc_interactive.metrics.FEATURE_METRICS` (nc1,
  nc1_trace = NC1', nc2_orth, nc2_etf, equinorm, coherence, rank, mean_norm).
* **the classifier's input**: the classifier is the last ``nn.Linear`` with K outputs
  (``classifier="auto"``). When its input is the output of a monitored layer, that layer
  holds it; otherwise it is one more layer, n + 1, named ``"input of <classifier>"``.
* **kind "weight", metric "nc3"** where a linear layer's weight is known, at the layer of the
  weight's *input* (as in the trainer's history, where W_l sits with H_l): at the classifier's
  input layer the self-duality error of the classifier's weight W against the class means of
  its input (:func:`~dnc_interactive.metrics.nc3_self_duality`); at a layer whose output is
  the input of a monitored ``nn.Linear`` (e.g. ``fc2`` after the monitored ``act1``) the
  subspace error of that weight against the layer's class means
  (:func:`~dnc_interactive.metrics.dnc3_subspace`, DNC3). One weight per layer, the
  classifier's first. A weight with a bias is compared with the centred class means
  M - mu_G 1^T (the bias absorbs the global mean; the centring of Papyan et al. 2020); a
  bias-free one with M itself, the DUFM's convention (theory §3.4).
* **the last layer, kind "output"**: ``nc4`` (fraction of samples where the classifier's
  prediction differs from the nearest class mean of its input; a second pass over ``data``,
  since the means are known only at the end of the first) and ``q_0..q_{K-1}`` (mean of
  output k over class k).
* **layer 0, kind "model"**: ``accuracy`` (argmax of the classifier's output), the keyword
  scalars passed to :meth:`Monitor.record` (e.g. ``loss=...``), and, when ``lambda_H`` and
  ``lambda_W`` are given, the head loss of :meth:`Monitor.dufm_comparison` as ``loss``,
  ``fit``, ``reg``, ``reg_H``, ``optimal_loss`` and ``relative_gap`` (so ``loss_chart``
  draws it against L*).

The DUFM comparison (theory §1.2, §2.2, §6): the modules of ``head`` (default: the classifier
alone, L = 1) are read as the DUFM's W_1..W_L and the input of the first one as H1. The head
loss ``1/(2N) ||Z - Y||_F^2 + (lambda_H/2) ||H1||_F^2 + sum_l (lambda_{W_l}/2) ||W_l||_F^2``
(Y one-hot, Z the classifier's output) is set next to the optimum L* of the DUFM with the
data's K and n_k, the head's widths and the same lambdas (:func:`dnc_interactive.theory.
optimal_loss`). The theorem is about bias-free layers with ReLUs between them: a head layer with
a bias is flagged (``has_bias``), and activations other than ReLU are not checked.

Use a loader without random augmentation, so that both passes of a record see the same data.
"""

from __future__ import annotations

import math
import numbers
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from dnc_interactive import metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.training import RecordedHistory

F64 = torch.float64
SPATIAL = ("auto", "flatten", "mean")
#: Default largest feature dimension per layer (the accumulator keeps a d x d float64 matrix).
MAX_DIM = 2048

Row = tuple[int, int, str, str, float]

__all__ = ["MAX_DIM", "SPATIAL", "DUFMComparison", "Monitor", "monitor"]


# ====================================================================== input checks
def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_int(name: str, v: Any, low: int) -> int:
    if not _is_int(v) or v < low:
        raise ValueError(f"{name}={v!r} is not valid: expected an int >= {low}")
    return int(v)


def _check_lambda(name: str, v: Any) -> float:
    if not isinstance(v, numbers.Real) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
        raise ValueError(f"{name}={v!r} is not valid: expected a finite float >= 0")
    return float(v)


def _as_labels(y: Any, where: str) -> Tensor:
    """A 1-D integer label tensor, or ValueError naming ``where``."""
    if not isinstance(y, Tensor):
        try:
            y = torch.as_tensor(np.asarray(y))
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: labels must be integer class indices, got {y!r:.60}"
            ) from None
    if y.dtype.is_floating_point or y.dtype.is_complex or y.dtype == torch.bool:
        raise ValueError(
            f"{where}: labels must be integer class indices 0..K-1, got dtype {y.dtype}"
            " (convert them with y.long() if they are whole numbers)"
        )
    if y.ndim != 1:
        hint = " (one-hot labels? pass y.argmax(1))" if y.ndim == 2 else ""
        raise ValueError(
            f"{where}: labels must be a 1-D tensor of class indices, got shape"
            f" {tuple(y.shape)}{hint}"
        )
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"{where}: labels must be >= 0, got {int(y.min())}")
    return y


class _TensorBatches:
    """Batches of (X, y) tensors, in order (re-iterable)."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(0, int(self.y.shape[0]), self.batch_size):
            yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]


def _as_batches(data: Any, batch_size: int) -> tuple[Iterable, Tensor | None]:
    """(re-iterable of (x, y) batches, all labels when ``data`` holds tensors, else None)."""
    arrays = (Tensor, np.ndarray)
    if (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], arrays)
        and isinstance(data[1], arrays)
    ):
        x = data[0] if isinstance(data[0], Tensor) else torch.from_numpy(data[0])
        y = _as_labels(data[1], "data")
        if x.ndim == 0 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"data: X has shape {tuple(x.shape)} but y has {y.shape[0]} labels: expected"
                " (X, y) with X batch first (one row per sample)"
            )
        if y.numel() == 0:
            raise ValueError("data is empty: X and y have no samples")
        return _TensorBatches(x, y, batch_size), y
    if isinstance(data, (Tensor, np.ndarray, str, bytes, dict)) or not hasattr(data, "__iter__"):
        raise ValueError(
            f"data={type(data).__name__} is not valid: expected (X, y) tensors or an iterable of"
            " (x, y) batches such as a torch DataLoader"
        )
    if iter(data) is data:
        raise ValueError(
            "data is an iterator, which can be read only once: pass a DataLoader, a list of"
            " (x, y) batches or (X, y) tensors (every record reads the data again)"
        )
    return data, None


def _split_batch(batch: Any) -> tuple[Any, Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(
            f"data: every batch must be an (x, y) pair, got {type(batch).__name__}"
            " (extra items after y are ignored)"
        )
    return batch[0], _as_labels(batch[1], "data")


def _model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype | None]:
    """The device of the model's first parameter (or buffer; CPU without either) and the
    dtype of its first floating-point parameter (None without one)."""
    tensors = [*model.parameters(), *model.buffers()]
    device = tensors[0].device if tensors else torch.device("cpu")
    dtype = next((p.dtype for p in model.parameters() if p.dtype.is_floating_point), None)
    return device, dtype


# ====================================================================== module lookup
def _names(model: nn.Module) -> dict[int, str]:
    return {id(m): n for n, m in model.named_modules() if n}


def _available(model: nn.Module) -> str:
    names = [n for n, _ in model.named_modules() if n]
    return ", ".join(repr(n) for n in names) if names else "(the model has no submodules)"


def _find(model: nn.Module, item: Any, arg: str) -> tuple[str, nn.Module]:
    """(name, module) of a submodule given by name or object, or ValueError naming ``arg``."""
    if isinstance(item, str):
        modules = dict(model.named_modules())
        if not item or item not in modules:
            raise ValueError(
                f"{arg}: unknown layer name {item!r}; available names: {_available(model)}"
            )
        return item, modules[item]
    if isinstance(item, nn.Module):
        name = _names(model).get(id(item))
        if name is None:
            raise ValueError(
                f"{arg}: the module {type(item).__name__} is not a submodule of the model"
                f" (available names: {_available(model)})"
            )
        return name, item
    raise ValueError(f"{arg}: expected module names or modules, got {item!r:.60}")


def _default_layers(model: nn.Module) -> list[str]:
    """The model's children (through a single wrapping container such as ``self.net``)."""
    prefix, parent = "", model
    children = list(parent.named_children())
    while len(children) == 1 and list(children[0][1].children()):
        prefix += children[0][0] + "."
        parent = children[0][1]
        children = list(parent.named_children())
    return [prefix + n for n, _ in children]


def _linear_weight(module: nn.Module) -> Tensor | None:
    W = getattr(module, "weight", None)
    return W if isinstance(W, Tensor) and W.ndim == 2 else None


def _has_bias(module: nn.Module) -> bool:
    return isinstance(getattr(module, "bias", None), Tensor)


def _reduce(t: Tensor, spatial: str, max_dim: int, name: str) -> tuple[Tensor, str]:
    """(B, d) features of a batch-first tensor, and how they were obtained."""
    B = t.shape[0]
    if t.ndim <= 2:
        out, how = t.reshape(B, -1), "none"
    else:
        flat = math.prod(t.shape[1:])
        if spatial == "flatten" or (spatial == "auto" and flat <= max_dim):
            out, how = t.reshape(B, -1), "flatten"
        else:
            out, how = t.mean(dim=tuple(range(2, t.ndim))), "mean over spatial dims"
    if out.shape[1] > max_dim:
        raise ValueError(
            f"layer {name!r} has {out.shape[1]} features per sample ({how}), more than"
            f" max_dim={max_dim}: raise max_dim (the accumulator holds a d x d float64 matrix)"
            " or use spatial='mean' for feature maps"
        )
    return out, how


# ====================================================================== results
@dataclass(frozen=True)
class DUFMComparison:
    """A network's head next to the DUFM optimum (theory §1.2, §2.2, §6).

    Attributes:
        head: names of the head's modules W_1..W_L.
        num_classes, class_sizes: K and n_k of the data.
        widths: d_1..d_L, the head modules' input dimensions.
        lambda_H, lambda_Ws: the regularisation constants.
        optimal_loss: L* of the DUFM with these K, n_k, L, widths and lambdas.
        optimality: how L* relates to the true optimum (:func:`theory.dnc_optimality`).
        optimal_q: the optimum's output scales q_k (class-k output mean q_k e_k).
        head_loss: fit + reg_H + sum(reg_W), the DUFM objective at H1 = the head's input.
        fit: 1/(2N) ||Z - Y||_F^2 with Z the classifier's output and Y one-hot.
        reg_H: (lambda_H/2) ||H1||_F^2 (sum over all N samples).
        reg_W: (lambda_{W_l}/2) ||W_l||_F^2 per head module.
        relative_gap: (head_loss - L*) / L*.
        q: the measured q_k (mean of output k over class k).
        has_bias: some head module has a bias (the theorem's head has none: the comparison is
            then indicative only).
        config: the :class:`~dnc_interactive.config.DUFMConfig` of the reference DUFM.
    """

    head: tuple[str, ...]
    num_classes: int
    class_sizes: tuple[int, ...]
    widths: tuple[int, ...]
    lambda_H: float
    lambda_Ws: tuple[float, ...]
    optimal_loss: float
    optimality: str
    optimal_q: tuple[float, ...]
    head_loss: float
    fit: float
    reg_H: float
    reg_W: tuple[float, ...]
    relative_gap: float
    q: tuple[float, ...]
    has_bias: bool
    config: DUFMConfig = field(repr=False)

    @property
    def depth(self) -> int:
        return len(self.head)

    @property
    def reg(self) -> float:
        return self.reg_H + sum(self.reg_W)

    def summary(self) -> dict[str, Any]:
        """The scalar numbers as a dict."""
        return {
            "head": ", ".join(self.head),
            "K": self.num_classes,
            "N": sum(self.class_sizes),
            "L": self.depth,
            "head_loss": self.head_loss,
            "optimal_loss": self.optimal_loss,
            "relative_gap": self.relative_gap,
            "fit": self.fit,
            "reg": self.reg,
            "optimality": self.optimality,
            "has_bias": self.has_bias,
        }


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
            self.mismatch = self.mismatch + metrics._nc4_core(x, means, z) * B

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


def _missing_classes(counts: Tensor) -> list[int]:
    return torch.nonzero(counts == 0).flatten().tolist()


# ====================================================================== the monitor
class Monitor(RecordedHistory):
    """Deep neural collapse metrics of a user network, recorded into a tidy history.

    Built by :func:`monitor` (see there for the arguments and the module docstring for what is
    recorded). Call :meth:`record` (always records) or the monitor itself (records every
    ``every``-th call) during training; read :attr:`history`, :meth:`report`,
    :attr:`layer_names`, :meth:`show`, :meth:`live_chart` and :meth:`dufm_comparison`.
    """

    def __init__(
        self,
        model: nn.Module,
        data: Any,
        layers: Sequence[str | nn.Module] | str | nn.Module | None = None,
        every: int = 1,
        *,
        classifier: str | nn.Module | None = "auto",
        num_classes: int | None = None,
        batch_size: int = 512,
        spatial: str = "auto",
        max_dim: int = MAX_DIM,
        nc4: bool = True,
        head: Sequence[str | nn.Module] | None = None,
        lambda_H: float | None = None,
        lambda_W: float | Sequence[float] | None = None,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model={model!r:.60} is not valid: expected a torch.nn.Module")
        self.every = _check_int("every", every, 1)
        self.batch_size = _check_int("batch_size", batch_size, 1)
        self.max_dim = _check_int("max_dim", max_dim, 1)
        if spatial not in SPATIAL:
            raise ValueError(f"spatial={spatial!r} is not valid: expected one of {SPATIAL}")
        if not isinstance(nc4, bool):
            raise ValueError(f"nc4={nc4!r} is not valid: expected a bool")
        self.spatial = spatial
        self.nc4 = nc4
        self.model = model
        self.data, labels = _as_batches(data, self.batch_size)
        if num_classes is not None:
            self.K = _check_int("num_classes", num_classes, 2)
            if labels is not None:
                self._check_counts(torch.bincount(labels))
        else:
            self._infer_classes(labels)

        # monitored layers (the default leaves the classifier out, below)
        if layers is None:
            items: list[Any] = _default_layers(model)
        elif isinstance(layers, (str, nn.Module)):
            items = [layers]
        else:
            items = list(layers)
        found = [_find(model, item, "layers") for item in items]
        names = [n for n, _ in found]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"layers: {dup} given more than once")
        self._modules: dict[str, nn.Module] = dict(found)

        # classifier and head
        self.head_names: tuple[str, ...] = ()
        head_found = [_find(model, item, "head") for item in head] if head is not None else []
        if head is not None and not head_found:
            raise ValueError("head is empty: name the head's linear modules W_1..W_L in order")
        clf: tuple[str, nn.Module] | None
        if classifier == "auto":
            if head_found:
                clf = head_found[-1]
            else:
                lin = [
                    (n, m)
                    for n, m in model.named_modules()
                    if n and isinstance(m, nn.Linear) and m.out_features == self.K
                ]
                clf = lin[-1] if lin else None
        elif classifier is None or classifier is False:
            clf = None
        else:
            clf = _find(model, classifier, "classifier")
        if clf is not None:
            W = _linear_weight(clf[1])
            if W is None or W.shape[0] != self.K:
                shape = None if W is None else tuple(W.shape)
                raise ValueError(
                    f"classifier {clf[0]!r} is not valid: expected a linear layer with K ="
                    f" {self.K} outputs (a 2-D weight of shape (K, d)), its weight has shape"
                    f" {shape}"
                )
        if head_found and (clf is None or head_found[-1][0] != clf[0]):
            raise ValueError(
                f"head ends with {head_found[-1][0]!r} but the classifier is"
                f" {None if clf is None else clf[0]!r}: the head's last module is the classifier"
            )
        self.classifier: str | None = None if clf is None else clf[0]
        if layers is None and self.classifier in self._modules:
            del self._modules[self.classifier]  # its output is the "output" layer already
        self._clf_module = None if clf is None else clf[1]
        if not self._modules and clf is None:
            raise ValueError(
                "nothing to monitor: layers is empty and no classifier was found (a linear layer"
                f" with K = {self.K} outputs); available names: {_available(model)}"
            )
        self.lambda_H = None if lambda_H is None else _check_lambda("lambda_H", lambda_H)
        self._lambda_W = lambda_W
        self._head: list[tuple[str, nn.Module]] | None = None
        if lambda_H is not None or lambda_W is not None or head is not None:
            if lambda_H is None or lambda_W is None:
                raise ValueError(
                    "lambda_H and lambda_W must be given together (the DUFM head loss needs both)"
                )
            self._head = self._resolve_head(head_found or None)
            self.head_names = tuple(n for n, _ in self._head)
            self._lambda_Ws = self._check_lambda_W(lambda_W, len(self._head))

        self.status = "ready"
        self.calls = 0
        self.records = 0
        self.class_sizes: tuple[int, ...] | None = None
        self.layer_names: dict[int, str] = {}
        self._layer_info: list[dict[str, Any]] = []
        self._index: dict[tuple[str, str], int] = {}
        self._alias: dict[tuple[str, str], tuple[str, str] | None] | None = None
        self._optimal_loss = math.nan
        self._live: list[Any] = []
        self._init_history()

    # ------------------------------------------------------------------ construction helpers
    def _infer_classes(self, labels: Tensor | None) -> None:
        """K = max(y) + 1 (a loader is read once, for its labels only) and the count checks."""
        if labels is None:
            counts = torch.zeros(0, dtype=torch.long)
            for batch in self.data:
                bc = torch.bincount(_split_batch(batch)[1].cpu())
                size = max(counts.numel(), bc.numel())
                counts = nn.functional.pad(counts, (0, size - counts.numel()))
                counts = counts + nn.functional.pad(bc, (0, size - bc.numel()))
            if int(counts.sum()) == 0:
                raise ValueError("data is empty: it yields no samples")
        else:
            counts = torch.bincount(labels)
        if counts.numel() < 2:
            raise ValueError(
                "data has labels of one class only (0): the collapse metrics need at least 2"
                " classes"
            )
        self.K = int(counts.numel())
        self._check_counts(counts)

    def _check_counts(self, counts: Tensor) -> None:
        if counts.numel() > self.K:
            raise ValueError(
                f"data: labels must lie in 0..{self.K - 1} (num_classes={self.K}), got"
                f" {counts.numel() - 1}"
            )
        missing = _missing_classes(counts)
        if missing:
            raise ValueError(
                f"data: class(es) {missing} have no samples: labels must be 0..K-1 with every"
                f" class present (K = {self.K}); relabel them or pass num_classes"
            )

    def _resolve_head(self, found: list[tuple[str, nn.Module]] | None) -> list:
        if found is None:
            if self.classifier is None:
                raise ValueError(
                    "head: no classifier found (a linear layer with K outputs): pass head=[...]"
                    " with the head's linear modules W_1..W_L"
                )
            found = [(self.classifier, cast(nn.Module, self._clf_module))]
        for i, (name, module) in enumerate(found):
            W = _linear_weight(module)
            if W is None:
                raise ValueError(f"head: {name!r} is not a linear layer (no 2-D weight)")
            # (the previous module passed the check above: its weight is a tensor)
            if i and W.shape[1] != cast(Tensor, _linear_weight(found[i - 1][1])).shape[0]:
                raise ValueError(
                    f"head: {name!r} takes {W.shape[1]} inputs but {found[i - 1][0]!r} has"
                    f" {cast(Tensor, _linear_weight(found[i - 1][1])).shape[0]} outputs"
                )
        return found

    @staticmethod
    def _check_lambda_W(lambda_W: Any, L: int) -> tuple[float, ...]:
        if isinstance(lambda_W, (list, tuple)):
            if len(lambda_W) != L:
                raise ValueError(
                    f"lambda_W has {len(lambda_W)} entries but the head has {L} layers: expected"
                    " one float or one per head layer"
                )
            return tuple(_check_lambda(f"lambda_W[{i}]", v) for i, v in enumerate(lambda_W))
        return (_check_lambda("lambda_W", lambda_W),) * L

    # ------------------------------------------------------------------ the passes
    def _run(self, p: _Pass) -> _Pass:
        """One pass over the data with hooks for ``p.roles``, in eval mode, no grad."""
        model = self.model
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
                for batch in self.data:
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
                            raise ValueError(
                                f"layer {name!r} did not run in the model's forward pass"
                            )
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
                f"data: class(es) {missing} have no samples: every class 0..{self.K - 1} needs at"
                " least one"
            )
        return p

    @staticmethod
    def _head_roles(roles: dict[str, set[str]], head: list[tuple[str, nn.Module]]) -> None:
        roles.setdefault(head[0][0], set()).add("h1")
        roles.setdefault(head[-1][0], set()).add("zout")

    def _head_terms(
        self,
        p: _Pass,
        head: list[tuple[str, nn.Module]],
        lambda_H: float,
        lambda_Ws: tuple[float, ...],
    ) -> dict[str, Any]:
        """fit, reg_H, reg_W, q and the reference DUFM config from a pass with the head roles."""
        counts = cast(Tensor, p.counts)  # _run raised if the pass saw no batch
        N = int(counts.sum())
        sizes = tuple(int(n) for n in counts.tolist())
        # the head's modules are linear (checked by _resolve_head): their weights are tensors
        widths = tuple(int(cast(Tensor, _linear_weight(m)).shape[1]) for _, m in head)
        reg_W = tuple(
            0.5 * lam * float(cast(Tensor, _linear_weight(m)).detach().to(F64).pow(2).sum())
            for lam, (_, m) in zip(lambda_Ws, head, strict=True)
        )
        config = DUFMConfig(
            num_classes=self.K,
            samples_per_class=sizes,
            depth=len(head),
            width=widths,
            lambda_H=lambda_H,
            lambda_W=lambda_Ws,
            dtype="float64",
        )
        fit = float(p.fit) / (2 * N)
        reg_H = 0.5 * lambda_H * float(p.h_sq)
        z = p.accs[("z", head[-1][0])].compute()["means"]
        return {
            "config": config,
            "sizes": sizes,
            "widths": widths,
            "fit": fit,
            "reg_H": reg_H,
            "reg_W": reg_W,
            "loss": fit + reg_H + sum(reg_W),
            "q": tuple(torch.diagonal(z).tolist()),
        }

    # ------------------------------------------------------------------ public API
    def __call__(self, step: int | None = None, **scalars: float) -> list[Row]:
        """Record when due: every ``every``-th call, or when ``step % every == 0``.

        ``step`` defaults to the number of earlier calls (0, 1, 2, ...). Returns the new rows
        (empty when not due).
        """
        s = self.calls if step is None else _check_int("step", step, 0)
        self.calls += 1
        if s % self.every:
            return []
        return self.record(s, **scalars)

    def record(self, step: int | None = None, **scalars: float) -> list[Row]:
        """Measure the network now and append the rows to :attr:`history`.

        ``step`` defaults to the number of earlier records. Keyword scalars (``loss=0.1``,
        ``lr=...``) are recorded at layer 0, kind "model". Returns the new rows.
        """
        s = self.records if step is None else _check_int("step", step, 0)
        extra: dict[str, float] = {}
        for name, value in scalars.items():
            if not isinstance(value, numbers.Real) or isinstance(value, bool):
                raise ValueError(f"{name}={value!r} is not valid: expected a number")
            if self._head is not None and name in _HEAD_METRICS:
                raise ValueError(
                    f"{name!r} is recorded by the monitor itself (the DUFM head loss): pass the"
                    " scalar under another name"
                )
            extra[name] = float(value)
        roles: dict[str, set[str]] = {name: {"feat"} for name in self._modules}
        clf = self.classifier
        for name, module in self._modules.items():
            if name != clf and _linear_weight(module) is not None:
                roles[name].add("lin_in")
        if clf is not None:
            roles.setdefault(clf, set()).update({"clf_in", "zout"})
        if self._head is not None:
            self._head_roles(roles, self._head)
        p = self._run(_Pass(roles, self.K, self.spatial, self.max_dim))
        if self._alias is None:
            self._alias = dict(p.alias)
            self._build_layout(p)
        elif p.alias != self._alias:
            raise RuntimeError(
                "the model's graph changed since the first record (which layer feeds which"
                " linear layer): build a new monitor for the changed model"
            )
        stats = {key: self._compute(acc) for key, acc in p.accs.items()}
        counts = cast(Tensor, p.counts)  # _run raised if the pass saw no batch
        N = int(counts.sum())
        self.class_sizes = tuple(int(n) for n in counts.tolist())

        rows: list[Row] = []
        head = None
        if self._head is not None:
            # lambda_H is set whenever there is a head (checked in __init__)
            head = self._head_terms(p, self._head, cast(float, self.lambda_H), self._lambda_Ws)
        if head is not None:
            if math.isnan(self._optimal_loss):
                self._optimal_loss = theory.optimal_loss(head["config"])
            gap = _gap(head["loss"], self._optimal_loss)
            terms = {
                "loss": head["loss"],
                "fit": head["fit"],
                "reg": head["reg_H"] + sum(head["reg_W"]),
                "reg_H": head["reg_H"],
                "optimal_loss": self._optimal_loss,
                "relative_gap": gap,
            }
            rows += [(s, 0, "model", k, v) for k, v in terms.items()]
            self._last = dict(terms)
        if clf is not None:
            rows.append((s, 0, "model", "accuracy", float(p.correct) / N))
        rows += [(s, 0, "model", k, v) for k, v in extra.items()]

        # feature rows per layer; weight rows at the layer of the weight's input (as in the
        # trainer: W_l sits with H_l), the classifier first, one weight per layer
        weights: dict[int, float] = {}
        src: tuple[str, str] | None
        if clf is not None:
            src = self._alias.get(("in", clf)) or ("in", clf)
            clf_module = cast(nn.Module, self._clf_module)  # set with the classifier
            weights[self._index[src]] = self._nc3(clf_module, stats[src], dual=True)
        for name, module in self._modules.items():
            src = self._alias.get(("in", name)) if name != clf else None
            if src is not None and self._index[src] not in weights:
                weights[self._index[src]] = self._nc3(module, stats[src], dual=False)
        layers = [(self._index[key], key) for key in stats if key[0] != "z"]
        for j, key in sorted(layers):
            st = stats[key]
            rows += [(s, j, "post", m, float(st[m])) for m in metrics.FEATURE_METRICS]
            if j in weights:
                rows.append((s, j, "weight", "nc3", weights[j]))
        if clf is not None:
            src = self._alias.get(("in", clf)) or ("in", clf)
            j_out = self._index[("z", clf)]
            if self.nc4:
                means = stats[src]["means"]
                if bool(torch.isfinite(means).all()):
                    p2 = _Pass({clf: {"nc4"}}, self.K, self.spatial, self.max_dim, ncc_means=means)
                    rows.append((s, j_out, "output", "nc4", float(self._run(p2).mismatch) / N))
                else:
                    rows.append((s, j_out, "output", "nc4", math.nan))
            q = torch.diagonal(stats[("z", clf)]["means"]).tolist()
            rows += [(s, j_out, "output", f"q_{k}", float(v)) for k, v in enumerate(q)]
        self._rows.extend(rows)
        self.records += 1
        self.status = "recorded"
        for chart in self._live:
            chart.push(rows)
        return rows

    def _compute(self, acc: metrics.CollapseAccumulator) -> dict:
        finite = bool(torch.isfinite(acc.scatter).all()) and bool(torch.isfinite(acc.means).all())
        if finite:
            return acc.compute()
        out: dict = {m: math.nan for m in metrics.FEATURE_METRICS}
        out["means"] = acc.means.clone()
        return out

    def _nc3(self, module: nn.Module, st: dict, dual: bool) -> float:
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

    def _build_layout(self, p: _Pass) -> None:
        """Layer indices and the layer table, fixed at the first record."""
        info = []
        j = 0
        for name, module in self._modules.items():
            j += 1
            self._index[("out", name)] = j
            self.layer_names[j] = name
            shape, how = p.how[("out", name)]
            info.append(
                {
                    "layer": j,
                    "name": name,
                    "module": type(module).__name__,
                    "features": "output",
                    "shape": shape,
                    "dim": p.accs[("out", name)].dim,
                    "reduction": how,
                }
            )
        clf = self.classifier
        if clf is not None:
            key = ("in", clf)
            src = p.alias.get(key)
            if src is None:
                j += 1
                self._index[key] = j
                self.layer_names[j] = f"input of {clf}"
                info.append(
                    {
                        "layer": j,
                        "name": f"input of {clf}",
                        "module": type(self._clf_module).__name__,
                        "features": "classifier input",
                        "shape": p.how[key][0],
                        "dim": p.accs[key].dim,
                        "reduction": "none",
                    }
                )
            else:
                self._index[key] = self._index[src]
                for row in info:
                    if row["layer"] == self._index[src]:
                        row["features"] = "output (the classifier's input)"
            j += 1
            self._index[("z", clf)] = j
            self.layer_names[j] = f"output of {clf}"
            info.append(
                {
                    "layer": j,
                    "name": f"output of {clf}",
                    "module": type(self._clf_module).__name__,
                    "features": "classifier output (nc4, q_k)",
                    "shape": (self.K,),
                    "dim": self.K,
                    "reduction": "none",
                }
            )
        self._layer_info = info

    @property
    def layers(self) -> pd.DataFrame:
        """One row per recorded layer index: layer, name, module, features, shape (per
        sample), dim (features fed to the metrics) and reduction. Empty before the first
        record."""
        cols = ["layer", "name", "module", "features", "shape", "dim", "reduction"]
        return pd.DataFrame(self._layer_info, columns=cols)

    @property
    def optimal_loss(self) -> float:
        """L* of the DUFM comparison recorded with the history (NaN without lambdas)."""
        return self._optimal_loss

    def report(self, step: int | None = None) -> pd.DataFrame:
        """The metrics of one record (default: the latest) as one row per layer.

        Columns layer, name, the :data:`~dnc_interactive.metrics.FEATURE_METRICS`, nc3 and
        nc4 (NaN where a layer has no such metric).
        """
        h = self.history
        if h.empty:
            raise ValueError("nothing recorded yet: call record() first")
        s = int(h["step"].iloc[-1]) if step is None else step
        h = h[(h["step"] == s) & (h["layer"] > 0)]
        if h.empty:
            raise ValueError(f"step={step!r} was not recorded")
        wide = h.pivot_table(index="layer", columns="metric", values="value", aggfunc="last")
        cols = [*metrics.FEATURE_METRICS, "nc3", "nc4"]
        wide = wide.reindex(columns=cols)
        wide.insert(0, "name", [self.layer_names.get(int(j), "") for j in wide.index])
        wide.columns.name = None
        return wide.reset_index()

    def dufm_comparison(
        self,
        lambda_H: float | None = None,
        lambda_W: float | Sequence[float] | None = None,
        head: Sequence[str | nn.Module] | None = None,
    ) -> DUFMComparison:
        """The head's loss now next to the DUFM optimum L* (module docstring; theory §2.2, §6).

        ``head`` (the head's linear modules W_1..W_L, in order; default: the monitor's head,
        else the classifier alone) and the lambdas default to those given to :func:`monitor`.
        One pass over the data (eval mode, no grad); nothing is added to the history.
        """
        lam_H = self.lambda_H if lambda_H is None else lambda_H
        lam_W = self._lambda_W if lambda_W is None else lambda_W
        if lam_H is None or lam_W is None:
            raise ValueError(
                "lambda_H and lambda_W are needed for the DUFM comparison (pass them here or to"
                " monitor())"
            )
        lam_H = _check_lambda("lambda_H", lam_H)
        if head is not None:
            found = [_find(self.model, item, "head") for item in head]
            if not found:
                raise ValueError("head is empty: name the head's linear modules W_1..W_L")
            last = _linear_weight(found[-1][1])
            if last is None or last.shape[0] != self.K:
                raise ValueError(
                    f"head: the last module {found[-1][0]!r} must have K = {self.K} outputs"
                )
            head_modules = self._resolve_head(found)
        else:
            head_modules = self._head or self._resolve_head(None)
        lam_Ws = self._check_lambda_W(lam_W, len(head_modules))
        roles: dict[str, set[str]] = {}
        self._head_roles(roles, head_modules)
        p = self._run(_Pass(roles, self.K, self.spatial, self.max_dim))
        terms = self._head_terms(p, head_modules, lam_H, lam_Ws)
        config = terms["config"]
        L_star = theory.optimal_loss(config)
        return DUFMComparison(
            head=tuple(n for n, _ in head_modules),
            num_classes=self.K,
            class_sizes=terms["sizes"],
            widths=terms["widths"],
            lambda_H=lam_H,
            lambda_Ws=lam_Ws,
            optimal_loss=L_star,
            optimality=theory.dnc_optimality(config),
            optimal_q=theory.optimal_q(config),
            head_loss=terms["loss"],
            fit=terms["fit"],
            reg_H=terms["reg_H"],
            reg_W=terms["reg_W"],
            relative_gap=_gap(terms["loss"], L_star),
            q=terms["q"],
            has_bias=any(_has_bias(m) for _, m in head_modules),
            config=config,
        )

    def show(
        self,
        metrics: Sequence[str] = ("nc1", "nc1_trace", "nc2_orth", "nc3", "nc4", "rank"),
        *,
        columns: int = 3,
    ):
        """Altair charts of the history: the loss against L* (when the head loss or a ``loss``
        scalar was recorded) above the per-layer metrics (:func:`charts.metric_chart`), titled
        with the layer names. A read-only view: nothing here changes the network."""
        import altair as alt

        from dnc_interactive import charts

        if not self._rows:
            raise ValueError("nothing recorded yet: call record() first")
        h = self.history
        names = ", ".join(f"{j} = {n}" for j, n in self.layer_names.items())
        chart = charts.metric_chart(h, metrics, kinds=("post",), columns=columns).properties(
            title=alt.TitleParams(f"layers: {names}", anchor="start", fontSize=11)
        )
        model = h[h["kind"] == "model"]
        if (model["metric"] == "loss").any():
            return alt.vconcat(charts.loss_chart(h), chart)
        return chart

    def live_chart(self, max_points: int | None = None):
        """A read-only live view (the dashboard's streaming charts, no controls): a
        :class:`~dnc_interactive.widgets.live_chart.LiveChart` holding the history so far and
        updated by every later record. Needs one record first (the layers are known then)."""
        from dnc_interactive.widgets.live_chart import LiveChart, stream_spec

        if not self._rows:
            raise ValueError("call record() once before live_chart(): the layers are known then")
        depth = max([j for key, j in self._index.items() if key[0] != "z"] or [1])
        # stream_spec reads K and the number of layers from a config: a stand-in one
        stand_in = DUFMConfig(num_classes=self.K, samples_per_class=1, depth=depth, width=self.K)
        chart = LiveChart() if max_points is None else LiveChart(max_points=max_points)
        chart.set_stream(stream_spec(stand_in, self._optimal_loss))
        chart.push(self._rows)
        self._live.append(chart)
        return chart

    def close(self) -> None:
        """Stop updating live charts (no hook stays attached between records anyway)."""
        self._live.clear()
        self.status = "closed"

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        layers = list(self._modules)
        return (
            f"Monitor({type(self.model).__name__}, K={self.K}, layers={layers},"
            f" classifier={self.classifier!r}, every={self.every}, records={self.records})"
        )


_HEAD_METRICS = ("loss", "fit", "reg", "reg_H", "optimal_loss", "relative_gap")


def _gap(loss: float, optimal: float) -> float:
    if not math.isfinite(optimal) or optimal <= 0:
        return math.nan
    return (loss - optimal) / optimal


def monitor(
    model: nn.Module,
    data: Any,
    layers: Sequence[str | nn.Module] | str | nn.Module | None = None,
    every: int = 1,
    *,
    classifier: str | nn.Module | None = "auto",
    num_classes: int | None = None,
    batch_size: int = 512,
    spatial: str = "auto",
    max_dim: int = MAX_DIM,
    nc4: bool = True,
    head: Sequence[str | nn.Module] | None = None,
    lambda_H: float | None = None,
    lambda_W: float | Sequence[float] | None = None,
) -> Monitor:
    """Deep neural collapse metrics of any network, layer by layer (module docstring).

    Args:
        model: any ``torch.nn.Module``; inputs are moved to the device (and floating dtype)
            of its parameters.
        data: ``(X, y)`` tensors or arrays (batch first; read in batches of ``batch_size``),
            or a re-iterable of ``(x, y)`` batches such as a ``DataLoader`` (extra items after
            y are ignored). Labels are integer classes 0..K-1, every class present.
        layers: module names (as in ``model.named_modules()``) or modules whose outputs are
            measured, in this order (layers 1..n); None: the model's children.
        every: :meth:`Monitor.__call__` records every ``every``-th call (or when ``step %
            every == 0``).
        classifier: the final linear layer (name or module), None for none; ``"auto"``: the
            last ``nn.Linear`` with K outputs (the end of ``head`` when given).
        num_classes: K; None: ``max(y) + 1`` (for a loader this reads the labels once now).
        batch_size: batch size for tensor data.
        spatial: feature maps (B, C, ...): ``"flatten"``, ``"mean"`` (over the dimensions
            after C) or ``"auto"`` (flatten up to ``max_dim`` values per sample, else mean).
        max_dim: the largest feature dimension of a layer.
        nc4: measure NC4 (a second pass over the data per record).
        head: the head's linear modules W_1..W_L for the DUFM comparison (default: the
            classifier alone).
        lambda_H, lambda_W: the head's regularisation (lambda_W one float or one per head
            layer); when given, every record adds the head loss and L* to the history.

    Raises:
        ValueError: naming the argument, for a model that is not a module, an unknown layer
            name (the message lists the available names), labels that are not integers,
            fewer than 2 classes, a class without samples, empty data or an iterator.
    """
    return Monitor(
        model,
        data,
        layers,
        every,
        classifier=classifier,
        num_classes=num_classes,
        batch_size=batch_size,
        spatial=spatial,
        max_dim=max_dim,
        nc4=nc4,
        head=head,
        lambda_H=lambda_H,
        lambda_W=lambda_W,
    )


class _CallableModule(types.ModuleType):
    """``dnc_interactive.monitor(...)`` works whether the package attribute is this function
    (the eager ``from dnc_interactive.monitor import monitor``) or this module (a lazy package
    ``__init__``, or ``import dnc_interactive.monitor``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Monitor:
        return monitor(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
