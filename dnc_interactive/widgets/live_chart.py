"""A live chart widget that streams training rows into vega views, offline.

:class:`LiveChart` is a small anywidget (front end: ``live_chart.js``) with two slots, each a
vega view drawn on a canvas:

* ``"stream"``: the training curves of :func:`stream_spec` (loss terms against the optimum L*,
  the relative gap, DNC1/DNC2/DNC3 per layer and the output scales q_k). New history rows are
  *inserted* into the view's ``rows`` dataset with vega changesets: nothing is re-sent and the
  view is never re-embedded while a run goes on. :class:`SeriesStore` keeps at most
  ``max_points`` points per series (older points are thinned, first and last kept) and tells
  the view which rows to drop, so a view holds a bounded number of points however long it runs.
* ``"clouds"``: the live feature clouds and the per-layer singular values of
  :func:`cloud_spec` (theory §3.2, §3.6), embedded once per run; every update replaces only its
  two small named datasets (``cloud``: at most
  :data:`~dnc_interactive.widgets.probe.CLOUD_POINTS` points; ``svals``).
* ``"snapshot"``: any altair chart (the Gram heat maps, projections, singular values or output
  scales of :mod:`dnc_interactive.charts`). Its datasets get stable names, so a new snapshot
  with the same structure only replaces the data; otherwise the spec is re-embedded.

Messages sent before a view exists are lost, so every view says "ready" and gets the current
specs and rows replayed (page reloads and second views catch up).

The specs are built in :mod:`~dnc_interactive.widgets.stream_spec` and
:mod:`~dnc_interactive.widgets.cloud_spec` (styles in :mod:`~dnc_interactive.widgets.specs`),
the series store is :mod:`~dnc_interactive.widgets.series`; their names are re-exported here.

The JavaScript needs vega, vega-lite and vega-embed. They come from vl-convert's offline bundle
(no CDN): :func:`javascript_bundle` builds it once (~6-10 s) and caches it on disk (see
:func:`cache_dir`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import altair as alt
import anywidget
import traitlets

from dnc_interactive.widgets.cloud_spec import CLOUD_SIZE, cloud_panel_title, cloud_spec
from dnc_interactive.widgets.series import DEFAULT_MAX_POINTS, SeriesStore, is_streamed
from dnc_interactive.widgets.specs import (
    LOG_FLOOR,
    STYLES,
    VEGA_LITE_SCHEMA,
    ChartStyle,
    _json_safe,
    chart_config,
    chart_style,
)
from dnc_interactive.widgets.stream_spec import (
    BINARY_PANELS,
    EVENT_CODES,
    LECTURE_PANELS,
    LIVE_TITLES,
    MANY_PANELS,
    STREAM_PANELS,
    TRIVIAL_FOR_K2,
    informative_metrics,
    panels_for,
    stream_spec,
)

JS_PATH = Path(__file__).with_name("live_chart.js")
CSS_PATH = Path(__file__).with_name("live_chart.css")

_BUNDLES: dict[str, str] = {}


# ---------------------------------------------------------------------- offline JS bundle
def cache_dir() -> Path:
    """Where the offline JavaScript bundle is cached: ``$DNC_INTERACTIVE_CACHE``, else
    ``$XDG_CACHE_HOME/dnc-interactive`` (default ``~/.cache/dnc-interactive``); a temporary
    directory when that is not writable."""
    env = os.environ.get("DNC_INTERACTIVE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dnc-interactive"


def _vl_version() -> str | None:
    try:
        from altair.utils._importers import vl_version_for_vl_convert

        return vl_version_for_vl_convert()
    except Exception:  # pragma: no cover - older altair
        return None


def javascript_bundle(source: str | None = None) -> str:
    """The live chart's ES module with vega, vega-lite and vega-embed bundled in (offline).

    Built by ``vl_convert.javascript_bundle`` from ``live_chart.js`` (or ``source``) and cached
    in memory and on disk, keyed by the source, the vl-convert version and the Vega-Lite
    version, so only the first call on a machine pays the ~6-10 s of bundling.
    """
    import vl_convert as vlc

    source = JS_PATH.read_text(encoding="utf-8") if source is None else source
    vl_version = _vl_version()
    key = hashlib.sha256(
        # vl_convert's stub omits __version__, which the module has
        "\n".join([source, vlc.__version__, str(vl_version)]).encode("utf-8")  # type: ignore[attr-defined]
    ).hexdigest()[:20]
    if key in _BUNDLES:
        return _BUNDLES[key]
    candidates = [cache_dir(), Path(tempfile.gettempdir()) / "dnc-interactive-cache"]
    for folder in candidates:
        path = folder / f"live_chart-{key}.js"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if text:
                _BUNDLES[key] = text
                return text
    body = "\n".join(
        line for line in source.splitlines() if not line.lstrip().startswith("import ")
    )
    text = (
        vlc.javascript_bundle(body, vl_version=vl_version)
        if vl_version
        else (vlc.javascript_bundle(body))
    )
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".live_chart-{key}.{os.getpid()}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, folder / f"live_chart-{key}.js")
            break
        except OSError:
            continue
    _BUNDLES[key] = text
    return text


# ---------------------------------------------------------------------- snapshots
def split_datasets(spec: dict[str, Any]) -> tuple[str, dict[str, list], dict[str, Any]]:
    """Give a spec's inline datasets stable names (``snap_0``, ``snap_1``, ...).

    Returns ``(skeleton, datasets, spec)``: the spec without its data as a JSON string (two
    snapshots with equal skeletons differ only in their data), the renamed datasets and the
    full renamed spec.
    """
    datasets = spec.get("datasets") or {}
    rename = {old: f"snap_{i}" for i, old in enumerate(datasets)}

    def walk(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {
                k: (rename[v] if k == "name" and isinstance(v, str) and v in rename else walk(v))
                for k, v in obj.items()
                if k != "datasets"
            }
        if isinstance(obj, list):
            return [walk(v) for v in obj]
        return obj

    body = _json_safe(walk(spec))
    renamed = {rename[k]: _json_safe(v) for k, v in datasets.items()}
    skeleton = json.dumps(body, sort_keys=True)
    return skeleton, renamed, {**body, "datasets": renamed} if renamed else body


# ---------------------------------------------------------------------- the widget
class LiveChart(anywidget.AnyWidget):
    """Vega views fed from Python: streamed training rows and replaceable snapshots.

    Args:
        max_points: points kept per streamed series (see :class:`SeriesStore`).
    """

    _css = CSS_PATH.read_text(encoding="utf-8")
    #: Number of messages sent to the front end (for tests and benchmarks).
    messages = traitlets.Int(0)

    def __init__(self, max_points: int = DEFAULT_MAX_POINTS, **kwargs: Any) -> None:
        self._esm = javascript_bundle()
        super().__init__(**kwargs)
        self.store = SeriesStore(max_points)
        self.stream_spec: dict[str, Any] | None = None
        self.snapshot_spec: dict[str, Any] | None = None
        self._snapshot_skeleton: str | None = None
        self.clouds_spec: dict[str, Any] | None = None
        self.upto: int | None = None
        self.views: set[str] = set()
        self.on_msg(self._on_message)

    # -------------------------------------------------------------- python -> views
    def _post(self, message: dict[str, Any]) -> None:
        self.messages += 1
        self.send(message)

    def set_stream(self, spec: dict[str, Any]) -> None:
        """Embed a new stream spec and drop every streamed row (a new run)."""
        self.stream_spec = spec
        self.upto = None
        self.store.clear()
        self._post({"type": "spec", "slot": "stream", "spec": spec})

    def push(self, rows: Iterable[Sequence]) -> int:
        """Stream history rows ``(step, layer, kind, metric, value)``; returns how many of
        them were sent (rows of metrics that are not drawn are skipped)."""
        inserted, removed = self.store.add(rows)
        if self.upto is not None:  # a replay is shown: the rows wait in the store
            return 0
        if inserted or removed:
            self._post({"type": "rows", "slot": "stream", "rows": inserted, "remove": removed})
        return len(inserted)

    def set_stream_data(self, datasets: dict[str, list[dict[str, Any]]]) -> None:
        """Replace named datasets of the stream view (e.g. ``lowrank``, the loss chart's
        low-rank reference) without re-embedding it."""
        if self.stream_spec is None:
            return
        held = self.stream_spec.setdefault("datasets", {})
        held.update(_json_safe(datasets))
        self._post({"type": "data", "slot": "stream", "datasets": _json_safe(datasets)})

    def show_upto(self, step: int | None) -> int:
        """Show the streamed rows up to ``step`` only (a replay of the history), or every row
        again (``None``). Returns how many rows the view now holds."""
        self.upto = step
        rows = self.store.rows()
        if step is not None:
            rows = [r for r in rows if r[1] <= step]
        self._post({"type": "rows", "slot": "stream", "rows": rows, "remove": [], "reset": True})
        return len(rows)

    def set_clouds(self, spec: dict[str, Any] | None) -> None:
        """Embed a :func:`cloud_spec` in the clouds slot (None clears it)."""
        self.clouds_spec = spec
        self._post({"type": "spec", "slot": "clouds", "spec": spec})

    def update_clouds(self, datasets: dict[str, list[dict[str, Any]]]) -> None:
        """Replace the clouds slot's data (``cloud`` and ``svals``, those its spec has) in
        place."""
        if self.clouds_spec is None:
            return
        held = self.clouds_spec["datasets"]
        clean = {k: v for k, v in _json_safe(datasets).items() if k in held}
        self.clouds_spec["datasets"].update(clean)
        self._post({"type": "data", "slot": "clouds", "datasets": clean})

    def set_snapshot(self, chart: alt.TopLevelMixin | dict[str, Any] | None) -> str:
        """Show an altair chart (or a Vega-Lite dict) in the snapshot slot; None clears it.

        Returns ``"data"`` when only the datasets were replaced, ``"spec"`` when the view
        was re-embedded.
        """
        if chart is None:
            self.snapshot_spec = None
            self._snapshot_skeleton = None
            self._post({"type": "spec", "slot": "snapshot", "spec": None})
            return "spec"
        spec = chart if isinstance(chart, dict) else chart.to_dict(validate=False)
        skeleton, datasets, full = split_datasets(spec)
        self.snapshot_spec = full
        if skeleton == self._snapshot_skeleton and datasets:
            self._post({"type": "data", "slot": "snapshot", "datasets": datasets})
            return "data"
        self._snapshot_skeleton = skeleton
        self._post({"type": "spec", "slot": "snapshot", "spec": full})
        return "spec"

    # -------------------------------------------------------------- views -> python
    def _on_message(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ready":
            self.replay(str(content.get("id", "")))

    def replay(self, target: str) -> None:
        """Send the current specs and every held row to the view ``target``."""
        self.views.add(target)
        if self.stream_spec is not None:
            self._post(
                {"type": "spec", "slot": "stream", "spec": self.stream_spec, "target": target}
            )
            rows = self.store.rows()
            if self.upto is not None:
                rows = [r for r in rows if r[1] <= self.upto]
            self._post(
                {
                    "type": "rows",
                    "slot": "stream",
                    "rows": rows,
                    "remove": [],
                    "reset": True,
                    "target": target,
                }
            )
        if self.clouds_spec is not None:
            self._post(
                {"type": "spec", "slot": "clouds", "spec": self.clouds_spec, "target": target}
            )
        if self.snapshot_spec is not None:
            self._post(
                {"type": "spec", "slot": "snapshot", "spec": self.snapshot_spec, "target": target}
            )


__all__ = [
    "BINARY_PANELS",
    "CLOUD_SIZE",
    "DEFAULT_MAX_POINTS",
    "EVENT_CODES",
    "LECTURE_PANELS",
    "LIVE_TITLES",
    "LOG_FLOOR",
    "MANY_PANELS",
    "STREAM_PANELS",
    "STYLES",
    "TRIVIAL_FOR_K2",
    "VEGA_LITE_SCHEMA",
    "ChartStyle",
    "LiveChart",
    "SeriesStore",
    "cache_dir",
    "chart_config",
    "chart_style",
    "cloud_panel_title",
    "cloud_spec",
    "informative_metrics",
    "is_streamed",
    "javascript_bundle",
    "panels_for",
    "split_datasets",
    "stream_spec",
]
