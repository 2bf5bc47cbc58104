"""The dashboard's widget trees: the desk layout (``"default"``) and the lecture layout.

Each builder takes the controls (:func:`~dnc_interactive.widgets.controls.build_controls`), the
live chart, the keyboard-shortcut widget and the names to hide, and returns the root widget;
it decides where things go and how wide they are, nothing else.

* ``"default"``: a header, then a column of controls (340 px; the controls are 300 px so
  they fit the folded sections: preset, transport, status, snapshot choice, the folded
  sections) beside the live charts, which take the rest of the
  width (their panels wrap into as many columns as fit, so in JupyterLab's notebook width the
  charts stay beside the controls, on the first screen).
* ``"lecture"``: for a projector — a one-line title, one strip of controls (Play / Step /
  Reset, the step counter, the preset, λ, the depth, a "settings" toggle that unfolds
  everything else), the status line with the key hint, then four large panels in two rows:
  the loss against L*, the per-layer NC1, the live feature cloud of the last layer (theory
  §3.2) and the Gram of its class means against the optimum's. Fonts are ≥ 18 px.
"""

from __future__ import annotations

from collections.abc import Iterable

import ipywidgets as w

from dnc_interactive.widgets import controls as ctl

#: The layouts a dashboard can have.
LAYOUTS: tuple[str, ...] = ("default", "lecture")
#: Width of the default layout's control column (its controls are 330 px wide).
CONTROL_COLUMN = "340px"
#: The four panels of the lecture layout, in reading order (two rows of two).
LECTURE_PANEL_NAMES: tuple[str, ...] = ("loss vs L*", "per-layer NC1", "features", "Gram")

_HEADER = (
    "<div style='font-size:15px'><b>Deep neural collapse, live</b> — gradient descent on"
    " the deep unconstrained features model (Súkeník, Mondelli &amp; Lampert, NeurIPS"
    " 2023). Press <b>Play</b>: the features of every layer collapse to their class means"
    " and the loss meets the optimum L* the theorem predicts.</div>"
)
_LECTURE_HEADER = (
    "<div class='dnc-lecture-title'><b>Deep neural collapse, live</b>"
    "<span> — gradient descent on the deep unconstrained features model: features"
    " collapse as the loss meets L*</span></div>"
)


def check_layout(layout: object) -> str:
    """``layout`` if it is one of :data:`LAYOUTS`; otherwise ``ValueError`` naming the
    parameter and the allowed values."""
    if not isinstance(layout, str) or layout not in LAYOUTS:
        raise ValueError(f"layout={layout!r} is not valid: expected one of {LAYOUTS}")
    return layout


def _keep(controls: dict[str, w.Widget], names: Iterable[str], hidden: set[str]) -> list[w.Widget]:
    return [controls[n] for n in names if n not in hidden]


def sections(controls: dict[str, w.Widget], hidden: set[str]) -> w.Accordion:
    """The folded sections of the controls (data, model, regularization, ...), the
    regularization section open."""
    c = controls
    children = []
    titles = []
    for title, names in ctl.SECTIONS.items():
        if title in hidden:
            continue
        items = _keep(c, names, hidden)
        if title == "share":
            items = [
                w.HBox(_keep(c, ["state", "apply_state"], hidden)),
                *_keep(c, ["share_link"], hidden),
                w.HBox(_keep(c, ["export_csv", "export_parquet"], hidden)),
                w.HBox(_keep(c, ["export_png", "export_svg"], hidden)),
                *_keep(c, ["downloads"], hidden),
            ]
        if items:
            children.append(w.VBox(items))
            titles.append(title)
    accordion = w.Accordion(children=children, titles=tuple(titles))
    accordion.selected_index = (
        titles.index("regularization") if "regularization" in titles else None
    )
    return accordion


def _titled(title: w.Widget, banner: w.Widget | None) -> w.Widget:
    """The title, with the banner (the guided tour's box) right under it when there is one."""
    return title if banner is None else w.VBox([title, banner])


def default_layout(
    controls: dict[str, w.Widget],
    chart: w.Widget,
    shortcuts: w.Widget,
    hidden: set[str],
    banner: w.Widget | None = None,
) -> w.Widget:
    """The desk layout: ``VBox([header, HBox([control column, charts])])``; the control
    column's last child is the accordion of sections. ``banner`` goes under the header."""
    c = controls
    transport = w.HBox(
        _keep(c, ["play", "step", "reset", "new_seed", "tour", "counter"], hidden),
        layout=w.Layout(flex_flow="row wrap"),  # buttons keep their width; the counter wraps
    )
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
    replay = w.HBox(_keep(c, ["replay", "live"], hidden), layout=w.Layout(flex_flow="row wrap"))
    left = w.VBox(
        [*top, transport, *_keep(c, ["speed", "status"], hidden), shortcuts]
        + [*_keep(c, ["auto_pause"], hidden), replay, *_keep(c, ["clouds"], hidden), *snapshot]
        + [sections(c, hidden)],
        layout=w.Layout(width=CONTROL_COLUMN, min_width=CONTROL_COLUMN),
    )
    # the charts take the rest of the row; their panels wrap to the width they get
    chart.layout = w.Layout(flex="1 1 0%", min_width="300px", overflow="auto")
    body = w.HBox([left, chart], layout=w.Layout(flex_flow="row wrap", align_items="flex-start"))
    root = w.VBox([_titled(w.HTML(_HEADER), banner), body])
    root.add_class("dnc-dashboard")
    return root


def lecture_layout(
    controls: dict[str, w.Widget],
    chart: w.Widget,
    shortcuts: w.Widget,
    hidden: set[str],
    banner: w.Widget | None = None,
) -> w.Widget:
    """The lecture layout: ``VBox([title, strip, status row, folded settings, charts])``;
    ``banner`` goes under the title."""
    c = controls
    # one line at 1280 px with 16 px fonts: widths and descriptions for the strip
    sizes = {  # name: (width, description width, description)
        "play": ("100px", None, None),
        "step": ("90px", None, None),
        "reset": ("100px", None, None),
        "counter": ("110px", None, None),
        "preset": ("270px", "0px", ""),
        "lambda_H": ("300px", "24px", "λ"),
        "depth": ("230px", "54px", "depth"),
    }
    for name, (width, label_width, label) in sizes.items():
        c[name].layout.width = width
        if label_width is not None:
            c[name].style.description_width = label_width
            c[name].description = label or ""
    c["preset"].tooltip = "preset: a scenario of the theory"
    more = w.ToggleButton(
        value=False,
        description="settings",
        icon="sliders-h",
        tooltip="every control: data, model, regularization, optimization, share",
        layout=w.Layout(width="110px"),
    )
    c["more"] = more
    strip = w.HBox(
        _keep(c, ["play", "step", "reset", "counter", "preset", "lambda_H", "depth"], hidden),
        layout=w.Layout(flex_flow="row wrap", align_items="center"),
    )
    strip.add_class("dnc-strip")
    c["status"].layout = w.Layout(flex="1 1 0%", min_width="0")
    keys = w.HBox(
        [shortcuts, *_keep(c, ["tour"], hidden), more],
        layout=w.Layout(flex="0 0 auto", align_items="center"),
    )
    status = w.HBox(
        [*_keep(c, ["status"], hidden), keys],
        layout=w.Layout(align_items="center", justify_content="space-between"),
    )
    extra = w.VBox(
        [
            *_keep(c, ["speed", "snapshot_kind", "auto_pause"], hidden),
            w.HBox(_keep(c, ["replay", "live"], hidden)),
        ]
    )
    settings = w.HBox(
        [extra, sections(c, hidden)],
        layout=w.Layout(display="none", flex_flow="row wrap", align_items="flex-start"),
    )

    def toggle(change: dict) -> None:
        settings.layout.display = "flex" if change["new"] else "none"

    more.observe(toggle, names="value")
    chart.layout = w.Layout(width="100%", overflow="auto")
    root = w.VBox([_titled(w.HTML(_LECTURE_HEADER), banner), strip, status, settings, chart])
    root.add_class("dnc-dashboard")
    root.add_class("dnc-lecture")
    return root


def build(
    layout: str,
    controls: dict[str, w.Widget],
    chart: w.Widget,
    shortcuts: w.Widget,
    hidden: Iterable[str] = (),
    banner: w.Widget | None = None,
) -> w.Widget:
    """The root widget of ``layout`` (see :data:`LAYOUTS`); ``banner`` (the guided tour's
    box) goes under its title."""
    builder = {"default": default_layout, "lecture": lecture_layout}[check_layout(layout)]
    return builder(controls, chart, shortcuts, set(hidden), banner)


__all__ = [
    "CONTROL_COLUMN",
    "LAYOUTS",
    "LECTURE_PANEL_NAMES",
    "build",
    "check_layout",
    "default_layout",
    "lecture_layout",
    "sections",
]
