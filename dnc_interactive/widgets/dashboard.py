"""The live collapse dashboard: TensorFlow-Playground-style controls for the DUFM.

``Dashboard()`` renders controls (presets, data, model, regularization with the critical λ
marked, optimization, typed values), a transport (play / pause / step / reset, speed, step
counter, status line) and live charts (:class:`~dnc_interactive.widgets.live_chart.LiveChart`)
in any Jupyter front end. The engine is a
:class:`~dnc_interactive.widgets.session.TrainingSession`: training runs as one asyncio task on
the kernel's loop, so the controls stay responsive while it plays.

The dashboard is the coordinator: the widget trees are built by
:mod:`~dnc_interactive.widgets.layout` (``layout="default"`` for a desk, ``"lecture"`` for a
projector), the numbers the status line and charts show come from
:mod:`~dnc_interactive.widgets.view_model` (theory once per config, the status once per
update), and the files from :mod:`~dnc_interactive.widgets.exports`. Keys: Space plays or
pauses, → steps (:mod:`~dnc_interactive.widgets.shortcuts`).

Beyond the training curves (theory §3, §5, §2.3):

* **live feature clouds** of the chosen layers (the "feature clouds" control; the lecture
  layout's features panel): every tracked sample in a fixed 2-D projection, class means as
  diamonds and the optimum's target faintly (:mod:`~dnc_interactive.widgets.probe`), at most
  :data:`~dnc_interactive.widgets.probe.CLOUD_POINTS` points, redrawn while playing (at most
  every :data:`~dnc_interactive.widgets.session.PROBE_SECONDS`, measured on the worker for
  big models), next to the singular values of every layer's class means;
* the **solution type** in the status line (DNC / low-rank (rank r) / in between / zero,
  with the rank of M̃_l and M_l per layer) and, for K = r(r−1)/2 > 2, the best known
  low-rank loss (the SRG construction, its optimised family computed once per config on a
  background thread) as a purple rule beside L* on the loss chart;
* **auto-pause** ("pause when collapsed", off by default so that a run plays on until
  paused, as before): the play task stops at the first update with gap and NC1 < 1e-3; that
  first collapse is a green rule on the loss chart in any case;
* a **replay scrubber** ("replay step"): moving it pauses the run and redraws the training
  curves up to that step, the status line from the history at that step and the feature
  clouds and singular values from the snapshots kept while playing (the nearest earlier one;
  at most :data:`CLOUD_HISTORY` of them, thinned like the curves). The Gram / snapshot chart
  does not replay (it is of the current model). "live", Play, Step or Reset return to now.

Its Python face (used by notebooks and tests)::

    from dnc_interactive.widgets import Dashboard
    dash = Dashboard("class imbalance: minority collapse", speed=0)
    Dashboard(layout="lecture")        # four large panels for a lecture hall
    dash.run(500)                      # blocking; play()/pause() in a live kernel
    dash.status, dash.history, dash.state
    Dashboard.from_state(dash.state)   # the same settings, e.g. from a shared link
"""

from __future__ import annotations

import asyncio
import os
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd

from dnc_interactive.config import DUFMConfig
from dnc_interactive.training import Trainer
from dnc_interactive.validation import one_line
from dnc_interactive.widgets import controls as ctl
from dnc_interactive.widgets import layout as layouts
from dnc_interactive.widgets import probe as probes
from dnc_interactive.widgets import view_model as vm
from dnc_interactive.widgets.callbacks import WidgetCallbacks
from dnc_interactive.widgets.live_chart import (
    LiveChart,
    panels_for,
    stream_spec,
)
from dnc_interactive.widgets.presets import PRESETS, get_preset
from dnc_interactive.widgets.replay import CLOUD_HISTORY, CloudsAndReplay
from dnc_interactive.widgets.session import TrainingSession
from dnc_interactive.widgets.shortcuts import Shortcuts
from dnc_interactive.widgets.snapshots import (
    FIGURE_METRICS,
    SNAPSHOT_DELAY,
    SNAPSHOT_SECONDS,
    SNAPSHOT_SHARE,
    Snapshots,
)
from dnc_interactive.widgets.state import Settings, decode_state, encode_state
from dnc_interactive.widgets.tour import Tour
from dnc_interactive.widgets.view_model import SNAPSHOTS

#: Environment variable naming the layout of :meth:`Dashboard.from_query`'s dashboards when
#: neither the call nor the URL names one (``dnc-interactive app --lecture`` sets it).
LAYOUT_ENV = "DNC_INTERACTIVE_LAYOUT"


class Dashboard(WidgetCallbacks, CloudsAndReplay, Snapshots):
    """The live DUFM dashboard.

    Args:
        preset: name of a preset (see :attr:`presets`) to start from.
        hide: names of controls or sections (``"data"``, ``"model"``, ``"regularization"``,
            ``"optimization"``, ``"advanced"``, ``"share"``, ``"snapshot"``, ``"preset"``) to
            leave out, for a reduced dashboard in a lesson.
        max_points: points kept per plotted series.
        layout: ``"default"`` (controls beside the charts, for a desk) or ``"lecture"`` (one
            strip of controls above four large panels with ≥ 18 px fonts, for a projector);
            see :mod:`~dnc_interactive.widgets.layout`.
        tour: open the guided tour (:mod:`~dnc_interactive.widgets.tour`) at its first step;
            the "Tour" button opens it at any time.
        **settings: any :class:`~dnc_interactive.config.DUFMConfig` field, plus ``lr``,
            ``optimizer``, ``guard`` and ``speed`` (steps per update, 0 = as fast as possible);
            they override the preset.

    Raises:
        ValueError: for an unknown preset or setting, an invalid value (the config's message)
            or an unknown ``layout``.
    """

    #: Names of the presets.
    presets: tuple[str, ...] = tuple(PRESETS)

    def __init__(
        self,
        preset: str | None = None,
        *,
        hide: Iterable[str] = (),
        max_points: int = 200,
        layout: str = "default",
        settings: Settings | None = None,
        tour: bool = False,
        **changes: Any,
    ) -> None:
        self.layout = layouts.check_layout(layout)
        base = settings or (get_preset(preset).settings() if preset else Settings())
        start = base.replace(**changes) if changes else base
        self.session = TrainingSession(start)
        self.chart = LiveChart(max_points=max_points)
        self.controls = ctl.build_controls()
        self.controls["new_seed"] = w.Button(
            description="Restart",
            icon="random",
            tooltip="restart from a fresh initialisation: the same settings, seed + 1",
            layout=w.Layout(width="100px"),
        )
        self.controls["tour"] = w.Button(
            description="Tour",
            icon="graduation-cap",
            tooltip="a guided tour in five steps: collapse, depth, the λ threshold, imbalance,"
            " beyond two classes",
            layout=w.Layout(width="80px"),
        )
        self.shortcuts = Shortcuts(self._on_key)
        self._syncing = False
        self._hidden = set(hide)
        self._snapshot_cost = 0.0
        self._next_snapshot = 0.0
        self._snapshot_handle: asyncio.TimerHandle | None = None
        self.snapshots_drawn = 0
        self.clouds_drawn = 0
        self.cloud_history: list[tuple[int, dict[str, Any]]] = []
        self.replaying: int | None = None
        self._drawn_probe: probes.Probe | None = None
        self._lowrank: probes.LowRankReference | None = None
        self.share_base_url: str | None = None
        self._wire()
        self.session.on_update.append(self._on_update)
        self.session.on_reset.append(self._on_reset)
        self.session.on_objective.append(self._on_objective)
        self.tour = Tour(self)
        self.widget = layouts.build(
            self.layout, self.controls, self.chart, self.shortcuts, self._hidden, self.tour.widget
        )
        self._on_reset(self.session)
        self._sync_controls()
        self.session.flush()
        if tour:
            self.tour.start()

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
        with the error in its status line instead of failing the page. The layout is the
        ``layout`` argument, else the query's ``layout=...``, else the environment variable
        ``DNC_INTERACTIVE_LAYOUT`` (an unknown name falls back to the default layout, said in
        the status line). ``tour=1`` opens the guided tour.
        """
        query = os.environ.get("QUERY_STRING", "") if query is None else query
        params = urllib.parse.parse_qs(query.lstrip("?"))
        layout_error = None
        if "layout" not in kwargs:
            wanted = (params.get("layout") or [os.environ.get(LAYOUT_ENV) or "default"])[-1]
            try:
                kwargs["layout"] = layouts.check_layout(wanted)
            except ValueError as exc:
                layout_error = one_line(exc)
        if "tour" not in kwargs and params.get("tour"):
            kwargs["tour"] = params["tour"][-1].lower() not in ("", "0", "false", "no")
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
        error = "; ".join(e for e in (error, layout_error) if e)
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
        self._leave_replay()
        task = self.session.play()
        self._refresh_transport()
        return task

    def pause(self) -> None:
        self.session.pause()
        self._refresh_transport()

    def step(self, n: int | None = None) -> None:
        """Advance ``n`` steps now (default: one update's worth)."""
        self._leave_replay()
        self.session.step(n)
        self._refresh_transport()

    def reset(self) -> None:
        """Rewind: a fresh model from the same settings and seed, i.e. exactly the same
        initial weights as the current run (the same numbers step for step)."""
        self.session.reset()
        self._refresh_transport()

    def rewind(self) -> None:
        """Rewind to the same initialisation (the Rewind button; see :meth:`reset`)."""
        self.reset()

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

    @property
    def solution(self) -> str:
        """The solution type now: "DNC", "low-rank (rank r)", "in between" or "zero" (theory
        §5; see :func:`~dnc_interactive.widgets.probe.solution_type`)."""
        return self.session.solution

    @property
    def lowrank(self) -> probes.LowRankReference | None:
        """The loss chart's low-rank reference (theory §5), None for K = 2."""
        return self._lowrank

    @property
    def cloud_panels(self) -> list[tuple[int, str]]:
        """The (layer, kind) panels of the live feature clouds."""
        projector = self.session.projector
        return list(projector.panels) if projector is not None else []

    def set_auto_pause(self, on: bool = True) -> None:
        """Pause playing at the run's first collapse (gap and NC1 < 1e-3), or not."""
        self.controls["auto_pause"].value = bool(on)

    def export_history(self, path: str | Path) -> Path:
        """Write the history as .csv or .parquet."""
        return self.session.export_history(path)

    @property
    def theory(self) -> vm.TheoryView:
        """What the theory says about the current config (L*, q*_k, the optimum's Gram, the
        gap's round-off level), computed once per config."""
        return vm.theory_view(self.config, self.controls["tie"].value)

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
        close(self.shortcuts)

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"Dashboard({self.status})"

    # ------------------------------------------------------------------ session -> widgets
    def _on_reset(self, session: TrainingSession) -> None:
        view = self.theory
        lecture = self.layout == "lecture"
        cfg = self.config
        ref = None
        if cfg.K > 2 and cfg.loss == "mse" and cfg.activation == "relu":
            ref = probes.lowrank_reference(cfg)
        self._lowrank = ref
        spec = stream_spec(
            cfg,
            self.trainer.optimal_loss,
            q_star=view.q_star,
            roundoff=view.roundoff,
            panels=panels_for(cfg, lecture),
            style=self.layout,
            lowrank=(ref.label, ref.loss) if ref is not None and ref.label else None,
        )
        self.chart.set_stream(spec)
        self._next_snapshot = 0.0
        self.replaying = None
        self.cloud_history = []
        self.controls["live"].layout.display = "none"
        self._new_projector()

    def _on_objective(self, session: TrainingSession) -> None:
        """λ changed and the run goes on: the charts are redrawn for the new theory (L*, q*_k,
        the clouds' target) and keep the whole history (L* jumps at the change)."""
        self._on_reset(session)
        self.chart.push(session.history.itertuples(index=False, name=None))

    def _check_lowrank(self) -> None:
        """Lower the loss chart's low-rank rule once the optimised family is known."""
        ref = self._lowrank
        if ref is None or ref.final or not ref.label:
            return
        new = probes.lowrank_reference(self.config)
        if new.final or new.loss != ref.loss:
            self._lowrank = new
            self.chart.set_stream_data({"lowrank": [{"label": new.label, "value": new.loss}]})

    def _on_update(self, session: TrainingSession, rows: list, final: bool) -> None:
        self.chart.push(rows)
        if self.replaying is None:
            self._draw_probe()
            self._sync_replay()
        self._check_lowrank()
        self._refresh_transport()
        if final:
            self._snapshot_soon()
        elif time.perf_counter() >= self._next_snapshot:
            self._refresh_snapshot()

    def _refresh_status(self) -> vm.StatusView:
        if self.replaying is not None:
            return vm.StatusView("", self.controls["counter"].value, False)
        view = vm.StatusView.of(self.session)
        c = self.controls
        if c["status"].value != view.status_html:
            c["status"].value = view.status_html
        if c["counter"].value != view.counter_html:
            c["counter"].value = view.counter_html
        return view

    def _refresh_transport(self) -> None:
        view = self._refresh_status()
        play = self.controls["play"]
        face = view.play_face
        if (play.description, play.icon, play.button_style) != face:
            play.description, play.icon, play.button_style = face

    # ------------------------------------------------------------------ widgets -> session


__all__ = [
    "CLOUD_HISTORY",
    "FIGURE_METRICS",
    "LAYOUT_ENV",
    "SNAPSHOTS",
    "SNAPSHOT_DELAY",
    "SNAPSHOT_SECONDS",
    "SNAPSHOT_SHARE",
    "Dashboard",
]
