"""``dnc-interactive realnet``: JSON output, the reference optimum, flags and bad input."""

import json
import math

import pandas as pd
import pytest

from dnc_interactive import theory
from dnc_interactive.cli import main
from dnc_interactive.config import DUFMConfig

FAST = ["--samples-per-class", "30", "--depth", "3", "--epochs", "300", "--device", "cpu"]
FAST += ["--record-every", "50"]


def _run_json(capsys, *argv):
    code = main(["realnet", *FAST, "--json", *argv])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_json_has_the_promised_fields_and_the_dufm_reference(capsys, tmp_path):
    out_file = tmp_path / "hist.csv"
    code, r = _run_json(capsys, "--classes", "0,1", "--out", str(out_file), "--recovery")
    assert code == 0
    for key in ("train_accuracy", "head_loss", "optimal_loss", "relative_gap", "seconds"):
        assert isinstance(r[key], float), key
    # the reference is the DUFM's L* for the same K, n, L and lambdas, computed independently
    ref = theory.optimal_loss(
        DUFMConfig(num_classes=2, samples_per_class=30, depth=3, lambda_H=1e-3, lambda_W=1e-3)
    )
    assert r["optimal_loss"] == pytest.approx(ref, rel=1e-12)
    assert r["relative_gap"] == pytest.approx((r["head_loss"] - ref) / ref, rel=1e-9)
    assert r["head_loss"] == pytest.approx(r["fit"] + r["reg"], rel=1e-12)
    assert r["train_accuracy"] == 1.0 and 0 <= r["relative_gap"] < 0.05
    assert [e["layer"] for e in r["layers"]] == [1, 2, 3]
    for e in r["layers"]:
        assert {"nc1", "nc1_trace", "nc2_orth", "rank"} <= set(e)
        assert e["nc1"] < 1e-3 and e["rank"] == 2
    assert r["class_sizes"] == [30, 30] and r["config"]["classes"] == [0, 1]
    assert r["recovery"]["frozen_gap"] < 0.01
    hist = pd.read_csv(out_file)
    assert list(hist.columns) == ["step", "layer", "kind", "metric", "value"]
    assert hist["step"].max() == r["steps"]


def test_table_output_and_the_mnist1d_preset(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("DNC_DATA", str(tmp_path))
    argv = ["realnet", "--preset", "mnist1d", "--classes", "0,1,2", "--samples-per-class", "8"]
    argv += ["--mnist1d-samples", "200", "--epochs", "30", "--batch-size", "full", "--quiet"]
    assert main([*argv, "--device", "cpu", "--width", "16", "--feature-dim", "16"]) == 0
    out = capsys.readouterr().out
    assert "relative gap" in out and "K = 3, n_k = [8, 8, 8]" in out
    assert (tmp_path / "mnist1d_200_42.npz").is_file()  # generated locally, cached


@pytest.mark.parametrize(
    "argv, flag, fragment",
    [
        (["--dataset", "imagenet"], "--dataset", "dataset='imagenet' is not valid"),
        (["--classes", "0,12"], "--classes", "class 12 is not in dataset 'digits'"),
        (["--samples-per-class", "500"], "--samples-per-class", "has only 178 samples"),
        (["--classes", "0,1,2", "--width", "2"], "--width", "hidden width must be >= K = 3"),
        (["--feature-dim", "1"], "--feature-dim", "d_1 >= K = 2"),
        (["--lambda-h", "-1"], "--lambda-h", "lambda_H=-1.0 is not valid"),
        (["--preset", "imagenet"], "--preset", "preset='imagenet' is not valid"),
        (["--out", "x.txt"], "--out", "expected a .csv or .parquet file"),
    ],
)
def test_bad_input_exits_2_naming_the_flag(capsys, argv, flag, fragment):
    assert main(["realnet", *argv, "--json"]) == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err and fragment in err


def test_missing_dataset_names_it_and_the_fix(capsys, tmp_path):
    assert main(["realnet", "--dataset", "cifar10", "--root", str(tmp_path), "--json"]) == 2
    err = capsys.readouterr().err
    assert "'cifar10'" in err and "pip install torchvision" in err and str(tmp_path) in err


def test_divergence_exits_1_with_the_message(capsys):
    argv = ["realnet", *FAST, "--optimizer", "sgd", "--lr", "1e4", "--momentum", "0"]
    with pytest.warns(RuntimeWarning, match="diverged"):
        code = main([*argv, "--record-every", "1", "--json"])  # the last value wins
    assert code == 1
    captured = capsys.readouterr()
    assert "diverged" in captured.err
    assert json.loads(captured.out)["status"] == "diverged"
    assert not math.isnan(json.loads(captured.out)["seconds"])


def test_realnet_help_imports_no_torch(imports_none):
    done = imports_none("from dnc_interactive.cli import main\nmain(['realnet', '--help'])")
    assert "--optimizer" in done.stdout and "gd" in done.stdout
