"""The column layout of sweep results: one row per configuration (its config and recipe
fields, then :data:`RESULT_COLUMNS`), the storage type of every column, and the tidy
frame with fixed order and types that :func:`~dnc_interactive.sweeps.sweep` returns."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pandas as pd

from dnc_interactive.config import FIELD_NAMES, DUFMConfig
from dnc_interactive.sweeps.grid import _SEQUENCE_FIELDS, RECIPE_FIELDS
from dnc_interactive.training import Recipe

__all__ = ["DEPRECATED_COLUMNS", "METRIC_COLUMNS", "RESULT_COLUMNS"]

#: Result columns after the config and recipe columns, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "lambda",
    "steps",
    "polish",
    "gd_loss",
    "final_loss",
    "fit",
    "reg",
    "optimal_loss",
    "relative_gap",
    "loss_ratio",
    "status",
    "retries",
    "start",
    "final_lr",
    "nc1",
    "nc1_trace",
    "nc2_orth",
    "nc3",
    "q_mean",
    "label",
    "is_dnc",
    "rank",
    "min_rank_pre",
    "rank_pre",
    "rank_post",
    "dnc_optimality",
    "seconds",
    "key",
    "config_json",
)


#: Result columns that hold a history metric, and the metric (:data:`dnc_interactive.schema.
#: METRICS`) they hold: ``nc1_trace`` is the largest NC1' over layers 2..L, ``nc2_orth`` and
#: ``nc3`` the last layer's, ``rank`` the solution rank.
METRIC_COLUMNS: dict[str, str] = {
    "nc1_trace": "nc1_trace",
    "nc1": "nc1_trace",
    "nc2_orth": "nc2_orth",
    "nc3": "nc3",
    "rank": "rank",
}

#: Deprecated result columns, kept (same values) so that old result files and scripts keep
#: working, and the column that replaces each: ``nc1`` always held NC1' (the trace version).
DEPRECATED_COLUMNS: dict[str, str] = {"nc1": "nc1_trace"}


def _columns() -> list[str]:
    return [*FIELD_NAMES, *RECIPE_FIELDS, *RESULT_COLUMNS]


# --------------------------------------------------------------------- storage types
def _default_kind(f: dataclasses.Field) -> str:
    """ "int", "bool", "str" or "float": the storage type of a config / recipe field."""
    value = f.default if f.default is not dataclasses.MISSING else None
    if value is None and f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, str):
        return "str"
    text = str(f.type)
    if value is None and "int" in text and "float" not in text:
        return "int"
    return "float"


def _storage_kinds() -> dict[str, str]:
    kinds = {
        f.name: _default_kind(f)
        for cls in (DUFMConfig, Recipe)
        for f in dataclasses.fields(cls)
        if f.name in FIELD_NAMES or f.name in RECIPE_FIELDS
    }
    kinds.update(dict.fromkeys(_SEQUENCE_FIELDS, "str"))  # "30" or "30,20,10"; read back as 30
    kinds.update(dict.fromkeys(("steps", "polish", "retries", "start", "rank"), "int"))
    kinds.update(is_dnc="bool")
    text = ("status", "label", "rank_pre", "rank_post", "dnc_optimality", "key", "config_json")
    kinds.update(dict.fromkeys(text, "str"))
    return {c: kinds.get(c, "float") for c in _columns()}


_STR_COLUMNS = frozenset(c for c, k in _storage_kinds().items() if k == "str")


def _arrow_schema():
    import pyarrow as pa

    types = {"str": pa.string(), "bool": pa.bool_(), "int": pa.int64(), "float": pa.float64()}
    return pa.schema([(c, types[k]) for c, k in _storage_kinds().items()])


def _arrow_table(frame: pd.DataFrame):
    """One part's table in the fixed schema, so every part (and pd.read_parquet of the whole
    directory) agrees on the column types whatever values a chunk happened to hold."""
    import pyarrow as pa

    out = frame.reindex(columns=_columns()).copy()
    kinds = _storage_kinds()
    for c in out.columns:
        if kinds[c] == "str":
            out[c] = [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                for v in out[c]
            ]
        elif kinds[c] == "bool":
            out[c] = out[c].astype(bool)
        elif kinds[c] == "float":
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    try:
        return pa.Table.from_pandas(out, schema=_arrow_schema(), preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError):  # pragma: no cover
        return pa.Table.from_pandas(frame, preserve_index=False)  # unusual values: as they are


def _config_columns(config: DUFMConfig, recipe: Recipe) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.to_dict().items():
        out[k] = ",".join(str(x) for x in v) if isinstance(v, list) else v
    for k, v in dataclasses.asdict(recipe).items():
        out[k] = v
    lam = config.lambda_H if config.equal_lambdas else math.nan
    out["lambda"] = lam
    out["config_json"] = config.to_json()
    return out


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed column order and types: numeric where every value is a number."""
    cols = [*FIELD_NAMES, *RECIPE_FIELDS, *RESULT_COLUMNS]
    frame = frame.reindex(columns=cols)
    for name in _SEQUENCE_FIELDS:  # one number per row -> numeric, else text ("30,20,10")
        values = frame[name]
        numbers = pd.to_numeric(values.astype(str), errors="coerce")
        if bool(numbers.notna().all()) and not any(isinstance(v, bool) for v in values):
            frame[name] = numbers
        else:
            frame[name] = values.astype(str)
    for old, new in DEPRECATED_COLUMNS.items():  # a file from before the rename: fill it in
        frame[new] = frame[new].where(frame[new].notna(), frame[old])
        frame[old] = frame[old].where(frame[old].notna(), frame[new])
    frame["momentum_boost"] = pd.to_numeric(frame["momentum_boost"], errors="coerce")
    frame["is_dnc"] = frame["is_dnc"].astype(bool)
    frame["min_rank_pre"] = pd.to_numeric(frame["min_rank_pre"], errors="coerce").astype(float)
    return frame.reset_index(drop=True)
