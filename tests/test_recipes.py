"""Recipes: the starts of the robust recipe, their order, and the validated fields."""

import pytest

from dnc_interactive.config import DUFMConfig
from dnc_interactive.recipes import (
    FALLBACK_STARTS,
    MAX_RESTARTS,
    RECIPES,
    SMALL_START,
    STRUCTURED_SCHEDULES,
    Recipe,
    Start,
    structured_start,
)
from dnc_interactive.validation import ParameterError


def test_robust_recipe_starts_fast_then_races_small_and_structured_starts():
    r = Recipe()
    starts = r.starts()
    assert starts[0] == r.first_start() and starts[0].init == "random"
    assert starts[0].init_scale is None  # the config's own H1 scale
    assert starts[1] == SMALL_START and starts[1].init == "small"
    assert all(s.init == "structured" for s in starts[2:])
    assert len(starts) == 1 + r.restarts and r.race_size <= r.restarts
    # successive seeds, cycling through the brisk, careful and low schedules
    offsets = [s.seed_offset for s in starts[2:]]
    assert offsets == list(range(1, r.restarts))
    first_race = starts[1 : 1 + r.race_size]
    assert {s.init_scale for s in first_race[1:]} == {s for s, _, _ in STRUCTURED_SCHEDULES}
    assert structured_start(1).lr != structured_start(2).lr


def test_fast_and_paper_recipes_have_no_fallback():
    assert RECIPES["fast"].starts() == (RECIPES["fast"].first_start(),)
    paper = Recipe.named("paper")
    assert paper.momentum == 0 and paper.momentum_boost is None and paper.restarts == 0
    assert Recipe(optimizer="adam").fallback_starts() == ()  # the race is heavy-ball only


def test_start_applies_seed_offset_and_scale():
    cfg = DUFMConfig(seed=7, init_scale=0.1)
    s = structured_start(3)
    c = s.config_for(cfg)
    assert c.seed == 10 and c.init_scale == s.init_scale
    assert Recipe().first_start().config_for(cfg) == cfg
    rec = s.recipe_for(Recipe())
    assert (rec.lr, rec.momentum, rec.boost_gap, rec.restarts) == (s.lr, 0.9, s.boost_gap, 0)


@pytest.mark.parametrize(
    "field, value",
    [
        ("restarts", MAX_RESTARTS + 1),
        ("restarts", -1),
        ("restarts", True),
        ("restarts", 2.0),
        ("race_size", 0),
        ("race_size", 17),
        ("stall_steps", 0),
    ],
)
def test_bad_race_settings_name_the_field(field, value):
    with pytest.raises(ParameterError) as info:
        Recipe(**{field: value})
    assert info.value.field == field and field in str(info.value)


def test_bad_start_init_is_refused():
    with pytest.raises(ValueError, match="init='lsuv' is not valid"):
        Start(0.1, 0.1, 0.0, None, 0.1, init="lsuv")


def test_fallback_starts_cover_the_largest_recipe():
    assert len(FALLBACK_STARTS) == MAX_RESTARTS
    assert Recipe(restarts=MAX_RESTARTS).fallback_starts() == FALLBACK_STARTS
