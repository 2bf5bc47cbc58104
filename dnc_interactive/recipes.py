"""Training recipes: the optimiser settings and the multi-start schedule (theory §8).

A :class:`Recipe` says how gradient descent is run on the paper's objective (theory §1.2): the
update rule, learning rate, momentum and its boost, the divergence guard, and the fallback
starts tried when the first start stalls. A :class:`Start` is one initialisation (its kind,
:data:`~dnc_interactive.model.INITS`, H1 scale and seed offset) with its optimiser schedule.

The default recipe, "robust" (theory §8):

1. the *fast start*: the config's own random initialisation (Gaussian H1 with std
   ``init_scale``, He weights), learning rate 1.0, heavy-ball momentum 0.8 raised to 0.99 once
   the relative gap to L* is below 0.1. It collapses the default preset in a few hundred steps.
2. if it *stalls* (the excess loss over L* falls by less than 10 % over ``stall_steps`` steps
   while the gap is above ``stall_gap``), a *race* of fallback starts trained side by side in
   one batch (``race_size`` at a time, ``restarts`` in all, a stalled member replaced by the
   next start): a *small start* (every matrix near zero, for the trivial optimum above the
   threshold, where larger starts can stop in a metastable non-zero minimum) and *structured
   starts* (a weak class signal in H1, looks-linear hidden weights, W_L = 0; momentum 0.9
   raised to 0.99 near L*; four schedules of H1 scale and learning rate in turn) from
   successive seeds.
3. the lowest-loss state over all starts is kept.

``Recipe.named("fast")`` is the first start alone; ``Recipe.named("paper")`` is the paper's
plain gradient descent (momentum 0, constant learning rate 0.1, no restarts).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

from dnc_interactive import schema as _schema
from dnc_interactive.config import DUFMConfig
from dnc_interactive.model import INITS
from dnc_interactive.validation import (
    LEARNING_RATE,
    MOMENTUM,
    Bool,
    Int,
    OneOf,
    Real,
    check_fields,
)

#: The optimisers of a recipe, one spelling each (:data:`dnc_interactive.schema.OPTIMIZERS`).
OPTIMIZERS = _schema.OPTIMIZERS

#: The most fallback starts a recipe may list (``Recipe.restarts``).
MAX_RESTARTS = 64


@dataclass(frozen=True)
class Start:
    """One initialisation and optimiser schedule of the multi-start recipe.

    ``init`` is the kind of initialisation (:data:`~dnc_interactive.model.INITS`),
    ``init_scale`` the std of H1 (None: the config's own), ``seed_offset`` is added to the
    config's seed; the other fields are as in :class:`Recipe`.
    """

    init_scale: float | None
    lr: float
    momentum: float
    momentum_boost: float | None
    boost_gap: float
    seed_offset: int = 0
    init: str = "random"

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init={self.init!r} is not valid: expected one of {INITS}")

    def config_for(self, config: DUFMConfig) -> DUFMConfig:
        """``config`` with this start's seed offset and H1 scale (no narrow-width warning)."""
        with warnings.catch_warnings():  # the note was given when ``config`` was built
            warnings.simplefilter("ignore")
            return config.replace(
                seed=config.seed + self.seed_offset,
                init_scale=self.init_scale or config.init_scale,
            )

    def recipe_for(self, recipe: Recipe) -> Recipe:
        """``recipe`` with this start's optimiser settings and no further restarts."""
        return dataclasses.replace(
            recipe,
            lr=self.lr,
            momentum=self.momentum,
            momentum_boost=self.momentum_boost,
            boost_gap=self.boost_gap,
            restarts=0,
        )


#: The small start: every matrix near zero (theory §8), the fast schedule.
SMALL_START = Start(
    init_scale=0.03, lr=1.0, momentum=0.8, momentum_boost=0.99, boost_gap=0.1, init="small"
)


#: The four schedules the structured starts take in turn (theory §8), as (H1 std, learning
#: rate, boost gap): brisk, careful (close to gradient flow), low and lower (starts small enough
#: that a class past its own threshold decays to 0 while the others grow: imbalanced classes).
STRUCTURED_SCHEDULES: tuple[tuple[float, float, float], ...] = (
    (0.05, 0.2, 0.1),
    (0.2, 0.2, 0.1),
    (0.5, 0.05, 0.01),
    (0.1, 0.2, 0.1),
)


def structured_start(seed_offset: int) -> Start:
    """A structured start (theory §8) from the config's seed plus ``seed_offset``.

    Successive offsets cycle through :data:`STRUCTURED_SCHEDULES` (offset 1 brisk, 2 careful,
    3 low, 4 lower, ...), so a race of five holds each of them next to the small start;
    momentum 0.9, raised to 0.99 below the boost gap.
    """
    scale, lr, boost_gap = STRUCTURED_SCHEDULES[seed_offset % len(STRUCTURED_SCHEDULES)]
    return Start(scale, lr, 0.9, 0.99, boost_gap, seed_offset=seed_offset, init="structured")


#: The fallback starts, in order (theory §8): the small start, then structured starts from
#: successive seeds. A recipe uses the first ``restarts`` of them.
FALLBACK_STARTS: tuple[Start, ...] = (
    SMALL_START,
    *(structured_start(i) for i in range(1, MAX_RESTARTS)),
)


@dataclass(frozen=True)
class Recipe:
    """Optimiser settings of a :class:`~dnc_interactive.training.Trainer`.

    Attributes:
        optimizer: "gd" (full-batch gradient descent, heavy-ball when momentum > 0; plain GD,
            the paper's method, with momentum=0) or "adam".
        lr: learning rate (> 0).
        momentum: heavy-ball momentum in [0, 1) for "gd"; beta1 for "adam".
        momentum_boost: momentum used once the relative gap to L* is below ``boost_gap``
            (None keeps ``momentum``). Ignored by "adam".
        boost_gap: the relative gap below which ``momentum_boost`` takes over.
        momentum_restart: heavy-ball only: when the loss rose since the last check, the
            velocity is reset to zero (adaptive restart, O'Donoghue & Candes 2015), so a high
            momentum does not make the loss oscillate about L* (the live "collapsed" verdict
            would flip back and forth).
        guard: when the loss diverges (NaN/inf, or above ``blowup`` times the larger of the
            initial loss and 1/2, the loss of the zero solution), restore the last good state
            and halve lr (up to ``max_retries`` times) instead of stopping.
        max_retries: number of lr halvings the guard may use.
        restarts: how many fallback starts (:data:`FALLBACK_STARTS`, at most
            :data:`MAX_RESTARTS`) the race may use when the first start stalls (0 = the first
            start only). The lowest-loss start is kept.
        race_size: how many fallback starts are trained side by side (one batch).
        stall_gap: a start counts as stalled only while its relative gap to L* is above this.
        stall_steps: a start is given at least this many steps before it can be declared
            stalled; stalled means the excess loss over L* fell by less than 10 % over the last
            ``stall_steps`` steps.
    """

    optimizer: str = "gd"
    lr: float = 1.0
    momentum: float = 0.8
    momentum_boost: float | None = 0.99
    boost_gap: float = 0.1
    momentum_restart: bool = True
    guard: bool = True
    max_retries: int = 8
    blowup: float = 100.0
    restarts: int = 16
    race_size: int = 5
    stall_gap: float = 1e-3
    stall_steps: int = 450

    @classmethod
    def named(cls, name: str) -> Recipe:
        """One of :data:`RECIPES`: "robust" (default), "fast" or "paper"."""
        if name not in RECIPES:
            raise ValueError(f"recipe={name!r} is not valid: expected one of {tuple(RECIPES)}")
        return RECIPES[name]

    def first_start(self) -> Start:
        """The first start: the config's own init with this recipe's optimiser settings."""
        return Start(None, self.lr, self.momentum, self.momentum_boost, self.boost_gap)

    def fallback_starts(self) -> tuple[Start, ...]:
        """The fallback starts this recipe may race (none for Adam)."""
        if self.optimizer != "gd":
            return ()
        return FALLBACK_STARTS[: self.restarts]

    def starts(self) -> tuple[Start, ...]:
        """All starts this recipe may use, in order: ``starts()[attempt]``."""
        return (self.first_start(), *self.fallback_starts())

    def __post_init__(self) -> None:
        values = check_fields("Recipe", RULES, {name: getattr(self, name) for name in RULES})
        for name, value in values.items():
            object.__setattr__(self, name, value)


#: The constraints of every Recipe field (one table, see dnc_interactive.validation).
RULES = {
    "optimizer": OneOf(OPTIMIZERS),
    "lr": LEARNING_RATE,
    "momentum": MOMENTUM,
    "momentum_boost": MOMENTUM.but(optional=True),
    "boost_gap": Real(ge=0, cap=1e30),
    "momentum_restart": Bool(),
    "guard": Bool(),
    "max_retries": Int(ge=0, cap=64),
    "blowup": Real(gt=1, cap=1e30),
    "restarts": Int(ge=0, le=MAX_RESTARTS),
    "race_size": Int(ge=1, le=16),
    "stall_gap": Real(gt=0, cap=1e30),
    "stall_steps": Int(ge=1, cap=10**9),
}


#: Named recipes (theory §8 and the README's recipe table say which reaches what).
RECIPES: dict[str, Recipe] = {
    "robust": Recipe(),
    "fast": Recipe(restarts=0),
    "paper": Recipe(lr=0.1, momentum=0.0, momentum_boost=None, restarts=0),
}
