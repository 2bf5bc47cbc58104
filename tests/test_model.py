"""DUFM: shapes, theory §1.2 loss normalisation, hand-written backward vs autograd."""

import pytest
import torch

from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM, batched_forward, batched_gradients, loss_and_grad


def test_shapes_and_class_ordered_targets():
    cfg = DUFMConfig(num_classes=3, samples_per_class=[2, 3, 1], depth=3, width=[5, 6, 7])
    m = DUFM(cfg)
    assert m.H1.shape == (5, 6)
    assert [tuple(W.shape) for W in m.W] == [(6, 5), (7, 6), (3, 7)]
    assert m.labels.tolist() == [0, 0, 1, 1, 1, 2]
    assert torch.equal(m.Y.argmax(0), m.labels) and m.Y.sum().item() == 6
    f = m()
    assert len(f.pre) == len(f.post) == 3 and f.output.shape == (3, 6)
    assert f.pre[0] is m.H1 and f.post[0] is m.H1  # no ReLU on H1
    assert torch.equal(f.post[1], torch.relu(f.pre[1]))
    assert torch.equal(f.pre[2], m.W[1] @ f.post[1])


def test_relu_only_between_layers_and_linear_variant():
    cfg = DUFMConfig(depth=2, width=4, samples_per_class=3, dtype="float64", init_scale=1.0)
    lin = DUFM(cfg.replace(activation="linear"))
    f = lin()
    assert torch.allclose(f.output, lin.W[1] @ lin.W[0] @ lin.H1)
    relu = DUFM(cfg)
    assert torch.allclose(relu().output, relu.W[1] @ torch.relu(relu.W[0] @ relu.H1))


def test_loss_normalisation_hand_worked():
    # Zero weights: Z = 0, fit = ||Y||^2 / (2N) = N / (2N) = 1/2 (theory §1.2, trivial solution).
    cfg = DUFMConfig(
        depth=2,
        width=3,
        samples_per_class=[2, 1],
        dtype="float64",
        lambda_H=0.5,
        lambda_W=[0.25, 2.0],
    )
    m = DUFM(cfg)
    H1 = torch.ones(3, 3, dtype=torch.float64)
    m.load_matrices(
        H1, [torch.zeros(3, 3, dtype=torch.float64), torch.full((2, 3), 2.0, dtype=torch.float64)]
    )
    t = m.loss()
    assert t.fit.item() == pytest.approx(0.5)
    assert t.reg_H.item() == pytest.approx(0.5 / 2 * 9)
    assert [r.item() for r in t.reg_W] == pytest.approx([0.0, 2.0 / 2 * 6 * 4])
    assert t.total.item() == pytest.approx(0.5 + 2.25 + 24.0)


def test_fit_on_exact_targets_is_zero():
    cfg = DUFMConfig(depth=1, width=2, samples_per_class=2, dtype="float64", activation="linear")
    m = DUFM(cfg)
    m.load_matrices(m.Y.clone(), [torch.eye(2, dtype=torch.float64)])
    assert m.loss().fit.item() == 0.0


@pytest.mark.parametrize("loss", ["mse", "ce"])
@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_hand_written_backward_matches_autograd(loss, activation):
    cfg = DUFMConfig(
        depth=3,
        dtype="float64",
        loss=loss,
        activation=activation,
        lambda_W=(1e-3, 2e-3, 3e-3),
        lambda_H=5e-3,
        samples_per_class=(5, 7),
        width=(8, 9, 10),
        init_scale=1.0,
        seed=3,
    )
    m = DUFM(cfg)
    terms = m.loss()
    terms.total.backward()
    fit, dH, dW = loss_and_grad(
        m.H1.detach(),
        [W.detach() for W in m.W],
        m.Y,
        m.labels,
        cfg.lambda_H,
        cfg.lambda_Ws,
        activation,
        loss,
    )
    assert fit.item() == pytest.approx(terms.fit.item(), rel=1e-14)
    assert torch.allclose(dH, m.H1.grad, atol=1e-14, rtol=1e-12)
    for a, W in zip(dW, m.W):
        assert torch.allclose(a, W.grad, atol=1e-14, rtol=1e-12)
    # the batched backward pass (the trainers'): member b of a batch is loss_and_grad of b
    other = DUFM(cfg.replace(seed=4))
    params = [torch.stack([other.H1.detach(), m.H1.detach()])]
    params += [torch.stack([a.detach(), b.detach()]) for a, b in zip(other.W, m.W)]
    lams = [torch.full((2, 1, 1), lam, dtype=torch.float64) for lam in (5e-3, 1e-3, 2e-3, 3e-3)]
    posts, Z = batched_forward(params, activation)
    grads = batched_gradients(params, lams, m.Y, posts, Z, activation, loss)
    assert torch.allclose(grads[0][1], dH, atol=1e-15, rtol=1e-13)
    for g, a in zip(grads[1:], dW):
        assert torch.allclose(g[1], a, atol=1e-15, rtol=1e-13)
    frozen = batched_gradients(params, lams, m.Y, posts, Z, activation, loss, train_H1=False)
    assert frozen[0] is None and all(torch.equal(a, b) for a, b in zip(frozen[1:], grads[1:]))


def test_same_seed_same_init_other_seed_differs():
    a, b, c = DUFM(DUFMConfig(seed=1)), DUFM(DUFMConfig(seed=1)), DUFM(DUFMConfig(seed=2))
    assert torch.equal(a.H1, b.H1) and all(torch.equal(x, y) for x, y in zip(a.W, b.W))
    assert not torch.equal(a.H1, c.H1)


def test_init_scales():
    m = DUFM(DUFMConfig(width=256, samples_per_class=500, init_scale=0.3, dtype="float64"))
    assert m.H1.std().item() == pytest.approx(0.3, rel=0.02)
    assert m.W[0].var().item() == pytest.approx(2 / 256, rel=0.05)
    assert m.W[-1].var().item() == pytest.approx(1 / 256, rel=0.1)


def test_load_matrices_checks_shapes():
    m = DUFM(DUFMConfig(depth=2, width=4, samples_per_class=2))
    with pytest.raises(ValueError, match="H1 has shape"):
        m.load_matrices(torch.zeros(3, 4), [W.detach() for W in m.W])
    with pytest.raises(ValueError, match="W_2 has shape"):
        m.load_matrices(m.H1.detach(), [m.W[0].detach(), torch.zeros(3, 3)])
    with pytest.raises(ValueError, match="expected 2"):
        m.load_matrices(m.H1.detach(), [m.W[0].detach()])


def test_dtype_is_respected():
    assert DUFM(DUFMConfig(dtype="float64")).H1.dtype == torch.float64
    assert DUFM(DUFMConfig()).W[0].dtype == torch.float32
