"""Tests of dnc_interactive.metrics: hand-worked cases and independent (numpy) formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dnc_interactive import metrics as m
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM

SQ2 = math.sqrt(2.0)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _data(sizes, d, seed=0, spread=3.0, noise=1.0):
    """Random features with well-separated class means; columns class-ordered."""
    rng = _rng(seed)
    K = len(sizes)
    means = rng.normal(size=(d, K)) * spread
    y = np.repeat(np.arange(K), sizes)
    X = means[:, y] + noise * rng.normal(size=(d, y.size))
    return torch.tensor(X), torch.tensor(y)


def _np_scatters(X, y):
    """Independent numpy Sigma_W, Sigma_B of theory §3 (mu_G = mean of class means)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y)
    K = int(y.max()) + 1
    N = X.shape[1]
    mus = np.stack([X[:, y == c].mean(axis=1) for c in range(K)], axis=1)
    muG = mus.mean(axis=1, keepdims=True)
    Sw = np.zeros((X.shape[0], X.shape[0]))
    for i in range(N):
        r = X[:, i] - mus[:, y[i]]
        Sw += np.outer(r, r)
    Sw /= N
    Mc = mus - muG
    Sb = Mc @ Mc.T / K
    return Sw, Sb, mus


def _random_orthonormal(d, k, seed=0):
    q, _ = np.linalg.qr(_rng(seed).normal(size=(d, k)))
    return q


# ============================================================================ class means
def test_class_means_hand_worked_imbalanced():
    X = torch.tensor([[1.0, 2.0, 3.0, 10.0], [0.0, 0.0, 6.0, 4.0]], dtype=torch.float32)
    y = torch.tensor([0, 0, 0, 1])
    M = m.class_means(X, y)
    assert M.dtype == torch.float64
    torch.testing.assert_close(M, torch.tensor([[2.0, 10.0], [2.0, 4.0]], dtype=torch.float64))


def test_class_means_unordered_labels_and_errors():
    X = torch.tensor([[1.0, 5.0, 3.0]])
    y = torch.tensor([1, 0, 1])
    torch.testing.assert_close(m.class_means(X, y), torch.tensor([[5.0, 2.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="no samples"):
        m.class_means(X, y, num_classes=3)
    with pytest.raises(ValueError, match="labels"):
        m.class_means(X, torch.tensor([0, 1, 5]), num_classes=3)
    with pytest.raises(ValueError, match="columns"):
        m.class_means(X, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="integer"):
        m.class_means(X, torch.tensor([0.0, 1.0, 1.0]))


# ============================================================================ NC1
def test_nc1_hand_worked_within_orthogonal_to_between():
    # class 0: (1, +-1), class 1: (-1, +-1): Sigma_B = e1 e1^T, Sigma_W = e2 e2^T.
    X = torch.tensor([[1.0, 1.0, -1.0, -1.0], [1.0, -1.0, 1.0, -1.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert m.nc1(X, y) == pytest.approx(0.0, abs=1e-15)
    assert m.nc1_trace(X, y) == pytest.approx(1.0, rel=1e-14)


def test_nc1_hand_worked_within_along_between():
    # class 0: (2,0),(0,0) -> mu_0 = (1,0); class 1: (-2,0),(0,0) -> mu_1 = (-1,0).
    # Sigma_W = e1 e1^T, Sigma_B = e1 e1^T: tr(Sw Sb^+)/K = 1/2, NC1' = 1.
    X = torch.tensor([[2.0, 0.0, -2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert m.nc1(X, y) == pytest.approx(0.5, rel=1e-14)
    assert m.nc1_trace(X, y) == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("sizes", [(20, 20, 20, 20), (40, 7, 13, 3)])
def test_nc1_matches_numpy_pinv(sizes):
    X, y = _data(sizes, d=6, seed=1)
    Sw, Sb, _ = _np_scatters(X.numpy(), y.numpy())
    K = len(sizes)
    ref = np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-10)) / K
    assert m.nc1(X, y) == pytest.approx(ref, rel=1e-10)
    assert m.nc1_trace(X, y) == pytest.approx(np.trace(Sw) / np.trace(Sb), rel=1e-12)


def test_nc1_relative_cutoff_ignores_tiny_singular_value():
    # Centred means with singular values (1, 1e-9): Sigma_B has eigenvalue ratio 1e-18.
    K, d, n = 3, 4, 30
    U = _random_orthonormal(d, 2, seed=2)
    V = np.linalg.qr(np.c_[np.ones(K), _rng(3).normal(size=(K, 2))])[0][:, 1:]  # V^T 1 = 0
    Mbar = U @ np.diag([1.0, 1e-9]) @ V.T
    means = Mbar + np.array([[0.5], [-1.0], [2.0], [0.3]])
    y = np.repeat(np.arange(K), n)
    noise = 0.1 * _rng(4).normal(size=(d, K * n))
    for c in range(K):  # zero-mean noise per class keeps the sample means exact
        noise[:, y == c] -= noise[:, y == c].mean(axis=1, keepdims=True)
    X = means[:, y] + noise
    Sw, Sb, _ = _np_scatters(X, y)
    assert np.linalg.svd(Sb, compute_uv=False)[1] < 1e-16
    value = m.nc1(torch.tensor(X), torch.tensor(y))
    ref = np.trace(Sw @ np.linalg.pinv(Sb, rcond=1e-6)) / K
    assert value == pytest.approx(ref, rel=1e-8)
    assert 1e-3 < value < 0.1
    # Without the cut-off the tiny direction dominates (theory §3 practical note).
    assert m.nc1(torch.tensor(X), torch.tensor(y), rcond=1e-30) > 1e10


def test_nc1_undefined_when_all_means_equal():
    X = torch.tensor([[1.0, -1.0, 2.0, -2.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert math.isnan(m.nc1(X, y))
    assert math.isnan(m.nc1_trace(X, y))


def test_nc1_zero_for_collapsed_features():
    X, y = _data((5, 5, 5), d=4, seed=5, noise=0.0)
    assert m.nc1(X, y) == pytest.approx(0.0, abs=1e-25)
    assert m.nc1_trace(X, y) == pytest.approx(0.0, abs=1e-25)


def test_float32_input_is_computed_in_float64():
    X, y = _data((7, 9), d=5, seed=6, spread=1e-3, noise=1e-4)
    X = X + 1e3  # large offset: float32 arithmetic would lose the small class structure
    X32 = X.to(torch.float32)
    X64 = X32.to(torch.float64)
    for fn in (m.nc1, m.nc1_trace):
        v32, v64 = fn(X32, y), fn(X64, y)
        assert isinstance(v32, float)
        assert v32 == v64
    Sw, Sb, _ = _np_scatters(X64.numpy(), y.numpy())
    assert m.nc1_trace(X32, y) == pytest.approx(np.trace(Sw) / np.trace(Sb), rel=1e-9)
    M = m.class_means(X32, y)
    assert M.dtype == torch.float64
    assert m.singular_values(M).dtype == torch.float64
    assert m.gram(M.to(torch.float32)).dtype == torch.float64


# ============================================================================ NC2
def test_nc2_orthogonal_hand_worked_and_exact_frame():
    M = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert m.nc2_orthogonal(M) == pytest.approx(math.sqrt(2 - SQ2), rel=1e-14)
    Q = torch.tensor(_random_orthonormal(7, 4, seed=7))
    assert m.nc2_orthogonal(3.7 * Q) == pytest.approx(0.0, abs=1e-14)
    # unequal norms break it
    assert m.nc2_orthogonal(Q * torch.tensor([1.0, 1.0, 1.0, 2.0])) > 0.1
    assert math.isnan(m.nc2_orthogonal(torch.zeros(3, 2)))


def test_nc2_etf_hand_worked():
    # Centred means e1, -e1, 0 (plus an offset that centring removes).
    M = torch.tensor([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]]) + torch.tensor([[2.0], [5.0]])
    a = 0.5 - (2 / 3) / SQ2
    b = -0.5 + (1 / 3) / SQ2
    c = (1 / 3) / SQ2
    e = (2 / 3) / SQ2
    expected = math.sqrt(2 * a**2 + 2 * b**2 + 4 * c**2 + e**2)
    assert m.nc2_etf(M) == pytest.approx(expected, rel=1e-14)


def test_nc2_etf_zero_on_simplex_and_on_orthogonal_frame():
    K, d = 5, 8
    etf = np.eye(K) - np.ones((K, K)) / K
    M = _random_orthonormal(d, K, seed=8) @ etf * 2.5 + _rng(9).normal(size=(d, 1))
    M = torch.tensor(M)
    assert m.nc2_etf(M) == pytest.approx(0.0, abs=1e-14)
    assert m.coherence(M) == pytest.approx(0.0, abs=1e-14)
    assert m.equinorm(M) == pytest.approx(0.0, abs=1e-14)
    # theory §7.4: a centred orthogonal frame is a simplex ETF
    Q = torch.tensor(_random_orthonormal(d, K, seed=10))
    assert m.nc2_etf(Q) == pytest.approx(0.0, abs=1e-14)
    # a simplex ETF is not an orthogonal frame (uncentred Gram has negative entries)
    # its orthogonal-frame error is ||(I - J/K)/sqrt(K-1) - I/sqrt(K)||_F, worked out entrywise
    diag = (1 - 1 / K) / math.sqrt(K - 1) - 1 / math.sqrt(K)
    off = -1 / (K * math.sqrt(K - 1))
    expected = math.sqrt(K * diag**2 + K * (K - 1) * off**2)
    assert m.nc2_orthogonal(M - M.mean(dim=1, keepdim=True)) == pytest.approx(expected, rel=1e-12)
    assert m.nc2_etf(Q * torch.tensor([1.0, 1.0, 1.0, 1.0, 3.0])) > 0.1


def test_equinorm_hand_worked():
    # centred means (2,0), (-1,0), (-1,0): norms 2, 1, 1 -> mean 4/3, population std sqrt(2)/3
    M = torch.tensor([[2.0, -1.0, -1.0], [0.0, 0.0, 0.0]]) + torch.tensor([[5.0], [5.0]])
    assert m.equinorm(M) == pytest.approx(SQ2 / 4, rel=1e-14)
    norms = np.array([2.0, 1.0, 1.0])
    assert m.equinorm(M) == pytest.approx(norms.std(ddof=0) / norms.mean(), rel=1e-14)


def test_coherence_hand_worked():
    # same means: cos = -1, -1, +1 -> |cos + 1/2| = 0.5, 0.5, 1.5 -> mean 5/6
    M = torch.tensor([[2.0, -1.0, -1.0], [0.0, 0.0, 0.0]]) + torch.tensor([[5.0], [5.0]])
    assert m.coherence(M) == pytest.approx(5 / 6, rel=1e-14)


def test_coherence_and_equinorm_match_numpy_on_random_means():
    rng = _rng(11)
    M = rng.normal(size=(6, 4))
    Mc = M - M.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(Mc, axis=0)
    cos = (Mc.T @ Mc) / np.outer(norms, norms)
    off = ~np.eye(4, dtype=bool)
    assert m.coherence(torch.tensor(M)) == pytest.approx(np.abs(cos[off] + 1 / 3).mean(), rel=1e-13)
    assert m.equinorm(torch.tensor(M)) == pytest.approx(norms.std() / norms.mean(), rel=1e-13)


# ============================================================================ NC3 / DNC3
def test_nc3_self_duality():
    W = torch.eye(2)
    M = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    assert m.nc3_self_duality(W, M) == pytest.approx(math.sqrt(2 - SQ2), rel=1e-14)
    M = torch.tensor(_rng(12).normal(size=(6, 3)))
    assert m.nc3_self_duality(0.37 * M.T, M) == pytest.approx(0.0, abs=1e-14)
    assert m.nc3_self_duality(M.T + 0.1, M) > 1e-3
    with pytest.raises(ValueError, match="shape"):
        m.nc3_self_duality(M, M)


def test_dnc3_subspace():
    # span(M) = span(e1); W = [1, 1]: residual [0, 1] -> 1/sqrt(2)
    M = torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert m.dnc3_subspace(torch.tensor([[1.0, 1.0]]), M) == pytest.approx(1 / SQ2, rel=1e-14)
    rng = _rng(13)
    M = torch.tensor(rng.normal(size=(9, 3)))
    W_in = torch.tensor(rng.normal(size=(5, 3))) @ M.T
    assert m.dnc3_subspace(W_in, M) == pytest.approx(0.0, abs=1e-14)
    W_any = torch.tensor(rng.normal(size=(5, 9)))
    value = m.dnc3_subspace(W_any, M)
    P = M.numpy() @ np.linalg.pinv(M.numpy())
    ref = np.linalg.norm(W_any.numpy() @ (np.eye(9) - P)) / np.linalg.norm(W_any.numpy())
    assert value == pytest.approx(ref, rel=1e-12)
    assert value > 0.3


def test_dnc3_relative_rank_cutoff():
    # A second direction at 1e-12 relative scale is below the cut-off: the projector is rank 1.
    M = torch.tensor([[1.0, 1.0], [0.0, 1e-12]])
    assert m.dnc3_subspace(torch.tensor([[0.0, 1.0]]), M) == pytest.approx(1.0, rel=1e-12)
    assert m.dnc3_subspace(torch.tensor([[0.0, 1.0]]), M, rcond=1e-15) < 1e-12


# ============================================================================ NC4
def test_nc4_hand_worked_one_disagreement():
    # mu_0 = (1.25, 1), mu_1 = (-1.5, 0); the classifier puts (0.5, 2) in class 1, NCC in 0.
    X = torch.tensor([[2.0, 0.5, -2.0, -1.0], [0.0, 2.0, 0.0, 0.0]])
    y = torch.tensor([0, 0, 1, 1])
    W = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    assert m.nc4_ncc_mismatch(X, y, W) == pytest.approx(0.25)
    assert m.nc4_ncc_mismatch(X, y, torch.tensor([[1.0, 0.0], [-1.0, 0.0]])) == 0.0


def test_nc4_matches_explicit_loop():
    X, y = _data((10, 6, 8), d=4, seed=14, spread=1.0, noise=1.0)
    W = torch.tensor(_rng(15).normal(size=(3, 4)))
    Xn, yn, Wn = X.numpy(), y.numpy(), W.numpy()
    mus = np.stack([Xn[:, yn == c].mean(axis=1) for c in range(3)], axis=1)
    mismatches = 0
    for i in range(Xn.shape[1]):
        ncc = np.argmin(np.linalg.norm(Xn[:, [i]] - mus, axis=0))
        mismatches += int(np.argmax(Wn @ Xn[:, i]) != ncc)
    assert m.nc4_ncc_mismatch(X, y, W) == pytest.approx(mismatches / Xn.shape[1])
    assert 0 < mismatches < Xn.shape[1]


# ============================================================================ rank / SVs / Gram
def test_rank_and_singular_values_of_constructed_matrix():
    U = _random_orthonormal(8, 3, seed=16)
    V = _random_orthonormal(5, 3, seed=17)
    M = torch.tensor(U @ np.diag([4.0, 2.0, 1.0]) @ V.T)
    assert m.rank(M) == 3
    s = m.singular_values(M)
    assert s.shape == (5,)
    torch.testing.assert_close(s[:3], torch.tensor([1.0, 0.5, 0.25], dtype=torch.float64))
    assert float(s[3:].abs().max()) < 1e-14
    M2 = torch.tensor(U @ np.diag([1.0, 1e-2, 1e-4]) @ V.T)
    assert m.rank(M2) == 2
    assert m.rank(M2, rtol=1e-5) == 3
    assert m.rank(torch.zeros(4, 3)) == 0
    assert torch.equal(m.singular_values(torch.zeros(4, 3)), torch.zeros(3, dtype=torch.float64))


def test_gram_normalised():
    M = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    G = m.gram(M)
    torch.testing.assert_close(
        G, torch.tensor([[9.0, 0.0], [0.0, 16.0]], dtype=torch.float64) / math.sqrt(81 + 256)
    )
    assert float(torch.linalg.matrix_norm(m.gram(torch.randn(5, 3)))) == pytest.approx(1.0)
    assert torch.equal(m.gram(torch.zeros(3, 2)), torch.zeros(2, 2, dtype=torch.float64))


# ============================================================================ accumulator
def test_accumulator_equals_one_shot_with_batches_missing_classes():
    X, y = _data((30, 5, 12, 9), d=6, seed=18)
    perm = torch.tensor(_rng(19).permutation(y.numel()))
    X, y = X[:, perm], y[perm]
    acc = m.CollapseAccumulator(num_classes=4, dim=6)
    with pytest.raises(ValueError, match="before any update"):
        acc.compute()
    # first batches contain only some classes
    order = torch.argsort(y, stable=True)
    splits = [order[:20], order[20:38], order[38:41], order[41:]]
    for idx in splits:
        acc.update(X[:, idx].to(torch.float32), y[idx])
    out = acc.compute()
    X32 = X.to(torch.float32)
    M = m.class_means(X32, y)
    torch.testing.assert_close(out["means"], M, rtol=1e-12, atol=1e-12)
    expected = {
        "nc1": m.nc1(X32, y),
        "nc1_trace": m.nc1_trace(X32, y),
        "nc2_orth": m.nc2_orthogonal(M),
        "nc2_etf": m.nc2_etf(M),
        "equinorm": m.equinorm(M),
        "coherence": m.coherence(M),
        "mean_norm": float(torch.linalg.vector_norm(M, dim=0).mean()),
    }
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, rel=1e-10), key
    assert out["rank"] == m.rank(M) == 4
    assert out["num_samples"] == 56
    assert out["counts"].tolist() == [30.0, 5.0, 12.0, 9.0]

    acc.reset()
    with pytest.raises(ValueError, match="before any update"):
        acc.compute()
    acc.update(X[:, y != 2], y[y != 2])
    with pytest.raises(ValueError, match="no samples"):
        acc.compute()
    acc.update(X[:, y == 2], y[y == 2])
    assert acc.compute()["nc1"] == pytest.approx(expected["nc1"], rel=1e-6)


def test_accumulator_stable_for_collapsed_features():
    # Tiny within-class spread on large means: the scatter merge keeps NC1' accurate.
    X, y = _data((50, 50), d=5, seed=20, spread=100.0, noise=1e-6)
    acc = m.CollapseAccumulator(2, 5)
    for start in range(0, 100, 13):
        acc.update(X[:, start : start + 13], y[start : start + 13])
    assert acc.compute()["nc1_trace"] == pytest.approx(m.nc1_trace(X, y), rel=1e-6)


def test_accumulator_validates_input():
    acc = m.CollapseAccumulator(3, 4)
    with pytest.raises(ValueError, match="rows"):
        acc.update(torch.zeros(5, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels"):
        acc.update(torch.zeros(4, 2), torch.tensor([0, 3]))
    with pytest.raises(ValueError):
        m.CollapseAccumulator(1, 4)


# ============================================================================ model level
@pytest.fixture(scope="module")
def small_model() -> DUFM:
    cfg = DUFMConfig(num_classes=3, samples_per_class=(4, 5, 6), depth=3, width=(5, 6, 7), seed=3)
    return DUFM(cfg)


def _expected_keys(L, K):
    keys = []
    for l in range(1, L + 1):
        for kind in ("pre", "post"):
            keys += [(l, kind, name) for name in m.FEATURE_METRICS]
        keys.append((l, "weight", "nc3"))
    keys.append((L + 1, "output", "nc4"))
    keys += [(L + 1, "output", f"q_{k}") for k in range(K)]
    return keys


def test_layer_metric_rows_schema_and_values(small_model):
    rows = m.layer_metric_rows(small_model)
    assert [r[:3] for r in rows] == _expected_keys(3, 3)
    assert all(isinstance(r[3], float) for r in rows)
    assert set(m.FEATURE_METRICS) == {
        "nc1", "nc1_trace", "nc2_orth", "nc2_etf", "equinorm", "coherence", "rank", "mean_norm"
    }  # fmt: skip
    values = {r[:3]: r[3] for r in rows}
    with torch.no_grad():
        f = small_model.forward()
    y = small_model.labels
    for l in range(1, 4):
        for kind, X in (("pre", f.pre[l - 1]), ("post", f.post[l - 1])):
            M = m.class_means(X, y)
            assert values[(l, kind, "nc1")] == pytest.approx(m.nc1(X, y), rel=1e-10)
            assert values[(l, kind, "nc1_trace")] == pytest.approx(m.nc1_trace(X, y), rel=1e-10)
            assert values[(l, kind, "nc2_orth")] == pytest.approx(m.nc2_orthogonal(M), rel=1e-10)
            assert values[(l, kind, "nc2_etf")] == pytest.approx(m.nc2_etf(M), rel=1e-10)
            assert values[(l, kind, "equinorm")] == pytest.approx(m.equinorm(M), rel=1e-10)
            assert values[(l, kind, "coherence")] == pytest.approx(m.coherence(M), rel=1e-10)
            assert values[(l, kind, "rank")] == m.rank(M)
            mean_norm = float(M.norm(dim=0).mean())
            assert values[(l, kind, "mean_norm")] == pytest.approx(mean_norm, rel=1e-12)
    for l in (1, 2):
        M = m.class_means(f.post[l - 1], y)
        ref = m.dnc3_subspace(small_model.W[l - 1], M)
        assert values[(l, "weight", "nc3")] == pytest.approx(ref, rel=1e-10)
    M3 = m.class_means(f.post[2], y)
    assert values[(3, "weight", "nc3")] == pytest.approx(
        m.nc3_self_duality(small_model.W[2], M3), rel=1e-10
    )
    assert values[(4, "output", "nc4")] == pytest.approx(
        m.nc4_ncc_mismatch(f.post[2], y, small_model.W[2])
    )
    q = m.output_scale_frame(small_model)
    assert q["n"].tolist() == [4, 5, 6]
    for k in range(3):
        Zk = f.output[k, y == k].double().mean()
        assert values[(4, "output", f"q_{k}")] == pytest.approx(float(Zk), rel=1e-12)
        assert q["q"][k] == pytest.approx(float(Zk), rel=1e-12)
    # features passed in give the same rows
    assert m.layer_metric_rows(small_model, f) == rows


def test_layer_metric_rows_on_a_collapsed_construction():
    # K = 2, d = 2, L = 2: H1 = a I (x) 1^T, W1 = s I, W2 = t I -> DNC everywhere, q = t s a.
    cfg = DUFMConfig(num_classes=2, samples_per_class=3, depth=2, width=2, dtype="float64")
    model = DUFM(cfg)
    a, s, t = 0.7, 1.3, 0.9
    H1 = a * torch.eye(2, dtype=torch.float64)[:, model.labels]
    eye = torch.eye(2, dtype=torch.float64)
    model.load_matrices(H1, [s * eye, t * eye])
    values = {r[:3]: r[3] for r in m.layer_metric_rows(model)}
    for l in (1, 2):
        for kind in ("pre", "post"):
            assert values[(l, kind, "nc1")] == 0.0
            assert values[(l, kind, "nc2_orth")] == pytest.approx(0.0, abs=1e-15)
            assert values[(l, kind, "nc2_etf")] == pytest.approx(0.0, abs=1e-15)
            assert values[(l, kind, "rank")] == 2.0
    assert values[(2, "post", "mean_norm")] == pytest.approx(s * a)
    assert values[(1, "weight", "nc3")] == pytest.approx(0.0, abs=1e-15)
    assert values[(2, "weight", "nc3")] == pytest.approx(0.0, abs=1e-15)
    assert values[(3, "output", "nc4")] == 0.0
    assert values[(3, "output", "q_0")] == pytest.approx(t * s * a)
    assert values[(3, "output", "q_1")] == pytest.approx(t * s * a)


def test_layer_metric_rows_linear_activation_uniform_width():
    cfg = DUFMConfig(num_classes=2, samples_per_class=5, depth=2, width=4, activation="linear")
    model = DUFM(cfg)
    rows = m.layer_metric_rows(model)
    assert [r[:3] for r in rows] == _expected_keys(2, 2)
    values = {r[:3]: r[3] for r in rows}
    for name in m.FEATURE_METRICS:
        assert values[(2, "pre", name)] == values[(2, "post", name)]


def test_collapse_report_shape(small_model):
    df = m.collapse_report(small_model)
    cols = ["nc1", "nc1_trace", "nc2_orth", "nc2_etf", "equinorm", "coherence", "nc3", "rank"]
    extra = ["nc1_dropped", "nc1_hidden", "collapsed"]
    aware = ["nc2_general_orth", "nc3_general", "cdnv", "cdnv_max", "nc1_class_max"]
    assert list(df.columns) == ["layer", "kind", *cols, "mean_norm", *extra, *aware]
    assert df.shape == (3, 19)
    assert df["layer"].tolist() == [1, 2, 3]
    assert (df["kind"] == "post").all()
    rows = {r[:3]: r[3] for r in m.layer_metric_rows(small_model)}
    assert df.loc[1, "nc1"] == rows[(2, "post", "nc1")]
    assert df.loc[2, "nc3"] == rows[(3, "weight", "nc3")]
    both = m.collapse_report(small_model, kind="both")
    assert both.shape == (6, 19)
    assert both[["layer", "kind"]].values.tolist() == [
        [1, "pre"], [1, "post"], [2, "pre"], [2, "post"], [3, "pre"], [3, "post"]
    ]  # fmt: skip
    pre = m.collapse_report(small_model, kind="pre")
    assert pre["nc1"].tolist() == both.loc[both["kind"] == "pre", "nc1"].tolist()
    with pytest.raises(ValueError, match="kind"):
        m.collapse_report(small_model, kind="weights")


def test_snapshot_frames(small_model):
    L, K = 3, 3
    g = m.gram_frame(small_model)
    assert list(g.columns) == ["layer", "kind", "row", "col", "value"]
    assert len(g) == (2 * L + 1) * K * K
    assert set(g["kind"]) == {"pre", "post", "output"}
    out = g[g["kind"] == "output"]
    assert out["layer"].unique().tolist() == [L + 1]
    for _, block in g.groupby(["layer", "kind"]):
        assert float(np.sqrt((block["value"] ** 2).sum())) == pytest.approx(1.0)

    s = m.singular_value_frame(small_model)
    assert list(s.columns) == ["layer", "kind", "index", "value", "raw"]
    first = s[s["index"] == 1]
    assert len(first) == 2 * L + 1
    assert (first["value"] == 1.0).all()
    assert (s["value"] <= 1.0 + 1e-12).all()

    p = m.projection_frame(small_model, max_per_class=4)
    assert list(p.columns) == ["layer", "kind", "sample", "label", "x", "y"]
    assert len(p) == (2 * L + 1) * 12
    assert p.groupby(["layer", "kind", "label"]).size().max() == 4
    pd.testing.assert_frame_equal(p, m.projection_frame(small_model, max_per_class=4))


def test_projection_frame_k2_uses_a_second_direction():
    model = DUFM(DUFMConfig(num_classes=2, samples_per_class=6, depth=2, width=5))
    p = m.projection_frame(model)
    assert len(p) == 5 * 12
    h1 = p[(p["layer"] == 1) & (p["kind"] == "post")]
    assert h1["y"].abs().max() > 1e-3  # within-class direction, not a zero column
    # x separates the class means: the projected class means differ, along x only
    means = h1.groupby("label")[["x", "y"]].mean()
    assert abs(means["x"][0] - means["x"][1]) > 1e-3
    assert means["y"][0] == pytest.approx(means["y"][1], abs=1e-12)
    # Deterministic under a sign flip of the features: largest-magnitude entry convention.
    X = model.H1.detach().double()
    M = m.class_means(X, model.labels)
    u = (M[:, 0] - M[:, 1]) / torch.linalg.vector_norm(M[:, 0] - M[:, 1])
    if float(u[int(u.abs().argmax())]) < 0:
        u = -u
    expected_x = (u @ (X - M.mean(dim=1, keepdim=True))).numpy()
    np.testing.assert_allclose(h1["x"].to_numpy(), expected_x, rtol=1e-10, atol=1e-12)


def test_layer_metric_rows_at_the_trivial_solution_gives_nan_not_errors():
    cfg = DUFMConfig(num_classes=2, samples_per_class=3, depth=3, width=4)
    model = DUFM(cfg)
    model.load_matrices(torch.zeros_like(model.H1), [torch.zeros_like(W) for W in model.W])
    values = {r[:3]: r[3] for r in m.layer_metric_rows(model)}
    for l in (1, 2, 3):
        for kind in ("pre", "post"):
            assert math.isnan(values[(l, kind, "nc1")])
            assert math.isnan(values[(l, kind, "nc1_trace")])
            assert math.isnan(values[(l, kind, "nc2_orth")])
            assert values[(l, kind, "rank")] == 0.0
            assert values[(l, kind, "mean_norm")] == 0.0
        assert math.isnan(values[(l, "weight", "nc3")])
    assert values[(4, "output", "q_0")] == 0.0
    assert m.collapse_report(model)["rank"].tolist() == [0, 0, 0]
