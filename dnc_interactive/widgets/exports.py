"""The dashboard's exports: the history as CSV / Parquet, the charts as PNG / SVG / HTML.

Plain functions (no widgets): :func:`training_chart` (the static figure of a history),
:func:`save_charts` (files on disk, offline through vl-convert), :func:`export_files` (the
bytes behind the dashboard's download buttons) and :func:`download_links` (those bytes as
``data:`` links, the only way a Voilà page can hand a file to its visitor without a server
route).
"""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import altair as alt
import pandas as pd

from dnc_interactive import charts

#: Chart formats :func:`save_charts` writes.
CHART_FORMATS = ("png", "svg", "html")
#: What the download buttons export.
EXPORT_KINDS = ("csv", "parquet", "png", "svg")
MIME = {
    "csv": "text/csv",
    "parquet": "application/octet-stream",
    "png": "image/png",
    "svg": "image/svg+xml",
}


def training_chart(
    history: pd.DataFrame, metrics: Sequence[str] = ("nc1", "nc2_orth", "nc3")
) -> alt.TopLevelMixin:
    """The static training figure of a history: loss and gap above the per-layer
    ``metrics`` (theory §3; the dashboard leaves out those identically 0 for its K)."""
    present = set(history["metric"])
    chosen = [m for m in metrics if m in present] or ["nc1"]
    return alt.vconcat(charts.loss_chart(history), charts.metric_chart(history, chosen))


def save_charts(
    folder: str | Path, figures: Sequence[tuple[str, alt.TopLevelMixin]], formats: Iterable[str]
) -> list[Path]:
    """Write each ``(name, chart)`` as ``<folder>/<name>.<fmt>`` for every format (``"png"``,
    ``"svg"``, ``"html"``), offline. Returns the paths written; ``ValueError`` naming
    ``formats`` for another format (before anything is written)."""
    folder = Path(folder)
    chosen = []
    for fmt in formats:
        fmt = fmt.lower().lstrip(".")
        if fmt not in CHART_FORMATS:
            raise ValueError(f"formats={fmt!r} is not valid: expected 'png', 'svg' or 'html'")
        chosen.append(fmt)
    return [
        charts.save_chart(chart, folder / f"{name}.{fmt}")
        for fmt in chosen
        for name, chart in figures
    ]


def export_files(
    kind: str,
    write_history: Callable[[Path], Path],
    figures: Callable[[], Sequence[tuple[str, alt.TopLevelMixin]]],
) -> list[tuple[str, bytes]]:
    """``(file name, bytes)`` of one download button: the history (``"csv"``, ``"parquet"``,
    written by ``write_history``) or the charts of ``figures()`` (``"png"``, ``"svg"``).

    Raises:
        ValueError: an unknown ``kind``, or what writing the file raises (e.g. Parquet
            without pyarrow).
    """
    if kind not in EXPORT_KINDS:
        raise ValueError(f"kind={kind!r} is not valid: expected one of {EXPORT_KINDS}")
    if kind in ("csv", "parquet"):
        with tempfile.TemporaryDirectory() as tmp:
            path = write_history(Path(tmp) / f"dnc_history.{kind}")
            return [(f"dnc_history.{kind}", path.read_bytes())]
    out = []
    for name, chart in figures():
        if kind == "png":
            out.append((f"dnc_{name}.png", charts.chart_to_png_bytes(chart)))
        else:
            out.append((f"dnc_{name}.svg", charts.chart_to_svg(chart).encode()))
    return out


def download_links(kind: str, files: Sequence[tuple[str, bytes]]) -> str:
    """HTML ``data:`` links that download ``files`` (one line each, with the size)."""
    mime = MIME[kind]
    links = [
        f"<a download='{html.escape(name)}' href='data:{mime};base64,"
        f"{base64.b64encode(data).decode()}'>{html.escape(name)}</a> ({len(data) / 1024:.0f} KB)"
        for name, data in files
    ]
    return "<div style='font-size:12px'>" + "<br>".join(links) + "</div>"


__all__ = [
    "CHART_FORMATS",
    "EXPORT_KINDS",
    "download_links",
    "export_files",
    "save_charts",
    "training_chart",
]
