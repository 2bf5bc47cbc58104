"""Imbalance-aware and per-class metrics (theory §3.7-§3.9): CDNV, the general orthogonal
frame (nc2_general_orth, nc3_general, norm_ratio_error) and the per-class breakdown, each
against an independent numpy computation or hand-worked numbers, and at the closed-form
optimum of theory §6.1 for imbalanced classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dnc_interactive import metrics as m
from dnc_interactive import theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM
from dnc_interactive.validation import ParameterError

F64 = torch.float64


def _data(sizes, d, seed=0, spread=3.0, noise=1.0):
    rng = np.random.default_rng(seed)
    K = len(sizes)
    means = rng.normal(size=(d, K)) * spread
    y = np.repeat(np.arange(K), sizes)
    X = means[:, y] + noise * rng.normal(size=(d, y.size))
    return torch.tensor(X), torch.tensor(y)


# ============================================================================ independent numpy
def _np_cdnv_matrix(X, y):
    """Galanti et al.'s CDNV by explicit loops over classes and samples."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    K = int(y.max()) + 1
    mus, var = [], []
    for c in range(K):
        cols = [X[:, i] for i in range(X.shape[1]) if y[i] == c]
        mu = sum(cols) / len(cols)
        mus.append(mu)
        var.append(sum(float(np.dot(x - mu, x - mu)) for x in cols) / len(cols))
    C = np.zeros((K, K))
    for i in range(K):
        for j in range(K):
            if i != j:
                dist2 = float(np.dot(mus[i] - mus[j], mus[i] - mus[j]))
                C[i, j] = (var[i] + var[j]) / (2.0 * dist2)
    return C


def _np_nc1_per_class(X, y, rcond=1e-6):
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    K = int(y.max()) + 1
    mus = np.stack([X[:, y == c].mean(axis=1) for c in range(K)], axis=1)
    Mc = mus - mus.mean(axis=1, keepdims=True)
    Sb_pinv = np.linalg.pinv(Mc @ Mc.T / K, rcond=rcond)
    out = []
    for c in range(K):
        R = X[:, y == c] - mus[:, [c]]
        cov = R @ R.T / R.shape[1]
        out.append(np.trace(cov @ Sb_pinv) / K)
    return np.array(out)


def _np_cos_rms(M):
    M = np.asarray(M, dtype=np.float64)
    K = M.shape[1]
    total = 0.0
    for i in range(K):
        for j in range(K):
            if i != j:
                ni, nj = np.linalg.norm(M[:, i]), np.linalg.norm(M[:, j])
                cos = 0.0 if ni == 0 or nj == 0 else float(M[:, i] @ M[:, j]) / (ni * nj)
                total += cos**2
    return math.sqrt(total / (K * (K - 1)))


def _np_nc3_per_class(W, M):
    W, M = np.asarray(W, dtype=np.float64), np.asarray(M, dtype=np.float64)

    def unit(v):
        n = np.linalg.norm(v)
        return v / n if n > 0 else v

    return np.array([np.linalg.norm(unit(W[k]) - unit(M[:, k])) for k in range(W.shape[0])])


# ============================================================================ CDNV
def test_cdnv_hand_worked_two_classes():
    # class 0: 0, 2 (mean 1, Var 1); class 1: 5, 7, 9 (mean 7, Var 8/3); distance 6.
    X = torch.tensor([[0.0, 2.0, 5.0, 7.0, 9.0]], dtype=F64)
    y = torch.tensor([0, 0, 1, 1, 1])
    expected = (1.0 + 8.0 / 3.0) / (2.0 * 36.0)  # = 11/216
    C = m.cdnv_matrix(X, y)
    assert C.dtype == F64 and C.shape == (2, 2)
    assert float(C[0, 1]) == pytest.approx(11.0 / 216.0, rel=1e-14)
    assert float(C[1, 0]) == float(C[0, 1])
    assert C[0, 0] == 0.0 and C[1, 1] == 0.0
    assert m.cdnv(X, y) == pytest.approx(expected, rel=1e-14)
    torch.testing.assert_close(m.cdnv_per_class(X, y), torch.full((2,), expected, dtype=F64))


def test_cdnv_hand_worked_three_classes_in_the_plane():
    # means (0,0), (4,0), (0,3); Var_0 = 1 (two points at +-1 on x), Var_1 = 0, Var_2 = 4.
    X = torch.tensor(
        [[-1.0, 1.0, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 5.0]], dtype=F64
    )  # class 2: (0,1), (0,5): mean (0,3), Var 4
    y = torch.tensor([0, 0, 1, 2, 2])
    C = m.cdnv_matrix(X, y).numpy()
    expected = np.array(
        [
            [0.0, (1 + 0) / (2 * 16), (1 + 4) / (2 * 9)],
            [(1 + 0) / (2 * 16), 0.0, (0 + 4) / (2 * 25)],
            [(1 + 4) / (2 * 9), (0 + 4) / (2 * 25), 0.0],
        ]
    )
    np.testing.assert_allclose(C, expected, rtol=1e-14)
    assert m.cdnv(X, y) == pytest.approx(expected.sum() / 6, rel=1e-14)
    np.testing.assert_allclose(m.cdnv_per_class(X, y).numpy(), expected.sum(1) / 2, rtol=1e-14)


@pytest.mark.parametrize("sizes", [(4, 4, 4), (30, 5, 2), (9, 1, 6, 3)])
def test_cdnv_matches_the_numpy_loop(sizes):
    X, y = _data(sizes, d=6, seed=len(sizes))
    perm = torch.randperm(y.numel(), generator=torch.Generator().manual_seed(1))
    X, y = X[:, perm], y[perm]  # unordered labels
    ref = _np_cdnv_matrix(X.numpy(), y.numpy())
    np.testing.assert_allclose(m.cdnv_matrix(X, y).numpy(), ref, rtol=1e-12)
    K = len(sizes)
    assert m.cdnv(X, y) == pytest.approx(ref.sum() / (K * (K - 1)), rel=1e-12)
    np.testing.assert_allclose(m.cdnv_per_class(X, y).numpy(), ref.sum(1) / (K - 1), rtol=1e-12)


def test_cdnv_zero_when_collapsed_and_nan_for_coincident_means():
    y = torch.tensor([0, 0, 1, 1, 2])
    M = torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 2.0]], dtype=F64)
    assert m.cdnv(M[:, y], y) == 0.0
    X = torch.tensor([[0.0, 2.0, 1.0, 1.0, 5.0]], dtype=F64)  # classes 0 and 1 share mean 1
    C = m.cdnv_matrix(X, y)
    assert math.isnan(float(C[0, 1])) and math.isnan(float(C[1, 0]))
    assert math.isfinite(float(C[0, 2])) and C[0, 0] == 0.0
    assert math.isnan(m.cdnv(X, y))


def test_cdnv_float32_input_and_scale_safety():
    X, y = _data((5, 3, 7), d=4)
    ref = m.cdnv(X, y)
    assert m.cdnv(X.float(), y) == pytest.approx(ref, rel=1e-6)
    for c in (1e-200, 1e200):
        assert m.cdnv(X * c, y) == pytest.approx(ref, rel=1e-10)
    assert m.cdnv(X * 2.0**-900, y) == ref  # power of two: bitwise


def test_cdnv_bad_input_raises_naming_the_parameter():
    X, y = _data((3, 3), d=2)
    bad = X.clone()
    bad[0, 1] = math.nan
    for fn in (m.cdnv, m.cdnv_matrix, m.cdnv_per_class):
        with pytest.raises(ValueError, match="^X contains non-finite values"):
            fn(bad, y)
        with pytest.raises(ValueError, match="y must be a 1-D integer tensor"):
            fn(X, y.double().numpy())
        with pytest.raises(ValueError, match="y must hold integer labels"):
            fn(X, y.double())
        with pytest.raises(ValueError, match="X has 6 columns .* but y has 5 labels"):
            fn(X, y[:5])
        with pytest.raises(ValueError, match="K = 1 class"):
            fn(X, torch.zeros(6, dtype=torch.long))
        with pytest.raises(ValueError, match=r"^num_classes=1 is not valid"):
            fn(X, y, num_classes=1)
        with pytest.raises(ValueError, match=r"class\(es\) \[2\] have no samples"):
            fn(X, y, num_classes=3)
        with pytest.raises(TypeError, match="X must be a torch.Tensor"):
            fn(X.numpy(), y)


# ============================================================================ per-class NC1
@pytest.mark.parametrize("sizes", [(5, 5, 5), (40, 6, 3), (12, 2, 7, 20)])
def test_nc1_per_class_matches_numpy_and_sums_to_nc1(sizes):
    X, y = _data(sizes, d=7, seed=3)
    got = m.nc1_per_class(X, y).numpy()
    np.testing.assert_allclose(got, _np_nc1_per_class(X.numpy(), y.numpy()), rtol=1e-9)
    n = np.asarray(sizes, dtype=np.float64)
    assert float((n / n.sum()) @ got) == pytest.approx(m.nc1(X, y), rel=1e-12)


def test_nc1_per_class_shows_the_minority_class_nc1_averages_away():
    # majority exactly collapsed, minority (5 of 100 samples) spread: NC1 is 5 % of its NC1.
    rng = np.random.default_rng(0)
    y = torch.tensor([0] * 95 + [1] * 5)
    X = torch.zeros(2, 100, dtype=F64)
    X[0, :95] = 1.0
    X[1, 95:] = 1.0 + torch.tensor(rng.normal(size=5))
    per = m.nc1_per_class(X, y)
    assert float(per[0]) < 1e-25 and float(per[1]) > 0.01
    assert float(per[1]) == pytest.approx(m.nc1(X, y) * 100 / 5, rel=1e-12)
    assert float(per[1]) == pytest.approx(_np_nc1_per_class(X.numpy(), y.numpy())[1], rel=1e-12)


def test_nc1_per_class_edges():
    X, y = _data((3, 3), d=2)
    with pytest.raises(ValueError, match=r"rcond=2 is not valid"):
        m.nc1_per_class(X, y, rcond=2)
    same = torch.ones(2, 6, dtype=F64)
    assert bool(torch.isnan(m.nc1_per_class(same, y)).all())  # all means equal: undefined
    assert m.nc1_per_class(X.float(), y).dtype == F64


# ============================================================================ general frame
def test_nc2_general_orth_hand_worked():
    # cos(mu_0, mu_1) = 1/sqrt(2): sqrt(mean over the 2 ordered pairs of 1/2) = 1/sqrt(2).
    M = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=F64)
    assert m.nc2_general_orth(M) == pytest.approx(1 / math.sqrt(2), rel=1e-14)
    # orthogonal, unequal norms: the general frame holds, the equal-norm one does not
    D = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 7.0], [0, 0, 0]], dtype=F64)
    assert m.nc2_general_orth(D) == 0.0
    assert m.nc2_orthogonal(D) > 0.3
    # antipodal means: |cos| = 1
    assert m.nc2_general_orth(torch.tensor([[1.0, -2.0]], dtype=F64)) == pytest.approx(1.0)


def test_nc2_general_orth_matches_numpy_and_handles_zero_columns():
    rng = np.random.default_rng(4)
    for K in (2, 3, 6):
        M = rng.normal(size=(5, K)) * rng.uniform(0.01, 10.0, size=K)
        assert m.nc2_general_orth(torch.tensor(M)) == pytest.approx(_np_cos_rms(M), rel=1e-12)
    # a collapsed class (zero mean) is orthogonal to every other
    M = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]], dtype=F64)
    assert m.nc2_general_orth(M) == pytest.approx(_np_cos_rms(M.numpy()), rel=1e-14)
    assert m.nc2_general_orth(M) == pytest.approx(math.sqrt(2 * 0.5 / 6), rel=1e-14)
    assert math.isnan(m.nc2_general_orth(torch.zeros(3, 2)))
    # scale-safe per column: a class 1e-250 times smaller keeps its direction
    tiny = torch.tensor([[1.0, 1e-250], [0.0, 1e-250]], dtype=F64)
    assert m.nc2_general_orth(tiny) == pytest.approx(1 / math.sqrt(2), rel=1e-14)


def test_nc3_general_hand_worked_and_versus_self_duality():
    M = torch.tensor([[2.0, 0.0], [0.0, 0.5], [0.0, 0.0]], dtype=F64)
    W = torch.diag(torch.tensor([0.3, 5.0], dtype=F64)) @ M.T  # W = D M^T, D positive diagonal
    assert m.nc3_general(W, M) == 0.0
    assert m.nc3_self_duality(W, M) > 0.5  # the balanced NC3 asks for D proportional to I
    # one row rotated by 90 degrees: per-class error sqrt(2), RMS sqrt(2/2) = 1
    W2 = torch.tensor([[0.0, 1.0, 0.0], [0.0, 3.0, 0.0]], dtype=F64)
    torch.testing.assert_close(
        m.nc3_per_class(W2, M), torch.tensor([math.sqrt(2), 0.0], dtype=F64), rtol=1e-14, atol=0
    )
    assert m.nc3_general(W2, M) == pytest.approx(1.0, rel=1e-14)
    # opposite direction: 2
    assert float(m.nc3_per_class(-W, M)[0]) == pytest.approx(2.0)


def test_nc3_general_matches_numpy():
    rng = np.random.default_rng(7)
    for K, d in ((2, 3), (4, 6), (5, 5)):
        W, M = rng.normal(size=(K, d)), rng.normal(size=(d, K))
        ref = _np_nc3_per_class(W, M)
        got = m.nc3_per_class(torch.tensor(W), torch.tensor(M)).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-12)
        assert m.nc3_general(torch.tensor(W), torch.tensor(M)) == pytest.approx(
            math.sqrt(float((ref**2).mean())), rel=1e-12
        )


def test_nc3_general_zero_rows_and_bad_input():
    M = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=F64)  # class 1 collapsed to 0
    W = torch.tensor([[4.0, 0.0], [0.0, 0.0]], dtype=F64)  # ... and its classifier row too
    assert m.nc3_general(W, M) == 0.0
    W1 = torch.tensor([[4.0, 0.0], [0.0, 1.0]], dtype=F64)  # a row without a class mean
    assert m.nc3_per_class(W1, M).tolist() == [0.0, 1.0]
    assert math.isnan(m.nc3_general(torch.zeros(2, 2), M))
    assert math.isnan(m.nc3_general(W, torch.zeros(2, 2)))
    with pytest.raises(ValueError, match=r"W has shape \(2, 3\) but M\^T has shape \(2, 2\)"):
        m.nc3_general(torch.zeros(2, 3), M)
    with pytest.raises(ValueError, match="K = 1 class mean"):
        m.nc3_per_class(W[:1, :], M[:, :1])
    with pytest.raises(ValueError, match="^W contains non-finite"):
        m.nc3_general(torch.full((2, 2), math.inf), M)


def test_norm_ratio_error_hand_worked_and_validation():
    M = torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=F64)
    assert m.norm_ratio_error(M, [3.0, 4.0]) == pytest.approx(0.0, abs=1e-16)
    assert m.norm_ratio_error(M, torch.tensor([0.3, 0.4])) == pytest.approx(0.0, abs=1e-7)
    s = 1 / math.sqrt(2)
    assert m.norm_ratio_error(M, [1, 1]) == pytest.approx(math.hypot(0.6 - s, 0.8 - s))
    assert m.norm_ratio_error(M * 1e-200, [1e200, 1e200]) == pytest.approx(
        math.hypot(0.6 - s, 0.8 - s)
    )
    assert math.isnan(m.norm_ratio_error(torch.zeros(2, 2), [1, 1]))
    for bad in ([1.0], [1.0, -1.0], [0.0, 0.0], [1.0, math.nan], "ab", [[1, 2]], None):
        with pytest.raises(ParameterError, match=r"^target_norms=.* is not valid: expected 2"):
            m.norm_ratio_error(M, bad)


# ============================================================================ the optimum
IMBALANCED = [
    ((95, 5), 3, 0.0077353),  # theory §7.5: q = (0.97425, 0.72906)
    ((80, 20), 2, 5e-3),
    ((90, 10), 3, 3e-3),
    ((100, 20, 5), 2, 2e-3),
    ((30, 10, 5), 3, 1e-3),
    ((40, 30, 20, 10), 1, 1e-3),
    ((95, 5), 3, 0.0104655),  # minority collapsed: q_1 = 0
]
BALANCED = [((50, 50), 3, 1e-3), ((10, 10, 10), 2, 1e-2), ((5,) * 4, 4, 4e-3)]


def _optimum(sizes, L, lam, width=8):
    cfg = DUFMConfig(
        num_classes=len(sizes),
        samples_per_class=sizes,
        depth=L,
        width=width,
        lambda_H=lam,
        lambda_W=lam,
        dtype="float64",
    )
    model = DUFM(cfg)
    model.load_matrices(*theory.construct_optimum(cfg))
    return cfg, model


@pytest.mark.parametrize(("sizes", "L", "lam"), IMBALANCED)
def test_the_closed_form_last_layer_is_a_general_orthogonal_frame(sizes, L, lam):
    """Derive, don't trust: at the optimum W_L = diag(q_k / b_k^2) M_L^T (theory §3.8).

    Stationarity in W_L gives W_L = (1/(N lambda_W)) (Y - Z) H_L^T; with H_L = M_L per class and
    class-k outputs q_k e_k this is diag(n_k (1 - q_k) / (N lambda_W)) M_L^T, and
    q_k = w_k . mu_k turns the factor into q_k / b_k^2. Checked on construct_optimum, which
    is a critical point of the loss (gradient ~ 1e-16)."""
    cfg, model = _optimum(sizes, L, lam)
    loss = model.loss().total
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    assert max(float(g.abs().max()) for g in grads) < 1e-12
    assert float(loss.detach()) == pytest.approx(theory.optimal_loss(cfg), rel=1e-12)
    with torch.no_grad():
        f = model.forward()
    M_L = m.class_means(f.post[L - 1], model.labels)
    W_L = model.W[L - 1].detach()
    q = torch.tensor(theory.optimal_q(cfg), dtype=F64)
    b2 = (M_L * M_L).sum(0)
    torch.testing.assert_close(b2.sqrt(), torch.tensor(theory.layer_norms(cfg)[L - 1], dtype=F64))
    D = torch.where(b2 > 0, q / torch.where(b2 > 0, b2, 1.0), 0.0)
    torch.testing.assert_close(W_L, torch.diag(D) @ M_L.T, rtol=0, atol=1e-14)
    n = torch.tensor(sizes, dtype=F64)
    D_stat = n * (1 - q) / (cfg.N * lam)
    torch.testing.assert_close(W_L, torch.diag(D_stat * (q > 0)) @ M_L.T, rtol=0, atol=1e-13)


@pytest.mark.parametrize(("sizes", "L", "lam"), IMBALANCED)
def test_the_imbalanced_optimum_reads_as_collapsed(sizes, L, lam):
    cfg, model = _optimum(sizes, L, lam)
    rows = {r[:3]: r[3] for r in m.layer_metric_rows(model, extended=True)}
    K = cfg.K
    assert rows[(L, "weight", "nc3_general")] < 1e-8
    assert all(rows[(L, "weight", f"nc3_class_{k}")] < 1e-8 for k in range(K))
    expected_norms = theory.layer_norms(cfg)
    with torch.no_grad():
        f = model.forward()
    for l in range(1, L + 1):
        for kind in ("pre", "post"):
            assert rows[(l, kind, "nc2_general_orth")] < 1e-8
            assert rows[(l, kind, "cdnv")] < 1e-8 and rows[(l, kind, "cdnv_max")] < 1e-8
            assert all(rows[(l, kind, f"nc1_class_{k}")] < 1e-8 for k in range(K))
            norms = [rows[(l, kind, f"norm_class_{k}")] for k in range(K)]
            np.testing.assert_allclose(norms, expected_norms[l - 1], rtol=1e-12, atol=1e-300)
        M = m.class_means(f.post[l - 1], model.labels)
        assert m.norm_ratio_error(M, expected_norms[l - 1]) < 1e-8
    q = theory.optimal_q(cfg)
    if min(q) > 0:  # the balanced definitions miss it (the motivation, theory §3.8)
        assert rows[(L, "weight", "nc3")] > 0.05
        assert rows[(L, "post", "nc2_orth")] > 0.05


@pytest.mark.parametrize(("sizes", "L", "lam"), BALANCED)
def test_balanced_optimum_both_definitions_agree(sizes, L, lam):
    _, model = _optimum(sizes, L, lam)
    rows = {r[:3]: r[3] for r in m.layer_metric_rows(model, extended=True)}
    assert rows[(L, "weight", "nc3")] < 1e-8 and rows[(L, "weight", "nc3_general")] < 1e-8
    for l in range(2, L + 1):
        assert rows[(l, "post", "nc2_orth")] < 1e-8
        assert rows[(l, "post", "nc2_general_orth")] < 1e-8
    # and at a random start both say "not collapsed"
    fresh = {r[:3]: r[3] for r in m.layer_metric_rows(DUFM(model.config), extended=True)}
    assert fresh[(L, "weight", "nc3")] > 0.1 and fresh[(L, "weight", "nc3_general")] > 0.1
    assert fresh[(L, "post", "nc2_orth")] > 0.05 and fresh[(L, "post", "nc2_general_orth")] > 0.05


@pytest.mark.parametrize(("sizes", "L", "lam"), IMBALANCED[:5])
def test_a_perturbed_frame_is_not_collapsed(sizes, L, lam):
    cfg, model = _optimum(sizes, L, lam)
    H1, Ws = theory.construct_optimum(cfg)
    g = torch.Generator().manual_seed(0)
    # a small rotation of the last layer's rows: only NC3 moves
    Ws_rot = [W.clone() for W in Ws]
    Ws_rot[-1] = Ws[-1] + 0.05 * Ws[-1].abs().max() * torch.randn(Ws[-1].shape, generator=g)
    model.load_matrices(H1, Ws_rot)
    rows = {r[:3]: r[3] for r in m.layer_metric_rows(model, extended=True)}
    assert rows[(L, "weight", "nc3_general")] > 1e-3
    assert max(rows[(L, "weight", f"nc3_class_{k}")] for k in range(cfg.K)) > 1e-3
    # tilted and noisy first-layer features: the frame and the variability errors move
    H1_bad = H1 + 0.3 * H1.abs().max() * torch.randn(H1.shape, generator=g, dtype=F64)
    model.load_matrices(H1_bad, Ws)
    rows = {r[:3]: r[3] for r in m.layer_metric_rows(model, extended=True)}
    assert rows[(1, "post", "nc2_general_orth")] > 1e-3
    assert rows[(1, "post", "cdnv")] > 1e-3
    assert all(rows[(1, "post", f"nc1_class_{k}")] > 1e-4 for k in range(cfg.K))


# ============================================================================ model level
def _ext_keys(K, L):
    keys = []
    for l in range(1, L + 1):
        for kind in ("pre", "post"):
            keys += [(l, kind, name) for name in m.EXTENDED_METRICS]
            keys += [(l, kind, f"{c}_{k}") for c in m.CLASS_METRICS for k in range(K)]
    keys.append((L, "weight", "nc3_general"))
    keys += [(L, "weight", f"nc3_class_{k}") for k in range(K)]
    return keys


def test_extended_rows_schema_and_values():
    cfg = DUFMConfig(num_classes=3, samples_per_class=(4, 7, 2), depth=3, width=(6, 5, 4))
    model = DUFM(cfg)
    base = m.layer_metric_rows(model)
    rows = m.layer_metric_rows(model, extended=True)
    assert rows[: len(base)] == base  # the standard rows are untouched
    assert [r[:3] for r in rows[len(base) :]] == _ext_keys(3, 3)
    assert all(isinstance(r[3], float) for r in rows)
    assert m.EXTENDED_METRICS == ("nc2_general_orth", "cdnv", "cdnv_max")
    assert m.CLASS_METRICS == ("nc1_class", "cdnv_class", "norm_class")
    assert m.class_metric("nc1_class", 2) == "nc1_class_2"
    assert not any(r[2].startswith("q_") for r in rows[len(base) :])  # q_k is the output scale
    values = {r[:3]: r[3] for r in rows}
    with torch.no_grad():
        f = model.forward()
    y = model.labels
    for l in range(1, 4):
        for kind, X in (("pre", f.pre[l - 1]), ("post", f.post[l - 1])):
            M = m.class_means(X, y)
            C = _np_cdnv_matrix(X.detach().double().numpy(), y.numpy())
            assert values[(l, kind, "nc2_general_orth")] == pytest.approx(
                m.nc2_general_orth(M), rel=1e-10, abs=1e-15
            )
            assert values[(l, kind, "cdnv")] == pytest.approx(C.sum() / 6, rel=1e-10)
            assert values[(l, kind, "cdnv_max")] == pytest.approx(C.max(), rel=1e-10)
            per_nc1 = m.nc1_per_class(X, y)
            per_cdnv = m.cdnv_per_class(X, y)
            for k in range(3):
                assert values[(l, kind, f"nc1_class_{k}")] == pytest.approx(
                    float(per_nc1[k]), rel=1e-9
                )
                assert values[(l, kind, f"cdnv_class_{k}")] == pytest.approx(
                    float(per_cdnv[k]), rel=1e-10
                )
                assert values[(l, kind, f"norm_class_{k}")] == pytest.approx(
                    float(M[:, k].norm()), rel=1e-12
                )
    M3 = m.class_means(f.post[2], y)
    assert values[(3, "weight", "nc3_general")] == pytest.approx(
        m.nc3_general(model.W[2], M3), rel=1e-10
    )
    per = m.nc3_per_class(model.W[2], M3)
    for k in range(3):
        assert values[(3, "weight", f"nc3_class_{k}")] == pytest.approx(float(per[k]), rel=1e-10)
    assert m.layer_metric_rows(model, f, extended=True) == rows


def test_extended_rows_linear_and_trivial_solution():
    cfg = DUFMConfig(num_classes=2, samples_per_class=(5, 3), depth=2, width=4, activation="linear")
    model = DUFM(cfg)
    values = {r[:3]: r[3] for r in m.layer_metric_rows(model, extended=True)}
    for name in ("nc2_general_orth", "cdnv", "nc1_class_1", "norm_class_0"):
        assert values[(2, "pre", name)] == values[(2, "post", name)]
    model.load_matrices(torch.zeros_like(model.H1), [torch.zeros_like(W) for W in model.W])
    values = {r[:3]: r[3] for r in m.layer_metric_rows(model, extended=True)}
    assert math.isnan(values[(1, "post", "nc2_general_orth")])
    assert math.isnan(values[(1, "post", "cdnv")])
    assert math.isnan(values[(1, "post", "nc1_class_0")])
    assert values[(1, "post", "norm_class_0")] == 0.0
    assert math.isnan(values[(2, "weight", "nc3_general")])


def test_extended_rows_are_scale_safe():
    cfg = DUFMConfig(num_classes=3, samples_per_class=(4, 6, 2), depth=2, width=5, dtype="float64")
    model = DUFM(cfg)
    H1, Ws = model.H1.detach().clone(), [W.detach().clone() for W in model.W]
    ref = {r[:3]: r[3] for r in m.layer_metric_rows(model, extended=True)}
    model.load_matrices(H1 * 1e-150, Ws)
    tiny = {r[:3]: r[3] for r in m.layer_metric_rows(model, extended=True)}
    for key, value in ref.items():
        if key[2] in ("mean_norm",) or key[2].startswith(("q_", "norm_class_")):
            assert tiny[key] == pytest.approx(value * 1e-150, rel=1e-9), key
        else:
            assert tiny[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_collapse_report_keeps_the_minority_signal():
    # L = 1: H1 is the only feature set. Majority collapsed, 5-sample minority spread out.
    cfg = DUFMConfig(num_classes=2, samples_per_class=(95, 5), depth=1, width=2, dtype="float64")
    model = DUFM(cfg)
    rng = np.random.default_rng(1)
    H1 = torch.zeros(2, 100, dtype=F64)
    H1[0, :95] = 1.0
    H1[1, 95:] = 1.0
    H1[:, 95:] += 0.3 * torch.tensor(rng.normal(size=(2, 5)))
    model.load_matrices(H1, [torch.eye(2, dtype=F64)])
    report = m.collapse_report(model, per_class=True)
    r = report.iloc[0]
    assert r["nc1_class_0"] < 1e-25
    assert r["nc1_class_max"] == r["nc1_class_1"] > 0.01
    assert r["nc1_class_max"] == pytest.approx(r["nc1"] * 100 / 5, rel=1e-10)
    assert r["cdnv_max"] == pytest.approx(r["cdnv"], rel=1e-12)  # K = 2: one pair
    assert r["nc3_general"] > 0 and r["nc3_class_0"] == 0.0 and r["nc3_class_1"] > 0
    X = H1
    assert r["cdnv"] == pytest.approx(m.cdnv(X, model.labels), rel=1e-12)


def test_collapse_report_columns():
    cfg = DUFMConfig(num_classes=3, samples_per_class=(4, 5, 6), depth=3, width=6)
    model = DUFM(cfg)
    base = [
        "layer", "kind", "nc1", "nc1_trace", "nc2_orth", "nc2_etf", "equinorm", "coherence",
        "nc3", "rank", "mean_norm", "nc1_dropped", "nc1_hidden", "collapsed",
    ]  # fmt: skip
    new = ["nc2_general_orth", "nc3_general", "cdnv", "cdnv_max", "nc1_class_max"]
    df = m.collapse_report(model)
    assert list(df.columns) == base + new
    rows = {r[:3]: r[3] for r in m.layer_metric_rows(model, extended=True)}
    assert df.loc[2, "nc3_general"] == rows[(3, "weight", "nc3_general")]
    assert df.loc[0, "nc3_general"] == df.loc[0, "nc3"]  # l < L: the subspace error
    assert df.loc[1, "cdnv"] == rows[(2, "post", "cdnv")]
    full = m.collapse_report(model, kind="both", per_class=True)
    per = [f"{c}_{k}" for c in m.CLASS_METRICS for k in range(3)]
    assert list(full.columns) == base + new + per + [f"nc3_class_{k}" for k in range(3)]
    assert full.shape == (6, len(base) + len(new) + 12)
    assert math.isnan(full.loc[0, "nc3_class_0"])
    assert full.loc[5, "nc3_class_1"] == rows[(3, "weight", "nc3_class_1")]
    assert full.loc[2, "nc1_class_2"] == rows[(2, "pre", "nc1_class_2")]
    with pytest.raises(ValueError, match="per_class"):
        m.collapse_report(model, per_class="yes")


# ============================================================================ accumulator
def test_accumulator_cdnv_equals_one_shot_with_batches_missing_classes():
    X, y = _data((13, 4, 9), d=5, seed=2)
    perm = torch.randperm(y.numel(), generator=torch.Generator().manual_seed(3))
    X, y = X[:, perm], y[perm]
    acc = m.CollapseAccumulator(3, 5)
    first = torch.nonzero(y != 1).flatten()[:6]  # a first batch without class 1
    rest = torch.tensor([i for i in range(y.numel()) if i not in set(first.tolist())])
    for part in (first, rest[:7], rest[7:]):
        acc.update(X[:, part], y[part])
    out = acc.compute()
    assert out["cdnv"] == pytest.approx(m.cdnv(X, y), rel=1e-12)
    assert out["cdnv_max"] == pytest.approx(float(m.cdnv_matrix(X, y).max()), rel=1e-12)
    torch.testing.assert_close(out["cdnv_class"], m.cdnv_per_class(X, y), rtol=1e-12, atol=0)
    M = m.class_means(X, y)
    assert out["nc2_general_orth"] == pytest.approx(m.nc2_general_orth(M), rel=1e-12)
    ref = m.nc1_details(X, y)  # the details are unchanged by the new keys
    assert out["nc1_details"].value == pytest.approx(ref.value, rel=1e-10)
    assert out["nc1_details"][1:3] == ref[1:3] and out["nc1_details"].separated == ref.separated
    # the per-class traces add up to the pooled scatter's
    assert float(acc._class_ss.sum()) == pytest.approx(float(torch.trace(acc._scatter)), rel=1e-12)


@pytest.mark.parametrize("c", [1e-200, 1e150])
def test_accumulator_cdnv_is_scale_safe(c):
    X, y = _data((6, 6, 6), d=5)
    acc = m.CollapseAccumulator(3, 5)
    for part in (slice(0, 7), slice(7, 18)):
        acc.update(X[:, part] * c, y[part])
    assert acc.compute()["cdnv"] == pytest.approx(m.cdnv(X, y), rel=1e-9)
