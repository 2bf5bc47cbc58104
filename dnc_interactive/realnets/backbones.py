"""Backbones and the DUFM head of the real-network experiment (theory §1.2, §4.2).

A backbone maps an input batch (B, *input_shape) to features (B, d_1): these are the head's
H1, the "unconstrained features" of the DUFM, here produced by a network. Every backbone
ends with a linear layer (with bias, no ReLU), so H1 is real-valued as in theory §1.2.

* :class:`MLPBackbone`: flatten, ``depth`` hidden layers Linear + ReLU, then Linear to d_1.
* :class:`SmallCNN`: two conv blocks (3-wide kernels, ReLU, 2x max-pool), an adaptive average
  pool, then Linear to d_1. 1-D inputs (C, T) use ``Conv1d``, images (C, H, W) ``Conv2d``.
* :class:`ResNet20`: the CIFAR ResNet-20 of He et al. (2016), written here: a 3x3 conv with 16
  channels, three stages of three basic blocks (16, 32, 64 channels; the first block of
  stages 2 and 3 halves the resolution), batch normalisation, parameter-free "option A"
  shortcuts (subsampling + zero-padded channels), global average pooling to 64 features and
  the final Linear to d_1 (≈ 0.27 M parameters in all for d_1 = 64).

:class:`DUFMHead` is the L-layer bias-free ReLU MLP of theory §1.2 on top of H1:
H~_{l+1} = W_l H_l, H_{l+1} = ReLU(H~_{l+1}) for l < L, output Z = W_L H_L; initialised like
:class:`~dnc_interactive.model.DUFM` (hidden W_l ~ N(0, 2/d_l), last W_L ~ N(0, 1/d_L)).
Features are rows here (batch first); the metrics transpose them into columns.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: Backbone names accepted by :func:`build_backbone` (defined with the configuration).
from dnc_interactive.realnets.config import BACKBONES


class MLPBackbone(nn.Module):
    """Flatten, ``depth`` x (Linear + ReLU) of width ``hidden``, then Linear to ``out_dim``."""

    def __init__(
        self, input_shape: tuple[int, ...], out_dim: int, hidden: int = 128, depth: int = 2
    ):
        super().__init__()
        d_in = 1
        for s in input_shape:
            d_in *= int(s)
        layers: list[nn.Module] = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(d_in, hidden), nn.ReLU()]
            d_in = hidden
        layers.append(nn.Linear(d_in, out_dim))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Two conv blocks (channels ``hidden`` and ``2*hidden``), adaptive pool, Linear to d_1."""

    def __init__(self, input_shape: tuple[int, ...], out_dim: int, hidden: int = 16):
        super().__init__()
        if len(input_shape) not in (2, 3):
            raise ValueError(
                f"backbone='cnn' needs inputs of shape (C, T) or (C, H, W), got {input_shape}"
            )
        two_d = len(input_shape) == 3
        conv = nn.Conv2d if two_d else nn.Conv1d
        pool = nn.MaxPool2d if two_d else nn.MaxPool1d
        adaptive = nn.AdaptiveAvgPool2d((2, 2)) if two_d else nn.AdaptiveAvgPool1d(4)
        c = int(input_shape[0])
        self.features = nn.Sequential(
            conv(c, hidden, 3, padding=1),
            nn.ReLU(),
            pool(2),
            conv(hidden, 2 * hidden, 3, padding=1),
            nn.ReLU(),
            pool(2) if min(input_shape[1:]) >= 8 else nn.Identity(),
            adaptive,
            nn.Flatten(),
        )
        self.fc = nn.Linear(2 * hidden * 4, out_dim)
        self.out_dim = out_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


class _BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus an option-A shortcut, then ReLU (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.stride = stride
        self.pad = c_out - c_in

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride == 1 and self.pad == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """CIFAR ResNet-20 (3 stages x 3 basic blocks, 16/32/64 channels), then Linear to d_1."""

    def __init__(self, input_shape: tuple[int, ...], out_dim: int, blocks: int = 3):
        super().__init__()
        if len(input_shape) != 3:
            raise ValueError(
                f"backbone='resnet20' needs image inputs (C, H, W), got shape {input_shape}"
            )
        self.conv = nn.Conv2d(int(input_shape[0]), 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers = []
        c_in = 16
        for stage, c_out in enumerate((16, 32, 64)):
            for b in range(blocks):
                stride = 2 if stage > 0 and b == 0 else 1
                layers.append(_BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, out_dim)
        self.out_dim = out_dim
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.conv(x)))
        out = self.layers(out)
        out = out.mean(dim=(2, 3))
        return self.fc(out)


def build_backbone(
    name: str, input_shape: tuple[int, ...], out_dim: int, hidden: int = 128, depth: int = 2
) -> nn.Module:
    """A backbone by name (see :data:`BACKBONES`); ``hidden``/``depth`` size the MLP and CNN."""
    if name == "mlp":
        return MLPBackbone(input_shape, out_dim, hidden=hidden, depth=depth)
    if name == "cnn":
        return SmallCNN(input_shape, out_dim, hidden=hidden)
    if name == "resnet20":
        return ResNet20(input_shape, out_dim)
    raise ValueError(f"backbone={name!r} is not valid: expected one of {BACKBONES}")


class DUFMHead(nn.Module):
    """The L-layer bias-free ReLU MLP of theory §1.2 (weights W_1..W_L, widths d_1..d_L, K).

    Args:
        widths: (d_1, ..., d_L), d_1 = the backbone's output dimension.
        num_classes: K = d_{L+1}.
        generator: seeds the initialisation (hidden W_l ~ N(0, 2/d_l), W_L ~ N(0, 1/d_L)).
    """

    def __init__(
        self, widths: tuple[int, ...], num_classes: int, generator: torch.Generator | None = None
    ):
        super().__init__()
        dims = (*widths, num_classes)
        L = len(widths)
        weights = []
        for l in range(L):
            gain = 1.0 if l == L - 1 else 2.0
            W = torch.randn(dims[l + 1], dims[l], generator=generator, dtype=torch.float64)
            weights.append(nn.Parameter((W * (gain / dims[l]) ** 0.5).float()))
        self.W = nn.ParameterList(weights)

    @property
    def depth(self) -> int:
        return len(self.W)

    def forward_all(self, h1: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
        """(pre, post, Z) with rows as samples: pre[l-1] = H~_l^T, post[l-1] = H_l^T."""
        pre, post = [h1], [h1]
        h = h1
        for W in list(self.W)[:-1]:
            p = h @ W.T
            h = torch.relu(p)
            pre.append(p)
            post.append(h)
        return pre, post, h @ self.W[-1].T

    def forward(self, h1: Tensor) -> Tensor:
        return self.forward_all(h1)[2]

    def reg_terms(self, lambda_Ws: tuple[float, ...]) -> list[Tensor]:
        """(lambda_{W_l}/2) ||W_l||_F^2 for l = 1..L (theory §1.2)."""
        return [0.5 * lam * W.pow(2).sum() for lam, W in zip(lambda_Ws, self.W, strict=True)]


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "BACKBONES",
    "DUFMHead",
    "MLPBackbone",
    "ResNet20",
    "SmallCNN",
    "build_backbone",
    "count_parameters",
]
