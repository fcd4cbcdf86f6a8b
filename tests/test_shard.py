"""Sharded runs: shard selection, store merging with conflict detection, and sharded = unsharded, byte for byte."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mjbench.cli import app
from mjbench.responses import Response
from mjbench.rundir import RunDirectory
from mjbench.shard import MergeConflict, Shard, merge_stores, parse_shard
from mjbench.store import ResultStore, StoreError, content_key

runner = CliRunner()
RUN = ["--tasks", "synthetic", "--judges", "random,sharpness", "--limit", "2", "-q"]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def keys_of(store: Path) -> set[str]:
    with sqlite3.connect(store) as conn:
        return {k for (k,) in conn.execute("SELECT key FROM responses")}


# -- shard selection -------------------------------------------------------------------------------
def test_every_key_falls_in_exactly_one_shard():
    keys = [content_key("k", i) for i in range(300)]
    for n in (1, 2, 3, 7):
        owners = [[i for i in range(n) if Shard(i, n).owns(k)] for k in keys]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(1 for o in owners if o == [i]) for i in range(n)]
        assert min(sizes) > 300 / n * 0.6  # a hash split: no shard starves


@pytest.mark.parametrize("text,env,expected", [
    ("2/5", {}, Shard(2, 5)),
    (" 0 / 1 ", {}, Shard(0, 1)),
    ("auto", {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}, Shard(3, 8, 1)),
    ("auto", {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "6"}, Shard(4, 6)),
    ("auto", {"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "1"}, Shard(3, 4)),
    ("auto", {"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, Shard(1, 2)),
    # torchrun inside a SLURM allocation: the launcher that started this process wins
    ("auto", {"RANK": "0", "WORLD_SIZE": "2", "SLURM_PROCID": "5", "SLURM_NTASKS": "9"}, Shard(0, 2)),
])
def test_parse_shard(text, env, expected):
    assert parse_shard(text, env) == expected


@pytest.mark.parametrize("text,env,needle", [
    ("4/4", {}, "I must be in 0..N-1"),
    ("1/0", {}, "I must be in 0..N-1"),
    ("1of4", {}, "--shard must be I/N"),
    ("auto", {}, "no launcher environment found"),
    ("auto", {"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not a whole number"),
    ("auto", {"SLURM_ARRAY_TASK_ID": "8", "SLURM_ARRAY_TASK_COUNT": "4"}, "an array with steps"),
])
def test_bad_shard_is_one_line(text, env, needle):
    with pytest.raises(Exception, match=needle):
        parse_shard(text, env)


def test_local_rank_picks_the_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert Shard(3, 4, local_rank=3).device_for("cuda") == "cuda:1"
    assert Shard(3, 4, local_rank=1).device_for("auto") == "cuda:1"
    assert Shard(3, 4, local_rank=1).device_for("cpu") == "cpu"
    assert Shard(3, 4).device_for("cuda") == "cuda"  # no local rank given: the launcher set the devices


# -- store merging ---------------------------------------------------------------------------------
def store_with(path: Path, answers: dict[str, Response]) -> Path:
    s = ResultStore(path)
    s.put_many("j", answers.items())
    s.close()
    return path


def test_merge_keeps_identical_answers_once_and_adds_the_rest(tmp_path: Path):
    a = store_with(tmp_path / "a.sqlite", {"k1": Response(score=1.0, latency_s=0.5), "k2": Response(score=2.0)})
    b = store_with(tmp_path / "b.sqlite", {"k1": Response(score=1.0, latency_s=9.0, attempts=2),
                                           "k3": Response(status="parse_error", raw_output="?")})
    target = ResultStore(tmp_path / "t.sqlite")
    summary = merge_stores([a, b, a], target)
    assert (summary.added, summary.same) == (3, 1)
    got = target.get_many(["k1", "k2", "k3"])
    assert got["k1"].latency_s == 0.5 and got["k3"].status == "parse_error"
    assert merge_stores([a, b], target).added == 0  # merging again changes nothing
    assert merge_stores([tmp_path / "t.sqlite"], target).added == 0  # the target itself is skipped
    target.close()


def test_conflicting_answers_merge_nothing_and_name_the_stores(tmp_path: Path):
    a = store_with(tmp_path / "a.sqlite", {"k1": Response(score=1.0), "k2": Response(score=2.0),
                                           "k9": Response(score=9.0)})
    b = store_with(tmp_path / "b.sqlite", {"k1": Response(score=1.5), "k2": Response(score=2.5),
                                           "k3": Response(score=3.0)})
    c = store_with(tmp_path / "c.sqlite", {"k4": Response(score=4.0)})
    target = ResultStore(tmp_path / "t.sqlite")
    with pytest.raises(MergeConflict) as err:
        merge_stores([a, c, b], target)
    message = str(err.value)
    assert "\n" not in message and "2 request key(s) have different answers" in message
    assert str(a) in message and str(b) in message and str(c) not in message
    assert target.count() == 0  # all or nothing
    target.close()


def test_merge_refuses_a_missing_or_foreign_store(tmp_path: Path):
    target = ResultStore(tmp_path / "t.sqlite")
    with pytest.raises(StoreError, match="nope.sqlite: not found"):
        merge_stores([tmp_path / "nope.sqlite"], target)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE x (a)").connection.close()
    with pytest.raises(StoreError, match="cannot read it as an mjbench store"):
        merge_stores([other], target)
    target.close()


def test_store_rows_come_in_chunks(tmp_path: Path):
    s = ResultStore(tmp_path / "s.sqlite")
    s.put_many("j", [(f"k{i:03d}", Response(score=float(i))) for i in range(25)])
    chunks = list(s.iter_rows(chunk=10))
    assert [len(c) for c in chunks] == [10, 10, 5]
    assert [r[0] for c in chunks for r in c] == [f"k{i:03d}" for i in range(25)]
    s.close()


# -- sharded runs end to end -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "run"
    res = invoke("run", *RUN, "--out", str(out))
    assert res.exit_code == 0, res.output
    return out


def same_outputs(a: Path, b: Path) -> None:
    assert (a / "records.jsonl").read_bytes() == (b / "records.jsonl").read_bytes()
    assert (a / "metrics.csv").read_bytes() == (b / "metrics.csv").read_bytes()
    assert (a / "leaderboard.md").read_bytes() == (b / "leaderboard.md").read_bytes()


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sharded_run_equals_the_unsharded_one(full: Path, tmp_path: Path, n: int):
    out = tmp_path / "sharded"
    for i in range(n):
        res = invoke("run", *RUN, "--out", str(out), "--shard", f"{i}/{n}")
        assert res.exit_code == 0, res.output
        shard_dir = out / "shards" / f"{i}-of-{n}"
        assert sorted(p.name for p in shard_dir.iterdir() if not p.name.startswith(("store", "."))) == ["run.json"]
        assert json.loads((shard_dir / "run.json").read_text())["shard"] == f"{i}/{n}"
    assert not (out / "records.jsonl").exists()  # shards write no records or metrics
    stores = sorted(out.glob("shards/*/store.sqlite"))
    shard_keys = [keys_of(s) for s in stores]
    assert sum(map(len, shard_keys)) == len(set().union(*shard_keys)) == len(keys_of(full / "store.sqlite"))
    res = invoke("merge", *map(str, stores), *RUN, "--out", str(out))
    assert res.exit_code == 0, res.output
    same_outputs(full, out)
    info, base = json.loads((out / "run.json").read_text()), json.loads((full / "run.json").read_text())
    assert info["merged_from"]["stores"] == [str(s) for s in stores]
    assert info["counts"]["requests_computed"] == 0
    assert info["counts"]["requests_reused"] == base["counts"]["requests_computed"]
    if n == 2:  # the merged store is the run's: nothing left to judge
        again = invoke("run", *RUN, "--out", str(out))
        assert again.exit_code == 0 and "requests computed: 0," in again.output


def test_an_empty_shard_merges_cleanly(full: Path, tmp_path: Path):
    keys = keys_of(full / "store.sqlite")
    n = 2 * len(keys)
    empty = next(i for i in range(n) if not any(Shard(i, n).owns(k) for k in keys))
    out = tmp_path / "run"
    res = invoke("run", *RUN, "--out", str(out), "--shard", f"{empty}/{n}")
    assert res.exit_code == 0, res.output
    assert "requests computed: 0" in res.output
    empty_store = out / "shards" / f"{empty}-of-{n}" / "store.sqlite"
    assert keys_of(empty_store) == set()
    others = tmp_path / "others.sqlite"  # stands for the other shards' stores
    shutil.copy(full / "store.sqlite", others)
    res = invoke("merge", str(empty_store), str(others), *RUN, "--out", str(out))
    assert res.exit_code == 0, res.output
    same_outputs(full, out)


def test_a_missing_shard_is_reported_then_judged_by_a_plain_run(full: Path, tmp_path: Path):
    out = tmp_path / "run"
    assert invoke("run", *RUN, "--out", str(out), "--shard", "0/2").exit_code == 0
    res = invoke("merge", str(out / "shards/0-of-2/store.sqlite"), *RUN, "--out", str(out))
    assert res.exit_code == 1
    assert "no answer in the merged stores" in res.output
    missing = len(keys_of(full / "store.sqlite")) - len(keys_of(out / "shards/0-of-2/store.sqlite"))
    res = invoke("run", *RUN, "--out", str(out))
    assert res.exit_code == 0, res.output
    assert f"requests computed: {missing}," in res.output
    same_outputs(full, out)


def test_merge_refuses_shards_of_another_run(tmp_path: Path):
    out = tmp_path / "run"
    assert invoke("run", *RUN, "--out", str(out), "--shard", "0/1").exit_code == 0
    args = [a if a != "2" else "3" for a in RUN]  # --limit 3
    res = runner.invoke(app, ["merge", str(out / "shards/0-of-1/store.sqlite"), *args, "--out", str(out)])
    assert res.exit_code == 2
    assert "was written by shard 0/1 of another run: limit 2 (merge: 3)" in res.output.replace("\n", "")


def test_conflicting_shard_stores_are_one_line_exit_2(full: Path, tmp_path: Path):
    good = tmp_path / "good.sqlite"
    shutil.copy(full / "store.sqlite", good)
    bad = tmp_path / "bad.sqlite"
    shutil.copy(full / "store.sqlite", bad)
    with sqlite3.connect(bad) as conn:
        conn.execute("UPDATE responses SET payload = json_set(payload, '$.score', 0.123) WHERE rowid IN "
                     "(SELECT rowid FROM responses LIMIT 3)")
    res = runner.invoke(app, ["merge", str(good), str(bad), *RUN, "--out", str(tmp_path / "run")])
    assert res.exit_code == 2
    line = res.output.strip()
    assert line.startswith("error: merge: 3 request key(s) have different answers") and "Traceback" not in line
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_two_shards_on_one_out_lock_their_own_folders(tmp_path: Path):
    out = tmp_path / "run"
    with RunDirectory(out / "shards" / "0-of-2", "run"):  # shard 0 still running
        res = invoke("run", *RUN, "--out", str(out), "--shard", "1/2")
        assert res.exit_code == 0, res.output
        busy = runner.invoke(app, ["run", *RUN, "--out", str(out), "--shard", "0/2"])
        assert busy.exit_code == 2 and "is in use by PID" in busy.output


def test_shard_auto_reads_the_launcher(monkeypatch, tmp_path: Path):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    res = invoke("run", *RUN, "--out", str(tmp_path / "run"), "--shard", "auto")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "run/shards/1-of-3/run.json").read_text())["shard"] == "1/3"
