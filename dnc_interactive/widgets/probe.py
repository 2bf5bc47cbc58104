"""What the dashboard measures on the model itself, besides the trainer's history.

One :func:`measure` call reads the current model once (one forward pass, no gradients) and
returns a :class:`Probe`:

* the **structure** of the solution (theory §3.6, §5): the numerical rank of every layer's
  class means before (M̃_l) and after (M_l) the ReLU, their normalised singular values, and
  the label of :func:`dnc_interactive.lowrank.classify` ("DNC", "low-rank (rank r)",
  "trivial"), from which :func:`solution_type` makes the status line's *solution type*;
* the **feature clouds** of a few chosen layers (theory §3.2, §2.3): every tracked sample as a
  point of a fixed 2-D projection, with its class mean, drawn by
  :func:`~dnc_interactive.widgets.live_chart.cloud_spec`.

The projections (:class:`CloudProjector`) are chosen so that points *move* between two
updates instead of jumping:

* K = 2: the plane of the two class means — orthonormal axes e₁ ∝ μ₀ and e₂ ∝ the part of μ₁
  orthogonal to μ₀ (signs fixed by construction, no eigenvector sign flips). When the means do
  not span a plane (parallel or antipodal means, a vanished mean), e₂ is the leading
  within-class direction orthogonal to e₁, its sign aligned with the previous update's e₂.
  The theory's target (theory §2.3, §6): μ₀ at (b₀, 0), μ₁ at (0, b₁), orthogonal.
* K > 2: class-anchored ("star") coordinates, x ↦ Σ_k ⟨x, μ_k/‖μ_k‖⟩ v_k with v_k the K
  vertices of a regular polygon (class 0 on top, clockwise). The map is linear in x and is
  anchored to the class identities, so it has no rotation or sign ambiguity and changes only
  as fast as the class means do. At the DNC optimum the means are orthogonal with norms
  b_{l,k} (theory §2.3), so the class means sit on the polygon's vertices at radius b_{l,k}
  (the faint target) and each class's samples on its mean; a low-rank solution (theory §5)
  pulls the means off the vertices (their inner products are not 0).

The target is drawn where the theory fixes it (post-ReLU layers l ≥ 2, pre-ReLU layers
l ≥ 3); for H_1 only the norm is fixed (a circle; theory §2.3: the frame of H_1 and M̃_2 is
not unique) and for M̃_2 nothing is drawn. The number of points is capped (:data:`CLOUD_POINTS`
for all panels together, class means included) by tracking a fixed subset of samples (the
first ones of each class), the same subset at every update.

The low-rank reference of the loss chart (:func:`lowrank_reference`) is computed once per
config: the canonical SRG loss at once (closed form), the optimised symmetric SRG family
(:func:`dnc_interactive.lowrank.srg_optimize`, ~0.3-4 s) on a background thread, never on the
event loop and never per frame.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from dnc_interactive import lowrank, metrics, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import DUFM

#: Most points (samples and class means, all cloud panels together) one update draws.
CLOUD_POINTS = 400
#: Relative singular value below which a direction does not count for the rank (theory §3.6).
RANK_RTOL = metrics.RANK_RTOL
#: Floor of the singular-value panel's log scale.
SV_FLOOR = 1e-8
#: Whether :func:`lowrank_reference` optimises the symmetric SRG family in the background.
OPTIMISE_LOWRANK = True
#: Relative distance to the DNC loss within which a solution's loss counts as "at" it.
AT_LOSS = 1e-2
#: Points of the faint circles (a target norm without a fixed frame).
_CIRCLE = 48

F64 = torch.float64


# ---------------------------------------------------------------------- solution type
def solution_type(
    verdict: str, gap: float, nc1_max: float, *, zero: bool = False, tol: float = AT_LOSS
) -> str:
    """The solution type the status line shows (theory §5): ``"DNC"``, ``"low-rank (rank r)"``,
    ``"in between"`` or ``"zero"``.

    ``verdict`` is :func:`dnc_interactive.lowrank.classify`'s label, ``gap`` the relative gap
    (L − L_DNC)/L_DNC (NaN when L_DNC is unknown, e.g. CE), ``nc1_max`` the largest NC1 of the
    latest record and ``zero`` whether the run sits at the zero solution (theory §2.2).

    * "zero": the last layer's class means vanished (``verdict == "trivial"`` or ``zero``);
    * "DNC": every used layer has rank K and the loss is within ``tol`` of L_DNC;
    * "low-rank (rank r)": some used layer has rank r < K and the loss is at most
      L_DNC (1 + ``tol``) — a competitor at or below the DNC loss;
    * "in between": anything else (the run is still travelling: full rank far from L_DNC, or
      rank-deficient above it). Without L_DNC, NC1 < ``tol`` stands in for "arrived".
    """
    if zero or verdict == "trivial":
        return "zero"
    arrived = abs(gap) <= tol if math.isfinite(gap) else (math.isfinite(nc1_max) and nc1_max < tol)
    if verdict == "DNC":
        return "DNC" if arrived else "in between"
    if verdict.startswith("low-rank"):
        below = gap <= tol if math.isfinite(gap) else arrived
        return verdict if below else "in between"
    return "in between"


def rank_text(ranks_pre: tuple[int, ...], ranks_post: tuple[int, ...]) -> str:
    """'ranks M̃_l 10 6 6 6 · M_l 10 10 10 10' (layers l = 1..L; theory §3.6)."""
    pre = " ".join(str(r) for r in ranks_pre)
    post = " ".join(str(r) for r in ranks_post)
    return f"ranks M̃_l {pre} · M_l {post}"


# ---------------------------------------------------------------------- the probe
@dataclass(frozen=True)
class Probe:
    """One measurement of the model (see the module docstring).

    Attributes:
        step: the trainer's step when it was taken.
        verdict: :func:`dnc_interactive.lowrank.classify`'s label.
        ranks_pre, ranks_post: numerical ranks of M̃_l and M_l, l = 1..L.
        svals: rows ``{"l", "k", "i", "s"}`` (layer, "pre"/"post", index 1..K, σ_i/σ_1 floored
            at :data:`SV_FLOOR`) of the singular-value panel.
        clouds: rows ``{"p", "c", "x", "y", "m"}`` (panel, class, coordinates, 1 for a class
            mean) of the cloud panels; empty without a projector.
        top: σ_max of M_L (0 at the zero solution).
        panels: the projector's (layer, kind) panels the clouds are of.
    """

    step: int
    verdict: str
    ranks_pre: tuple[int, ...]
    ranks_post: tuple[int, ...]
    svals: list[dict[str, Any]]
    clouds: list[dict[str, Any]] = field(default_factory=list)
    top: float = math.nan
    panels: tuple[tuple[int, str], ...] = ()

    def datasets(self) -> dict[str, list[dict[str, Any]]]:
        """The named datasets of the cloud slot's spec."""
        return {"cloud": self.clouds, "svals": self.svals}


def _means(X: Tensor, A: Tensor) -> Tensor:
    return X.to(F64) @ A


class CloudProjector:
    """The fixed 2-D projections of the cloud panels of one run (see the module docstring).

    Args:
        config: the run's config (K, L and the theory's target norms).
        labels: the model's labels (N,).
        panels: (layer, kind) pairs, layer 1..L, kind "pre" or "post".
        points: cap on the points drawn (samples and means, every panel together).
    """

    def __init__(
        self,
        config: DUFMConfig,
        labels: Tensor,
        panels: list[tuple[int, str]],
        points: int = CLOUD_POINTS,
    ) -> None:
        K, L = config.K, config.L
        for layer, kind in panels:
            if not (1 <= layer <= L) or kind not in ("pre", "post"):
                raise ValueError(
                    f"panel=({layer!r}, {kind!r}) is not valid: expected a layer 1..{L} and"
                    " 'pre' or 'post'"
                )
        self.config = config
        self.panels = list(panels)
        self.K = K
        per_panel = max(K, points // max(len(panels), 1))
        per_class = max(1, (per_panel - K) // K)
        y = labels.cpu()
        chosen = [torch.nonzero(y == k).flatten()[:per_class] for k in range(K)]
        self.index = torch.cat(chosen)
        self.labels = y[self.index].tolist()
        self._e2: dict[int, Tensor] = {}
        angles = [2 * math.pi * k / K for k in range(K)]
        self.vertices = torch.tensor(
            [[math.sin(a) for a in angles], [math.cos(a) for a in angles]], dtype=F64
        )
        self.norms = self._target_norms()
        self.targets = [self._target(i) for i in range(len(self.panels))]
        self.domains: list[tuple[float, float, float, float]] | None = None
        radius = self._radius
        if all(r is not None for r in radius):
            self.domains = [self._domain(i, r or 1.0) for i, r in enumerate(radius)]

    @property
    def points(self) -> int:
        """The points one update draws: the tracked samples and the class means, per panel."""
        return (len(self.labels) + self.K) * len(self.panels)

    # -------------------------------------------------------------- theory's target
    def _target_norms(self) -> list[tuple[str, tuple[float, ...]] | None]:
        """Per panel: ("points", b_k) where theory fixes the frame, ("circle", a_k) for H_1,
        None where it fixes nothing (M̃_2, CE, an optimum that is not attained)."""
        cfg = self.config
        try:
            opt = theory.optimum(cfg)
            norms = theory.layer_norms(cfg) if cfg.loss == "mse" and opt.attained else None
        except Exception:  # no closed form for this config
            norms = None
        out: list[tuple[str, tuple[float, ...]] | None] = []
        for layer, kind in self.panels:
            if norms is None or (layer == 2 and kind == "pre"):
                out.append(None)
            elif layer == 1:
                out.append(("circle", tuple(norms[0])))
            else:
                out.append(("points", tuple(norms[layer - 1])))
        return out

    def _target(self, i: int) -> list[dict[str, Any]]:
        """The faint target rows of panel ``i`` ({"p", "c", "x", "y", "o", "g"}): class-mean
        targets (o = -1) and the polygon / circle lines (o >= 0, line group g)."""
        spec = self.norms[i]
        if spec is None:
            return []
        shape, b = spec
        rows: list[dict[str, Any]] = []
        if shape == "circle":
            for j, r in enumerate(sorted(set(b))):
                if r > 0:
                    for o in range(_CIRCLE + 1):
                        a = 2 * math.pi * o / _CIRCLE
                        rows.append(
                            {"p": i, "c": -1, "x": r * math.cos(a), "y": r * math.sin(a)}
                            | {"o": o, "g": j}
                        )
            return rows
        if self.K == 2:
            pts = [(b[0], 0.0), (0.0, b[1])]
            line = [(b[0], 0.0), (0.0, 0.0), (0.0, b[1])]
        else:
            v = self.vertices
            pts = [(b[k] * float(v[0, k]), b[k] * float(v[1, k])) for k in range(self.K)]
            line = [*pts, pts[0]]
        rows += [{"p": i, "c": k, "x": x, "y": y, "o": -1, "g": -1} for k, (x, y) in enumerate(pts)]
        rows += [{"p": i, "c": -1, "x": x, "y": y, "o": o, "g": 0} for o, (x, y) in enumerate(line)]
        return rows

    @property
    def _radius(self) -> list[float | None]:
        out: list[float | None] = []
        for spec in self.norms:
            r = max(spec[1]) if spec is not None and spec[1] else 0.0
            out.append(r if math.isfinite(r) and r > 0 else None)
        return out

    def _domain(self, i: int, r: float) -> tuple[float, float, float, float]:
        """(x0, x1, y0, y1) of panel ``i`` for a scale ``r`` (a target norm or the data's)."""
        R = 1.3 * r
        layer, kind = self.panels[i]
        if self.K == 2 and kind == "post" and layer > 1:  # after a ReLU: the first quadrant
            return (-0.3 * R, R, -0.3 * R, R)
        return (-R, R, -R, R)

    def target_rows(self) -> list[dict[str, Any]]:
        """Every panel's faint target rows (constant over the run)."""
        return [row for rows in self.targets for row in rows]

    # -------------------------------------------------------------- projection
    def _basis_2(self, i: int, X: Tensor, M: Tensor, y: Tensor) -> Tensor:
        """(2, d) rows e₁, e₂ of the K = 2 plane (module docstring)."""
        d = X.shape[0]
        n0 = torch.linalg.vector_norm(M[:, 0])
        n1 = torch.linalg.vector_norm(M[:, 1])
        big = float(max(n0, n1))
        if n0 > 0:
            e1 = M[:, 0] / n0
        elif n1 > 0:
            e1 = M[:, 1] / n1
        else:  # both means vanished: any fixed axis
            e1 = torch.zeros(d, dtype=F64)
            e1[0] = 1.0
        r = M[:, 1] - (M[:, 1] @ e1) * e1
        nr = torch.linalg.vector_norm(r)
        if nr > 1e-3 * max(big, 1e-300):
            e2 = r / nr
        else:  # no plane: the leading within-class direction orthogonal to e1
            R = X - M[:, y]
            R = R - e1[:, None] * (e1 @ R)[None, :]
            if float(torch.linalg.matrix_norm(R)) > 0:
                U, _, _ = torch.linalg.svd(R, full_matrices=False)
                e2 = U[:, 0]
            else:
                e2 = torch.zeros(d, dtype=F64)
            prev = self._e2.get(i)
            if prev is not None and prev.shape == e2.shape and float(prev @ e2) < 0:
                e2 = -e2
        self._e2[i] = e2
        return torch.stack([e1, e2])

    def project(self, i: int, X: Tensor, M: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(samples (2, m), means (2, K)) of panel ``i`` for the features ``X`` (d, N, float64)
        with class means ``M`` (d, K) and labels ``y``."""
        if self.K == 2:
            P = self._basis_2(i, X, M, y)
        else:
            norms = torch.linalg.vector_norm(M, dim=0)
            unit = torch.where(norms > 0, M / norms.clamp_min(1e-300), torch.zeros_like(M))
            P = self.vertices @ unit.T  # (2, d): linear, anchored to the classes
        return P @ X[:, self.index], P @ M

    def rows(self, features: list[Tensor], A: Tensor, y: Tensor) -> list[dict[str, Any]]:
        """The cloud rows of every panel; ``features[(layer, kind)]`` come from
        :meth:`measure`'s forward pass."""
        out: list[dict[str, Any]] = []
        extents: list[float] = []
        for i, X in enumerate(features):
            M = X @ A
            S, C = self.project(i, X, M, y)
            s = S.T.tolist()
            for (x, yy), c in zip(s, self.labels, strict=True):
                out.append({"p": i, "c": c, "x": x, "y": yy, "m": 0})
            for k, (x, yy) in enumerate(C.T.tolist()):
                out.append({"p": i, "c": k, "x": x, "y": yy, "m": 1})
            extents.append(float(torch.cat([S.abs().flatten(), C.abs().flatten()]).max()))
        if self.domains is None:  # no theory scale: fixed from the first update's data
            radius = self._radius
            self.domains = [
                self._domain(i, r if r is not None else max(extents[i], 1e-12))
                for i, r in enumerate(radius)
            ]
        return out


def measure(model: DUFM, projector: CloudProjector | None = None, step: int = 0) -> Probe:
    """Read ``model`` once: ranks, singular values and verdict of every layer's class means
    (theory §3.6, §5) and, with ``projector``, the cloud rows of its panels (theory §3.2)."""
    cfg = model.config
    K = cfg.K
    with torch.no_grad():
        f = model.forward()
        y = model.labels
        E = torch.nn.functional.one_hot(y, K).to(F64).T
        A = (E / E.sum(1, keepdim=True)).T  # (N, K): column k averages class k
        pre = [_means(X, A) for X in f.pre]
        post = [_means(X, A) for X in f.post]
        svals: list[dict[str, Any]] = []
        for kind, mats in (("pre", pre), ("post", post)):
            for layer, M in enumerate(mats, start=1):
                if kind == "pre" and layer == 1:
                    continue  # H̃_1 is H_1
                s = torch.linalg.svdvals(M)
                top = float(s[0]) if s.numel() else 0.0
                rel = (s / top).tolist() if top > 0 else [0.0] * s.numel()
                svals += [
                    {"l": layer, "k": kind, "i": i, "s": max(v, SV_FLOOR)}
                    for i, v in enumerate(rel, start=1)
                ]
        verdict = lowrank.classify(pre=pre, post=post)
        top = float(torch.linalg.svdvals(post[-1])[0])
        clouds: list[dict[str, Any]] = []
        if projector is not None:
            sets = {"pre": f.pre, "post": f.post}
            feats = [sets[kind][layer - 1].to(F64) for layer, kind in projector.panels]
            clouds = projector.rows(feats, A, y)
    return Probe(
        step=step,
        verdict=verdict.label,
        ranks_pre=verdict.ranks_pre,
        ranks_post=verdict.ranks_post,
        svals=svals,
        clouds=clouds,
        top=top,
        panels=tuple(projector.panels) if projector is not None else (),
    )


# ---------------------------------------------------------------------- low-rank reference
@dataclass(frozen=True)
class LowRankReference:
    """The best known low-rank loss of one config (theory §5), for the loss chart.

    Attributes:
        loss: the best loss found so far (canonical SRG, or the symmetric family once it is
            optimised and lower); NaN when no low-rank construction exists for the config.
        label: the rule's label ("SRG (r = 5)", ...).
        note: why there is no line, or what is still being computed ("" when final).
        final: whether the background optimisation is done (or not needed).
    """

    loss: float
    label: str
    note: str
    final: bool


_REFS: dict[DUFMConfig, LowRankReference] = {}
_REFS_LOCK = threading.Lock()
_RUNNING: set[DUFMConfig] = set()


def _key(config: DUFMConfig) -> DUFMConfig:
    return config.replace(seed=0, init_scale=0.1, device="cpu", dtype="float64")


def _optimise(key: DUFMConfig, canonical: LowRankReference) -> None:
    """On a background thread: the symmetric SRG family of ``key`` (theory §5)."""
    try:
        sym, _ = lowrank.srg_optimize(key)
        better = sym.loss < canonical.loss and sym.ratio < 1 - 1e-6
        ref = (
            LowRankReference(sym.loss, f"SRG family (r = {sym.r})", "", True)
            if better
            else LowRankReference(canonical.loss, canonical.label, "", True)
        )
    except Exception:  # a reference line never breaks the page
        ref = LowRankReference(canonical.loss, canonical.label, "", True)
    with _REFS_LOCK:
        _REFS[key] = ref
        _RUNNING.discard(key)


def lowrank_reference(config: DUFMConfig, *, background: bool | None = None) -> LowRankReference:
    """The best known low-rank loss of ``config`` (theory §5), computed once per config.

    Needs K > 2 with K = r(r−1)/2 (the SRG construction), ReLU, MSE, balanced classes, L ≥ 2,
    every λ > 0 and widths that hold the construction (d_l ≥ r, d_L ≥ K); otherwise the loss
    is NaN and ``note`` says why. The canonical SRG loss (closed form, :func:`lowrank.srg_loss`)
    is returned at once; with ``background`` (default :data:`OPTIMISE_LOWRANK`) the symmetric
    family (:func:`lowrank.srg_optimize`) is optimised on a daemon thread, and later calls
    return its loss when lower (``final`` True once it is done).
    """
    key = _key(config)
    with _REFS_LOCK:
        if key in _REFS:
            return _REFS[key]
    K = config.K
    r = lowrank.srg_r(K) if K > 2 else None
    if K <= 2:
        return LowRankReference(math.nan, "", "", True)
    if r is None:
        ref = LowRankReference(
            math.nan,
            "",
            f"no low-rank construction known for K = {K} (SRG: K = 3, 6, 10, 15)",
            True,
        )
    else:
        try:
            canon = lowrank.srg_loss(key, r)
        except ValueError as exc:
            reason = str(exc).split(":")[0]
            ref = LowRankReference(math.nan, "", f"no SRG reference ({reason})", True)
        else:
            widths = key.widths
            fits = all(w >= r for w in widths[:-1]) and widths[-1] >= K
            if not fits:
                ref = LowRankReference(
                    math.nan, "", f"no SRG reference: widths below r = {r} / K = {K}", True
                )
            else:
                ref = LowRankReference(canon.loss, f"SRG (r = {r})", "", False)
    if ref.final:
        with _REFS_LOCK:
            _REFS[key] = ref
        return ref
    run = OPTIMISE_LOWRANK if background is None else background
    if not run:
        ref = LowRankReference(ref.loss, ref.label, "", True)
        with _REFS_LOCK:
            _REFS[key] = ref
        return ref
    with _REFS_LOCK:
        if key not in _RUNNING:
            _RUNNING.add(key)
            threading.Thread(target=_optimise, args=(key, ref), daemon=True).start()
    return LowRankReference(ref.loss, ref.label, "optimising the SRG family…", False)


__all__ = [
    "CLOUD_POINTS",
    "CloudProjector",
    "LowRankReference",
    "Probe",
    "lowrank_reference",
    "measure",
    "rank_text",
    "solution_type",
]
