"""Measurement of a real-network experiment (theory §3): one streaming pass over the training
set in evaluation mode, per layer through
:class:`~dnc_interactive.metrics.CollapseAccumulator` (float64), with the loss terms summed
exactly; the backbone's features, the test accuracy, the inputs' own collapse metrics, and the
per-layer summary. The rows it produces are described in :mod:`.experiment`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from dnc_interactive import metrics
from dnc_interactive.realnets.backbones import DUFMHead
from dnc_interactive.realnets.config import RealNetConfig
from dnc_interactive.realnets.prepare import PreparedData
from dnc_interactive.realnets.train import backbone_reg

__all__ = ["Evaluation", "features", "input_metrics", "layer_summary", "measure", "test_accuracy"]


@dataclass(frozen=True)
class Evaluation:
    """One measurement pass over the training set (see :mod:`.experiment`)."""

    fit: float
    reg_H: float
    reg_W: tuple[float, ...]
    backbone_reg: float
    accuracy: float
    rows: list[tuple[int, str, str, float]]

    @property
    def reg(self) -> float:
        return self.reg_H + sum(self.reg_W)

    @property
    def loss(self) -> float:
        """The head loss (theory §1.2 objective at H1 = backbone features)."""
        return self.fit + self.reg


@torch.no_grad()
def measure(
    backbone: torch.nn.Module,
    head: DUFMHead,
    data: PreparedData,
    Y: Tensor,
    config: RealNetConfig,
) -> Evaluation:
    """One measurement pass of (backbone, head) over the training set ``data`` (one-hot
    targets ``Y``), in evaluation mode (the backbone's mode is restored afterwards). A
    non-finite loss gives an :class:`Evaluation` without metric rows (``rows == []``)."""
    cfg = config
    K, L = config.K, cfg.depth
    N = int(data.y.shape[0])
    was = backbone.training
    backbone.eval()
    f64 = torch.float64
    widths = (*cfg.head_widths, K)
    # one accumulator per distinct feature set: H1 (layer 1), pre/post of 2..L, output
    accs: dict[tuple[int, str], metrics.CollapseAccumulator] = {
        (1, "post"): metrics.CollapseAccumulator(K, widths[0])
    }
    for l in range(2, L + 1):
        accs[(l, "pre")] = metrics.CollapseAccumulator(K, widths[l - 1])
        accs[(l, "post")] = metrics.CollapseAccumulator(K, widths[l - 1])
    accs[(L + 1, "output")] = metrics.CollapseAccumulator(K, K)
    fit = 0.0
    h_sq = 0.0
    correct = 0
    last_post: list[Tensor] = []
    try:
        for i in range(0, N, cfg.eval_batch_size):
            x = data.x[i : i + cfg.eval_batch_size]
            y = data.y[i : i + cfg.eval_batch_size]
            pre, post, z = head.forward_all(backbone(x))
            z64 = z.to(f64)
            fit += float((z64 - Y[i : i + cfg.eval_batch_size].to(f64)).pow(2).sum())
            h_sq += float(post[0].to(f64).pow(2).sum())
            correct += int((z.argmax(1) == y).sum())
            accs[(1, "post")].update(post[0].T, y)
            for l in range(2, L + 1):
                accs[(l, "pre")].update(pre[l - 1].T, y)
                accs[(l, "post")].update(post[l - 1].T, y)
            accs[(L + 1, "output")].update(z.T, y)
            last_post.append(post[L - 1].to(f64))
    finally:
        backbone.train(was)
    reg_W = tuple(float(r) for r in head.reg_terms(cfg.lambda_Ws))
    common: dict[str, Any] = dict(
        fit=fit / (2 * N),
        reg_H=0.5 * cfg.lambda_H * h_sq,
        reg_W=reg_W,
        backbone_reg=float(backbone_reg(backbone, cfg.weight_decay)),
        accuracy=correct / N,
    )
    if not math.isfinite(fit + h_sq + sum(reg_W)):
        return Evaluation(**common, rows=[])  # diverged: no metrics of non-finite features
    stats = {key: acc.compute() for key, acc in accs.items()}
    stats[(1, "pre")] = stats[(1, "post")]
    rows: list[tuple[int, str, str, float]] = []
    weights = [W.detach().to(torch.float64).clone() for W in head.W]
    for l in range(1, L + 1):
        for kind in ("pre", "post"):
            s = stats[(l, kind)]
            rows += [(l, kind, m, float(s[m])) for m in metrics.FEATURE_METRICS]
        M = stats[(l, "post")]["means"]
        W = weights[l - 1].to(M.device)
        if l < L:
            nc3 = metrics.dnc3_subspace(W, M)
        else:
            nc3 = metrics.nc3_self_duality(W, M)
        rows.append((l, "weight", "nc3", nc3))
    H_L = torch.cat(last_post).T
    rows.append(
        (
            L + 1,
            "output",
            "nc4",
            metrics.nc4_ncc_mismatch(H_L, data.y, weights[-1].to(H_L.device), num_classes=K),
        )
    )
    q = torch.diagonal(stats[(L + 1, "output")]["means"]).tolist()
    rows += [(L + 1, "output", f"q_{k}", float(v)) for k, v in enumerate(q)]
    return Evaluation(**common, rows=rows)


@torch.no_grad()
def features(backbone: torch.nn.Module, x: Tensor, eval_batch_size: int) -> Tensor:
    """H1 = f_theta(x) as a (d_1, N) float64 tensor, in evaluation mode, in batches (the
    backbone's mode is restored afterwards)."""
    N = int(x.shape[0])
    was = backbone.training
    backbone.eval()
    try:
        parts = [
            backbone(x[i : i + eval_batch_size]).to(torch.float64)
            for i in range(0, N, eval_batch_size)
        ]
    finally:
        backbone.train(was)
    return torch.cat(parts).T.contiguous()


@torch.no_grad()
def test_accuracy(
    backbone: torch.nn.Module, head: DUFMHead, data: PreparedData, eval_batch_size: int
) -> float:
    """Accuracy on the test split of ``data`` (NaN when there is none); leaves the backbone in
    training mode."""
    x_test, y_test = data.x_test, data.y_test  # both None or both set
    if x_test is None or y_test is None:
        return math.nan
    backbone.eval()
    try:
        correct = 0
        bs = eval_batch_size
        for i in range(0, x_test.shape[0], bs):
            z = head(backbone(x_test[i : i + bs]))
            correct += int((z.argmax(1) == y_test[i : i + bs]).sum())
    finally:
        backbone.train()
    return correct / int(x_test.shape[0])


@torch.no_grad()
def input_metrics(data: PreparedData, K: int, eval_batch_size: int) -> dict[str, float]:
    """Collapse metrics of the raw (standardised, flattened) inputs of ``data``, streamed."""
    N = int(data.y.shape[0])
    X = data.x.reshape(N, -1)
    acc = metrics.CollapseAccumulator(K, int(X.shape[1]))
    bs = eval_batch_size
    for i in range(0, N, bs):
        acc.update(X[i : i + bs].T, data.y[i : i + bs])
    out = acc.compute()
    return {m: float(out[m]) for m in metrics.FEATURE_METRICS}


def layer_summary(
    ev: Evaluation, K: int, depth: int, nc1_tol: float = 1e-2
) -> list[dict[str, Any]]:
    """Per head layer l = 1..``depth``, the summary of one measurement ``ev`` (see
    :meth:`~dnc_interactive.realnets.experiment.RealNetExperiment.layer_summary`)."""
    table: dict[tuple[int, str], dict[str, float]] = {}
    for layer, kind, name, value in ev.rows:
        table.setdefault((layer, kind), {})[name] = value
    out = []
    for l in range(1, depth + 1):
        post, pre = table[(l, "post")], table[(l, "pre")]
        r_post, r_pre = int(post["rank"]), int(pre["rank"])
        need_post = K - 1 if l == 1 else K
        need_pre = K - 1 if l <= 2 else K
        nc1s = (post["nc1_trace"], pre["nc1_trace"])
        if any(math.isnan(v) for v in nc1s) or post["mean_norm"] == 0:
            solution = "zero"
        elif r_post < need_post or r_pre < need_pre:
            solution = f"lower rank ({r_pre if r_pre < need_pre else r_post})"
        else:
            solution = "DNC"
        out.append(
            {
                "layer": l,
                "nc1": post["nc1"],
                "nc1_trace": post["nc1_trace"],
                "nc2_orth": post["nc2_orth"],
                "nc2_etf": post["nc2_etf"],
                "nc3": table[(l, "weight")]["nc3"],
                "rank": r_post,
                "pre_nc1": pre["nc1"],
                "pre_rank": r_pre,
                "mean_norm": post["mean_norm"],
                "collapsed": bool(max(nc1s) < nc1_tol),
                "solution": solution,
            }
        )
    return out
