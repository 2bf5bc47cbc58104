"""The robust recipe's fallback phase (theory §8): the stall test and the race of starts.

:func:`stalled` says when a start has plateaued above L*; :class:`Race` trains the recipe's
fallback starts side by side in one :class:`~dnc_interactive.optim.BatchedTrainer`, a stalled
member replaced by the next start, the lowest loss leading. The trainer
(:mod:`dnc_interactive.training`) and the sweeps (:mod:`dnc_interactive.sweeps`) both use it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from dnc_interactive.config import DUFMConfig
from dnc_interactive.diagnosis import excess_falling
from dnc_interactive.optim import BatchedTrainer, relative_gap
from dnc_interactive.recipes import Recipe, Start

__all__ = ["Race", "stalled"]


def stalled(
    losses: Sequence[float], optimal: float, steps: int, recipe: Recipe, record_every: int
) -> bool:
    """The robust recipe's stall test (theory §8) on one start's on-grid ``losses``.

    True when the start ran at least ``recipe.stall_steps`` steps, its relative gap to L* is
    above ``recipe.stall_gap`` and its excess loss over L* fell by less than 10 % over the last
    ``stall_steps`` steps.
    """
    if steps < recipe.stall_steps or not losses:
        return False
    if not relative_gap(losses[-1], optimal) > recipe.stall_gap:
        return False
    window = max(1, recipe.stall_steps // record_every)
    return not excess_falling(list(losses), optimal, window, by=0.1)


class Race:
    """The robust recipe's fallback phase (theory §8): fallback starts raced in one batch.

    ``recipe.race_size`` of ``recipe.fallback_starts()`` are trained side by side by one
    :class:`BatchedTrainer`; a member that stalls (:func:`stalled`) or diverges is replaced by
    the next start while any is left. The *leader* is the member with the lowest loss now.

    Args:
        config: the configuration (each start applies its seed offset and H1 scale).
        recipe: the recipe whose fallback starts are raced (its ``restarts`` > 0).
        record_every: the check grid (as the trainer's).
        first_index: the start index (``recipe.starts()[index]``) of the first fallback.
    """

    def __init__(
        self, config: DUFMConfig, recipe: Recipe, *, record_every: int = 10, first_index: int = 1
    ) -> None:
        starts = list(recipe.fallback_starts())
        if not starts:
            raise ValueError(
                f"recipe.restarts={recipe.restarts} is not valid for a race: expected >= 1"
            )
        self.config, self.recipe, self.record_every = config, recipe, record_every
        self._starts: list[Start] = starts
        self._first_index = first_index
        B = min(recipe.race_size, len(starts))
        self.bt = BatchedTrainer(
            [s.config_for(config) for s in starts[:B]],
            [s.recipe_for(recipe) for s in starts[:B]],
            record_every=record_every,
            inits=[s.init for s in starts[:B]],
        )
        self.member_start = [first_index + i for i in range(B)]  # start index of each member
        self._began = [0] * B  # bt.steps at which each member began
        self._losses: list[list[float]] = [[v] for v in self.bt.losses[-1]]
        self._next = B
        self.optimal = self.bt.optimal[0]

    @property
    def steps(self) -> int:
        return self.bt.steps

    def step(self, n: int) -> Race:
        """Advance every member ``n`` steps, checking (and replacing) on the record grid."""
        bt, re = self.bt, self.record_every
        t0 = time.perf_counter()
        remaining = n
        while remaining > 0:
            chunk = min(remaining, re - bt.steps % re)
            bt._advance(chunk)
            remaining -= chunk
            if bt.steps % re == 0:
                bt._check()
                self._after_check()
        bt.seconds += time.perf_counter() - t0
        return self

    def _after_check(self) -> None:
        bt = self.bt
        for b in range(bt.B):
            loss = bt.terms[b].get("loss", math.nan) if bt.status[b] != "diverged" else math.inf
            self._losses[b].append(loss)
            if self._next >= len(self._starts):
                continue
            gone = bt.status[b] == "diverged"
            if gone or stalled(
                self._losses[b],
                self.optimal,
                bt.steps - self._began[b],
                self.recipe,
                self.record_every,
            ):
                start = self._starts[self._next]
                bt.reset(
                    b, start.config_for(self.config), start.recipe_for(self.recipe), start.init
                )
                self.member_start[b] = self._first_index + self._next
                self._began[b] = bt.steps
                self._losses[b] = [bt.terms[b]["loss"]]
                self._next += 1

    def leader(self) -> int:
        """The member with the lowest loss now (diverged members last)."""

        def loss(b: int) -> float:
            value = self.bt.terms[b].get("loss", math.nan)
            ok = self.bt.status[b] != "diverged" and math.isfinite(value)
            return value if ok else math.inf

        return min(range(self.bt.B), key=loss)

    def losses(self, b: int) -> list[float]:
        """Member ``b``'s on-grid losses since its start began."""
        return list(self._losses[b])

    def run(self, steps: int) -> Race:
        """Exactly ``steps`` more steps."""
        return self.step(steps)
