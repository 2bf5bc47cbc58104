"""The rows a stream view holds: which history rows are drawn, and at most how many per
series (:class:`SeriesStore`), so a view holds a bounded number of points however long a
run goes on."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

#: Points kept per streamed series (layer, kind, metric).
DEFAULT_MAX_POINTS = 200

_MODEL_METRICS = ("loss", "fit", "reg", "relative_gap")
_STREAMED = {
    "model": {*_MODEL_METRICS, "optimal_loss", "restart"},
    "event": {"diagnosis", "collapsed"},
    "pre": {"nc1", "rank"},
    "post": {"nc1", "nc2_orth", "rank"},
    "weight": {"nc3"},
}


def is_streamed(kind: str, metric: str) -> bool:
    """Whether a history row of this kind and metric is drawn by :func:`stream_spec`."""
    if kind == "output":
        return metric.startswith("q_")
    return metric in _STREAMED.get(kind, ())


def _clean(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


class SeriesStore:
    """The rows a stream view holds, at most ``max_points`` per (layer, kind, metric) series.

    :meth:`add` returns the rows to insert and the ids to remove; when a series outgrows its
    budget every other point is dropped (the first and the latest are always kept), so the
    newest stretch stays dense and old stretches thin out.
    """

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS) -> None:
        if not (isinstance(max_points, int) and max_points >= 4):
            raise ValueError(f"max_points={max_points!r} is not valid: expected an int >= 4")
        self.max_points = max_points
        self.series: dict[tuple[int, str, str], list[list]] = {}
        self.next_id = 0

    def clear(self) -> None:
        self.series = {}

    def __len__(self) -> int:
        return sum(len(s) for s in self.series.values())

    def add(self, rows: Iterable[Sequence]) -> tuple[list[list], list[int]]:
        """Store history rows ``(step, layer, kind, metric, value)`` that are streamed.

        Returns ``(inserted, removed_ids)``; inserted rows are ``[id, step, layer, kind,
        metric, value]`` with non-finite values as None.
        """
        inserted: list[list] = []
        touched: set[tuple[int, str, str]] = set()
        for step, layer, kind, metric, value in rows:
            if not is_streamed(kind, metric):
                continue
            record = [self.next_id, int(step), int(layer), kind, metric, _clean(value)]
            self.next_id += 1
            key = (int(layer), kind, metric)
            self.series.setdefault(key, []).append(record)
            inserted.append(record)
            touched.add(key)
        removed: set[int] = set()
        for key in touched:
            series = self.series[key]
            if len(series) > self.max_points:
                keep = [series[0], *series[2:-1:2], series[-1]]
                kept = {id(r) for r in keep}
                removed.update(r[0] for r in series if id(r) not in kept)
                self.series[key] = keep
        new_ids = {r[0] for r in inserted}
        if removed:
            inserted = [r for r in inserted if r[0] not in removed]
        return inserted, sorted(removed - new_ids)

    def rows(self) -> list[list]:
        """Every row held, in insertion order."""
        out = [r for s in self.series.values() for r in s]
        out.sort(key=lambda r: r[0])
        return out


__all__ = ["DEFAULT_MAX_POINTS", "SeriesStore", "is_streamed"]
