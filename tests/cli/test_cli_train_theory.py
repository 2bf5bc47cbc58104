"""`dnc-interactive train` and `theory`: flags, JSON contract, exit codes."""

import json
import subprocess
import sys

import pandas as pd
import pytest

from dnc_interactive import theory
from dnc_interactive.cli import main
from dnc_interactive.config import DUFMConfig

SMALL = ["--samples-per-class", "10", "--width", "16", "--depth", "2", "--dtype", "float64"]


def run_json(capsys, *argv):
    code = main(list(argv) + ["--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_train_json_contract(capsys):
    code, r = run_json(capsys, "train", *SMALL, "--tol", "1e-5")
    assert code == 0
    for key in ("loss", "optimal_loss", "relative_gap", "steps", "seconds", "layers"):
        assert key in r
    assert r["status"] == "converged" and abs(r["relative_gap"]) < 1e-5
    cfg = DUFMConfig(samples_per_class=10, width=16, depth=2, dtype="float64")
    assert r["optimal_loss"] == pytest.approx(theory.optimal_loss(cfg), rel=1e-12)
    assert r["relative_gap"] == pytest.approx(
        (r["loss"] - r["optimal_loss"]) / r["optimal_loss"], rel=1e-9
    )
    assert [layer["layer"] for layer in r["layers"]] == [1, 2]
    for layer in r["layers"]:
        assert {"nc1", "nc1_trace", "nc2_orth", "nc2_etf", "nc3", "rank"} <= set(layer)
        assert layer["nc1"] < 1e-5 and layer["rank"] == 2
    assert r["seconds"] > 0 and r["steps"] > 0


def test_train_fixed_steps_lists_and_history_file(tmp_path, capsys):
    out = tmp_path / "hist.csv"
    code, r = run_json(
        capsys,
        "train",
        "--samples-per-class",
        "30,10",
        "--depth",
        "3",
        "--width",
        "8,16,8",
        "--lambda-w",
        "1e-3,2e-3,3e-3",
        "--steps",
        "40",
        "--out",
        str(out),
        "--lr",
        "0.5",
    )
    assert code == 0 and r["steps"] == 40 and r["status"] == "max_steps"
    assert r["config"]["samples_per_class"] == [30, 10]
    assert r["config"]["lambda_W"] == [1e-3, 2e-3, 3e-3]
    hist = pd.read_csv(out)
    assert list(hist.columns) == ["step", "layer", "kind", "metric", "value"]
    assert hist["step"].max() == 40
    pq = tmp_path / "hist.parquet"
    assert main(["train", *SMALL, "--steps", "20", "--out", str(pq), "--quiet"]) == 0
    assert pd.read_parquet(pq)["step"].max() == 20


def test_train_table_output(capsys):
    assert main(["train", *SMALL, "--steps", "30", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "optimal loss" in out and "relative gap" in out and "nc1" in out


def test_theory_json(capsys):
    code, r = run_json(capsys, "theory", "--samples-per-class", "50", "--depth", "4")
    assert code == 0
    assert r["optimal_loss"] == pytest.approx(0.0109240320, abs=1e-10)  # theory §7.2
    assert r["q"] == pytest.approx([0.99561500] * 2, abs=1e-8)
    assert r["c_star"] == pytest.approx(0.210367, abs=1e-6)
    assert r["critical_lambda"] == pytest.approx(0.048101, abs=1e-6)  # theory §7.1
    assert r["zero_wins"] is False
    code, r = run_json(capsys, "theory", "--lambda-h", "0.06", "--lambda-w", "0.06")
    assert r["zero_wins"] is True and r["optimal_loss"] == 0.5


def test_theory_minority_collapse(capsys):
    code, r = run_json(
        capsys,
        "theory",
        "--samples-per-class",
        "95,5",
        "--depth",
        "3",
        "--lambda-h",
        "0.0104655",
        "--lambda-w",
        "0.0104655",
    )
    assert r["q"][1] == 0 and r["q"][0] == pytest.approx(0.96499, abs=1e-5)
    assert r["zero_wins"] is False and r["zero_wins_per_class"] == [False, True]


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["train", "--depth", "0"], "--depth"),
        (["train", "--depth", "x"], "--depth"),
        (["train", "--classes", "1"], "--classes"),
        (["train", "--lambda-h", "-1"], "--lambda-h"),
        (["train", "--lambda-w", "1,2"], "--lambda-w"),
        (["train", "--samples-per-class", "5,0"], "--samples-per-class"),
        (["train", "--activation", "tanh"], "--activation"),
        (["train", "--dtype", "half"], "--dtype"),
        (["train", "--lr", "-0.1"], "--lr"),
        (["train", "--steps", "-5"], "--steps"),
        (["train", "--tol", "0"], "--tol"),
        (["train", "--out", "x.txt"], "--out"),
        (["train", "--optimizer", "rmsprop"], "--optimizer"),
        (["train", "--bogus"], "--bogus"),
        (["theory", "--width", "0"], "--width"),
        (["theory", "--loss", "ce"], "--loss"),
    ],
)
def test_bad_flags_exit_2_with_one_line_naming_the_flag(argv, flag, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse-level errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert flag in err


def test_diverging_run_exits_nonzero_and_says_why(capsys):
    code = main(["train", *SMALL, "--lr", "1e5", "--momentum", "0", "--steps", "200", "--quiet"])
    captured = capsys.readouterr()
    assert code in (0, 1)
    # the guard halves lr up to 8 times; 1e5 / 2^8 still diverges, so the run stops
    assert code == 1 and "diverged" in captured.err


def test_module_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "dnc_interactive", "theory", "--json", "--depth", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["c_star"] == pytest.approx(0.396850, abs=1e-6)
