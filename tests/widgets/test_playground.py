"""Playground manners: λ, the learning rate and the speed change while a run plays (the run
goes on from its weights); Rewind restarts from the same initial weights, Restart from a fresh
one; structural changes need a new model and say so."""

import asyncio

import pytest

from dnc_interactive import theory
from dnc_interactive.widgets import Dashboard
from dnc_interactive.widgets.session import TrainingSession


def _model_rows(history, metric):
    h = history[(history["kind"] == "model") & (history["metric"] == metric)]
    return h.sort_values("step", kind="stable")


def test_a_lambda_change_goes_on_from_the_current_weights():
    s = TrainingSession().run(200)
    before = s.history.copy()
    H1 = s.trainer.model.H1.detach().clone()
    assert s.update(lambda_H=5e-3, lambda_W=5e-3) == "continue"
    assert s.steps == 200 and s.objective_changes == [200]
    assert (s.trainer.model.H1 == H1).all()  # the same weights, no fresh initialisation
    assert s.trainer.optimal_loss == pytest.approx(theory.optimal_loss(s.settings.config))
    assert "λ changed at step 200" in s.status and "L* 0.054426" in s.status
    s.run(300)
    h = s.history
    assert h.iloc[: len(before)].equals(before)  # the history goes on
    optimum = _model_rows(h, "optimal_loss")
    assert optimum[optimum.step < 200].value.nunique() == 1
    jump = optimum[optimum.step == 200].value.tolist()
    assert jump[0] == pytest.approx(0.010924, rel=1e-4) and jump[-1] == pytest.approx(
        0.054426, rel=1e-4
    )
    assert h.step.max() == 500 and "restart" not in set(h.metric)
    assert s.collapsed  # and it collapses to the new optimum


def test_rewind_gives_the_same_numbers_and_restart_a_new_initialisation():
    s = TrainingSession().run(150)
    first = s.history.copy()
    s.rewind()
    assert s.steps == 0
    s.run(150)
    second = s.history.copy()
    s.rewind()
    s.run(150)
    assert first.equals(second) and second.equals(s.history)
    seed = s.settings.config.seed
    assert s.new_seed() == "reset" and s.settings.config.seed == seed + 1
    s.run(150)
    assert not s.history.equals(first)


def test_structural_changes_need_a_fresh_model_and_say_so():
    s = TrainingSession().run(50)
    assert s.update(depth=3) == "reset"
    assert s.steps == 0 and "depth changed: a fresh model" in s.status


def test_lambda_lr_and_speed_change_while_playing_without_a_restart():
    d = Dashboard(speed=20)

    async def main():
        d.play()
        await asyncio.sleep(0.5)
        trainer = d.trainer
        d.controls["lambda_H"].value = 5e-3  # tied: λ_W follows
        await asyncio.sleep(0.4)
        assert d.session.playing and d.steps > 0 and d.session.objective_changes
        changed_at = d.session.objective_changes[0]
        assert d.trainer is not trainer and d.steps > changed_at
        d.controls["lr"].value = 0.5
        d.controls["speed"].value = 50
        await asyncio.sleep(0.3)
        assert d.trainer.lr == 0.5 and d.settings.speed == 50 and d.session.playing
        d.pause()
        await d.session.wait()
        return changed_at

    changed_at = asyncio.run(main())
    steps = sorted({r[1] for r in d.chart.store.rows()})
    assert steps[0] == 0 and steps[-1] == d.steps  # the chart kept the run from step 0
    optimum = _model_rows(d.history, "optimal_loss")
    assert optimum.value.nunique() == 2 and optimum.step.min() == 0
    assert "λ changed" in d.status
    assert d.controls["reset"].description == "Rewind"
    assert "same initialisation" in d.controls["reset"].tooltip
    assert d.controls["new_seed"].description == "Restart"
    d.controls["reset"].click()
    assert d.steps == 0 and d.config.lambda_H == pytest.approx(5e-3)
    assert changed_at > 0
    d.close()
