"""`dnc-interactive sweep`: TOML grid, results file, resume, bad input, JSON contract."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from dnc_interactive.cli import main
from dnc_interactive.config import DUFMConfig
from dnc_interactive.sweeps import sweep
from dnc_interactive.training import Recipe

GRID_TOML = """
steps = 40          # run settings; flags override them

[grid]
num_classes = 3
samples_per_class = 4
width = 8
dtype = "float64"
depth = [2, 3]
lambda = [0.001, 0.005]
seed = [0, 1]
lr = 0.5
"""


def write(tmp_path, text=GRID_TOML, name="grid.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_sweep_writes_results_equal_to_the_api(tmp_path, capsys):
    grid, out = write(tmp_path), tmp_path / "results.parquet"
    code = main(["sweep", "--grid", str(grid), "--out", str(out), "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "p_dnc" in printed and "8 rows in" in printed
    saved = pd.read_parquet(out)
    api = sweep(
        {"depth": [2, 3], "lambda": [0.001, 0.005], "seed": [0, 1]},
        40,
        base=DUFMConfig(num_classes=3, samples_per_class=4, width=8, dtype="float64"),
        recipe=Recipe(lr=0.5),
        progress=False,
    )
    assert saved["key"].tolist() == api["key"].tolist()
    assert saved["final_loss"].tolist() == api["final_loss"].tolist()


def test_sweep_resumes_and_flags_override(tmp_path, capsys):
    grid, out = write(tmp_path), tmp_path / "results.csv"
    assert main(["sweep", "--grid", str(grid), "--out", str(out), "--quiet", "--steps", "30"]) == 0
    first = pd.read_csv(out)
    assert (first["steps"] == 30).all() and len(first) == 8
    # drop half the rows, as if interrupted; the rerun recomputes exactly those
    first.iloc[:4].to_csv(out, index=False)
    capsys.readouterr()
    code = main(["sweep", "--grid", str(grid), "--out", str(out), "--steps", "30", "--json"])
    assert code == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 8 and {r["steps"] for r in rows} == {30}
    again = pd.read_csv(out)
    assert sorted(again["key"]) == sorted(first["key"])
    assert again.set_index("key")["final_loss"].to_dict() == pytest.approx(
        first.set_index("key")["final_loss"].to_dict(), rel=1e-15
    )


@pytest.mark.parametrize(
    ("text", "extra", "match"),
    [
        (GRID_TOML.replace("depth = [2, 3]", "depth = []"), [], "'depth' has an empty list"),
        (GRID_TOML.replace("depth = [2, 3]", "detph = [2, 3]"), [], "unknown sweep parameter"),
        (GRID_TOML.replace("depth = [2, 3]", "depth = [2, 0]"), [], "depth=0 is not valid"),
        (GRID_TOML.replace("steps = 40", "stpes = 40"), [], "unknown top-level key"),
        (GRID_TOML.replace("steps = 40", ""), [], "argument --steps: give --steps"),
        ("[grid", [], "not valid TOML"),
        ("steps = 3\n", [], "needs a non-empty \\[grid\\]"),
        (GRID_TOML, ["--steps", "0"], "argument --steps: 0"),
        (GRID_TOML, ["--workers", "0"], "argument --workers: 0"),
        (GRID_TOML, ["--out", "r.txt"], "argument --out"),
    ],
)
def test_bad_grid_exits_2_naming_the_problem(tmp_path, capsys, text, extra, match):
    grid = write(tmp_path, text)
    code = main(["sweep", "--grid", str(grid), "--quiet", *extra])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("dnc-interactive sweep: error:")
    assert re.search(match, err), err


def test_missing_grid_file_and_flag(tmp_path, capsys):
    assert main(["sweep", "--grid", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["sweep"])
    assert exc.value.code == 2
    assert "--grid" in capsys.readouterr().err


def test_dask_local_flag(tmp_path, capsys):
    pytest.importorskip(
        "dask.distributed",
        reason="dask.distributed is not installed: pip install 'dnc-interactive[cluster]'",
    )
    grid = write(tmp_path, GRID_TOML.replace("seed = [0, 1]", "seed = 0"))
    out = tmp_path / "r.parquet"
    code = main(["sweep", "--grid", str(grid), "--out", str(out), "--quiet", "--dask", "local",
                 "--workers", "1"])  # fmt: skip
    assert code == 0
    assert len(pd.read_parquet(out)) == 4
