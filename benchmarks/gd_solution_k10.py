"""What gradient descent finds at K = 10, L = 4 (theory §5.7): ranks, Gram structure, balance.

Reads the seeds kept by ``benchmarks/gd_solution_k10_train.py`` (benchmarks/results/
gd_solution_k10_kept.pt: GD lr 0.5, then L-BFGS) and, for each, prints the loss against L_DNC
and the SRG constructions, the label of :func:`dnc_interactive.lowrank.classify`, the ranks of
M~_l / M_l, the largest NC1, the squared norms per block (balancedness) and the *support
structure* of the layer-2 features: the class subsets on which the active neurons of
M_2 = σ(W_1 M_1) are positive. For the best seed it prints the singular values, the Gram
matrices M_lᵀM_l with the classes reordered by that structure, the distinct Gram values per
class relation and the output class means; and writes benchmarks/results/gd_solution_k10.json
(the best seed's Gram matrices, ranks and losses; notebook 6 draws them) and
gd_solution_k10.log (this printout).

    python benchmarks/gd_solution_k10.py
"""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path

import torch

from dnc_interactive import lowrank, metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM

RESULTS = Path(__file__).parent / "results"
ACTIVE = 1e-2  # a neuron is active when its class-mean row has norm > ACTIVE * the largest
POSITIVE = 1e-3  # a class is in a neuron's support when its mean is > POSITIVE * the row max


def load(entry: dict) -> DUFM:
    cfg = DUFMConfig.from_dict(entry["config"])
    return DUFM(cfg).load_matrices(entry["H1"], entry["W"])


def means(model: DUFM) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    with torch.no_grad():
        f = model.forward()
    y, K = model.labels, model.config.K
    pre = [metrics.class_means(X, y, K) for X in f.pre]
    post = [metrics.class_means(X, y, K) for X in f.post]
    return pre, post, metrics.class_means(f.output, y, K)


def supports(M: torch.Tensor) -> dict[frozenset, float]:
    """Total norm of the active rows of M per support (the class subset where a row is > 0)."""
    norms = M.norm(dim=1)
    out: dict[frozenset, float] = {}
    for row, nrm in zip(M[norms > ACTIVE * norms.max()], norms[norms > ACTIVE * norms.max()]):
        key = frozenset(int(k) for k in torch.nonzero(row > POSITIVE * row.max()).flatten())
        out[key] = out.get(key, 0.0) + float(nrm)
    return out


def grid_structure(sup: dict[frozenset, float], K: int, major: float = 0.05) -> dict | None:
    """Read a rook's-graph structure off the layer-2 supports, or None.

    Hubs: classes in the supports of more than half of the (norm-weighted) active rows. The
    supports without the hubs that carry at least ``major`` of the total row norm are split
    into "groups" (the largest) and "pairs" (the smallest); a rook's graph K_a x K_b when the
    groups and the pairs each partition the other classes and every pair meets every group in
    exactly one class.
    """
    total = sum(sup.values())
    hubs = frozenset(k for k in range(K) if sum(w for s, w in sup.items() if k in s) > 0.5 * total)
    rest: dict[frozenset, float] = {}
    for s, w in sup.items():
        if s - hubs:
            rest[s - hubs] = rest.get(s - hubs, 0.0) + w
    rest = {s: w for s, w in rest.items() if w >= major * total}
    if not rest:
        return None
    big = max(len(s) for s in rest)
    small = min(len(s) for s in rest)
    groups = sorted((s for s in rest if len(s) == big), key=min)
    pairs = sorted((s for s in rest if len(s) == small), key=min)
    others = frozenset(range(K)) - hubs
    if (
        big == small
        or len(rest) != len(groups) + len(pairs)
        or sum(len(g) for g in groups) != len(others)
        or sum(len(p) for p in pairs) != len(others)
        or frozenset().union(*groups) != others
        or frozenset().union(*pairs) != others
        or any(len(g & p) != 1 for g in groups for p in pairs)
    ):
        return None
    order = [min(g & p) for g in groups for p in pairs] + sorted(hubs)
    return {
        "hubs": sorted(hubs),
        "groups": [sorted(g) for g in groups],
        "pairs": [sorted(p) for p in pairs],
        "order": order,
        "shape": f"K_{len(groups)} x K_{len(pairs)} rook's graph on {len(others)} classes"
        f" + {len(hubs)} hub classes",
    }


def relation_values(
    G: torch.Tensor, st: dict, names: list[int]
) -> dict[str, tuple[float, float, int]]:
    """(mean, spread, count) of the Gram entries per class relation of the grid structure
    (``st`` in G's indices; ``names`` the original class of each index)."""
    group_of = {k: i for i, g in enumerate(st["groups"]) for k in g}
    pair_of = {k: i for i, p in enumerate(st["pairs"]) for k in p}
    hubs = st["hubs"]
    vals: dict[str, list[float]] = {}
    K = G.shape[0]
    for i in range(K):
        for j in range(i, K):
            if i == j:
                rel = "diagonal (hub)" if i in hubs else "diagonal (grid)"
            elif i in hubs and j in hubs:
                rel = "hub-hub"
            elif i in hubs or j in hubs:
                rel = f"hub {names[i if i in hubs else j]} - grid"
            elif pair_of[i] == pair_of[j]:
                rel = "same pair"
            elif group_of[i] == group_of[j]:
                rel = "same group"
            else:
                rel = "neither"
            vals.setdefault(rel, []).append(float(G[i, j]))
    return {k: (sum(v) / len(v), max(v) - min(v), len(v)) for k, v in sorted(vals.items())}


def main() -> None:
    kept = torch.load(RESULTS / "gd_solution_k10_kept.pt")
    cfg = DUFMConfig.from_dict(kept[0]["config"])
    L_dnc = theory.optimal_loss(cfg)
    canon = lowrank.srg_loss(cfg)
    sym, sym_mats = lowrank.srg_optimize(cfg)
    log = io.StringIO()

    class Tee(io.TextIOBase):
        def write(self, s: str) -> int:
            sys.__stdout__.write(s)
            return log.write(s)

    with redirect_stdout(Tee()):
        print(f"K=10 n=5 L=4 d=30 lambda=0.004; L_DNC = {L_dnc:.8f}; SRG canonical"
              f" {canon.ratio:.6f}, SRG symmetric family {sym.ratio:.6f} x L_DNC")  # fmt: skip
        print(f"{len(kept)} seeds kept (lowest GD loss), after L-BFGS:")
        rows = []
        for e in sorted(kept, key=lambda e: e["loss"]):
            model = load(e)
            pre, post, Z = means(model)
            v = lowrank.classify(pre=pre, post=post)
            st = grid_structure(supports(post[1]), cfg.K)
            with torch.no_grad():
                f = model.forward()
                nc1 = max(metrics.nc1(X, model.labels) for X in (*f.pre, *f.post))
            norms = [float(model.H1.detach().pow(2).sum())] + [
                float(W.detach().pow(2).sum()) for W in model.W
            ]
            rows.append((e, st))
            print(f"  seed {e['seed']:>3}: {e['loss'] / L_dnc:.6f} x L_DNC, {v.label},"
                  f" ranks pre {v.ranks_pre} post {v.ranks_post}, NC1 max {nc1:.1e},"
                  f" ||.||^2 {' '.join(f'{x:.3f}' for x in norms)};"
                  f" {st['shape'] if st else 'no grid structure'}")  # fmt: skip
        best, st = rows[0]
        model = load(best)
        pre, post, Z = means(model)
        print(f"\nbest seed {best['seed']}: loss {best['loss']:.8f} = {best['loss'] / L_dnc:.6f}"
              f" x L_DNC ({best['loss'] / sym.loss:.6f} x the SRG symmetric family)")  # fmt: skip
        torch.set_printoptions(precision=4, linewidth=160, sci_mode=False)
        for l in range(cfg.L):
            print(f"  sigma(M~_{l + 1}) = {torch.linalg.svdvals(pre[l])}")
            print(f"  sigma(M_{l + 1})  = {torch.linalg.svdvals(post[l])}")
        out: dict = {
            "seed": best["seed"],
            "loss": best["loss"],
            "dnc_loss": L_dnc,
            "ratio": best["loss"] / L_dnc,
            "srg_canonical_ratio": canon.ratio,
            "srg_symmetric_ratio": sym.ratio,
            "ranks_pre": list(lowrank.classify(pre=pre, post=post).ranks_pre),
            "ranks_post": list(lowrank.classify(pre=pre, post=post).ranks_post),
            "structure": st,
            "gram_post": {},
            "srg_gram_post": {},
        }
        order = st["order"] if st else list(range(cfg.K))
        srg_model = DUFM(cfg).load_matrices(*sym_mats)
        _, srg_post, _ = means(srg_model)
        if st:
            print(f"  structure: {st['shape']}; groups {st['groups']}, pairs {st['pairs']},"
                  f" hubs {st['hubs']}; classes reordered as {order}")  # fmt: skip
        for l in range(cfg.L):
            G = (post[l].T @ post[l])[order][:, order]
            out["gram_post"][str(l + 1)] = G.tolist()
            Gs = srg_post[l].T @ srg_post[l]
            out["srg_gram_post"][str(l + 1)] = Gs.tolist()
            print(f"  M_{l + 1}^T M_{l + 1} (reordered):\n{G}")
            if st:
                ordered = {
                    "groups": [[order.index(k) for k in g] for g in st["groups"]],
                    "pairs": [[order.index(k) for k in p] for p in st["pairs"]],
                    "hubs": [order.index(k) for k in st["hubs"]],
                }
                for rel, (m, spread, n) in relation_values(G, ordered, order).items():
                    print(f"    {rel:<18s} {m:8.4f}  (spread {spread:.4f}, {n} entries)")
        print(f"  output class means Z (reordered):\n{Z[order][:, order]}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gd_solution_k10.json").write_text(json.dumps(out, indent=1) + "\n")
    (RESULTS / "gd_solution_k10.log").write_text(log.getvalue(), encoding="utf-8")


if __name__ == "__main__":
    main()
