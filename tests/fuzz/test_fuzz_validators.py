"""Property-based tests (hypothesis) of every validator: DUFMConfig, Settings, RealNetConfig,
Recipe, the text boxes. Any values give a ValueError naming the field, or a usable object."""

import time
import warnings

import pytest
from fuzz_strategies import FUZZ, assert_names_a_field, values, words
from hypothesis import given
from hypothesis import strategies as st

from dnc_interactive import theory, training, validation
from dnc_interactive.config import FIELD_NAMES, DUFMConfig
from dnc_interactive.realnets.experiment import RealNetConfig
from dnc_interactive.widgets import controls as ctl
from dnc_interactive.widgets.state import RUN_FIELDS, Settings, decode_state, encode_state

SIZE_FIELDS = {"num_classes", "samples_per_class", "depth", "width"}
pytestmark = pytest.mark.filterwarnings("ignore:width .* < num_classes:UserWarning")


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    for env in (validation.MEMORY_ENV, validation.WORK_ENV, validation.GRID_ENV):
        monkeypatch.delenv(env, raising=False)
    validation.set_budget()
    yield
    validation.set_budget()


def assert_usable_config(c: DUFMConfig) -> None:
    """What the trainer, the theory and the dashboard need of a config, all cheap."""
    assert isinstance(c.K, int) and c.K >= 2 and isinstance(c.L, int) and c.L >= 1
    assert len(c.widths) == c.L and len(c.lambda_Ws) == c.L and len(c.class_sizes) == c.K
    assert all(type(d) is int and d >= 1 for d in c.widths)
    assert all(type(n) is int and n >= 1 for n in c.class_sizes)
    assert all(type(v) is float and 0 <= v <= validation.FLOAT_MAX[c.dtype] for v in c.lambda_Ws)
    assert DUFMConfig.from_dict(c.to_dict()) == c and DUFMConfig.from_json(c.to_json()) == c
    est = validation.dufm_estimate(c.K, c.samples_per_class, c.L, c.width, c.dtype)
    budget = validation.get_budget()
    assert est.memory <= budget.memory and est.work <= budget.work
    if c.loss == "mse":  # the status line's numbers: the closed form never fails
        opt = theory.optimum(c)
        assert len(opt.q) == c.K
        theory.critical_scale(c)
        theory.threshold_message(c)


def build(cls, kwargs):
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # narrow widths: a warning by design
            return cls(**kwargs), None
    except Exception as exc:  # the property: only a ParameterError naming a field
        return None, exc
    finally:
        assert time.perf_counter() - t0 < 1.0, f"{cls.__name__}{kwargs} took too long"


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELD_NAMES), values, max_size=5))
def test_dufm_config_gives_a_usable_config_or_names_the_field(kwargs):
    c, exc = build(DUFMConfig, kwargs)
    if exc is not None:
        e = assert_names_a_field(exc, set(FIELD_NAMES))
        assert e.field in kwargs or (e.field in SIZE_FIELDS and SIZE_FIELDS & set(kwargs)), e
        return
    assert_usable_config(c)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["num_classes", "samples_per_class", "depth", "width"]),
        st.one_of(st.integers(min_value=1, max_value=10**7), st.lists(st.integers(1, 10**6))),
        min_size=1,
    ),
    st.sampled_from(["float32", "float64"]),
)
def test_sizes_are_either_within_the_budget_or_refused_with_estimate_and_limit(sizes, dtype):
    c, exc = build(DUFMConfig, {**sizes, "dtype": dtype})
    if exc is None:
        assert_usable_config(c)
    elif isinstance(exc, validation.BudgetError):
        assert exc.estimate > exc.limit and "over the budget of" in str(exc)
        assert exc.field in SIZE_FIELDS
    else:
        assert_names_a_field(exc, SIZE_FIELDS)


@FUZZ
@given(st.dictionaries(st.sampled_from([*FIELD_NAMES, *RUN_FIELDS]), values, max_size=5))
def test_settings_give_usable_settings_or_name_the_field(kwargs):
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            s = Settings.build(**kwargs)
    except Exception as exc:
        assert_names_a_field(exc, {*FIELD_NAMES, *RUN_FIELDS})
        return
    finally:
        assert time.perf_counter() - t0 < 1.0
    assert_usable_config(s.config)
    assert isinstance(s.lr, float) and 0 < s.lr <= 1e6 and isinstance(s.guard, bool)
    assert decode_state(encode_state(s)) == s  # every valid setting can be shared


REALNET_FIELDS = list(RealNetConfig.__dataclass_fields__)


@FUZZ
@given(
    st.dictionaries(st.sampled_from(REALNET_FIELDS), values, max_size=4),
    st.sampled_from(["digits", "mnist1d", "mnist", "cifar10"]),
)
def test_realnet_config_gives_a_usable_config_or_names_the_field(kwargs, dataset):
    kwargs.setdefault("dataset", dataset)
    c, exc = build(RealNetConfig, kwargs)
    if exc is not None:
        assert_names_a_field(exc, set(REALNET_FIELDS))
        return
    assert c.K >= 2 and len(c.head_widths) == c.depth and len(c.lambda_Ws) == c.depth
    assert RealNetConfig.from_dict(c.to_dict()) == c


RECIPE_RULES = getattr(training, "RULES", None)


@pytest.mark.skipif(RECIPE_RULES is None, reason="Recipe does not declare RULES yet")
@FUZZ
@given(st.dictionaries(st.sampled_from(list(RECIPE_RULES or ["lr"])), values, max_size=4))
def test_recipe_gives_a_usable_recipe_or_names_the_field(kwargs):
    r, exc = build(training.Recipe, kwargs)
    if exc is not None:
        assert_names_a_field(exc, set(RECIPE_RULES))
        return
    assert r.optimizer in training.OPTIMIZERS and 0 < r.lr <= 1e6 and 0 <= r.momentum < 1


@FUZZ
@given(st.one_of(st.text(max_size=40), words, st.integers().map(str), st.floats().map(str)))
def test_text_boxes_parse_or_name_the_field(text):
    for parse, kind in ((ctl.parse_ints, int), (ctl.parse_floats, float)):
        try:
            out = parse("width", text)
        except Exception as exc:
            assert_names_a_field(exc, {"width"})
            continue
        assert all(isinstance(v, kind) for v in (out if isinstance(out, list) else [out]))
