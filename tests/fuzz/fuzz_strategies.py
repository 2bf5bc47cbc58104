"""Hypothesis strategies and checks shared by the fuzz suites (and benchmarks/fuzz_inputs.py).

The property every suite asserts: an input gives **either** a ``ValueError`` that is a
:class:`~dnc_interactive.validation.ParameterError` naming a field (one line, the field's name
in the message) **or** a usable object; nothing else (no TypeError, no OverflowError, no hang).
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import os

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from dnc_interactive.validation import ParameterError

#: Settings of every fuzz suite: no example database written into the repository, no
#: deadline (a shared 2-core machine is noisy; the suites time the slow cases themselves);
#: ``DNC_FUZZ_EXAMPLES`` sets the examples per test (default 150).
FUZZ = settings(
    max_examples=int(os.environ.get("DNC_FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

HUGE_INTS = [2**31, 2**53 + 1, 2**63, 2**64, 10**18, 10**30, 10**400]
SPECIAL_FLOATS = [0.0, -0.0, 1e-320, 5e-324, 1e-300, 1e30, 1e38, 3.5e38, 1e308, -1e308]
SPECIAL_FLOATS += [math.nan, math.inf, -math.inf]

small_ints = st.integers(min_value=-3, max_value=130)
numbers = st.one_of(
    small_ints,
    st.sampled_from(HUGE_INTS),
    st.integers(),
    st.floats(),
    st.sampled_from(SPECIAL_FLOATS),
    st.booleans(),
    st.sampled_from([np.int64(3), np.int32(-1), np.float32(0.5), np.float64(math.nan)]),
    st.sampled_from([np.bool_(True), np.float64(2.0), np.int64(2**62)]),
)
words = st.sampled_from(
    [
        "relu", "linear", "mse", "ce", "float32", "float64", "float16", "cpu", "cuda", "cuda:0",
        "cuda:99", "mps", "meta", "auto", "gd", "adam", "sgd", "", " ", "64", "1e3", "nan",
        "digits", "mnist1d", "cifar10", "mlp", "cnn", "resnet20", "cosine", "constant",
    ]
)  # fmt: skip
scalars = st.one_of(numbers, words, st.none(), st.text(max_size=12))


def _endless(kind: int):
    return [itertools.count(1), range(10**15), iter([1, 2, 3]), (i for i in range(5))][kind]


lists = st.one_of(
    st.lists(numbers, max_size=8),
    st.lists(small_ints.filter(lambda v: v >= 1), min_size=1, max_size=12),
    st.tuples(numbers, numbers),
    st.lists(st.lists(numbers, max_size=2), max_size=3),
    st.integers(min_value=0, max_value=3).map(_endless),
    st.just(np.arange(1, 5)),
    st.dictionaries(st.text(max_size=3), numbers, max_size=2),
    st.sets(small_ints, max_size=3),
    st.binary(max_size=4),
)
#: Any value a caller (a notebook, a shared link, a grid file) could pass for one field.
values = st.one_of(scalars, scalars, lists)

#: JSON values, as a state string can hold them (NaN and Infinity included, as Python writes).
json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.sampled_from(HUGE_INTS),
        st.floats(),
        st.text(max_size=10),
        words,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=12,
)


def b64(payload: object) -> str:
    text = json.dumps(payload)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def assert_names_a_field(exc: BaseException, fields: set[str]) -> ParameterError:
    """The error is a one-line ParameterError naming one of ``fields`` (in its message too)."""
    assert isinstance(exc, ParameterError), f"{type(exc).__name__}: {exc}"
    assert exc.field in fields, f"field {exc.field!r} not in {sorted(fields)}: {exc}"
    text = str(exc)
    assert exc.field in text and "\n" not in text and len(text) < 600, text
    return exc


__all__ = [
    "FUZZ",
    "assert_names_a_field",
    "b64",
    "json_values",
    "lists",
    "numbers",
    "scalars",
    "values",
    "words",
]
