"""Grids: a dict of parameter lists (or a list of configurations) expanded into validated
(config, recipe) pairs, each keyed by :func:`config_key` (its results store key)."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from dnc_interactive.config import FIELD_NAMES, DUFMConfig
from dnc_interactive.training import Recipe
from dnc_interactive.validation import check_grid_size

__all__ = ["RECIPE_FIELDS", "config_key", "expand_grid"]

#: Recipe fields a grid may set (besides the DUFMConfig fields).
RECIPE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Recipe))

#: Fields of DUFMConfig that can hold one value per layer / class (stored as text when they do).
_SEQUENCE_FIELDS = ("samples_per_class", "width", "lambda_W")


_KEY_VERSION = 1


def config_key(
    config: DUFMConfig, recipe: Recipe, steps: int, record_every: int = 10, polish: int = 0
) -> str:
    """A stable hash (16 hex digits) of everything that determines one sweep result."""
    payload: dict[str, Any] = {
        "v": _KEY_VERSION,
        "config": config.to_dict(),
        "recipe": dataclasses.asdict(recipe),
        "steps": steps,
        "record_every": record_every,
    }
    if polish:
        payload["polish"] = polish
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _split_params(params: Mapping[str, Any], where: str) -> tuple[dict, dict]:
    unknown = sorted(set(params) - set(FIELD_NAMES) - set(RECIPE_FIELDS) - {"lambda"})
    if unknown:
        raise ValueError(
            f"unknown sweep parameter(s) {unknown}{where}: expected DUFMConfig fields"
            f" {list(FIELD_NAMES)}, recipe fields {list(RECIPE_FIELDS)} or 'lambda'"
            " (sets lambda_H and lambda_W together)"
        )
    cfg = {k: v for k, v in params.items() if k in FIELD_NAMES}
    rec = {k: v for k, v in params.items() if k in RECIPE_FIELDS}
    if "lambda" in params:
        for name in ("lambda_H", "lambda_W"):
            if name in params:
                raise ValueError(
                    f"sweep parameters 'lambda' and {name!r} both given{where}: 'lambda' sets"
                    " lambda_H and lambda_W together, give one or the other"
                )
        cfg["lambda_H"] = cfg["lambda_W"] = params["lambda"]
    return cfg, rec


def _build(
    params: Mapping[str, Any], base: DUFMConfig, recipe: Recipe, where: str
) -> tuple[DUFMConfig, Recipe]:
    cfg, rec = _split_params(params, where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # narrow-width note, not an error
            config = base.replace(**cfg)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"sweep parameter {exc}{where}") from None
    try:
        recipe = dataclasses.replace(recipe, **rec)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"sweep parameter {exc}{where}") from None
    return config, recipe


def expand_grid(
    grid: Mapping[str, Any] | Sequence[DUFMConfig | Mapping[str, Any]],
    base: DUFMConfig | None = None,
    recipe: Recipe | None = None,
) -> list[tuple[DUFMConfig, Recipe]]:
    """The (config, recipe) pairs of a grid, every one validated.

    ``grid`` is either a dict ``{parameter: list of values}`` (the Cartesian product, in the
    order of the keys with the last key varying fastest) or a list of configurations (each a
    :class:`DUFMConfig` or a dict of parameters). Parameters are :class:`DUFMConfig` fields
    (``num_classes``, ``depth``, ``width``, ``lambda_H``, ``lambda_W``, ``seed``, ...),
    :class:`Recipe` fields (``lr``, ``momentum``, ``momentum_boost``, ...) or ``lambda``
    (lambda_H = lambda_W = value). In a dict grid a Python ``list`` is the values to sweep;
    anything else (a number, a string, a tuple such as per-layer widths ``(30, 20, 10)``) is one
    fixed value. Parameters not given come from ``base`` and ``recipe``.

    Raises:
        ValueError: naming the parameter, for an empty list, an unknown parameter or a value
            the config / recipe rejects, before any training starts; ``BudgetError`` (a
            ValueError naming ``grid``) when the grid has more configurations than the
            budget allows (:func:`dnc_interactive.validation.set_budget`), counted before
            any is built, and for a configuration over the memory / work budget.
    """
    base = base if base is not None else DUFMConfig()
    recipe = recipe if recipe is not None else Recipe()
    if not isinstance(base, DUFMConfig):
        raise ValueError(f"base={base!r} is not valid: expected a DUFMConfig or None")
    if not isinstance(recipe, Recipe):
        raise ValueError(f"recipe={recipe!r} is not valid: expected a Recipe or None")
    if isinstance(grid, Mapping):
        names = list(grid)
        _split_params(dict.fromkeys(names), "")
        values = []
        for name in names:
            v = grid[name]
            if isinstance(v, list):
                if not v:
                    raise ValueError(
                        f"sweep parameter {name!r} has an empty list of values: expected at"
                        " least one value"
                    )
                values.append(v)
            else:
                values.append([v])
        # the grid's size, by arithmetic, against the budget: before any configuration is built
        check_grid_size(math.prod(len(v) for v in values))
        out = []
        for combo in itertools.product(*values):
            params = dict(zip(names, combo, strict=True))
            out.append(_build(params, base, recipe, f" (in {params})"))
        return out
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence):
        raise ValueError(
            f"grid={grid!r} is not valid: expected a dict of parameter lists or a list of"
            " DUFMConfig / parameter dicts"
        )
    if not grid:
        raise ValueError("grid=[] is not valid: expected at least one configuration")
    check_grid_size(len(grid))
    out = []
    for i, item in enumerate(grid):
        if isinstance(item, DUFMConfig):
            out.append((item, recipe))
        elif isinstance(item, Mapping):
            out.append(_build(item, base, recipe, f" (in grid[{i}])"))
        else:
            raise ValueError(
                f"grid[{i}]={item!r} is not valid: expected a DUFMConfig or a dict of parameters"
            )
    return out
