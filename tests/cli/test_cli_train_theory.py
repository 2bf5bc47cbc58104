"""`dnc-interactive train` and `theory`: flags, JSON contract, exit codes."""

import json
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from dnc_interactive import theory
from dnc_interactive.cli import main
from dnc_interactive.config import DUFMConfig
from dnc_interactive.validation import available_cores

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


HUGE = "99999999999999999999"
MODEL_FLAGS_BAD = [
    ("--classes", ["1", "0", "-1", "100000", HUGE, "x", "2.0"]),
    ("--samples-per-class", ["0", "5,0", "500000", HUGE, "1,2,3", "x", "1e3"]),
    ("--depth", ["0", "100000000", HUGE, "1e3"]),
    ("--width", ["0", "10000000", HUGE, "8,8", "x"]),
    ("--lambda-h", ["-1", "nan", "inf", "1e308", "x"]),
    ("--lambda-w", ["-1", "1,2", "nan", "1e308", "-inf"]),
    ("--activation", ["tanh", ""]),
    ("--loss", ["hinge"]),
    ("--init-scale", ["0", "-1", "inf", "1e308"]),
    ("--seed", ["-1", HUGE]),
    ("--dtype", ["half", "float16"]),
    ("--device", ["gpu0", "cuda:99999", "meta", "cuda:x"]),
]
TRAIN_FLAGS_BAD = [
    ("--recipe", ["bogus"]),
    ("--lr", ["-0.1", "0", "nan", "inf", "1e308"]),
    ("--optimizer", ["rmsprop"]),
    ("--momentum", ["1", "-0.5", "nan", "1e308"]),
    ("--steps", ["-5", "1000000000000", HUGE]),
    ("--tol", ["0", "-1", "nan", "inf"]),
    ("--max-steps", ["0", "1000000000000"]),
    ("--polish", ["-1", "1000000000"]),
    ("--record-every", ["0", "1000000000000"]),
    ("--threads", ["0", "100000", str(available_cores() + 1)]),
    ("--out", ["x.txt", "/dev/null/x.csv", "/"]),
]
BAD_CASES = [
    (cmd, flag, value)
    for cmd, table in (("train", MODEL_FLAGS_BAD + TRAIN_FLAGS_BAD), ("theory", MODEL_FLAGS_BAD))
    for flag, bad in table
    for value in bad
]
if not torch.cuda.is_available():
    BAD_CASES += [("train", "--device", "cuda"), ("theory", "--device", "cuda")]


@pytest.mark.parametrize("cmd, flag, value", BAD_CASES)
def test_every_flag_refuses_bad_and_huge_values_before_any_work(cmd, flag, value, capsys):
    t0 = time.perf_counter()
    try:
        code = main([cmd, f"{flag}={value}", "--json", *(["--quiet"] if cmd == "train" else [])])
    except SystemExit as exc:  # argparse-level errors
        code = exc.code
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, (code, err)
    assert len(err.splitlines()) == 1 and flag in err, err
    assert captured.out == ""  # nothing ran
    assert time.perf_counter() - t0 < 5  # refused up front, not after a run


def test_the_reported_flag_values_are_refused_up_front(tmp_path, capsys, monkeypatch):
    import dnc_interactive.training as training

    def no_training(*args, **kwargs):
        raise AssertionError("a Trainer was built before the flags were checked")

    monkeypatch.setattr(training, "Trainer", no_training)
    for argv in (
        ["--threads", "100000"],
        ["--out", "/dev/null/x.csv"],
        ["--out", str(tmp_path)],
        ["--lambda-h", "1e308"],
        ["--samples-per-class", "500000"],
        ["--steps", "1000000000000"],
    ):
        assert main(["train", *argv, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert f"argument {argv[0]}:" in err and len(err.strip().splitlines()) == 1


def test_threads_up_to_the_cores_and_a_new_out_folder_are_accepted(tmp_path, capsys):
    out = tmp_path / "new" / "h.csv"
    argv = ["train", *SMALL, "--steps", "10", "--quiet", "--threads", str(available_cores())]
    assert main([*argv, "--out", str(out)]) == 0
    assert pd.read_csv(out)["step"].max() == 10


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
