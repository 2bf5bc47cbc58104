"""``dnc-interactive verify`` and ``dnc_interactive.verify()`` (theory §5.6): every claim at its
tiny size, the verdict.json schema, the report, exit codes, and the CE DNC loss of the
cross-entropy claim checked against gradient descent where DNC is optimal."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import altair as alt
import pandas as pd
import pytest
import torch

import dnc_interactive
from dnc_interactive.cli import main
from dnc_interactive.verify import claims as claims_mod
from dnc_interactive.verify import run_claims, verify
from dnc_interactive.verify.claims import CLAIMS, Claim, Outcome, ce_dnc_loss

CLAIM_KEYS = {"name", "paper", "figure", "setting", "threshold", "measured", "held", "summary",
              "seconds"}  # fmt: skip
TOP_KEYS = {"version", "quick", "claims", "all_held"}
CHEAP = "follow_up_fig3_srg_below_dnc"  # closed form: well under a second at the tiny size


def _impossible(p) -> Outcome:
    frame = pd.DataFrame({"x": [1, 2], "y": [0.5, 0.7]})
    chart = alt.Chart(frame).mark_line().encode(x="x:Q", y="y:Q")
    value = float(frame["y"].min())
    return Outcome({"value": value}, value < p["limit"], f"value {value} vs {p['limit']}", frame,
                   chart)  # fmt: skip


IMPOSSIBLE = Claim(
    name="impossible_claim",
    paper="0000.00000",
    figure="none",
    setting="a constant",
    threshold="value < -1 (impossible)",
    quick={"limit": -1.0},
    full={"limit": -1.0},
    tiny={"limit": -1.0},
    func=_impossible,
)


# ---------------------------------------------------------------------------- the registry
def test_registry_has_the_required_claims():
    papers = {c.paper for c in CLAIMS.values()}
    assert {"2305.13165", "2405.14468", "2410.23169"} <= papers
    assert len(CLAIMS) >= 7
    for c in CLAIMS.values():
        assert c.name.isidentifier() and c.name == c.name.lower()
        assert set(c.tiny) == set(c.quick) == set(c.full), c.name
        assert c.setting and c.threshold and c.figure


@pytest.mark.parametrize("name", list(CLAIMS))
def test_each_claim_runs_at_its_tiny_size(name):
    torch.set_num_threads(1)
    res = CLAIMS[name].run("tiny")
    assert res.error is None, res.summary
    assert res.name == name and res.size == "tiny"
    assert isinstance(res.held, bool) and res.summary
    assert res.measured and json.dumps(res.to_dict(), allow_nan=False)
    assert isinstance(res.data, pd.DataFrame) and len(res.data)
    assert isinstance(res.chart, alt.TopLevelMixin)
    assert res.chart.to_dict()["$schema"].startswith("https://vega.github.io/schema/vega-lite")
    assert res.seconds < 60


def test_custom_size_overrides_quick_parameters_and_refuses_unknown_ones():
    claim = CLAIMS[CHEAP]
    label, params = claim.size({"rs": (4,), "depths": (4,), "optimize": False})
    assert label == "custom" and params["rs"] == (4,) and params["lam"] == claim.quick["lam"]
    res = claim.run({"rs": (4,), "depths": (4, 5), "optimize": False})
    assert res.held and res.measured["points"] == 2
    with pytest.raises(ValueError, match="unknown parameter"):
        claim.size({"nope": 1})
    with pytest.raises(ValueError, match="size='huge'"):
        claim.size("huge")


def test_a_raising_claim_is_a_failed_claim_not_a_crash():
    def boom(p):
        raise RuntimeError("kaput")

    bad = Claim("boom", "x", "x", "x", "x", {}, {}, {}, boom)
    res = bad.run("tiny")
    assert not res.held and res.error and "kaput" in res.summary


def test_srg_claim_numbers_are_the_closed_form():
    from dnc_interactive import lowrank
    from dnc_interactive.config import DUFMConfig

    res = CLAIMS[CHEAP].run("tiny")
    cfg = DUFMConfig(num_classes=10, samples_per_class=5, depth=4, width=10, lambda_H=0.004,
                     lambda_W=0.004, dtype="float64")  # fmt: skip
    assert res.measured["ratios"]["r=5,L=4"]["srg_ratio"] == pytest.approx(
        lowrank.srg_loss(cfg).ratio, rel=1e-12
    )


# ---------------------------------------------------------------------------- CE DNC loss
@pytest.mark.parametrize("K, L", [(2, 3), (3, 1), (4, 1), (2, 2)])
def test_ce_dnc_loss_is_what_gradient_descent_reaches_where_dnc_is_optimal(K, L):
    # K = 2 (any L) and L = 1 (the plain UFM): DNC is the optimum of the linear CE DUFM, so
    # GD must land on the 1-D formula of theory §5.6
    from dnc_interactive.config import DUFMConfig
    from dnc_interactive.optim import BatchedTrainer
    from dnc_interactive.training import Recipe

    lam = 2**-8
    cfg = DUFMConfig(num_classes=K, samples_per_class=5, depth=L, width=16, lambda_H=lam,
                     lambda_W=lam, activation="linear", loss="ce", dtype="float64")  # fmt: skip
    recipe = Recipe(lr=0.5, momentum=0.9, momentum_boost=None, restarts=0)
    bt = BatchedTrainer([cfg], [recipe]).run(3000)
    assert bt.summary(0)["loss"] == pytest.approx(ce_dnc_loss(K, 5, L, lam), rel=1e-9)


def test_ce_dnc_loss_limits():
    assert ce_dnc_loss(10, 5, 3, 1e3) == pytest.approx(math.log(10))  # huge lambda: s = 0
    assert ce_dnc_loss(10, 5, 3, 1e-12) < 1e-3  # tiny lambda: the logits grow, loss -> 0


# ---------------------------------------------------------------------------- verify()
def test_verify_writes_the_verdict_and_an_offline_report(tmp_path):
    out = tmp_path / "rep"
    doc = verify(size="tiny", claims=[CHEAP], out=out, workers=1, png=False)
    saved = json.loads((out / "verdict.json").read_text())
    assert TOP_KEYS <= set(saved) and saved["quick"] is True and saved["size"] == "tiny"
    assert saved["version"] == dnc_interactive.__version__
    assert [c["name"] for c in saved["claims"]] == [CHEAP]
    entry = saved["claims"][0]
    assert CLAIM_KEYS <= set(entry) and entry["cpu_seconds"] >= 0
    assert entry["held"] is True and saved["all_held"] is True and doc["all_held"] is True
    assert entry["paper"] == "2405.14468" and isinstance(entry["seconds"], float)
    page = (out / "report.html").read_text()
    assert CHEAP in page and "vegaEmbed" in page and entry["summary"][:30] in page
    assert "<script src=" not in page and "cdn." not in page  # nothing fetched
    assert doc["results"][0].chart is not None


def test_the_package_is_callable_as_verify():
    doc = dnc_interactive.verify(size="tiny", claims=[CHEAP], out=None, workers=1)
    assert doc["all_held"] and doc["claims"][0]["name"] == CHEAP
    assert callable(dnc_interactive.verify)


def test_verify_refuses_bad_arguments_before_any_work():
    with pytest.raises(ValueError, match="claims="):
        verify(claims=["nope"], out=None)
    with pytest.raises(ValueError, match="workers="):
        verify(claims=[CHEAP], out=None, workers=0)
    with pytest.raises(ValueError, match="size="):
        verify(claims=[CHEAP], out=None, size="huge")


def test_an_injected_impossible_claim_fails_the_verdict(tmp_path):
    doc = verify(size="tiny", registry=[IMPOSSIBLE, CLAIMS[CHEAP]], out=tmp_path, workers=1,
                 png=False)  # fmt: skip
    assert not doc["all_held"]
    held = {c["name"]: c["held"] for c in doc["claims"]}
    assert held == {"impossible_claim": False, CHEAP: True}


@pytest.mark.slow
def test_two_workers_give_the_same_verdicts(tmp_path):
    chosen = [CLAIMS[CHEAP], CLAIMS["follow_up_fig3_dnc_probability_increases_with_width"]]
    one = run_claims(chosen, "tiny", workers=1)
    two = run_claims(chosen, "tiny", workers=2)
    assert [r.name for r in two] == [c.name for c in chosen]
    for a, b in zip(one, two, strict=True):
        assert a.measured == b.measured and a.held == b.held


# ---------------------------------------------------------------------------- the CLI
def test_cli_exit_1_when_a_claim_fails(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(claims_mod.CLAIMS, IMPOSSIBLE.name, IMPOSSIBLE)
    argv = ["verify", "--size", "tiny", "--claims", f"impossible_claim,{CHEAP}",
            "--out", str(tmp_path), "--workers", "1", "--no-png"]  # fmt: skip
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "impossible_claim" in printed and "NO" in printed and "SOME FAILED" in printed
    saved = json.loads((tmp_path / "verdict.json").read_text())
    assert saved["all_held"] is False


def test_cli_json_output(tmp_path, capsys):
    argv = ["verify", "--size", "tiny", "--claims", CHEAP, "--out", str(tmp_path), "--workers",
            "1", "--no-png", "--json"]  # fmt: skip
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert TOP_KEYS <= set(doc) and doc["claims"][0]["held"] is True


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--claims", "no_such_claim"], "--claims"),
        (["--claims", ","], "--claims"),
        (["--workers", "0"], "--workers"),
        (["--workers", "100000"], "--workers"),
        (["--size", "huge"], "--size"),
        (["--quick", "--full"], "--full"),
    ],
)
def test_cli_bad_arguments_exit_2_naming_the_flag(extra, flag, tmp_path, capsys):
    argv = ["verify", "--out", str(tmp_path / "r"), *extra]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_cli_out_must_be_a_folder(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["verify", "--claims", CHEAP, "--out", str(f)]) == 2
    assert "--out" in capsys.readouterr().err


def test_cli_list(capsys):
    assert main(["verify", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in CLAIMS)


@pytest.mark.parametrize("argv", [["verify", "--help"], ["verify", "--claims", "x", "--bad"]])
def test_verify_help_imports_no_torch(argv):
    code = (
        "import sys\n"
        "from dnc_interactive.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('torch', 'pandas', 'altair') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_end_to_end_command(tmp_path):
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "dnc_interactive", "verify", "--size", "tiny"]
        + ["--claims", CHEAP, "--out", str(out), "--workers", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 0, done.stderr
    assert "1 of 1 claims held" in done.stdout and CHEAP in done.stdout
    saved = json.loads((out / "verdict.json").read_text())
    assert saved["all_held"] is True and CLAIM_KEYS <= set(saved["claims"][0])
    assert (out / "report.html").stat().st_size > 100_000  # the inlined vega-embed bundle
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.browser
def test_report_draws_its_charts_offline_in_a_browser(tmp_path):
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs /usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    verify(size="tiny", claims=[CHEAP, "ce_linear_lowrank_beats_dnc"], out=tmp_path, workers=1,
           png=False)  # fmt: skip
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_context(offline=True).new_page()
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("request", lambda r: requests.append(r.url))
        page.goto((tmp_path / "report.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.chart svg').length == 2", timeout=20000)
        browser.close()
    assert not errors and all(u.startswith("file:") for u in requests)
