"""Settings and the shareable state string (dnc_interactive.widgets.state, presets)."""

import base64
import json

import pytest

from dnc_interactive.config import DUFMConfig
from dnc_interactive.widgets.presets import PRESETS, find_preset, get_preset
from dnc_interactive.widgets.state import (
    DEFAULT_LR,
    SPEEDS,
    Settings,
    decode_state,
    encode_state,
    extract_state,
)


def test_default_settings_encode_to_the_shortest_state():
    text = encode_state(Settings())
    assert json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) == {"v": 1}
    assert decode_state(text) == Settings()


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_round_trips_through_the_state_string(name):
    settings = get_preset(name).settings()
    text = encode_state(settings)
    assert len(text) < 150
    assert all(c.isalnum() or c in "-_" for c in text)  # URL-safe, no padding
    back = decode_state(text)
    assert back == settings
    assert find_preset(back) == name


def test_round_trip_keeps_tuples_run_fields_and_non_default_values():
    s = Settings.build(
        num_classes=3,
        samples_per_class=[30, 20, 5],
        depth=3,
        width=[16, 8, 8],
        lambda_W=[1e-3, 2e-3, 5e-3],
        lambda_H=0.0,
        activation="linear",
        dtype="float64",
        seed=7,
        lr=0.25,
        optimizer="adam",
        guard=False,
        speed=0,
    )
    back = decode_state(encode_state(s))
    assert back == s
    assert back.config.class_sizes == (30, 20, 5)
    assert back.config.lambda_Ws == (1e-3, 2e-3, 5e-3)
    assert (back.lr, back.optimizer, back.guard, back.speed) == (0.25, "adam", False, 0)


def test_state_is_read_from_urls_and_query_strings():
    s = Settings.build(depth=6, lambda_H=0.02)
    text = encode_state(s)
    assert decode_state(f"http://127.0.0.1:8866/?state={text}") == s
    assert decode_state(f"?preset=x&state={text}") == s
    assert decode_state(f"  {text}\n") == s
    assert extract_state("http://host/?preset=abc") is None


@pytest.mark.parametrize(
    "text, words",
    [
        ("not base64 !!", "state="),
        ("", "no state string"),
        (base64.urlsafe_b64encode(b"[1, 2]").decode(), "settings object"),
        (base64.urlsafe_b64encode(b'{"v": 99}').decode(), "version 99"),
        (base64.urlsafe_b64encode(b'{"v": 1, "zz": 3}').decode(), "unknown key"),
    ],
)
def test_bad_state_strings_raise_naming_state(text, words):
    with pytest.raises(ValueError, match="state") as info:
        decode_state(text)
    assert words in str(info.value)


def test_invalid_values_in_a_state_give_the_config_message():
    text = base64.urlsafe_b64encode(b'{"v": 1, "L": 0}').decode()
    with pytest.raises(ValueError, match=r"depth=0 is not valid: expected an int >= 1"):
        decode_state(text)
    text = base64.urlsafe_b64encode(b'{"v": 1, "lr": -1}').decode()
    with pytest.raises(ValueError, match=r"lr=-1 is not valid"):
        decode_state(text)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"lr": 0.0}, "lr=0.0 is not valid"),
        ({"lr": float("nan")}, "lr=nan is not valid"),
        ({"lr": True}, "lr=True is not valid"),
        ({"optimizer": "sgd"}, "optimizer='sgd' is not valid"),
        ({"speed": 3}, "speed=3 is not valid"),
        ({"guard": "yes"}, "guard='yes' is not valid"),
        ({"colour": 1}, r"unknown setting\(s\) \['colour'\]"),
        ({"num_classes": 1}, "num_classes=1 is not valid"),
    ],
)
def test_settings_validate_every_field(changes, match):
    with pytest.raises(ValueError, match=match):
        Settings.build(**changes)


def test_switching_optimizer_moves_a_default_lr_but_keeps_a_chosen_one():
    s = Settings()
    assert s.replace(optimizer="adam").lr == DEFAULT_LR["adam"]
    assert s.replace(lr=0.3).replace(optimizer="adam").lr == 0.3
    assert s.replace(optimizer="adam", lr=0.05).lr == 0.05


def test_changed_fields_and_dict_round_trip():
    a = Settings()
    b = a.replace(depth=3, lr=0.5)
    assert a.changed_fields(b) == {"depth", "lr"}
    assert Settings.from_dict(b.to_dict()) == b
    assert set(SPEEDS) >= {0, 1, 10}
    assert b.config == DUFMConfig(depth=3)


def test_unknown_preset_lists_the_names():
    with pytest.raises(ValueError, match="preset='nope' is not valid"):
        get_preset("nope")
