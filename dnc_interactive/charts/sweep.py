"""Charts over many runs: phase diagrams of a summary value over two parameters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import altair as alt
import numpy as np
import pandas as pd
from altair.typing import ChartType

from ._common import LOG_FLOOR, finite_values, log_safe, require_frame

__all__ = ["phase_diagram", "side_by_side"]

#: Schemes whose low end is dark (cell text is white there); for others it is white at the
#: high end.
_DARK_LOW_SCHEMES = frozenset({"viridis", "magma", "inferno", "plasma", "cividis", "turbo"})


def phase_diagram(
    frame: pd.DataFrame,
    x: str,
    y: str,
    color: str,
    *,
    log_color: bool = False,
    scheme: str = "viridis",
    x_title: str | None = None,
    y_title: str | None = None,
    color_title: str | None = None,
    title: str | None = None,
    text: bool = False,
    fmt: str = ".3g",
    floor: float = LOG_FLOOR,
    cell: int = 28,
) -> alt.Chart | alt.LayerChart | alt.FacetChart:
    """Heat map of ``color`` over the two parameters ``x`` and ``y`` (e.g. λ vs depth L).

    One rect per (x, y) pair; repeated pairs (seeds) are averaged and counted in the
    tooltip. Both axes are ordinal (each parameter value one column / row, y increasing
    upwards). With ``log_color`` the colour scale is logarithmic (values clipped at
    ``floor``); non-finite values are dropped. ``text`` writes the mean value in each cell.

    Raises:
        ValueError: if ``frame`` is empty, misses one of the columns or has no finite value.
    """
    require_frame(frame, "frame", (x, y, color))
    data = frame[[x, y, color]]
    data = log_safe(data, color, floor) if log_color else finite_values(data, color)
    if data.empty:
        raise ValueError(f"frame has no finite values in column {color!r}")
    cells = data.groupby([x, y], as_index=False).agg(mean=(color, "mean"), runs=(color, "size"))
    n_x, n_y = cells[x].nunique(), cells[y].nunique()
    base = alt.Chart(cells).encode(
        x=alt.X(f"{x}:O", title=x_title or x, sort="ascending", axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{y}:O", title=y_title or y, sort="descending"),
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "mean:Q",
            title=color_title or color,
            # altair types ``scheme`` as a Literal of the built-in names; any str is accepted
            scale=alt.Scale(scheme=scheme, type="log" if log_color else "linear"),  # type: ignore[arg-type]
        ),
        tooltip=[
            alt.Tooltip(f"{x}:O", title=x_title or x),
            alt.Tooltip(f"{y}:O", title=y_title or y),
            alt.Tooltip("mean:Q", title=color_title or color, format=fmt),
            alt.Tooltip("runs:Q", title="runs"),
        ],
    )
    chart: alt.Chart | alt.LayerChart | alt.FacetChart = rect
    if text:
        low, high = float(cells["mean"].min()), float(cells["mean"].max())
        middle = float(np.sqrt(low * high)) if log_color else (low + high) / 2
        dark = "<" if scheme in _DARK_LOW_SCHEMES else ">"
        labels = base.mark_text(fontSize=9).encode(
            text=alt.Text("mean:Q", format=fmt),
            color=alt.condition(
                f"datum.mean {dark} {middle!r}", alt.value("white"), alt.value("black")
            ),
        )
        chart = alt.layer(rect, labels)
    return chart.properties(
        title=title or f"{color_title or color} over {x_title or x} and {y_title or y}",
        width=max(cell * n_x, 120),
        height=max(cell * n_y, 80),
    )


def side_by_side(
    left: alt.TopLevelMixin,
    right: alt.TopLevelMixin,
    titles: Sequence[str] | None = None,
    *,
    spacing: int = 24,
    resolve_color: Literal["independent", "shared"] = "independent",
) -> alt.HConcatChart:
    """Put two charts side by side, optionally retitled, with independent colour scales.

    Raises:
        TypeError: if ``left`` or ``right`` is not an altair chart.
        ValueError: if ``titles`` is given and does not hold exactly two titles.
    """
    for name, chart in (("left", left), ("right", right)):
        if not isinstance(chart, alt.TopLevelMixin):
            raise TypeError(f"{name} must be an altair chart, got {type(chart).__name__}")
    if titles is not None:
        if isinstance(titles, str) or len(titles) != 2:
            raise ValueError(f"titles must hold exactly two titles, got {titles!r}")
        left = left.properties(title=titles[0])
        right = right.properties(title=titles[1])
    # every TopLevelMixin is a chart type; altair's ConcatType names the concrete classes only
    pair = (cast(ChartType, left), cast(ChartType, right))
    return alt.hconcat(*pair, spacing=spacing).resolve_scale(color=resolve_color)
