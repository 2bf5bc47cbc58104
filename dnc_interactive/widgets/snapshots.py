"""The dashboard's charts of the current model and its figures: the snapshot slot (the
Gram heat maps, projections, singular values, output scales; the lecture layout's Gram), drawn
at most every :data:`SNAPSHOT_SECONDS` and at most :data:`SNAPSHOT_SHARE` of the wall time
while playing, and the static training figure for the exports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import altair as alt

from dnc_interactive.widgets import exports
from dnc_interactive.widgets import view_model as vm
from dnc_interactive.widgets.dashboard_base import DashboardBase
from dnc_interactive.widgets.live_chart import chart_config, informative_metrics
from dnc_interactive.widgets.theory_links import SNAPSHOT_PANELS, with_chart_info

#: Least seconds between two snapshot charts while playing (more if they are slow to build).
SNAPSHOT_SECONDS = 1.0
#: Snapshot charts may use at most this share of the wall time while playing.
SNAPSHOT_SHARE = 0.08
#: Seconds between a final update (pause, step, end of a run) and its snapshot chart.
SNAPSHOT_DELAY = 0.05
#: The metrics of the exported training figure, before those trivially 0 for K are dropped.
FIGURE_METRICS: tuple[str, ...] = ("nc1", "nc2_orth", "nc2_etf", "nc3")


class Snapshots(DashboardBase):
    """The snapshot chart and the figures of a dashboard (a mixin of the dashboard)."""

    def training_chart(self) -> alt.TopLevelMixin:
        """The static training figure (loss and gap above the per-layer metrics; metrics that
        are identically 0 for this K are left out, the rank added for K > 2)."""
        chosen = informative_metrics(self.config.K, FIGURE_METRICS)
        if self.config.K > 2:
            chosen.append("rank")
        return exports.training_chart(self.history, chosen)

    def snapshot_chart(self, which: str | None = None, kind: str | None = None):
        """The snapshot chart ``which`` (one of ``"Gram"``, ``"features"``, ``"singular
        values"``, ``"output q"``; default: the selected one) of the current model, with the
        theory drawn in (the optimum's own Gram as the ideal panel, q*_k on the output
        scales)."""
        which = which or self.controls["snapshot"].value
        kind = kind or self.controls["snapshot_kind"].value
        return vm.snapshot_chart(self.trainer.model, which, kind, self.theory)

    def save_charts(
        self, folder: str | Path, formats: Iterable[str] = ("png",), snapshots: Iterable[str] = ()
    ) -> list[Path]:
        """Write the training figure (and the named snapshot charts) into ``folder`` as
        ``training.<fmt>`` / ``<snapshot>.<fmt>`` for each format ("png", "svg", "html"),
        offline through vl-convert. Returns the paths written."""
        figures = [("training", self.training_chart())]
        figures += [(s.replace(" ", "_"), self.snapshot_chart(s)) for s in snapshots]
        return exports.save_charts(folder, figures, formats)

    def _snapshot_soon(self) -> None:
        """Draw the snapshot after the current message is handled (a Pause click answers
        first), or now when no event loop is running (blocking calls)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._refresh_snapshot()
            return
        if self._snapshot_handle is not None:
            self._snapshot_handle.cancel()
        self._snapshot_handle = loop.call_later(SNAPSHOT_DELAY, self._refresh_snapshot)

    def _snapshot_spec(self) -> dict[str, Any] | None:
        """The snapshot the live chart shows now (None: none), in the layout's style."""
        if self.layout == "lecture":
            kind = self.controls["snapshot_kind"].value
            return vm.lecture_snapshot(self.trainer.model, kind, self.theory)
        which = self.controls["snapshot"].value
        if which == "off" or "snapshot" in self._hidden:
            return None
        spec = self.snapshot_chart(which).to_dict(validate=False)
        spec = with_chart_info(spec, SNAPSHOT_PANELS[which])
        spec["config"] = {**spec.get("config", {}), **chart_config("default")}
        return spec

    def _refresh_snapshot(self) -> None:
        self._snapshot_handle = None
        t0 = time.perf_counter()
        try:
            spec = self._snapshot_spec()
        except ValueError as exc:  # e.g. a zero model has nothing finite to draw
            self.chart.set_snapshot(None)
            self.session.note = f"snapshot chart: {exc}"
            return
        if spec is None:
            self.chart.set_snapshot(None) if self.chart.snapshot_spec is not None else None
            return
        self.chart.set_snapshot(spec)
        self.snapshots_drawn += 1
        cost = time.perf_counter() - t0
        self._snapshot_cost = cost
        self._next_snapshot = time.perf_counter() + max(SNAPSHOT_SECONDS, cost / SNAPSHOT_SHARE)


__all__ = ["FIGURE_METRICS", "SNAPSHOT_DELAY", "SNAPSHOT_SECONDS", "SNAPSHOT_SHARE", "Snapshots"]
