"""The update rules, written once: heavy-ball gradient descent and Adam on lists of tensors.

Both take floats or per-member (B, 1, 1) tensors for their rates, so the batched core
(:class:`~dnc_interactive.optim.BatchedTrainer`, B configurations stacked) and the
real-network optimiser (:mod:`dnc_interactive.realnets.train`, B = 1) call the same code. The
rules are those of ``torch.optim.SGD`` (no dampening, no Nesterov) and ``torch.optim.Adam``;
tests/test_optim.py checks them against torch's optimisers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

#: Adam's second-moment decay and epsilon (beta1 is the recipe's momentum).
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8

Scalar = float | Tensor


def heavy_ball_update(
    params: Sequence[Tensor],
    bufs: list[Tensor],
    grads: Sequence[Tensor],
    lr: Scalar,
    momentum: Scalar,
) -> None:
    """One heavy-ball step in place: b <- g + momentum * b, p <- p - lr * b.

    ``torch.optim.SGD``'s rule (no dampening, no Nesterov). ``lr`` and ``momentum`` are floats
    or per-member (B, 1, 1) tensors. ``grads`` are consumed: each new buffer is written into
    its gradient's memory and ``bufs[i]`` is replaced by it (no allocation per step).
    """
    if isinstance(lr, Tensor) or isinstance(momentum, Tensor):
        ref = params[0]
        mom = momentum if isinstance(momentum, Tensor) else torch.tensor(momentum).to(ref)
        rate = lr if isinstance(lr, Tensor) else torch.tensor(lr).to(ref)
        _heavy_ball(params, bufs, grads, -rate, mom)
        return
    grads = list(grads)
    torch._foreach_add_(grads, bufs, alpha=float(momentum))
    bufs[:] = grads
    torch._foreach_add_(list(params), grads, alpha=-float(lr))


def _heavy_ball(
    params: Sequence[Tensor],
    bufs: list[Tensor],
    grads: Sequence[Tensor],
    neg_lr: Tensor,
    momentum: Tensor,
) -> None:
    """:func:`heavy_ball_update` with tensor rates, ``-lr`` given (the core negates it once
    per chunk of steps, not once per step)."""
    for i, g in enumerate(grads):
        g.addcmul_(bufs[i], momentum)  # the new buffer g + mom * b, in g's fresh memory
        bufs[i] = g
        params[i].addcmul_(g, neg_lr)  # p <- p - lr * b


def adam_update(
    params: Sequence[Tensor],
    m: Sequence[Tensor],
    v: Sequence[Tensor],
    grads: Sequence[Tensor],
    lr: Scalar,
    beta1: Scalar,
    beta2: float,
    eps: float,
    t: int,
) -> None:
    """One Adam step in place (``torch.optim.Adam``'s rule, step count ``t`` >= 1).

    m <- beta1 m + (1 - beta1) g, v <- beta2 v + (1 - beta2) g^2,
    p <- p - lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps). ``lr`` and ``beta1`` are
    floats or per-member (B, 1, 1) tensors.
    """
    c2 = math.sqrt(1 - beta2**t)
    if isinstance(lr, Tensor) or isinstance(beta1, Tensor):
        b1 = beta1 if isinstance(beta1, Tensor) else torch.tensor(beta1).to(params[0])
        scale = -lr / (1 - b1.pow(t))
        for p, mi, vi, g in zip(params, m, v, grads, strict=True):
            mi.lerp_(g, 1 - b1)
            vi.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = vi.sqrt().div_(c2).add_(eps)
            p.addcmul_(mi / denom, scale)
        return
    m, v, grads = list(m), list(v), list(grads)
    lr, beta1 = float(lr), float(beta1)
    torch._foreach_lerp_(m, grads, 1 - beta1)
    torch._foreach_mul_(v, beta2)
    torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
    roots = list(torch._foreach_sqrt(v))
    torch._foreach_div_(roots, c2)
    torch._foreach_add_(roots, eps)
    torch._foreach_addcdiv_(list(params), m, roots, value=-lr / (1 - beta1**t))
