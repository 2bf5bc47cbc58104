"""The declarative validator, ParameterError and the resource budget (validation.py)."""

import itertools
import math
import os
import pickle
import time

import numpy as np
import pytest

from dnc_interactive import validation as V
from dnc_interactive.config import RULES, DUFMConfig
from dnc_interactive.validation import BudgetError, ParameterError


@pytest.fixture(autouse=True)
def default_budget(monkeypatch):
    for env in (V.MEMORY_ENV, V.WORK_ENV, V.GRID_ENV):
        monkeypatch.delenv(env, raising=False)
    V.set_budget()  # no override: the environment (cleared) and the defaults
    yield
    V.set_budget()


# ---------------------------------------------------------------------- rules and messages
@pytest.mark.parametrize(
    "rule, text",
    [
        (V.Int(ge=2, cap=100), "an int >= 2 (at most 100)"),
        (V.Int(ge=0), "an int >= 0"),
        (V.Real(ge=0), "a finite float >= 0"),
        (V.Real(gt=0, cap=1e6), "a finite float > 0 (at most 1e+06)"),
        (V.Real(ge=0, lt=1), "a float in [0, 1)"),
        (V.Real(ge=0, le=1), "a float in [0, 1]"),
        (V.Int(ge=1, le=4), "an int in [1, 4]"),
        (V.Bool(), "True or False"),
        (V.OneOf(("gd", "adam")), "one of ('gd', 'adam')"),
        (V.Int(ge=1, optional=True), "an int >= 1 or None"),
        (V.Device(extra=("auto",)), "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"),
    ],
)
def test_rules_describe_the_allowed_range(rule, text):
    assert rule.describe() == text


def test_parameter_error_carries_field_value_and_range():
    with pytest.raises(ParameterError) as err:
        V.check_value("depth", 0, V.Int(ge=1, cap=1000), owner="X")
    e = err.value
    assert isinstance(e, ValueError)
    assert (e.field, e.value, e.allowed, e.owner, e.index) == (
        "depth",
        0,
        "an int >= 1 (at most 1000)",
        "X",
        None,
    )
    assert str(e) == "depth=0 is not valid: expected an int >= 1 (at most 1000)"
    back = pickle.loads(pickle.dumps(e))  # process pools / Dask send it back
    assert type(back) is ParameterError and str(back) == str(e) and back.field == "depth"


@pytest.mark.parametrize(
    "value, rule",
    [
        (True, V.Int(ge=0)),  # no bool for a number
        (False, V.Real(ge=0)),
        (2.0, V.Int(ge=0)),  # no float for an int
        (np.float64(2.0), V.Int(ge=0)),
        ("3", V.Int(ge=0)),
        (math.nan, V.Real(ge=0)),
        (math.inf, V.Real(ge=0)),
        (10**400, V.Real(ge=0)),  # overflows a float
        ("huge", V.Int(ge=0, cap=10)),  # 10**5000: too many digits to print, still one line
        (1, V.Bool()),
        (True, V.OneOf((1, 2, 0))),
        (["relu"], V.OneOf(("relu",))),
        ({}, V.OneOf(("relu",))),
        ("cuda:x", V.Device()),
        ("gpu", V.Device()),
        (5, V.Text()),
    ],
)
def test_wrong_types_are_refused(value, rule):
    if value == "huge":
        value = 10**5000
    with pytest.raises(ParameterError) as err:
        V.check_value("f", value, rule)
    assert str(err.value).startswith("f=") and "\n" not in str(err.value)
    assert len(str(err.value)) < 300


def test_accepted_values_are_normalised():
    assert V.check_value("n", np.int64(3), V.Int(ge=0)) == 3
    assert type(V.check_value("n", np.int64(3), V.Int(ge=0))) is int
    assert type(V.check_value("x", 1, V.Real(ge=0))) is float
    assert V.check_value("x", np.float32(0.5), V.Real(ge=0, lt=1)) == 0.5
    assert V.check_value("o", np.str_("gd"), V.OneOf(("gd",))) == "gd"
    assert V.check_value("s", 0, V.OneOf((1, 0))) == 0


def test_lists_are_read_lazily_and_checked_entry_by_entry():
    rule = V.Int(ge=1, cap=10, listable=True, unit="layer")
    assert V.check_list("w", [3, 3, 3], rule, length=3) == 3  # equal entries collapse
    assert V.check_list("w", (1, 2), rule, length=2) == (1, 2)
    assert V.check_list("w", 4, rule, length=7) == 4
    t0 = time.perf_counter()
    for endless in (itertools.count(1), range(10**15)):
        with pytest.raises(ParameterError, match=r"w has (more than 3|\d+) entries but"):
            V.check_list("w", endless, rule, length=3, length_name="depth")
    assert time.perf_counter() - t0 < 0.1
    with pytest.raises(ParameterError) as err:
        V.check_list("w", [1, 11], rule, length=2)
    assert err.value.index == 1 and str(err.value).startswith("w[1]=11 is not valid")
    for bad in ("64", b"64", {"a": 1}, {1, 2}):
        with pytest.raises(ParameterError, match="or a list of them"):
            V.check_list("w", bad, rule, length=2)


def test_check_fields_follows_the_table_and_the_dtype():
    rules = {
        "depth": V.Int(ge=1),
        "width": V.Int(ge=1, listable=True, length="depth"),
        "lam": V.Real(ge=0, fits="dtype"),
        "dtype": V.OneOf(("float32", "float64")),
    }
    out = V.check_fields("X", rules, {"depth": 2, "width": [4, 5], "lam": 1, "dtype": "float64"})
    assert out == {"depth": 2, "width": (4, 5), "lam": 1.0, "dtype": "float64"}
    with pytest.raises(ParameterError, match="fits float32"):
        V.check_fields("X", rules, {"depth": 1, "width": 1, "lam": 1e300, "dtype": "float32"})
    V.check_fields("X", rules, {"depth": 1, "width": 1, "lam": 1e300, "dtype": "float64"})


def test_dufm_config_declares_every_field_in_one_table():
    assert list(RULES) == [f for f in DUFMConfig.__dataclass_fields__]
    with pytest.raises(ParameterError) as err:
        DUFMConfig(width=[8, 8, 0, 8])
    assert (err.value.field, err.value.index, err.value.value) == ("width", 2, 0)


# ---------------------------------------------------------------------- budget
def test_the_budget_refuses_big_models_with_estimate_and_limit_before_allocating():
    t0 = time.perf_counter()
    with pytest.raises(BudgetError) as err:
        DUFMConfig(samples_per_class=500_000)  # a 24-character state string did this
    assert time.perf_counter() - t0 < 0.05
    e = err.value
    assert e.field == "samples_per_class" and e.resource == "memory" and e.estimate > e.limit
    assert "GiB of memory, over the budget of 1 GiB" in str(e)
    assert V.MEMORY_ENV in str(e) and "set_budget" in str(e)
    with pytest.raises(BudgetError) as err:
        DUFMConfig(samples_per_class=100, width=5000, depth=6)
    assert err.value.field == "width"


def test_the_budget_setting_raises_it(monkeypatch):
    big = {"samples_per_class": 20_000, "width": 128}
    with pytest.raises(BudgetError):
        DUFMConfig(**big)
    with V.budget(memory="64GiB", work=1e13):
        assert DUFMConfig(**big).N == 40_000
    with pytest.raises(BudgetError):
        DUFMConfig(**big)  # restored
    monkeypatch.setenv(V.MEMORY_ENV, "64GiB")
    monkeypatch.setenv(V.WORK_ENV, "1e13")
    assert V.get_budget().memory == 64 * 2**30 and V.get_budget().work == 1e13
    DUFMConfig(**big)
    previous = V.set_budget(memory="2GiB")  # set_budget wins over the environment
    assert previous.memory == 64 * 2**30 and V.get_budget().memory == 2 * 2**30
    V.set_budget()
    assert V.get_budget().memory == 64 * 2**30
    monkeypatch.setenv(V.MEMORY_ENV, "lots")
    with pytest.warns(UserWarning, match="DNC_INTERACTIVE_MEMORY_BUDGET"):
        assert V.get_budget().memory == V.DEFAULT_BUDGET.memory
    monkeypatch.delenv(V.MEMORY_ENV)
    V._warned.clear()


@pytest.mark.parametrize(
    "text, value",
    [("4GiB", 4 * 2**30), ("500MB", 5e8), ("2e9", 2e9), (1024, 1024.0), ("16 gib", 16 * 2**30)],
)
def test_parse_size(text, value):
    assert V.parse_size(text) == value


@pytest.mark.parametrize("text", ["", "-1", "0", "lots", "1e999", True, "4XB"])
def test_parse_size_refuses(text):
    with pytest.raises(ValueError):
        V.parse_size(text)


def test_the_estimate_is_arithmetic_and_grows_with_every_size():
    base = V.dufm_estimate(2, 50, 4, 64)
    for bigger in (
        V.dufm_estimate(4, 50, 4, 64),
        V.dufm_estimate(2, 100, 4, 64),
        V.dufm_estimate(2, 50, 8, 64),
        V.dufm_estimate(2, 50, 4, 128),
        V.dufm_estimate(2, 50, 4, 64, "float64"),
    ):
        assert bigger.memory > base.memory and bigger.work >= base.work
    assert V.dufm_estimate(2, (50, 50), 4, (64,) * 4) == base
    t0 = time.perf_counter()
    V.dufm_estimate(10_000, 10**7, 1000, 10**6)  # the largest the caps allow: no allocation
    assert time.perf_counter() - t0 < 0.01


def test_the_grid_budget_counts_before_building():
    from dnc_interactive.sweeps import expand_grid

    grid = {"seed": list(range(400)), "depth": list(range(1, 401)), "lambda": [1e-3] * 400}
    t0 = time.perf_counter()
    with pytest.raises(BudgetError) as err:
        expand_grid(grid)
    assert time.perf_counter() - t0 < 0.5
    assert err.value.field == "grid" and "64,000,000 configurations" in str(err.value)
    with V.budget(configurations=10):
        with pytest.raises(BudgetError):
            expand_grid({"seed": list(range(11))})
        assert len(expand_grid({"seed": list(range(10))})) == 10


# ---------------------------------------------------------------------- machine checks
def test_threads_are_capped_at_the_cores():
    cores = V.available_cores()
    assert V.check_threads(cores) == cores and V.check_threads(None) is None
    for bad in (0, cores + 1, 100_000, True, 1.0, "2"):
        with pytest.raises(ParameterError, match=rf"in \[1, {cores}\]"):
            V.check_threads(bad)


def test_devices_are_checked_for_real_availability():
    import torch

    assert V.check_device_available("cpu") == "cpu"
    assert V.check_device_available("auto") == "auto"
    if not torch.cuda.is_available():
        with pytest.raises(ParameterError, match="CUDA is not available here") as err:
            V.check_device_available("cuda")
        assert err.value.field == "device"
    with pytest.raises(ParameterError):
        V.check_device_available("cuda:99999")


def test_output_paths_are_checked_before_any_work(tmp_path):
    assert V.check_output_path(tmp_path / "a.csv") == tmp_path / "a.csv"
    assert V.check_output_path(tmp_path / "new" / "dir" / "a.parquet").suffix == ".parquet"
    cases = [
        ("/dev/null/x.csv", "is not a directory"),
        (tmp_path / "x.txt", "expected a .csv or .parquet file"),
        (tmp_path, "expected a .csv or .parquet file"),
        ("", "file path"),
        (None, "file path"),
    ]
    d = tmp_path / "d.csv"
    d.mkdir()
    cases.append((d, "it is a directory"))
    if os.geteuid() != 0:  # root may write anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        cases.append((ro / "x.csv", "is not writable"))
    for path, words in cases:
        with pytest.raises(ParameterError, match=words) as err:
            V.check_output_path(path)
        assert err.value.field == "out"


def test_output_path_on_a_file_system_that_refuses_files():
    # /proc grants write permission to root but creates no files: the probe file finds out
    # before any training, instead of a traceback after it (the fuzz case train --out=/proc/x.csv)
    import pathlib

    proc = pathlib.Path("/proc")
    assert proc.is_dir(), "the test needs Linux's /proc"
    with pytest.raises(ValueError, match="files cannot be created in '/proc'"):
        V.check_output_path(proc / "x.csv")
