"""The declarative rule type and its constructors: :class:`Rule`, :func:`Int`, :func:`Real`,
:func:`Bool`, :func:`OneOf`, :func:`Text`, :func:`Device`.

A rule states one field's type, interval (``ge``/``gt``/``le``/``lt``), options, list
length and sanity cap, and describes the allowed values in words for the error messages.
Also the dtype facts the rules refer to (:data:`FLOAT_MAX`, :data:`ITEM_BYTES`) and the rules
several classes share (:data:`LEARNING_RATE`, :data:`MOMENTUM`, :data:`SEED`). Checking a
value against a rule is :mod:`dnc_interactive.validation.checking`'s job.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Largest finite value of each floating-point dtype.
FLOAT_MAX: dict[str, float] = {"float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308}


#: Bytes per element of each floating-point dtype.
ITEM_BYTES: dict[str, int] = {"float32": 4, "float64": 8}


#: Longest list a listable rule reads when it has no ``length``.
MAX_LIST = 100_000


@dataclass(frozen=True)
class Rule:
    """The constraints of one field (build it with :func:`Int`, :func:`Real`, ...).

    Attributes:
        kind: "int", "real", "bool", "choice", "text" or "device".
        ge, gt, le, lt: the interval (the mathematical domain).
        cap: an upper bound (a sanity / resource limit), reported as "(at most cap)".
        options: the allowed values of a "choice" (and extra strings of a "device").
        optional: None is allowed (and kept).
        listable: a scalar or a list of them, one per ``length`` (stored as a tuple).
        length: the required number of entries: an int or the name of an earlier field.
        unit: what one entry is for, in messages ("class", "layer (d_1..d_L)").
        collapse: a list whose entries are all equal is stored as that one value.
        fits: the name of the field holding the dtype a real must be finite in.
        finite: reals must be finite.
        text: replaces the generated description of the allowed values.
    """

    kind: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    cap: float | None = None
    options: tuple = ()
    optional: bool = False
    listable: bool = False
    length: int | str | None = None
    unit: str = "entry"
    collapse: bool = True
    fits: str | None = None
    finite: bool = True
    text: str | None = None

    def but(self, **changes: Any) -> Rule:
        """A copy with some attributes changed (to reuse another class's rule)."""
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ words
    def describe(self, with_none: bool = True) -> str:
        """The allowed values in words ("an int >= 1 (at most 1000)", "a float in [0, 1)")."""
        text = self.text if self.text is not None else self._describe_one()
        return text + (" or None" if self.optional and with_none else "")

    def describe_list(self) -> str:
        return self.describe() + " or a list of them" if self.listable else self.describe()

    def _describe_one(self) -> str:
        if self.kind == "bool":
            return "True or False"
        if self.kind == "choice":
            return f"one of {self.options}"
        if self.kind == "text":
            return "a string"
        if self.kind == "device":
            extra = "".join(f"{o!r}, " for o in self.options)
            return f"{extra}'cpu', 'cuda', 'cuda:<index>' or 'mps'"
        noun = "an int" if self.kind == "int" else "a float"
        low = (">=", self.ge) if self.ge is not None else (">", self.gt)
        high = ("<=", self.le) if self.le is not None else ("<", self.lt)
        if low[1] is not None and high[1] is not None:
            lb = "[" if low[0] == ">=" else "("
            rb = "]" if high[0] == "<=" else ")"
            out = f"{noun} in {lb}{_num(low[1])}, {_num(high[1])}{rb}"
        elif low[1] is not None:
            if self.kind == "real" and self.finite:
                noun = "a finite float"
            out = f"{noun} {low[0]} {_num(low[1])}"
        elif high[1] is not None:
            out = f"{noun} {high[0]} {_num(high[1])}"
        else:
            out = ("a finite float" if self.finite else "a float") if self.kind == "real" else noun
        if self.cap is not None:
            out += f" (at most {_num(self.cap)})"
        return out


def _num(x: float) -> str:
    if isinstance(x, int) or (isinstance(x, float) and x.is_integer() and abs(x) < 1e6):
        return str(int(x))
    return f"{x:g}"


def Int(**kw: Any) -> Rule:  # noqa: N802 - rule constructors read like types
    """An int (not a bool, not a float; numpy ints are accepted and stored as ``int``).

    Keywords: the interval ``ge``, ``gt``, ``le``, ``lt``, the upper bound ``cap`` and any
    other :class:`Rule` attribute."""
    return Rule("int", **kw)


def Real(**kw: Any) -> Rule:  # noqa: N802
    """A real number (int or float, not a bool), stored as ``float``; finite by default.

    Keywords as :func:`Int`."""
    return Rule("real", **kw)


def Bool(**kw: Any) -> Rule:  # noqa: N802
    """True or False (not 0 / 1)."""
    return Rule("bool", **kw)


def OneOf(options: Sequence[Any], **kw: Any) -> Rule:  # noqa: N802
    """One of ``options`` (strings, or ints: then bools are refused)."""
    return Rule("choice", options=tuple(options), **kw)


def Text(**kw: Any) -> Rule:  # noqa: N802
    """Any string."""
    return Rule("text", **kw)


def Device(extra: Sequence[str] = (), **kw: Any) -> Rule:  # noqa: N802
    """A torch device string 'cpu', 'cuda', 'cuda:<i>' or 'mps' (plus the ``extra`` words,
    e.g. 'auto'). Only the spelling is checked; :func:`check_device_available` checks that
    the device exists here."""
    return Rule("device", options=tuple(extra), **kw)


#: Shared rules, reused by the classes that have the same parameter.
LEARNING_RATE = Real(gt=0, cap=1e6)


MOMENTUM = Real(ge=0, lt=1)


SEED = Int(ge=0, cap=2**63 - 1)


_DEVICE = re.compile(r"(cpu|cuda|mps)(:(\d{1,4}))?")
