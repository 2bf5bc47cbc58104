"""The :class:`Monitor`: deep neural collapse metrics of a user network, recorded into a tidy
history (theory §3).

Construction checks the arguments and finds the monitored layers, the classifier and the
head; :meth:`Monitor.record` runs one pass (two with NC4) through
:mod:`~dnc_interactive.monitor.hooks` and appends the rows (features, weights, output, the
DUFM head loss of :mod:`~dnc_interactive.monitor.comparison`); the views are
:attr:`Monitor.history`, :meth:`Monitor.report`, :meth:`Monitor.show` and
:meth:`Monitor.live_chart`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any, cast

import pandas as pd
import torch
from torch import Tensor, nn

from dnc_interactive import metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.monitor._inputs import (
    MAX_DIM,
    SPATIAL,
    Row,
    _as_batches,
    _check_counts,
    _check_int,
    _check_lambda,
    _check_lambda_W,
    _infer_classes,
)
from dnc_interactive.monitor._lookup import _available, _default_layers, _find, _linear_weight
from dnc_interactive.monitor.comparison import (
    _HEAD_METRICS,
    DUFMComparison,
    _compare,
    _gap,
    _head_roles,
    _head_terms,
    _resolve_head,
)
from dnc_interactive.monitor.hooks import _compute, _nc3, _Pass, _run_pass
from dnc_interactive.monitor.layout import _build_layout
from dnc_interactive.training import RecordedHistory


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
                _check_counts(torch.bincount(labels), self.K)
        else:
            self.K = _infer_classes(self.data, labels)

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
            self._head = _resolve_head(head_found or None, self.classifier, self._clf_module)
            self.head_names = tuple(n for n, _ in self._head)
            self._lambda_Ws = _check_lambda_W(lambda_W, len(self._head))

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
            _head_roles(roles, self._head)
        p = _run_pass(
            self.model, self.data, self.K, _Pass(roles, self.K, self.spatial, self.max_dim)
        )
        if self._alias is None:
            self._alias = dict(p.alias)
            index, names, info = _build_layout(self._modules, clf, self._clf_module, self.K, p)
            self._index.update(index)
            self.layer_names.update(names)
            self._layer_info = info
        elif p.alias != self._alias:
            raise RuntimeError(
                "the model's graph changed since the first record (which layer feeds which"
                " linear layer): build a new monitor for the changed model"
            )
        stats = {key: _compute(acc) for key, acc in p.accs.items()}
        counts = cast(Tensor, p.counts)  # _run_pass raised if the pass saw no batch
        N = int(counts.sum())
        self.class_sizes = tuple(int(n) for n in counts.tolist())

        rows: list[Row] = []
        head = None
        if self._head is not None:
            # lambda_H is set whenever there is a head (checked in __init__)
            head = _head_terms(p, self._head, self.K, cast(float, self.lambda_H), self._lambda_Ws)
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
            weights[self._index[src]] = _nc3(clf_module, stats[src], dual=True)
        for name, module in self._modules.items():
            src = self._alias.get(("in", name)) if name != clf else None
            if src is not None and self._index[src] not in weights:
                weights[self._index[src]] = _nc3(module, stats[src], dual=False)
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
                    rows.append(
                        (
                            s,
                            j_out,
                            "output",
                            "nc4",
                            float(_run_pass(self.model, self.data, self.K, p2).mismatch) / N,
                        )
                    )
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
            head_modules = _resolve_head(found, self.classifier, self._clf_module)
        else:
            head_modules = self._head or _resolve_head(None, self.classifier, self._clf_module)
        lam_Ws = _check_lambda_W(lam_W, len(head_modules))
        return _compare(
            self.model, self.data, self.K, self.spatial, self.max_dim, head_modules, lam_H, lam_Ws
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
