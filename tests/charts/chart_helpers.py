"""Synthetic frames matching the chart contracts (trainer history, snapshot frames).

Imported by the chart tests as a plain module (pytest puts this folder on sys.path).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

HISTORY_COLUMNS = ["step", "layer", "kind", "metric", "value"]
FEATURE_METRICS = ("nc1", "nc1_trace", "nc2_orth", "nc2_etf", "equinorm", "coherence", "rank")


def make_history(num_steps: int = 50, depth: int = 3, num_classes: int = 2) -> pd.DataFrame:
    """A tidy history as the trainer writes it: loss terms, per-layer metrics, outputs."""
    steps = np.arange(num_steps)
    decay = np.exp(-steps / max(num_steps / 10, 1.0))
    l_star = 0.2
    loss = l_star * (1 + 2 * decay)
    frames = []

    def add(layer: int, kind: str, metric: str, values: np.ndarray) -> None:
        frames.append(
            pd.DataFrame(
                {"step": steps, "layer": layer, "kind": kind, "metric": metric, "value": values}
            )
        )

    add(0, "model", "loss", loss)
    add(0, "model", "fit", 0.3 * loss)
    add(0, "model", "reg", 0.7 * loss)
    add(0, "model", "reg_H", 0.1 * loss)
    add(0, "model", "optimal_loss", np.full(num_steps, l_star))
    add(0, "model", "relative_gap", (loss - l_star) / l_star)
    add(0, "model", "lr", np.full(num_steps, 0.1))
    for layer in range(1, depth + 1):
        for kind in ("pre", "post"):
            for metric in FEATURE_METRICS:
                values = np.full(num_steps, 2.0) if metric == "rank" else decay**layer
                add(layer, kind, metric, values)
            add(layer, kind, "mean_norm", np.ones(num_steps))
        add(layer, "weight", "nc3", decay / layer)
    add(depth + 1, "output", "nc4", np.zeros(num_steps))
    for k in range(num_classes):
        add(depth + 1, "output", f"q_{k}", 0.9 * (1 - decay))
    return pd.concat(frames, ignore_index=True)[HISTORY_COLUMNS]


def make_gram(depth: int = 3, num_classes: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for layer in range(1, depth + 1):
        for kind in ("pre", "post"):
            m = rng.normal(size=(num_classes, num_classes))
            gram = m @ m.T
            gram /= np.linalg.norm(gram)
            rows += [
                (layer, kind, i, j, gram[i, j])
                for i in range(num_classes)
                for j in range(num_classes)
            ]
    eye = np.eye(num_classes) / np.sqrt(num_classes)
    rows += [
        (depth + 1, "output", i, j, eye[i, j])
        for i in range(num_classes)
        for j in range(num_classes)
    ]
    return pd.DataFrame(rows, columns=["layer", "kind", "row", "col", "value"])


def make_projection(depth: int = 3, num_classes: int = 3, n: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    rows = []
    for layer in range(1, depth + 1):
        for kind in ("pre", "post"):
            for sample in range(num_classes * n):
                label = sample // n
                rows.append((layer, kind, sample, label, label + rng.normal(), rng.normal()))
    return pd.DataFrame(rows, columns=["layer", "kind", "sample", "label", "x", "y"])


def make_singular_values(depth: int = 3) -> pd.DataFrame:
    spectrum = [1.0, 0.5, 2e-3, 1e-5, 0.0]
    rows = [
        (layer, kind, i, value, 3.0 * value)
        for layer in range(1, depth + 1)
        for kind in ("pre", "post")
        for i, value in enumerate(spectrum)
    ]
    return pd.DataFrame(rows, columns=["layer", "kind", "index", "value", "raw"])


def walk(spec: object) -> Iterator[dict]:
    """Every dict inside a Vega-Lite spec, depth first."""
    if isinstance(spec, dict):
        yield spec
        for value in spec.values():
            yield from walk(value)
    elif isinstance(spec, list):
        for value in spec:
            yield from walk(value)


def mark_type(view: dict) -> str | None:
    mark = view.get("mark")
    return mark.get("type") if isinstance(mark, dict) else mark


def _views(spec: object, data: str | None) -> Iterator[tuple[dict, str | None]]:
    """(view, name of the data set it sees) for every dict, data inherited from parents."""
    if isinstance(spec, dict):
        own = spec.get("data")
        if isinstance(own, dict) and "name" in own:
            data = own["name"]
        yield spec, data
        for value in spec.values():
            yield from _views(value, data)
    elif isinstance(spec, list):
        for value in spec:
            yield from _views(value, data)


def views_with_mark(spec: dict, mark: str) -> list[dict]:
    return [view for view, _ in _views(spec, None) if mark_type(view) == mark]


def rows_of(spec: dict, view: dict | None = None) -> list[dict]:
    """Rows of the data set a view sees (its own or inherited; default: the top level's)."""
    view = spec if view is None else view
    for candidate, name in _views(spec, None):
        if candidate is view:
            return spec["datasets"][name]
    raise LookupError("view not in spec")


def total_rows(spec: dict) -> int:
    return sum(len(rows) for rows in spec["datasets"].values())
