"""The error every validator raises, :class:`ParameterError`, and the short one-line
renderings of values and messages it is built from.

A :class:`ParameterError` is a ``ValueError`` carrying the field name, the value and the
allowed range as attributes (so the command line maps field -> flag without parsing
messages), and pickles across process pools. :func:`short_repr` and :func:`one_line` keep a
huge list, an int of a million digits or a multi-line message to one readable line.
"""

from __future__ import annotations

import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxstring = 60
_REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = 8
_REPR.maxdict = 6
_REPR.maxlong = 40


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to about ``limit`` characters (cheap for huge lists and ints)."""
    try:
        text = _REPR.repr(value)
    except Exception:  # e.g. an int with more digits than Python will print
        if isinstance(value, int):
            return f"<an int of {value.bit_length()} bits>"
        return f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def one_line(text: Any, limit: int = 300) -> str:
    """``str(text)`` on one line (whitespace runs become one space), at most ``limit`` chars."""
    s = " ".join(str(text).split())
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _rebuild(cls: type[ParameterError], message: str, state: dict) -> ParameterError:
    err = cls.__new__(cls)
    err.args = (message,)
    err.__dict__.update(state)
    return err


class ParameterError(ValueError):
    """A parameter outside its allowed range.

    Attributes:
        field: the field (or flag-less parameter) name, e.g. ``"samples_per_class"``.
        value: the offending value (an entry's value when ``index`` is set).
        allowed: the allowed range in words, e.g. ``"an int >= 1 (at most 1000)"``.
        index: the entry of a list that is wrong (None for the whole value).
        owner: the class or function that checked it (``"DUFMConfig"``, ...).

    ``str(err)`` is one line naming the field, the value and the range, e.g.
    ``depth=0 is not valid: expected an int >= 1 (at most 1000)``.
    """

    def __init__(
        self,
        field: str,
        value: Any,
        allowed: str,
        *,
        message: str | None = None,
        index: int | None = None,
        owner: str | None = None,
    ) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        self.index = index
        self.owner = owner
        if message is None:
            message = f"{self.name}={short_repr(value)} is not valid: expected {allowed}"
        super().__init__(message)

    @property
    def name(self) -> str:
        """``field`` or ``field[index]``."""
        return self.field if self.index is None else f"{self.field}[{self.index}]"

    def __reduce__(self):  # picklable (process pools, Dask)
        return (_rebuild, (type(self), str(self), dict(self.__dict__)))
