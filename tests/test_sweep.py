"""Batched training and sweeps (dnc_interactive.sweeps): equal to single runs, resumable,
the same on every executor, bad grids rejected before any work."""

from __future__ import annotations

import dataclasses
import math
import multiprocessing as mp
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor

import pandas as pd
import pytest
import torch

from dnc_interactive import sweeps, theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.sweeps import BatchedTrainer, SweepError, sweep
from dnc_interactive.sweeps import run as sweep_run  # where sweep() looks run_batch up
from dnc_interactive.training import Recipe, Trainer

BASE = DUFMConfig(num_classes=3, samples_per_class=4, depth=3, width=8, dtype="float64")
GRID = {"depth": [2, 3], "lambda": [1e-3, 5e-3], "seed": [0, 1], "lr": [0.5]}
STEPS = 60


def same_results(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Bitwise equality of every column but the timings."""
    cols = [c for c in a.columns if c != "seconds"]
    return list(a.columns) == list(b.columns) and all(a[c].equals(b[c]) for c in cols)


# ---------------------------------------------------------------------- batched trainer
def _mixed(B=6, L=3):
    configs = [
        BASE.replace(depth=L, seed=i, lambda_H=1e-3 * (1 + i), lambda_W=2e-3 * (1 + i % 2))
        for i in range(B)
    ]
    recipes = [
        Recipe(lr=0.5),
        Recipe(lr=1.0),
        Recipe(lr=0.25, momentum=0.0, momentum_boost=None),
        Recipe(lr=0.8, momentum=0.5, boost_gap=0.5),
        Recipe(lr=0.5, momentum_boost=None),
        Recipe(lr=0.3, momentum=0.95),
    ][:B]
    return configs, recipes


def test_batched_equals_one_at_a_time_bitwise_and_trainer_to_1e10():
    configs, recipes = _mixed()
    steps = 137  # not a multiple of record_every: the last check is a partial chunk
    bt = BatchedTrainer(configs, recipes).run(steps)
    for b, (c, r) in enumerate(zip(configs, recipes, strict=True)):
        one = BatchedTrainer([c], [r]).run(steps)
        assert all(torch.equal(p[b], q[0]) for p, q in zip(bt.params, one.params, strict=True))
        assert bt.summary(b)["loss"] == one.summary(0)["loss"]
        tr = Trainer(c, r, metrics_every=0).run(steps)
        assert abs(bt.summary(b)["loss"] - tr.loss) <= 1e-10
        assert bt.momentum[b] == tr.momentum  # the boost fired (or not) at the same check
        H1, Ws = bt.matrices(b)
        assert torch.allclose(H1, tr.model.H1.detach(), atol=1e-10, rtol=0)
        assert all(
            torch.allclose(W, V.detach(), atol=1e-10, rtol=0)
            for W, V in zip(Ws, tr.model.W, strict=True)
        )
        assert bt.summary(b)["optimal_loss"] == theory.optimal_loss(c)
    assert bt.momentum[1] == 0.99 and bt.momentum[2] == 0.0  # boost on / plain GD stays plain


def test_batched_adam_linear_and_ce_match_trainer():
    for changes, recipe in (
        ({}, Recipe(optimizer="adam", lr=0.01, momentum=0.9)),
        ({"activation": "linear"}, Recipe(lr=0.5)),
        ({"loss": "ce"}, Recipe(lr=0.5)),
    ):
        configs = [BASE.replace(seed=i, lambda_H=1e-3 * (i + 1), **changes) for i in range(3)]
        bt = BatchedTrainer(configs, recipe).run(45)
        for b, c in enumerate(configs):
            tr = Trainer(c, recipe, metrics_every=0).run(45)
            assert abs(bt.summary(b)["loss"] - tr.loss) <= 1e-10, (changes, b)


def test_divergence_guard_per_configuration_as_trainer():
    """lr 60 blows up: the guard halves it (as Trainer does) while the others go on; with the
    guard off the configuration stops itself, keeps its last finite state, others unaffected."""
    configs = [BASE.replace(seed=i) for i in range(3)]
    recipes = [Recipe(lr=0.5), Recipe(lr=60.0), Recipe(lr=60.0, guard=False)]
    with pytest.warns(RuntimeWarning, match="diverged"):
        trainers = [Trainer(c, r, metrics_every=0).run(80) for c, r in zip(configs, recipes)]
    bt = BatchedTrainer(configs, recipes).run(80)
    assert bt.retries[1] >= 1 and bt.retries[1] == trainers[1].retries
    assert bt.lr[1] == trainers[1].lr
    assert bt.status == ["max_steps", "max_steps", "diverged"]
    assert "diverged" in bt.summary(2)["message"]
    for b in range(3):
        assert math.isfinite(bt.summary(b)["loss"])
        assert abs(bt.summary(b)["loss"] - trainers[b].loss) <= 1e-10
    alone = BatchedTrainer(configs[:1], recipes[:1]).run(80)
    assert torch.equal(alone.params[0][0], bt.params[0][0])


def test_batched_trainer_bad_input():
    with pytest.raises(ValueError, match="configs=\\[\\]"):
        BatchedTrainer([])
    with pytest.raises(ValueError, match="shape"):
        BatchedTrainer([BASE, BASE.replace(width=9)])
    with pytest.raises(ValueError, match="recipes has 1"):
        BatchedTrainer([BASE, BASE], [Recipe()])
    with pytest.raises(ValueError, match="record_every=0"):
        BatchedTrainer([BASE], record_every=0)
    with pytest.raises(ValueError, match="b=5"):
        BatchedTrainer([BASE]).matrices(5)


# ---------------------------------------------------------------------- grids
def test_expand_grid_product_order_and_fixed_values():
    pairs = sweeps.expand_grid({"depth": [2, 3], "lr": [0.1, 0.2], "lambda": 2e-3}, base=BASE)
    assert [(c.depth, r.lr) for c, r in pairs] == [(2, 0.1), (2, 0.2), (3, 0.1), (3, 0.2)]
    assert all(c.lambda_H == c.lambda_W == 2e-3 for c, _ in pairs)
    per_layer = sweeps.expand_grid({"depth": 2, "width": (8, 6), "seed": [0, 1]}, base=BASE)
    assert [(c.widths, c.seed) for c, _ in per_layer] == [((8, 6), 0), ((8, 6), 1)]
    listed = sweeps.expand_grid([BASE, {"seed": 3, "lr": 0.7}], base=BASE)
    assert listed[0] == (BASE, Recipe()) and listed[1][0].seed == 3 and listed[1][1].lr == 0.7


@pytest.mark.parametrize(
    ("grid", "match"),
    [
        ({"depth": []}, "'depth' has an empty list"),
        ({"detph": [2]}, "unknown sweep parameter.*detph"),
        ({"depth": [2, 0]}, "depth=0 is not valid"),
        ({"lr": [0.1, -1.0]}, "lr=-1.0 is not valid"),
        ({"lambda": [1e-3], "lambda_H": [1e-3]}, "'lambda' and 'lambda_H'"),
        ({"width": [(8, 8)]}, "width has 2 entries but depth=3"),
        ([], "grid=\\[\\]"),
        ([BASE, 3], "grid\\[1\\]=3"),
    ],
)
def test_bad_grid_fails_before_any_work(monkeypatch, grid, match):
    def boom(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(sweep_run, "run_batch", boom)
    with pytest.raises(ValueError, match=match):
        sweep(grid, steps=10, base=BASE, progress=False)


def test_bad_arguments():
    for kwargs, match in (
        ({"steps": 0}, "steps=0"),
        ({"steps": 5, "batch_size": 0}, "batch_size=0"),
        ({"steps": 5, "threads": 0}, "threads=0"),
        ({"steps": 5, "executor": "dask"}, "executor='dask'"),
        ({"steps": 5, "out": "results.txt"}, "out='results.txt'"),
    ):
        with pytest.raises(ValueError, match=match):
            sweep(GRID, base=BASE, progress=False, **kwargs)


def test_config_key_is_stable_and_sensitive():
    k = sweeps.config_key(BASE, Recipe(), 100)
    assert k == sweeps.config_key(DUFMConfig.from_json(BASE.to_json()), Recipe(), 100)
    assert len(k) == 16 and int(k, 16) >= 0
    others = {
        sweeps.config_key(BASE.replace(seed=1), Recipe(), 100),
        sweeps.config_key(BASE, Recipe(lr=0.5), 100),
        sweeps.config_key(BASE, Recipe(), 101),
        sweeps.config_key(BASE, Recipe(), 100, record_every=5),
    }
    assert k not in others and len(others) == 4


# ---------------------------------------------------------------------- sweep
def test_sweep_table_batched_equals_sequential_bitwise():
    batched = sweep(GRID, STEPS, base=BASE, progress=False)
    one_by_one = sweep(GRID, STEPS, base=BASE, batched=False, progress=False)
    small_chunks = sweep(GRID, STEPS, base=BASE, batch_size=3, progress=False)
    assert same_results(batched, one_by_one) and same_results(batched, small_chunks)
    assert len(batched) == 8 and batched["key"].is_unique
    assert list(batched.columns[:12]) == list(sweeps.FIELD_NAMES)
    assert batched[["depth", "lambda", "seed"]].values.tolist()[:3] == [
        [2, 1e-3, 0],
        [2, 1e-3, 1],
        [2, 5e-3, 0],
    ]
    # the table's numbers are those of the single-run trainer (and of the theory)
    row = batched.iloc[5]
    config = DUFMConfig.from_json(row["config_json"])
    tr = Trainer(config, Recipe(lr=0.5), metrics_every=0).run(STEPS)
    assert abs(row["final_loss"] - tr.loss) <= 1e-10
    assert row["optimal_loss"] == theory.optimal_loss(config)
    assert row["relative_gap"] == pytest.approx(
        (row["final_loss"] - row["optimal_loss"]) / row["optimal_loss"]
    )
    assert row["loss_ratio"] == pytest.approx(row["final_loss"] / row["optimal_loss"])
    assert set(batched["label"]) <= {"DNC", "trivial"} | {f"low-rank (rank {r})" for r in (1, 2)}
    assert batched["is_dnc"].dtype == bool and batched["rank"].between(0, 3).all()
    assert (batched["rank_pre"].str.count(",") == batched["depth"] - 1).all()
    # nc1_trace holds NC1' (the trace version); nc1 is its deprecated alias, same value
    assert batched["nc1_trace"].equals(batched["nc1"]) and batched["nc1_trace"].notna().all()


def test_sweep_groups_shapes_and_keeps_grid_order():
    calls = []
    orig = sweeps.run_batch

    def spy(items, *args, **kwargs):
        calls.append(len(items))
        return orig(items, *args, **kwargs)

    grid = [{"width": 8, "seed": 0}, {"width": 6, "seed": 0}, {"width": 8, "seed": 1}]
    with pytest.MonkeyPatch.context() as mp_:
        mp_.setattr(sweep_run, "run_batch", spy)
        df = sweep(grid, 20, base=BASE, progress=False)
    assert sorted(calls) == [1, 2]  # two shapes: widths 8 (two seeds) and 6
    assert df["width"].tolist() == [8, 6, 8] and df["seed"].tolist() == [0, 0, 1]


class Interrupted(Exception):
    pass


def test_resume_after_interruption(tmp_path):
    out = tmp_path / "results.parquet"
    full = sweep(GRID, STEPS, base=BASE, batch_size=2, progress=False)

    seen = []

    def interrupt_after_two(frame):
        seen.append(len(frame))
        if len(seen) == 2:
            raise Interrupted  # e.g. Ctrl-C or the machine going down mid-sweep

    with pytest.raises(Interrupted):
        sweep(GRID, STEPS, base=BASE, batch_size=2, out=out, progress=False,
              on_chunk=interrupt_after_two)  # fmt: skip
    saved = pd.read_parquet(out)
    assert len(saved) == 4  # both finished chunks were written before the interruption

    computed = []
    orig = sweeps.run_batch
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sweep_run, "run_batch",
                  lambda items, *a: computed.extend(items) or orig(items, *a))  # fmt: skip
        resumed = sweep(GRID, STEPS, base=BASE, batch_size=2, out=out, progress=False)
    assert len(computed) == 4  # only the missing configurations ran
    assert not {it["key"] for it in computed} & set(saved["key"])
    assert same_results(resumed, full)
    assert same_results(sweeps.load_results(out).sort_values("key", ignore_index=True),
                        full.sort_values("key", ignore_index=True))  # fmt: skip
    # a third call finds everything and trains nothing
    with pytest.MonkeyPatch.context() as m:
        m.setattr(sweep_run, "run_batch", lambda *a: pytest.fail("recomputed a finished config"))
        again = sweep(GRID, STEPS, base=BASE, batch_size=2, out=out, progress=False)
    assert same_results(again, full)


class DyingWorkers(Executor):
    """Runs chunks in a thread pool, except that the worker of the second chunk 'dies'."""

    def __init__(self):
        self.pool = ThreadPoolExecutor(1)
        self.count = 0

    def submit(self, fn, /, *args, **kwargs):
        self.count += 1
        if self.count == 2:
            fut: Future = Future()
            fut.set_exception(RuntimeError("worker died (simulated)"))
            return fut
        return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, **kwargs):
        self.pool.shutdown(wait=wait)


def test_dead_worker_raises_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "results.csv"
    ex = DyingWorkers()
    with pytest.raises(SweepError, match="worker died.*run again to resume"):
        sweep(GRID, STEPS, base=BASE, batch_size=2, out=out, executor=ex, progress=False)
    ex.shutdown()
    assert len(pd.read_csv(out)) == 6  # three of the four chunks made it to the file
    resumed = sweep(GRID, STEPS, base=BASE, batch_size=2, out=out, progress=False)
    full = sweep(GRID, STEPS, base=BASE, progress=False)
    cols = ["key", "final_loss", "label", "status"]
    assert resumed[cols].equals(full[cols])


def test_process_pool_executor_bitwise_equal():
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
    local = sweep(GRID, STEPS, base=BASE, progress=False)
    with ProcessPoolExecutor(2, mp_context=ctx) as ex:
        remote = sweep(GRID, STEPS, base=BASE, executor=ex, progress=False)
    assert same_results(local, remote)


def test_dask_local_cluster_bitwise_equal(tmp_path):
    distributed = pytest.importorskip(
        "dask.distributed",
        reason="dask.distributed is not installed: pip install 'dnc-interactive[cluster]'",
    )
    local = sweep(GRID, STEPS, base=BASE, progress=False)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = sweep(GRID, STEPS, base=BASE, executor=client.get_executor(), progress=False,
                       out=tmp_path / "r.parquet")  # fmt: skip
    assert same_results(local, remote)
    assert len(pd.read_parquet(tmp_path / "r.parquet")) == len(local)


# ---------------------------------------------------------------------- summaries
def test_dnc_probability_with_wilson_interval():
    frame = pd.DataFrame(
        {
            "width": [8] * 10 + [16] * 4 + [32] * 3,
            "is_dnc": [True] * 5 + [False] * 5 + [True] * 4 + [False, True, True],
            "status": ["max_steps"] * 16 + ["diverged"],
        }
    )
    p = sweeps.dnc_probability(frame, "width")
    assert p["runs"].tolist() == [10, 4, 2] and p["dnc"].tolist() == [5, 4, 1]
    assert p["p_dnc"].tolist() == [0.5, 1.0, 0.5]
    # Wilson 95 % interval for 5/10: 0.5 +- 0.2634 (textbook value)
    assert p.loc[0, "p_low"] == pytest.approx(0.2366, abs=1e-4)
    assert p.loc[0, "p_high"] == pytest.approx(0.7634, abs=1e-4)
    assert p.loc[1, "p_high"] == 1.0 and p.loc[1, "p_low"] == pytest.approx(0.5101, abs=1e-4)
    with pytest.raises(ValueError, match="lacks column"):
        sweeps.dnc_probability(frame.drop(columns="is_dnc"))


def test_rank_summary():
    frame = pd.DataFrame(
        {
            "lambda": [1e-3, 1e-3, 4e-3, 4e-3],
            "rank": [10, 6, 5, 5],
            "loss_ratio": [1.0, 0.9, 0.8, 0.85],
            "status": ["max_steps"] * 4,
        }
    )
    s = sweeps.rank_summary(frame)
    assert s["rank_mean"].tolist() == [8.0, 5.0] and s["rank_min"].tolist() == [6, 5]
    assert s["loss_ratio_mean"].tolist() == pytest.approx([0.95, 0.825])


def test_theory_frame():
    grid = {"num_classes": [2, 10], "depth": [3, 4], "lambda": [4e-3, 0.2], "seed": [0, 1]}
    base = DUFMConfig(samples_per_class=5, width=30, dtype="float64")
    t = sweeps.theory_frame(grid, base)
    assert len(t) == 16
    for _, row in t.iterrows():
        c = DUFMConfig.from_dict(
            {
                **base.to_dict(),
                "num_classes": row.num_classes,
                "depth": row.depth,
                "lambda_H": row["lambda"],
                "lambda_W": row["lambda"],
            }  # fmt: skip
        )
        assert row.optimal_loss == theory.optimal_loss(c)
        if row.num_classes == 2:
            assert math.isnan(row.srg_ratio)
    k10 = t[(t.num_classes == 10) & (t["lambda"] == 4e-3)]
    assert k10.set_index("depth")["predicted"].to_dict() == {3: "DNC", 4: "low-rank"}
    assert (t[t["lambda"] == 0.2]["predicted"] == "trivial").all()


def test_polish_after_gradient_descent():
    grid = {"seed": [0, 1], "lr": [0.5]}
    plain = sweep(grid, STEPS, base=BASE, progress=False)
    polished = sweep(grid, STEPS, base=BASE, polish=15, progress=False)
    assert (polished["gd_loss"] == plain["final_loss"]).all()
    assert (plain["gd_loss"] == plain["final_loss"]).all() and (plain["polish"] == 0).all()
    assert (polished["final_loss"] <= polished["gd_loss"]).all()
    assert (polished["final_loss"] < 0.999 * polished["gd_loss"]).any()
    assert not set(polished["key"]) & set(plain["key"])
    with pytest.raises(ValueError, match="polish=-1"):
        sweep(grid, STEPS, base=BASE, polish=-1, progress=False)


def test_sweeps_use_the_robust_recipe_restarts():
    # depth 4 at c/c* = 0.8: the fast start ends at the rank-one region; the race of fallback
    # starts reaches L* with a structured start (start 1 is the small one, for the zero optimum)
    lam = 0.8 * theory.critical_lambda(2, 50, 4)
    cfg = DUFMConfig(depth=4, width=64, lambda_H=lam, lambda_W=lam, dtype="float64")
    items = [
        {"config": cfg.to_dict(), "recipe": dataclasses.asdict(r), "key": str(i)}
        for i, r in enumerate((Recipe(), Recipe.named("fast")))
    ]
    robust, fast = sweeps.run_batch(items, 1500)
    assert fast["start"] == 0 and fast["relative_gap"] > 0.05
    assert robust["start"] >= 2 and abs(robust["relative_gap"]) < 1e-3


def test_a_batch_never_holds_more_than_the_memory_budget(monkeypatch):
    # every configuration fits alone; 12 of them in one batch would need 12x the memory
    from dnc_interactive import validation
    from dnc_interactive.sweeps import run as sweep_run

    cfg = DUFMConfig(depth=2, width=8, samples_per_class=5)
    one = validation.dufm_estimate(2, (5, 5), 2, (8, 8)).memory
    pairs = [(cfg.replace(seed=s), Recipe()) for s in range(12)]
    with validation.budget(memory=5 * one):
        chunks = sweep_run._chunks(list(range(12)), pairs, batched=True, size=None)
    assert max(len(c) for c in chunks) == 5 and sum(len(c) for c in chunks) == 12
    chunks = sweep_run._chunks(list(range(12)), pairs, batched=True, size=None)
    assert [len(c) for c in chunks] == [12]  # the default budget holds them all


def test_old_results_without_nc1_trace_read_with_it(tmp_path):
    from dnc_interactive.sweeps.columns import _tidy

    new = sweep({"seed": [0, 1]}, 20, base=BASE, progress=False)
    old = new.drop(columns=["nc1_trace"])  # a file written before the column was added
    again = _tidy(old)
    assert again["nc1_trace"].equals(new["nc1_trace"]) and again["nc1"].equals(new["nc1"])
