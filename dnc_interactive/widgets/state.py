"""The dashboard's settings and their shareable state string.

:class:`Settings` is everything a :class:`~dnc_interactive.widgets.Dashboard` needs to rebuild a
run: the :class:`~dnc_interactive.config.DUFMConfig` (theory §1.2) plus the optimiser settings
(learning rate, optimiser, divergence guard) and the playback speed. It is validated like the
config, by one table (:data:`RULES`, :mod:`dnc_interactive.validation`): a bad value raises
:class:`~dnc_interactive.validation.ParameterError` (a ``ValueError``) naming the field, the
value and the allowed range.

:func:`encode_state` turns settings into a short, URL-safe string (version 1: urlsafe base64,
without padding, of the compact JSON of the fields that differ from the defaults, under short
keys); :func:`decode_state` reads it back, also from a URL or a query string holding
``state=...``. The default settings encode to ``eyJ2IjoxfQ``. Whatever the text,
:func:`decode_state` either returns valid settings or raises one ``ValueError`` (a
``ParameterError`` naming ``state`` or the bad field), cheaply: the text's length is bounded
(:data:`MAX_STATE_CHARS`) and the model's size is checked against the resource budget before
anything is built.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from dnc_interactive.config import FIELD_NAMES, DUFMConfig
from dnc_interactive.training import OPTIMIZERS
from dnc_interactive.validation import (
    LEARNING_RATE,
    Bool,
    OneOf,
    ParameterError,
    Rule,
    check_fields,
    check_known,
    short_repr,
)

#: Version of the state string format written by :func:`encode_state`.
STATE_VERSION = 1

#: Playback speeds, in training steps per chart update; 0 means "as fast as possible".
SPEEDS: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 0)

#: Default learning rate of each optimiser (heavy-ball GD recipe of theory §4.1; Adam).
DEFAULT_LR: dict[str, float] = {"gd": 1.0, "adam": 0.01}

#: Settings that are not DUFMConfig fields.
RUN_FIELDS: tuple[str, ...] = ("lr", "optimizer", "guard", "speed")

#: Settings whose change keeps the current run going (everything else resets the model).
CONTINUING_FIELDS: frozenset[str] = frozenset({"lr", "guard", "speed"})

#: Settings that change the objective but not the model (λ_H, λ_W, theory §1.2): the
#: dashboard goes on from the current weights under the new objective (L* recomputed).
OBJECTIVE_FIELDS: frozenset[str] = frozenset({"lambda_H", "lambda_W"})

#: The constraints of the run fields (the config's are :data:`dnc_interactive.config.RULES`).
RULES: dict[str, Rule] = {
    "lr": LEARNING_RATE,
    "optimizer": OneOf(OPTIMIZERS),
    "guard": Bool(),
    "speed": OneOf(SPEEDS, text=f"one of {SPEEDS} (steps per update, 0 = as fast as possible)"),
}

#: Longest state string :func:`decode_state` reads (a preset's is 30-80 characters; one
#: with a count per class for hundreds of classes stays far below this).
MAX_STATE_CHARS = 20_000

# Short keys of the state string (kept stable: changing one breaks shared links).
_SHORT = {
    "num_classes": "K",
    "samples_per_class": "n",
    "depth": "L",
    "width": "d",
    "lambda_H": "lh",
    "lambda_W": "lw",
    "activation": "act",
    "loss": "loss",
    "init_scale": "init",
    "seed": "seed",
    "dtype": "dt",
    "device": "dev",
    "lr": "lr",
    "optimizer": "opt",
    "guard": "g",
    "speed": "spd",
}
_LONG = {v: k for k, v in _SHORT.items()}


@dataclass(frozen=True)
class Settings:
    """A dashboard's full settings: the model config plus how it is trained and played.

    Attributes:
        config: the DUFM problem (theory §1.2).
        lr: learning rate (a finite float > 0).
        optimizer: "gd" (heavy-ball gradient descent, the default recipe) or "adam".
        guard: on a NaN/inf loss, restore the last finite state and halve the learning rate
            (the trainer's divergence guard) instead of stopping at once.
        speed: training steps per chart update, one of :data:`SPEEDS` (0: as fast as possible).
    """

    config: DUFMConfig = field(default_factory=DUFMConfig)
    lr: float = DEFAULT_LR["gd"]
    optimizer: str = "gd"
    guard: bool = True
    speed: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.config, DUFMConfig):
            raise ParameterError("config", self.config, "a DUFMConfig", owner="Settings")
        values = check_fields("Settings", RULES, {k: getattr(self, k) for k in RULES})
        for name, value in values.items():
            object.__setattr__(self, name, value)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, base: Settings | None = None, **changes: Any) -> Settings:
        """Settings from keyword arguments: any DUFMConfig field, ``lr``, ``optimizer``,
        ``guard`` or ``speed``; unknown names raise ``ValueError`` naming them.

        When ``optimizer`` changes and ``lr`` is not given, the learning rate follows the new
        optimiser's default (:data:`DEFAULT_LR`) if it was at the old one's default.
        """
        base = base or cls()
        if not isinstance(base, Settings):
            raise ParameterError("base", base, "a Settings or None", owner="Settings")
        check_known("Settings", changes, [*FIELD_NAMES, *RUN_FIELDS], what="setting")
        config_changes = {k: v for k, v in changes.items() if k in FIELD_NAMES}
        run_changes = {k: v for k, v in changes.items() if k in RUN_FIELDS}
        config = base.config.replace(**config_changes) if config_changes else base.config
        new_opt = run_changes.get("optimizer", base.optimizer)
        if (
            "lr" not in run_changes
            and isinstance(new_opt, str)
            and new_opt != base.optimizer
            and new_opt in DEFAULT_LR
            and base.lr == DEFAULT_LR.get(base.optimizer)
        ):
            run_changes["lr"] = DEFAULT_LR[new_opt]
        return dataclasses.replace(base, config=config, **run_changes)

    def replace(self, **changes: Any) -> Settings:
        """A validated copy with some settings changed (see :meth:`build`)."""
        return Settings.build(self, **changes)

    def changed_fields(self, other: Settings) -> set[str]:
        """Names of the settings (config fields included) that differ between the two."""
        a, b = self.to_dict(), other.to_dict()
        return {k for k in a if a[k] != b[k]}

    def to_dict(self) -> dict[str, Any]:
        """Flat plain-Python dict: the config's fields (lists for tuples) and the run fields."""
        return {**self.config.to_dict(), **{k: getattr(self, k) for k in RUN_FIELDS}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Inverse of :meth:`to_dict` (missing keys take their defaults)."""
        if not isinstance(data, dict):
            raise ParameterError("data", data, "a dict of settings", owner="Settings")
        check_known("Settings", data, [*FIELD_NAMES, *RUN_FIELDS], what="setting")
        return cls.build(**data)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def encode_state(settings: Settings) -> str:
    """The shareable state string of ``settings`` (format version :data:`STATE_VERSION`).

    Only the fields that differ from :class:`Settings`'s defaults are stored, so the string
    stays short (a preset is typically 30-80 characters) and URL-safe.
    """
    if not isinstance(settings, Settings):
        raise ValueError(f"settings={settings!r} is not valid: expected a Settings")
    now, default = settings.to_dict(), Settings().to_dict()
    payload: dict[str, Any] = {"v": STATE_VERSION}
    payload.update({_SHORT[k]: v for k, v in now.items() if v != default[k]})
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    return _b64encode(text.encode("utf-8"))


def extract_state(text: str) -> str | None:
    """The state string inside ``text``: a bare state, a URL or a query string with
    ``state=...`` (None when a URL or query string has no ``state`` parameter)."""
    if not isinstance(text, str):
        raise ParameterError("state", text, "a string")
    text = text.strip()
    if "=" in text.rstrip("=") or "?" in text or "&" in text:
        try:
            query = urllib.parse.urlsplit(text).query if "?" in text else text
            values = urllib.parse.parse_qs(query.lstrip("?")).get("state")
        except ValueError:  # e.g. a malformed IPv6 host
            raise ParameterError(
                "state", short_repr(text, 60), "a URL or query string with state=..."
            ) from None
        return values[-1].strip() if values else None
    return text


def _bad_state(short: str, why: str) -> ParameterError:
    return ParameterError(
        "state",
        short,
        "a string copied from the dashboard's 'share' box",
        message=f"state={short!r} is not valid: {why}",
        owner="decode_state",
    )


def decode_state(text: str) -> Settings:
    """Read a state string written by :func:`encode_state` (or a URL / query holding one).

    Any text gives valid settings or one ``ValueError``, within milliseconds and without
    building anything: the length is bounded (:data:`MAX_STATE_CHARS`), the values are
    checked by the settings' and the config's tables and the model's size by the budget.

    Raises:
        ParameterError: (a ``ValueError``) naming ``state`` when the text is not a state
            string of a known version, or the field whose stored value is invalid (with the
            config's own message; ``BudgetError`` when the model is too big).
    """
    if not isinstance(text, str):
        raise ParameterError(
            "state",
            text,
            "a string",
            message=f"state={short_repr(text)} is not valid: expected a string",
        )
    if len(text) > 4 * MAX_STATE_CHARS:
        raise _bad_state(
            text[:37] + "...",
            f"it has {len(text)} characters; expected a share link or state"
            f" string of at most {MAX_STATE_CHARS}",
        )
    state = extract_state(text)
    if not state:
        raise _bad_state(short_repr(text, 60)[1:-1], "no state string found")
    short = state if len(state) <= 40 else state[:37] + "..."
    if len(state) > MAX_STATE_CHARS:
        raise _bad_state(
            short, f"it has {len(state)} characters; expected at most {MAX_STATE_CHARS}"
        )
    try:
        raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
        payload = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        raise _bad_state(
            short, "expected a string copied from the dashboard's 'share' box"
        ) from None
    if not isinstance(payload, dict):
        raise _bad_state(short, "it does not hold a settings object")
    version = payload.pop("v", None)
    if type(version) is not int or version != STATE_VERSION:
        raise _bad_state(
            short,
            f"format version {short_repr(version, 30)} is not supported (expected {STATE_VERSION})",
        )
    unknown = sorted(set(payload) - set(_LONG))
    if unknown:
        raise _bad_state(short, f"unknown key(s) {short_repr(unknown, 60)}")
    try:
        return Settings.build(**{_LONG[k]: v for k, v in payload.items()})
    except ValueError:
        raise
    except (TypeError, OverflowError, RecursionError) as exc:  # a safety net: never a crash
        raise _bad_state(short, f"a stored value is not usable ({type(exc).__name__})") from None


__all__ = [
    "CONTINUING_FIELDS",
    "DEFAULT_LR",
    "MAX_STATE_CHARS",
    "OBJECTIVE_FIELDS",
    "RULES",
    "RUN_FIELDS",
    "SPEEDS",
    "STATE_VERSION",
    "Settings",
    "decode_state",
    "encode_state",
    "extract_state",
]
