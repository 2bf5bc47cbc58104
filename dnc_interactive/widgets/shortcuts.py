"""Keyboard shortcuts for the dashboard: Space plays / pauses, → (or ".") steps.

ipywidgets has no key events, so :class:`Shortcuts` is a tiny anywidget (its JavaScript is
inline, no bundle, no CDN) that listens to key presses on the page and sends the action to
Python, where the dashboard handles it as a click on its Play or Step button. It shows its
own hint ("keys: Space play / pause · → step").

Which dashboard a key drives: the one last clicked; before any click, in Voilà (a page with
one dashboard) the first dashboard on the page. In JupyterLab a key is taken only after a
click inside the dashboard (JupyterLab's own shortcuts keep working everywhere else: the
notebook's j/k/space still move and scroll until you click on a dashboard, and again once
you click elsewhere). Keys typed into a text box, or with Ctrl / Alt / Meta, are never taken.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import traitlets

#: Keys (``KeyboardEvent.key``) and the action each one sends.
KEYS: dict[str, str] = {" ": "play", "k": "play", "ArrowRight": "step", ".": "step"}

#: The hint the widget shows.
HINT = "keys: Space play / pause · → step"

_ESM = """
const KEYS = %KEYS%;

function typing(target) {
  if (!target || !target.tagName) return false;
  const tag = target.tagName.toLowerCase();
  return tag === "input" || tag === "textarea" || tag === "select" || target.isContentEditable;
}

function render({ model, el }) {
  el.classList.add("dnc-keys");
  el.textContent = model.get("hint");
  el.title = "click the dashboard, then press Space to play or pause and the right arrow to step";
  const root = () => el.closest(".dnc-dashboard");
  let swallowUp = false;

  function mine() {
    const r = root();
    if (!r || !r.isConnected) return false;
    const active = window.__dncActiveDashboard;
    if (active && active.isConnected) return active === r;
    // JupyterLab (its dock panel; Voila's page has a LabShell but no dock): click first
    if (document.querySelector("#jp-main-dock-panel")) return false;
    return document.querySelector(".dnc-dashboard") === r;
  }

  function onPointer(event) {
    const r = event.target && event.target.closest ? event.target.closest(".dnc-dashboard") : null;
    window.__dncActiveDashboard = r;
  }

  function onKey(event) {
    const action = KEYS[event.key];
    if (!action || event.ctrlKey || event.altKey || event.metaKey || event.repeat) return;
    if (typing(event.target) || !mine()) return;
    event.preventDefault();
    event.stopPropagation();
    swallowUp = event.key === " ";
    model.send({ type: "key", action });
    el.dataset.presses = String(Number(el.dataset.presses || "0") + 1);
  }

  function onKeyUp(event) {
    // A focused button would also "click" on Space's key-up: the press was ours.
    if (swallowUp && event.key === " ") {
      event.preventDefault();
      event.stopPropagation();
      swallowUp = false;
    }
  }

  window.addEventListener("pointerdown", onPointer, true);
  window.addEventListener("keydown", onKey, true);
  window.addEventListener("keyup", onKeyUp, true);
  return () => {
    window.removeEventListener("pointerdown", onPointer, true);
    window.removeEventListener("keydown", onKey, true);
    window.removeEventListener("keyup", onKeyUp, true);
  };
}

export default { render };
"""


def _esm() -> str:
    import json

    return _ESM.replace("%KEYS%", json.dumps(KEYS))


class Shortcuts(anywidget.AnyWidget):
    """The page's key presses, as actions (``"play"``, ``"step"``) for ``on_action``.

    Args:
        on_action: called with the action of each key press the widget takes.
    """

    _esm = _esm()
    _css = ".dnc-keys { font-size: 12px; color: #555; white-space: nowrap; align-self: center; }"
    hint = traitlets.Unicode(HINT).tag(sync=True)

    def __init__(self, on_action: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.on_action = on_action
        #: Actions received so far (for tests).
        self.presses = 0
        self.on_msg(self._on_message)

    def _on_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        if not (isinstance(content, dict) and content.get("type") == "key"):
            return
        action = content.get("action")
        if action not in set(KEYS.values()):
            return
        self.presses += 1
        if self.on_action is not None:
            self.on_action(str(action))


__all__ = ["HINT", "KEYS", "Shortcuts"]
