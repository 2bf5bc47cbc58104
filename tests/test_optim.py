"""The batch-aware core: initialisations, member replacement, the stall test and the race."""

import math

import pytest
import torch

from dnc_interactive import theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.metrics import class_means
from dnc_interactive.model import DUFM, STRUCTURED_SNR, initial_matrices
from dnc_interactive.optim import BatchedTrainer, Race, relative_gap, stalled
from dnc_interactive.recipes import Recipe

F64 = dict(dtype="float64")


def test_random_init_is_the_documented_gaussian_and_he_draw():
    cfg = DUFMConfig(depth=3, width=(5, 7, 6), samples_per_class=4, seed=11, **F64)
    gen = torch.Generator().manual_seed(11)
    H1 = torch.randn(5, 8, generator=gen, dtype=torch.float64) * cfg.init_scale
    dims = (5, 7, 6, 2)
    Ws = [
        torch.randn(dims[l + 1], dims[l], generator=gen, dtype=torch.float64)
        * ((1.0 if l == 2 else 2.0) / dims[l]) ** 0.5
        for l in range(3)
    ]
    m = DUFM(cfg)
    assert torch.equal(m.H1.data, H1)
    for W, ref in zip(m.W, Ws):
        assert torch.equal(W.data, ref)


def test_small_init_is_a_tenth_of_the_random_weights():
    cfg = DUFMConfig(depth=3, width=8, samples_per_class=5, **F64)
    rand, small = DUFM(cfg), DUFM(cfg, init="small")
    assert torch.equal(rand.H1.data, small.H1.data)
    for a, b in zip(rand.W, small.W):
        assert torch.allclose(b.data * 10, a.data, rtol=0, atol=1e-15)


@pytest.mark.parametrize("width", [2, 7, 16])
def test_structured_init_looks_linear_with_every_class_alive(width):
    # theory §8: at initialisation ReLU(u) - ReLU(-u) = u in every hidden layer, so the ReLU
    # network computes the linear map B_{L-1} ... B_2 A of the paired units; W_L = 0.
    L = 5
    cfg = DUFMConfig(depth=L, width=width, samples_per_class=30, seed=3, **F64)
    m = DUFM(cfg, init="structured")
    f = m.forward()
    half = width // 2
    u = m.W[0].data[:half] @ m.H1.data  # the linear chain, computed independently
    for l in range(1, L):
        H = f.post[l]
        assert torch.allclose(H[:half] - H[half : 2 * half], u, atol=1e-12)
        if l < L - 1:
            u = m.W[l].data[:half, :half] @ u
        # no class is dead: each has a positive unit in every hidden layer
        for k in range(cfg.K):
            assert (H[:, m.labels == k] > 0).any()
    assert torch.count_nonzero(m.W[-1].data) == 0
    assert float(m.loss().fit.detach()) == pytest.approx(0.5)  # Z = 0: the fit of the zero solution


def test_structured_h1_carries_a_centred_class_signal():
    cfg = DUFMConfig(width=64, samples_per_class=200, seed=5, init_scale=0.5, **F64)
    H1, _ = initial_matrices(cfg, "structured")
    y = torch.tensor(cfg.labels())
    M = class_means(H1, y, 2)
    cos = float(torch.nn.functional.cosine_similarity(M[:, 0], M[:, 1], dim=0))
    assert cos < -0.95  # K = 2: mu_2 = -mu_1, up to the noise of 200 samples
    # per entry: variance init_scale^2 (the signal share s^2 / (1 + s^2) of it in the means)
    assert float(H1.var()) == pytest.approx(0.25, rel=0.05)
    share = float((M[:, y] ** 2).mean() / (H1**2).mean())
    assert share == pytest.approx(STRUCTURED_SNR**2 / (1 + STRUCTURED_SNR**2), abs=0.03)


def test_unknown_init_is_refused():
    with pytest.raises(ValueError, match="init='xavier' is not valid"):
        DUFM(DUFMConfig(), init="xavier")


def test_reset_member_equals_a_fresh_batch():
    cfg = DUFMConfig(depth=3, width=8, samples_per_class=6, **F64)
    other = cfg.replace(seed=9, lambda_H=2e-3)
    rec = Recipe(lr=0.3, momentum=0.5, restarts=0)
    bt = BatchedTrainer([cfg, cfg.replace(seed=1)], rec).run(40)
    bt.reset(1, other, rec, "structured")
    assert bt.status[1] == "running" and bt.lr[1] == 0.3
    fresh = BatchedTrainer([other], rec, inits="structured")
    for p, q in zip(bt.params, fresh.params):
        assert torch.equal(p[1], q[0])
    bt.run(60)
    fresh.run(60)
    for p, q in zip(bt.params, fresh.params):
        assert torch.allclose(p[1], q[0], rtol=0, atol=1e-12)
    assert bt.terms[1]["loss"] == pytest.approx(fresh.terms[0]["loss"], abs=1e-12)
    with pytest.raises(ValueError, match="shape"):
        bt.reset(0, cfg.replace(width=9), rec)


def test_stall_test_on_hand_made_losses():
    rec = Recipe(stall_steps=50, stall_gap=1e-3)
    L_star = 0.1
    flat = [0.2] * 10  # excess 0.1 for 90 steps: stalled
    assert stalled(flat, L_star, 90, rec, record_every=10)
    assert not stalled(flat, L_star, 40, rec, record_every=10)  # too early to tell
    falling = [L_star + 0.1 * 0.8**i for i in range(10)]  # excess -20 % per record
    assert not stalled(falling, L_star, 90, rec, record_every=10)
    near = [L_star * (1 + 5e-4)] * 10  # within stall_gap of L*: never stalled
    assert not stalled(near, L_star, 90, rec, record_every=10)
    assert relative_gap(0.11, 0.1) == pytest.approx(0.1)
    assert math.isnan(relative_gap(0.1, math.nan))


def test_race_replaces_a_stalled_member_and_leads_with_the_lowest_loss():
    # below the threshold the small start sits next to the zero solution (loss ~ 1/2 > L*):
    # it stalls and is replaced by the next structured start
    lam = 0.5 * theory.critical_lambda(2, 10, 3)
    cfg = DUFMConfig(depth=3, width=8, samples_per_class=10, lambda_H=lam, lambda_W=lam, **F64)
    rec = Recipe(restarts=3, race_size=1, stall_steps=100)
    race = Race(cfg, rec, record_every=10)
    assert race.member_start == [1]  # the small start
    race.step(200)
    assert race.member_start[0] >= 2  # replaced by a structured start
    race.step(800)
    b = race.leader()
    losses = [race.bt.terms[i]["loss"] for i in range(race.bt.B)]
    assert losses[b] == min(losses)
    assert relative_gap(losses[b], theory.optimal_loss(cfg)) < 1e-3
    with pytest.raises(ValueError, match="restarts=0"):
        Race(cfg, Recipe(restarts=0))


def test_momentum_restart_stops_the_oscillation_about_the_optimum():
    # heavy ball with momentum 0.99 overshoots L*: the gap falls, rises and falls again (the
    # live "collapsed" verdict would flip); with the adaptive restart it no longer rises by
    # more than a sliver once it is small
    cfg = DUFMConfig(**F64)

    def gaps(restart):
        bt = BatchedTrainer([cfg], Recipe(restarts=0, momentum_restart=restart))
        out = []
        for _ in range(30):
            bt.run(50)
            out.append(bt.terms[0]["relative_gap"])
        return out

    def worst_rise(g):
        return max(b / a for a, b in zip(g, g[1:]) if a < 1e-2)

    assert worst_rise(gaps(False)) > 5  # 4e-4 -> 1.2e-2 and so on
    assert worst_rise(gaps(True)) < 2


# ---------------------------------------------------------------------------- update rules
def _tensors(seed, shapes=((2, 3, 4), (2, 4, 1))):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen, dtype=torch.float64) for s in shapes]


@pytest.mark.parametrize("per_member", [False, True])
def test_heavy_ball_update_is_torch_sgd(per_member):
    from dnc_interactive.optim import heavy_ball_update

    params = _tensors(0)
    ref = [p.clone().requires_grad_() for p in params]
    opt = torch.optim.SGD(ref, lr=0.1, momentum=0.9)
    bufs = [torch.zeros_like(p) for p in params]
    lr = torch.full((2, 1, 1), 0.1, dtype=torch.float64) if per_member else 0.1
    mom = torch.full((2, 1, 1), 0.9, dtype=torch.float64) if per_member else 0.9
    for step in range(4):
        grads = _tensors(10 + step)
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        opt.step()
        heavy_ball_update(params, bufs, grads, lr, mom)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q.detach(), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("per_member", [False, True])
def test_adam_update_is_torch_adam(per_member):
    from dnc_interactive.optim import adam_update

    params = _tensors(1)
    ref = [p.clone().requires_grad_() for p in params]
    opt = torch.optim.Adam(ref, lr=0.05, betas=(0.8, 0.99), eps=1e-8)
    m = [torch.zeros_like(p) for p in params]
    v = [torch.zeros_like(p) for p in params]
    lr = torch.full((2, 1, 1), 0.05, dtype=torch.float64) if per_member else 0.05
    b1 = torch.full((2, 1, 1), 0.8, dtype=torch.float64) if per_member else 0.8
    for step in range(1, 5):
        grads = _tensors(20 + step)
        for p, g in zip(ref, grads):
            p.grad = g.clone()
        opt.step()
        adam_update(params, m, v, grads, lr, b1, 0.99, 1e-8, step)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q.detach(), rtol=1e-12, atol=1e-14)


def test_per_member_rates_are_per_member():
    from dnc_interactive.optim import heavy_ball_update

    params = [torch.zeros(2, 1, 1, dtype=torch.float64)]
    bufs = [torch.zeros_like(params[0])]
    lr = torch.tensor([0.1, 1.0], dtype=torch.float64).view(2, 1, 1)
    heavy_ball_update(params, bufs, [torch.ones(2, 1, 1, dtype=torch.float64)], lr, 0.0)
    assert params[0].view(-1).tolist() == [-0.1, -1.0]


# ---------------------------------------------------------------------------- frozen H1
@pytest.mark.parametrize("optimizer", ["gd", "adam"])
def test_frozen_H1_gets_no_update_and_no_state_but_keeps_its_regulariser(optimizer):
    cfg = DUFMConfig(depth=3, width=6, samples_per_class=4, lambda_H=0.05, **F64)
    rec = Recipe(optimizer=optimizer, lr=0.1, restarts=0)
    bt = BatchedTrainer([cfg, cfg.replace(seed=1)], rec, train_H1=False)
    H1 = bt.params[0].clone()
    Ws = [p.clone() for p in bt.params[1:]]
    assert len(bt._buf) == cfg.L and all(b.shape == W.shape for b, W in zip(bt._buf, Ws))
    bt.run(30)
    assert torch.equal(bt.params[0], H1)
    assert all(not torch.equal(p, W) for p, W in zip(bt.params[1:], Ws))
    reg_H = 0.5 * 0.05 * H1.pow(2).sum(dim=(1, 2))
    assert torch.allclose(bt.loss_terms()[2], reg_H)
    assert bt.terms[0]["reg_H"] == pytest.approx(float(reg_H[0]))
    # the gradients of the W's are those of the full model's
    free = BatchedTrainer([cfg], rec)
    frozen = BatchedTrainer([cfg], rec, train_H1=False)
    g_free, g_frozen = free._gradients(), frozen._gradients()
    assert g_frozen[0] is None
    for a, b in zip(g_free[1:], g_frozen[1:]):
        assert torch.equal(a, b)


def test_race_and_stalled_are_still_importable_from_optim():
    from dnc_interactive import optim, race

    assert optim.Race is race.Race and optim.stalled is race.stalled
    with pytest.raises(AttributeError):
        optim.nope  # noqa: B018
