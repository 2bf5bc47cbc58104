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

The package: ``core`` (:class:`Monitor`), ``hooks`` (one pass: forward hooks and streaming
accumulators), ``comparison`` (:class:`DUFMComparison`), ``layout`` (the layer table),
``_inputs`` and ``_lookup`` (argument checks, module lookup). The module itself is callable:
``dnc_interactive.monitor(...)`` is :func:`monitor`.
"""

from __future__ import annotations

import inspect
import sys
import types
from typing import Any

from torch import nn

from dnc_interactive.monitor._inputs import MAX_DIM, SPATIAL
from dnc_interactive.monitor.comparison import DUFMComparison
from dnc_interactive.monitor.core import Monitor

__all__ = ["MAX_DIM", "SPATIAL", "DUFMComparison", "Monitor", "monitor"]


def monitor(model: nn.Module, data: Any, *args: Any, **kwargs: Any) -> Monitor:
    """Deep neural collapse metrics of any network, layer by layer (module docstring): a
    :class:`Monitor` built with these arguments (the same as its constructor's).

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
    return Monitor(model, data, *args, **kwargs)


# help(monitor) and editors show the constructor's parameters
monitor.__signature__ = inspect.signature(Monitor).replace(  # type: ignore[attr-defined]
    return_annotation=Monitor
)


class _CallableModule(types.ModuleType):
    """``dnc_interactive.monitor(...)`` works whether the package attribute is this function
    (the eager ``from dnc_interactive.monitor import monitor``) or this module (a lazy package
    ``__init__``, or ``import dnc_interactive.monitor``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Monitor:
        return monitor(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
