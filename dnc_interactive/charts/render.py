"""Offline display and export of charts (no CDN needed).

In a notebook, call :func:`enable_offline` once: with the default ``"jupyter"`` renderer every
chart becomes an interactive ``JupyterChart`` widget whose JavaScript comes from vl-convert
(~900 KB per widget, works in JupyterLab and Voilà). The ``"svg"`` alternative renders each
chart to a static SVG through vl-convert (no interactivity, but visible on GitHub and
nbviewer once the notebook is saved with outputs). Never use ``template="inline"`` or the
``jupyterlab`` mimetype renderer with altair 6.

:func:`save_chart` writes ``.png``, ``.svg``, ``.html`` (self-contained) or ``.json`` files,
all offline through vl-convert.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Literal, cast

import altair as alt

__all__ = [
    "SAVE_FORMATS",
    "chart_to_png_bytes",
    "chart_to_svg",
    "enable_offline",
    "save_chart",
]

#: File extensions :func:`save_chart` can write.
SAVE_FORMATS: tuple[str, ...] = (".png", ".svg", ".html", ".json")


def enable_offline(
    renderer: Literal["jupyter", "svg", "png"] = "jupyter", *, canvas: bool = True
) -> None:
    """Make altair charts display without internet access.

    Args:
        renderer: ``"jupyter"`` (default): interactive ``JupyterChart`` widgets with the
            JavaScript bundled from vl-convert, i.e.
            ``alt.renderers.enable("jupyter", offline=True)``. ``"svg"`` / ``"png"``: static
            images rendered by vl-convert in the kernel; explicit ``alt.JupyterChart``
            widgets are switched to offline mode as well.
        canvas: draw interactive charts with vega's canvas renderer (faster for many points
            than SVG); only used by the ``"jupyter"`` renderer.

    Raises:
        ValueError: for another renderer.
    """
    if renderer == "jupyter":
        options = {"renderer": "canvas"} if canvas else None
        alt.renderers.enable("jupyter", offline=True, embed_options=options)
    elif renderer in ("svg", "png"):
        alt.renderers.enable(renderer)
        alt.JupyterChart.enable_offline()
    else:
        raise ValueError(f"renderer must be 'jupyter', 'svg' or 'png', got {renderer!r}")


def save_chart(chart: alt.TopLevelMixin, path: str | Path, *, scale_factor: float = 2.0) -> Path:
    """Write ``chart`` to ``path`` offline; the format follows the extension.

    ``.png`` and ``.svg`` are rendered by vl-convert (``scale_factor`` scales the PNG),
    ``.html`` is a self-contained page (JavaScript inlined), ``.json`` the Vega-Lite spec.
    Parent directories are created. The row limit of altair's data transformer does not
    apply to saving.

    Returns:
        The path written.

    Raises:
        ValueError: naming ``path`` if its extension is not one of :data:`SAVE_FORMATS`.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAVE_FORMATS:
        raise ValueError(
            f"cannot save chart to {str(path)!r}: extension {suffix or '(none)'!r} is not "
            f"one of {', '.join(SAVE_FORMATS)}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".html":
        chart.save(str(path), format="html", inline=True)
    elif suffix == ".png":
        chart.save(str(path), format="png", scale_factor=scale_factor)
    else:
        chart.save(str(path), format=cast(Literal["svg", "json"], suffix[1:]))
    return path


def chart_to_png_bytes(chart: alt.TopLevelMixin, *, scale_factor: float = 2.0) -> bytes:
    """Render ``chart`` to PNG bytes offline (vl-convert), e.g. for a widget's export button."""
    buffer = io.BytesIO()
    chart.save(buffer, format="png", scale_factor=scale_factor)
    return buffer.getvalue()


def chart_to_svg(chart: alt.TopLevelMixin) -> str:
    """Render ``chart`` to an SVG document string offline (vl-convert)."""
    buffer = io.StringIO()
    chart.save(buffer, format="svg")
    return buffer.getvalue()
