"""A guided tour of the dashboard in five steps, ending in the sandbox.

Each :class:`TourStep` names a preset and a few settings on top of it; the :class:`Tour`
applies them through the dashboard's own machinery (:meth:`Dashboard.apply_preset
<dnc_interactive.widgets.dashboard.Dashboard.apply_preset>` and :meth:`Dashboard.set
<dnc_interactive.widgets.dashboard.Dashboard.set>`), shows a two-sentence explanation and
Back / Next buttons. Next on the last step closes the tour and leaves everything as it is:
the sandbox. ``Dashboard(tour=True)`` opens it at once; the "Tour" button at any time.

1. collapse (theory §3.2): the default binary run — press Play, watch the clouds shrink;
2. depth (theory §6.4): the same problem with L = 6 layers (drag L down to 2 to compare);
3. the λ threshold (theory §7.1): λ past the critical value, the optimum is the zero solution;
4. class imbalance (theory §6.2): a minority class of 5 against 95 collapses to 0;
5. beyond two classes (theory §5): K = 10, a low-rank solution beats DNC.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import ipywidgets as w

if TYPE_CHECKING:  # the coordinator, only for the type of its argument
    from dnc_interactive.widgets.dashboard import Dashboard

BINARY = "deep neural collapse (binary)"


@dataclass(frozen=True)
class TourStep:
    """One step: a title, two sentences, the preset it loads and settings on top of it."""

    title: str
    text: str
    preset: str
    changes: dict[str, Any] = field(default_factory=dict)


#: The tour's steps, in order.
STEPS: tuple[TourStep, ...] = (
    TourStep(
        "Collapse",
        "Two classes, four layers, every λ = 1e-3: press Play and watch each class's feature"
        " cloud shrink onto its mean while the loss meets the dashed optimum L*. When the"
        " status line says 'collapsed: yes', every layer's DNC1 is below 10⁻³ (theory §3.2).",
        BINARY,
    ),
    TourStep(
        "Depth",
        "The same problem with L = 6 layers: the optimum L* is higher and the collapse runs"
        " through every layer, the deepest first. Press Play, then drag the depth down to 2"
        " and compare how fast the clouds shrink (theory §6.4).",
        BINARY,
        {"depth": 6},
    ),
    TourStep(
        "The λ threshold",
        "λ = 0.08 is past the critical λ = 0.0481 of L = 4: the optimum jumps to the zero"
        " solution, and playing shrinks every feature, weight and output to 0 (loss 1/2)."
        " Lower λ below the red mark while it plays and collapse comes back (theory §7.1).",
        "too much regularization: the zero solution",
    ),
    TourStep(
        "Class imbalance",
        "95 samples of class 0 against 5 of class 1, with λ just past the minority's"
        " threshold. Press Play: the majority keeps its output scale q₀ ≈ 0.965 while the"
        " minority's q₁ falls to exactly 0 — minority collapse (theory §6.2).",
        "class imbalance: minority collapse",
    ),
    TourStep(
        "Beyond two classes",
        "K = 10 classes in a four-layer model: the loss goes below the dashed DNC optimum and"
        " the class means of the deep layers lose rank, a low-rank solution (theory §5)."
        " Next ends the tour: every control is yours, the sandbox.",
        "many classes, deep: low-rank solutions",
    ),
)


class Tour:
    """The tour's box (title, text, Back / Next / Close) and its position.

    Args:
        dashboard: the dashboard whose state the steps set.
    """

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.steps = STEPS
        self.index: int | None = None
        self.text = w.HTML()
        self.back_button = w.Button(description="Back", icon="arrow-left")
        self.next_button = w.Button(description="Next", icon="arrow-right", button_style="info")
        self.close_button = w.Button(description="Close", tooltip="end the tour here")
        self.back_button.on_click(lambda _b: self.back())
        self.next_button.on_click(lambda _b: self.next())
        self.close_button.on_click(lambda _b: self.close())
        self.widget = w.VBox(
            [
                self.text,
                w.HBox([self.back_button, self.next_button, self.close_button]),
            ],
            layout=w.Layout(display="none", border="2px solid #1565c0", padding="4px 10px"),
        )
        self.widget.add_class("dnc-tour")

    @property
    def active(self) -> bool:
        return self.index is not None

    @property
    def step(self) -> TourStep | None:
        return None if self.index is None else self.steps[self.index]

    def start(self, index: int = 0) -> None:
        """Open the tour at step ``index`` (0-based) and set its state."""
        if not (isinstance(index, int) and 0 <= index < len(self.steps)):
            raise ValueError(f"index={index!r} is not valid: expected 0..{len(self.steps) - 1}")
        self.index = index
        step = self.steps[index]
        d = self.dashboard
        d.pause()
        d.apply_preset(step.preset)
        if step.changes:
            d.set(**step.changes)
        self._show()

    def next(self) -> None:
        """The next step; after the last one the tour closes (the sandbox, state kept)."""
        if self.index is None:
            self.start()
        elif self.index + 1 < len(self.steps):
            self.start(self.index + 1)
        else:
            self.close()

    def back(self) -> None:
        """The previous step (the first one stays)."""
        if self.index is not None:
            self.start(max(0, self.index - 1))

    def close(self) -> None:
        """End the tour; the dashboard keeps its state (the sandbox)."""
        self.index = None
        self.widget.layout.display = "none"

    def _show(self) -> None:
        step = self.step
        assert step is not None and self.index is not None
        n = len(self.steps)
        self.text.value = (
            f"<div style='font-size:15px;max-width:900px'><b>Tour {self.index + 1} / {n}:"
            f" {html.escape(step.title)}</b> — {html.escape(step.text)}</div>"
        )
        self.back_button.disabled = self.index == 0
        last = self.index == n - 1
        self.next_button.description = "Sandbox" if last else "Next"
        self.next_button.tooltip = "end the tour, keep this state" if last else "next step"
        self.widget.layout.display = "flex"


__all__ = ["STEPS", "Tour", "TourStep"]
