"""Tests of dnc_interactive.theory against theory §2.2, §2.3, §6 and the reference values of §7."""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar

from dnc_interactive import theory as T
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM


def cfg(K=2, n=50, L=4, lam_H=1e-3, lam_W=1e-3, **kw) -> DUFMConfig:
    kw.setdefault("dtype", "float64")
    return DUFMConfig(
        num_classes=K, samples_per_class=n, depth=L, lambda_H=lam_H, lambda_W=lam_W, **kw
    )


def assert_digits(actual: float, printed: str) -> None:
    """``actual`` rounds to ``printed`` (|actual - printed| <= half a unit of the last digit)."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    tol = 0.5 * 10.0**-decimals * (1 + 1e-9)
    assert abs(actual - float(printed)) <= tol, (actual, printed)


# ---------------------------------------------------------------------- theory §7.1
C_STAR = {1: "1", 2: "0.396850", 3: "0.272166", 4: "0.210367", 5: "0.172355", 6: "0.146316"}
LAMBDA_CRIT = {
    1: "0.070711",
    2: "0.053861",
    3: "0.051175",
    4: "0.048101",
    5: "0.044898",
    6: "0.041836",
}


@pytest.mark.parametrize("L", range(1, 7))
def test_c_star_and_critical_lambda_spec_7_1(L):
    assert_digits(T.c_star(L), C_STAR[L])
    assert_digits(T.critical_lambda(2, 50, L), LAMBDA_CRIT[L])
    # the config-level helpers agree with the free function
    lam = T.critical_lambda(2, 50, L)
    assert T.critical_lambda_of(cfg(L=L)) == pytest.approx(lam, rel=1e-14)
    assert T.critical_scale(cfg(L=L, lam_H=0.5 * lam, lam_W=0.5 * lam)) == pytest.approx(2.0)


def test_c_star_larger_L_spec_2_2():
    for L, printed in ((7, "0.127260"), (8, "0.112669")):
        assert_digits(T.c_star(L), printed)
    values = [T.c_star(L) for L in range(1, 30)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


# ---------------------------------------------------------------------- theory §7.2
SPEC_7_2 = {
    # L: q*, L*, tau, a, s_l, (b_2..b_L)
    1: ("0.98585786", "0.0140421356", "0.01394214", "0.373392", "2.640278", ()),
    2: ("0.99261371", "0.0110248833", "0.00733174", "0.270772", "1.914646", ("0.518432",)),
    3: (
        "0.99466747",
        "0.0106224119",
        "0.00530410",
        "0.230306",
        "1.628511",
        ("0.375056", "0.610783"),
    ),
    4: (
        "0.99561500",
        "0.0109240320",
        "0.00436577",
        "0.208944",
        "1.477458",
        ("0.308706", "0.456101", "0.673870"),
    ),
    5: (
        "0.99615135",
        "0.0115089116",
        "0.00383384",
        "0.195802",
        "1.384528",
        ("0.271093", "0.375336", "0.519663", "0.719488"),
    ),
    6: ("0.99649386", "0.0122346193", "0.00349385", "0.186918", "1.321713", ("0.247052",)),
}


@pytest.mark.parametrize("L", range(1, 7))
def test_balanced_optimum_spec_7_2(L):
    q, loss, tau, a, s, bs = SPEC_7_2[L]
    config = cfg(L=L)
    opt = T.optimum(config)
    for k in range(2):
        assert_digits(opt.q[k], q)
        assert_digits(opt.tau[k], tau)
        assert_digits(opt.H1_mean_norms[k], a)
        for l in range(L):
            assert_digits(opt.singular_values[l][k], s)
        for l, b in enumerate(bs):
            assert_digits(opt.post_mean_norms[l][k], b)
    assert_digits(opt.loss, loss)
    assert_digits(T.optimal_loss(config), loss)
    assert opt.optimality == (T.OPTIMALITY_LINEAR if L == 1 else T.OPTIMALITY_PROVEN)
    assert opt.a == opt.H1_mean_norms[0] and len(opt.b) == L - 1
    assert opt.s == tuple(row[0] for row in opt.singular_values)
    assert opt.block_value == pytest.approx(opt.tau[0], rel=1e-14)
    assert opt.loss == pytest.approx(opt.fit + opt.reg, rel=1e-13)
    assert opt.output_scales == opt.q and opt.classifier_norms == opt.singular_values[-1]
    assert len(opt.post_mean_norms) == L - 1
    assert opt.zero_wins == (False, False) and not opt.near_threshold and opt.attained
    if L == 6:
        assert_digits(opt.post_mean_norms[-1][0], "0.753941")
    assert T.layer_norms(config) == (opt.H1_mean_norms, *opt.post_mean_norms)


# ---------------------------------------------------------------------- theory §7.3
SPEC_7_3 = [
    (2, 10, 3, 5e-3, 5e-3, "0.98205547", "0.0354060429"),
    (2, 20, 6, 2e-3, 2e-3, "0.99383633", "0.0214588721"),
    (2, 20, 3, 2e-3, (5e-3, 1e-3, 2e-3), "0.99101527", "0.0178483633"),
    (3, 10, 2, 1e-2, 1e-2, "0.93387615", "0.0948134174"),
    (4, 5, 4, 4e-3, 4e-3, "0.97762252", "0.0549422078"),
    (10, 5, 4, 4e-3, 4e-3, "0.94282648", "0.1363961766"),
    (10, 5000, 4, 5e-6, 5e-3, "0.92784285", "0.1699795581"),
]


@pytest.mark.parametrize(("K", "n", "L", "lam_H", "lam_W", "q", "loss"), SPEC_7_3)
def test_other_configurations_spec_7_3(K, n, L, lam_H, lam_W, q, loss):
    config = cfg(K, n, L, lam_H, lam_W, width=max(K, 8))
    opt = T.optimum(config)
    for qk in opt.q:
        assert_digits(qk, q)
    assert_digits(T.optimal_loss(config), loss)
    assert T.optimal_q(config) == opt.q


def test_per_layer_lambda_tau_products_spec_7_3():
    config = cfg(2, 20, 3, 2e-3, (5e-3, 1e-3, 2e-3), width=8)
    opt = T.optimum(config)
    assert_digits(opt.block_value, "0.008904")
    H1, Ws = T.construct_optimum(config)
    blocks = [config.lambda_H * float((H1**2).sum())]
    blocks += [lam * float((W**2).sum()) for lam, W in zip(config.lambda_Ws, Ws, strict=True)]
    for value in blocks:
        assert_digits(value, "0.008904")
        assert value == pytest.approx(opt.block_value, rel=1e-13)
    # unequal lambdas give unequal singular values per layer, s_l = sqrt(tau / (K lambda_l))
    for l, lam in enumerate(config.lambda_Ws):
        assert opt.s[l] == pytest.approx(math.sqrt(opt.tau[0] / (2 * lam)), rel=1e-14)


# ---------------------------------------------------------------------- theory §7.5
SPEC_7_5 = [
    ("relu", [90, 10], 3, 3e-3, ("0.98968", "0.94512"), "0.0289561"),
    ("relu", [80, 20], 2, 5e-3, ("0.97282", "0.93049"), "0.0519104"),
    ("relu", [95, 5], 3, 0.0077353, ("0.97425", "0.72906"), "0.0695762"),
    ("relu", [95, 5], 3, 0.0104655, ("0.96499", "0"), "0.0897744"),
    ("linear", [200, 100, 50, 50], 3, 5e-4, ("0.996232", "0.993655", "0.989306", "0.989306"), None),
    ("linear", [100, 20, 5], 2, 2e-3, ("0.988351", "0.965672", "0.911830"), None),
]


@pytest.mark.parametrize(("act", "ns", "L", "lam", "qs", "loss"), SPEC_7_5)
def test_imbalance_spec_7_5(act, ns, L, lam, qs, loss):
    config = cfg(len(ns), ns, L, lam, lam, activation=act)
    opt = T.optimum(config)
    for qk, printed in zip(opt.q, qs, strict=True):
        assert_digits(qk, printed)
    if loss is not None:
        assert_digits(opt.loss, loss)
    assert opt.zero_wins == tuple(p == "0" for p in qs)
    if act == "linear":
        assert opt.optimality == T.OPTIMALITY_LINEAR
    else:
        assert opt.optimality == T.OPTIMALITY_K2_IMBALANCED


def test_minority_collapse_lambda_spec_6():
    """[95, 5], L = 3, equal lambda: predicted lambda* = 0.009100 (theory §6)."""
    config = cfg(2, [95, 5], 3, 0.0077353, 0.0077353)
    assert_digits(T.critical_lambda_of(config), "0.009100")
    assert T.critical_scale(config) == pytest.approx(1 / 0.85, rel=1e-4)
    collapsed = cfg(2, [95, 5], 3, 0.0104655, 0.0104655)
    assert T.critical_scale(collapsed) == pytest.approx(1 / 1.15, rel=1e-4)
    msg = T.threshold_message(collapsed)
    assert msg is not None and "[1]" in msg and "exactly 0" in msg
    assert T.threshold_message(config) is None


def test_linear_rows_match_dang_et_al_equation():
    """Dang et al.'s equation [S7] as restated in theory §6 (M = L linear layers, equal lambda):
    b = M N (N lambda_W^M lambda_H)^{1/M}; root x of b/n_k = M x^{M-1}/(x^M+1)^2;
    q_k = x^M/(x^M+1). An independent parametrisation of the same optimum."""
    ns, L, lam = [200, 100, 50, 50], 3, 5e-4
    q_theory = T.optimal_q(cfg(4, ns, L, lam, lam, activation="linear"))
    M = L  # M = number of weight matrices (depth_linear in [S7])
    N = sum(ns)
    b = M * N * (N * lam**L * lam) ** (1 / M)
    for n_k, q_k in zip(ns, q_theory, strict=True):
        # x^M = q/(1-q) on the non-trivial branch; check the root equation there
        x = (q_k / (1 - q_k)) ** (1 / M)
        lhs, rhs = b / n_k, M * x ** (M - 1) / (x**M + 1) ** 2
        assert lhs == pytest.approx(rhs, rel=1e-9)


# ---------------------------------------------------------------------- construction (§7.6)
CONSTRUCT_CASES = [
    dict(K=2, n=50, L=4),
    dict(K=2, n=20, L=3),
    dict(K=10, n=5, L=4, lam_H=4e-3, lam_W=4e-3, width=30),
    dict(K=3, n=10, L=2, lam_H=1e-2, lam_W=1e-2),
    dict(K=3, n=[40, 15, 5], L=3, lam_H=2e-3, lam_W=3e-3),  # imbalanced, all survive
    dict(K=2, n=20, L=3, lam_H=2e-3, lam_W=(5e-3, 1e-3, 2e-3)),  # per-layer lambda
    dict(K=2, n=[95, 5], L=3, lam_H=0.0104655, lam_W=0.0104655),  # minority collapsed
    dict(K=4, n=[200, 100, 50, 50], L=3, lam_H=5e-4, lam_W=5e-4, activation="linear"),
    dict(K=3, n=7, L=1, lam_H=1e-2, lam_W=2e-2),
    dict(
        K=2,
        n=[30, 10],
        L=5,
        lam_H=1e-3,
        lam_W=(1e-3, 2e-3, 3e-3, 4e-3, 5e-3),
        width=(6, 5, 4, 3, 2),
    ),
]


@pytest.mark.parametrize("case", CONSTRUCT_CASES, ids=str)
def test_construct_optimum_reaches_optimal_loss_spec_7_6(case):
    config = cfg(**case)
    H1, Ws = T.construct_optimum(config)
    model = DUFM(config).load_matrices(H1, Ws)
    with torch.no_grad():
        terms = model.loss()
    assert abs(float(terms.total) - T.optimal_loss(config)) <= 1e-12
    opt = T.optimum(config)
    assert float(terms.fit) == pytest.approx(opt.fit, rel=1e-12, abs=1e-15)
    # balancedness: every block has lambda ||.||^2 = block_value
    assert 2 * float(terms.reg_H) == pytest.approx(opt.block_value, rel=1e-12, abs=1e-300)
    for reg in terms.reg_W:
        assert 2 * float(reg) == pytest.approx(opt.block_value, rel=1e-12, abs=1e-300)
    # geometry: output means q_k e_k, post-activation means orthogonal with norms a_k, b_{l,k}
    with torch.no_grad():
        feats = model.forward()
    posts = [H.detach() for H in feats.post]
    sizes = config.class_sizes
    start = np.cumsum((0, *sizes))
    for l, H in enumerate(posts):
        means = torch.stack([H[:, start[k] : start[k + 1]].mean(1) for k in range(config.K)], 1)
        expected = T.layer_norms(config)[l]
        gram = (means.T @ means).numpy()
        np.testing.assert_allclose(gram, np.diag(np.square(expected)), rtol=1e-12, atol=1e-15)
        assert (H >= 0).all()  # non-negative frames: the ReLU is the identity
    Z = feats.output
    for k in range(config.K):
        np.testing.assert_allclose(
            Z[:, start[k] : start[k + 1]].numpy(),
            opt.q[k] * np.eye(config.K)[:, [k] * sizes[k]],
            rtol=0,
            atol=1e-14,
        )
    # self-duality of the last layer: W_L = diag(q_k / b_{L,k}^2) M_L^T
    if config.L >= 2:
        M_L = torch.stack(
            [posts[-1][:, start[k] : start[k + 1]].mean(1) for k in range(config.K)], 1
        )
        for k in range(config.K):
            if opt.q[k] > 0:
                b = opt.post_mean_norms[-1][k]
                torch.testing.assert_close(Ws[-1][k], opt.q[k] / b**2 * M_L[:, k])


def test_construct_optimum_dtype_device_shapes():
    config = cfg(K=3, n=4, L=3, width=(5, 6, 7), dtype="float32")
    H1, Ws = T.construct_optimum(config)
    model = DUFM(config)
    assert H1.dtype == torch.float32 and all(W.dtype == torch.float32 for W in Ws)
    assert H1.device == model.H1.device
    assert H1.shape == model.H1.shape
    assert [W.shape for W in Ws] == [W.shape for W in model.W]
    loss = model.load_matrices(H1, Ws).loss().total.item()
    assert loss == pytest.approx(T.optimal_loss(config), rel=1e-5)


def _gradients_at_construction(config, scale_H1=1.0):
    H1, Ws = T.construct_optimum(config)
    model = DUFM(config).load_matrices(H1 * scale_H1, Ws)
    model.zero_grad()
    model.loss().total.backward()
    return [model.H1.grad, *[W.grad for W in model.W]]


@pytest.mark.parametrize(
    "case",
    [
        dict(K=2, n=50, L=4),
        dict(K=3, n=[40, 15, 5], L=3, lam_H=2e-3, lam_W=3e-3),
        dict(K=2, n=20, L=3, lam_H=2e-3, lam_W=(5e-3, 1e-3, 2e-3)),
        dict(K=4, n=[200, 100, 50, 50], L=3, lam_H=5e-4, lam_W=5e-4, activation="linear"),
        dict(K=3, n=7, L=1, lam_H=1e-2, lam_W=2e-2),
    ],
    ids=str,
)
def test_constructed_optimum_is_stationary(case):
    """Independent of the closed form: autograd's gradient of the §1.2 objective vanishes at
    the construction (every class survives, q_k > 0), and does not after a 1% perturbation."""
    config = cfg(**case)
    assert all(q > 0 for q in T.optimal_q(config))
    grads = _gradients_at_construction(config)
    for g in grads:
        assert float(g.abs().max()) <= 1e-13
    perturbed = _gradients_at_construction(config, scale_H1=1.01)
    assert max(float(g.abs().max()) for g in perturbed) > 1e-6


def test_construct_optimum_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        narrow = cfg(K=3, n=5, L=3, width=(8, 2, 8))
    with pytest.raises(ValueError, match=r"width.*num_classes=3"):
        T.construct_optimum(narrow)
    with pytest.raises(ValueError, match=r"width.*num_classes=3"):
        T.construct_optimum(cfg(K=3, n=5, L=2, width=(2, 8)))
    with pytest.raises(ValueError, match="loss='ce'"):
        T.construct_optimum(cfg(loss="ce"))
    with pytest.raises(ValueError, match="lambda"):
        T.construct_optimum(cfg(lam_H=0.0))


def test_no_regularisation():
    """All lambdas 0: q = 1, L* = 0, attained by the canonical construction; some lambda 0:
    the infimum 0 is not attained and the scales are NaN."""
    config = cfg(lam_H=0.0, lam_W=0.0, L=3)
    opt = T.optimum(config)
    assert opt.q == (1.0, 1.0) and opt.loss == 0.0 and opt.attained
    H1, Ws = T.construct_optimum(config)
    assert DUFM(config).load_matrices(H1, Ws).loss().total.item() == 0.0
    partial = T.optimum(cfg(lam_W=(1e-3, 0.0, 1e-3, 1e-3)))
    assert partial.loss == 0.0 and not partial.attained and math.isnan(partial.H1_mean_norms[0])
    assert T.critical_scale(config) == math.inf
    assert T.minority_collapse_threshold(config) == 0.0


# ---------------------------------------------------------------------- the scalar problem
@pytest.mark.parametrize("L", range(1, 8))
def test_solve_q_matches_brute_force_and_scipy(L):
    cs = T.c_star(L)
    grid = np.linspace(0, 1, 20_001)
    for c in np.concatenate([np.linspace(0, 1.3 * cs, 14), [1e-12, 1e-6, 0.999 * cs, 1.001 * cs]]):
        c = float(c)
        q = T.solve_q(c, L)
        vals = T.phi(grid, c, L)
        q_grid = grid[np.argmin(vals)]
        assert T.phi(q, c, L) <= vals.min() + 1e-14
        assert abs(q - q_grid) <= 1e-4 or abs(c - cs) < 2e-3 * cs
        res = minimize_scalar(
            lambda x, c=c: T.phi(x, c, L),
            bounds=(max(q - 0.2, 0.0), 1.0) if q > 0 else (0.0, 1.0),
            method="bounded",
            options={"xatol": 1e-12},
        )
        assert T.phi(q, c, L) <= res.fun + 1e-14


@pytest.mark.parametrize("L", range(2, 8))
def test_solve_q_stationarity_and_precision(L):
    p = (L - 1) / (L + 1)
    for c in (1e-9, 1e-4, 0.01, 0.5 * T.c_star(L), (1 - 1e-9) * T.c_star(L)):
        q = T.solve_q(c, L)
        assert (L - 1) / L - 1e-6 <= q < 1.0
        # stationarity (1 - q) q^p = c, to (nearly) machine precision relative to c
        assert (1 - q) * q**p == pytest.approx(c, rel=1e-9)
        # larger root: the derivative of g(q) = (1-q) q^p is negative there
        assert p * (1 - q) - q < 0
    # phi'(q*) = 0 numerically
    c = 0.3 * T.c_star(L)
    q = T.solve_q(c, L)
    h = 1e-6
    assert abs(T.phi(q + h, c, L) - T.phi(q - h, c, L)) / (2 * h) < 1e-7


@pytest.mark.parametrize("L", range(2, 9))
def test_tie_at_threshold(L):
    cs = T.c_star(L)
    q_tie = (L - 1) / L
    assert T.phi(q_tie, cs, L) == pytest.approx(0.5, abs=1e-14)
    assert (1 - q_tie) * q_tie ** ((L - 1) / (L + 1)) == pytest.approx(cs, rel=1e-14)
    # documented tie convention: 0 at c = c*_L; the jump to (L-1)/L just below (discontinuous)
    assert T.solve_q(cs, L) == 0.0
    assert T.solve_q(cs * (1 - 1e-12), L) == pytest.approx(q_tie, abs=1e-5)
    assert T.solve_q(cs * (1 + 1e-12), L) == 0.0


def test_L1_closed_form():
    for c in (0.0, 0.25, 0.999, 1.0, 2.0):
        assert T.solve_q(c, 1) == max(0.0, 1.0 - c)


def test_phi_values_and_arrays():
    assert T.phi(0.0, 0.3, 3) == 0.5
    assert T.phi(1.0, 0.3, 3) == pytest.approx(2 * 0.3)
    arr = T.phi(np.array([0.0, 0.5, 1.0]), 0.1, 2)
    assert isinstance(arr, np.ndarray) and arr.shape == (3,)
    assert arr[1] == pytest.approx(0.125 + 1.5 * 0.1 * 0.5 ** (2 / 3))
    assert isinstance(T.phi(0.5, 0.1, 2), float)


def test_per_class_formula_equals_balanced():
    for K, n, L, lam_H, lam_W in ((2, 50, 4, 1e-3, 2e-3), (5, 7, 2, 3e-3, (1e-3, 4e-3))):
        config = cfg(K, n, L, lam_H, lam_W)
        Lam = lam_H * math.prod(config.lambda_Ws)
        assert T.Lambda(config) == pytest.approx(Lam, rel=1e-15)
        balanced_c = K * (n * Lam) ** (1 / (L + 1))
        for ck in T.effective_c(config):
            assert ck == pytest.approx(balanced_c, rel=1e-13)
        # per-class sum with equal n_k == phi at the balanced c
        assert T.optimal_loss(config) == pytest.approx(
            T.phi(T.solve_q(balanced_c, L), balanced_c, L), rel=1e-13
        )


def test_effective_c_no_underflow_at_large_depth():
    config = cfg(K=2, n=10, L=80, lam_H=1e-5, lam_W=1e-5, width=4)
    assert T.Lambda(config) == 0.0  # the product underflows ...
    c = T.effective_c(config)[0]  # ... but c does not
    assert c == pytest.approx(2 * 10 ** (1 / 81) * 1e-5, rel=1e-12)


# ---------------------------------------------------------------------- thresholds
def test_minority_collapse_threshold_sharp():
    """With N = 100 held fixed, a class just below / above the threshold collapses / survives
    (theory §6)."""
    L, N = 3, 100
    for n_min in (10, 7):
        for eps, collapsed in ((1e-9, True), (-1e-9, False)):
            # lambda such that the threshold is n_min (1 + eps)
            lam = (n_min * (1 + eps)) ** (L / (L + 1)) * T.c_star(L) / N
            config = cfg(2, [N - n_min, n_min], L, lam, lam)
            thr = T.minority_collapse_threshold(config)
            assert thr == pytest.approx(n_min * (1 + eps), rel=1e-12)
            q = T.optimal_q(config)
            assert q[0] > 0
            assert (q[1] == 0.0) is collapsed
            assert (n_min <= thr) is collapsed
            if not collapsed:
                assert q[1] > (L - 1) / L - 1e-3  # the discontinuous jump
    # L = 1: N^2 lambda_H lambda_W (theory §6)
    config = cfg(2, [90, 10], 1, 1e-3, 2e-3)
    assert T.minority_collapse_threshold(config) == pytest.approx(100**2 * 2e-6, rel=1e-13)


def test_near_threshold_and_message():
    lam_c = T.critical_lambda(2, 50, 4)
    assert not T.near_threshold(cfg(lam_H=1e-3, lam_W=1e-3))
    assert T.threshold_message(cfg(lam_H=1e-3, lam_W=1e-3)) is None
    below, above = (
        cfg(lam_H=0.95 * lam_c, lam_W=0.95 * lam_c),
        cfg(lam_H=1.05 * lam_c, lam_W=1.05 * lam_c),
    )
    assert T.near_threshold(below) and T.near_threshold(above)
    assert not T.near_threshold(below, margin=0.04)
    assert T.optimum(below).near_threshold and T.optimum(below).q[0] > 0.7
    assert T.optimum(above).zero_wins == (True, True) and T.optimum(above).loss == 0.5
    msg_below, msg_above = T.threshold_message(below), T.threshold_message(above)
    assert "two competing minima" in msg_below and "exactly 0" not in msg_below
    assert "every class" in msg_above and "two competing minima" in msg_above
    far_above = cfg(lam_H=3 * lam_c, lam_W=3 * lam_c)
    assert not T.near_threshold(far_above) and "exactly 0" in T.threshold_message(far_above)
    # imbalance: the smallest class decides
    imb = cfg(2, [95, 5], 3, 0.0095, 0.0095)
    assert T.near_threshold(imb) and T.optimal_q(imb)[1] == 0.0
    # L = 1: continuous transition, the message says so
    l1 = cfg(
        L=1, lam_H=0.95 * T.critical_lambda(2, 50, 1), lam_W=0.95 * T.critical_lambda(2, 50, 1)
    )
    assert T.near_threshold(l1) and "continuous" in T.threshold_message(l1)


def test_critical_scale_unequal_lambdas():
    config = cfg(2, [60, 20], 3, 2e-3, (1e-3, 4e-3, 3e-3))
    t = T.critical_scale(config)
    scaled = config.replace(
        lambda_H=config.lambda_H * t, lambda_W=tuple(v * t for v in config.lambda_Ws)
    )
    assert max(T.effective_c(scaled)) == pytest.approx(T.c_star(3), rel=1e-12)
    just_below = config.replace(
        lambda_H=config.lambda_H * t * 0.999,
        lambda_W=tuple(v * t * 0.999 for v in config.lambda_Ws),
    )
    assert all(q > 0 for q in T.optimal_q(just_below))
    just_above = config.replace(
        lambda_H=config.lambda_H * t * 1.001,
        lambda_W=tuple(v * t * 1.001 for v in config.lambda_Ws),
    )
    assert T.optimal_q(just_above)[1] == 0.0 and T.optimal_q(just_above)[0] > 0


# ---------------------------------------------------------------------- optimality labels, CE
def test_dnc_optimality_labels():
    assert T.dnc_optimality(cfg(K=2, L=4)) == T.OPTIMALITY_PROVEN == "proven (K=2)"
    assert T.dnc_optimality(cfg(K=2, n=[30, 10], L=4)) == T.OPTIMALITY_K2_IMBALANCED
    assert T.dnc_optimality(cfg(K=5, L=4, activation="linear")) == "global optimum (linear)"
    assert T.dnc_optimality(cfg(K=5, L=1)) == T.OPTIMALITY_LINEAR
    assert T.dnc_optimality(cfg(K=3, L=2)) == "unverified"
    assert T.dnc_optimality(cfg(K=3, L=3)).startswith("DNC family only")
    assert T.dnc_optimality(cfg(loss="ce")) == T.OPTIMALITY_NOT_APPLICABLE


def test_cross_entropy_returns_nan():
    config = cfg(loss="ce")
    assert math.isnan(T.optimal_loss(config))
    assert all(math.isnan(q) for q in T.optimal_q(config))
    opt = T.optimum(config)
    assert math.isnan(opt.loss) and not opt.attained and opt.zero_wins == (False, False)
    assert math.isnan(T.critical_scale(config))
    assert math.isnan(T.minority_collapse_threshold(config))
    assert not T.near_threshold(config) and T.threshold_message(config) is None
    assert T.effective_c(config) == T.effective_c(cfg())  # c only depends on lambdas and n_k


# ---------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("L", [0, -1, 2.0, True, "3", None])
def test_bad_depth(L):
    with pytest.raises(ValueError, match=r"L=.*int >= 1"):
        T.c_star(L)
    with pytest.raises(ValueError, match=r"L=.*int >= 1"):
        T.solve_q(0.1, L)
    with pytest.raises(ValueError, match=r"L=.*int >= 1"):
        T.phi(0.5, 0.1, L)


@pytest.mark.parametrize("c", [-0.1, math.nan, math.inf, "0.1", None, True])
def test_bad_c(c):
    with pytest.raises(ValueError, match=r"c=.*>= 0"):
        T.solve_q(c, 3)
    with pytest.raises(ValueError, match=r"c=.*>= 0"):
        T.phi(0.5, c, 3)


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan, "a", np.array([0.5, 1.5])])
def test_bad_q(q):
    with pytest.raises(ValueError, match=r"q=.*\[0, 1\]"):
        T.phi(q, 0.1, 3)


def test_bad_critical_lambda_and_margin():
    with pytest.raises(ValueError, match="num_classes"):
        T.critical_lambda(1, 50, 3)
    with pytest.raises(ValueError, match="samples_per_class"):
        T.critical_lambda(2, 0, 3)
    with pytest.raises(ValueError, match="depth"):
        T.critical_lambda(2, 50, 0)
    for margin in (0, -0.1, math.nan, "0.1"):
        with pytest.raises(ValueError, match="margin"):
            T.near_threshold(cfg(), margin=margin)


def test_the_closed_form_is_evaluated_once_per_config(monkeypatch):
    # theory once per config: optimum() is cached; optimal_loss / optimal_q / near_threshold
    # and the trainers read it
    from dnc_interactive.optim import BatchedTrainer
    from dnc_interactive.theory import closed_form
    from dnc_interactive.training import Trainer

    calls: list[DUFMConfig] = []
    solve = closed_form._closed_form

    def counting(config):
        calls.append(config)
        return solve(config)

    monkeypatch.setattr(closed_form, "_closed_form", counting)
    closed_form._optimum_cached.cache_clear()
    a = DUFMConfig(depth=3, width=6, samples_per_class=4, lambda_H=2e-3, dtype="float64")
    b = a.replace(lambda_W=3e-3)
    for _ in range(3):
        T.optimal_loss(a), T.optimal_q(a), T.near_threshold(a), T.optimum(a), T.layer_norms(a)
    assert calls == [a]
    Trainer(a, restarts=0).run(5)
    BatchedTrainer([a, a]).run(5)
    T.optimal_loss(b), T.threshold_message(b), T.optimal_q(b)
    assert calls == [a, b]
    assert T.optimum(a) is T.optimum(a)  # immutable, shared
    with pytest.raises(dataclasses.FrozenInstanceError):
        T.optimum(a).loss = 0.0  # type: ignore[misc]
    closed_form._optimum_cached.cache_clear()
