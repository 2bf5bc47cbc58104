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
    info = []
    j = 0
    for name, module in modules.items():
        j += 1
        index[("out", name)] = j
        names[j] = name
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
    if clf is not None:
        key = ("in", clf)
        src = p.alias.get(key)
        if src is None:
            j += 1
            index[key] = j
            names[j] = f"input of {clf}"
            info.append(
                {
                    "layer": j,
                    "name": f"input of {clf}",
                    "module": type(clf_module).__name__,
                    "features": "classifier input",
                    "shape": p.how[key][0],
                    "dim": p.accs[key].dim,
                    "reduction": "none",
                }
            )
        else:
            index[key] = index[src]
            for row in info:
                if row["layer"] == index[src]:
                    row["features"] = "output (the classifier's input)"
        j += 1
        index[("z", clf)] = j
        names[j] = f"output of {clf}"
        info.append(
            {
                "layer": j,
                "name": f"output of {clf}",
                "module": type(clf_module).__name__,
                "features": "classifier output (nc4, q_k)",
                "shape": (K,),
                "dim": K,
                "reduction": "none",
            }
        )
    return index, names, info
