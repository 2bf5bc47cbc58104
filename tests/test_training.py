"""Trainer: gradient descent reaches the theorem's optimum; history, divergence, determinism."""

import math
import warnings

import pandas as pd
import pytest
import torch

from dnc_interactive import theory
from dnc_interactive.config import DUFMConfig
from dnc_interactive.metrics import output_scale_frame
from dnc_interactive.model import DUFM
from dnc_interactive.training import HISTORY_COLUMNS, Recipe, Trainer, relative_gap, train


@pytest.mark.parametrize(
    "kw, L_star",
    [
        # theory §7.3 rows (float64): the GD optimum equals the closed form of §2.2.
        (
            dict(samples_per_class=20, depth=3, lambda_H=2e-3, lambda_W=(5e-3, 1e-3, 2e-3)),
            0.0178483633,
        ),
        (
            dict(samples_per_class=10, depth=2, num_classes=3, lambda_H=1e-2, lambda_W=1e-2),
            0.0948134174,
        ),
        (dict(samples_per_class=20, depth=2, lambda_H=1e-3, lambda_W=1e-3), None),
    ],
)
def test_default_recipe_reaches_the_optimum(kw, L_star):
    cfg = DUFMConfig(dtype="float64", width=32, **kw)
    if L_star is not None:
        assert theory.optimal_loss(cfg) == pytest.approx(L_star, abs=1e-10)
    tr = Trainer(cfg, metrics_every=0).run(tol=1e-6, max_steps=8000)
    assert tr.status == "converged", tr.message
    assert abs(tr.loss - tr.optimal_loss) / tr.optimal_loss < 1e-6
    assert tr.max_nc1() < 1e-6
    # the per-class output scale is q* of theory §2.2 (output class means q e_c)
    q = output_scale_frame(tr.model)["q"].to_numpy()
    assert q == pytest.approx(theory.optimal_q(cfg), abs=1e-4)


def test_imbalanced_gd_matches_per_class_theory():
    # theory §7.5: n_k = [90, 10], L = 3, lambda = 3e-3 -> q = (0.98968, 0.94512), L* = 0.0289561
    cfg = DUFMConfig(
        dtype="float64", samples_per_class=(90, 10), depth=3, width=32, lambda_H=3e-3, lambda_W=3e-3
    )
    tr = Trainer(cfg, metrics_every=0).run(tol=1e-6, max_steps=8000)
    assert tr.status == "converged"
    assert tr.loss == pytest.approx(0.0289561, abs=1e-6)
    assert theory.optimal_q(cfg) == pytest.approx([0.98968, 0.94512], abs=1e-5)
    q = output_scale_frame(tr.model)["q"].to_numpy()
    assert q == pytest.approx(theory.optimal_q(cfg), abs=1e-4)


def test_minority_collapse_by_gradient_descent():
    # theory §7.5: n = [95, 5], L = 3 at 1.15 x the critical lambda: the minority class vanishes.
    cfg = DUFMConfig(
        dtype="float64",
        samples_per_class=(95, 5),
        depth=3,
        width=32,
        lambda_H=0.0104655,
        lambda_W=0.0104655,
    )
    assert theory.optimal_q(cfg)[1] == 0.0
    tr = Trainer(cfg, metrics_every=0).run(tol=1e-6, max_steps=8000, plateau=100)
    q = output_scale_frame(tr.model)["q"].to_numpy()
    assert q[0] == pytest.approx(0.96499, abs=1e-4)
    assert abs(q[1]) < 1e-4
    assert tr.loss == pytest.approx(0.0897744, abs=1e-5)


def test_zero_solution_above_the_threshold():
    # Beyond c = max_q (1-q) q^((L-1)/(L+1)) (1.41 c*_3 for L = 3) phi has no non-zero
    # critical point, so gradient descent must end at the zero solution (theory §2.2).
    crit = theory.critical_lambda(2, 10, 3)
    lam = 1.6 * crit
    cfg = DUFMConfig(
        dtype="float64", samples_per_class=10, depth=3, width=16, lambda_H=lam, lambda_W=lam
    )
    assert theory.optimal_loss(cfg) == 0.5 and theory.optimum(cfg).zero_wins[0]
    tr = Trainer(cfg, metrics_every=0).run(steps=1500)
    assert tr.loss == pytest.approx(0.5, abs=1e-6)


def test_metastable_nonzero_minimum_between_thresholds():
    # Between c*_L and 1.41 c*_L a non-zero local minimum with loss above 1/2 survives
    # (the discontinuous transition of theory §2.2): gradient descent from the default start
    # gets stuck there although the zero solution is optimal.
    crit = theory.critical_lambda(2, 10, 3)
    lam = 1.3 * crit
    cfg = DUFMConfig(
        dtype="float64", samples_per_class=10, depth=3, width=16, lambda_H=lam, lambda_W=lam
    )
    fast = Recipe.named("fast")  # the first start alone: no restart when it stalls
    tr = Trainer(cfg, fast, metrics_every=0, momentum=0.9).run(steps=1000)
    assert 0.5 < tr.loss < 0.6
    assert tr.diagnosis().code == "metastable"
    c = theory.effective_c(cfg)[0]
    q = output_scale_frame(tr.model)["q"].to_numpy()
    # Classes decouple (theory §6): each class sits either at q = 0 or at a non-zero root of
    # the stationarity equation (1 - q) q^(1/2) = c with phi(q) > 1/2.
    stuck = q > 1e-3
    assert stuck.any()
    assert (1 - q[stuck]) * q[stuck] ** 0.5 == pytest.approx(c, rel=1e-4)
    assert (theory.phi(q[stuck], c, 3) > 0.5).all()
    per_class = [theory.phi(max(float(qk), 0.0), c, 3) for qk in q]
    assert sum(per_class) / 2 == pytest.approx(tr.loss, abs=1e-6)
    # the default recipe notices the plateau above L* = 1/2 and restarts: it ends at the optimum
    robust = Trainer(cfg, metrics_every=0, momentum=0.9).run(tol=1e-4, max_steps=6000)
    assert robust.attempt >= 1
    assert robust.loss == pytest.approx(0.5, rel=1e-4)
    assert robust.diagnosis().code == "at_optimum"


def test_history_is_tidy_and_complete():
    cfg = DUFMConfig(depth=3, width=16, samples_per_class=10)
    tr = Trainer(cfg, record_every=5, metrics_every=10).step(20)
    h = tr.history
    assert list(h.columns) == list(HISTORY_COLUMNS)
    assert sorted(h["step"].unique()) == [0, 5, 10, 15, 20]
    model_rows = h[h["kind"] == "model"]
    assert set(model_rows["metric"]) >= {
        "loss",
        "fit",
        "reg",
        "reg_H",
        "optimal_loss",
        "relative_gap",
        "lr",
    }
    wide = model_rows.pivot_table(index="step", columns="metric", values="value")
    assert (wide["fit"] + wide["reg"] - wide["loss"]).abs().max() < 1e-6
    assert (wide["optimal_loss"] == theory.optimal_loss(cfg)).all()
    gap = (wide["loss"] - wide["optimal_loss"]) / wide["optimal_loss"]
    assert (gap - wide["relative_gap"]).abs().max() < 1e-9
    metric_steps = sorted(h[h["kind"] == "post"]["step"].unique())
    assert metric_steps == [0, 10, 20]
    post = h[(h["kind"] == "post") & (h["step"] == 20)]
    assert set(post["layer"]) == {1, 2, 3}
    assert {"nc1", "nc2_orth", "rank"} <= set(post["metric"])
    assert set(h[h["kind"] == "output"]["layer"]) == {4}


def test_loss_decreases_and_history_matches_model():
    tr = Trainer(DUFMConfig(dtype="float64", width=16, samples_per_class=10), metrics_every=0)
    first = tr.loss
    tr.step(200)
    assert tr.loss < first
    assert tr.loss == pytest.approx(tr.model.loss().total.item(), rel=1e-12)
    assert tr.steps == 200


def test_callbacks_receive_new_rows():
    seen = []
    tr = Trainer(
        DUFMConfig(width=8, samples_per_class=4),
        record_every=10,
        metrics_every=0,
        callbacks=[lambda t, rows: seen.append((t.steps, len(rows)))],
    )
    tr.step(30)
    assert [s for s, _ in seen] == [0, 10, 20, 30]  # the initial record too
    assert all(n == 7 for _, n in seen)


def test_determinism_same_seed_same_numbers():
    def run(seed):
        return Trainer(DUFMConfig(seed=seed, width=16), metrics_every=20).step(100).history

    pd.testing.assert_frame_equal(run(3), run(3))
    assert not run(3)["value"].equals(run(4)["value"])


def test_divergence_without_guard_stops_and_keeps_history():
    cfg = DUFMConfig(width=16, samples_per_class=10, init_scale=1.0)
    tr = Trainer(cfg, lr=1e4, guard=False, momentum=0.0, metrics_every=0)
    with pytest.warns(RuntimeWarning, match="diverged"):
        tr.step(200)
    assert tr.status == "diverged" and tr.diverged
    assert "lr=10000" in tr.message and "Lower the learning rate" in tr.message
    assert tr.steps < 200 or tr.steps == 200
    h = tr.history
    assert len(h) > 0 and h["value"][h["metric"] == "loss"].map(math.isfinite).all()
    # parameters restored to the last finite record; further steps do nothing
    assert math.isfinite(tr.model.loss().total.item())
    steps = tr.steps
    tr.step(10)
    assert tr.steps == steps


def test_divergence_guard_halves_lr_and_recovers():
    cfg = DUFMConfig(width=16, samples_per_class=10, dtype="float64")
    tr = Trainer(cfg, lr=8.0, metrics_every=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recovering runs do not warn
        tr.run(tol=1e-4, max_steps=4000)
    assert tr.retries >= 1 and tr.lr < 8.0
    assert tr.status == "converged", (tr.status, tr.loss, tr.lr)
    lrs = tr.history.query("metric == 'lr'")["value"]
    assert lrs.iloc[0] == 8.0 and lrs.min() == tr.lr


def test_set_lr_continues_and_adam_runs():
    tr = Trainer(DUFMConfig(width=16, samples_per_class=10), metrics_every=0).step(50)
    tr.set_lr(0.5)
    tr.step(10)
    assert tr.steps == 60 and tr.lr == 0.5
    adam = Trainer(
        DUFMConfig(width=16, samples_per_class=10, dtype="float64"),
        optimizer="adam",
        lr=1e-2,
        momentum=0.9,
        metrics_every=0,
    )
    start = adam.loss
    adam.step(300)
    assert adam.loss < 0.5 * start


def test_plain_gd_is_the_paper_method():
    # momentum 0 and no boost: exactly p <- p - lr * grad
    cfg = DUFMConfig(width=8, samples_per_class=3, dtype="float64", depth=2)
    tr = Trainer(cfg, lr=0.1, momentum=0.0, momentum_boost=None, metrics_every=0)
    m = tr.model
    before = [p.detach().clone() for p in m.parameters()]
    m.loss().total.backward()
    expected = [b - 0.1 * p.grad for b, p in zip(before, m.parameters())]
    tr.step(1)
    for e, p in zip(expected, m.parameters()):
        assert torch.allclose(p.detach(), e, atol=1e-14)


def test_polish_never_increases_the_loss():
    tr = Trainer(
        DUFMConfig(dtype="float64", width=16, samples_per_class=10, depth=2), metrics_every=0
    ).step(300)
    before = tr.loss
    tr.polish(50)
    assert tr.loss <= before
    assert tr.steps > 300


def test_cross_entropy_has_no_optimum_but_trains():
    tr = Trainer(
        DUFMConfig(loss="ce", width=16, samples_per_class=10), lr=0.5, momentum=0.9, metrics_every=0
    )
    assert math.isnan(tr.optimal_loss)
    start = tr.loss
    tr.run(tol=1e-3, max_steps=3000)
    assert tr.loss < start and tr.max_nc1() < 1e-3


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(lr=-1.0), "lr=-1.0 is not valid: expected a finite float > 0"),
        (dict(lr=math.inf), "lr=inf"),
        (dict(momentum=1.0), "momentum=1.0 is not valid: expected a float in [0, 1)"),
        (dict(optimizer="sgdx"), "optimizer='sgdx' is not valid"),
        (dict(record_every=0), "record_every=0 is not valid"),
        (dict(metrics_every=15), "metrics_every=15 is not valid: expected a multiple of"),
        (dict(learning_rate=1.0), "unknown Trainer option(s) ['learning_rate']"),
        (dict(max_retries=-1), "max_retries=-1"),
    ],
)
def test_bad_trainer_options(kwargs, fragment):
    with pytest.raises(ValueError) as err:
        Trainer(DUFMConfig(width=8, samples_per_class=2), **kwargs)
    assert fragment in str(err.value)


def test_bad_run_arguments():
    tr = Trainer(DUFMConfig(width=8, samples_per_class=2), metrics_every=0)
    with pytest.raises(ValueError, match="n=-1 is not valid"):
        tr.step(-1)
    with pytest.raises(ValueError, match="tol=0 is not valid"):
        tr.run(tol=0)
    with pytest.raises(ValueError, match="max_steps=0 is not valid"):
        tr.run(max_steps=0)
    with pytest.raises(ValueError, match="lr=0 is not valid"):
        tr.set_lr(0)
    with pytest.raises(ValueError, match="model="):
        Trainer("not a model")
    with pytest.raises(ValueError, match="optimizer="):
        Recipe(optimizer="lbfgs")


def test_relative_gap_and_train_helper():
    assert relative_gap(1.1, 1.0) == pytest.approx(0.1)
    assert math.isnan(relative_gap(1.0, math.nan)) and math.isnan(relative_gap(1.0, 0.0))
    tr = train(DUFMConfig(width=8, samples_per_class=4), steps=20, metrics_every=0)
    assert tr.steps == 20 and tr.status == "max_steps"
    s = tr.summary()
    assert {"loss", "optimal_loss", "relative_gap", "steps", "seconds", "status"} <= set(s)


def test_chunking_does_not_change_the_numbers():
    cfg = DUFMConfig(width=16, samples_per_class=10, dtype="float64")
    whole = Trainer(cfg, metrics_every=0).step(300)
    pieces = Trainer(cfg, metrics_every=0)
    for n in (7, 13, 1, 29, 50, 200):
        pieces.step(n)
    assert pieces.steps == whole.steps == 300
    for a, b in zip(whole.model.parameters(), pieces.model.parameters()):
        assert torch.equal(a, b)
    on_grid = pieces.history[pieces.history["step"] % 10 == 0]
    pd.testing.assert_frame_equal(
        on_grid.reset_index(drop=True), whole.history.reset_index(drop=True)
    )


def _phase_config(L, ratio, n, width, dtype="float64", seed=0):
    """A K = 2 config whose largest c_k equals ``ratio`` c*_L (as benchmarks/bench_fidelity)."""
    sizes = n if isinstance(n, tuple) else (n, n)
    # equal lambdas: c_k = N lambda / n_k^{L/(L+1)} (theory §6), largest for the smallest class
    lam = ratio * theory.c_star(L) * min(sizes) ** (L / (L + 1)) / sum(sizes)
    return DUFMConfig(
        samples_per_class=n,
        depth=L,
        width=width,
        lambda_H=lam,
        lambda_W=lam,
        dtype=dtype,
        seed=seed,
    )


@pytest.mark.parametrize(
    "L, ratio, n, width, dtype, seed",
    [
        # a fixed spread of the fidelity grid (theory §8): the narrow, deep and imbalanced
        # cells where the fast start alone stalls (dead class, merged classes, metastable)
        (5, 0.8, 50, 2, "float64", 3),
        (4, 0.8, 50, 2, "float32", 3),
        (6, 0.85, 50, 8, "float32", 3),
        (8, 0.2, 50, 2, "float64", 1),
        (3, 0.5, 50, 2, "float64", 0),
        (4, 0.2, (95, 5), 64, "float64", 3),
        (8, 1.15, 20, 16, "float64", 3),
        (2, 0.5, 50, 8, "float32", 4),
    ],
)
def test_default_recipe_reaches_the_optimum_across_the_phase_diagram(
    L, ratio, n, width, dtype, seed
):
    cfg = _phase_config(L, ratio, n, width, dtype, seed)
    c_star = theory.c_star(L)
    assert all(abs(c / c_star - 1) > theory.THRESHOLD_BAND for c in theory.effective_c(cfg))
    tr = Trainer(cfg, metrics_every=0).run(tol=1e-4, max_steps=8000)
    assert tr.status == "converged", (tr.message, tr.diagnosis().code)
    assert abs(tr.gap) < 1e-4
    assert tr.diagnosis().code == "at_optimum"


def test_the_race_follows_its_leader_and_records_the_start():
    # depth 5, width 2 at 0.8 c*: the fast start stalls with a dead class; the race wins
    cfg = _phase_config(5, 0.8, 50, 2, "float64", 3)
    fast = Trainer(cfg, Recipe.named("fast"), metrics_every=0).run(tol=1e-4, max_steps=3000)
    assert fast.gap > 0.05 and fast.diagnosis().code in ("dead_class", "merged_classes")
    tr = Trainer(cfg, metrics_every=0).run(tol=1e-4, max_steps=3000)
    assert tr.attempt >= 1 and tr.current_start == tr.recipe.starts()[tr.attempt]
    restarts = tr.history.query("metric == 'restart'")
    assert len(restarts) >= 1 and restarts["value"].iloc[-1] == tr.attempt
    # the model holds the leader: its loss is the recorded one
    with torch.no_grad():
        assert float(tr.model.loss().total) == pytest.approx(tr.loss, rel=1e-12)
    assert tr.summary()["start"] == tr.attempt


def test_the_race_is_deterministic_and_chunking_free():
    cfg = _phase_config(5, 0.8, 50, 2, "float64", 3)
    whole = Trainer(cfg, metrics_every=0).step(900)
    pieces = Trainer(cfg, metrics_every=0)
    for n in (455, 7, 138, 300):
        pieces.step(n)
    assert whole.attempt >= 1 and pieces.attempt == whole.attempt
    for a, b in zip(whole.model.parameters(), pieces.model.parameters()):
        assert torch.equal(a, b)
    again = Trainer(cfg, metrics_every=0).step(900)
    pd.testing.assert_frame_equal(again.history, whole.history)


def test_keep_best_returns_to_the_first_start_when_it_was_better():
    cfg = _phase_config(5, 0.8, 50, 2, "float64", 3)
    tr = Trainer(cfg, metrics_every=0, stall_steps=200).step(300)
    assert tr.attempt >= 1  # the race began after the stall
    first_loss = tr._best[0]
    # pretend the race did worse: the first start's state is restored and stepping goes on
    tr._best = (tr.loss - 1.0, tr._best[1], 0)
    tr.keep_best()
    assert tr.attempt == 0 and tr._race is None
    with torch.no_grad():
        assert float(tr.model.loss().total) == pytest.approx(first_loss, rel=1e-9)
    tr.step(20)
    assert tr.steps == 320 and tr._race is None


def test_converged_never_trusts_a_layer_whose_class_means_coincide():
    # H1 holds two distinct class means exactly (NC1 = 0), but W_1 <= 0 sends every sample to 0
    # after the ReLU: in that layer the class means coincide and NC1 is 0/0. The old test took
    # the largest NC1 over the layers where it is defined and called this "collapsed".
    cfg = DUFMConfig(depth=2, width=4, samples_per_class=5, dtype="float64")
    model = DUFM(cfg)
    y = model.labels
    means = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.0]], dtype=torch.float64)
    W1 = -torch.ones(4, 4, dtype=torch.float64)
    model.load_matrices(means[:, y], [W1, model.W[1].data.clone()])
    tr = Trainer(model, metrics_every=0)
    tr.optimal_loss = tr.loss  # gap 0: only the collapse test decides
    tr._last["relative_gap"] = 0.0
    assert tr.max_nc1() < 1e-12  # the old criterion would say "collapsed"
    assert not tr.converged(1e-3)


def test_train_H1_false_holds_the_features_fixed():
    cfg = DUFMConfig(depth=3, width=6, samples_per_class=4, dtype="float64")
    t = Trainer(cfg, train_H1=False, record_every=5, metrics_every=0)
    H1 = t.model.H1.detach().clone()
    t.run(40)
    assert torch.equal(t.model.H1.detach(), H1) and t.steps == 40
    assert t.history.query("metric == 'reg_H'")["value"].nunique() == 1  # still in the loss
    assert not t._stalled()  # no fallback starts: they would re-draw H1
