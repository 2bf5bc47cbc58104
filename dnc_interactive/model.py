"""The L-layer deep unconstrained features model, L-DUFM (theory §1.2).

Notation (one vocabulary across the package):

* ``H1`` in R^{d_1 x N}: the free ("unconstrained") features, columns class-ordered.
* ``W[l-1]`` = W_l in R^{d_{l+1} x d_l}, l = 1..L, with d_{L+1} = K; no biases.
* pre-activations H~_{l+1} = W_l H_l and post-activations H_{l+1} = sigma(H~_{l+1}) for
  l = 1..L-1 (sigma = ReLU, or the identity for the linear variant); there is no ReLU on H1,
  so H~_1 = H_1 = H1.
* output Z = W_L H_L in R^{K x N} and one-hot targets Y = [e_{y_1}, ..., e_{y_N}].

The objective (theory §1.2), with N = sum_k n_k::

    L(H1, W_1..W_L) = 1/(2N) ||Z - Y||_F^2                       (fit, loss="mse")
                    + sum_l (lambda_{W_l}/2) ||W_l||_F^2 + (lambda_H/2) ||H1||_F^2   (reg)

With ``loss="ce"`` the fit is the mean cross-entropy (1/N) sum_i CE(z_i, y_i) instead.

Besides the autograd path (``forward`` / ``loss``) the module offers the hand-written backward
pass of the same objective, once: :func:`batched_forward` / :func:`batched_gradients` for a
batch of B same-shape models (the trainers' path, :mod:`dnc_interactive.optim`) and
:func:`loss_and_grad`, its B = 1 case; the tests check it against autograd.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dnc_interactive.config import DUFMConfig
from dnc_interactive.schema import DTYPES as _DTYPE_NAMES

#: The torch dtype of every dtype name (:data:`dnc_interactive.schema.DTYPES`).
DTYPES: dict[str, torch.dtype] = {name: getattr(torch, name) for name in _DTYPE_NAMES}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype named ``name`` ("float32" or "float64", :data:`~.schema.DTYPES`)."""
    if name not in DTYPES:
        raise ValueError(f"dtype={name!r} is not valid: expected one of {_DTYPE_NAMES}")
    return DTYPES[name]


#: Initialisations of :class:`DUFM` (theory §8): "random" (the paper's kind: Gaussian H1, He
#: weights), "structured" (a weak class signal in H1, looks-linear hidden weights, W_L = 0) and
#: "small" (every matrix a tenth of "random", H1 as the config says: a start next to zero).
INITS = ("random", "structured", "small")

#: Signal-to-noise ratio of the class signal in a "structured" H1 (theory §8).
STRUCTURED_SNR = 3.0


@dataclass(frozen=True)
class Features:
    """All activations of one forward pass.

    ``pre[l-1]`` is H~_l and ``post[l-1]`` is H_l for l = 1..L (``pre[0] is post[0] is H1``);
    ``output`` is Z = W_L H_L.
    """

    pre: list[Tensor]
    post: list[Tensor]
    output: Tensor


@dataclass(frozen=True)
class LossTerms:
    """The objective split into its parts (scalar tensors)."""

    fit: Tensor
    reg_H: Tensor
    reg_W: list[Tensor]

    @property
    def reg(self) -> Tensor:
        return self.reg_H + sum(self.reg_W)

    @property
    def total(self) -> Tensor:
        return self.fit + self.reg


def _activation(name: str):
    return torch.relu if name == "relu" else (lambda x: x)


class DUFM(nn.Module):
    """The L-DUFM of theory §1.2 for one :class:`~dnc_interactive.config.DUFMConfig`.

    Initialisation (seeded by ``config.seed``), one of :data:`INITS`:

    * ``"random"`` (default): H1 ~ N(0, init_scale^2), hidden weights W_l ~ N(0, 2/d_l) (He),
      last layer W_L ~ N(0, 1/d_L).
    * ``"structured"`` (the robust recipe's fallback starts, theory §8): H1 = init_scale *
      (s mu_{y_i} + eps_i) / sqrt(1 + s^2) with s = :data:`STRUCTURED_SNR`, eps_i ~ N(0, I) and
      random class directions mu_k ~ N(0, I) centred over the classes (for K = 2, mu_2 = -mu_1):
      a weak class signal, as a backbone's features would carry; "looks-linear" hidden weights
      (Balduzzi et al. 2017: W = [[B, -B], [-B, B]] on paired units, so that at
      initialisation ReLU(u) - ReLU(-u) = u and the network is a deep linear one, with no
      dead class), with orthogonal blocks; and W_L = 0, so that W_L first fits the targets
      before any gradient reaches the lower layers.
    * ``"small"``: as "random" with every weight matrix scaled by 1/10 (H1 keeps init_scale):
      a start next to the trivial solution.
    """

    # buffers (registered in __init__); declared so type checkers see Tensors
    labels: Tensor
    Y: Tensor

    def __init__(self, config: DUFMConfig | None = None, init: str = "random") -> None:
        super().__init__()
        config = config or DUFMConfig()
        if init not in INITS:
            raise ValueError(f"init={init!r} is not valid: expected one of {INITS}")
        self.config = config
        self.init = init
        dtype = torch_dtype(config.dtype)
        device = torch.device(config.device)
        labels = torch.tensor(config.labels(), dtype=torch.long, device=device)
        H1, weights = initial_matrices(config, init)
        self.H1 = nn.Parameter(H1.to(device=device, dtype=dtype))
        self.W = nn.ParameterList([nn.Parameter(W.to(device=device, dtype=dtype)) for W in weights])
        self.register_buffer("labels", labels)
        self.register_buffer(
            "Y", torch.nn.functional.one_hot(labels, config.K).T.to(dtype).contiguous()
        )

    # ------------------------------------------------------------------ forward / loss
    @property
    def weights(self) -> list[Tensor]:
        """[W_1, ..., W_L] as a plain list."""
        return list(self.W)

    def forward(self) -> Features:
        """Every layer's pre- and post-activation features and the output Z."""
        act = _activation(self.config.activation)
        pre: list[Tensor] = [self.H1]
        post: list[Tensor] = [self.H1]
        H: Tensor = self.H1
        for W in list(self.W)[:-1]:
            P = W @ H
            H = act(P)
            pre.append(P)
            post.append(H)
        return Features(pre=pre, post=post, output=self.W[-1] @ H)

    def loss(self, features: Features | None = None) -> LossTerms:
        """Fit and regularization terms of theory §1.2 (autograd-friendly)."""
        cfg = self.config
        Z = (features or self.forward()).output
        if cfg.loss == "mse":
            fit = ((Z - self.Y) ** 2).sum() / (2 * cfg.N)
        else:
            fit = torch.nn.functional.cross_entropy(Z.T, self.labels)
        reg_H = 0.5 * cfg.lambda_H * (self.H1**2).sum()
        reg_W = [0.5 * lam * (W**2).sum() for lam, W in zip(cfg.lambda_Ws, self.W, strict=True)]
        return LossTerms(fit=fit, reg_H=reg_H, reg_W=reg_W)

    # ------------------------------------------------------------------ state
    @torch.no_grad()
    def load_matrices(self, H1: Tensor, weights: list[Tensor]) -> DUFM:
        """Overwrite H1 and W_1..W_L in place (shapes must match); returns ``self``."""
        if tuple(H1.shape) != tuple(self.H1.shape):
            raise ValueError(f"H1 has shape {tuple(H1.shape)}, expected {tuple(self.H1.shape)}")
        if len(weights) != len(self.W):
            raise ValueError(f"got {len(weights)} weight matrices, expected {len(self.W)}")
        self.H1.copy_(H1)
        for l, (W, new) in enumerate(zip(self.W, weights, strict=True), start=1):
            if tuple(new.shape) != tuple(W.shape):
                raise ValueError(f"W_{l} has shape {tuple(new.shape)}, expected {tuple(W.shape)}")
            W.copy_(new)
        return self

    def matrices(self) -> tuple[Tensor, list[Tensor]]:
        """Detached copies of (H1, [W_1..W_L])."""
        return self.H1.detach().clone(), [W.detach().clone() for W in self.W]


def initial_matrices(config: DUFMConfig, init: str = "random") -> tuple[Tensor, list[Tensor]]:
    """(H1, [W_1..W_L]) at initialisation, in float64 on the CPU (see :class:`DUFM`)."""
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    dims = (*config.widths, config.K)
    H1 = torch.randn(dims[0], config.N, generator=gen, dtype=torch.float64) * config.init_scale
    weights = []
    for l in range(config.L):
        d_in, d_out = dims[l], dims[l + 1]
        gain = 1.0 if l == config.L - 1 else 2.0
        weights.append(torch.randn(d_out, d_in, generator=gen, dtype=torch.float64))
        weights[-1] *= (gain / d_in) ** 0.5
    if init == "small":
        weights = [W / 10 for W in weights]
    elif init == "structured":
        H1 = _class_signal(config, dims[0], gen)
        weights = _looks_linear(dims, gen)
    return H1, weights


def _class_signal(config: DUFMConfig, d: int, gen: torch.Generator) -> Tensor:
    """init_scale (s mu_{y_i} + eps_i) / sqrt(1 + s^2), class directions centred (theory §8)."""
    K, s = config.K, STRUCTURED_SNR
    mu = torch.randn(d, K, generator=gen, dtype=torch.float64)
    mu = (mu - mu.mean(dim=1, keepdim=True)) * (K / (K - 1)) ** 0.5
    eps = torch.randn(d, config.N, generator=gen, dtype=torch.float64)
    labels = torch.tensor(config.labels(), dtype=torch.long)
    return config.init_scale * (s * mu[:, labels] + eps) / (1 + s**2) ** 0.5


def _orthogonal(rows: int, cols: int, gen: torch.Generator) -> Tensor:
    """A rows x cols matrix with orthonormal rows or columns (QR of a Gaussian matrix)."""
    n = max(rows, cols, 1)
    q, r = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(n))
    return q[:rows, :cols]


def _looks_linear(dims: tuple[int, ...], gen: torch.Generator) -> list[Tensor]:
    """Looks-linear weights (Balduzzi et al. 2017) for the widths ``dims``, W_L = 0.

    Unit j of the first half and unit m + j of the second (m = d // 2) are paired as (u, -u):
    W_1 = [A; -A] maps H1 to u = A H1 in the first half and -u in the second; a hidden
    W_l = [[B, -B], [-B, B]] maps (ReLU(u), ReLU(-u)) to (B u, -B u), so at initialisation
    the ReLU network computes the linear map B_{L-1} ... B_2 A. An odd leftover unit gets a
    small random row.
    """
    L = len(dims) - 1
    out: list[Tensor] = []
    for l in range(L):
        d_in, d_out = dims[l], dims[l + 1]
        W = torch.zeros(d_out, d_in, dtype=torch.float64)
        if l == L - 1:  # W_L = 0
            out.append(W)
            continue
        m_out = d_out // 2
        if l == 0:
            A = _orthogonal(m_out, d_in, gen)
            W[:m_out], W[m_out : 2 * m_out] = A, -A
        else:
            m_in = d_in // 2
            B = _orthogonal(m_out, m_in, gen)
            W[:m_out, :m_in], W[:m_out, m_in : 2 * m_in] = B, -B
            W[m_out : 2 * m_out, :m_in], W[m_out : 2 * m_out, m_in : 2 * m_in] = -B, B
        if d_out % 2:
            W[-1] = torch.randn(d_in, generator=gen, dtype=torch.float64) * 0.1 / d_in**0.5
        out.append(W)
    return out


def batched_forward(
    params: Sequence[Tensor], activation: str = "relu"
) -> tuple[list[Tensor], Tensor]:
    """The forward pass of a batch of B same-shape DUFMs.

    ``params`` is [H1, W_1..W_L], each stacked to (B, rows, cols). Returns the post-activations
    [H_1..H_L] and the output Z = W_L H_L, (B, K, N), of every member: one ``torch.bmm`` per
    layer (theory §1.2).
    """
    posts = [params[0]]
    X = params[0]
    relu = activation == "relu"
    for W in params[1:-1]:
        X = torch.bmm(W, X)
        if relu:
            X = X.relu_()  # equals P * (P > 0) up to the sign of zeros
        posts.append(X)
    return posts, torch.bmm(params[-1], X)


def batched_gradients(
    params: Sequence[Tensor],
    lambdas: Sequence[Tensor],
    Y: Tensor,
    posts: Sequence[Tensor],
    Z: Tensor,
    activation: str = "relu",
    loss: str = "mse",
    *,
    train_H1: bool = True,
) -> list[Tensor | None]:
    """The hand-written backward pass of the objective (theory §1.2) for a batch of B DUFMs.

    ``params`` = [H1, W_1..W_L] stacked to (B, rows, cols), ``lambdas`` = [lambda_H,
    lambda_{W_1}..] as (B, 1, 1) tensors, ``posts`` and ``Z`` from :func:`batched_forward`.
    Returns [dH1, dW_1..dW_L] (regularisers included), each a fresh tensor; dH1 is None when
    ``train_H1`` is False (H1 held fixed: the last transposed product is skipped). The MSE
    fit's dZ is (Z - Y) / N, the CE fit's (softmax(Z) - Y) / N; the ReLU backward ``G * (P > 0)``
    is aten's fused ``threshold_backward(G, H, 0)`` on the post-activation (H > 0 iff P > 0).
    """
    N = params[0].shape[-1]
    if loss == "mse":
        G = (Z - Y) / N
    else:
        G = (torch.softmax(Z, dim=1) - Y) / N
    L = len(params) - 1
    grads: list[Tensor | None] = [None] * (L + 1)
    relu = activation == "relu"
    for l in range(L, 0, -1):
        W = params[l]
        grads[l] = (W * lambdas[l]).baddbmm_(G, posts[l - 1].transpose(1, 2))
        if l == 1 and not train_H1:
            return grads
        G = torch.bmm(W.transpose(1, 2), G)
        if l > 1 and relu:
            G = torch.ops.aten.threshold_backward(G, posts[l - 1], 0)
    grads[0] = G.addcmul_(params[0], lambdas[0])  # G is a fresh tensor here
    return grads


def loss_and_grad(
    H1: Tensor,
    weights: list[Tensor],
    Y: Tensor,
    labels: Tensor,
    lambda_H: float,
    lambda_Ws: tuple[float, ...],
    activation: str = "relu",
    loss: str = "mse",
    compute_fit: bool = True,
) -> tuple[Tensor | None, Tensor, list[Tensor]]:
    """Fit term and the gradient of the full objective, by a hand-written backward pass.

    Returns ``(fit, dH1, [dW_1..dW_L])``; gradients include the regularization terms
    (lambda_H H1 and lambda_{W_l} W_l). Same objective as :meth:`DUFM.loss`; no autograd.
    With ``compute_fit=False`` the fit is not evaluated (``None``). The B = 1 case of
    :func:`batched_forward` / :func:`batched_gradients`, the backward pass the trainers use.
    """
    params = [H1.unsqueeze(0), *[W.unsqueeze(0) for W in weights]]
    lambdas = [
        torch.full((1, 1, 1), float(lam), dtype=H1.dtype, device=H1.device)
        for lam in (lambda_H, *lambda_Ws)
    ]
    Yb = Y.unsqueeze(0)
    posts, Z = batched_forward(params, activation)
    fit = None
    if compute_fit:
        N = H1.shape[1]
        if loss == "mse":
            fit = (Z - Yb).pow(2).sum() / (2 * N)
        else:
            fit = -(torch.log_softmax(Z, dim=1) * Yb).sum() / N
    grads = batched_gradients(params, lambdas, Yb, posts, Z, activation, loss)
    dH1 = grads[0]
    assert dH1 is not None
    return fit, dH1[0], [g[0] for g in grads[1:] if g is not None]
