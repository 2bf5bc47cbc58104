"""A PyTorch Lightning callback that records deep neural collapse metrics while training.

::

    from dnc_interactive.integrations.lightning import DNCMonitor
    cb = DNCMonitor(train_loader, layers=["fc1", "fc2"], every=5)
    lightning.Trainer(max_epochs=50, callbacks=[cb]).fit(module, train_loader)
    cb.history                   # the tidy history of dnc_interactive.monitor
    charts.metric_chart(cb.history)

At the start of training (step 0) and after every ``every``-th epoch (``unit="epoch"``, step =
epochs done) or optimiser step (``unit="step"``, step = ``trainer.global_step``) the callback
calls :meth:`Monitor.record <dnc_interactive.monitor.Monitor.record>`: one pass over ``data``
in evaluation mode without gradients (the module's train/eval flags are restored). With
``log=True`` the layer metrics are also sent to the trainer's loggers as
``"<prefix>/<layer name>/<metric>"``. Only the global-zero process records.

Lightning is an optional dependency: ``pip install "dnc-interactive[lightning]"``. Both the
``lightning`` package and the older ``pytorch_lightning`` work.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

try:
    import lightning.pytorch as pl
except ImportError:  # pragma: no cover - depends on the environment
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError:
        raise ImportError(
            "dnc_interactive.integrations.lightning needs PyTorch Lightning. Fix: `pip install"
            ' "dnc-interactive[lightning]"` (or `pip install lightning`).'
        ) from None

from dnc_interactive.monitor import Monitor, monitor

UNITS = ("epoch", "step")
#: Metrics sent to the loggers (those present in a record).
LOGGED = ("nc1", "nc1_trace", "nc2_orth", "nc3", "nc4", "rank", "accuracy", "relative_gap")

__all__ = ["LOGGED", "UNITS", "DNCMonitor"]


class DNCMonitor(pl.Callback):
    """Record :func:`dnc_interactive.monitor` metrics of the LightningModule during ``fit``.

    Args:
        data: what :func:`~dnc_interactive.monitor.monitor` measures on: ``(X, y)`` tensors or
            a re-iterable of ``(x, y)`` batches (a DataLoader without random augmentation).
        layers: module names of the LightningModule (as in ``named_modules()``) or modules.
        every: record every this many epochs or optimiser steps (see ``unit``).
        unit: ``"epoch"`` or ``"step"``.
        log: also send the metrics of :data:`LOGGED` to ``trainer.loggers``.
        prefix: the logged names' prefix.
        **monitor_kwargs: the other arguments of :func:`~dnc_interactive.monitor.monitor`
            (``classifier``, ``num_classes``, ``lambda_H``, ``lambda_W``, ``head``, ...).

    Attributes:
        monitor: the :class:`~dnc_interactive.monitor.Monitor`, built at the start of training
            (None before).
    """

    def __init__(
        self,
        data: Any,
        layers: Any = None,
        every: int = 1,
        *,
        unit: str = "epoch",
        log: bool = True,
        prefix: str = "dnc",
        **monitor_kwargs: Any,
    ) -> None:
        super().__init__()
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ValueError(f"every={every!r} is not valid: expected an int >= 1")
        if unit not in UNITS:
            raise ValueError(f"unit={unit!r} is not valid: expected one of {UNITS}")
        if "every" in monitor_kwargs:
            raise ValueError("every is the callback's own argument")
        self.data = data
        self.layers = layers
        self.every = every
        self.unit = unit
        self.log = bool(log)
        self.prefix = prefix
        self.monitor_kwargs = monitor_kwargs
        self.monitor: Monitor | None = None

    @property
    def history(self) -> pd.DataFrame:
        """The monitor's tidy history (empty before training)."""
        if self.monitor is None:
            return pd.DataFrame(columns=["step", "layer", "kind", "metric", "value"])
        return self.monitor.history

    # ------------------------------------------------------------------ Lightning hooks
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        if self.monitor is None or self.monitor.model is not pl_module:
            self.monitor = monitor(
                pl_module, self.data, self.layers, self.every, **self.monitor_kwargs
            )
        step = trainer.current_epoch if self.unit == "epoch" else trainer.global_step
        self._record(trainer, step)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.unit == "epoch" and trainer.is_global_zero:
            epochs = trainer.current_epoch + 1
            if epochs % self.every == 0:
                self._record(trainer, epochs)

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.unit == "step" and trainer.is_global_zero:
            step = trainer.global_step
            if step % self.every == 0:
                self._record(trainer, step)

    # ------------------------------------------------------------------ internals
    def _record(self, trainer: pl.Trainer, step: int) -> None:
        mon = self.monitor
        if mon is None:
            return
        done = mon.history
        if not done.empty and int(done["step"].iloc[-1]) == step:
            return  # already recorded (e.g. the last step of an epoch with unit="step")
        rows = mon.record(step)
        if not (self.log and trainer.loggers):
            return
        names = mon.layer_names
        logged = {}
        for _, layer, _kind, metric, value in rows:
            if metric in LOGGED and math.isfinite(value):
                where = "model" if layer == 0 else names.get(layer, str(layer))
                logged[f"{self.prefix}/{where}/{metric}"] = float(value)
        for logger in trainer.loggers:
            logger.log_metrics(logged, step=trainer.global_step)
