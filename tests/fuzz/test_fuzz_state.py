"""Property-based tests (hypothesis) of shared links: any state string, URL or typed value
gives valid settings or one ValueError naming ``state`` or the field, quickly and without
building anything; in the dashboard it is a one-line error and the current run goes on."""

import time
import warnings

import pytest
from fuzz_strategies import FUZZ, assert_names_a_field, b64, json_values, values
from hypothesis import given, settings
from hypothesis import strategies as st

from dnc_interactive import validation
from dnc_interactive.config import FIELD_NAMES
from dnc_interactive.widgets.state import _SHORT, RUN_FIELDS, decode_state, encode_state

FIELDS = {"state", *FIELD_NAMES, *RUN_FIELDS}
SHORT_KEYS = sorted(_SHORT.values())
pytestmark = pytest.mark.filterwarnings("ignore:width .* < num_classes:UserWarning")


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    for env in (validation.MEMORY_ENV, validation.WORK_ENV, validation.GRID_ENV):
        monkeypatch.delenv(env, raising=False)
    validation.set_budget()
    yield
    validation.set_budget()


payloads = st.dictionaries(
    st.one_of(st.sampled_from(SHORT_KEYS), st.text(max_size=4)),
    st.one_of(values.filter(lambda v: _jsonable(v)), json_values),
    max_size=5,
).map(lambda d: {"v": 1, **d})


def _jsonable(v) -> bool:
    try:
        b64(v)
        return True
    except (TypeError, ValueError):
        return False


def _wrap(kind: int, state: str) -> str:
    return [
        state,
        f"http://127.0.0.1:8866/?state={state}",
        f"?preset=x&state={state}",
        f"  {state}\n",
        f"https://[::1/?state={state}",
    ][kind]


states = st.one_of(
    st.text(max_size=60),
    st.binary(max_size=40).map(lambda b: __import__("base64").urlsafe_b64encode(b).decode()),
    st.builds(_wrap, st.integers(0, 4), payloads.map(b64)),
    st.builds(_wrap, st.integers(0, 4), json_values.map(lambda v: b64({"v": v}))),
    st.sampled_from(["", "=", "?", "&state=", "eyJ2IjoxfQ", "eyJ2IjoxfQ" * 5000, "[" * 10**5]),
)


def check_decode(text):
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            s = decode_state(text)
    except Exception as exc:
        assert_names_a_field(exc, FIELDS)
        return None
    finally:
        assert time.perf_counter() - t0 < 0.5, f"decode_state took {time.perf_counter() - t0}"
    c = s.config
    est = validation.dufm_estimate(c.K, c.samples_per_class, c.L, c.width, c.dtype)
    assert est.memory <= validation.get_budget().memory
    assert decode_state(encode_state(s)) == s
    return s


@FUZZ
@given(states)
def test_any_state_string_gives_settings_or_one_value_error(text):
    check_decode(text)


@FUZZ
@given(payloads)
def test_any_payload_gives_settings_or_names_the_field(payload):
    check_decode(b64(payload))


def test_the_reported_state_strings_are_refused_at_once():
    for payload in ({"v": 1, "n": 500000}, {"v": 1, "L": 100000000}, {"v": 1, "lh": 1e308}):
        t0 = time.perf_counter()
        with pytest.raises(validation.ParameterError):
            decode_state(b64(payload))
        assert time.perf_counter() - t0 < 0.05


@pytest.fixture(scope="module")
def dash():
    from dnc_interactive.widgets import Dashboard

    with validation.budget(memory="64MiB", work=2e8):  # valid fuzz values stay cheap to build
        d = Dashboard(samples_per_class=5, width=8, depth=2)
        yield d
        d.close()


TEXT_BOXES = ["sizes_text", "widths_text", "lambda_w_text"]


@FUZZ
@given(
    st.sampled_from(TEXT_BOXES + ["state"]),
    st.one_of(st.text(max_size=30), states, values.map(str)),
)
def test_typed_text_and_pasted_states_never_escape_the_dashboard(dash, box, text):
    with validation.budget(memory="64MiB", work=2e8):
        trainer = dash.trainer
        if box == "state":
            dash.controls["state"].value = text
            dash.controls["apply_state"].click()  # raises nothing, whatever the text
        else:
            dash.controls[box].value = text  # raises nothing, whatever the text
        if dash.session.error:  # refused: one line in the status, the run goes on
            assert dash.trainer is trainer and "\n" not in dash.session.error
            assert "is not valid" in dash.status or "could not" in dash.status
        assert dash.status and dash.trainer is not None


@settings(FUZZ, max_examples=max(10, FUZZ.max_examples // 6))  # a dashboard per example
@given(states)
def test_any_url_opens_a_dashboard(text):
    from dnc_interactive.widgets import Dashboard

    with validation.budget(memory="64MiB", work=2e8):
        query = text if "state=" in text else f"state={text}"
        d = Dashboard.from_query(query.split("?", 1)[-1])
        try:
            assert d.trainer is not None and d.status
            assert d.session.error is None or "\n" not in d.session.error
        finally:
            d.close()
