"""Pure helpers behind the dashboard's controls (dnc_interactive.widgets.controls)."""

import math

import pytest

from dnc_interactive import validation
from dnc_interactive.config import DTYPES, DUFMConfig
from dnc_interactive.validation import ParameterError
from dnc_interactive.widgets import controls as ctl
from dnc_interactive.widgets.state import Settings


def _c_max(cfg: DUFMConfig) -> float:
    """max_k c_k = N (Lambda / n_k^L)^{1/(L+1)} (theory §6), computed here from scratch."""
    lam = cfg.lambda_H * math.prod(cfg.lambda_Ws)
    L, N = cfg.L, cfg.N
    return max(N * (lam / n**L) ** (1 / (L + 1)) for n in cfg.class_sizes)


def _c_star(L: int) -> float:
    """c*_L = (1/L) ((L-1)/L)^{(L-1)/(L+1)} (theory §2.2; 0.210367 for L = 4, theory §7.1)."""
    return (1 / L) * ((L - 1) / L) ** ((L - 1) / (L + 1))


@pytest.mark.parametrize(
    "K, n, ratio, minority, expected",
    [
        (2, 50, 1.0, 1, 50),
        (2, 95, 19.0, 1, (95, 5)),
        (4, 100, 10.0, 2, (100, 100, 10, 10)),
        (3, 5, 100.0, 2, (5, 1, 1)),  # never below one sample
        (3, 20, 4.0, 7, (20, 5, 5)),  # at most K - 1 minority classes
        (3, 20, 4.0, 0, 20),
    ],
)
def test_class_sizes(K, n, ratio, minority, expected):
    assert ctl.class_sizes(K, n, ratio, minority) == expected
    DUFMConfig(num_classes=K, samples_per_class=expected)  # always a valid config


def test_imbalance_of_inverts_class_sizes():
    for sizes in [(95, 5), (100, 100, 10, 10), 50]:
        cfg = DUFMConfig(
            num_classes=len(sizes) if isinstance(sizes, tuple) else 2, samples_per_class=sizes
        )
        n, ratio, minority = ctl.imbalance_of(cfg)
        assert ctl.class_sizes(cfg.K, n, ratio, minority) == sizes


def test_parse_lists_and_their_errors():
    assert ctl.parse_ints("width", "64") == 64
    assert ctl.parse_ints("samples_per_class", " 90, 10 ") == [90, 10]
    assert ctl.parse_floats("lambda_W", "5e-3, 1e-3") == [5e-3, 1e-3]
    with pytest.raises(ValueError, match=r"samples_per_class='9x' is not valid"):
        ctl.parse_ints("samples_per_class", "9x")
    with pytest.raises(ValueError, match=r"width='' is not valid"):
        ctl.parse_ints("width", "")
    for text in ("1" * 5000, "1e999999", "9" * (ctl.MAX_TEXT + 1), None, ["1"]):
        with pytest.raises(ParameterError) as err:
            ctl.parse_ints("width", text)
        assert err.value.field == "width" and "is not valid" in str(err.value)
    assert ctl.parse_floats("lambda_W", "1e999") == math.inf  # the config refuses it
    assert ctl.format_list((90, 10)) == "90, 10"
    assert ctl.format_list(0.001) == "0.001"


@pytest.mark.parametrize(
    "cfg",
    [
        DUFMConfig(),
        DUFMConfig(depth=3, samples_per_class=[95, 5], lambda_H=3e-3, lambda_W=5e-3),
        DUFMConfig(depth=2, lambda_H=1e-4, lambda_W=2e-2),
    ],
)
def test_lambda_criticals_put_the_smallest_class_exactly_at_the_threshold(cfg):
    crit_h, crit_w = ctl.lambda_criticals(cfg)
    c_star = _c_star(cfg.L)
    assert _c_max(cfg) < c_star  # these configs start below the threshold
    assert _c_max(cfg.replace(lambda_H=crit_h)) == pytest.approx(c_star, rel=1e-9)
    assert _c_max(cfg.replace(lambda_W=crit_w)) == pytest.approx(c_star, rel=1e-9)


def test_c_star_matches_the_spec_table():
    assert [round(_c_star(L), 6) for L in (2, 3, 4)] == [0.396850, 0.272166, 0.210367]


def test_lambda_criticals_without_a_threshold():
    assert all(math.isnan(v) for v in ctl.lambda_criticals(DUFMConfig(loss="ce")))
    assert ctl.lambda_criticals(DUFMConfig(lambda_H=0.0)) == (math.inf, math.inf)


def test_lambda_gauge_marks_the_side_of_the_threshold():
    below = ctl.lambda_gauge(1e-3, 0.048, 1e-6, 1.0)
    above = ctl.lambda_gauge(0.08, 0.048, 1e-6, 1.0)
    assert "critical ≈ 0.048" in below and "past" not in below
    assert "past critical" in above
    assert "no threshold" in ctl.lambda_gauge(1e-3, math.nan, 1e-6, 1.0)


def test_every_slider_value_gives_a_valid_config():
    c = ctl.build_controls()
    for name in ("num_classes", "n", "depth", "width"):
        s = c[name]
        for v in (s.min, s.max):
            kwargs = {"num_classes": 2}
            if name == "num_classes":
                kwargs["num_classes"] = v
            elif name == "n":
                kwargs["samples_per_class"] = v
            else:
                kwargs[name] = v
            DUFMConfig(**kwargs)
    for name in ("lambda_H", "lambda_W"):
        s = c[name]
        DUFMConfig(lambda_H=10**s.min, lambda_W=10**s.max)
    assert set(ctl.SETTING_CONTROLS) <= set(c)


def test_the_largest_slider_model_is_well_within_the_default_budget(monkeypatch):
    for env in (validation.MEMORY_ENV, validation.WORK_ENV):
        monkeypatch.delenv(env, raising=False)
    c = ctl.build_controls()
    budget = validation.get_budget()
    for dtype in DTYPES:
        cfg = DUFMConfig(
            num_classes=c["num_classes"].max,
            samples_per_class=c["n"].max,
            depth=c["depth"].max,
            width=c["width"].max,
            dtype=dtype,
        )
        est = validation.dufm_estimate(cfg.K, cfg.samples_per_class, cfg.L, cfg.width, dtype)
        assert est.memory < budget.memory / 2 and est.work < budget.work / 4
    lo, hi = ctl.RANGES["lr"]
    assert Settings.build(lr=hi).lr == hi and Settings.build(lr=lo).lr == lo
