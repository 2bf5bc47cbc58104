"""The claim registry of ``dnc-interactive verify`` (theory §5.6).

Each :class:`Claim` is one statement of a paper that this package can check by computation:
its stable ``name``, the paper (arXiv id), the figure, the setting, the ``threshold`` that
decides it, three sizes (``tiny`` for the tests, ``quick`` for 2 CPU cores in minutes,
``full`` for the paper's protocol as far as it is known) and a function that runs it.
:meth:`Claim.run` returns a :class:`Result`: the ``measured`` numbers, ``held``, a
``summary`` sentence with the numbers, the tidy DataFrame behind the chart and the altair
chart itself.

The thresholds are fixed by the papers' statements and by the package's own documented
targets (theory §2.2, §4, §5, §8); they are never tuned to make a claim pass. A claim whose
function raises is reported as not held, with the error in its summary.

Layering: this module imports only the standard library at import time (the command line
lists and checks claim names without importing torch, pandas or altair); each claim imports
what it needs when it runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dnc_interactive.verify.claims_base import SIZES, Claim, Outcome, Result
from dnc_interactive.verify.claims_ce import _CE_SETTING, _ce_linear, ce_dnc_loss
from dnc_interactive.verify.claims_dufm import _dufm_gd, _realnet
from dnc_interactive.verify.claims_followup import _fig2, _fig3_lambda, _fig3_srg, _fig3_width

__all__ = [
    "CLAIMS",
    "SIZES",
    "Claim",
    "Outcome",
    "Result",
    "ce_dnc_loss",
    "claim_names",
    "get_claims",
]

# ====================================================================== the registry
#: What the DUFM claim's sizes share (the quick size; the others override some).
_DUFM_SETTING: dict[str, Any] = {
    "samples_per_class": 50,
    "width": 64,
    "lam": 1e-3,
    "max_steps": 20_000,
    "gap_tol": 1e-4,
    "nc1_tol": 1e-3,
}
#: What the real-network claim's sizes share (the quick size; the others override some).
_REALNET_SETTING: dict[str, Any] = {
    "preset": "digits",
    "samples_per_class": None,
    "depth": None,
    "epochs": None,
    "recovery_steps": 1500,
    "free_steps": 1000,
    "network_gap_tol": 1e-2,
    "frozen_gap_tol": 2e-3,
    "nc1_tol": 1e-3,
}
_FU = "K = 10, n = 5, L = 4, d = 30, all lambda = 0.004, plain GD lr 0.5, float64"

CLAIMS: dict[str, Claim] = {
    c.name: c
    for c in (
        Claim(
            name="dufm_gd_reaches_dnc",
            paper="2305.13165",
            figure="GD on the DUFM vs the closed-form optimum (theory §4.1; figure number"
            " unverified)",
            setting="binary DUFM, K = 2, n = 50, d = 64, all lambda = 1e-3, float64, default"
            " robust recipe (theory §8), L = 1..5",
            threshold="every run: |L - L*| / L* < 1e-4 and NC1 < 1e-3 in every layer",
            quick={**_DUFM_SETTING, "depths": (1, 2, 3, 4, 5), "seeds": (0, 1), "tol": 1e-6},
            full={
                **_DUFM_SETTING,
                "depths": (1, 2, 3, 4, 5),
                "seeds": (0, 1, 2, 3, 4),
                "tol": 1e-7,
                "max_steps": 40_000,
            },
            tiny={
                **_DUFM_SETTING,
                "depths": (1, 2),
                "seeds": (0,),
                "samples_per_class": 10,
                "width": 16,
                "tol": 1e-6,
                "max_steps": 3000,
            },
            func=_dufm_gd,
            cost=1.0,
        ),
        Claim(
            name="realnet_features_at_dufm_optimum",
            paper="2305.13165",
            figure="real networks recover the unconstrained features (theory §4.2)",
            setting="scikit-learn digits 0 vs 1, MLP backbone, 4-layer DUFM head, lambda_H ="
            " lambda_W = 1e-3, full-batch Adam + cosine, the realnet 'digits' preset; then the"
            " recovery test (a fresh head trained on the frozen features)",
            threshold="|head loss - L*| / L* < 1e-2, |frozen-feature head loss - L*| / L* <"
            " 2e-3 and NC1 < 1e-3 (pre and post) in every head layer",
            quick={**_REALNET_SETTING, "seeds": (0,)},
            full={
                **_REALNET_SETTING,
                "seeds": (0, 1, 2),
                "recovery_steps": 3000,
                "free_steps": 2000,
            },
            tiny={
                **_REALNET_SETTING,
                "seeds": (0,),
                "samples_per_class": 30,
                "depth": 3,
                "epochs": 300,
                "recovery_steps": 500,
                "free_steps": 200,
            },
            func=_realnet,
            cost=1.0,
        ),
        Claim(
            name="follow_up_fig2_lowrank_beats_dnc",
            paper="2405.14468",
            figure="Fig. 2 (top)",
            setting=f"4-DUFM, {_FU}, 10 runs batched",
            threshold="mean final loss < L_DNC and more than half of the runs low-rank (rank of"
            " the class means M~_l, l >= 3, or M_l, l >= 2, below K)",
            quick={"runs": 10, "steps": 20_000, "polish": 0, "width": 30, "lam": 0.004, "lr": 0.5},
            full={"runs": 10, "steps": 20_000, "polish": 300, "width": 30, "lam": 0.004, "lr": 0.5},
            tiny={"runs": 2, "steps": 300, "polish": 0, "width": 30, "lam": 0.004, "lr": 0.5},
            func=_fig2,
            cost=4.0,
        ),
        Claim(
            name="follow_up_fig3_srg_below_dnc",
            paper="2405.14468",
            figure="Fig. 3 (left)",
            setting="K = C(r, 2) for r = 4, 5 (K = 6, 10; full: r = 4..8, K up to 28), L = 3, 4, 5,"
            " n = 5, all lambda ="
            " 0.004; the SRG construction of theory §5.2 (canonical closed form and optimised"
            " symmetric family, lowrank.py)",
            threshold="L_SRG / L_DNC < 1 at every (r, L) (the better of the two constructions)",
            quick={
                "rs": (4, 5),
                "depths": (3, 4, 5),
                "lam": 0.004,
                "samples_per_class": 5,
                "optimize": True,
            },
            full={
                "rs": (4, 5, 6, 7, 8),
                "depths": (3, 4, 5),
                "lam": 0.004,
                "samples_per_class": 5,
                "optimize": True,
            },
            tiny={
                "rs": (4, 5),
                "depths": (4,),
                "lam": 0.004,
                "samples_per_class": 5,
                "optimize": False,
            },
            func=_fig3_srg,
            cost=1.5,
        ),
        Claim(
            name="follow_up_fig3_rank_decreases_with_lambda",
            paper="2405.14468",
            figure="Fig. 3 (middle)",
            setting="4-DUFM, K = 10, n = 5, d = 30, plain GD lr 0.5, lambda = 2^-10 .. 2^-7"
            " (all blocks), seeds x lambdas in one batched sweep",
            threshold="mean solution rank at the largest lambda < at the smallest, and"
            " Spearman(lambda, rank) < 0 over the runs",
            quick={
                "lambdas": (2**-10, 2**-9, 2**-8, 2**-7),
                "seeds": 3,
                "steps": 20_000,
                "width": 30,
                "lr": 0.5,
            },
            full={
                "lambdas": (2**-11, 2**-10, 2**-9, 2**-8, 2**-7),
                "seeds": 5,
                "steps": 30_000,
                "width": 30,
                "lr": 0.5,
            },
            tiny={"lambdas": (2**-9, 2**-7), "seeds": 1, "steps": 200, "width": 12, "lr": 0.5},
            func=_fig3_lambda,
            cost=4.0,
        ),
        Claim(
            name="follow_up_fig3_dnc_probability_increases_with_width",
            paper="2405.14468",
            figure="Fig. 3 (right)",
            setting="4-DUFM, K = 10, n = 5, all lambda = 0.004, plain GD lr 0.5, widths x seeds"
            " in one batched sweep",
            threshold="P(DNC) at the largest width > at the smallest, and Spearman(width, DNC)"
            " > 0 over the runs",
            quick={"widths": (15, 30, 60), "seeds": 5, "steps": 20_000, "lam": 0.004, "lr": 0.5},
            full={
                "widths": (15, 30, 60, 120),
                "seeds": 10,
                "steps": 20_000,
                "lam": 0.004,
                "lr": 0.5,
            },
            tiny={"widths": (10, 14), "seeds": 1, "steps": 200, "lam": 0.004, "lr": 0.5},
            func=_fig3_width,
            cost=5.0,
        ),
        Claim(
            name="ce_linear_lowrank_beats_dnc",
            paper="2410.23169",
            figure="deep linear UFM theorem (DNC not optimal for K >= 4, L >= 3; theory §5.5)",
            setting="deep linear DUFM with cross-entropy, K = 10, n = 5, L = 3, d = 70, all"
            " lambda = 2^-10, plain GD lr 0.5 (their example experiment with one more layer)",
            threshold="mean final loss < L_DNC^CE (the best ETF solution, theory §5.6) and more"
            " than half of the runs below it with centred-logit rank < K - 1",
            quick={**_CE_SETTING, "seeds": 5, "steps": 5000},
            full={**_CE_SETTING, "seeds": 10, "steps": 20_000},
            tiny={**_CE_SETTING, "width": 20, "seeds": 2, "steps": 300},
            func=_ce_linear,
            cost=1.0,
        ),
    )
}


def claim_names() -> tuple[str, ...]:
    """The registered claim names, in report order."""
    return tuple(CLAIMS)


def get_claims(names: Sequence[str] | None = None) -> list[Claim]:
    """The claims named (all when None), in registry order; unknown names are a ValueError
    that lists the known ones."""
    if names is None:
        return list(CLAIMS.values())
    names = list(names)
    unknown = [n for n in names if n not in CLAIMS]
    if unknown:
        raise ValueError(
            f"claims={','.join(unknown)!r} is not valid: expected names among {', '.join(CLAIMS)}"
        )
    if not names:
        raise ValueError("claims='' is not valid: expected at least one claim name")
    return [CLAIMS[n] for n in CLAIMS if n in names]
