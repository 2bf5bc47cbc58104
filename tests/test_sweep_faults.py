"""Faults lose nothing (dnc_interactive.sweeps): Ctrl-C keeps every finished chunk and stops
the queued ones at once, a killed parent leaves no workers, a damaged results file is repaired
(broken tail only, with a message) or refused with the fix, two writers on one file are
refused by the lock file. Every test takes a few seconds at most on 2 cores."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import warnings
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from dnc_interactive import sweeps
from dnc_interactive.cli import main
from dnc_interactive.config import DUFMConfig
from dnc_interactive.sweeps import (
    ResultsFileError,
    ResultsLockedError,
    ResultsRepaired,
    SweepInterrupted,
    load_results,
    sweep,
)
from dnc_interactive.sweeps import run as sweep_run  # where sweep() looks run_batch up

BASE = DUFMConfig(num_classes=3, samples_per_class=4, depth=2, width=8, dtype="float64")
GRID = {"seed": [0, 1, 2, 3, 4, 5, 6, 7], "lr": [0.5]}  # 8 configs, one shape
STEPS = 20
FORK = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else None
needs_fork = pytest.mark.skipif(FORK is None, reason="needs the fork start method (POSIX)")


def run(out, **kw):
    kw.setdefault("batch_size", 2)
    return sweep(GRID, STEPS, base=BASE, out=out, progress=False, **kw)


@pytest.fixture(scope="module")
def full() -> pd.DataFrame:
    return sweep(GRID, STEPS, base=BASE, batch_size=2, progress=False)


class Spy:
    """Counts the configurations run_batch trains (patched in sweeps.run)."""

    def __init__(self, monkeypatch, before=None):
        self.items: list[str] = []
        self.calls = 0
        orig = sweeps.run_batch

        def spy(items, *args, **kwargs):
            self.calls += 1
            if before is not None:
                before(self.calls)
            out = orig(items, *args, **kwargs)
            self.items += [it["key"] for it in items]
            return out

        monkeypatch.setattr(sweep_run, "run_batch", spy)


def same_numbers(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    a = a.sort_values("key", ignore_index=True)
    b = b.sort_values("key", ignore_index=True)
    cols = ["key", "final_loss", "nc1", "label", "status", "seed", "width"]
    return all(a[c].tolist() == b[c].tolist() for c in cols)


def gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie nobody reaps counts as exited)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True
    except OSError:  # pragma: no cover - no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False


def wait_until(predicate, timeout=10.0, step=0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


GRID_TOML = """
steps = 20
batch_size = 2

[grid]
num_classes = 3
samples_per_class = 4
depth = 2
width = 8
dtype = "float64"
seed = [0, 1, 2, 3, 4, 5, 6, 7]
lr = 0.5
"""


@pytest.fixture
def grid_file(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text(GRID_TOML)
    return path


# ====================================================================== the store appends
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_each_chunk_is_appended_not_rewritten(tmp_path, monkeypatch, full, suffix):
    out = tmp_path / f"r{suffix}"
    snapshots: list = []

    def snapshot(frame):
        if suffix == ".csv":
            snapshots.append(out.read_bytes())
        else:
            snapshots.append(
                {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}
            )

    run(out, on_chunk=snapshot)
    assert len(snapshots) == 4
    if suffix == ".csv":
        final = out.read_bytes()
        assert final == snapshots[-1]
        for before, after in zip(snapshots, snapshots[1:]):
            assert len(after) > len(before) and after.startswith(before)  # only appended
        lines = final.decode().splitlines()
        assert len(lines) == 9 and lines[0].startswith("num_classes,")
    else:
        final = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.iterdir()}
        assert sorted(final) == [f"part-{i:06d}.parquet" for i in range(4)]  # one per chunk
        for seen in snapshots:
            assert all(final[name] == stamp for name, stamp in seen.items())  # never rewritten
        assert len(pd.read_parquet(out)) == 8  # the directory reads as one table
    assert same_numbers(load_results(out), full)
    # resuming with more configurations appends the new ones only
    more = {"seed": list(range(10)), "lr": [0.5]}
    spy = Spy(monkeypatch)
    df = sweep(more, STEPS, base=BASE, out=out, batch_size=2, progress=False)
    assert len(spy.items) == 2 and len(df) == 10
    assert len(load_results(out)) == 10 and load_results(out)["key"].is_unique
    if suffix == ".csv":
        assert out.read_bytes().startswith(final)


def test_a_legacy_single_parquet_file_is_read_and_continued(tmp_path, monkeypatch, full):
    out = tmp_path / "r.parquet"
    full.iloc[:5].to_parquet(out, index=False)  # what older versions wrote: one file
    assert same_numbers(load_results(out), full.iloc[:5])
    spy = Spy(monkeypatch)
    df = run(out)
    assert len(spy.items) == 3 and same_numbers(df, full)
    assert out.is_dir() and (out / "part-000000.parquet").is_file()
    assert same_numbers(load_results(out), full)


# ====================================================================== damaged files: CSV
def _cut(path: Path, nbytes: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:-nbytes])


def test_a_cut_off_csv_line_is_dropped_with_a_message(tmp_path, monkeypatch, full):
    out = tmp_path / "r.csv"
    run(out)
    _cut(out, 60)  # a crash in the middle of writing the last row
    with pytest.raises(
        ResultsFileError,
        match=r"the last line \(9\) is broken.*Fix: run the sweep again.*repair=True",
    ):
        load_results(out)
    spy = Spy(monkeypatch)
    with pytest.warns(
        ResultsRepaired, match=r"r\.csv: dropped the broken line 9 \(\d+ bytes, no end of line"
    ) as rec:
        df = run(out)
    assert "kept 7 rows" in str(rec[0].message)
    assert len(spy.items) == 1  # only the configuration of the broken line is recomputed
    assert same_numbers(df, full) and same_numbers(load_results(out), full)
    aside = [p for p in tmp_path.iterdir() if ".broken-tail-" in p.name]
    assert len(aside) == 1 and aside[0].stat().st_size > 0  # the dropped bytes are kept aside


@pytest.mark.parametrize(
    ("damage", "recomputed", "fragment"),
    [
        (lambda p: p.write_bytes(p.read_bytes() + b"\x00" * 300), 0, "unreadable|fields"),
        (lambda p: p.write_bytes(p.read_bytes()[:30]), 8, "the broken header line"),
        (lambda p: p.write_bytes(p.read_bytes() + b"8,4,2"), 0, "fields instead of"),
    ],
    ids=["zero-filled tail", "half a header", "a few bytes of a new row"],
)
def test_other_broken_csv_tails_are_repaired(
    tmp_path, monkeypatch, full, damage, recomputed, fragment
):
    out = tmp_path / "r.csv"
    run(out)
    damage(out)
    spy = Spy(monkeypatch)
    with pytest.warns(ResultsRepaired, match=fragment):
        df = run(out)
    assert len(spy.items) == recomputed
    assert same_numbers(df, full) and same_numbers(load_results(out), full)


def test_a_csv_repair_through_load_results(tmp_path, full):
    out = tmp_path / "r.csv"
    run(out)
    _cut(out, 10)
    with pytest.warns(ResultsRepaired, match="dropped the broken line 9"):
        assert len(load_results(out, repair=True)) == 7
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_results(out)) == 7  # repaired for good


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda lines: lines[:3] + [lines[3][:40]] + lines[4:], r"line 4 is broken \(\d+ fields"),
        (lambda lines: lines[:5] + ["garbage"] + lines[5:], r"line 6 is broken \(1 fields"),
        (lambda lines: lines[:2] + ["\x00" * 80] + lines[3:], "line 3 is broken"),
        (lambda lines: [lines[0], lines[1].replace(",", ";")] + lines[2:], "line 2 is broken"),
    ],
    ids=["a cut row in the middle", "a foreign line", "a zero-filled block", "a mangled row"],
)
def test_csv_damage_before_the_tail_is_refused_with_the_fix(
    tmp_path, monkeypatch, damage, fragment
):
    out = tmp_path / "r.csv"
    run(out)
    lines = out.read_text().split("\n")[:-1]
    out.write_text("\n".join(damage(lines)) + "\n")
    before = out.read_bytes()
    spy = Spy(monkeypatch)
    with pytest.raises(ResultsFileError, match=fragment) as err:
        run(out)
    msg = str(err.value)
    assert msg.startswith(f"{out}: line ") and "not a write cut off by a crash" in msg
    assert "Fix: delete line" in msg and "move the file aside" in msg
    assert spy.calls == 0 and out.read_bytes() == before  # nothing trained, nothing touched
    assert not (tmp_path / "r.csv.lock").exists()  # and the lock is released
    with pytest.raises(ResultsFileError, match=fragment):
        load_results(out, repair=True)  # not even on request


def test_a_foreign_csv_is_refused(tmp_path):
    out = tmp_path / "r.csv"
    pd.DataFrame({"key": ["0123456789abcdef"], "x": [1]}).to_csv(out, index=False)
    before = out.read_bytes()
    with pytest.raises(ResultsFileError, match="is not a sweep results file.*Fix: give the sweep"):
        run(out)
    assert out.read_bytes() == before


def test_an_older_column_layout_is_upgraded_once(tmp_path, monkeypatch, full):
    out = tmp_path / "r.csv"
    older = full.iloc[:6].drop(columns=["final_lr"]).assign(retired=1.0)  # another version
    older.to_csv(out, index=False)
    assert len(load_results(out)) == 6  # readable as it is
    spy = Spy(monkeypatch)
    with pytest.warns(
        ResultsRepaired,
        match=r"rewrote it once .*added \['final_lr'\], dropped \['retired'\]\); its 6 rows",
    ):
        df = run(out)
    assert len(spy.items) == 2  # the 6 older rows are kept and resumed from
    assert out.read_text().splitlines()[0].split(",") == sweeps._columns()
    assert same_numbers(df, full) and same_numbers(load_results(out), full)
    assert load_results(out)["final_lr"].isna().sum() == 6


# ====================================================================== damaged files: Parquet
def test_a_broken_last_parquet_part_is_set_aside(tmp_path, monkeypatch, full):
    out = tmp_path / "r.parquet"
    run(out)
    last = out / "part-000003.parquet"
    last.write_bytes(last.read_bytes()[:100])  # truncated by a crash
    (out / ".part-000004.parquet.tmp").write_bytes(b"half a write")  # a crashed writer's temp
    with pytest.raises(
        ResultsFileError, match=r"the last part\(s\) part-000003.parquet are broken"
    ):
        load_results(out)
    spy = Spy(monkeypatch)
    with pytest.warns(ResultsRepaired, match=r"set aside the broken last part\(s\) part-000003"):
        df = run(out)
    assert len(spy.items) == 2 and same_numbers(df, full)
    assert same_numbers(load_results(out), full)
    assert not (out / ".part-000004.parquet.tmp").exists()
    assert any(p.name.startswith(".part-000003.parquet.broken") for p in out.iterdir())


def test_parquet_damage_before_the_tail_is_refused(tmp_path, monkeypatch):
    out = tmp_path / "r.parquet"
    run(out)
    (out / "part-000001.parquet").write_bytes(b"PAR1 not really")
    spy = Spy(monkeypatch)
    with pytest.raises(
        ResultsFileError,
        match=r"part-000001.parquet is broken .* later parts are intact.*Fix: move that part",
    ):
        run(out)
    assert spy.calls == 0
    (out / "part-000001.parquet").unlink()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ResultsFileError, match=r"not a sweep results directory.*notes.txt"):
        run(out)
    (out / "notes.txt").unlink()
    assert len(run(out)) == 8  # the missing part's configurations are simply recomputed


def test_a_corrupt_legacy_parquet_file_is_refused(tmp_path):
    out = tmp_path / "r.parquet"
    out.write_bytes(b"definitely not parquet")
    with pytest.raises(
        ResultsFileError, match=r"not a readable sweep results file.*Fix: move it aside"
    ):
        run(out)
    assert out.read_bytes() == b"definitely not parquet"


# ====================================================================== two writers
def test_a_second_writer_is_refused_while_the_first_runs(tmp_path, monkeypatch, full):
    out = tmp_path / "r.csv"
    started, release = threading.Event(), threading.Event()

    def gate(call):
        if call == 1:
            started.set()
            assert release.wait(20)

    Spy(monkeypatch, before=gate)
    result: dict = {}
    first = threading.Thread(target=lambda: result.setdefault("df", run(out)))
    first.start()
    try:
        assert started.wait(20)
        lock = tmp_path / "r.csv.lock"
        assert lock.is_file()
        with pytest.raises(ResultsLockedError) as err:
            run(out)
        msg = str(err.value)
        assert f"pid {os.getpid()}" in msg and str(lock) in msg
        assert "two writers on one results file would mix or lose rows" in msg
        assert "Fix: wait for that sweep to finish" in msg
    finally:
        release.set()
        first.join(30)
    assert same_numbers(result["df"], full) and same_numbers(load_results(out), full)
    assert not (tmp_path / "r.csv.lock").exists()
    assert len(run(out)) == 8  # the lock went with its writer


def _hold_lock(path: str, conn) -> None:
    lock = sweeps._ResultsLock(Path(path))
    lock.acquire()
    with open(path, "a") as fh:  # a writer in the middle of a row
        fh.write("3,4,2,8,0.001")
    conn.send("ready")
    time.sleep(60)


@needs_fork
def test_a_killed_writer_leaves_no_stale_lock(tmp_path, grid_file, monkeypatch, capsys, full):
    out = tmp_path / "r.csv"
    run(out, batch_size=8)
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:6]) + "\n")  # 5 rows so far
    ours, theirs = FORK.Pipe()
    holder = FORK.Process(target=_hold_lock, args=(str(out), theirs))
    holder.start()
    try:
        assert ours.poll(20) and ours.recv() == "ready"
        with pytest.raises(ResultsLockedError, match=f"pid {holder.pid}"):
            run(out)
        # a reader does not mistake the live writer's unfinished row for damage
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert len(load_results(out)) == 5
        capsys.readouterr()
        assert main(["sweep", "--grid", str(grid_file), "--out", str(out), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("dnc-interactive sweep: error: argument --out: ")
        assert "is being written by another sweep" in err
        os.kill(holder.pid, signal.SIGKILL)  # the writer dies without any cleanup
        holder.join(10)
    finally:
        if holder.is_alive():
            holder.kill()
            holder.join(10)
    assert (tmp_path / "r.csv.lock").exists()  # left behind by the dead writer ...
    spy = Spy(monkeypatch)
    with pytest.warns(ResultsRepaired, match="dropped the broken line 7"):
        df = run(out)  # ... but its OS lock died with it; its cut row is dropped
    assert len(spy.items) == 3 and same_numbers(df, full)


# ====================================================================== Ctrl-C
def test_ctrl_c_in_a_local_sweep_keeps_the_finished_chunks(tmp_path, monkeypatch, full):
    out = tmp_path / "r.csv"

    def interrupt(call):
        if call == 3:
            raise KeyboardInterrupt  # Ctrl-C during the third chunk

    spy = Spy(monkeypatch, before=interrupt)
    with pytest.raises(SweepInterrupted) as err:
        run(out)
    assert isinstance(err.value, KeyboardInterrupt)
    assert err.value.saved == 4 and err.value.pending == 8
    assert "4 of 8 pending configurations finished and saved in" in str(err.value)
    assert "Run the same sweep again to resume" in str(err.value)
    assert spy.calls == 3  # stopped at once: no chunk after the interrupted one started
    saved = load_results(out)
    assert len(saved) == 4 and not (tmp_path / "r.csv.lock").exists()
    monkeypatch.undo()
    spy = Spy(monkeypatch)
    assert same_numbers(run(out), full) and len(spy.items) == 4


class Inline(Executor):
    """Runs every chunk when it is submitted: all are finished before the first is handled."""

    def submit(self, fn, /, *args, **kwargs):
        fut: Future = Future()
        fut.set_result(fn(*args, **kwargs))
        return fut


def test_ctrl_c_keeps_chunks_finished_elsewhere_meanwhile(tmp_path, full):
    out = tmp_path / "r.parquet"
    seen = []

    def ctrl_c(frame):
        seen.append(len(frame))
        os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT, as from the terminal

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(SweepInterrupted) as err:
            run(out, executor=Inline(), on_chunk=ctrl_c)
    finally:
        signal.signal(signal.SIGINT, old)
    assert seen == [2]  # one chunk handled when Ctrl-C came ...
    assert err.value.saved == 8  # ... but all four had finished: every one is kept
    assert same_numbers(load_results(out), full)


def test_ctrl_c_cancels_the_queued_chunks_at_once(tmp_path, monkeypatch):
    out = tmp_path / "r.csv"
    release = threading.Event()
    started = []

    def block_later_chunks(call):
        started.append(call)
        if call >= 2:
            release.wait(30)  # a long chunk still running when Ctrl-C comes

    Spy(monkeypatch, before=block_later_chunks)

    def ctrl_c(frame):
        raise KeyboardInterrupt

    pool = ThreadPoolExecutor(1)
    t0 = time.monotonic()
    try:
        with pytest.raises(SweepInterrupted) as err:
            run(out, executor=pool, on_chunk=ctrl_c)
        elapsed = time.monotonic() - t0
    finally:
        release.set()
        pool.shutdown(wait=True)
    assert elapsed < 10  # did not wait for the running chunk
    assert len(started) == 2  # chunks 3 and 4 were cancelled before they started
    assert err.value.saved == 2 and len(load_results(out)) == 2


@needs_fork
def test_ctrl_c_with_worker_processes(tmp_path, full):
    out = tmp_path / "r.csv"
    pool = sweeps.worker_pool(2, FORK)
    pids: list[int] = []

    def ctrl_c(frame):
        pids.extend(pool._processes)
        os.kill(os.getpid(), signal.SIGINT)

    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    t0 = time.monotonic()
    try:
        with pytest.raises(SweepInterrupted) as err, pool:
            sweep(GRID, 400, base=BASE, out=out, batch_size=1, progress=False,
                  executor=pool, on_chunk=ctrl_c)  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, old)
    assert time.monotonic() - t0 < 30
    assert 1 <= err.value.saved < 8
    assert len(load_results(out)) == err.value.saved
    assert pids and wait_until(lambda: all(gone(p) for p in pids), 10)  # workers ended


# ====================================================================== no orphans
def _parent(conn, plain: bool) -> None:
    pool = ProcessPoolExecutor(2, mp_context=FORK) if plain else sweeps.worker_pool(2, FORK)
    for f in [pool.submit(time.sleep, 0.3) for _ in range(2)]:
        f.result()  # both workers are up (initializer done)
    for _ in range(2):
        pool.submit(time.sleep, 60)  # busy: a plain worker would not notice anything for 60 s
    conn.send(list(pool._processes))
    time.sleep(120)


@needs_fork
@pytest.mark.parametrize("plain", [False, True], ids=["worker_pool", "plain pool"])
def test_sigkill_of_the_parent_leaves_no_orphaned_workers(plain):
    ours, theirs = FORK.Pipe()
    parent = FORK.Process(target=_parent, args=(theirs, plain))
    parent.start()
    workers: list[int] = []
    try:
        assert ours.poll(20)
        workers = ours.recv()
        assert len(workers) == 2 and not any(gone(p) for p in workers)
        os.kill(parent.pid, signal.SIGKILL)
        if not plain:
            assert wait_until(lambda: all(gone(p) for p in workers), 5), "orphaned workers"
        else:  # the contrast: a plain pool's busy workers outlive their killed parent
            time.sleep(1.0)
            assert not any(gone(p) for p in workers)
    finally:
        for p in workers:  # (the workers hold the parent's sentinel: end them before join)
            if not gone(p):
                os.kill(p, signal.SIGKILL)
        parent.join(10)
        assert not parent.is_alive()


def test_worker_pool_arguments():
    with pytest.raises(ValueError, match="workers=0"):
        sweeps.worker_pool(0)
    with pytest.raises(ValueError, match="watch_period=0"):
        sweeps.worker_pool(2, watch_period=0)


# ====================================================================== command line
def test_cli_sigterm_keeps_the_finished_chunks_and_exits_130(
    tmp_path, grid_file, monkeypatch, capsys, full
):
    out = tmp_path / "r.csv"

    def terminate(call):
        if call == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # e.g. `kill <pid>` or a scheduler's stop

    Spy(monkeypatch, before=terminate)
    assert main(["sweep", "--grid", str(grid_file), "--out", str(out), "--quiet"]) == 130
    err = capsys.readouterr().err
    assert "sweep interrupted: 2 of 8 pending configurations finished and saved" in err
    assert len(load_results(out)) == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # restored
    monkeypatch.undo()
    assert main(["sweep", "--grid", str(grid_file), "--out", str(out), "--quiet"]) == 0
    assert same_numbers(load_results(out), full)


def test_cli_reports_a_repair_and_refuses_damage(tmp_path, grid_file, capsys):
    out = tmp_path / "r.csv"
    assert main(["sweep", "--grid", str(grid_file), "--out", str(out), "--quiet"]) == 0
    _cut(out, 25)
    capsys.readouterr()
    assert main(["sweep", "--grid", str(grid_file), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"dnc-interactive sweep: {out}: dropped the broken line 9")
    lines = out.read_text().split("\n")
    lines[3] = lines[3][:50]
    out.write_text("\n".join(lines))
    assert main(["sweep", "--grid", str(grid_file), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dnc-interactive sweep: error: argument --out: {out}: line 4 is broken")
    assert "Fix:" in err and len(err.strip().splitlines()) == 1
