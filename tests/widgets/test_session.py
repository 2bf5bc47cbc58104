"""The dashboard's engine (dnc_interactive.widgets.session): playback as one asyncio task,
settings changes, divergence, bounded history."""

import asyncio
import math
import time

import pytest
import torch

from dnc_interactive.widgets import playback as playback_mod
from dnc_interactive.widgets.session import TrainingSession
from dnc_interactive.widgets.state import Settings


class Listener:
    """Collects what a chart would receive: rows per generation, in order."""

    def __init__(self, session):
        self.rows = []  # (generation, step)
        self.finals = 0
        self.resets = 0
        session.on_update.append(self.update)
        session.on_reset.append(self.reset)

    def update(self, session, rows, final):
        self.rows += [(session.generation, r[0]) for r in rows]
        self.finals += final

    def reset(self, session):
        self.resets += 1


def _loss_at(history, step):
    h = history
    return float(h[(h.step == step) & (h.metric == "loss")].value.iloc[0])


def test_run_is_blocking_deterministic_and_reports_collapse():
    a = TrainingSession().run(300)
    b = TrainingSession().run(300)
    assert a.steps == 300 and not a.playing
    assert a.history.equals(b.history)
    a.run(3000, until_collapsed=True)  # the default problem collapses in a few hundred steps
    assert a.collapsed and a.steps < 3300 and a.steps % 10 == 0
    assert abs(a.trainer.gap) < 1e-3 and a.max_nc1 < 1e-3
    text = a.status
    assert text.startswith(f"paused · step {a.steps}")
    assert "collapsed: yes" in text and "L* 0.010924" in text


def test_status_before_training_and_at_the_zero_solution():
    s = TrainingSession()
    assert s.status.startswith("ready · step 0") and "collapsed: not yet" in s.status
    z = TrainingSession(Settings.build(lambda_H=0.08, lambda_W=0.08)).run(1500)
    assert abs(z.trainer.loss - 0.5) < 5e-4
    assert "zero solution" in z.status and "past the threshold" in z.status


def test_learning_rate_change_continues_and_structural_change_resets():
    s = TrainingSession()
    listener = Listener(s)
    s.run(100)
    trainer = s.trainer
    assert s.update(lr=0.5) == "continue"
    assert s.trainer is trainer and trainer.lr == 0.5 and s.steps == 100
    assert s.update(speed=0) == "continue"
    assert s.update(lr=0.5) == "none"
    assert s.update(depth=3) == "reset"
    assert s.trainer is not trainer and s.steps == 0 and s.trainer.config.depth == 3
    assert listener.resets == 1
    with pytest.raises(ValueError, match="depth=0 is not valid"):
        s.update(depth=0)
    assert s.settings.config.depth == 3  # unchanged after a bad value
    if not torch.cuda.is_available():  # a valid config whose model cannot be built here
        with pytest.raises(ValueError, match="could not build the model"):
            s.update(device="cuda")
        assert s.settings.config.device == "cpu" and s.generation == 1
        s.run(10)
        assert s.steps == 10


def test_a_diverging_learning_rate_stops_keeps_history_and_recovers():
    s = TrainingSession(Settings.build(lr=1e4, guard=False))
    s.run(200)
    assert s.trainer.diverged and s.steps < 200
    assert len(s.history) > 0  # the history up to the last finite record is kept
    assert s.status.startswith("diverged") and "Lower the learning rate" in s.status
    assert s.play() is None  # nothing to play: reset first
    assert "press reset" in s.status
    assert s.update(lr=1.0) == "reset"  # a new lr after a divergence starts over
    s.run(50)
    assert not s.trainer.diverged and s.steps == 50


def test_long_runs_record_ever_more_coarsely(monkeypatch):
    monkeypatch.setattr(playback_mod, "RECORDS_PER_LEVEL", 10)
    s = TrainingSession(record_every=10, metrics_every=50)
    s.run(1000)  # intervals: 10 up to step 100, 20 to 200, 40 to 400, 80 to 800, then 160
    steps = sorted(s.history.query("metric == 'loss'").step.unique())
    assert s.trainer.record_every == 160 and s.trainer.metrics_every == 800
    assert len(steps) < 1000 / 10 / 2
    assert {100, 200, 400, 800} <= set(steps) and 810 not in steps
    chunked = TrainingSession(record_every=10, metrics_every=50)
    for n in (130, 70, 500, 10, 283, 7):  # aligned chunks: the same records and numbers
        chunked._advance(n, align=True, limit=1000)
    assert chunked.steps == 1000
    assert chunked.history.equals(s.history)


async def _play_for(s, seconds):
    s.play()
    await asyncio.sleep(seconds)


def test_play_pause_is_responsive_and_matches_the_blocking_run():
    s = TrainingSession(Settings.build(speed=0))

    async def main():
        await _play_for(s, 0.6)
        t0 = time.perf_counter()
        s.pause()
        await s.wait()
        stopped_after = time.perf_counter() - t0
        steps = s.steps
        await asyncio.sleep(0.2)
        return stopped_after, steps

    stopped_after, steps = asyncio.run(main())
    assert stopped_after < 0.5
    assert s.steps == steps > 0 and not s.playing
    ref = TrainingSession().run(steps)
    # chunks at full speed stay on the record grid: the same numbers as the blocking run
    assert _loss_at(s.history, steps) == _loss_at(ref.history, steps)


def test_paced_speed_sets_the_pace():
    s = TrainingSession(Settings.build(speed=5))
    asyncio.run(_play_for(s, 0.55))
    s.pause()
    # 5 steps per 0.1 s tick: about 30 steps, certainly not hundreds
    assert 5 <= s.steps <= 40


def test_rapid_changes_while_playing_leave_one_task_and_no_stale_rows():
    s = TrainingSession(Settings.build(speed=0))
    listener = Listener(s)
    tasks = []

    async def main():
        tasks.append(s.play())
        for i in range(15):
            await asyncio.sleep(0.01 * (i % 3))
            s.update(depth=2 + i % 4, seed=i % 3)
            tasks.append(s.task)
            s.update(lr=0.5 + 0.01 * i)  # continues
        await asyncio.sleep(0.3)
        alive = [t for t in tasks if not t.done()]
        s.pause()
        await s.wait()
        return alive

    alive = asyncio.run(main())
    assert alive == [s.task]  # exactly one task was still training
    assert all(t.done() for t in tasks)
    gen = s.generation
    assert gen == 15
    current = [step for g, step in listener.rows if g == gen]
    assert current and current[0] == 0 and current == sorted(current)
    assert max(current) == s.steps
    # rows of an old generation never arrive after the newer generation started
    seen_gens = [g for g, _ in listener.rows]
    assert seen_gens == sorted(seen_gens)


def test_play_without_an_event_loop_points_to_run():
    s = TrainingSession()
    with pytest.raises(RuntimeError, match="run\\(steps\\)"):
        s.play()
    assert not s.playing


def test_export_history(tmp_path):
    s = TrainingSession().run(100)
    csv = s.export_history(tmp_path / "h.csv")
    back = __import__("pandas").read_csv(csv)
    assert list(back.columns) == ["step", "layer", "kind", "metric", "value"]
    assert len(back) == len(s.history)
    pq = s.export_history(tmp_path / "sub" / "h.parquet")
    assert __import__("pandas").read_parquet(pq).equals(s.history)
    with pytest.raises(ValueError, match="expected a .csv or .parquet file"):
        s.export_history(tmp_path / "h.xlsx")
    assert math.isfinite(s.trainer.loss)
