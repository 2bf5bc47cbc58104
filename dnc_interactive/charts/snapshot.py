"""Charts of one model snapshot: Gram heat maps, projections, singular values, output scales.

Each builder takes a long-format DataFrame computed from one state of the model:

- gram frame: ``layer, kind, row, col, value`` (normalised class-mean Gram MᵀM/‖MᵀM‖_F);
- projection frame: ``layer, kind, sample, label, x, y`` (2-D projections of the features);
- singular value frame: ``layer, kind, index, value, raw`` (value = σ_i/σ_max, raw = σ_i);
- output scale frame: ``label, n, q`` and optionally ``q_theory`` (theory §6).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import altair as alt
import numpy as np
import pandas as pd

from ._common import (
    CLASS_SCHEME,
    DIVERGING_SCHEME,
    LOG_FLOOR,
    MAX_CHART_ROWS,
    PANEL_HEIGHT,
    PANEL_WIDTH,
    SMALL_PANEL,
    finite_values,
    log_safe,
    require_frame,
)

__all__ = [
    "gram_heatmap",
    "ideal_gram",
    "output_scale_chart",
    "projection_chart",
    "singular_value_chart",
]

GRAM_COLUMNS = ("layer", "kind", "row", "col", "value")
PROJECTION_COLUMNS = ("layer", "kind", "sample", "label", "x", "y")
SV_COLUMNS = ("layer", "kind", "index", "value")
Q_COLUMNS = ("label", "n", "q")

#: Largest K for which Gram cells carry their value as text.
MAX_TEXT_CLASSES = 6

_IDEAL_TITLES = {
    "orthogonal": "ideal: I_K/√K",
    "etf": "ideal: (I − 11ᵀ/K)/√(K−1)",
}
_KIND_SYMBOL = {"pre": "H̃", "post": "H", "output": "Z"}


def ideal_gram(num_classes: int, ideal: Literal["orthogonal", "etf"] = "orthogonal") -> np.ndarray:
    """The ideal normalised Gram matrix (unit Frobenius norm) of theory §3's NC2 errors.

    ``"orthogonal"``: I_K/√K (bias-free MSE, uncentred means);
    ``"etf"``: (I_K − 11ᵀ/K)/√(K−1) (simplex ETF of the centred means, needs K ≥ 2).
    """
    if ideal not in _IDEAL_TITLES:
        raise ValueError(f"ideal must be 'orthogonal' or 'etf', got {ideal!r}")
    k = int(num_classes)
    if k < 1 or (ideal == "etf" and k < 2):
        raise ValueError(f"num_classes must be at least {1 if ideal == 'orthogonal' else 2}")
    if ideal == "orthogonal":
        return np.eye(k) / np.sqrt(k)
    return (np.eye(k) - np.ones((k, k)) / k) / np.sqrt(k - 1)


def _panel_name(layer: int, kind: str) -> str:
    symbol = _KIND_SYMBOL.get(kind, kind)
    if kind == "output":
        return f"{symbol} (output, layer {layer})"
    return f"{symbol}_{layer} (layer {layer}, {kind})"


def _select_kind(frame: pd.DataFrame, kind: str, name: str) -> pd.DataFrame:
    """Rows of ``kind`` plus the output layer's rows; ValueError naming ``kind`` if none."""
    data = frame[frame["kind"].isin([kind, "output"])]
    if not (data["kind"] == kind).any() and not (kind == "output" and not data.empty):
        raise ValueError(
            f"kind {kind!r} has no rows in {name} (kinds present: "
            f"{sorted(frame['kind'].astype(str).unique())})"
        )
    return data


def _panels(data: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Add a readable ``panel`` column and return the panel order (by layer, output last)."""
    data = data.copy()
    data["layer"] = data["layer"].astype(int)
    keys = (
        data[["layer", "kind"]]
        .drop_duplicates()
        .assign(is_out=lambda d: d["kind"] == "output")
        .sort_values(["is_out", "layer", "kind"])
    )
    names = {(r.layer, r.kind): _panel_name(r.layer, r.kind) for r in keys.itertuples()}
    data["panel"] = [names[(ly, kd)] for ly, kd in zip(data["layer"], data["kind"], strict=True)]
    return data, list(names.values())


def gram_heatmap(
    gram_frame: pd.DataFrame,
    kind: str = "post",
    ideal: Literal["orthogonal", "etf"] | np.ndarray = "orthogonal",
    *,
    text: bool | None = None,
    columns: int | None = None,
    cell: int = 30,
    ideal_title: str | None = None,
) -> alt.FacetChart:
    """Heat maps of the normalised class-mean Gram matrix MᵀM/‖MᵀM‖_F, one per layer.

    Panels show the layers of ``kind`` (``"pre"`` for H̃_l, ``"post"`` for H_l) and the
    output Z when present, then the ideal frame: ``"orthogonal"`` I_K/√K, ``"etf"``
    (I − 11ᵀ/K)/√(K−1), or a K×K matrix — e.g. the optimum's own Gram for imbalanced classes
    (diag(‖μ_k‖²)/‖·‖_F, theory §6) — titled ``ideal_title``. The diverging colour scale is
    symmetric and centred at 0. Cells carry their value as text when ``text`` is True, or by
    default when K ≤ 6.

    Raises:
        ValueError: if ``gram_frame`` is empty or misses a column, if ``kind`` has no rows,
            if ``ideal`` is unknown or a matrix of the wrong shape.
    """
    require_frame(gram_frame, "gram_frame", GRAM_COLUMNS)
    matrix = None if isinstance(ideal, str) else np.asarray(ideal, dtype=float)
    if matrix is None and ideal not in _IDEAL_TITLES:
        raise ValueError(f"ideal must be 'orthogonal', 'etf' or a K×K matrix, got {ideal!r}")
    data = finite_values(_select_kind(gram_frame, kind, "gram_frame")[list(GRAM_COLUMNS)])
    if data.empty:
        raise ValueError(f"gram_frame has no finite values for kind {kind!r}")
    data, order = _panels(data)
    classes = sorted(set(data["row"]) | set(data["col"]))
    k = len(classes)
    if matrix is not None:
        if matrix.shape != (k, k):
            raise ValueError(
                f"ideal has shape {matrix.shape}, expected ({k}, {k}) for the {k} classes"
            )
        target, name = matrix, ideal_title or "ideal"
    else:
        shape: Literal["orthogonal", "etf"] = "etf" if str(ideal) == "etf" else "orthogonal"
        target = ideal_gram(max(k, 2) if shape == "etf" else k, shape)[:k, :k]
        name = ideal_title or _IDEAL_TITLES[shape]
    ideal_rows = pd.DataFrame(
        [
            {"row": r, "col": c, "value": float(target[i, j]), "panel": name}
            for i, r in enumerate(classes)
            for j, c in enumerate(classes)
        ]
    )
    data = pd.concat([data[["row", "col", "value", "panel"]], ideal_rows], ignore_index=True)
    order.append(name)
    bound = float(max(np.abs(data["value"]).max(), 1e-12))

    base = alt.Chart().encode(
        x=alt.X("col:O", title="class c′", sort=classes),
        y=alt.Y("row:O", title="class c", sort=classes),
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "value:Q",
            title="MᵀM/‖MᵀM‖_F",
            scale=alt.Scale(
                # altair types ``scheme`` as a Literal of the built-in names
                scheme=DIVERGING_SCHEME,  # type: ignore[arg-type]
                reverse=True,
                domain=[-bound, bound],
                domainMid=0,
            ),
        ),
        tooltip=[
            alt.Tooltip("panel:N"),
            alt.Tooltip("row:O", title="c"),
            alt.Tooltip("col:O", title="c′"),
            alt.Tooltip("value:Q", format=".4f"),
        ],
    )
    layers: list[alt.Chart] = [rect]
    if text if text is not None else k <= MAX_TEXT_CLASSES:
        layers.append(
            base.mark_text(fontSize=max(10, min(18, cell // 3))).encode(
                text=alt.Text("value:Q", format=".2f"),
                color=alt.condition(
                    f"abs(datum.value) > {0.55 * bound}", alt.value("white"), alt.value("black")
                ),
            )
        )
    symbol = {"pre": "pre-ReLU H̃_l", "post": "post-ReLU H_l"}.get(kind, kind)
    return (
        alt.layer(*layers, data=data)
        .properties(width=cell * k, height=cell * k)
        .facet(
            facet=alt.Facet("panel:N", sort=order, title=None),
            columns=columns or min(len(order), 6),
        )
        .properties(title=f"Normalised class-mean Gram matrices ({symbol})")
    )


def projection_chart(
    projection_frame: pd.DataFrame,
    kind: str = "post",
    *,
    columns: int = 4,
    size: int = SMALL_PANEL,
    max_rows: int = MAX_CHART_ROWS,
    x_title: str = "x",
    y_title: str = "y",
    equal_scales: bool = False,
) -> alt.FacetChart:
    """One small scatter per layer of the 2-D projected features, coloured by class.

    With ``equal_scales`` (for a single panel) both axes span the same length around the
    points' centre, so a collapsed class looks collapsed (its within-class spread is not
    blown up to the panel's height).

    Samples are small dots; the class means (computed on all samples, before any thinning)
    are large outlined diamonds. If the frame holds more than ``max_rows`` samples, every
    j-th sample id is kept (the same samples in every layer). Non-finite points are dropped.

    Raises:
        ValueError: if ``projection_frame`` is empty or misses a column, or ``kind`` has no
            rows.
    """
    require_frame(projection_frame, "projection_frame", PROJECTION_COLUMNS)
    data = _select_kind(projection_frame, kind, "projection_frame")[list(PROJECTION_COLUMNS)]
    data = finite_values(finite_values(data, "x"), "y")
    if data.empty:
        raise ValueError(f"projection_frame has no finite points for kind {kind!r}")
    data, order = _panels(data)
    means = data.groupby(["panel", "label"], as_index=False, sort=False)[["x", "y"]].mean()
    means["role"] = "class mean"
    budget = max(max_rows - len(means), len(order))
    if len(data) > budget:
        ids = np.sort(data["sample"].unique())
        stride = int(np.ceil(len(data) / budget))
        data = data[data["sample"].isin(ids[::stride])]
    samples = data[["panel", "label", "sample", "x", "y"]].assign(role="sample")
    combined = pd.concat([samples, means], ignore_index=True)

    x_scale = alt.Scale(zero=False)
    y_scale = alt.Scale(zero=False)
    if equal_scales and len(order) == 1:
        lo = combined[["x", "y"]].min()
        hi = combined[["x", "y"]].max()
        half = 0.55 * float(max((hi - lo).max(), 1e-12))
        cx, cy = (lo + hi) / 2
        x_scale = alt.Scale(domain=[float(cx) - half, float(cx) + half], nice=False)
        y_scale = alt.Scale(domain=[float(cy) - half, float(cy) + half], nice=False)
    base = alt.Chart().encode(
        x=alt.X("x:Q", title=x_title, scale=x_scale),
        y=alt.Y("y:Q", title=y_title, scale=y_scale),
        color=alt.Color(
            "label:N",
            title="class k",
            scale=alt.Scale(scheme=CLASS_SCHEME),  # type: ignore[arg-type]  # Literal-typed in altair
        ),
    )
    dots = (
        base.mark_circle(size=18, opacity=0.6)
        .encode(
            tooltip=[
                "label:N",
                "sample:Q",
                alt.Tooltip("x:Q", format=".3f"),
                alt.Tooltip("y:Q", format=".3f"),
            ]
        )
        .transform_filter(alt.datum.role == "sample")
    )
    centres = (
        base.mark_point(shape="diamond", size=160, filled=True, stroke="black", strokeWidth=1.2)
        .encode(
            tooltip=[
                alt.Tooltip("label:N", title="class mean of"),
                alt.Tooltip("x:Q", format=".3f"),
                alt.Tooltip("y:Q", format=".3f"),
            ]
        )
        .transform_filter(alt.datum.role == "class mean")
    )
    return (
        alt.layer(dots, centres, data=combined)
        .properties(width=size, height=size)
        .facet(facet=alt.Facet("panel:N", sort=order, title=None), columns=columns)
        .resolve_scale(x="independent", y="independent")
        .properties(title="Features per layer (diamonds: class means μ_c)")
    )


def singular_value_chart(
    sv_frame: pd.DataFrame,
    *,
    cutoff: float = 1e-3,
    kinds: Sequence[str] | None = None,
    columns: int = 4,
    floor: float = LOG_FLOOR,
    size: int = SMALL_PANEL,
) -> alt.FacetChart:
    """Normalised singular values σ_i/σ_max of the class means per layer, pre vs post ReLU.

    One panel per layer, log y scale, a dashed rule at the numerical-rank cut-off
    (``cutoff`` = 10⁻³, theory §3); the tooltip gives σ_i (``raw``, when present) and the
    numerical rank #{σ_i/σ_max > cutoff}. Zeros are clipped at ``floor``, non-finite values
    dropped. ``kinds`` restricts the kinds drawn (default: all).

    Raises:
        ValueError: if ``sv_frame`` is empty or misses a column, or no rows are left.
    """
    require_frame(sv_frame, "sv_frame", SV_COLUMNS)
    data = sv_frame if kinds is None else sv_frame[sv_frame["kind"].isin(list(kinds))]
    columns_kept = [c for c in (*SV_COLUMNS, "raw") if c in data.columns]
    data = finite_values(data[columns_kept])
    if data.empty:
        raise ValueError(f"sv_frame has no finite singular values for kinds {kinds}")
    data["rank"] = data.groupby(["layer", "kind"])["value"].transform(
        lambda v: int((v > cutoff).sum())
    )
    data = log_safe(data, "value", floor)
    data["layer"] = data["layer"].astype(int)
    data["panel"] = "layer " + data["layer"].astype(str)
    order = [f"layer {ly}" for ly in sorted(data["layer"].unique())]
    present = [k for k in ("pre", "post", "output") if k in set(data["kind"])]
    present += sorted(set(data["kind"]) - set(present))

    tooltip = [
        alt.Tooltip("layer:O"),
        alt.Tooltip("kind:N"),
        alt.Tooltip("index:Q", title="i"),
        alt.Tooltip("value:Q", title="σ_i/σ_max", format=".3e"),
    ]
    if "raw" in data.columns:
        tooltip.append(alt.Tooltip("raw:Q", title="σ_i", format=".3e"))
    tooltip.append(alt.Tooltip("rank:Q", title="numerical rank"))
    kind_scale = alt.Scale(domain=present)
    lines = (
        alt.Chart()
        .mark_line(point=True)
        .encode(
            x=alt.X("index:Q", title="i", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("value:Q", title="σ_i / σ_max", scale=alt.Scale(type="log")),
            color=alt.Color("kind:N", title="features", scale=kind_scale),
            strokeDash=alt.StrokeDash(
                "kind:N",
                scale=alt.Scale(
                    domain=present, range=[[5, 3] if k == "pre" else [1, 0] for k in present]
                ),
            ),
            tooltip=tooltip,
        )
    )
    rule = (
        alt.Chart()
        .transform_aggregate(count="count()")
        .transform_calculate(cutoff=str(float(cutoff)))
        .mark_rule(color="grey", strokeDash=[2, 2])
        .encode(
            y=alt.Y("cutoff:Q", title="σ_i / σ_max"),
            tooltip=[alt.Tooltip("cutoff:Q", title="rank cut-off")],
        )
    )
    return (
        alt.layer(lines, rule, data=data)
        .properties(width=size, height=size)
        .facet(facet=alt.Facet("panel:N", sort=order, title=None), columns=columns)
        .properties(title="Singular values of the class means (dashed: 1e-3 rank cut-off)")
    )


def output_scale_chart(
    q_frame: pd.DataFrame,
    *,
    width: int = PANEL_WIDTH,
    height: int = PANEL_HEIGHT,
) -> alt.LayerChart:
    """Per-class output scale q_k (bars, coloured by n_k) against theory's q_k (red ticks).

    The class-k output mean is q_k e_k at the optimum (theory §6); a collapsed minority class
    has q_k = 0. Classes are ordered by label; the tooltip gives n_k, q_k and the theory.
    The theory ticks are drawn when the optional ``q_theory`` column has finite values.

    Raises:
        ValueError: if ``q_frame`` is empty, misses a column or has no finite q.
    """
    require_frame(q_frame, "q_frame", Q_COLUMNS)
    keep = [c for c in (*Q_COLUMNS, "q_theory") if c in q_frame.columns]
    data = finite_values(q_frame[keep], "q")
    if data.empty:
        raise ValueError("q_frame has no finite values in column 'q'")
    has_theory = "q_theory" in data.columns
    if has_theory:
        data["q_theory"] = pd.to_numeric(data["q_theory"], errors="coerce").astype(float)
        data.loc[~np.isfinite(data["q_theory"].to_numpy()), "q_theory"] = np.nan
        has_theory = bool(data["q_theory"].notna().any())
    labels = sorted(data["label"].unique())
    top = float(np.nanmax([1.0, data["q"].max(), data["q_theory"].max() if has_theory else 0.0]))
    bottom = float(min(0.0, data["q"].min()))
    x = alt.X("label:O", title="class k", sort=labels, axis=alt.Axis(labelAngle=0))
    y_scale = alt.Scale(domain=[bottom, top])
    tooltip = [
        alt.Tooltip("label:O", title="k"),
        alt.Tooltip("n:Q", title="n_k"),
        alt.Tooltip("q:Q", title="q_k", format=".4f"),
    ]
    if has_theory:
        tooltip.append(alt.Tooltip("q_theory:Q", title="q_k (theory)", format=".4f"))
    bars = (
        alt.Chart()
        .mark_bar()
        .encode(
            x=x,
            y=alt.Y("q:Q", title="output scale q_k", scale=y_scale),
            color=alt.Color("n:Q", title="n_k", scale=alt.Scale(scheme="blues", zero=True)),
            tooltip=tooltip,
        )
    )
    layers: list[alt.Chart] = [bars]
    title = "Output scales q_k"
    if has_theory:
        layers.append(
            alt.Chart()
            .mark_tick(color="#d62728", thickness=3)
            .encode(x=x, y=alt.Y("q_theory:Q", scale=y_scale), tooltip=tooltip)
            .transform_filter("isValid(datum.q_theory)")
        )
        title = "Output scales q_k (bars: trained, red ticks: theory)"
    return alt.layer(*layers, data=data).properties(title=title, width=width, height=height)
