"""Why a run is (or is not) at the theorem's optimum (theory §8).

:func:`diagnose` looks at a trained :class:`~dnc_interactive.model.DUFM`, its loss trajectory and
the closed form of theory §2.2 / §6, and returns one :class:`Diagnosis`: a stable ``code``, a
one-line ``message`` for a status line, the ``remedy`` and the facts behind it (``details``).

Codes, in the order they are tested:

* ``"diverged"``: the loss became NaN/inf (the trainer stopped itself).
* ``"at_optimum"``: the relative gap to L* is below ``tol`` (|gap| below round-off counts).
* ``"below_optimum"``: the loss is clearly *below* the DNC optimum; possible for K > 2 with
  ReLU, where low-rank solutions beat DNC (theory §5). Not a failure.
* ``"dead_class"``: in some layer l >= 2, every pre-activation of class k is <= 0, so class k's
  gradient through that layer is exactly zero and its output scale q_k is stuck at 0 while
  theory says q*_k > 0. An optimisation failure (often a too-large learning rate), not the
  theorem failing.
* ``"metastable"``: some class sits at a non-zero output scale although theory says q*_k = 0
  and c*_L < c_k < c_max (:func:`~dnc_interactive.theory.metastable_limit`): the non-zero
  local minimum that survives just past the threshold.
* ``"merged_classes"``: the output class means span fewer directions than the classes theory
  keeps alive (for K = 2: both classes get the same output, the rank-one saddle region whose
  loss is about (L* + 1/2)/2).
* ``"near_threshold"``: some c_k lies within :data:`~dnc_interactive.theory.THRESHOLD_BAND` of
  c*_L, where two minima genuinely compete and gradient descent may land in either.
* ``"converging"``: none of the above, and the excess loss (loss - L*) is still falling.
* ``"stalled"``: none of the above, and the loss has plateaued above L*.
* ``"no_target"``: no closed-form optimum to compare with (cross-entropy loss).

Layering: imports config, model and theory; knows nothing of training (the trainer passes the
loss trajectory in).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from dnc_interactive import theory
from dnc_interactive.model import DUFM

__all__ = [
    "CODES",
    "Diagnosis",
    "dead_classes",
    "diagnose",
    "excess_falling",
    "output_class_means",
]

CODES = (
    "diverged",
    "at_optimum",
    "below_optimum",
    "dead_class",
    "metastable",
    "merged_classes",
    "near_threshold",
    "converging",
    "stalled",
    "no_target",
)

#: Codes that mean "the run is where the theory says it should be" (or better).
HEALTHY = ("at_optimum", "below_optimum")


@dataclass(frozen=True)
class Diagnosis:
    """The state of one run: ``code`` (one of :data:`CODES`), ``message``, ``remedy``, details."""

    code: str
    message: str
    remedy: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True for ``at_optimum`` and ``below_optimum``."""
        return self.code in HEALTHY

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the CLI's ``diagnosis`` key)."""
        return {
            "code": self.code,
            "message": self.message,
            "remedy": self.remedy,
            "details": dict(self.details),
        }

    def line(self) -> str:
        """One line for a status bar: the message and, if any, the remedy."""
        return f"{self.message} {self.remedy}".strip()


@torch.no_grad()
def output_class_means(model: DUFM) -> torch.Tensor:
    """The K x K matrix of output class means, column k = mean of Z over class k (float64)."""
    Z = model.forward().output.double()
    labels = model.labels
    K = model.config.K
    cols = [Z[:, labels == k].mean(dim=1) for k in range(K)]
    return torch.stack(cols, dim=1)


@torch.no_grad()
def dead_classes(model: DUFM) -> list[tuple[int, int]]:
    """(class k, layer l) pairs where every pre-activation of class k in layer l is <= 0.

    Layers l = 2..L are the ReLU layers (pre-activations H~_l = W_{l-1} H_{l-1}); a class whose
    columns are all <= 0 there gets zero gradient through that layer. Empty for linear models.
    """
    if model.config.activation != "relu":
        return []
    f = model.forward()
    labels = model.labels
    out = []
    for l, P in enumerate(f.pre[1:], start=2):
        for k in range(model.config.K):
            cols = P[:, labels == k]
            if cols.numel() and bool((cols <= 0).all()):
                out.append((k, l))
    return out


def excess_falling(losses: Sequence[float], optimal: float, window: int, by: float = 0.01) -> bool:
    """True when loss - L* fell by more than the fraction ``by`` over the last ``window`` records.

    Also True while fewer than ``window + 1`` records exist (too early to tell).
    """
    if len(losses) <= window:
        return True
    old, new = losses[-window - 1] - optimal, losses[-1] - optimal
    if not (math.isfinite(old) and math.isfinite(new)) or old <= 0:
        return False
    return new < (1.0 - by) * old


def diagnose(
    model: DUFM,
    losses: Sequence[float],
    *,
    optimal_loss: float | None = None,
    diverged: bool = False,
    tol: float = 1e-4,
    window: int = 20,
) -> Diagnosis:
    """Diagnose a run from its model, its recorded losses and theory (see the module docstring).

    Args:
        model: the trained model (its current parameters are inspected).
        losses: the loss at each record, oldest first (the last one is the current loss).
        optimal_loss: L* (computed from ``model.config`` when None).
        diverged: the trainer stopped on a NaN/inf loss.
        tol: relative gap below which the run counts as at the optimum.
        window: number of records over which "still converging" is judged.
    """
    cfg = model.config
    if not (isinstance(tol, (int, float)) and math.isfinite(tol) and tol > 0):
        raise ValueError(f"tol={tol!r} is not valid: expected a finite float > 0")
    if not (isinstance(window, int) and window >= 1):
        raise ValueError(f"window={window!r} is not valid: expected an int >= 1")
    if diverged:
        return Diagnosis(
            "diverged",
            "Diverged: the loss became NaN/inf; the history up to the last good record is kept.",
            "Lower the learning rate and reset.",
        )
    optimal = theory.optimal_loss(cfg) if optimal_loss is None else optimal_loss
    loss = losses[-1] if len(losses) else math.nan
    if not math.isfinite(optimal):
        return Diagnosis("no_target", "No closed-form optimum for this loss (cross-entropy).")
    gap = (loss - optimal) / optimal if optimal > 0 else loss - optimal
    # round-off: float32 carries ~7 digits, so |gap| below ~1e-6 relative is at the optimum
    eps = 1e-6 if cfg.dtype == "float32" else 1e-12
    details: dict[str, Any] = {"relative_gap": gap, "optimal_loss": optimal, "loss": loss}
    if abs(gap) < max(tol, eps):
        return Diagnosis("at_optimum", f"At the optimum: gap {gap:+.1e} to L*.", details=details)
    if gap < 0:
        return Diagnosis(
            "below_optimum",
            f"Below the DNC optimum (gap {gap:+.2e}): a lower-rank solution beats DNC here"
            " (theory §5).",
            details=details,
        )
    q_star = theory.optimal_q(cfg)
    c = theory.effective_c(cfg)
    cs = theory.c_star(cfg.L)
    Q = output_class_means(model)
    q = [float(Q[k, k]) for k in range(cfg.K)]
    details.update(q=q, q_star=list(q_star), c_over_c_star=[ck / cs for ck in c])

    dead = [(k, l) for k, l in dead_classes(model) if q_star[k] > 0]
    if dead:
        k, l = dead[0]
        details["dead"] = dead
        others = sorted({j for j, _ in dead} - {k})
        also = f" (also class {', '.join(map(str, others))})" if others else ""
        return Diagnosis(
            "dead_class",
            f"Dead class: every pre-activation of class {k} in layer {l} is <= 0{also}, so its"
            f" gradient is zero and q_{k} = {q[k]:.3g} is stuck although theory says"
            f" q*_{k} = {q_star[k]:.3g} (an optimisation failure, not the theorem).",
            "Lower the learning rate, or try a new seed.",
            details,
        )
    limit = theory.metastable_limit(cfg.L)
    meta = [
        k
        for k in range(cfg.K)
        if q_star[k] == 0 and q[k] > 0.05 and cs < c[k] <= limit * cs * (1 + 1e-9)
    ]
    if meta:
        k = meta[0]
        return Diagnosis(
            "metastable",
            f"Metastable minimum: class {k} keeps q_{k} = {q[k]:.3g} although past the"
            f" threshold (c/c* = {c[k] / cs:.3g} < {limit:.3g}) the optimum is q*_{k} = 0.",
            "Try a new seed or a smaller initialisation, or move lambda further past the"
            " threshold.",
            details,
        )
    alive = [k for k in range(cfg.K) if q_star[k] > 0]
    if alive:
        sub = Q[:, alive]
        sv = torch.linalg.svdvals(sub)
        rank = int((sv > 0.05 * max(float(sv[0]), 1e-300)).sum()) if float(sv[0]) > 1e-8 else 0
        details["output_rank"] = rank
        if 0 < rank < len(alive):
            return Diagnosis(
                "merged_classes",
                f"Merged classes: the outputs of the {len(alive)} live classes span only"
                f" {rank} direction(s), so the classes are not told apart.",
                "Try a new seed, or a smaller learning rate with a larger H1 init.",
                details,
            )
    if theory.near_threshold(cfg):
        t = theory.critical_scale(cfg)
        return Diagnosis(
            "near_threshold",
            f"Near the threshold (c/c* = {max(c) / cs:.3g}): two minima compete and gradient"
            " descent may land in either.",
            f"Move lambda away from the threshold (x{t:.3g} is the exact critical value).",
            details,
        )
    if excess_falling(losses, optimal, window):
        return Diagnosis(
            "converging",
            f"Still converging: gap {gap:.2e} to L* and falling.",
            "Keep training.",
            details,
        )
    return Diagnosis(
        "stalled",
        f"Stalled: the loss plateaued {gap:.2e} above L*.",
        "Try a new seed, a lower learning rate, or a smaller lambda.",
        details,
    )
