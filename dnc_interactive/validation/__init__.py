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

This package re-exports every name; one module per job: ``errors`` (:class:`ParameterError`
and the one-line renderings), ``rules`` (the rule type and its constructors), ``checking``
(the rules engine), ``budgets`` (the resource budget and :class:`BudgetError`) and
``machine`` (cores, devices and output paths). It imports no torch.
"""

from dnc_interactive.validation.budgets import (
    DEFAULT_BUDGET,
    GRID_ENV,
    MEMORY_ENV,
    WORK_ENV,
    Budget,
    BudgetError,
    Estimate,
    budget,
    budget_for,
    check_dufm_budget,
    check_grid_size,
    dufm_estimate,
    format_bytes,
    get_budget,
    parse_size,
    set_budget,
)
from dnc_interactive.validation.budgets import (
    _warned as _warned,
)
from dnc_interactive.validation.checking import (
    check_fields,
    check_known,
    check_list,
    check_value,
)
from dnc_interactive.validation.errors import (
    ParameterError,
    one_line,
    short_repr,
)
from dnc_interactive.validation.machine import (
    available_cores,
    check_device_available,
    check_output_path,
    check_threads,
)
from dnc_interactive.validation.rules import (
    FLOAT_MAX,
    LEARNING_RATE,
    MOMENTUM,
    SEED,
    Bool,
    Device,
    Int,
    OneOf,
    Real,
    Rule,
    Text,
)
from dnc_interactive.validation.rules import (
    ITEM_BYTES as ITEM_BYTES,
)
from dnc_interactive.validation.rules import (
    MAX_LIST as MAX_LIST,
)

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
