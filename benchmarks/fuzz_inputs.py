"""Fuzz every entry point with generated inputs and count what goes wrong, by category.

Entry points: the validators (DUFMConfig, Settings, RealNetConfig, Recipe, the dashboard's text
boxes), the state decoder (decode_state: texts, URLs and JSON payloads) and the command line
(train, theory, sweep, realnet, app --dry-run), each CLI case in its own subprocess with a
timeout. Inputs are drawn from a seeded generator: *bad* cases set one field to a value that is
invalid whatever the implementation (a bool for a number, NaN, a negative size, a size of
10^12, a float32-overflowing lambda, a wrong type, an unwritable --out, more threads than
cores, ...), *wild* cases set a few fields to anything (no expectation but no crash).

Categories printed per entry point:

* tracebacks: anything but a ``ValueError`` that is a ParameterError naming a field (in
  process), or a Python traceback / a signal (a segfault) in a CLI run;
* hangs: a call over ``--slow`` seconds in process, a CLI run over ``--timeout``;
* over-budget: an accepted model that is over the budget (its estimate, or more than 2 GiB of
  parameters and activations by plain counting), or a CLI run whose peak RSS passes 2 GiB;
* bad values accepted: a *bad* case that did not end in a ValueError / exit status 2;
* (also shown) no field: a plain ValueError, not a ParameterError naming the field.

    python benchmarks/fuzz_inputs.py                       # ~3 minutes on 2 loaded cores
    python benchmarks/fuzz_inputs.py --cases 5000 --cli-values 4 --timeout 120
    python benchmarks/fuzz_inputs.py --only cli --show 20  # list the failing CLI cases
    python benchmarks/fuzz_inputs.py --calibrate           # memory estimate vs measured RSS
"""

from __future__ import annotations

import argparse
import base64
import itertools
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter, defaultdict
from pathlib import Path

CATEGORIES = ("tracebacks", "hangs", "over-budget", "bad values accepted")
#: Also counted (not one of the failure categories above): a ValueError that is not a ParameterError
#: naming a field, whose field a caller could only find by parsing the message.
EXTRA = ("no field",)
RSS_LIMIT = 2 * 2**30
ROOT = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------- value pools
HUGE = [10**12, 2**64, 10**400]
NOT_NUMBERS = [True, False, "3", None, [], {}, [2]]
POS_INT_BAD = [0, -1, -(10**12), 2.0, 2.5, math.nan, math.inf, *HUGE, *NOT_NUMBERS]
NONNEG_INT_BAD = [-1, 2.5, math.nan, 2**64, 10**400, *NOT_NUMBERS]
NONNEG_REAL_BAD = [-1e-3, -1, math.nan, math.inf, -math.inf, 1e308, 10**400, *NOT_NUMBERS]
POS_REAL_BAD = [0, 0.0, *NONNEG_REAL_BAD]
UNIT_BAD = [1, 1.0, -0.1, 2, math.nan, math.inf, *NOT_NUMBERS]
BOOL_BAD = [1, 0, 1.0, "True", None, [True]]
WILD = [
    *POS_INT_BAD, 1, 2, 3, 7, 64, 200, 0.5, 1e-3, 1e-6, 1e3, 1e30, 5e-324, -0.0, "relu",
    "linear", "ce", "float64", "cuda", "cpu", "gd", "adam", "", " ", "64", [1, 2],
    [90, 10], (8, 8, 8, 8), [1e-3] * 4, [0.1, -0.1], "digits", "mnist1d", "sgd",
]  # fmt: skip


def choice_bad(*options: str) -> list:
    return [options[0] + "x", options[0].upper(), 1, None, True, [options[0]], ""]


def endless(kind: int):
    return [itertools.count(1), range(10**15), (i for i in itertools.count())][kind]


LIST_BAD = [[5, 0], [5, -1], [5, 5, 5], [5], [5, True], [5, 2.5], [5, math.nan], "5,5"]
LIST_BAD += [[5, 10**12]]

# field -> bad values, per validator (the semantics of each field, not the tables)
DUFM_BAD = {
    "num_classes": POS_INT_BAD + [1],
    "samples_per_class": POS_INT_BAD + LIST_BAD + ["endless0", "endless1"],
    "depth": POS_INT_BAD + [10**9],
    "width": POS_INT_BAD + [[8, 8], [8, 8, 0, 8], "64", "endless2"],
    "lambda_H": NONNEG_REAL_BAD,
    "lambda_W": NONNEG_REAL_BAD + [[1e-3], [1e-3, -1, 1e-3, 1e-3], [1e-3, math.nan] * 2],
    "activation": choice_bad("relu", "linear"),
    "loss": choice_bad("mse", "ce"),
    "init_scale": POS_REAL_BAD,
    "seed": NONNEG_INT_BAD,
    "dtype": choice_bad("float32", "float64") + ["float16"],
    "device": ["gpu0", "cuda:x", "meta", "tpu", 0, None, "", "cuda:99999"],
}
SETTINGS_BAD = {
    **DUFM_BAD,
    "lr": POS_REAL_BAD,
    "optimizer": choice_bad("gd", "adam") + ["sgd"],
    "guard": BOOL_BAD,
    "speed": [3, -1, 7, True, 1.0, "10", None, 10**12],
}
REALNET_BAD = {
    "dataset": choice_bad("digits", "mnist1d") + ["imagenet"],
    "classes": [[0], [0, 0], [0, 10], [-1, 1], [0, 1.0], [True, 1], 3, "0,1", "endless0"],
    "samples_per_class": [0, -1, 2.5, 10**12, [5, 0], [5, 5, 5], True],
    "backbone": choice_bad("mlp", "cnn") + ["vgg"],
    "backbone_width": POS_INT_BAD,
    "backbone_depth": NONNEG_INT_BAD + [10**9],
    "feature_dim": POS_INT_BAD + [1],
    "depth": POS_INT_BAD,
    "width": POS_INT_BAD,
    "lambda_H": NONNEG_REAL_BAD,
    "lambda_W": NONNEG_REAL_BAD + [[1e-3, 1e-3]],
    "weight_decay": NONNEG_REAL_BAD,
    "optimizer": choice_bad("adam", "sgd"),
    "lr": POS_REAL_BAD,
    "momentum": UNIT_BAD,
    "beta2": UNIT_BAD,
    "schedule": choice_bad("cosine", "constant"),
    "lr_min_factor": [-0.1, 1.5, math.nan, True, "0"],
    "warmup": NONNEG_INT_BAD + [10**12],
    "epochs": POS_INT_BAD,
    "batch_size": [0, -1, 2.5, True, 10**12, "full"],
    "record_every": [0, -1, 2.5, True, 10**12],
    "eval_batch_size": POS_INT_BAD,
    "standardize": BOOL_BAD,
    "download": BOOL_BAD,
    "mnist1d_samples": [0, 9, -1, 10**9, 2.5, True],
    "seed": NONNEG_INT_BAD,
    "device": ["gpu0", "cuda:x", "tpu", 0, None, ""],
    "dtype": choice_bad("float32", "float64"),
}
RECIPE_BAD = {
    "optimizer": choice_bad("gd", "adam"),
    "lr": POS_REAL_BAD,
    "momentum": UNIT_BAD,
    "momentum_boost": [1, -0.1, math.nan, True, "0.9"],
    "boost_gap": [-1, math.nan, math.inf, True, "0.1", None],
    "guard": BOOL_BAD,
    "max_retries": NONNEG_INT_BAD + [10**12],
    "blowup": [1, 0.5, -1, math.nan, math.inf, True, None, "100"],
    "restarts": [-1, 65, 10**12, True, 1.0, None],
    "race_size": [0, 17, True, 2.5, None],
    "stall_gap": [0, -1, math.nan, math.inf, True, None],
    "stall_steps": [0, -1, 2.5, True, 10**12, None],
}


def materialise(value):
    if isinstance(value, str) and value.startswith("endless"):
        return endless(int(value[-1]))
    return value


# ---------------------------------------------------------------------- in-process checks
class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.cases: Counter = Counter()
        self.examples: dict[str, list[str]] = defaultdict(list)

    def add(self, entry: str, category: str, what: str) -> None:
        self.counts[entry][category] += 1
        self.examples[entry].append(f"{category}: {what}")


def _names_a_field(exc: BaseException, fields) -> bool:
    from dnc_interactive.validation import ParameterError

    return isinstance(exc, ParameterError) and exc.field in fields and exc.field in str(exc)


def _over_budget(config) -> bool:
    from dnc_interactive import validation

    c = config
    est = validation.dufm_estimate(c.K, c.samples_per_class, c.L, c.width, c.dtype)
    b = validation.budget_for(c.device)
    widths = (*c.widths, c.K)
    elements = c.N * sum(widths) + sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    plain = elements * validation.ITEM_BYTES[c.dtype]
    return est.memory > b.memory or est.work > b.work or plain > RSS_LIMIT


def check_call(tally, entry, fn, fields, bad, what, slow, config_of=None) -> None:
    tally.cases[entry] += 1
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = fn()
    except Exception as exc:
        took = time.perf_counter() - t0
        if took > slow:
            tally.add(entry, "hangs", f"{took:.1f} s: {what}")
        if not isinstance(exc, ValueError):
            tally.add(entry, "tracebacks", f"{what} -> {type(exc).__name__}: {exc}"[:300])
        elif not _names_a_field(exc, fields):  # a ValueError, but the CLI must parse its text
            tally.add(entry, "no field", f"{what} -> {type(exc).__name__}: {exc}"[:300])
        return
    took = time.perf_counter() - t0
    if took > slow:
        tally.add(entry, "hangs", f"{took:.1f} s: {what}")
    if bad:
        tally.add(entry, "bad values accepted", what)
    config = config_of(obj) if config_of else None
    if config is not None and _over_budget(config):
        tally.add(entry, "over-budget", what)


def _short(x) -> str:
    try:
        text = repr(x)
    except Exception:
        text = f"<{type(x).__name__}>"
    return text if len(text) < 80 else text[:77] + "..."


def fuzz_validators(tally: Tally, cases: int, rng: random.Random, slow: float) -> None:
    from dnc_interactive import training
    from dnc_interactive.config import DUFMConfig
    from dnc_interactive.realnets.experiment import RealNetConfig
    from dnc_interactive.widgets import controls as ctl
    from dnc_interactive.widgets.state import Settings

    targets = [
        ("DUFMConfig", DUFMConfig, DUFM_BAD, lambda o: o),
        ("Settings", lambda **k: Settings.build(**k), SETTINGS_BAD, lambda o: o.config),
        ("RealNetConfig", RealNetConfig, REALNET_BAD, None),
        ("Recipe", training.Recipe, RECIPE_BAD, None),
    ]
    for entry, cls, bad_table, config_of in targets:
        fields = set(bad_table)
        if entry == "Settings":
            fields |= {"config"}
        for i in range(cases):
            if i % 2 == 0:  # bad: one field, one value invalid whatever the implementation
                field = rng.choice(sorted(bad_table))
                value = rng.choice(bad_table[field])
                kwargs, bad = {field: value}, True
            else:  # wild: a few fields, anything
                kwargs = {f: rng.choice(WILD) for f in rng.sample(sorted(bad_table), 3)}
                bad = False
            what = f"{entry}({', '.join(f'{k}={_short(v)}' for k, v in kwargs.items())})"
            args = {k: materialise(v) for k, v in kwargs.items()}
            check_call(
                tally,
                entry,
                lambda cls=cls, args=args: cls(**args),
                fields,
                bad,
                what,
                slow,
                config_of,
            )
    texts = ["", " ", ",", "1" * 5000, "9" * 20000, "1e999", "nan", "64, x", "٣", "1_000"]
    texts += ["".join(rng.choice("0123456789,.;e- x") for _ in range(rng.randint(0, 30)))
              for _ in range(cases)]  # fmt: skip
    for text in texts:
        for parse in (ctl.parse_ints, ctl.parse_floats):
            call = lambda parse=parse, text=text: parse("width", text)  # noqa: E731
            what = f"{parse.__name__}({_short(text)})"
            check_call(tally, "text boxes", call, {"width"}, False, what, slow)


def _b64(payload) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")


def fuzz_states(tally: Tally, cases: int, rng: random.Random, slow: float) -> None:
    from dnc_interactive.config import FIELD_NAMES
    from dnc_interactive.widgets.state import _SHORT, RUN_FIELDS, decode_state

    fields = {"state", *FIELD_NAMES, *RUN_FIELDS}
    jsonable_bad = {
        k: [v for v in vs if _jsonable(v)] for k, vs in SETTINGS_BAD.items() if k in _SHORT
    }
    reported = [{"n": 500000}, {"L": 100000000}, {"lh": 1e308}, {"d": 10**7}, {"K": 10**6}]
    for payload in reported:
        check_call(tally, "decode_state", lambda p=payload: decode_state(_b64({"v": 1, **p})),
                   fields, True, f"reported {payload}", slow, lambda s: s.config)  # fmt: skip
    for i in range(cases):
        if i % 3 == 0:
            field = rng.choice(sorted(jsonable_bad))
            payload = {"v": 1, _SHORT[field]: rng.choice(jsonable_bad[field])}
            text, bad = _b64(payload), True
            what = f"bad {payload}"
        elif i % 3 == 1:
            keys = rng.sample(sorted(_SHORT.values()), 3)
            payload = {"v": rng.choice([1, 1, 1, 2, True, "1", None]), **{
                k: rng.choice([v for v in WILD if _jsonable(v)]) for k in keys}}  # fmt: skip
            version = payload["v"]
            text, bad = _b64(payload), type(version) is not int or version != 1
            what = f"wild {payload}"
        else:
            junk = [
                "".join(rng.choice("AZaz09-_=?&/:%[]{}") for _ in range(rng.randint(0, 60))),
                "[" * rng.randint(1, 10**5),
                _b64("[" * rng.randint(1, 50_000)),
                "eyJ2IjoxfQ" * rng.randint(1, 10**4),
                f"http://[::1/?state={_b64({'v': 1})}",
                "?preset=x&state=" + _b64({"v": 1, "n": rng.choice(WILD[:12])}),
            ]
            text, bad = rng.choice(junk), False
            what = f"text {_short(text)}"
        check_call(tally, "decode_state", lambda t=text: decode_state(t), fields, bad, what,
                   slow, lambda s: s.config)  # fmt: skip


def _jsonable(v) -> bool:
    try:
        json.dumps(v)
        return not (isinstance(v, str) and v.startswith("endless"))
    except (TypeError, ValueError):
        return False


# ---------------------------------------------------------------------- the command line
TRAIN_BASE = ["--samples-per-class", "5", "--width", "8", "--depth", "2", "--steps", "5"]
TRAIN_BASE += ["--quiet", "--json"]
MODEL_FLAGS = {
    "--classes": ["1", "0", "-1", "100000000", "99999999999999999999", "x", "2.0"],
    "--samples-per-class": ["0", "5,0", "500000", "1,2,3", "x", "99999999999999999999"],
    "--depth": ["0", "-1", "100000000", "1e3"],
    "--width": ["0", "10000000", "8,8,8", "x"],
    "--lambda-h": ["-1", "nan", "inf", "1e308", "x"],
    "--lambda-w": ["-1", "1,2,3", "nan", "1e308"],
    "--activation": ["tanh", ""],
    "--loss": ["hinge"],
    "--init-scale": ["0", "-1", "inf", "1e308"],
    "--seed": ["-1", "99999999999999999999"],
    "--dtype": ["half", "float16"],
    "--device": ["cuda", "gpu0", "cuda:99999", "meta"],
}
TRAIN_FLAGS = {
    **MODEL_FLAGS,
    "--recipe": ["bogus"],
    "--lr": ["-0.1", "0", "nan", "inf", "1e308"],
    "--optimizer": ["rmsprop"],
    "--momentum": ["1", "-0.5", "nan", "1e308"],
    "--steps": ["-5", "1000000000000"],
    "--tol": ["0", "-1", "nan", "inf"],
    "--max-steps": ["0", "1000000000000"],
    "--polish": ["-1", "1000000000"],
    "--record-every": ["0", "1000000000000"],
    "--threads": ["0", "100000", "-1"],
    "--out": ["/dev/null/x.csv", "x.txt", "/", "/proc/x.csv"],
}
REALNET_BASE = ["--preset", "digits", "--epochs", "3", "--quiet", "--json", "--device", "cpu"]
REALNET_FLAGS = {
    "--dataset": ["imagenet", ""],
    "--classes": ["0", "0,0", "0,12", "-1,1", "x"],
    "--samples-per-class": ["0", "-1", "1000000000000", "5,5,5"],
    "--mnist1d-samples": ["0", "1000000000"],
    "--backbone": ["vgg"],
    "--backbone-width": ["0", "1000000000000"],
    "--backbone-depth": ["-1", "1000000000"],
    "--feature-dim": ["0", "1", "100000000"],
    "--depth": ["0", "100000000"],
    "--width": ["0", "1", "100000000"],
    "--lambda-h": ["-1", "nan", "1e308"],
    "--lambda-w": ["-1", "nan", "1,2"],
    "--weight-decay": ["-1", "inf"],
    "--optimizer": ["lbfgs"],
    "--lr": ["0", "-1", "nan", "1e308"],
    "--momentum": ["1", "nan"],
    "--beta2": ["1", "-1"],
    "--schedule": ["linear"],
    "--warmup": ["-1", "1000000000000"],
    "--epochs": ["0", "1000000000000"],
    "--batch-size": ["0", "-1", "1000000000000"],
    "--record-every": ["0", "1000000000000"],
    "--seed": ["-1", "99999999999999999999"],
    "--device": ["cuda", "tpu", "cuda:99999"],
    "--dtype": ["half"],
    "--threads": ["0", "100000"],
    "--out": ["/dev/null/x.csv", "x.txt"],
    "--preset": ["imagenet"],
}
APP_BASE = ["--dry-run", "--no-browser"]
APP_FLAGS = {
    "--port": ["0", "-1", "70000", "99999999999999999999"],
    "--server": ["flask"],
    "--state": ["!!", "eyJ2IjoxLCJuIjo1MDAwMDB9", "[[[["],
    "--preset": ["nope"],
    "--pool": ["-1", "1000000000"],
    "--cull-idle": ["-1"],
    "--token": [""],
}
GRID_OK = "steps = 5\n[grid]\nsamples_per_class = 5\nwidth = 8\ndepth = [2, 3]\n"
SWEEP_FLAGS = {
    "--steps": ["0", "-1", "1000000000000"],
    "--polish": ["-1", "1000000000"],
    "--record-every": ["0", "1000000000000"],
    "--batch-size": ["0", "1000000000000"],
    "--workers": ["0", "100000"],
    "--out": ["/dev/null/x.csv", "x.txt"],
    "--dask": ["nonsense://x"],
}
GRIDS_BAD = {
    "huge": "steps = 5\n[grid]\n"
    + "".join(f"{k} = [{', '.join(str(i) for i in range(1, 401))}]\n" for k in ("seed", "depth"))
    + "lambda = ["
    + ", ".join(["0.001"] * 400)
    + "]\n",
    "bad depth": GRID_OK.replace("depth = [2, 3]", "depth = [2, 0]"),
    "big model": GRID_OK.replace("samples_per_class = 5", "samples_per_class = 500000"),
    "lambda 1e308": GRID_OK + "lambda = 1e308\n",
    "cuda": GRID_OK + 'device = "cuda"\n',
    "unknown key": GRID_OK + "colour = 1\n",
    "not toml": "steps = = 5\n",
    "no grid": "steps = 5\n",
    "steps huge": GRID_OK.replace("steps = 5", "steps = 1000000000000"),
}


def _cli_cases(values_per_flag: int, rng: random.Random, tmp: Path) -> list:
    """(name, argv, bad) for every flag of every command."""
    import torch

    cases = []

    def add(cmd, base, table, skip=()):
        for flag, bad in table.items():
            for value in rng.sample(bad, min(values_per_flag, len(bad))):
                if flag == "--device" and value == "cuda" and torch.cuda.is_available():
                    continue
                cases.append((f"{cmd} {flag}={value}", [cmd, *base, f"{flag}={value}"], True))

    add("train", TRAIN_BASE, TRAIN_FLAGS)
    add("theory", ["--json"], MODEL_FLAGS)
    add("realnet", REALNET_BASE, REALNET_FLAGS)
    add("app", APP_BASE, APP_FLAGS)
    ok = tmp / "ok.toml"
    ok.write_text(GRID_OK)
    add("sweep", ["--grid", str(ok), "--quiet", "--json"], SWEEP_FLAGS)
    for name, text in GRIDS_BAD.items():
        path = tmp / f"{name.replace(' ', '_')}.toml"
        path.write_text(text)
        cases.append((f"sweep --grid <{name}>", ["sweep", "--grid", str(path), "--quiet"], True))
    cases.append(("sweep --grid missing", ["sweep", "--grid", str(tmp / "no.toml")], True))
    cases.append(("sweep --grid x.txt", ["sweep", "--grid", str(tmp / "x.txt")], True))
    # valid runs: they must work (no expectation of exit 2)
    cases += [
        ("train ok", ["train", *TRAIN_BASE], False),
        ("theory ok", ["theory", "--json"], False),
        ("sweep ok", ["sweep", "--grid", str(ok), "--quiet", "--json"], False),
        ("app ok", ["app", *APP_BASE], False),
        ("realnet ok", ["realnet", *REALNET_BASE], False),
    ]
    return cases


def run_child(argv: list[str], timeout: float) -> tuple[int | None, str, float, float]:
    """(exit status or None on timeout, stderr, seconds, peak RSS bytes) of one CLI run."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dnc_interactive", *argv], stdout=out, stderr=err, env=env,
            cwd=tempfile.gettempdir(),
        )  # fmt: skip
        code, rss = None, 0.0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                rss = usage.ru_maxrss * 1024
                proc.returncode = code
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        took = time.perf_counter() - t0
        err.seek(0)
        return code, err.read().decode(errors="replace"), took, rss


def fuzz_cli(tally: Tally, values_per_flag: int, rng: random.Random, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases = _cli_cases(values_per_flag, rng, Path(tmp))
        print(f"command line: {len(cases)} runs (timeout {timeout:g} s each) ...", flush=True)
        for name, argv, bad in cases:
            entry = f"cli {argv[0]}"
            tally.cases[entry] += 1
            code, err, took, rss = run_child(argv, timeout)
            if code is None:
                tally.add(entry, "hangs", f"{name} (> {timeout:g} s)")
                continue
            if code < 0 or "Traceback (most recent call last)" in err:
                last = err.strip().splitlines()[-1] if err.strip() else f"signal {-code}"
                tally.add(entry, "tracebacks", f"{name}: {last}"[:300])
            if rss > RSS_LIMIT:
                tally.add(entry, "over-budget", f"{name}: peak RSS {rss / 2**30:.2f} GiB")
            if bad and code != 2:
                tally.add(entry, "bad values accepted", f"{name} (exit {code}, {took:.1f} s)")
            elif not bad and code not in (0, 1):
                tally.add(entry, "tracebacks", f"{name}: a valid run failed: {err.strip()[-200:]}")


# ---------------------------------------------------------------------- calibration
CALIBRATION = [
    {"samples_per_class": 200000, "depth": 2, "width": 16},
    {"samples_per_class": 50, "depth": 3, "width": 3000},
    {"num_classes": 2000, "samples_per_class": 20, "depth": 2, "width": 16},
    {"samples_per_class": 500, "depth": 300, "width": 64},
    {"num_classes": 10, "samples_per_class": 5000, "depth": 4, "width": 64, "dtype": "float64"},
    {"num_classes": 12, "samples_per_class": 200, "depth": 8, "width": 128, "dtype": "float64"},
]
_CAL_CHILD = """
import json, os, resource, sys, warnings
warnings.simplefilter("ignore")
import torch
torch.set_num_threads(1)
from dnc_interactive import metrics, validation
from dnc_interactive.config import DUFMConfig
from dnc_interactive.training import Trainer
def rss():
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
kw = json.loads(sys.argv[1])
with validation.budget(memory="1TiB", work=1e18):
    cfg = DUFMConfig(**kw)
base = rss()
tr = Trainer(cfg, record_every=5, metrics_every=10, optimizer="adam")
tr.step(10)
m = tr.model
metrics.gram_frame(m); metrics.projection_frame(m, 25); metrics.singular_value_frame(m)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
est = validation.dufm_estimate(cfg.K, cfg.samples_per_class, cfg.L, cfg.width, cfg.dtype)
print(json.dumps({"measured": peak, "estimate": est.memory}))
"""


def calibrate(timeout: float) -> None:
    print("memory estimate vs measured peak RSS (trainer with Adam, a metrics record, snapshots)")
    for kw in CALIBRATION:
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _CAL_CHILD, json.dumps(kw)],
                capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"  {kw}: measured {r['measured'] / 2**20:7.0f} MiB, estimate"
                f" {r['estimate'] / 2**20:7.0f} MiB (x{r['estimate'] / max(r['measured'], 1):.2f})"
            )
        except (subprocess.TimeoutExpired, IndexError, json.JSONDecodeError) as exc:
            print(f"  {kw}: no measurement ({type(exc).__name__})")


# ---------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=600, help="in-process cases per validator")
    p.add_argument("--cli-values", type=int, default=2, help="bad values tried per CLI flag")
    p.add_argument("--timeout", type=float, default=90.0, help="seconds per CLI run")
    p.add_argument("--slow", type=float, default=1.0, help="in-process seconds that count as hang")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", choices=("validators", "states", "cli"), default=None)
    p.add_argument("--show", type=int, default=5, help="examples listed per entry point")
    p.add_argument("--calibrate", action="store_true", help="only the memory calibration")
    args = p.parse_args()
    sys.set_int_max_str_digits(0)  # the generated inputs print in full here
    if args.calibrate:
        calibrate(args.timeout * 5)
        return
    import torch

    from dnc_interactive import validation

    torch.set_num_threads(1)
    for env in (validation.MEMORY_ENV, validation.WORK_ENV, validation.GRID_ENV):
        os.environ.pop(env, None)  # the default budget (a 2 GiB Binder kernel)
    rng = random.Random(args.seed)
    tally = Tally()
    t0 = time.perf_counter()
    try:
        if args.only in (None, "validators"):
            fuzz_validators(tally, args.cases, rng, args.slow)
        if args.only in (None, "states"):
            fuzz_states(tally, args.cases, rng, args.slow)
        if args.only in (None, "cli"):
            fuzz_cli(tally, args.cli_values, rng, args.timeout)
    except Exception:  # the harness itself: say so, do not count it
        traceback.print_exc()
        sys.exit(1)
    width = max(len(e) for e in tally.cases)
    columns = (*CATEGORIES, *EXTRA)
    print(f"\n{'entry point':<{width}}  {'cases':>6}  " + "  ".join(f"{c:>9}" for c in columns))
    totals: Counter = Counter()
    for entry, n in tally.cases.items():
        counts = tally.counts[entry]
        totals.update(counts)
        cells = "  ".join(f"{counts[c]:>{max(9, len(c))}}" for c in columns)
        print(f"{entry:<{width}}  {n:>6}  {cells}")
    cells = "  ".join(f"{totals[c]:>{max(9, len(c))}}" for c in columns)
    print(f"{'total':<{width}}  {sum(tally.cases.values()):>6}  {cells}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    for entry, examples in tally.examples.items():
        if examples and args.show:
            print(f"\n{entry}:")
            for line in examples[: args.show]:
                print(f"  {line}")


if __name__ == "__main__":
    main()
