"""The layer table of a monitor: which recorded layer index holds which features.

Fixed at the first record from what the pass saw: layers 1..n are the monitored modules'
outputs, then the classifier's input when no monitored layer holds it, then the classifier's
output (nc4, q_k).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dnc_interactive.monitor.hooks import _Pass


def _build_layout(
    modules: dict[str, nn.Module],
    clf: str | None,
    clf_module: nn.Module | None,
    K: int,
    p: _Pass,
) -> tuple[dict[tuple[str, str], int], dict[int, str], list[dict[str, Any]]]:
    """Layer indices, layer names and the layer table (fixed at the first record): the
    monitored modules' outputs 1..n, the classifier's input (its own layer unless a monitored
    layer holds it) and the classifier's output."""
    index: dict[tuple[str, str], int] = {}
    names: dict[int, str] = {}
    info: list[dict[str, Any]] = []

    def add(key: tuple[str, str], name: str, module: Any, features: str, *rest: Any) -> None:
        j = len(info) + 1
        index[key] = j
        names[j] = name
        columns = ("layer", "name", "module", "features", "shape", "dim", "reduction")
        values = (j, name, type(module).__name__, features, *rest)
        info.append(dict(zip(columns, values, strict=True)))

    for name, module in modules.items():
        shape, how = p.how[("out", name)]
        add(("out", name), name, module, "output", shape, p.accs[("out", name)].dim, how)
    if clf is not None:
        key = ("in", clf)
        src = p.alias.get(key)
        if src is None:
            dim = p.accs[key].dim
            add(key, f"input of {clf}", clf_module, "classifier input", p.how[key][0], dim, "none")
        else:
            index[key] = index[src]
            for row in info:
                if row["layer"] == index[src]:
                    row["features"] = "output (the classifier's input)"
        z = ("z", clf)
        add(z, f"output of {clf}", clf_module, "classifier output (nc4, q_k)", (K,), K, "none")
    return index, names, info
