"""The dashboard's controls: pure helpers mapping control values to settings, and the widgets.

The helpers (:func:`class_sizes`, :func:`imbalance_of`, :func:`parse_ints`, :func:`parse_floats`,
:func:`lambda_criticals`, :func:`lambda_gauge`) know nothing of ipywidgets and are unit-tested
directly; :func:`build_controls` makes the ipywidgets, with ranges chosen so that a slider
can never produce an invalid config, nor one over the resource budget (text boxes can, and
their values are validated by :class:`~dnc_interactive.config.DUFMConfig`, whose one-line
message the status line shows; the run goes on).
"""

from __future__ import annotations

import html
import math
from typing import Any

import ipywidgets as w

from dnc_interactive import theory
from dnc_interactive.config import ACTIVATIONS, DTYPES, LOSSES, DUFMConfig
from dnc_interactive.training import OPTIMIZERS
from dnc_interactive.validation import ParameterError
from dnc_interactive.widgets.presets import PRESETS
from dnc_interactive.widgets.state import SPEEDS, Settings

#: Slider ranges (inclusive). Every value in them gives a valid config, and the largest model
#: (K = 15 = C(6, 2), the SRG number of theory §5; n = 200, L = 8, d = 128) stays well within
#: the default resource budget of :mod:`dnc_interactive.validation`.
RANGES: dict[str, tuple[float, float]] = {
    "num_classes": (2, 15),
    "n": (1, 200),
    "ratio": (1.0, 100.0),
    "depth": (1, 8),
    "width": (2, 128),
    "lambda": (1e-6, 1.0),
    "lr": (1e-4, 100.0),
}
CUSTOM = "(custom)"
SPEED_LABELS = [("max" if s == 0 else str(s), s) for s in SPEEDS]
_DESC = {"description_width": "100px"}
_WIDE = {"width": "300px"}  # a dict: every widget gets its own Layout
#: Toggle buttons: the description as wide as the sliders' (no clipped ":ivation").
_TOGGLE = {"button_width": "64px", "description_width": "100px"}


# ---------------------------------------------------------------------- pure helpers
def class_sizes(num_classes: int, n: int, ratio: float, minority: int) -> int | tuple[int, ...]:
    """Class sizes for ``num_classes`` classes: the last ``minority`` classes have
    ``max(1, round(n / ratio))`` samples, the others ``n`` (an int when all are equal)."""
    minority = max(0, min(int(minority), num_classes - 1))
    small = max(1, round(n / ratio)) if ratio > 0 else n
    if minority == 0 or small == n:
        return int(n)
    return tuple([int(n)] * (num_classes - minority) + [int(small)] * minority)


def imbalance_of(config: DUFMConfig) -> tuple[int, float, int]:
    """The controls (n, ratio, minority count) closest to ``config``'s class sizes: n is the
    largest class, ratio largest/smallest, minority the number of classes smaller than n."""
    sizes = config.class_sizes
    n, m = max(sizes), min(sizes)
    minority = sum(1 for s in sizes if s < n)
    return n, (n / m if minority else 1.0), minority


#: Longest text a box accepts (a count per class for thousands of classes fits).
MAX_TEXT = 10_000


def _parse(name: str, text: str, kind: type, allowed: str) -> Any:
    if not isinstance(text, str) or len(text) > MAX_TEXT:
        shown = text if not isinstance(text, str) else text[:37] + "..."
        raise ParameterError(name, shown, f"{allowed} (at most {MAX_TEXT} characters)")
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ParameterError(name, text, allowed)
    try:
        values = [kind(p) for p in parts]
    except (ValueError, OverflowError):
        raise ParameterError(name, text, allowed) from None
    return values[0] if len(values) == 1 else values


def parse_ints(name: str, text: str) -> int | list[int]:
    """'50' -> 50, '90, 10' -> [90, 10]; ``ParameterError`` (a ``ValueError``) naming ``name``
    otherwise (ranges are checked by the config)."""
    return _parse(name, text, int, "an int or a comma-separated list of ints")


def parse_floats(name: str, text: str) -> float | list[float]:
    """'1e-3' -> 0.001, '5e-3, 1e-3' -> [0.005, 0.001]; ``ValueError`` naming ``name``."""
    return _parse(name, text, float, "a number or a comma-separated list of numbers")


def format_list(value: Any) -> str:
    """A config value as the text boxes show it ('50', '90, 10', '0.001')."""
    if isinstance(value, (tuple, list)):
        return ", ".join(format_list(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def lambda_criticals(config: DUFMConfig) -> tuple[float, float]:
    """(lambda_H, lambda_W) at which the smallest class reaches the threshold c*_L when only
    that one slider moves (theory §2.2, §6): scaling lambda_H by s scales every c_k by
    s^{1/(L+1)}, scaling all lambda_W by s scales it by s^{L/(L+1)}; with t =
    :func:`~dnc_interactive.theory.critical_scale` the critical values are lambda_H t^{L+1} and
    lambda_W t^{(L+1)/L}. NaN for the CE loss, inf when some lambda is 0."""
    t = theory.critical_scale(config)
    L = config.L
    if not math.isfinite(t):
        return t, t
    lam_w = max(config.lambda_Ws)
    with_h = _scaled(config.lambda_H, t, L + 1)
    with_w = _scaled(lam_w, t, (L + 1) / L)
    return with_h, with_w


def _scaled(lam: float, t: float, power: float) -> float:
    """lam * t**power, inf when lam is 0 or the product overflows (tiny lambdas, deep L)."""
    if lam <= 0:
        return math.inf
    try:
        return lam * t**power
    except OverflowError:
        return math.inf


def lambda_gauge(value: float, critical: float, lo: float, hi: float, width: int = 190) -> str:
    """HTML of a thin log-scale bar from ``lo`` to ``hi``: green where collapse is optimal,
    red past the critical lambda (the zero / minority-collapse side), a black tick at the
    current value."""

    def pos(x: float) -> float:
        x = min(max(x, lo), hi)
        return 100.0 * (math.log10(x) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    here = pos(value) if value > 0 else 0.0
    if math.isfinite(critical) and critical > 0:
        c = pos(critical)
        bar = f"linear-gradient(to right, #b7e4b0 {c:.1f}%, #f4b6b6 {c:.1f}%)"
        label = f"critical ≈ {critical:.3g}"
        if value >= critical:
            label = f"<b style='color:#b00020'>past critical ≈ {critical:.3g}</b>"
    else:
        bar = "#ddd"
        label = "no threshold (CE loss or a zero λ)"
    return (
        f"<div style='margin-left:104px;width:{width}px;font-size:11px;line-height:1.2'>"
        f"<div style='position:relative;height:6px;background:{bar};border-radius:3px'>"
        f"<div style='position:absolute;left:calc({here:.1f}% - 1px);top:-3px;width:3px;"
        f"height:12px;background:#222'></div></div>"
        f"<div style='color:#555'>{label}</div></div>"
    )


def status_html(parts: dict[str, str]) -> str:
    """The status line as HTML (state badge, numbers, verdict, notes)."""
    colours = {"playing": "#1565c0", "paused": "#555", "ready": "#555", "diverged": "#b00020"}
    verdict = parts["verdict"]
    vcol = "#2e7d32" if verdict.startswith("collapsed: yes") else "#8a6d00"
    if verdict.startswith("collapsed: not"):
        vcol = "#555"
    notes = parts.get("notes") or ""
    solution = parts.get("solution") or ""
    scol = "#2e7d32" if solution.startswith("solution: DNC") else "#5a189a"
    if solution.startswith(("solution: in between", "solution: zero")):
        scol = "#555"
    return (
        "<div class='dnc-status' style='font-size:12px;line-height:1.4;max-width:330px'>"
        f"<b style='color:{colours.get(parts['state'], '#555')}'>{html.escape(parts['state'])}</b>"
        f" · {html.escape(parts['numbers'])}<br>"
        f"<b style='color:{vcol}'>{html.escape(verdict)}</b>"
        + (
            f"<br><span class='dnc-solution' style='color:{scol}'>{html.escape(solution)}</span>"
            if solution
            else ""
        )
        + (f"<br><span style='color:#8a3b00'>{html.escape(notes)}</span>" if notes else "")
        + "</div>"
    )


def clamp(widget: w.Widget, value: Any) -> Any:
    """``value`` within a slider's range (the settings may lie outside it; the slider then
    shows the nearest end)."""
    if isinstance(widget, w.FloatLogSlider):
        return min(max(value, widget.base**widget.min), widget.base**widget.max)
    if isinstance(widget, (w.IntSlider, w.FloatSlider)):
        return min(max(value, widget.min), widget.max)
    return value


def control_values(settings: Settings) -> dict[str, Any]:
    """The value every setting control shows for ``settings`` (the class-size sliders show
    the closest n / ratio / minority count, see :func:`imbalance_of`)."""
    s = settings
    cfg = s.config
    n, ratio, minority = imbalance_of(cfg)
    values = {
        "num_classes": cfg.K,
        "n": n,
        "ratio": ratio,
        "minority": min(minority, cfg.K - 1),
        "depth": cfg.L,
        "width": max(cfg.widths),
        "activation": cfg.activation,
        "loss": cfg.loss,
        "lambda_H": cfg.lambda_H,
        "lambda_W": max(cfg.lambda_Ws),
        "lr": s.lr,
        "optimizer": s.optimizer,
        "seed": cfg.seed,
        "guard": s.guard,
        "sizes_text": format_list(cfg.samples_per_class),
        "widths_text": format_list(cfg.width),
        "lambda_w_text": format_list(cfg.lambda_W),
        "init_scale": cfg.init_scale,
        "dtype": cfg.dtype,
        "speed": s.speed,
    }
    return values


def changes_for(
    name: str, value: Any, controls: dict[str, w.Widget], config: DUFMConfig
) -> dict[str, Any]:
    """The settings changes (keyword arguments of ``TrainingSession.update``) of the control
    ``name`` taking ``value``, given the other controls' values and the current config; ``{}``
    when nothing changes. ``ValueError`` (naming the field) for text that does not parse."""
    c = controls
    cfg = config
    if name in ("num_classes", "n", "ratio", "minority"):
        K = value if name == "num_classes" else cfg.K
        sizes = class_sizes(K, c["n"].value, c["ratio"].value, min(c["minority"].value, K - 1))
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
        parsed = parse_ints("samples_per_class", value)
        out = {"samples_per_class": parsed}
        if isinstance(parsed, list):
            out["num_classes"] = len(parsed)
        return out
    if name == "widths_text":
        return {"width": parse_ints("width", value)}
    if name == "lambda_w_text":
        return {"lambda_W": parse_floats("lambda_W", value)}
    return {name: value}


# ---------------------------------------------------------------------- widgets
def _log_slider(description: str, key: str, value: float, **kw: Any) -> w.FloatLogSlider:
    lo, hi = RANGES[key]
    return w.FloatLogSlider(
        value=min(max(value, lo), hi),
        base=10,
        min=math.log10(lo),
        max=math.log10(hi),
        step=0.05,
        description=description,
        readout_format=".1e",
        style=_DESC,
        layout=_WIDE,
        **kw,
    )


def build_controls() -> dict[str, w.Widget]:
    """Every control of the dashboard, by name (values are set later from the settings)."""
    d = DUFMConfig()
    c: dict[str, w.Widget] = {}
    c["preset"] = w.Dropdown(
        options=[CUSTOM, *PRESETS],
        value=CUSTOM,
        description="preset",
        style={"description_width": "48px"},  # a short label: the names get the width
        layout={"width": "330px"},
    )
    # data
    slider = {"style": _DESC, "layout": _WIDE, "continuous_update": False}
    c["num_classes"] = w.IntSlider(2, *RANGES["num_classes"], description="classes K", **slider)
    c["n"] = w.IntSlider(50, *RANGES["n"], description="samples / class n", **slider)
    c["ratio"] = w.FloatLogSlider(
        value=1.0,
        base=10,
        min=0.0,
        max=2.0,
        step=0.05,
        description="imbalance n/n_min",
        readout_format=".3g",
        **slider,
    )
    c["minority"] = w.IntSlider(0, 0, 1, description="minority classes", **slider)
    # model
    c["depth"] = w.IntSlider(d.depth, *RANGES["depth"], description="depth L", **slider)
    c["width"] = w.IntSlider(64, *RANGES["width"], description="width d", **slider)
    c["activation"] = w.ToggleButtons(
        options=list(ACTIVATIONS), description="activation", style=_TOGGLE
    )
    c["loss"] = w.ToggleButtons(options=list(LOSSES), description="loss", style=_TOGGLE)
    # regularisation
    c["lambda_H"] = _log_slider("λ_H (features)", "lambda", d.lambda_H, continuous_update=False)
    c["gauge_H"] = w.HTML()
    c["lambda_W"] = _log_slider("λ_W (weights)", "lambda", 1e-3, continuous_update=False)
    c["gauge_W"] = w.HTML()
    c["tie"] = w.Checkbox(value=True, description="same λ for H1 and every W_l", indent=False)
    # optimisation
    c["lr"] = _log_slider("learning rate", "lr", 1.0, continuous_update=False)
    c["optimizer"] = w.ToggleButtons(
        options=list(OPTIMIZERS), description="optimizer", style=_TOGGLE
    )
    c["seed"] = w.IntText(value=d.seed, description="seed", style=_DESC, layout=_WIDE)
    c["guard"] = w.Checkbox(value=True, description="divergence guard (halve lr)", indent=False)
    # advanced (typed values, validated by the config)
    text = {"style": _DESC, "layout": _WIDE, "continuous_update": False}
    c["sizes_text"] = w.Text(description="class sizes n_k", placeholder="50 or 90, 10", **text)
    c["widths_text"] = w.Text(description="widths d_l", placeholder="64 or 64, 32, 32, 16", **text)
    c["lambda_w_text"] = w.Text(
        description="λ_W per layer", placeholder="1e-3 or 5e-3, 1e-3", **text
    )
    c["init_scale"] = w.FloatText(value=d.init_scale, description="init scale of H1", **text)
    c["dtype"] = w.ToggleButtons(options=list(DTYPES), description="dtype", style=_TOGGLE)
    # transport
    c["play"] = w.Button(
        description="Play",
        icon="play",
        button_style="success",
        tooltip="play / pause (key: Space)",
        layout=w.Layout(width="88px"),
    )
    c["step"] = w.Button(
        description="Step",
        icon="step-forward",
        tooltip="one update's worth of steps (key: →)",
        layout=w.Layout(width="76px"),
    )
    c["reset"] = w.Button(
        description="Rewind",
        icon="undo",
        tooltip="rewind to the same initialisation (same seed and init: the same numbers)",
        layout=w.Layout(width="86px"),
    )
    c["counter"] = w.HTML("<b>step 0</b>", layout=w.Layout(width="110px"))
    c["speed"] = w.SelectionSlider(
        options=SPEED_LABELS, value=10, description="steps / update", style=_DESC, layout=_WIDE
    )
    c["status"] = w.HTML()
    # snapshots
    c["snapshot"] = w.ToggleButtons(
        options=["Gram", "features", "singular values", "output q", "off"],
        value="Gram",
        style={"button_width": "auto"},
        tooltips=[
            "normalised Gram matrices of the class means, per layer (NC2)",
            "2-D projections of every sample, per layer (NC1)",
            "singular values of the class means (rank, low-rank solutions)",
            "output scale q_k per class against theory (minority collapse)",
            "no snapshot chart",
        ],
    )
    c["snapshot_kind"] = w.ToggleButtons(
        options=[("post-ReLU H_l", "post"), ("pre-ReLU H̃_l", "pre")],
        value="post",
        style={"button_width": "auto"},
    )
    # live feature clouds, auto-pause, replay
    c["clouds"] = w.Dropdown(
        options=[(label, key) for key, label in CLOUD_CHOICES.items()],
        value="last",
        description="feature clouds",
        style=_DESC,
        layout=_WIDE,
    )
    c["auto_pause"] = w.Checkbox(
        value=False,
        description="pause when collapsed (gap, NC1 < 1e-3)",
        indent=False,
    )
    c["replay"] = w.IntSlider(
        value=0,
        min=0,
        max=0,
        description="replay step",
        continuous_update=False,
        style=_DESC,
        layout=_WIDE,
    )
    c["live"] = w.Button(
        description="live",
        icon="forward",
        tooltip="back from the replay to the latest step",
        layout=w.Layout(width="70px", display="none"),
    )
    # share and export
    c["state"] = w.Text(
        description="state", style={"description_width": "40px"}, layout=w.Layout(width="250px")
    )
    c["apply_state"] = w.Button(description="Apply", layout=w.Layout(width="70px"))
    c["share_link"] = w.HTML()
    c["export_csv"] = w.Button(
        description="history CSV", icon="download", layout=w.Layout(width="120px")
    )
    c["export_parquet"] = w.Button(
        description="history Parquet", icon="download", layout=w.Layout(width="130px")
    )
    c["export_png"] = w.Button(
        description="charts PNG", icon="image", layout=w.Layout(width="120px")
    )
    c["export_svg"] = w.Button(
        description="charts SVG", icon="image", layout=w.Layout(width="120px")
    )
    c["downloads"] = w.HTML()
    return c


#: The cloud panels the "feature clouds" control offers (theory §3.2): key -> label.
CLOUD_CHOICES: dict[str, str] = {
    "last": "last layer, pre and post",
    "ends": "first and last layer",
    "post": "every layer (post-ReLU)",
    "all": "every layer, pre and post",
    "off": "off",
}


def cloud_panels(choice: str, depth: int) -> list[tuple[int, str]]:
    """The (layer, kind) panels of a "feature clouds" choice for depth L (H̃_1 = H_1 is
    drawn once, as "post"); ``ValueError`` naming the choices for an unknown one."""
    L = depth
    last = [(L, "pre"), (L, "post")] if L > 1 else [(1, "post")]
    table = {
        "last": last,
        "ends": [(1, "post"), *last] if L > 1 else last,
        "post": [(l, "post") for l in range(1, L + 1)],
        "all": [(1, "post")] + [(l, k) for l in range(2, L + 1) for k in ("pre", "post")],
        "off": [],
    }
    if choice not in table:
        raise ValueError(f"clouds={choice!r} is not valid: expected one of {tuple(table)}")
    return table[choice]


#: Controls whose change is a setting (the others are buttons, outputs or view choices).
SETTING_CONTROLS: tuple[str, ...] = (
    "num_classes",
    "n",
    "ratio",
    "minority",
    "depth",
    "width",
    "activation",
    "loss",
    "lambda_H",
    "lambda_W",
    "tie",
    "lr",
    "optimizer",
    "seed",
    "guard",
    "sizes_text",
    "widths_text",
    "lambda_w_text",
    "init_scale",
    "dtype",
    "speed",
)

#: Sections of the control panel and the controls they hold (names for ``hide=``).
SECTIONS: dict[str, tuple[str, ...]] = {
    "data": ("num_classes", "n", "ratio", "minority"),
    "model": ("depth", "width", "activation", "loss"),
    "regularization": ("lambda_H", "gauge_H", "lambda_W", "gauge_W", "tie"),
    "optimization": ("lr", "optimizer", "seed", "guard"),
    "advanced": ("sizes_text", "widths_text", "lambda_w_text", "init_scale", "dtype"),
    "share": (
        "state",
        "apply_state",
        "share_link",
        "export_csv",
        "export_parquet",
        "export_png",
        "export_svg",
        "downloads",
    ),
}

__all__ = [
    "CLOUD_CHOICES",
    "CUSTOM",
    "MAX_TEXT",
    "RANGES",
    "SECTIONS",
    "SETTING_CONTROLS",
    "build_controls",
    "changes_for",
    "clamp",
    "class_sizes",
    "cloud_panels",
    "control_values",
    "format_list",
    "imbalance_of",
    "lambda_criticals",
    "lambda_gauge",
    "parse_floats",
    "parse_ints",
    "status_html",
]
