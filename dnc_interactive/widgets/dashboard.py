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
import html
import os
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import altair as alt
import ipywidgets as w
import pandas as pd

from dnc_interactive.config import DUFMConfig
from dnc_interactive.training import Trainer
from dnc_interactive.validation import one_line
from dnc_interactive.widgets import controls as ctl
from dnc_interactive.widgets import exports
from dnc_interactive.widgets import layout as layouts
from dnc_interactive.widgets import probe as probes
from dnc_interactive.widgets import view_model as vm
from dnc_interactive.widgets.live_chart import (
    LiveChart,
    chart_config,
    cloud_spec,
    informative_metrics,
    panels_for,
    stream_spec,
)
from dnc_interactive.widgets.presets import PRESETS, find_preset, get_preset
from dnc_interactive.widgets.session import TrainingSession
from dnc_interactive.widgets.shortcuts import Shortcuts
from dnc_interactive.widgets.state import Settings, decode_state, encode_state
from dnc_interactive.widgets.theory_links import SNAPSHOT_PANELS, with_chart_info
from dnc_interactive.widgets.tour import Tour
from dnc_interactive.widgets.view_model import SNAPSHOTS

#: Least seconds between two snapshot charts while playing (more if they are slow to build).
SNAPSHOT_SECONDS = 1.0
#: Snapshot charts may use at most this share of the wall time while playing.
SNAPSHOT_SHARE = 0.08
#: Seconds between a final update (pause, step, end of a run) and its snapshot chart.
SNAPSHOT_DELAY = 0.05
#: Environment variable naming the layout of :meth:`Dashboard.from_query`'s dashboards when
#: neither the call nor the URL names one (``dnc-interactive app --lecture`` sets it).
LAYOUT_ENV = "DNC_INTERACTIVE_LAYOUT"
#: Cloud snapshots kept for the replay scrubber (older ones thinned, first and last kept).
CLOUD_HISTORY = 240
#: The metrics of the exported training figure, before those trivially 0 for K are dropped.
FIGURE_METRICS: tuple[str, ...] = ("nc1", "nc2_orth", "nc2_etf", "nc3")


class Dashboard:
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

    def export_history(self, path: str | Path) -> Path:
        """Write the history as .csv or .parquet."""
        return self.session.export_history(path)

    @property
    def theory(self) -> vm.TheoryView:
        """What the theory says about the current config (L*, q*_k, the optimum's Gram, the
        gap's round-off level), computed once per config."""
        return vm.theory_view(self.config, self.controls["tie"].value)

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

    # ------------------------------------------------------------------ widgets -> session
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

    def _on_auto_pause(self, change: dict[str, Any]) -> None:
        self.session.auto_pause = bool(change["new"])

    def _on_replay(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        try:
            self.replay(int(change["new"]))
        except Exception as exc:
            self.session.error = one_line(exc)
            self._refresh_status()


__all__ = ["LAYOUT_ENV", "SNAPSHOTS", "Dashboard"]
