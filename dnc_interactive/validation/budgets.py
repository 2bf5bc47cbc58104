"""The resource budget: limits, estimates and the checks that refuse what is over them.

:class:`Budget` (memory, work per step, configurations per sweep grid) comes from
:func:`set_budget` / :func:`budget`, else the environment variables :data:`MEMORY_ENV`,
:data:`WORK_ENV`, :data:`GRID_ENV`, else :data:`DEFAULT_BUDGET`; :func:`dufm_estimate`
estimates a DUFM's peak memory and work by arithmetic only, and :func:`check_dufm_budget` and
:func:`check_grid_size` raise :class:`BudgetError` (stating the estimate and the limit) when
a problem is too big. :func:`budget_for` widens the default budget on a CUDA device.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dnc_interactive.validation.errors import ParameterError, short_repr
from dnc_interactive.validation.rules import ITEM_BYTES

MEMORY_ENV = "DNC_INTERACTIVE_MEMORY_BUDGET"


WORK_ENV = "DNC_INTERACTIVE_WORK_BUDGET"


GRID_ENV = "DNC_INTERACTIVE_GRID_BUDGET"


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
