"""Low-rank (SRG) constructions and the DNC / low-rank classifier (theory §5)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from dnc_interactive import lowrank as LR
from dnc_interactive import metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.lowrank.symmetric import _canonical_params
from dnc_interactive.model import DUFM


def cfg(r=5, L=4, n=5, lam=4e-3, width=None, **kw) -> DUFMConfig:
    K = r * (r - 1) // 2
    return DUFMConfig(
        num_classes=K,
        samples_per_class=n,
        depth=L,
        width=width or max(K, r),
        lambda_H=kw.pop("lambda_H", lam),
        lambda_W=kw.pop("lambda_W", lam),
        dtype="float64",
        **kw,
    )


def means(model: DUFM):
    with torch.no_grad():
        f = model.forward()
    K = model.config.K
    pre = [metrics.class_means(X, model.labels, K) for X in f.pre]
    post = [metrics.class_means(X, model.labels, K) for X in f.post]
    return pre, post, metrics.class_means(f.output, model.labels, K)


# ---------------------------------------------------------------------- the graph
@pytest.mark.parametrize("r", [3, 4, 5, 7])
def test_incidence_matrix_of_complete_graph(r):
    B = LR.incidence_matrix(r)
    K = r * (r - 1) // 2
    assert B.shape == (r, K) and B.dtype == torch.float64
    assert torch.equal(B.sum(0), torch.full((K,), 2.0))  # an edge has two ends
    assert torch.equal(B.sum(1), torch.full((r,), float(r - 1)))  # degree r - 1 (caption)
    s = torch.linalg.svdvals(B)
    expected = sorted([math.sqrt(2 * (r - 1))] + [math.sqrt(r - 2)] * (r - 1), reverse=True)
    assert torch.allclose(s, torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    # B^T B - 2I is the adjacency of the triangular graph T(r): each edge meets 2(r-2) others
    A = B.T @ B - 2 * torch.eye(K, dtype=torch.float64)
    assert torch.equal(A.sum(1), torch.full((K,), 2.0 * (r - 2)))


def test_srg_r_and_bad_input():
    assert [LR.srg_r(K) for K in (3, 6, 10, 15, 21)] == [3, 4, 5, 6, 7]
    assert LR.srg_r(2) is None and LR.srg_r(11) is None and LR.srg_r(1) is None
    with pytest.raises(ValueError, match="r=2"):
        LR.incidence_matrix(2)
    with pytest.raises(ValueError, match="num_classes=11"):
        LR.srg_loss(DUFMConfig(num_classes=11, depth=4, width=16))
    with pytest.raises(ValueError, match="depth=1"):
        LR.srg_loss(cfg(L=1))
    with pytest.raises(ValueError, match="activation"):
        LR.srg_loss(cfg(activation="linear"))
    with pytest.raises(ValueError, match="lambda"):
        LR.srg_loss(cfg(lambda_H=0.0))
    with pytest.raises(ValueError, match="width d_1=4"):
        LR.srg_construction(cfg(width=[4, 10, 10, 10]))
    with pytest.raises(ValueError, match="width d_4=9"):
        with pytest.warns(UserWarning, match="width 5 < num_classes=10"):
            narrow = cfg(width=[5, 5, 5, 9])  # DUFMConfig warns: DNC needs d_l >= K
        LR.srg_construction(narrow)


# ---------------------------------------------------------------------- canonical construction
@pytest.mark.parametrize(("r", "L"), [(4, 3), (5, 4), (5, 3), (6, 5), (4, 2)])
def test_srg_loss_equals_dufm_loss_of_its_matrices(r, L):
    config = cfg(r=r, L=L, lambda_W=[4e-3 * (1 + 0.2 * l) for l in range(L)])
    res = LR.srg_loss(config)
    model = DUFM(config).load_matrices(*LR.srg_construction(config))
    with torch.no_grad():
        terms = model.loss()
    assert float(terms.fit) == pytest.approx(res.fit, rel=1e-12, abs=1e-16)
    assert float(terms.fit) == pytest.approx(0.5 * (1 - res.q) ** 2, rel=1e-12, abs=1e-16)
    pieces = [float(terms.reg_H), *(float(t) for t in terms.reg_W)]
    assert pieces == pytest.approx(list(res.reg_terms), rel=1e-12)
    assert float(terms.total) == pytest.approx(res.loss, rel=1e-13)
    # balancedness: every block carries the same lambda ||.||^2 (AM-GM), = C q^{2/(L+1)}
    assert pieces == pytest.approx([0.5 * res.C * res.q ** (2 / (L + 1))] * (L + 1), rel=1e-12)


@pytest.mark.parametrize(("r", "L"), [(4, 3), (5, 4), (6, 5), (5, 2)])
def test_constant_C_against_its_closed_form(r, L):
    config = cfg(r=r, L=L)
    res = LR.srg_loss(config)
    c_dnc = theory.effective_c(config)[0]
    assert res.C / c_dnc == pytest.approx((r * 2 ** (L - 3) / (r - 1) ** (L - 2)) ** (1 / (L + 1)))
    assert res.loss == pytest.approx(float(theory.phi(res.q, res.C, L)), rel=1e-13)
    assert res.dnc_loss == theory.optimal_loss(config)


def test_free_scales_are_optimal_against_a_numerical_optimiser():
    """Minimise the explicit DUFM loss over the L + 1 log-scales with scipy (independent of
    the AM-GM argument) and land on srg_loss."""
    config = cfg(r=5, L=4)
    res = LR.srg_loss(config)
    model = DUFM(config)

    def loss(log_t: np.ndarray) -> float:
        model.load_matrices(*LR.srg_construction(config, scales=np.exp(log_t).tolist()))
        with torch.no_grad():
            return float(model.loss().total)

    start = np.log(np.array(res.scales)) + np.array([0.3, -0.2, 0.1, 0.2, -0.3])
    out = minimize(
        loss,
        start,
        method="Nelder-Mead",
        options={"xatol": 1e-10, "fatol": 1e-15, "maxiter": 20000},
    )
    assert out.fun == pytest.approx(res.loss, rel=1e-8)
    assert out.fun >= res.loss - 1e-14


@pytest.mark.parametrize(("r", "rank_pre_last"), [(3, 3), (4, 3), (5, 5), (6, 6)])
def test_relu_rank_property(r, rank_pre_last):
    """rank(M~_L) = r (r - 1 for r = 4, where B^T B - J loses its trivial eigenvalue) and
    rank(sigma(M~_L)) = K; earlier layers carry B (rank r); output means q I_K."""
    config = cfg(r=r, L=4)
    K = config.K
    model = DUFM(config).load_matrices(*LR.srg_construction(config))
    pre, post, out = means(model)
    assert metrics.rank(pre[-1]) == rank_pre_last
    assert metrics.rank(post[-1]) == K
    assert [metrics.rank(M) for M in pre[:-1]] == [r] * 3
    # M~_L is proportional to B^T B - J (1 / 0 / -1 for same / adjacent / disjoint edges)
    B = LR.incidence_matrix(r)
    T = B.T @ B - torch.ones(K, K, dtype=torch.float64)
    M = pre[-1][:K]
    assert torch.allclose(M / M[0, 0], T, atol=1e-12)
    q = LR.srg_loss(config).q
    assert torch.allclose(out, q * torch.eye(K, dtype=torch.float64), atol=1e-12)


def test_srg_beats_dnc_exactly_where_the_constant_says():
    # L = 3: C > c_DNC, so SRG is worse; L = 4, 5 (r = 5): better (theory §5, follow-up Fig. 3)
    assert LR.srg_loss(cfg(r=5, L=3)).ratio > 1
    assert LR.srg_loss(cfg(r=5, L=4)).ratio < 1
    assert LR.srg_loss(cfg(r=5, L=5)).ratio < LR.srg_loss(cfg(r=5, L=4)).ratio
    # above the threshold the construction collapses to 0 (q = 0, loss 1/2)
    big = LR.srg_loss(cfg(r=5, L=4, lam=0.5))
    assert big.q == 0.0 and big.loss == 0.5


# ---------------------------------------------------------------------- symmetric family
def test_symmetric_family_contains_canonical_point():
    config = cfg(r=5, L=4)
    res = LR.srg_loss(config)
    params = _canonical_params(res)
    M1, Ws = LR.srg_symmetric_matrices(params, 5, 4)
    H1, Wc = LR.srg_construction(config)
    assert torch.allclose(M1, H1[:5, :: config.class_sizes[0]], atol=1e-15)
    for W, V in zip(Ws, Wc, strict=True):
        assert torch.allclose(W, V[: W.shape[0], : W.shape[1]], atol=1e-15)


def test_srg_optimize_never_worse_and_its_loss_is_the_dufm_loss():
    config = cfg(r=5, L=4)
    res, (H1, Ws) = LR.srg_optimize(config, starts=1, max_iter=25)
    canon = LR.srg_loss(config)
    assert res.loss <= canon.loss + 1e-15
    assert res.loss < 0.99 * canon.loss  # the family is strictly richer here
    model = DUFM(config).load_matrices(H1, Ws)
    with torch.no_grad():
        assert float(model.loss().total) == pytest.approx(res.loss, rel=1e-12)
    v = LR.classify(model)
    assert v.label == "low-rank (rank 5)" and v.rank == 5 and not v.is_dnc
    with pytest.raises(ValueError, match="starts=0"):
        LR.srg_optimize(config, starts=0)


def test_compare_srg_dnc_frame():
    df = LR.compare_srg_dnc(rs=(4, 5), depths=(3, 4), optimize=False)
    assert list(df.columns) == [
        "r", "K", "depth", "lambda", "samples_per_class", "dnc_loss", "srg_loss", "srg_ratio"
    ]  # fmt: skip
    assert len(df) == 4 and df["K"].tolist() == [6, 6, 10, 10]
    row = df[(df.r == 5) & (df.depth == 4)].iloc[0]
    assert row.srg_ratio == pytest.approx(LR.srg_loss(cfg(r=5, L=4)).ratio)


# ---------------------------------------------------------------------- classifier
def test_classifier_labels_dnc_construction_as_dnc():
    config = cfg(r=5, L=4)
    model = DUFM(config).load_matrices(*theory.construct_optimum(config))
    v = LR.classify(model)
    assert v.label == "DNC" and v.is_dnc and v.rank == config.K
    assert v.ranks_post[1:] == (10, 10, 10) and v.min_rank_pre == 10


def test_classifier_ignores_rank_deficient_first_layers_of_dnc():
    """K = 2 DNC with antipodal H_1 means (optimal, theory §2.3): M_1 and M~_2 have rank 1,
    yet the solution is DNC."""
    K, d = 2, 4
    u = torch.eye(d, dtype=torch.float64)
    pre = [
        torch.stack([u[0], -u[0]], 1),  # H_1: antipodal
        torch.stack([u[0] - u[1], u[1] - u[0]], 1),  # M~_2 (rank 1, gamma = -1)
        torch.stack([u[0], u[1]], 1),  # M~_3 = M_3: orthogonal
    ]
    post = [pre[0], torch.relu(pre[1]), pre[2]]
    v = LR.classify(pre=pre, post=post)
    assert v.label == "DNC" and v.ranks_pre == (1, 1, 2) and v.ranks_post == (1, 2, 2)
    assert v.rank == K


def test_classifier_low_rank_and_trivial_and_threshold():
    r, K = 5, 10
    B = LR.incidence_matrix(r)
    T = B.T @ B - torch.ones(K, K, dtype=torch.float64)
    pre = [B, B, T]
    post = [B, B, torch.relu(T)]
    v = LR.classify(pre=pre, post=post)
    assert v.label == "low-rank (rank 5)" and v.rank == 5 and v.min_rank_pre == 5
    # tiny singular values below rtol * sigma_max do not count
    noise = 1e-5 * torch.randn(
        K, K, dtype=torch.float64, generator=torch.Generator().manual_seed(0)
    )
    assert LR.classify(pre=[B, B, T + noise], post=post).rank == 5
    full = [B, torch.eye(K, dtype=torch.float64), torch.relu(T)]
    assert LR.classify(pre=[B, B, T + noise], post=full, rtol=1e-7).label == "DNC"
    assert LR.classify(pre=[B, B, T + noise], post=full).label == "low-rank (rank 5)"
    zero = [torch.zeros(6, K, dtype=torch.float64)] * 3
    assert LR.classify(pre=zero, post=zero).label == "trivial"


def test_classifier_bad_input():
    model = DUFM(cfg(r=4, L=3))
    with pytest.raises(ValueError, match="either model"):
        LR.classify(model, pre=[torch.zeros(3, 6)], post=[torch.zeros(3, 6)])
    with pytest.raises(ValueError, match="both pre and post"):
        LR.classify(pre=[torch.zeros(3, 6)])
    with pytest.raises(ValueError, match=r"post\[0\] has shape"):
        LR.classify(
            pre=[torch.zeros(3, 6), torch.zeros(3, 6)], post=[torch.zeros(3, 5), torch.zeros(3, 6)]
        )
    with pytest.raises(ValueError, match="rtol=2"):
        LR.classify(model, rtol=2)
