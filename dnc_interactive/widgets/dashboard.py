"""The live collapse dashboard: TensorFlow-Playground-style controls for the DUFM.

``Dashboard()`` renders controls (presets, data, model, regularization with the critical λ
marked, optimization, typed values), a transport (play / pause / step / reset, speed, step
counter, status line) and live charts (:class:`~dnc_interactive.widgets.live_chart.LiveChart`)
in any Jupyter front end. The engine is a
:class:`~dnc_interactive.widgets.session.TrainingSession`: training runs as one asyncio task on
the kernel's loop, so the controls stay responsive while it plays.

Its Python face (used by notebooks and tests)::

    from dnc_interactive.widgets import Dashboard
    dash = Dashboard("class imbalance: minority collapse", speed=0)
    dash.run(500)                      # blocking; play()/pause() in a live kernel
    dash.status, dash.history, dash.state
    Dashboard.from_state(dash.state)   # the same settings, e.g. from a shared link
"""

from __future__ import annotations

import asyncio
import base64
import html
import os
import tempfile
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import altair as alt
import ipywidgets as w
import pandas as pd

from dnc_interactive import charts, metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.training import Trainer
from dnc_interactive.validation import one_line
from dnc_interactive.widgets import controls as ctl
from dnc_interactive.widgets.live_chart import LiveChart, stream_spec
from dnc_interactive.widgets.presets import PRESETS, find_preset, get_preset
from dnc_interactive.widgets.session import TrainingSession
from dnc_interactive.widgets.state import Settings, decode_state, encode_state

#: Least seconds between two snapshot charts while playing (more if they are slow to build).
SNAPSHOT_SECONDS = 1.0
#: Snapshot charts may use at most this share of the wall time while playing.
SNAPSHOT_SHARE = 0.08
#: Seconds between a final update (pause, step, end of a run) and its snapshot chart.
SNAPSHOT_DELAY = 0.05
SNAPSHOTS = ("Gram", "features", "singular values", "output q")


def _clamp(widget: w.Widget, value: Any) -> Any:
    """``value`` within a slider's range (the settings may lie outside it; the slider then
    shows the nearest end)."""
    if isinstance(widget, w.FloatLogSlider):
        return min(max(value, widget.base**widget.min), widget.base**widget.max)
    if isinstance(widget, (w.IntSlider, w.FloatSlider)):
        return min(max(value, widget.min), widget.max)
    return value


class Dashboard:
    """The live DUFM dashboard.

    Args:
        preset: name of a preset (see :attr:`presets`) to start from.
        hide: names of controls or sections (``"data"``, ``"model"``, ``"regularization"``,
            ``"optimization"``, ``"advanced"``, ``"share"``, ``"snapshot"``, ``"preset"``) to
            leave out, for a reduced dashboard in a lesson.
        max_points: points kept per plotted series.
        **settings: any :class:`~dnc_interactive.config.DUFMConfig` field, plus ``lr``,
            ``optimizer``, ``guard`` and ``speed`` (steps per update, 0 = as fast as possible);
            they override the preset.

    Raises:
        ValueError: for an unknown preset or setting, or an invalid value (the config's message).
    """

    #: Names of the presets.
    presets: tuple[str, ...] = tuple(PRESETS)

    def __init__(
        self,
        preset: str | None = None,
        *,
        hide: Iterable[str] = (),
        max_points: int = 200,
        settings: Settings | None = None,
        **changes: Any,
    ) -> None:
        base = settings or (get_preset(preset).settings() if preset else Settings())
        start = base.replace(**changes) if changes else base
        self.session = TrainingSession(start)
        self.chart = LiveChart(max_points=max_points)
        self.controls = ctl.build_controls()
        self.controls["new_seed"] = w.Button(
            description="New seed",
            icon="random",
            tooltip="the same settings from a fresh initialisation (seed + 1)",
            layout=w.Layout(width="110px"),
        )
        self._syncing = False
        self._hidden = set(hide)
        self._snapshot_cost = 0.0
        self._next_snapshot = 0.0
        self._snapshot_handle: asyncio.TimerHandle | None = None
        self.snapshots_drawn = 0
        self.share_base_url: str | None = None
        self._wire()
        self.session.on_update.append(self._on_update)
        self.session.on_reset.append(self._on_reset)
        self.widget = self._layout()
        self._on_reset(self.session)
        self._sync_controls()
        self.session.flush()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_state(cls, text: str, **kwargs: Any) -> Dashboard:
        """A dashboard with the settings of a state string (or a URL / query holding one)."""
        return cls(settings=decode_state(text), **kwargs)

    @classmethod
    def from_query(cls, query: str | None = None, **kwargs: Any) -> Dashboard:
        """A dashboard for a URL query string (``state=...`` and/or ``preset=...``).

        Without ``query`` it reads the ``QUERY_STRING`` environment variable, which Voilà
        sets for the kernel of each page. A bad state or preset gives the default dashboard
        with the error in its status line instead of failing the page.
        """
        query = os.environ.get("QUERY_STRING", "") if query is None else query
        params = urllib.parse.parse_qs(query.lstrip("?"))
        error = None
        settings = None
        try:
            if params.get("preset"):
                settings = get_preset(params["preset"][-1]).settings()
            if params.get("state"):
                settings = decode_state(params["state"][-1])
        except Exception as exc:  # any link: a one-line error, never a traceback
            error, settings = one_line(exc), None
        try:
            dash = cls(settings=settings, **kwargs)
        except ValueError as exc:  # settings this machine cannot build (e.g. a CUDA link)
            if settings is None:
                raise
            error, dash = one_line(exc), cls(**kwargs)
        request_url = os.environ.get("VOILA_REQUEST_URL")
        if request_url:
            parts = urllib.parse.urlsplit(request_url)
            dash.share_base_url = urllib.parse.urlunsplit(parts._replace(query="", fragment=""))
            dash._refresh_share()
        if error:
            dash.session.error = error
            dash._refresh_status()
        return dash

    # ------------------------------------------------------------------ public API
    @property
    def settings(self) -> Settings:
        return self.session.settings

    @property
    def config(self) -> DUFMConfig:
        return self.session.settings.config

    @property
    def trainer(self) -> Trainer:
        return self.session.trainer

    @property
    def history(self) -> pd.DataFrame:
        """The current run's tidy history (step, layer, kind, metric, value)."""
        return self.session.history

    @property
    def status(self) -> str:
        """The status line: state, step, loss vs L*, gap, max NC1, verdict and notes."""
        return self.session.status

    @property
    def state(self) -> str:
        """The shareable state string of the current settings (see :func:`encode_state`)."""
        return encode_state(self.session.settings)

    @property
    def share_url(self) -> str | None:
        """A link that reopens these settings (only known inside Voilà / the app)."""
        if not self.share_base_url:
            return None
        return f"{self.share_base_url}?state={self.state}"

    @property
    def steps(self) -> int:
        return self.session.steps

    def set(self, **changes: Any) -> str:
        """Change settings as the controls would; returns ``"reset"``, ``"continue"`` or
        ``"none"``. Raises ``ValueError`` (the config's message) for an invalid value."""
        kind = self.session.update(**changes)
        self._sync_controls()
        self._refresh_status()
        return kind

    def apply_preset(self, name: str) -> None:
        """Load the preset ``name`` (the model is reset; the playback speed is kept)."""
        settings = get_preset(name).settings().replace(speed=self.settings.speed)
        self.session.set_settings(settings)
        self._sync_controls()
        self._refresh_status()

    def apply_state(self, text: str) -> None:
        """Load the settings of a state string (``ValueError`` if it is not valid)."""
        self.session.set_settings(decode_state(text))
        self._sync_controls()
        self._refresh_status()

    def play(self):
        """Start playing (a task on the running asyncio loop); see :meth:`TrainingSession.play`."""
        task = self.session.play()
        self._refresh_transport()
        return task

    def pause(self) -> None:
        self.session.pause()
        self._refresh_transport()

    def step(self, n: int | None = None) -> None:
        """Advance ``n`` steps now (default: one update's worth)."""
        self.session.step(n)
        self._refresh_transport()

    def reset(self) -> None:
        """A fresh model from the same settings (and seed)."""
        self.session.reset()
        self._refresh_transport()

    def new_seed(self) -> None:
        """Restart from a fresh initialisation: the same settings with the next seed."""
        try:
            self.session.new_seed()
        except ValueError as exc:
            self.session.error = str(exc)
        self._sync_controls()
        self._refresh_status()

    @property
    def diagnosis(self):
        """The run's diagnosis now (:mod:`dnc_interactive.diagnosis`); also in the status line."""
        return self.session.diagnosis

    def run(self, steps: int, *, until_collapsed: bool = False) -> Dashboard:
        """Blocking: train ``steps`` steps, updating the charts (with ``until_collapsed``, stop
        as soon as the gap and every layer's NC1 are below 1e-3). For scripts and tests."""
        self.session.run(steps, until_collapsed=until_collapsed)
        self._refresh_transport()
        return self

    def export_history(self, path: str | Path) -> Path:
        """Write the history as .csv or .parquet."""
        return self.session.export_history(path)

    def training_chart(self) -> alt.TopLevelMixin:
        """The static training figure (loss and gap above the per-layer metrics)."""
        h = self.history
        return alt.vconcat(charts.loss_chart(h), charts.metric_chart(h))

    def snapshot_chart(self, which: str | None = None, kind: str | None = None):
        """The snapshot chart ``which`` (one of ``"Gram"``, ``"features"``, ``"singular
        values"``, ``"output q"``; default: the selected one) of the current model."""
        which = which or self.controls["snapshot"].value
        kind = kind or self.controls["snapshot_kind"].value
        model = self.trainer.model
        if which == "Gram":
            return charts.gram_heatmap(metrics.gram_frame(model), kind=kind)
        if which == "features":
            return charts.projection_chart(metrics.projection_frame(model, 25), kind=kind)
        if which == "singular values":
            return charts.singular_value_chart(metrics.singular_value_frame(model))
        if which == "output q":
            frame = metrics.output_scale_frame(model)
            frame["q_theory"] = list(theory.optimal_q(self.config))
            return charts.output_scale_chart(frame)
        raise ValueError(f"which={which!r} is not valid: expected one of {SNAPSHOTS}")

    def save_charts(
        self, folder: str | Path, formats: Iterable[str] = ("png",), snapshots: Iterable[str] = ()
    ) -> list[Path]:
        """Write the training figure (and the named snapshot charts) into ``folder`` as
        ``training.<fmt>`` / ``<snapshot>.<fmt>`` for each format ("png", "svg", "html"),
        offline through vl-convert. Returns the paths written."""
        folder = Path(folder)
        figures = [("training", self.training_chart())]
        figures += [(s.replace(" ", "_"), self.snapshot_chart(s)) for s in snapshots]
        out = []
        for fmt in formats:
            fmt = fmt.lower().lstrip(".")
            if fmt not in ("png", "svg", "html"):
                raise ValueError(f"formats={fmt!r} is not valid: expected 'png', 'svg' or 'html'")
            for name, chart in figures:
                out.append(charts.save_chart(chart, folder / f"{name}.{fmt}"))
        return out

    def close(self) -> None:
        """Stop playing and close the widgets."""
        self.session.close()
        seen: set[int] = set()

        def close(widget: w.Widget) -> None:
            if id(widget) in seen:
                return
            seen.add(id(widget))
            for child in getattr(widget, "children", ()):
                close(child)
            widget.close()

        close(self.widget)
        for widget in self.controls.values():
            close(widget)

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"Dashboard({self.status})"

    # ------------------------------------------------------------------ session -> widgets
    def _on_reset(self, session: TrainingSession) -> None:
        self.chart.set_stream(stream_spec(self.config, self.trainer.optimal_loss))
        self._next_snapshot = 0.0

    def _on_update(self, session: TrainingSession, rows: list, final: bool) -> None:
        self.chart.push(rows)
        self._refresh_transport()
        if final:
            self._snapshot_soon()
        elif time.perf_counter() >= self._next_snapshot:
            self._refresh_snapshot()

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

    def _refresh_snapshot(self) -> None:
        self._snapshot_handle = None
        which = self.controls["snapshot"].value
        if which == "off" or "snapshot" in self._hidden:
            self.chart.set_snapshot(None) if self.chart.snapshot_spec is not None else None
            return
        t0 = time.perf_counter()
        try:
            chart = self.snapshot_chart(which)
        except ValueError as exc:  # e.g. a zero model has nothing finite to draw
            self.chart.set_snapshot(None)
            self.session.note = f"{which} chart: {exc}"
            return
        self.chart.set_snapshot(chart)
        self.snapshots_drawn += 1
        cost = time.perf_counter() - t0
        self._snapshot_cost = cost
        self._next_snapshot = time.perf_counter() + max(SNAPSHOT_SECONDS, cost / SNAPSHOT_SHARE)

    def _refresh_status(self) -> None:
        c = self.controls
        c["status"].value = ctl.status_html(self.session.status_parts())
        c["counter"].value = f"<b>step {self.session.steps}</b>"

    def _refresh_transport(self) -> None:
        play = self.controls["play"]
        if self.session.playing:
            play.description, play.icon, play.button_style = "Pause", "pause", "warning"
        else:
            play.description, play.icon, play.button_style = "Play", "play", "success"
        self._refresh_status()

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
        n, ratio, minority = ctl.imbalance_of(cfg)
        lam_w = max(cfg.lambda_Ws)
        values = {
            "num_classes": cfg.K,
            "n": n,
            "ratio": ratio,
            "depth": cfg.L,
            "width": max(cfg.widths),
            "activation": cfg.activation,
            "loss": cfg.loss,
            "lambda_H": cfg.lambda_H,
            "lambda_W": lam_w,
            "lr": s.lr,
            "optimizer": s.optimizer,
            "seed": cfg.seed,
            "guard": s.guard,
            "sizes_text": ctl.format_list(cfg.samples_per_class),
            "widths_text": ctl.format_list(cfg.width),
            "lambda_w_text": ctl.format_list(cfg.lambda_W),
            "init_scale": cfg.init_scale,
            "dtype": cfg.dtype,
            "speed": s.speed,
        }
        shown = ctl.class_sizes(cfg.K, c["n"].value, c["ratio"].value, c["minority"].value)
        if shown == cfg.samples_per_class:  # keep e.g. "2 minority classes" at ratio 1
            for name in ("n", "ratio", "minority"):
                values.pop(name, None)
        else:
            values["minority"] = min(minority, cfg.K - 1)
        self._syncing = True
        try:
            c["minority"].max = max(1, cfg.K - 1)
            for name, value in values.items():
                widget = c[name]
                value = _clamp(widget, value)
                if widget.value != value:
                    widget.value = value
            if cfg.lambda_H != lam_w or not cfg.equal_lambdas:
                c["tie"].value = False
            preset = find_preset(s)
            c["preset"].value = preset or ctl.CUSTOM
            lo, hi = ctl.RANGES["lambda"]
            if c["tie"].value and cfg.equal_lambdas:  # all λ move together
                crit_h = crit_w = cfg.lambda_H * theory.critical_scale(cfg)
            else:
                crit_h, crit_w = ctl.lambda_criticals(cfg)
            c["gauge_H"].value = ctl.lambda_gauge(cfg.lambda_H, crit_h, lo, hi)
            c["gauge_W"].value = ctl.lambda_gauge(lam_w, crit_w, lo, hi)
            c["preset_note"].value = (
                f"<div style='font-size:12px;max-width:370px;color:#333'>"
                f"{html.escape(PRESETS[preset].description)}</div>"
                if preset
                else ""
            )
        finally:
            self._syncing = False
        self._refresh_share()
        self._refresh_status()

    # ------------------------------------------------------------------ widgets -> session
    def _changes_for(self, name: str, value: Any) -> dict[str, Any]:
        c = self.controls
        cfg = self.config
        if name in ("num_classes", "n", "ratio", "minority"):
            K = value if name == "num_classes" else cfg.K
            sizes = ctl.class_sizes(
                K, c["n"].value, c["ratio"].value, min(c["minority"].value, K - 1)
            )
            out: dict[str, Any] = {"samples_per_class": sizes}
            if name == "num_classes":
                out["num_classes"] = value
            return out
        if name == "depth":
            out = {"depth": value}
            if isinstance(cfg.width, tuple):
                out["width"] = c["width"].value
            if isinstance(cfg.lambda_W, tuple):
                out["lambda_W"] = c["lambda_W"].value
            return out
        if name in ("lambda_H", "lambda_W"):
            if c["tie"].value:
                return {"lambda_H": value, "lambda_W": value}
            return {name: value}
        if name == "tie":
            return {"lambda_W": cfg.lambda_H} if value else {}
        if name == "sizes_text":
            parsed = ctl.parse_ints("samples_per_class", value)
            out = {"samples_per_class": parsed}
            if isinstance(parsed, list):
                out["num_classes"] = len(parsed)
            return out
        if name == "widths_text":
            return {"width": ctl.parse_ints("width", value)}
        if name == "lambda_w_text":
            return {"lambda_W": ctl.parse_floats("lambda_W", value)}
        return {name: value}

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

    def _on_export(self, kind: str) -> None:
        c = self.controls
        try:
            if kind in ("csv", "parquet"):
                with tempfile.TemporaryDirectory() as tmp:
                    path = self.export_history(Path(tmp) / f"dnc_history.{kind}")
                    data = path.read_bytes()
                files = [(f"dnc_history.{kind}", data)]
            else:
                files = []
                figures = [("training", self.training_chart())]
                if c["snapshot"].value != "off":
                    figures.append((c["snapshot"].value.replace(" ", "_"), self.snapshot_chart()))
                for name, chart in figures:
                    if kind == "png":
                        files.append((f"dnc_{name}.png", charts.chart_to_png_bytes(chart)))
                    else:
                        files.append((f"dnc_{name}.svg", charts.chart_to_svg(chart).encode()))
        except (ValueError, ImportError) as exc:
            self.session.error = f"export failed: {exc}"
            self._refresh_status()
            return
        mime = {
            "csv": "text/csv",
            "parquet": "application/octet-stream",
            "png": "image/png",
            "svg": "image/svg+xml",
        }[kind]
        links = [
            f"<a download='{name}' href='data:{mime};base64,{base64.b64encode(data).decode()}'>"
            f"{name}</a> ({len(data) / 1024:.0f} KB)"
            for name, data in files
        ]
        c["downloads"].value = "<div style='font-size:12px'>" + "<br>".join(links) + "</div>"

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
        c["apply_state"].on_click(self._on_apply_state)
        for kind in ("csv", "parquet", "png", "svg"):
            c[f"export_{kind}"].on_click(lambda _b, kind=kind: self._on_export(kind))
        c["snapshot"].observe(lambda _ch: self._refresh_snapshot(), names="value")
        c["snapshot_kind"].observe(lambda _ch: self._refresh_snapshot(), names="value")

    def _layout(self) -> w.Widget:
        c = self.controls
        hidden = self._hidden

        def keep(names: Iterable[str]) -> list[w.Widget]:
            return [c[n] for n in names if n not in hidden]

        sections = []
        titles = []
        for title, names in ctl.SECTIONS.items():
            if title in hidden:
                continue
            items = keep(names)
            if title == "share":
                items = [
                    w.HBox(keep(["state", "apply_state"])),
                    *keep(["share_link"]),
                    w.HBox(keep(["export_csv", "export_parquet"])),
                    w.HBox(keep(["export_png", "export_svg"])),
                    *keep(["downloads"]),
                ]
            if items:
                sections.append(w.VBox(items))
                titles.append(title)
        accordion = w.Accordion(children=sections, titles=tuple(titles))
        accordion.selected_index = (
            titles.index("regularization") if ("regularization" in titles) else None
        )
        transport = w.HBox(keep(["play", "step", "reset", "new_seed", "counter"]))
        top = [] if "preset" in hidden else [c["preset"], c["preset_note"]]
        snapshot = (
            []
            if "snapshot" in hidden
            else [
                w.HTML("<b style='font-size:12px'>snapshot of the current model</b>"),
                c["snapshot"],
                c["snapshot_kind"],
            ]
        )
        left = w.VBox(
            [*top, transport, *keep(["speed", "status"]), *snapshot, accordion],
            layout=w.Layout(width="390px", min_width="390px"),
        )
        header = w.HTML(
            "<div style='font-size:15px'><b>Deep neural collapse, live</b> — gradient descent on"
            " the deep unconstrained features model (Súkeník, Mondelli &amp; Lampert, NeurIPS"
            " 2023). Press <b>Play</b>: the features of every layer collapse to their class means"
            " and the loss meets the optimum L* the theorem predicts.</div>"
        )
        # wide enough for the curves side by side; in a narrow notebook it wraps below
        self.chart.layout = w.Layout(flex="1 1 820px", min_width="820px", overflow="auto")
        body = w.HBox(
            [left, self.chart], layout=w.Layout(flex_flow="row wrap", align_items="flex-start")
        )
        root = w.VBox([header, body])
        root.add_class("dnc-dashboard")
        return root


__all__ = ["Dashboard", "SNAPSHOTS"]
