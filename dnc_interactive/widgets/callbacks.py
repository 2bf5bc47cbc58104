"""The dashboard's widget callbacks: controls to settings, the transport buttons, the
preset and state boxes, the export buttons and the keys, and the wiring of them all.

Every callback turns an error into a one-line note in the status line: nothing a student
types or clicks raises into the page.
"""

from __future__ import annotations

import html
from typing import Any

import altair as alt
import ipywidgets as w

from dnc_interactive.validation import one_line
from dnc_interactive.widgets import controls as ctl
from dnc_interactive.widgets import exports
from dnc_interactive.widgets.dashboard_base import DashboardBase
from dnc_interactive.widgets.presets import PRESETS, find_preset


class WidgetCallbacks(DashboardBase):
    """What the dashboard's widgets do when used (a mixin of the dashboard)."""

    def _changes_for(self, name: str, value: Any) -> dict[str, Any]:
        return ctl.changes_for(name, value, self.controls, self.config)

    def _on_control(self, name: str, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        try:
            changes = self._changes_for(name, change["new"])
            if changes:
                self.session.update(**changes)
        except Exception as exc:  # anything typed: a one-line error, the run goes on
            self.session.error = one_line(exc)
            self._refresh_status()
            return
        try:
            self._sync_controls()
        except Exception as exc:  # a gauge or chart that cannot be drawn: said, not raised
            self._syncing = False
            self.session.error = one_line(exc)
            self._refresh_status()

    def _on_preset(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] == ctl.CUSTOM:
            return
        try:
            self.apply_preset(change["new"])
        except Exception as exc:
            self.session.error = one_line(exc)
            self._refresh_status()

    def _on_play(self, _button: Any) -> None:
        if self.session.playing:
            self.pause()
        else:
            try:
                self.play()
            except Exception as exc:
                self.session.error = one_line(exc)
                self._refresh_transport()

    def _on_apply_state(self, _button: Any) -> None:
        try:
            self.apply_state(self.controls["state"].value)
        except Exception as exc:  # any pasted text: a one-line error, the run goes on
            self.session.error = one_line(exc)
            self._refresh_status()

    def _export_figures(self) -> list[tuple[str, alt.TopLevelMixin]]:
        """The charts the PNG / SVG buttons export: the training figure and the snapshot."""
        figures = [("training", self.training_chart())]
        which = self.controls["snapshot"].value
        if self.layout == "lecture":
            which = "Gram"
        if which != "off":
            figures.append((which.replace(" ", "_"), self.snapshot_chart(which)))
        return figures

    def _on_export(self, kind: str) -> None:
        try:
            files = exports.export_files(kind, self.export_history, self._export_figures)
        except (ValueError, ImportError) as exc:
            self.session.error = f"export failed: {exc}"
            self._refresh_status()
            return
        self.controls["downloads"].value = exports.download_links(kind, files)

    def _on_key(self, action: str) -> None:
        """A key press from :class:`~dnc_interactive.widgets.shortcuts.Shortcuts`: Space is
        a click on Play / Pause, → one on Step."""
        if action == "play":
            self._on_play(None)
        elif action == "step":
            try:
                self.step()
            except Exception as exc:  # a key press never raises into the page
                self.session.error = one_line(exc)
                self._refresh_status()

    def _wire(self) -> None:
        c = self.controls
        c["preset_note"] = w.HTML()
        for name in ctl.SETTING_CONTROLS:
            c[name].observe(lambda ch, name=name: self._on_control(name, ch), names="value")
        c["preset"].observe(self._on_preset, names="value")
        c["play"].on_click(self._on_play)
        c["step"].on_click(lambda _b: self.step())
        c["reset"].on_click(lambda _b: self.reset())
        c["new_seed"].on_click(lambda _b: self.new_seed())
        c["tour"].on_click(lambda _b: self.tour.start())
        c["apply_state"].on_click(self._on_apply_state)
        for kind in ("csv", "parquet", "png", "svg"):
            c[f"export_{kind}"].on_click(lambda _b, kind=kind: self._on_export(kind))
        c["snapshot"].observe(lambda _ch: self._refresh_snapshot(), names="value")
        c["snapshot_kind"].observe(lambda _ch: self._refresh_snapshot(), names="value")
        c["clouds"].observe(lambda _ch: self._on_clouds(), names="value")
        if self.layout == "lecture":
            c["snapshot_kind"].observe(lambda _ch: self._on_clouds(), names="value")
        c["auto_pause"].observe(self._on_auto_pause, names="value")
        c["replay"].observe(self._on_replay, names="value")
        c["live"].on_click(lambda _b: self._leave_replay())

    def _on_auto_pause(self, change: dict[str, Any]) -> None:
        self.session.auto_pause = bool(change["new"])

    def _refresh_share(self) -> None:
        c = self.controls
        c["state"].value = self.state
        url = self.share_url
        c["share_link"].value = (
            f"<a href='{html.escape(url)}' target='_blank'>link to these settings</a>"
            if url
            else "<span style='color:#555'>copy the state string; paste it here or pass it to"
            " Dashboard.from_state(...)</span>"
        )

    def _sync_controls(self) -> None:
        """Show the current settings on every control (without triggering their handlers)."""
        s = self.session.settings
        cfg = s.config
        c = self.controls
        lam_w = max(cfg.lambda_Ws)
        values = ctl.control_values(s)
        minority = values.pop("minority")
        shown = ctl.class_sizes(cfg.K, c["n"].value, c["ratio"].value, c["minority"].value)
        if shown == cfg.samples_per_class:  # keep e.g. "2 minority classes" at ratio 1
            for name in ("n", "ratio", "minority"):
                values.pop(name, None)
        else:
            values["minority"] = minority
        self._syncing = True
        try:
            c["minority"].max = max(1, cfg.K - 1)
            for name, value in values.items():
                widget = c[name]
                value = ctl.clamp(widget, value)
                if widget.value != value:
                    widget.value = value
            if cfg.lambda_H != lam_w or not cfg.equal_lambdas:
                c["tie"].value = False
            preset = find_preset(s)
            c["preset"].value = preset or ctl.CUSTOM
            view = self.theory
            c["gauge_H"].value = view.gauge_H
            c["gauge_W"].value = view.gauge_W
            c["preset_note"].value = (
                f"<div style='font-size:12px;max-width:330px;color:#333'>"
                f"{html.escape(PRESETS[preset].description)}</div>"
                if preset
                else ""
            )
        finally:
            self._syncing = False
        self._refresh_share()
        self._refresh_status()


__all__ = ["WidgetCallbacks"]
