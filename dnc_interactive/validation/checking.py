"""The rules engine: check a value, a list or a whole field table against its rules.

:func:`check_value` checks one value against a :class:`~dnc_interactive.validation.rules.Rule`
and returns it normalised (ints as ``int``, reals as ``float``), :func:`check_list` a lazily
read list of them, :func:`check_fields` a class's whole ``{field: Rule}`` table in order and
:func:`check_known` the names a caller passed; each raises one
:class:`~dnc_interactive.validation.errors.ParameterError` naming the field.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from dnc_interactive.validation.errors import ParameterError
from dnc_interactive.validation.rules import _DEVICE, FLOAT_MAX, MAX_LIST, Rule


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
