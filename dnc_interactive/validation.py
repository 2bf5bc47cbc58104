"""One declarative validator for every config and settings class, and the resource budget.

Rules
-----
A class declares its fields' constraints in **one table** ``{field name: Rule}`` and calls
:func:`check_fields` once; the function checks every field in table order and either returns
the normalised values (ints as ``int``, reals as ``float``, lists as tuples) or raises one
:class:`ParameterError` (a ``ValueError``) that carries the field name, the value and the
allowed range as attributes, so callers (the command line) map field -> flag without parsing
messages::

    RULES = {
        "depth": Int(ge=1, cap=1000),
        "width": Int(ge=1, cap=10**6, listable=True, length="depth", unit="layer"),
        "lr": Real(gt=0, cap=1e6),
        "momentum": Real(ge=0, lt=1),
        "optimizer": OneOf(("gd", "adam")),
        "guard": Bool(),
    }
    values = check_fields("Recipe", RULES, {"depth": 3, ...})   # normalised, or ParameterError

A rule has a type (``Int``, ``Real``, ``Bool``, ``OneOf``, ``Text``, ``Device``), an
interval (``ge``/``gt``/``le``/``lt``: the mathematical domain), options, a list length
(``listable=True`` with ``length`` = an int or the name of an earlier field) and an upper
bound ``cap`` (a sanity / resource limit, reported as "(at most ...)"). No bool is taken for
a number and no float for an int; reals must be finite (unless ``finite=False``) and, with
``fits="dtype"``, representable in the dtype named by that field (``float32`` overflows at
3.4e38). Lists are read lazily, so a huge or endless iterable costs nothing before its length
is refused.

Budget
------
Every entry point (a :class:`~dnc_interactive.config.DUFMConfig`, and so a dashboard state
string, a sweep grid and the command line) estimates, by arithmetic only (nothing is
allocated), the peak memory and the floating-point work of one training step (with one
metrics record) of a DUFM from K, N, d_l and L, and refuses anything over the budget with a
:class:`BudgetError` that states the estimate and the limit. The defaults suit a 2 GiB Binder
kernel on 2 cores:

* memory: 1 GiB of tensors (the rest of the kernel, torch and the widgets take ~0.5 GiB);
* work: 5e10 floating-point operations per step (a second or two on one Binder core);
* configurations: 50 000 per sweep grid.

Raise them on a big machine with the environment variables
``DNC_INTERACTIVE_MEMORY_BUDGET`` (bytes, or a size such as ``16GiB`` / ``500MB``),
``DNC_INTERACTIVE_WORK_BUDGET`` (operations, e.g. ``1e12``) and
``DNC_INTERACTIVE_GRID_BUDGET`` (configurations), or from Python with
:func:`set_budget` (``set_budget(memory="16GiB", work=1e12)``; :func:`budget` is the same as
a context manager). ``set_budget`` wins over the environment; ``set_budget()`` with no
arguments goes back to the environment / defaults.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import numbers
import os
import re
import reprlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Largest finite value of each floating-point dtype.
FLOAT_MAX: dict[str, float] = {"float32": 3.4028234663852886e38, "float64": 1.7976931348623157e308}
#: Bytes per element of each floating-point dtype.
ITEM_BYTES: dict[str, int] = {"float32": 4, "float64": 8}
#: Longest list a listable rule reads when it has no ``length``.
MAX_LIST = 100_000

MEMORY_ENV = "DNC_INTERACTIVE_MEMORY_BUDGET"
WORK_ENV = "DNC_INTERACTIVE_WORK_BUDGET"
GRID_ENV = "DNC_INTERACTIVE_GRID_BUDGET"

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


# ====================================================================== errors
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


class BudgetError(ParameterError):
    """A problem too big for the resource budget (see the module docstring).

    Besides :class:`ParameterError`'s attributes: ``resource`` ("memory", "work" or
    "configurations"), ``estimate`` and ``limit`` (bytes, operations per step or a count).
    ``field`` is the parameter that is furthest above its default (the one to lower).
    """

    def __init__(
        self,
        field: str,
        value: Any,
        *,
        resource: str,
        estimate: float,
        limit: float,
        what: str,
        owner: str | None = None,
    ) -> None:
        self.resource = resource
        self.estimate = estimate
        self.limit = limit
        env = {"memory": MEMORY_ENV, "work": WORK_ENV, "configurations": GRID_ENV}[resource]
        est, lim = _amount(resource, estimate), _amount(resource, limit)
        allowed = f"{what} within the {resource} budget of {lim}"
        raise_it = f"raise the budget with the environment variable {env} or"
        raise_it += " dnc_interactive.validation.set_budget"
        if resource == "configurations":
            message = (
                f"{field}={short_repr(value)} is not valid: {what} is over the budget of {lim}"
                f" (sweep fewer values, or {raise_it})"
            )
        else:
            message = (
                f"{field}={short_repr(value)} is not valid: {what} needs about {est} of"
                f" {resource}, over the budget of {lim} (lower {field}, or {raise_it})"
            )
        super().__init__(field, value, allowed, message=message, owner=owner)


def _amount(resource: str, x: float) -> str:
    if resource == "memory":
        return format_bytes(x)
    if resource == "work":
        return f"{x:.2g} floating-point operations per step"
    return f"{int(x):,} configurations"


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return f"{n:.3g} PiB"  # pragma: no cover


# ====================================================================== rules
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


def Int(  # noqa: N802 - rule constructors read like types
    *,
    ge: int | None = None,
    gt: int | None = None,
    le: int | None = None,
    lt: int | None = None,
    cap: int | None = None,
    **kw: Any,
) -> Rule:
    """An int (not a bool, not a float; numpy ints are accepted and stored as ``int``)."""
    return Rule("int", ge=ge, gt=gt, le=le, lt=lt, cap=cap, **kw)


def Real(  # noqa: N802
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    cap: float | None = None,
    **kw: Any,
) -> Rule:
    """A real number (int or float, not a bool), stored as ``float``; finite by default."""
    return Rule("real", ge=ge, gt=gt, le=le, lt=lt, cap=cap, **kw)


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


# ====================================================================== checking
def check_value(
    name: str,
    value: Any,
    rule: Rule,
    *,
    owner: str | None = None,
    index: int | None = None,
    dtype: str | None = None,
) -> Any:
    """``value`` checked against ``rule`` (one scalar, no list handling) and normalised.

    Raises:
        ParameterError: naming ``name`` (and ``index``), the value and ``rule.describe()``.
    """

    def fail(allowed: str | None = None) -> ParameterError:
        return ParameterError(name, value, allowed or rule.describe(), index=index, owner=owner)

    if value is None:
        if rule.optional:
            return None
        raise fail()
    kind = rule.kind
    if kind == "bool":
        if not isinstance(value, bool):
            raise fail()
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise fail()
        return str(value)
    if kind == "device":
        if not isinstance(value, str) or not (value in rule.options or _DEVICE.fullmatch(value)):
            raise fail()
        return str(value)
    if kind == "choice":
        if isinstance(value, bool) and not any(isinstance(o, bool) for o in rule.options):
            raise fail()
        if isinstance(value, str):
            value_n: Any = str(value)
        elif isinstance(value, numbers.Integral):
            value_n = int(value)
        else:
            raise fail()
        for option in rule.options:
            if type(option) is type(value_n) and option == value_n:
                return option
        raise fail()
    # numbers
    if isinstance(value, bool):
        raise fail()
    if kind == "int":
        if not isinstance(value, numbers.Integral):
            raise fail()
        v: Any = int(value)
    else:
        if not isinstance(value, numbers.Real):
            raise fail()
        try:
            v = float(value)
        except (OverflowError, ValueError, TypeError):
            raise fail() from None
        if rule.finite and not math.isfinite(v):
            raise fail()
    if kind == "real" and math.isnan(v):  # only with finite=False: NaN is in no interval
        if any(b is not None for b in (rule.ge, rule.gt, rule.le, rule.lt, rule.cap)):
            raise fail()
        return v
    ok = (
        (rule.ge is None or v >= rule.ge)
        and (rule.gt is None or v > rule.gt)
        and (rule.le is None or v <= rule.le)
        and (rule.lt is None or v < rule.lt)
        and (rule.cap is None or v <= rule.cap)
    )
    if not ok:
        raise fail()
    if dtype is not None and kind == "real" and abs(v) > FLOAT_MAX.get(dtype, math.inf):
        raise fail(f"{rule.describe()} that fits {dtype} (|x| <= {FLOAT_MAX[dtype]:.3g})")
    return v


def _is_scalar(value: Any, rule: Rule) -> bool:
    if value is None or isinstance(value, (str, bytes, bytearray, bool)):
        return True
    if isinstance(value, (Mapping, set, frozenset)):
        return True  # not a list of entries: refused with the list description
    return not hasattr(value, "__iter__")


def check_list(
    name: str,
    value: Any,
    rule: Rule,
    *,
    length: int | None = None,
    length_name: str | None = None,
    owner: str | None = None,
    dtype: str | None = None,
) -> Any:
    """A listable field: a scalar (checked as one value) or a list of exactly ``length``
    entries (at most :data:`MAX_LIST` without a length), each checked; returns the scalar,
    the tuple, or (``rule.collapse``) the one value all entries share."""
    if _is_scalar(value, rule):
        if value is not None and not isinstance(value, (numbers.Number, str, bytes, bytearray)):
            raise ParameterError(name, value, rule.describe_list(), owner=owner)
        if isinstance(value, (str, bytes, bytearray)) and rule.kind not in (
            "text",
            "choice",
            "device",
        ):
            raise ParameterError(name, value, rule.describe_list(), owner=owner)
        return check_value(name, value, rule, owner=owner, dtype=dtype)
    limit = length if length is not None else MAX_LIST
    one = _article_free(rule.describe(with_none=False))
    per = f"one {one} per {rule.unit}"
    where = f"{length_name}={length}" if length_name else f"{length} are needed"

    def wrong(count: str) -> ParameterError:
        if length is None:
            msg = f"{name} has {count} entries: expected at most {MAX_LIST}"
            return ParameterError(
                name, value, f"at most {MAX_LIST} entries", message=msg, owner=owner
            )
        msg = f"{name} has {count} entries but {where}: expected {per}"
        return ParameterError(name, value, per, message=msg, owner=owner)

    try:
        n = len(value)
    except Exception:
        n = None
    if n is not None:
        if (length is not None and n != length) or n > limit:
            raise wrong(str(n))
        try:
            items = tuple(itertools.islice(iter(value), n))
        except Exception:
            raise ParameterError(name, value, rule.describe_list(), owner=owner) from None
    else:
        try:
            items = tuple(itertools.islice(iter(value), limit + 1))
        except Exception:
            raise ParameterError(name, value, rule.describe_list(), owner=owner) from None
        if len(items) > limit:
            raise wrong(f"more than {limit}")
        if length is not None and len(items) != length:
            raise wrong(str(len(items)))
    out = tuple(
        check_value(name, v, rule, owner=owner, index=i, dtype=dtype) for i, v in enumerate(items)
    )
    if rule.collapse and out and all(v == out[0] for v in out):
        return out[0]
    return out


def _article_free(text: str) -> str:
    for a in ("an ", "a "):
        if text.startswith(a):
            return text[len(a) :]
    return text


def check_fields(
    owner: str,
    rules: Mapping[str, Rule],
    values: Mapping[str, Any],
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Check ``values`` (a value for every field of ``rules``) in table order.

    Returns the normalised values. A listable rule's ``length`` names an earlier field (its
    normalised value is the required length) or a key of ``context`` (a derived quantity such
    as the number of classes); ``fits`` names the field holding the dtype (checked first when
    it comes later in the table).

    Raises:
        ParameterError: for the first field that is not valid.
    """
    out: dict[str, Any] = {}
    dtype_fields = {r.fits for r in rules.values() if r.fits}
    for f in dtype_fields:  # the dtype first: the numbers are checked against it
        if f in rules and f not in out:
            out[f] = check_value(f, values.get(f), rules[f], owner=owner)
    for name, rule in rules.items():
        if name in out:
            continue
        value = values.get(name)
        dtype = out.get(rule.fits) if rule.fits else None
        if rule.listable:
            length = rule.length
            length_name = None
            if isinstance(length, str):
                length_name = length
                length = out[length] if length in out else (context or {})[length]
            out[name] = check_list(
                name,
                value,
                rule,
                length=length,
                length_name=length_name,
                owner=owner,
                dtype=dtype,
            )
        else:
            out[name] = check_value(name, value, rule, owner=owner, dtype=dtype)
    return {name: out[name] for name in rules}


def check_known(owner: str, names: Any, allowed: Sequence[str], what: str | None = None) -> None:
    """Refuse keys that are not in ``allowed``: ``ParameterError`` naming them
    ("unknown DUFMConfig field(s) ['depht']: expected some of [...]"; ``what`` replaces
    "DUFMConfig field")."""
    unknown = sorted({k if isinstance(k, str) else repr(k) for k in names} - set(allowed))
    if unknown:
        what = what or f"{owner} field"
        raise ParameterError(
            unknown[0],
            None,
            f"some of {sorted(allowed)}",
            message=f"unknown {what}(s) {unknown}: expected some of {sorted(allowed)}",
            owner=owner,
        )


# ====================================================================== budget
@dataclass(frozen=True)
class Budget:
    """Resource limits of one problem (see the module docstring).

    Attributes:
        memory: bytes of tensors one DUFM may need at its peak (training step and metrics).
        work: floating-point operations of one training step plus one metrics record.
        configurations: configurations of one sweep grid.
    """

    memory: float = 2**30
    work: float = 5e10
    configurations: int = 50_000


DEFAULT_BUDGET = Budget()
_override: Budget | None = None
_warned: set[str] = set()

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1e3,
    "kb": 1e3,
    "m": 1e6,
    "mb": 1e6,
    "g": 1e9,
    "gb": 1e9,
    "t": 1e12,
    "tb": 1e12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: Any) -> float:
    """A number of bytes from ``4294967296``, ``'4GiB'``, ``'500 MB'``, ``'2e9'``."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a size")
    if isinstance(text, numbers.Real):
        value = float(text)
    else:
        m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([a-zA-Z]*)\s*", str(text))
        if not m or m.group(2).lower() not in _UNITS:
            raise ValueError(f"{text!r} is not a size like 4GiB, 500MB or 2e9")
        value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{text!r} is not a positive size")
    return value


def _from_env(name: str, default: float, parse) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return parse(text)
    except ValueError as exc:
        if name not in _warned:
            _warned.add(name)
            warnings.warn(
                f"{name}={text!r} is not valid ({exc}); using the default {default:g}",
                UserWarning,
                stacklevel=3,
            )
        return default


def get_budget() -> Budget:
    """The budget in force: :func:`set_budget`'s, else the environment's, else the default."""
    if _override is not None:
        return _override
    d = DEFAULT_BUDGET
    return Budget(
        memory=_from_env(MEMORY_ENV, d.memory, parse_size),
        work=_from_env(WORK_ENV, d.work, parse_size),
        configurations=int(_from_env(GRID_ENV, d.configurations, parse_size)),
    )


def set_budget(
    memory: float | str | None = None,
    work: float | str | None = None,
    configurations: int | None = None,
) -> Budget:
    """Set the budget for this process (e.g. ``set_budget(memory="16GiB", work=1e12)``);
    unset parts keep their current value. With no arguments, go back to the environment
    variables / defaults. Returns the previous budget."""
    global _override
    previous = get_budget()
    if memory is None and work is None and configurations is None:
        _override = None
        return previous
    _override = Budget(
        memory=parse_size(memory) if memory is not None else previous.memory,
        work=parse_size(work) if work is not None else previous.work,
        configurations=(
            int(parse_size(configurations))
            if configurations is not None
            else previous.configurations
        ),
    )
    return previous


@contextlib.contextmanager
def budget(
    memory: float | str | None = None,
    work: float | str | None = None,
    configurations: int | None = None,
) -> Iterator[Budget]:
    """:func:`set_budget` for a ``with`` block (restored afterwards)."""
    global _override
    saved = _override
    set_budget(memory=memory, work=work, configurations=configurations)
    try:
        yield get_budget()
    finally:
        _override = saved


@dataclass(frozen=True)
class Estimate:
    """Peak memory (bytes) and work of one step (floating-point operations) of a DUFM."""

    memory: float
    work: float


def _sizes(value: Any, count: int) -> tuple[float, float, float]:
    """(sum, max, first) of an int or a tuple of ints, without building anything."""
    if isinstance(value, tuple):
        return float(sum(value)), float(max(value)), float(value[0])
    return float(value) * count, float(value), float(value)


def dufm_estimate(
    num_classes: int,
    samples_per_class: int | tuple[int, ...],
    depth: int,
    width: int | tuple[int, ...],
    dtype: str = "float32",
    batch: int = 1,
) -> Estimate:
    """Peak memory and per-step work of training ``batch`` DUFMs of this shape, from K, n_k,
    L and d_l by arithmetic (nothing is allocated).

    Memory (s = bytes per element, P = d_1 N + sum_l d_l d_{l+1} parameters, D = sum_l d_l):
    the parameters with the trainer's state (momentum, Adam's second moment, the guard's copy)
    and a step's temporaries, 7 P s; the activations of a forward-backward pass and of the
    loss, 6 D N s; the targets, 2 K N s; the float64 initialisation of H1, 16 d_1 N; one metrics
    record in float64: every layer's features stacked (2L - 1 sets of d_max x N, 3.5 copies),
    the weights (3 copies) and the K x N one-hot and class-mean operators (5 copies). All
    times 1.25, plus 16 MiB. Calibrated against the measured peak resident memory of a
    trainer (Adam) with a metrics record and every snapshot frame (``python
    benchmarks/fuzz_inputs.py --calibrate``): it errs on the high side, by up to ~1.8x.

    Work: 6 N sum_l d_l d_{l+1} for a gradient step, plus ~6 (2L - 1) d_max N K and
    4 (2L - 1) d_max K^2 for a metrics record.
    """
    K, L = float(num_classes), float(depth)
    N, _, _ = _sizes(samples_per_class, int(num_classes))
    D, dmax, d1 = _sizes(width, int(depth))
    pairs: float
    if isinstance(width, tuple):
        pairs = sum(a * b for a, b in zip(width[:-1], width[1:])) + width[-1] * num_classes
    else:
        pairs = (L - 1) * float(width) ** 2 + float(width) * K
    s = ITEM_BYTES.get(dtype, 8)
    params = d1 * N + pairs
    sets = 2 * L - 1
    memory = (
        s * (7 * params + 6 * D * N + 2 * K * N)
        + 16 * d1 * N
        + 8 * (3.5 * sets * dmax * N + 3 * pairs + 5 * K * N + 2 * N)
    )
    work = 6 * N * pairs + 6 * sets * dmax * N * K + 4 * sets * dmax * K * K
    return Estimate(memory=(1.25 * memory + 16 * 2**20) * batch, work=work * batch)


#: Defaults the budget error compares against to find the parameter to lower.
_TYPICAL = {"num_classes": 2, "samples_per_class": 50, "depth": 4, "width": 64}


def check_dufm_budget(
    num_classes: int,
    samples_per_class: int | tuple[int, ...],
    depth: int,
    width: int | tuple[int, ...],
    dtype: str = "float32",
    *,
    owner: str = "DUFMConfig",
    names: Mapping[str, str] | None = None,
    device: str | None = None,
) -> Estimate:
    """:func:`dufm_estimate` against :func:`budget_for` ``device``; ``BudgetError`` when over.

    The error names the parameter furthest above its typical value (K, the largest n_k,
    L or the largest d_l); ``names`` renames the fields (e.g. for RealNetConfig).
    """
    est = dufm_estimate(num_classes, samples_per_class, depth, width, dtype)
    limit = budget_for(device)
    for resource, amount, cap in (
        ("memory", est.memory, limit.memory),
        ("work", est.work, limit.work),
    ):
        if amount > cap:
            values = {
                "num_classes": num_classes,
                "samples_per_class": samples_per_class,
                "depth": depth,
                "width": width,
            }

            def excess(item: tuple[str, Any]) -> float:
                v = item[1]
                v = max(v) if isinstance(v, tuple) else v
                return v / _TYPICAL[item[0]]

            field, value = max(values.items(), key=excess)
            if isinstance(value, tuple):
                value = max(value)  # the largest n_k or d_l
            field = (names or {}).get(field, field)
            N = (
                sum(samples_per_class)
                if isinstance(samples_per_class, tuple)
                else (samples_per_class * num_classes)
            )
            what = f"a DUFM with K={num_classes}, N={N}, L={depth}, d={short_repr(width, 40)}"
            raise BudgetError(
                field,
                value,
                resource=resource,
                estimate=amount,
                limit=cap,
                what=what,
                owner=owner,
            )
    return est


def budget_for(device: str | None) -> Budget:
    """The budget for tensors on ``device``: :func:`get_budget`, except that on a CUDA device
    that exists here the *default* memory budget becomes 80 % of that GPU's memory and the
    default work budget 100x (a budget set by :func:`set_budget` or the environment is kept).
    ``"auto"`` means the first GPU when there is one. Needs no torch import for CPU devices."""
    b = get_budget()
    if not device or not (device.startswith("cuda") or device == "auto"):
        return b
    import sys

    loaded = sys.modules.get("torch")
    if loaded is None and device == "auto":  # "auto" without torch loaded: CPU
        return b
    import torch  # a CUDA device needs torch anyway (already imported in the other case)

    try:
        if not torch.cuda.is_available():
            return b
        _, _, index = device.partition(":")
        total = torch.cuda.get_device_properties(int(index) if index else 0).total_memory
    except Exception:  # an index that does not exist: check_device_available says so
        return b
    explicit = _override is not None
    memory = b.memory if explicit or os.environ.get(MEMORY_ENV) else max(b.memory, 0.8 * total)
    work = b.work if explicit or os.environ.get(WORK_ENV) else b.work * 100
    return Budget(memory=memory, work=work, configurations=b.configurations)


def check_grid_size(count: int, what: str = "the grid", field: str = "grid") -> None:
    """Refuse a sweep grid of more than the budget's ``configurations``."""
    limit = get_budget().configurations
    if count > limit:
        raise BudgetError(
            field,
            count,
            resource="configurations",
            estimate=count,
            limit=limit,
            what=f"{what} of {count:,} configurations",
            owner="expand_grid",
        )


# ====================================================================== machine checks
def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def check_threads(value: Any, field: str = "threads", optional: bool = True) -> int | None:
    """A thread / worker count in [1, the cores available]."""
    if value is None and optional:
        return None
    cores = available_cores()
    rule = Int(ge=1, le=cores, text=f"an int in [1, {cores}] (the cores available)")
    return check_value(field, value, rule)


def check_device_available(value: str, field: str = "device") -> str:
    """``value`` (a device string) names a device that exists on this machine."""
    check_value(field, value, Device(extra=("auto",)))
    kind, _, index = value.partition(":")
    if kind in ("cpu", "auto"):
        return value
    import torch

    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        i = int(index) if index else 0
        if i < count:
            return value
        why = (
            f"CUDA is not available here (torch {torch.__version__})"
            if count == 0
            else f"this machine has {count} CUDA device(s): cuda:0..cuda:{count - 1}"
        )
        allowed = "'cpu'" if count == 0 else f"'cpu' or 'cuda:<0..{count - 1}>'"
        raise ParameterError(
            field,
            value,
            allowed,
            message=f"{field}={value!r} is not valid: {why}; expected {allowed}",
        )
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available() and not index:
        return value
    raise ParameterError(
        field,
        value,
        "'cpu'",
        message=f"{field}={value!r} is not valid: MPS is not available here; expected 'cpu'",
    )


def check_output_path(
    value: Any, suffixes: Sequence[str] = (".csv", ".parquet"), field: str = "out"
) -> Path:
    """A results file that can be written: a known suffix, not a directory, in a directory
    that exists (or can be created) and is writable; ``.parquet`` needs pyarrow.

    Checked before any work, so a long run never ends in an unwritable file.
    """
    words = " or ".join(suffixes)
    if not isinstance(value, (str, os.PathLike)) or not str(value).strip():
        raise ParameterError(field, value, f"a {words} file path")
    path = Path(value)
    if path.suffix.lower() not in suffixes:
        raise ParameterError(
            field,
            str(path),
            f"a {words} file",
            message=f"{field}={str(path)!r} is not valid: expected a {words} file",
        )

    def fail(why: str) -> ParameterError:
        return ParameterError(
            field,
            str(path),
            f"a writable {words} file",
            message=f"{field}={str(path)!r} is not valid: {why}",
        )

    try:
        if path.is_dir():
            raise fail("it is a directory; expected a file path")
        if path.exists():
            if not os.access(path, os.W_OK):
                raise fail("the file exists and is not writable")
        else:
            parent = path.parent
            while not parent.exists() and parent != parent.parent:
                parent = parent.parent
            if not parent.is_dir():
                raise fail(f"{str(parent)!r} is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise fail(f"the directory {str(parent)!r} is not writable")
            # permissions can say yes where the file system says no (/proc, a read-only
            # mount, a full disk): create and remove a probe file there
            import tempfile

            try:
                with tempfile.TemporaryFile(dir=parent):
                    pass
            except OSError as exc:
                raise fail(f"files cannot be created in {str(parent)!r}: {one_line(exc)}") from None
    except OSError as exc:
        raise fail(one_line(exc)) from None
    if path.suffix.lower() == ".parquet":
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None:
            raise fail("writing Parquet needs pyarrow (pip install pyarrow); or use a .csv file")
    return path


__all__ = [
    "Bool",
    "Budget",
    "BudgetError",
    "DEFAULT_BUDGET",
    "Device",
    "Estimate",
    "FLOAT_MAX",
    "GRID_ENV",
    "Int",
    "LEARNING_RATE",
    "MEMORY_ENV",
    "MOMENTUM",
    "OneOf",
    "ParameterError",
    "Real",
    "Rule",
    "SEED",
    "Text",
    "WORK_ENV",
    "available_cores",
    "budget",
    "budget_for",
    "check_device_available",
    "check_dufm_budget",
    "check_fields",
    "check_grid_size",
    "check_known",
    "check_list",
    "check_output_path",
    "check_threads",
    "check_value",
    "dufm_estimate",
    "format_bytes",
    "get_budget",
    "one_line",
    "parse_size",
    "set_budget",
    "short_repr",
]
