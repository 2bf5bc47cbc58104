"""Named starting points of the dashboard, each a small experiment with a prediction to test.

Every preset is a full set of :class:`~dnc_interactive.widgets.state.Settings` (unlisted
fields take the defaults) plus a one-paragraph description that names what to look for. The
numbers come from the reference values of theory §7: the default problem of theory §7.2, lambda past
the threshold of §7.1, the minority-collapse check of §7.5 and the K = 10 low-rank experiment
of §5 / §7.7, and a K = 6, L = 2 case of §5 where DNC beats every known low-rank construction
(gradient descent reaches L_DNC from seeds 0-2: measured gaps ≤ 2e-7 after 3 000 steps).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dnc_interactive.widgets.state import Settings


@dataclass(frozen=True)
class Preset:
    """One named experiment: settings changes from the defaults and what to look for."""

    name: str
    description: str
    changes: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> Settings:
        """The preset's full, validated settings."""
        return Settings.build(**self.changes)


PRESET_LIST: tuple[Preset, ...] = (
    Preset(
        "deep neural collapse (binary)",
        "K = 2 classes, 50 samples each, L = 4 layers, all λ = 1e-3 (theory §7.2). Predict: the"
        " loss reaches the dashed optimum L* = 0.010924 and DNC1 falls towards 0 in every"
        " layer; the class means become orthogonal (Gram = I/√K) after each ReLU.",
        {},
    ),
    Preset(
        "too much regularization: the zero solution",
        "Same problem with λ = 0.08, above the critical λ = 0.0481 for L = 4 (theory §7.1)."
        " Predict: every feature, weight and output shrinks to 0 and the loss settles at 1/2"
        " (the trivial solution wins). Lower λ below the red mark to bring collapse back.",
        {"lambda_H": 0.08, "lambda_W": 0.08},
    ),
    Preset(
        "class imbalance: minority collapse",
        "95 samples of class 0 against 5 of class 1, L = 3, λ = 0.0105, 15 % past the minority"
        " threshold (theory §6, §7.5). Predict: the majority class keeps q_0 ≈ 0.965 while the"
        " minority's output scale q_1 falls to exactly 0 — it vanishes from the solution.",
        {"samples_per_class": [95, 5], "depth": 3, "lambda_H": 0.0105, "lambda_W": 0.0105},
    ),
    Preset(
        "many classes, deep: low-rank solutions",
        "K = 10 classes, n = 5, L = 4, width 30, λ = 4e-3, lr 0.5 (the follow-up's Fig. 2, theory"
        " §5). Predict: the loss goes below the dashed DNC optimum (a negative gap) and the"
        " class means of the deep layers lose rank — DNC is not optimal beyond two classes.",
        {
            "num_classes": 10,
            "samples_per_class": 5,
            "width": 30,
            "lambda_H": 4e-3,
            "lambda_W": 4e-3,
            "lr": 0.5,
            "seed": 2,
        },
    ),
    Preset(
        "beyond two classes, shallow: DNC wins",
        "K = 6 classes, n = 5, L = 2, width 30, λ = 4e-3, lr 0.5 (theory §5: with two layers"
        " the SRG construction costs more than DNC, 1.26 L_DNC, and its optimised symmetric"
        " family ends at DNC itself). Predict: the loss meets the dashed L* (no negative gap),"
        " every layer keeps rank K = 6 and the solution type reads DNC — compare with the"
        " K = 10, L = 4 preset, where a low-rank solution wins.",
        {
            "num_classes": 6,
            "samples_per_class": 5,
            "depth": 2,
            "width": 30,
            "lambda_H": 4e-3,
            "lambda_W": 4e-3,
            "lr": 0.5,
        },
    ),
    Preset(
        "classic UFM (L = 1)",
        "One weight matrix, the unconstrained features model (theory §2.2, L = 1). Predict: the"
        " same collapse, and the output scale q = 1 − K√(nλ_Hλ_W) shrinks continuously as λ"
        " grows (no jump, unlike L ≥ 2).",
        {"depth": 1},
    ),
)

#: Presets by name.
PRESETS: dict[str, Preset] = {p.name: p for p in PRESET_LIST}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ``ValueError`` listing the names otherwise."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is not valid: expected one of {list(PRESETS)}")
    return PRESETS[name]


def find_preset(settings: Settings) -> str | None:
    """The name of the preset whose settings equal ``settings`` (ignoring the speed), if any."""
    for p in PRESET_LIST:
        if p.settings().replace(speed=settings.speed) == settings:
            return p.name
    return None


__all__ = ["PRESETS", "PRESET_LIST", "Preset", "find_preset", "get_preset"]
