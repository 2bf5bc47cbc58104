"""The head of a network next to the DUFM optimum (theory §1.2, §2.2, §6).

The modules of the head are read as the DUFM's W_1..W_L and the input of the first one as
H1; :func:`_head_terms` measures the head loss ``fit + reg_H + sum reg_W`` from one pass and
builds the reference :class:`~dnc_interactive.config.DUFMConfig`; :class:`DUFMComparison`
sets it next to the closed-form optimum of :func:`dnc_interactive.theory.optimum` (L*, its
optimality and q_k).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from dnc_interactive import theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.monitor._inputs import F64
from dnc_interactive.monitor._lookup import _has_bias, _linear_weight
from dnc_interactive.monitor.hooks import _Pass, _run_pass


@dataclass(frozen=True)
class DUFMComparison:
    """A network's head next to the DUFM optimum (theory §1.2, §2.2, §6).

    Attributes:
        head: names of the head's modules W_1..W_L.
        num_classes, class_sizes: K and n_k of the data.
        widths: d_1..d_L, the head modules' input dimensions.
        lambda_H, lambda_Ws: the regularisation constants.
        head_loss: fit + reg_H + sum(reg_W), the DUFM objective at H1 = the head's input.
        fit: 1/(2N) ||Z - Y||_F^2 with Z the classifier's output and Y one-hot.
        reg_H: (lambda_H/2) ||H1||_F^2 (sum over all N samples).
        reg_W: (lambda_{W_l}/2) ||W_l||_F^2 per head module.
        relative_gap: (head_loss - L*) / L*.
        q: the measured q_k (mean of output k over class k).
        has_bias: some head module has a bias (the theorem's head has none: the comparison is
            then indicative only).
        config: the :class:`~dnc_interactive.config.DUFMConfig` of the reference DUFM.
        optimum: its closed-form :class:`~dnc_interactive.theory.Optimum`
            (:func:`theory.optimum`), which :attr:`optimal_loss`, :attr:`optimality` and
            :attr:`optimal_q` read.
    """

    head: tuple[str, ...]
    num_classes: int
    class_sizes: tuple[int, ...]
    widths: tuple[int, ...]
    lambda_H: float
    lambda_Ws: tuple[float, ...]
    head_loss: float
    fit: float
    reg_H: float
    reg_W: tuple[float, ...]
    relative_gap: float
    q: tuple[float, ...]
    has_bias: bool
    config: DUFMConfig = field(repr=False)
    optimum: theory.Optimum = field(repr=False)

    @property
    def optimal_loss(self) -> float:
        """L* of the DUFM with these K, n_k, L, widths and lambdas."""
        return self.optimum.loss

    @property
    def optimality(self) -> str:
        """How L* relates to the true optimum (:func:`theory.dnc_optimality`)."""
        return self.optimum.optimality

    @property
    def optimal_q(self) -> tuple[float, ...]:
        """The optimum's output scales q_k (class-k output mean q_k e_k)."""
        return self.optimum.q

    @property
    def depth(self) -> int:
        return len(self.head)

    @property
    def reg(self) -> float:
        return self.reg_H + sum(self.reg_W)

    def summary(self) -> dict[str, Any]:
        """The scalar numbers as a dict."""
        return {
            "head": ", ".join(self.head),
            "K": self.num_classes,
            "N": sum(self.class_sizes),
            "L": self.depth,
            "head_loss": self.head_loss,
            "optimal_loss": self.optimal_loss,
            "relative_gap": self.relative_gap,
            "fit": self.fit,
            "reg": self.reg,
            "optimality": self.optimality,
            "has_bias": self.has_bias,
        }


_HEAD_METRICS = ("loss", "fit", "reg", "reg_H", "optimal_loss", "relative_gap")


def _gap(loss: float, optimal: float) -> float:
    if not math.isfinite(optimal) or optimal <= 0:
        return math.nan
    return (loss - optimal) / optimal


def _resolve_head(
    found: list[tuple[str, nn.Module]] | None, classifier: str | None, clf_module: nn.Module | None
) -> list:
    """The head's (name, module) pairs, checked to be chained linear layers (default: the
    classifier alone)."""
    if found is None:
        if classifier is None:
            raise ValueError(
                "head: no classifier found (a linear layer with K outputs): pass head=[...]"
                " with the head's linear modules W_1..W_L"
            )
        found = [(classifier, cast(nn.Module, clf_module))]
    for i, (name, module) in enumerate(found):
        W = _linear_weight(module)
        if W is None:
            raise ValueError(f"head: {name!r} is not a linear layer (no 2-D weight)")
        # (the previous module passed the check above: its weight is a tensor)
        if i and W.shape[1] != cast(Tensor, _linear_weight(found[i - 1][1])).shape[0]:
            raise ValueError(
                f"head: {name!r} takes {W.shape[1]} inputs but {found[i - 1][0]!r} has"
                f" {cast(Tensor, _linear_weight(found[i - 1][1])).shape[0]} outputs"
            )
    return found


def _head_roles(roles: dict[str, set[str]], head: list[tuple[str, nn.Module]]) -> None:
    roles.setdefault(head[0][0], set()).add("h1")
    roles.setdefault(head[-1][0], set()).add("zout")


def _head_terms(
    p: _Pass,
    head: list[tuple[str, nn.Module]],
    K: int,
    lambda_H: float,
    lambda_Ws: tuple[float, ...],
) -> dict[str, Any]:
    """fit, reg_H, reg_W, q and the reference DUFM config from a pass with the head roles."""
    counts = cast(Tensor, p.counts)  # _run_pass raised if the pass saw no batch
    N = int(counts.sum())
    sizes = tuple(int(n) for n in counts.tolist())
    # the head's modules are linear (checked by _resolve_head): their weights are tensors
    widths = tuple(int(cast(Tensor, _linear_weight(m)).shape[1]) for _, m in head)
    reg_W = tuple(
        0.5 * lam * float(cast(Tensor, _linear_weight(m)).detach().to(F64).pow(2).sum())
        for lam, (_, m) in zip(lambda_Ws, head, strict=True)
    )
    config = DUFMConfig(
        num_classes=K,
        samples_per_class=sizes,
        depth=len(head),
        width=widths,
        lambda_H=lambda_H,
        lambda_W=lambda_Ws,
        dtype="float64",
    )
    fit = float(p.fit) / (2 * N)
    reg_H = 0.5 * lambda_H * float(p.h_sq)
    z = p.accs[("z", head[-1][0])].compute()["means"]
    return {
        "config": config,
        "sizes": sizes,
        "widths": widths,
        "fit": fit,
        "reg_H": reg_H,
        "reg_W": reg_W,
        "loss": fit + reg_H + sum(reg_W),
        "q": tuple(torch.diagonal(z).tolist()),
    }


def _compare(
    model: nn.Module,
    data: Iterable,
    K: int,
    spatial: str,
    max_dim: int,
    head_modules: list[tuple[str, nn.Module]],
    lam_H: float,
    lam_Ws: tuple[float, ...],
) -> DUFMComparison:
    """One pass with the head roles and the head's loss next to the DUFM optimum."""
    roles: dict[str, set[str]] = {}
    _head_roles(roles, head_modules)
    p = _run_pass(model, data, K, _Pass(roles, K, spatial, max_dim))
    terms = _head_terms(p, head_modules, K, lam_H, lam_Ws)
    config = terms["config"]
    optimum = theory.optimum(config)
    return DUFMComparison(
        head=tuple(n for n, _ in head_modules),
        num_classes=K,
        class_sizes=terms["sizes"],
        widths=terms["widths"],
        lambda_H=lam_H,
        lambda_Ws=lam_Ws,
        head_loss=terms["loss"],
        fit=terms["fit"],
        reg_H=terms["reg_H"],
        reg_W=terms["reg_W"],
        relative_gap=_gap(terms["loss"], optimum.loss),
        q=terms["q"],
        has_bias=any(_has_bias(m) for _, m in head_modules),
        config=config,
        optimum=optimum,
    )
