"""Metrics on bad input (dnc_interactive.metrics): non-finite X / W / M, cut-offs, degenerate
shapes, scale safety, and the directions NC1's cut-off drops (NC1Details)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnc_interactive import metrics as m
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.validation import ParameterError

F64 = torch.float64
HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _data(K=3, d=5, n=6, seed=0, noise=0.3):
    g = torch.Generator().manual_seed(seed)
    means = 3.0 * torch.randn(d, K, generator=g, dtype=F64)
    y = torch.arange(K * n) % K
    X = means[:, y] + noise * torch.randn(d, K * n, generator=g, dtype=F64)
    W = torch.randn(K, d, generator=g, dtype=F64)
    return X, y, W


X0, Y0, W0 = _data()
M0 = m.class_means(X0, Y0)
W_HIDDEN = torch.randn(4, 5, generator=torch.Generator().manual_seed(9), dtype=F64)


def _poison(A: torch.Tensor, value: float, index=(0, 1)) -> torch.Tensor:
    A = A.clone()
    A[index] = value
    return A


# Every public metric with the argument that gets the bad matrix.
def _calls(X=X0, y=Y0, W=W0, M=M0, Wh=W_HIDDEN):
    return {
        "class_means": (lambda: m.class_means(X, y), "X"),
        "nc1": (lambda: m.nc1(X, y), "X"),
        "nc1_details": (lambda: m.nc1_details(X, y), "X"),
        "nc1_trace": (lambda: m.nc1_trace(X, y), "X"),
        "nc4(X)": (lambda: m.nc4_ncc_mismatch(X, y, W0), "X"),
        "nc4(W)": (lambda: m.nc4_ncc_mismatch(X0, y, W), "W"),
        "nc2_orthogonal": (lambda: m.nc2_orthogonal(M), "M"),
        "nc2_etf": (lambda: m.nc2_etf(M), "M"),
        "equinorm": (lambda: m.equinorm(M), "M"),
        "coherence": (lambda: m.coherence(M), "M"),
        "nc3(W)": (lambda: m.nc3_self_duality(W, M0), "W"),
        "nc3(M)": (lambda: m.nc3_self_duality(W0, M), "M"),
        "dnc3(W)": (lambda: m.dnc3_subspace(Wh, M0), "W"),
        "dnc3(M)": (lambda: m.dnc3_subspace(W_HIDDEN, M), "M"),
        "singular_values": (lambda: m.singular_values(M), "M"),
        "rank": (lambda: m.rank(M), "M"),
        "gram": (lambda: m.gram(M), "M"),
        "cdnv": (lambda: m.cdnv(X, y), "X"),
        "cdnv_matrix": (lambda: m.cdnv_matrix(X, y), "X"),
        "cdnv_per_class": (lambda: m.cdnv_per_class(X, y), "X"),
        "nc1_per_class": (lambda: m.nc1_per_class(X, y), "X"),
        "nc2_general_orth": (lambda: m.nc2_general_orth(M), "M"),
        "nc3_general(W)": (lambda: m.nc3_general(W, M0), "W"),
        "nc3_general(M)": (lambda: m.nc3_general(W0, M), "M"),
        "nc3_per_class(W)": (lambda: m.nc3_per_class(W, M0), "W"),
        "nc3_per_class(M)": (lambda: m.nc3_per_class(W0, M), "M"),
        "norm_ratio_error": (lambda: m.norm_ratio_error(M, [1.0, 2.0, 3.0]), "M"),
    }


NAMES = list(_calls())


# ====================================================================== non-finite input
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", NAMES)
def test_non_finite_input_raises_naming_the_argument(name, bad):
    calls = _calls(
        X=_poison(X0, bad),
        W=_poison(W0, bad),
        M=_poison(M0, bad),
        Wh=_poison(W_HIDDEN, bad),
    )
    fn, arg = calls[name]
    with pytest.raises(ValueError, match=rf"^{arg} contains non-finite values") as exc:
        fn()
    assert ("NaN" if math.isnan(bad) else "inf") in str(exc.value)


def test_the_testers_nan_cases_no_longer_return_numbers():
    # nc4_ncc_mismatch returned 0.6 on NaN input; nc1(rcond=nan) returned 0.0 ("collapsed").
    with pytest.raises(ValueError, match="^W contains non-finite"):
        m.nc4_ncc_mismatch(X0, Y0, torch.full_like(W0, math.nan))
    with pytest.raises(ValueError, match="^X contains non-finite"):
        m.nc4_ncc_mismatch(torch.full_like(X0, math.nan), Y0, W0)
    with pytest.raises(
        ValueError, match=r"rcond=nan is not valid: expected a real number in \[0, 1\)"
    ):
        m.nc1(X0, Y0, rcond=math.nan)


def test_finite_inputs_still_work_for_every_metric():
    for name, (fn, _) in _calls().items():
        out = fn()
        value = out if isinstance(out, (int, float)) else out[0]
        if isinstance(value, torch.Tensor):
            assert bool(torch.isfinite(value).all()), name
        else:
            assert math.isfinite(float(value)), name


@given(
    bad=st.sampled_from([math.nan, math.inf, -math.inf]),
    i=st.integers(0, X0.shape[0] - 1),
    j=st.integers(0, X0.shape[1] - 1),
)
@HYP
def test_any_single_non_finite_entry_is_caught(bad, i, j):
    for fn in (m.nc1, m.nc1_trace):
        with pytest.raises(ValueError, match="^X contains non-finite values"):
            fn(_poison(X0, bad, (i, j)), Y0)


# ====================================================================== cut-offs
BAD_TOLS = [math.nan, math.inf, -1e-9, -1.0, 1.0, 2.0, True, "1e-6", None]


@pytest.mark.parametrize("value", BAD_TOLS, ids=repr)
def test_rcond_and_rtol_are_validated(value):
    checks = [
        ("rcond", lambda: m.nc1(X0, Y0, rcond=value)),
        ("rcond", lambda: m.nc1_details(X0, Y0, rcond=value)),
        ("rcond", lambda: m.dnc3_subspace(W_HIDDEN, M0, rcond=value)),
        ("rcond", lambda: m.CollapseAccumulator(3, 5, rcond=value)),
        ("rtol", lambda: m.rank(M0, rtol=value)),
    ]
    for name, fn in checks:
        with pytest.raises(ParameterError) as err:
            fn()
        assert err.value.field == name and isinstance(err.value, ValueError)
        with pytest.raises(
            ValueError, match=rf"^{name}=.* is not valid: expected a real number in \[0, 1\)"
        ):
            fn()


def test_valid_cut_off_edges():
    # 0 keeps every non-zero direction; just below 1 keeps only the top one.
    assert m.nc1(X0, Y0, rcond=0) == pytest.approx(m.nc1(X0, Y0, rcond=1e-30), rel=1e-12)
    assert m.nc1_details(X0, Y0, rcond=0.999999).kept == 1
    assert m.rank(M0, rtol=0) == 3
    assert m.rank(M0, rtol=0.999999) == 1
    assert m.nc1(X0, Y0, rcond=1e-6) == m.nc1(X0, Y0)  # the default


# ====================================================================== degenerate shapes
def test_one_class_is_a_clear_error():
    X = X0[:, :6]
    y = torch.zeros(6, dtype=torch.long)
    for fn in (m.nc1, m.nc1_trace, m.nc1_details):
        with pytest.raises(ValueError, match="K = 1 class.*need K >= 2"):
            fn(X, y)
    with pytest.raises(ValueError, match="K = 1 class.*need K >= 2"):
        m.nc4_ncc_mismatch(X, y, W0[:1])
    M1 = M0[:, :1]
    for fn in (m.nc2_orthogonal, m.nc2_etf, m.equinorm, m.coherence):
        with pytest.raises(ValueError, match=r"M has shape \(5, 1\): K = 1 class mean"):
            fn(M1)
    with pytest.raises(ValueError, match="K = 1 class mean"):
        m.nc3_self_duality(W0[:1], M1)
    with pytest.raises(ValueError, match="K = 1 class mean"):
        m.dnc3_subspace(W_HIDDEN, M1)
    # the class mean of one class is well defined
    torch.testing.assert_close(m.class_means(X, y), X.mean(dim=1, keepdim=True))


def test_num_classes_is_validated():
    for bad in (1, 0, -3, True, 2.5, "3"):
        with pytest.raises(ValueError, match=r"^num_classes=.* is not valid: expected an int >= 2"):
            m.nc1(X0, Y0, num_classes=bad)
    with pytest.raises(ValueError, match="no samples"):
        m.nc1(X0, Y0, num_classes=4)  # class 3 is empty


def test_zero_features_and_empty_input():
    y = torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"^X has shape \(0, 4\).*at least one row"):
        m.nc1(torch.zeros(0, 4), y)
    with pytest.raises(ValueError, match="no samples"):
        m.nc1(torch.zeros(3, 0), torch.zeros(0, dtype=torch.long))
    for fn in (m.nc2_orthogonal, m.equinorm, m.gram, m.rank, m.singular_values):
        with pytest.raises(ValueError, match=r"^M has shape \(0, 3\)"):
            fn(torch.zeros(0, 3))
        with pytest.raises(ValueError, match=r"^M has shape \(4, 0\)"):
            fn(torch.zeros(4, 0))
    with pytest.raises(ValueError, match=r"^W has shape \(0, 5\)"):
        m.dnc3_subspace(torch.zeros(0, 5), M0)
    with pytest.raises(ValueError, match="must be real"):
        m.gram(torch.zeros(2, 2, dtype=torch.complex128))


def test_accumulator_edge_cases():
    acc = m.CollapseAccumulator(3, 5)
    acc.update(X0[:, :9], Y0[:9])
    acc.update(_poison(X0[:, 9:], math.nan), Y0[9:])
    with pytest.raises(ValueError, match=r"X_batch of update\(s\) \[2\] contained non-finite"):
        acc.compute()
    acc.reset()
    acc.update(X0, Y0)
    assert math.isfinite(acc.compute()["nc1"])
    for bad in (True, 1, 0):
        with pytest.raises(ValueError, match="num_classes"):
            m.CollapseAccumulator(bad, 5)
    with pytest.raises(ValueError, match="dim"):
        m.CollapseAccumulator(3, True)
    with pytest.raises(ValueError, match="X_batch has shape"):
        acc.update(torch.zeros(0, 2), torch.tensor([0, 1]))


# ====================================================================== scale safety
def _scale_invariant(X, y, W):
    M = m.class_means(X, y)
    return [
        m.nc1(X, y),
        m.nc1_trace(X, y),
        m.nc2_orthogonal(M),
        m.nc2_etf(M),
        m.equinorm(M),
        m.coherence(M),
        m.nc3_self_duality(W, M),
        m.dnc3_subspace(W_HIDDEN, M),
        m.nc4_ncc_mismatch(X, y, W),
        float(m.rank(M)),
        *m.gram(M).flatten().tolist(),
        *m.singular_values(M).tolist(),
        m.cdnv(X, y),
        *m.cdnv_per_class(X, y).tolist(),
        *m.nc1_per_class(X, y).tolist(),
        m.nc2_general_orth(M),
        m.nc3_general(W, M),
        m.norm_ratio_error(M, [1.0, 2.0, 3.0]),
    ]


@given(exponent=st.integers(-300, 300), seed=st.integers(0, 3))
@HYP
def test_metrics_are_scale_safe(exponent, seed):
    X, y, W = _data(seed=seed)
    ref = _scale_invariant(X, y, W)
    c = 10.0**exponent
    got = _scale_invariant(X * c, y, W * c)
    for a, b in zip(ref, got, strict=True):
        assert math.isfinite(b)
        assert b == pytest.approx(a, rel=1e-9, abs=1e-12)


@given(e=st.integers(-1000, 1000))
@HYP
def test_power_of_two_scaling_is_bitwise(e):
    # Entries stay normal floats (|x| ~ 2^e with |e| <= 1000): every value must be identical.
    X, y, W = _data(seed=1)
    c = 2.0**e
    assert _scale_invariant(X * c, y, W * c) == _scale_invariant(X, y, W)


def test_the_gram_metrics_no_longer_overflow_or_underflow():
    # Before: M^T M overflowed to inf (1e200) or underflowed to 0 (1e-200) and gave nan.
    for c in (1e200, 1e-200):
        assert m.nc2_orthogonal(M0 * c) == pytest.approx(m.nc2_orthogonal(M0), rel=1e-12)
        assert m.nc2_etf(M0 * c) == pytest.approx(m.nc2_etf(M0), rel=1e-12)
        assert m.coherence(M0 * c) == pytest.approx(m.coherence(M0), rel=1e-12)
        assert m.equinorm(M0 * c) == pytest.approx(m.equinorm(M0), rel=1e-12)
        assert float(torch.linalg.matrix_norm(m.gram(M0 * c))) == pytest.approx(1.0)


@pytest.mark.parametrize("c", [1e-200, 1e-20, 1e100, 1e150])
def test_accumulator_is_scale_safe(c):
    acc, ref = m.CollapseAccumulator(3, 5), m.CollapseAccumulator(3, 5)
    for part in (slice(0, 7), slice(7, 18)):
        acc.update(X0[:, part] * c, Y0[part])
        ref.update(X0[:, part], Y0[part])
    out, base = acc.compute(), ref.compute()
    for key in ("nc1", "nc1_trace", "nc2_orth", "nc2_etf", "equinorm", "coherence"):
        assert out[key] == pytest.approx(base[key], rel=1e-9), key
    assert out["mean_norm"] == pytest.approx(base["mean_norm"] * c, rel=1e-12)
    torch.testing.assert_close(out["means"], base["means"] * c, rtol=1e-12, atol=0)


def test_model_level_rows_are_scale_safe():
    cfg = DUFMConfig(num_classes=3, samples_per_class=4, depth=2, width=5, dtype="float64")
    model = DUFM(cfg)
    H1, Ws = model.H1.detach().clone(), [W.detach().clone() for W in model.W]
    ref = {r[:3]: r[3] for r in m.layer_metric_rows(model)}
    model.load_matrices(H1 * 1e-150, Ws)  # features ~1e-150: Gram ~1e-300, SVD^2 underflows
    tiny = {r[:3]: r[3] for r in m.layer_metric_rows(model)}
    for key, value in ref.items():
        if key[2] in ("mean_norm",) or key[2].startswith("q_"):
            assert tiny[key] == pytest.approx(value * 1e-150, rel=1e-9), key
        else:
            assert tiny[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_model_level_helpers_name_non_finite_tensors():
    cfg = DUFMConfig(num_classes=3, samples_per_class=4, depth=2, width=5)
    model = DUFM(cfg)
    W = [w.detach().clone() for w in model.W]
    W[1][0, 0] = math.nan
    model.load_matrices(model.H1.detach().clone(), W)
    with pytest.raises(ValueError, match="W_2, Z contain non-finite values"):
        m.layer_metric_rows(model)
    with pytest.raises(ValueError, match="W_2"):
        m.collapse_report(model)
    for frame in (m.gram_frame, m.projection_frame, m.singular_value_frame, m.output_scale_frame):
        with pytest.raises(ValueError, match=r"the model.s Z contain non-finite values"):
            frame(model)


# ====================================================================== NC1's cut-off
def _two_classes_share_a_mean(noise):
    """K = 3, d = 3: class 0 far away, classes 1 and 2 with the same mean (not separated)."""
    mu = torch.tensor([[10.0, -5.0, -5.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)
    y = torch.arange(60) % 3
    g = torch.Generator().manual_seed(3)
    return mu[:, y] + noise * torch.randn(3, 60, generator=g, dtype=F64), y


def test_nc1_is_small_for_unseparated_classes_but_details_say_so():
    X, y = _two_classes_share_a_mean(noise=0.01)
    d = m.nc1_details(X, y)
    assert d.value < 1e-5  # nc1 alone says "collapsed" ...
    assert m.nc1(X, y) == d.value
    assert d.kept == 1 and d.dropped == 1  # ... but one of the K - 1 = 2 directions was cut
    assert d.hidden > 0.1  # the within-class variance along it, measured at the cut-off
    assert d.separation < 1e-3 and not d.separated
    assert not d.collapsed(1e-2) and not d.collapsed(1.0)


def test_equal_means_without_variance_are_not_collapsed_either():
    X, y = _two_classes_share_a_mean(noise=0.0)
    d = m.nc1_details(X, y)
    assert d.value == 0.0 and d.hidden == 0.0 and d.dropped == 1
    assert d.separation == 0.0 and not d.separated
    assert not d.collapsed(1e-2)


def test_collapse_with_separated_means():
    y = torch.arange(30) % 3
    etf = torch.eye(3, dtype=F64)[:, y]  # K = 3 orthogonal means, no within-class spread
    d = m.nc1_details(etf, y)
    assert (d.kept, d.dropped, d.hidden, d.separated) == (2, 0, 0.0, True)
    assert d.collapsed(1e-6)
    # distinct but collinear means (a low-rank solution): one direction dropped, nothing hidden
    line = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=F64)[:, y]
    d = m.nc1_details(line, y)
    assert (d.kept, d.dropped, d.hidden) == (1, 1, 0.0)
    assert d.separation == pytest.approx(0.5) and d.collapsed(1e-6)
    # noise along the dropped direction is seen through `hidden`
    g = torch.Generator().manual_seed(0)
    noisy = line + torch.cat(
        [torch.zeros(1, 30, dtype=F64), 1e-3 * torch.randn(1, 30, generator=g, dtype=F64)]
    )
    d = m.nc1_details(noisy, y)
    assert d.value < 1e-6 and d.dropped == 1
    assert d.hidden > 0.1 and not d.collapsed(1e-2)


def test_rank_deficient_width_counts_min_d_k_minus_1():
    # d = 2 < K - 1 = 3: at most 2 directions exist, none is "dropped".
    y = torch.arange(40) % 4
    g = torch.Generator().manual_seed(4)
    X = 3 * torch.randn(2, 4, generator=g, dtype=F64)[:, y] + 0.01 * torch.randn(
        2, 40, generator=g, dtype=F64
    )
    d = m.nc1_details(X, y)
    assert (d.kept, d.dropped) == (2, 0)


def test_rcond_zero_never_calls_variance_along_a_degenerate_direction_collapsed():
    # Distinct collinear means (rank 1 of K - 1 = 2) with spread off the line, isotropic in the
    # complement (so whichever complement direction the SVD picks carries it).
    y = torch.arange(60) % 3
    X = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=F64)[:, y]
    sign = torch.tensor([1.0, -1.0], dtype=F64).repeat(30)
    X[1] += 1e-3 * sign
    X[2] += 1e-3 * sign.roll(3)
    for rcond in (0.0, 1e-6):
        d = m.nc1_details(X, y, rcond=rcond)
        assert d.separated and d.bound > 0.1, d  # inf for rcond = 0, 0.5 for 1e-6
        assert not d.collapsed(0.1)
    assert m.nc1_details(X, y).value < 1e-12  # NC1 alone sees nothing


def test_accumulator_gives_the_same_details():
    X, y = _two_classes_share_a_mean(noise=0.01)
    acc = m.CollapseAccumulator(3, 3)
    acc.update(X[:, :25], y[:25])
    acc.update(X[:, 25:], y[25:])
    got, ref = acc.compute()["nc1_details"], m.nc1_details(X, y)
    assert (got.kept, got.dropped, got.separated) == (ref.kept, ref.dropped, ref.separated)
    assert got.hidden == pytest.approx(ref.hidden, rel=1e-8)
    assert got.value == pytest.approx(ref.value, rel=1e-6)


def test_collapse_report_says_how_many_directions_were_dropped():
    # DUFM with K = 3, d = 3, L = 2; classes 1 and 2 share their feature mean at every layer.
    cfg = DUFMConfig(num_classes=3, samples_per_class=4, depth=2, width=3, dtype="float64")
    model = DUFM(cfg)
    means = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]], dtype=F64)
    g = torch.Generator().manual_seed(5)
    H1 = means[:, model.labels] + 2e-3 * torch.randn(3, 12, generator=g, dtype=F64).abs()
    eye = torch.eye(3, dtype=F64)
    model.load_matrices(H1, [eye, eye])
    report = m.collapse_report(model, kind="both")
    assert (report["nc1"] < 1e-4).all()  # NC1 alone would call every layer collapsed
    assert report["nc1_dropped"].tolist() == [1, 1, 1, 1]
    assert (report["nc1_hidden"] > 1e-2).all()
    assert not report["collapsed"].any()
    details = m.nc1_layer_details(model)
    assert set(details) == {(1, "pre"), (1, "post"), (2, "pre"), (2, "post")}
    assert details[(2, "post")].value == report["nc1"].iloc[-1]
    # the separated construction is collapsed at every layer
    H1 = eye[:, model.labels]
    model.load_matrices(H1, [eye, eye])
    report = m.collapse_report(model, kind="both")
    assert report["nc1_dropped"].tolist() == [0, 0, 0, 0]
    assert report["collapsed"].all()
