"""Input checks of the monitor: its arguments, the labels and the data, read as batches.

``(X, y)`` tensors or arrays become re-iterable batches (:func:`_as_batches`); a loader must
be re-iterable (every record reads the data again) and yield ``(x, y)`` pairs with integer
labels 0..K-1, every class present. Also the int / lambda argument checks and the device and
dtype the inputs are moved to.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

F64 = torch.float64


SPATIAL = ("auto", "flatten", "mean")


#: Default largest feature dimension per layer (the accumulator keeps a d x d float64 matrix).
MAX_DIM = 2048


Row = tuple[int, int, str, str, float]


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


def _check_lambda_W(lambda_W: Any, L: int) -> tuple[float, ...]:
    if isinstance(lambda_W, (list, tuple)):
        if len(lambda_W) != L:
            raise ValueError(
                f"lambda_W has {len(lambda_W)} entries but the head has {L} layers: expected"
                " one float or one per head layer"
            )
        return tuple(_check_lambda(f"lambda_W[{i}]", v) for i, v in enumerate(lambda_W))
    return (_check_lambda("lambda_W", lambda_W),) * L


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


def _missing_classes(counts: Tensor) -> list[int]:
    return torch.nonzero(counts == 0).flatten().tolist()


def _check_counts(counts: Tensor, K: int) -> None:
    """Labels within 0..K-1 and every class present, or ValueError."""
    if counts.numel() > K:
        raise ValueError(
            f"data: labels must lie in 0..{K - 1} (num_classes={K}), got {counts.numel() - 1}"
        )
    missing = _missing_classes(counts)
    if missing:
        raise ValueError(
            f"data: class(es) {missing} have no samples: labels must be 0..K-1 with every"
            f" class present (K = {K}); relabel them or pass num_classes"
        )


def _infer_classes(data: Iterable, labels: Tensor | None) -> int:
    """K = max(y) + 1 (a loader ``data`` is read once, for its labels only), count-checked."""
    if labels is None:
        counts = torch.zeros(0, dtype=torch.long)
        for batch in data:
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
            "data has labels of one class only (0): the collapse metrics need at least 2 classes"
        )
    K = int(counts.numel())
    _check_counts(counts, K)
    return K
