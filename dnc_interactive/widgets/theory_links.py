"""One line of theory per chart: a formula for the tooltip and the theory page's section.

Every live panel (:mod:`~dnc_interactive.widgets.stream_spec`,
:mod:`~dnc_interactive.widgets.cloud_spec`) and the snapshot charts carry a small
"ℹ §3.2" mark next to their title: hovering shows the formula (:attr:`PanelInfo.formula`),
clicking opens the theory page (docs/theory.md, :data:`THEORY_URL`) at the section
(:func:`anchor`, computed the way GitHub names heading anchors).

The formulas and sections are kept in this small table (:data:`PANELS`), next to the charts
that use them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

#: The theory page on GitHub (the repository's ``docs/theory.md``).
THEORY_URL = "https://github.com/dnc-interactive/dnc-interactive/blob/main/docs/theory.md"


def anchor(heading: str) -> str:
    """The GitHub anchor of a Markdown heading: lower case, punctuation dropped (letters,
    digits, spaces, '-' and '_' kept), each space a '-'.

    >>> anchor("### 3.2 NC1 / DNC1: within-class variability (`nc1`, `nc1_trace`)")
    '32-nc1--dnc1-within-class-variability-nc1-nc1_trace'
    """
    text = heading.strip().lstrip("#").strip().lower()
    kept = "".join(
        ch
        for ch in text
        if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N") or ch.isalnum()
    )
    return re.sub(" ", "-", kept)


@dataclass(frozen=True)
class PanelInfo:
    """The one-line formula of a chart and the heading of its theory section."""

    formula: str
    heading: str

    @property
    def section(self) -> str:
        """'§3.2', the section number at the start of the heading."""
        number = self.heading.lstrip("#").split()[0]
        return f"§{number}"

    @property
    def url(self) -> str:
        """The theory page at this section."""
        return f"{THEORY_URL}#{anchor(self.heading)}"

    @property
    def label(self) -> str:
        return f"ℹ {self.section}"


_OPTIMUM = "### 2.2 Closed form of the DNC family"
_NC1 = "### 3.2 NC1 / DNC1: within-class variability (`nc1`, `nc1_trace`)"
_NC2 = (
    "### 3.3 NC2 / DNC2: the geometry of the means (`nc2_orth`, `nc2_etf`, `equinorm`, `coherence`)"
)
_NC3 = "### 3.4 NC3 / DNC3: alignment of weights and means (`nc3`, `dnc3`)"
_RANK = "### 3.6 Rank and singular values (`rank`, `singular_values`)"

#: The charts' formulas and theory sections, by panel name.
PANELS: dict[str, PanelInfo] = {
    "loss": PanelInfo(
        "L = ‖Z − Y‖²/2N + Σ_l λ_W‖W_l‖²/2 + λ_H‖H₁‖²/2; L* its closed-form minimum", _OPTIMUM
    ),
    "gap": PanelInfo("relative gap (L − L*)/L*; below 0: a solution better than DNC", _OPTIMUM),
    "q": PanelInfo(
        "q_k = output scale of class k; q*_k the optimum's (0: the class collapsed)",
        "### 6.1 Per-class closed form",
    ),
    "nc1": PanelInfo("DNC1 = tr(Σ_W Σ_B⁺)/K per layer (0: every sample at its class mean)", _NC1),
    "nc2_orth": PanelInfo("DNC2 = ‖MᵀM/‖MᵀM‖_F − I_K/√K‖_F (0: orthogonal means)", _NC2),
    "nc3": PanelInfo("DNC3 = ‖W_l (I − P_{M_l})‖_F / ‖W_l‖_F (0: W_l aligned)", _NC3),
    "rank": PanelInfo("rank = #{σ_i > 10⁻³ σ₁} of the class means M̃_l, M_l", _RANK),
    "clouds": PanelInfo(
        "columns of H_l on fixed axes; diamonds: class means μ_c, faint: the optimum", _NC1
    ),
    "svals": PanelInfo("σ_i(M_l)/σ₁ per layer; rank = #{σ_i/σ₁ > 10⁻³}", _RANK),
    "gram": PanelInfo(
        "normalised Gram M_lᵀM_l/‖M_lᵀM_l‖ of the class means vs the optimum's",
        "### 2.3 Explicit optimal matrices",
    ),
    "features": PanelInfo("2-D projection of every column of H_l; class means μ_c", _NC1),
    "output q": PanelInfo(
        "q_k = output scale of class k against q*_k", "### 6.1 Per-class closed form"
    ),
    "lowrank": PanelInfo(
        "SRG low-rank construction's loss, below L* beyond two classes",
        "### 5.2 The low-rank competitor: the strongly-regular-graph (SRG) construction",
    ),
}
#: Snapshot names (the "snapshot" control) to their panel names above.
SNAPSHOT_PANELS = {
    "Gram": "gram",
    "features": "features",
    "singular values": "svals",
    "output q": "output q",
}


def info_layer(panel: str, font_size: int = 12, x: float | None = None) -> dict[str, Any]:
    """A Vega-Lite layer: "ℹ §N" just above the plot (right-aligned at ``x``, the plot's
    width; at its left edge without one), the formula as its tooltip and the theory section
    as its link (vega opens ``href`` on a click)."""
    info = PANELS[panel]
    return {
        "data": {"values": [{"info": info.label}]},
        "mark": {
            "type": "text",
            "align": "left" if x is None else "right",
            "baseline": "bottom",
            "dy": -4,
            "fontSize": font_size,
            "color": "#1565c0",
            "cursor": "pointer",
        },
        "encoding": {
            "x": {"value": 0 if x is None else x},
            "y": {"value": 0},
            "text": {"field": "info"},
            "href": {"value": info.url},
            "tooltip": {"value": f"{info.formula} — theory {info.section} (click to open)"},
        },
    }


def with_info(view: dict[str, Any], panel: str, font_size: int = 12) -> dict[str, Any]:
    """``view`` (a unit or layered Vega-Lite view) with :func:`info_layer` added, at the
    right end of the plot when the view has a numeric width."""
    x = _width(view)
    if "layer" in view:
        return {**view, "layer": [*view["layer"], info_layer(panel, font_size, x)]}
    outer_keys = ("title", "width", "height", "name", "description")
    outer = {k: v for k, v in view.items() if k in outer_keys}
    inner = {k: v for k, v in view.items() if k not in outer_keys}
    return {**outer, "layer": [inner, info_layer(panel, font_size, x)]}


__all__ = [
    "PANELS",
    "SNAPSHOT_PANELS",
    "THEORY_URL",
    "PanelInfo",
    "anchor",
    "info_layer",
    "with_chart_info",
    "with_info",
]


def with_chart_info(spec: dict[str, Any], panel: str, font_size: int = 12) -> dict[str, Any]:
    """A whole Vega-Lite chart (an altair ``to_dict``) with the "ℹ §N" mark: on a layered
    chart as one more layer, on a faceted one in every cell (one datum per cell, from the
    facet's own data: a layer inside a facet cannot bring its own data). Other charts are
    returned unchanged."""
    if "facet" in spec and isinstance(spec.get("spec"), dict) and "layer" in spec["spec"]:
        inner = spec["spec"]
        layer = info_layer(panel, font_size, _width(inner))
        del layer["data"]
        layer["transform"] = [{"aggregate": [{"op": "count", "as": "n"}]}]
        layer["encoding"]["text"] = {"value": PANELS[panel].label}
        return {**spec, "spec": {**inner, "layer": [*inner["layer"], layer]}}
    if "layer" in spec:
        return {**spec, "layer": [*spec["layer"], info_layer(panel, font_size, _width(spec))]}
    return spec


def _width(view: dict[str, Any]) -> float | None:
    width = view.get("width")
    return float(width) if isinstance(width, (int, float)) else None
