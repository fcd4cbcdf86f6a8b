"""Runner: planning, de-duplication, pair-order mapping, failures recorded, resume after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fakes import CALLS, FAIL_AFTER, make_workspace

from mjbench.runner import RunSpec, run_benchmark


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return make_workspace(tmp_path)


def _spec(ws: Path, **kw) -> RunSpec:
    base = dict(tasks=["mem"], judges=["bright"], out=ws / "run", include_paths=[ws], quiet=True)
    return RunSpec(**{**base, **kw})


def test_single_mode_dedups_images_and_records_failures(workspace: Path):
    result = run_benchmark(_spec(workspace))
    recs = result.records
    assert len(recs) == 12 and recs["item_id"].is_unique
    # 12 bright images (one missing) + 3 distinct dark ones: the dark ones are rated once each
    assert CALLS["score"] == 11 + 3
    broken = recs[recs.item_id == "i5"].iloc[0]
    assert broken.status == "error" and "broken.png" in broken.error and broken.pred is None
    ok = recs[recs.status == "ok"]
    assert (ok.pred == ok.label).all()
    for name in ("metrics.csv", "leaderboard.md", "leaderboard.csv", "leaderboard.json", "run.json",
                 "records.jsonl"):
        assert (workspace / "run" / name).is_file(), name
    info = json.loads((workspace / "run" / "run.json").read_text())
    assert info["seed"] == 0 and info["counts"]["records"] == 12 and "versions" in info


def test_pair_mode_maps_orders_back(workspace: Path):
    result = run_benchmark(_spec(workspace, judges=["bright-pair"]))
    recs = result.records.sort_values(["item_id", "order"])
    ok = recs[recs.status == "ok"]
    assert set(ok.order) == {"01", "10"}
    assert (ok[ok.order == "01"].pred == "0").all() and (ok[ok.order == "10"].pred == "1").all()
    assert CALLS["compare"] == 2 * 11  # the broken item asks nothing


def test_resume_after_adapter_failure_computes_only_the_missing(workspace: Path):
    run_benchmark(_spec(workspace, out=workspace / "clean"))
    total = CALLS["score"]
    CALLS.update(score=0)
    FAIL_AFTER["n"] = 6
    first = run_benchmark(_spec(workspace))
    assert (first.records.status == "error").sum() > 1  # the rest is recorded as failed, not guessed
    assert "simulated adapter failure" in " ".join(first.records.error.dropna())
    FAIL_AFTER["n"] = None
    CALLS.update(score=0)
    second = run_benchmark(_spec(workspace))
    assert CALLS["score"] == total - 6
    assert second.reused == 6 and second.records["item_id"].is_unique
    metrics_clean = (workspace / "clean" / "metrics.csv").read_text()
    assert (workspace / "run" / "metrics.csv").read_text() == metrics_clean


def test_resume_after_interrupt(workspace: Path):
    FAIL_AFTER["interrupt"] = 4
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(_spec(workspace))
    FAIL_AFTER["interrupt"] = None
    CALLS.update(score=0)
    result = run_benchmark(_spec(workspace))
    assert result.reused == 4 and CALLS["score"] == 14 - 4
    CALLS.update(score=0)
    again = run_benchmark(_spec(workspace))
    assert CALLS["score"] == 0 and again.computed == 0


def test_limit_and_unknown_names(workspace: Path):
    from mjbench.errors import UnknownNameError

    result = run_benchmark(_spec(workspace, limit=4))
    assert len(result.records) == 4
    with pytest.raises(UnknownNameError, match="did you mean 'bright'"):
        run_benchmark(_spec(workspace, judges=["brigt"]))


def test_random_order_is_seeded_and_balanced(workspace: Path):
    (workspace / "judges" / "bright-random.yaml").write_text(
        "name: bright-random\nadapter: test-brightness\nmode: pair\norders: [random]\n")
    first = run_benchmark(_spec(workspace, judges=["bright-random"]))
    ok = first.records[first.records.status == "ok"]
    assert len(ok) == 11 and set(ok.order) == {"01", "10"}  # one order per item, both occur
    again = run_benchmark(_spec(workspace, judges=["bright-random"], out=workspace / "again"))
    assert again.records.order.tolist() == first.records.order.tolist()
    other = run_benchmark(_spec(workspace, judges=["bright-random"], out=workspace / "other", seed=1))
    assert other.records.order.tolist() != first.records.order.tolist()


def test_random_order_stands_alone(workspace: Path):
    from mjbench.errors import ConfigError

    (workspace / "judges" / "bad.yaml").write_text(
        "name: bad\nadapter: test-brightness\nmode: pair\norders: [random, '01']\n")
    with pytest.raises(ConfigError, match="bad.yaml: orders: 'random' stands alone"):
        run_benchmark(_spec(workspace, judges=[str(workspace / "judges" / "bad.yaml")]))


def test_identical_images_get_one_answer_per_order(workspace: Path):
    """Two byte-identical images used to share one key for both orders: the order-10 record got the
    order-01 answer and flipped it."""
    (workspace / "tasks" / "same.yaml").write_text(
        "name: same\nperspective: quality\nsource: {type: test-memory, n: 4, identical: true}\n")
    (workspace / "judges" / "first.yaml").write_text("name: first\nadapter: test-item-first\nmode: pair\n")
    result = run_benchmark(_spec(workspace, tasks=["same"], judges=["first"]))
    recs = result.records
    assert len(recs) == 8 and set(recs.order) == {"01", "10"}
    assert (recs.pred == "0").all(), recs[["item_id", "order", "pred"]]
    assert CALLS["compare"] == 8


def test_scorers_rate_an_image_once_for_all_perspectives(workspace: Path):
    """The same (image, prompt) in two perspectives: one request for a scorer, two for a judge whose
    prompt depends on the perspective."""
    (workspace / "tasks" / "mem-align.yaml").write_text(
        "name: mem-align\nperspective: alignment\nsource: {type: test-memory, n: 12, broken_item: 5}\n")
    scorer = run_benchmark(_spec(workspace, tasks=["mem", "mem-align"]))
    assert len(scorer.records) == 24 and CALLS["score"] == 11 + 3 and scorer.computed == 14
    CALLS.update(score=0)
    vlm = run_benchmark(_spec(workspace, tasks=["mem", "mem-align"], judges=["async"], out=workspace / "v"))
    assert CALLS["score"] == 2 * (11 + 3) and (vlm.records.status == "ok").sum() == 22


def test_stored_answers_are_refreshed_without_asking(workspace: Path):
    from fakes import REFRESH

    from mjbench.store import ResultStore

    (workspace / "judges" / "fresh.yaml").write_text("name: fresh\nadapter: test-refreshing\n")
    first = run_benchmark(_spec(workspace, judges=["fresh"]))
    CALLS.update(score=0)
    REFRESH["add"] = 1000.0
    second = run_benchmark(_spec(workspace, judges=["fresh"]))
    assert CALLS["score"] == 0 and second.computed == 0
    ok = second.records.status == "ok"
    assert (second.records.score_0[ok] == first.records.score_0[ok] + 1000).all()
    store = ResultStore(workspace / "run" / "store.sqlite")
    stored = store.get_many([k for (k,) in store._conn.execute("SELECT key FROM responses")])
    store.close()
    assert len(stored) == 14 and all(r.extra.get("refreshed") and r.score > 1000 for r in stored.values())
    third = run_benchmark(_spec(workspace, judges=["fresh"]))  # refreshed once, not again
    assert third.records.score_0.equals(second.records.score_0) and CALLS["score"] == 0


def test_failures_and_task_counts_in_run_json(workspace: Path):
    result = run_benchmark(_spec(workspace))
    info = json.loads((workspace / "run" / "run.json").read_text())
    assert info["task_counts"]["mem"] == {"loaded": 12, "dropped": 0, "why": {}}
    assert info["failures"] == result.failures
    f = info["failures"]["bright"]
    assert f["requests"] == 1 and f["of"] == 15
    assert list(f["reasons"]) == ["item i5: image file not found: /nonexistent/broken.png"]
    assert info["requested"] == {"tasks": ["mem"], "judges": ["bright"], "scales": None, "limit": None, "seed": 0}


def test_adapter_exception_on_every_request_is_recorded(workspace: Path):
    (workspace / "judges" / "boom.yaml").write_text(
        "name: boom\nadapter: test-async\nmax_retries: 0\noptions: {fail: kaput}\n")
    result = run_benchmark(_spec(workspace, judges=["boom"]))
    assert len(result.records) == 12 and (result.records.status == "error").all()
    assert result.failures["boom"]["requests"] == 15
    assert result.failures["boom"]["reasons"]["RuntimeError: kaput"] == 14


def test_limit_must_be_positive(workspace: Path):
    from mjbench.errors import ConfigError

    for bad in (0, -1):
        with pytest.raises(ConfigError, match=f"--limit must be a positive number of items per task, not {bad}"):
            run_benchmark(_spec(workspace, limit=bad))
    assert not (workspace / "run").exists()


def test_task_counts_count_problems_of_a_source_that_only_lists_them():
    """A plugin source may list its problems without counting `dropped`: they are still counted as dropped."""
    from mjbench.runner import _task_counts
    from mjbench.sources.base import LoadResult

    counted = LoadResult(items=[], problems=["row 1: bad"], dropped={"bad label": 1})
    listed = LoadResult(items=[], problems=["row 1: bad", "row 2: bad"])
    assert _task_counts(counted) == {"loaded": 0, "dropped": 1, "why": {"bad label": 1}}
    assert _task_counts(listed) == {"loaded": 0, "dropped": 2, "why": {"item problems": 2}}
    assert _task_counts(LoadResult(items=[])) == {"loaded": 0, "dropped": 0, "why": {}}
