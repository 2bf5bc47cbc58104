"""Finding the monitored modules of a network and reading their features.

Module lookup by name or object (errors list the available names), the default layers (the
model's children), a linear module's weight and bias, and :func:`_reduce`, which turns a
batch-first output into (B, d) features (flattened, or averaged over the spatial dimensions
of a feature map larger than ``max_dim``).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn


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
