"""The dashboard's live feature clouds and its replay scrubber (theory §3.2).

The clouds: a fixed projection of the chosen layers per run
(:class:`~dnc_interactive.widgets.probe.CloudProjector`), embedded once its axes are known,
then redrawn from the session's probes. The replay: moving the "replay step" slider pauses
the run and shows the curves up to that step, the status line from the history there and the
clouds from the nearest earlier snapshot kept while playing (at most :data:`CLOUD_HISTORY`).
"""

from __future__ import annotations

from typing import Any

from dnc_interactive.validation import one_line
from dnc_interactive.widgets import controls as ctl
from dnc_interactive.widgets import probe as probes
from dnc_interactive.widgets.dashboard_base import DashboardBase
from dnc_interactive.widgets.live_chart import cloud_spec

#: Cloud snapshots kept for the replay scrubber (older ones thinned, first and last kept).
CLOUD_HISTORY = 240


class CloudsAndReplay(DashboardBase):
    """The feature clouds and the replay of a dashboard (a mixin of the dashboard)."""

    def replay(self, step: int | None) -> None:
        """Show the recorded run at ``step`` (pausing it): the curves up to there, the status
        line from the history and the clouds from the nearest earlier snapshot; ``None`` (or
        the latest step) returns to the live view."""
        if step is None or step >= self.steps:
            self._leave_replay()
            return
        if not (isinstance(step, int) and not isinstance(step, bool) and step >= 0):
            raise ValueError(f"step={step!r} is not valid: expected an int >= 0")
        if self.session.playing:
            self.pause()
        self.replaying = step
        self.chart.show_upto(step)
        frame = self._cloud_frame(step)
        if frame is not None:
            self.chart.update_clouds(frame)
        c = self.controls
        c["status"].value = ctl.status_html(self._replay_parts(step))
        c["live"].layout.display = None
        if c["replay"].value != step:
            self._syncing = True
            try:
                c["replay"].value = min(step, c["replay"].max)
            finally:
                self._syncing = False

    def _cloud_choice(self) -> list[tuple[int, str]]:
        L = self.config.L
        if self.layout == "lecture":
            kind = self.controls["snapshot_kind"].value
            return [(L, kind if L > 1 else "post")]
        return ctl.cloud_panels(self.controls["clouds"].value, L)

    def _new_projector(self) -> None:
        """A new projection for the chosen cloud panels (a new run, or another choice); the
        cloud slot is re-embedded once its axes are known."""
        session = self.session
        projector = probes.CloudProjector(
            self.config, self.trainer.model.labels, self._cloud_choice()
        )
        session.projector = projector
        self._drawn_probe = None
        self.chart.set_clouds(None)
        self.cloud_history = []
        if projector.domains is not None:
            self._embed_clouds(projector)

    def _embed_clouds(self, projector: probes.CloudProjector) -> None:
        lecture = self.layout == "lecture"
        if lecture and not projector.panels:
            return
        spec = cloud_spec(
            self.config.K,
            self.config.L,
            projector.panels,
            projector.domains or [],
            projector.target_rows(),
            style=self.layout,
            singular_values=not lecture,
        )
        self.chart.set_clouds(spec)

    def _draw_probe(self) -> None:
        """Draw the session's latest probe in the cloud slot (once per new probe)."""
        p = self.session.probe
        projector = self.session.projector
        if p is None or p is self._drawn_probe or projector is None:
            return
        if p.panels != tuple(projector.panels):
            return  # measured with a previous choice of panels
        if self.chart.clouds_spec is None:
            if projector.domains is None:
                return
            self._embed_clouds(projector)
            if self.chart.clouds_spec is None:
                return
        self._drawn_probe = p
        data = p.datasets()
        self.chart.update_clouds(data)
        self.clouds_drawn += 1
        self._keep_cloud(p.step, data)

    def _keep_cloud(self, step: int, data: dict[str, Any]) -> None:
        """Keep a cloud snapshot for the replay (at most :data:`CLOUD_HISTORY`, thinned)."""
        h = self.cloud_history
        if h and h[-1][0] == step:
            h[-1] = (step, data)
            return
        h.append((step, data))
        if len(h) > CLOUD_HISTORY:
            self.cloud_history = [h[0], *h[2:-1:2], h[-1]]

    def _cloud_frame(self, step: int) -> dict[str, Any] | None:
        """The kept cloud snapshot at or just before ``step`` (the first one if none is)."""
        best = None
        for s, data in self.cloud_history:
            if s <= step or best is None:
                best = data
            if s > step:
                break
        return best

    def _replay_parts(self, step: int) -> dict[str, str]:
        """The status line of the replay at ``step``, from the recorded history."""
        hist = self.history
        model = hist[(hist["kind"] == "model") & (hist["step"] <= step)]
        values = {
            m: float(g.sort_values("step")["value"].iloc[-1]) for m, g in model.groupby("metric")
        }
        at = int(model["step"].max()) if len(model) else 0
        numbers = f"step {at} (recorded) · loss {values.get('loss', float('nan')):.6g}"
        if "relative_gap" in values:
            numbers += f" · gap {values['relative_gap']:.2e}"
        feats = hist[(hist["metric"] == "nc1") & (hist["step"] <= step)]
        if len(feats):
            last = feats[feats["step"] == feats["step"].max()]
            numbers += f" · max NC1 {float(last['value'].max()):.2e}"
        return {
            "state": "replay",
            "numbers": numbers,
            "verdict": f"replaying the recorded run at step {step} of {self.steps}",
            "solution": "",
            "notes": "move the slider to the end, or press live / Play, to return",
        }

    def _leave_replay(self) -> None:
        """Back from a replay to the live view (every row, the latest clouds)."""
        if self.replaying is None:
            return
        self.replaying = None
        self.chart.show_upto(None)
        if self.cloud_history:
            self.chart.update_clouds(self.cloud_history[-1][1])
        self.controls["live"].layout.display = "none"
        self._sync_replay()
        self._refresh_status()

    def _sync_replay(self) -> None:
        """The replay slider spans the recorded steps and, when live, sits at the latest."""
        if self.replaying is not None:
            return
        r = self.controls["replay"]
        steps = self.steps
        if r.max != steps or r.value != steps:
            self._syncing = True
            try:
                if steps > r.max:
                    r.max = steps
                    r.value = steps
                else:
                    r.value = steps
                    r.max = steps
            finally:
                self._syncing = False

    def _on_clouds(self) -> None:
        """Another choice of cloud panels: a new projection, measured and drawn now when
        the run is not playing (else at the next update)."""
        try:
            self._new_projector()
            if not self.session.playing:
                self.session.measure()
                self._draw_probe()
        except Exception as exc:  # a choice never breaks the page
            self.session.error = one_line(exc)
            self._refresh_status()

    def _on_replay(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        try:
            self.replay(int(change["new"]))
        except Exception as exc:
            self.session.error = one_line(exc)
            self._refresh_status()


__all__ = ["CLOUD_HISTORY", "CloudsAndReplay"]
