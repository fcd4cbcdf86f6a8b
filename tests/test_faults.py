"""Faults, reproduced for real: two writers on one run directory, a busy, full or read-only store, outputs
that cannot be written, kill -9 mid-run. Each ends in a one-line message and an honest exit code, and
nothing already finished is lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fakes import CALLS, make_workspace

from mjbench import store as store_mod
from mjbench.errors import MjbenchError
from mjbench.rundir import HOLDER_NAME, OutputError, RunDirError
from mjbench.runner import RunSpec, run_benchmark
from mjbench.store import ResultStore, StoreError

FAKES = Path(__file__).with_name("fakes.py")
DEADLINE_S = 60


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    return make_workspace(tmp_path / "ws", broken_item=None)


def _spec(ws: Path, **kw) -> RunSpec:
    base = dict(tasks=["mem"], judges=["bright"], out=ws / "run", include_paths=[ws], quiet=True)
    return RunSpec(**{**base, **kw})


def _cli(ws: Path, *args: str) -> subprocess.Popen:
    """`mjbench ARGS -I ws -q` in a second process, with the fake judges registered."""
    return subprocess.Popen([sys.executable, str(FAKES), *args, "-I", str(ws), "-q"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})


def _wait_for(predicate, what: str, timeout: float = DEADLINE_S) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _stored(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=10) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:  # the table is not created yet
        return 0


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith(".staging-") or p.name.endswith(".tmp"))


# ----------------------------------------------------------------------------------------------------
# one writer per run directory


def test_second_run_on_a_busy_out_stops_at_once_naming_the_holder(ws: Path, tmp_path: Path):
    out = tmp_path / "run"
    args = ("run", "--tasks", "mem", "--judges", "slow", "--out", str(out))
    first = _cli(ws, *args)
    try:
        _wait_for(lambda: (out / HOLDER_NAME).exists() and _stored(out / "store.sqlite") > 0, "the first run")
        t0 = time.monotonic()
        second = subprocess.run([sys.executable, str(FAKES), *args, "-I", str(ws), "-q"], capture_output=True,
                                text=True, timeout=DEADLINE_S)
        took = time.monotonic() - t0
    finally:
        first_out, _ = first.communicate(timeout=DEADLINE_S)
    assert second.returncode == 2, second.stderr
    message = second.stderr.strip()
    assert message.startswith(f"error: --out {out} is in use by PID {first.pid} (") and " since " in message
    assert "fakes.py run --tasks mem --judges slow" in message and took < 15
    assert first.returncode == 0, first_out
    recs = _records(out / "records.jsonl")
    assert len(recs) == 12 and len({r["item_id"] for r in recs}) == 12 and _leftovers(out) == []
    assert not (out / HOLDER_NAME).exists()


def test_a_different_run_on_the_same_out_needs_force(ws: Path, tmp_path: Path):
    out = tmp_path / "run"
    run_benchmark(_spec(ws, out=out))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".sqlite"}
    with pytest.raises(RunDirError, match=r"holds a run of tasks mem; judges bright; limit None, seed 0; this "
                                          r"run asks for tasks mem; judges slow; .*pass --force to replace it"):
        run_benchmark(_spec(ws, out=out, judges=["slow"]))
    with pytest.raises(RunDirError, match="pass --force"):
        run_benchmark(_spec(ws, out=out, limit=3))
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".sqlite"}
    assert after == before
    CALLS.update(score=0)
    assert run_benchmark(_spec(ws, out=out)).computed == 0  # the same command resumes
    forced = run_benchmark(_spec(ws, out=out, judges=["slow"], force=True))
    assert set(forced.records.judge) == {"slow"}
    assert {r["judge"] for r in _records(out / "records.jsonl")} == {"slow"}


def test_a_run_that_fails_before_judging_leaves_out_untouched(ws: Path, tmp_path: Path):
    out = tmp_path / "run"
    run_benchmark(_spec(ws, out=out))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".sqlite"}
    (ws / "judges" / "badopt.yaml").write_text("name: badopt\nadapter: test-slow\noptions: {bogus: 1}\n")
    with pytest.raises(MjbenchError, match="badopt.yaml: options.bogus"):
        run_benchmark(_spec(ws, out=out, judges=["badopt"], force=True))
    (ws / "judges" / "nokey.yaml").write_text(
        "name: nokey\nadapter: openai\nmodel: m\napi_key_env: MJ_SURELY_UNSET_KEY\nscales: ['1-10']\n")
    with pytest.raises(MjbenchError, match="no judge could run, nothing was judged: judge nokey: set "
                                           "MJ_SURELY_UNSET_KEY"):
        run_benchmark(_spec(ws, out=out, judges=["nokey"], force=True))
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".sqlite"}
    assert after == before and _leftovers(out) == []


def test_aggregate_refuses_a_run_directory_without_force(ws: Path, tmp_path: Path):
    from fakes import invoke_cli

    out = tmp_path / "run"
    run_benchmark(_spec(ws, out=out))
    run_json = (out / "run.json").read_bytes()
    res = invoke_cli("aggregate", str(out / "records.jsonl"), "--out", str(out))
    assert res.exit_code == 2 and "aggregate would replace its outputs" in res.output
    assert (out / "run.json").read_bytes() == run_json
    res = invoke_cli("aggregate", str(out / "records.jsonl"), "--out", str(out), "--force")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "run.json").read_text())["command"] == "aggregate"
    assert len(_records(out / "records.jsonl")) == 12  # its own input is never removed


def test_two_runs_sharing_one_store_stay_safe(ws: Path, tmp_path: Path):
    store = tmp_path / "shared.sqlite"
    procs = [_cli(ws, "run", "--tasks", "mem", "--judges", "slow", "--out", str(tmp_path / n), "--store",
                  str(store)) for n in ("a", "b")]
    outs = [p.communicate(timeout=DEADLINE_S)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "locked" not in "".join(outs)
    for n in ("a", "b"):
        recs = _records(tmp_path / n / "records.jsonl")
        assert len(recs) == 12 and all(r["status"] == "ok" for r in recs)
    assert _stored(store) == 11 + 3 + 1  # 12 bright + 3 dark images, once each


# ----------------------------------------------------------------------------------------------------
# the store


@pytest.fixture
def short_busy_timeout(monkeypatch):
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_S", 0.3)


def _hold_lock(path: Path, until: threading.Event, after_rows: int = 0) -> threading.Thread:
    """A second connection that takes BEGIN EXCLUSIVE once the store holds `after_rows` answers."""
    taken = threading.Event()

    def hold() -> None:
        _wait_for(lambda: until.is_set() or _stored(path) >= after_rows, "stored answers")
        conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        conn.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, judge TEXT NOT NULL, "
                     "payload TEXT NOT NULL, created REAL NOT NULL)")
        conn.execute("BEGIN EXCLUSIVE")
        taken.set()
        until.wait(DEADLINE_S)
        conn.execute("ROLLBACK")
        conn.close()

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    t.taken = taken  # type: ignore[attr-defined]
    return t


def test_a_busy_store_is_waited_on(ws: Path, tmp_path: Path):
    store = tmp_path / "s.sqlite"
    ResultStore(store).close()
    release = threading.Event()
    holder = _hold_lock(store, release)
    holder.taken.wait(DEADLINE_S)  # type: ignore[attr-defined]
    threading.Timer(1.0, release.set).start()
    t0 = time.monotonic()
    result = run_benchmark(_spec(ws, store=store))
    assert time.monotonic() - t0 >= 0.9
    assert (result.records.status == "ok").all() and _stored(store) == 15


def test_a_store_locked_past_the_timeout_stops_the_judge(ws: Path, tmp_path: Path, short_busy_timeout):
    store = tmp_path / "s.sqlite"
    release = threading.Event()
    holder = _hold_lock(store, release, after_rows=3)
    try:
        with pytest.raises(StoreError) as err:
            run_benchmark(_spec(ws, judges=["slow"], store=store))
    finally:
        release.set()
        holder.join(DEADLINE_S)
    message = str(err.value)
    assert message.startswith(f"store {store}: cannot write (database is locked); judging stopped")
    assert err.value.exit_code == 1
    kept = _stored(store)
    assert kept >= 3 and CALLS["score"] <= kept + 1  # at most the request in hand when the write failed
    assert not (ws / "run" / "records.jsonl").exists()  # no outputs with made-up errors
    CALLS.update(score=0)
    resumed = run_benchmark(_spec(ws, judges=["slow"], store=store))
    assert CALLS["score"] == 15 - kept and resumed.reused == kept and (resumed.records.status == "ok").all()


def test_a_full_store_stops_the_judge_with_the_real_cause(ws: Path, monkeypatch):
    real_init = ResultStore.__init__

    def tiny(self, *a, **kw):  # a genuine SQLITE_FULL: the file may not grow past its current pages
        real_init(self, *a, **kw)
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        self._conn.execute(f"PRAGMA max_page_count = {pages + 1}")

    monkeypatch.setattr(ResultStore, "__init__", tiny)
    (ws / "judges" / "wordy.yaml").write_text("name: wordy\nadapter: test-async\nmax_concurrency: 2\n")
    monkeypatch.setattr("fakes.AsyncJudge.ascore", _wordy_ascore)
    with pytest.raises(StoreError) as err:
        run_benchmark(_spec(ws, judges=["wordy"]))
    message = str(err.value)
    assert "database or disk is full" in message and "rollback" not in message
    assert message.startswith(f"store {ws / 'run' / 'store.sqlite'}: cannot write")
    kept = _stored(ws / "run" / "store.sqlite")
    assert 0 < kept < 15 and err.value.exit_code == 1
    assert CALLS["score"] <= kept + 2 + 2  # in flight when the write failed: at most max_concurrency more
    monkeypatch.setattr(ResultStore, "__init__", real_init)
    CALLS.update(score=0)
    resumed = run_benchmark(_spec(ws, judges=["wordy"]))
    assert CALLS["score"] == 15 - kept and (resumed.records.status == "ok").all()


async def _wordy_ascore(self, request):
    from mjbench.responses import Response

    CALLS["score"] += 1
    return Response(score=1.0, raw_output="x" * 1500)  # a long answer fills pages quickly


def test_a_read_only_store_is_found_before_any_request(ws: Path, tmp_path: Path, monkeypatch):
    store = tmp_path / "s.sqlite"
    run_benchmark(_spec(ws, limit=4, store=store, out=tmp_path / "first"))
    real_init = ResultStore.__init__

    def read_only(self, *a, **kw):
        real_init(self, *a, **kw)
        self._conn.execute("PRAGMA query_only = 1")

    monkeypatch.setattr(ResultStore, "__init__", read_only)
    CALLS.update(score=0)
    with pytest.raises(StoreError) as err:
        run_benchmark(_spec(ws, store=store))
    assert str(err.value).startswith(f"store {store}: cannot write (attempt to write a readonly database)")
    assert err.value.exit_code == 2 and CALLS["score"] == 0  # nothing paid for and lost
    # everything already stored: a read-only store is fine for re-aggregating
    again = run_benchmark(_spec(ws, limit=4, store=store, out=tmp_path / "first"))
    assert again.computed == 0 and (again.records.status == "ok").all()


@pytest.fixture
def read_only_mount(tmp_path: Path):
    """A folder on a genuinely read-only bind mount (root ignores chmod); skipped where mount is denied."""
    folder = tmp_path / "ro"
    folder.mkdir()
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here, no read-only file system to test on: {done.stderr.strip()}")
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {done.stderr.strip()}")
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)]).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)
            pytest.fail(f"{folder} was still in use (a file left open) and had to be unmounted lazily")


def test_existing_out_on_a_read_only_file_system(ws: Path, tmp_path: Path, read_only_mount: Path):
    from fakes import invoke_cli

    subprocess.run(["umount", str(read_only_mount)], check=True)  # fill it while writable, then remount
    out = read_only_mount / "run"
    run_benchmark(_spec(ws, out=out))
    subprocess.run(["mount", "--bind", str(read_only_mount), str(read_only_mount)], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(read_only_mount)], check=True)
    res = invoke_cli("run", "--tasks", "mem", "--judges", "bright", "--out", str(out), "-I", str(ws), "-q")
    assert res.exit_code == 2, res.output
    assert res.output.strip() == f"error: --out {out}: cannot write there (Read-only file system)"
    res = invoke_cli("run", "--tasks", "mem", "--judges", "bright", "--out", str(tmp_path / "r2"),
                     "--store", str(out / "store.sqlite"), "-I", str(ws), "-q")
    assert res.exit_code == 2, res.output  # WAL needs its -shm file beside the store: cannot even read
    assert res.output.strip().startswith(f"error: store {out / 'store.sqlite'}: cannot open (")
    assert not (tmp_path / "r2" / "records.jsonl").exists()


def test_outputs_that_cannot_be_written_keep_the_answers(ws: Path, monkeypatch):
    out = ws / "run"
    run_benchmark(_spec(ws, limit=6, out=out, force=True))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".sqlite"}

    def disk_full(folder, *a, **kw):
        raise OSError(28, "No space left on device", str(folder / "metrics.csv"))

    monkeypatch.setattr("mjbench.report.write_run_outputs", disk_full)
    with pytest.raises(OutputError) as err:
        run_benchmark(_spec(ws, out=out, force=True))
    assert err.value.exit_code == 1
    assert str(err.value).startswith(f"--out {out}: cannot write outputs ([Errno 28] No space left on device")
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.suffix != ".sqlite"}
    assert after == before and _leftovers(out) == []
    assert _stored(out / "store.sqlite") == 15
    monkeypatch.undo()
    CALLS.update(score=0)
    assert run_benchmark(_spec(ws, out=out, force=True)).computed == 0


# ----------------------------------------------------------------------------------------------------
# kill -9


def test_kill_9_mid_run_loses_and_duplicates_nothing(ws: Path, tmp_path: Path):
    out = tmp_path / "run"
    args = ("run", "--tasks", "mem", "--judges", "slow", "--out", str(out))
    proc = _cli(ws, *args)
    _wait_for(lambda: _stored(out / "store.sqlite") >= 4, "answers before the kill")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=DEADLINE_S)
    kept = _stored(out / "store.sqlite")
    t0 = time.monotonic()
    resumed = subprocess.run([sys.executable, str(FAKES), *args, "-I", str(ws), "-q"], capture_output=True,
                             text=True, timeout=DEADLINE_S)
    assert resumed.returncode == 0, resumed.stderr  # the lock died with its holder
    assert f"requests computed: {15 - kept}, reused from the store: {kept};" in resumed.stdout
    assert time.monotonic() - t0 < DEADLINE_S
    recs = _records(out / "records.jsonl")
    assert len(recs) == 12 and len({r["item_id"] for r in recs}) == 12 and _leftovers(out) == []
