"""DUFMConfig: defaults, derived quantities, validation messages, round-trips."""

import json
import math
import warnings

import pytest

from dnc_interactive.config import FIELD_NAMES, DUFMConfig


def test_defaults_are_the_default_preset():
    c = DUFMConfig()
    assert (c.K, c.N, c.L) == (2, 100, 4)
    assert c.widths == (64, 64, 64, 64)
    assert c.lambda_H == c.lambda_W == 1e-3
    assert (c.activation, c.loss, c.seed, c.dtype) == ("relu", "mse", 0, "float32")
    assert DUFMConfig(depth=3).L == 3


def test_lists_become_tuples_and_equal_lists_collapse():
    c = DUFMConfig(samples_per_class=[90, 10], lambda_W=[1e-3, 2e-3, 3e-3, 4e-3])
    assert c.class_sizes == (90, 10) and c.N == 100 and not c.balanced
    assert c.lambda_Ws == (1e-3, 2e-3, 3e-3, 4e-3) and not c.equal_lambdas
    c2 = DUFMConfig(samples_per_class=[5, 5], width=[8, 8, 8, 8], lambda_W=[1e-3] * 4)
    assert c2.samples_per_class == 5 and c2.width == 8 and c2.lambda_W == 1e-3
    assert c2.balanced and c2.equal_lambdas
    assert hash(c) != hash(c2)


def test_labels_are_class_ordered():
    c = DUFMConfig(num_classes=3, samples_per_class=[2, 1, 3], depth=1)
    assert c.labels() == [0, 0, 1, 2, 2, 2]


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("num_classes", 1, "num_classes=1 is not valid: expected an int >= 2"),
        ("num_classes", 2.0, "num_classes=2.0"),
        ("depth", 0, "depth=0 is not valid: expected an int >= 1"),
        ("samples_per_class", 0, "samples_per_class=0 is not valid: expected an int >= 1"),
        ("samples_per_class", [5, 0], "samples_per_class[1]=0"),
        ("samples_per_class", [5, 5, 5], "samples_per_class has 3 entries but num_classes=2"),
        ("width", 0, "width=0 is not valid"),
        ("width", [8, 8], "width has 2 entries but depth=4"),
        ("lambda_H", -1e-3, "lambda_H=-0.001 is not valid: expected a finite float >= 0"),
        ("lambda_H", math.nan, "lambda_H=nan"),
        ("lambda_W", math.inf, "lambda_W=inf"),
        ("lambda_W", [1e-3, -1.0, 1e-3, 1e-3], "lambda_W[1]=-1.0"),
        ("lambda_W", [1e-3], "lambda_W has 1 entries but depth=4"),
        (
            "activation",
            "tanh",
            "activation='tanh' is not valid: expected one of ('relu', 'linear')",
        ),
        ("loss", "hinge", "loss='hinge'"),
        ("init_scale", 0.0, "init_scale=0.0 is not valid: expected a finite float > 0"),
        ("seed", -1, "seed=-1"),
        ("dtype", "float16", "dtype='float16'"),
        ("device", "gpu0", "device='gpu0'"),
        ("width", "64", "width='64' is not valid"),
    ],
)
def test_bad_values_name_field_and_range(field, value, fragment):
    with pytest.raises(ValueError) as err:
        DUFMConfig(**{field: value})
    assert fragment in str(err.value)


def test_narrow_width_warns_but_is_accepted():
    with pytest.warns(UserWarning, match="width 3 < num_classes=5"):
        c = DUFMConfig(num_classes=5, width=3)
    assert c.widths == (3, 3, 3, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DUFMConfig(num_classes=5, width=3, activation="linear")  # no ReLU: no warning


def test_dict_and_json_round_trip():
    c = DUFMConfig(samples_per_class=[90, 10], lambda_W=[1e-3, 2e-3], depth=2, width=[16, 8])
    d = c.to_dict()
    assert set(d) == set(FIELD_NAMES)
    assert json.loads(json.dumps(d)) == d
    assert DUFMConfig.from_dict(d) == c
    assert DUFMConfig.from_json(c.to_json()) == c


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match=r"unknown DUFMConfig field\(s\) \['depht'\]"):
        DUFMConfig.from_dict({"depht": 3})


def test_replace_revalidates():
    with pytest.raises(ValueError, match="depth=0"):
        DUFMConfig().replace(depth=0)
