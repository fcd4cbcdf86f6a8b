"""Paired comparisons across judges and runs (mjbench.compare), checked on hand-made records."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mjbench.compare import compare_runs, compute_comparisons, scale_study
from mjbench.errors import DataError
from mjbench.metrics import compute_metrics
from mjbench.records import records_frame, write_records
from mjbench.stats import COMPARISON_COLUMNS, mcnemar_exact


def rec(judge: str, item: str, pred: str, label: str = "0", **kw) -> dict:
    return {"judge": judge, "task": "t", "perspective": "alignment", "subcategory": "object", "scale": "score",
            "item_id": item, "label": label, "score_0": None, "score_1": None, "pred": pred, "status": "ok",
            "prompt": f"prompt of {item}", **kw}


def test_comparisons_use_the_combined_verdict_of_both_orders():
    rows = []
    for i in range(10):
        rows.append(rec("a", str(i), "0"))
        # judge b: right in order 01 but wrong in order 10 on every item: combined verdict tie = wrong
        rows += [rec("b", str(i), "0", order="01"), rec("b", str(i), "1", order="10")]
    out = compute_comparisons(records_frame(rows), resamples=200)
    assert tuple(out.columns) == COMPARISON_COLUMNS
    row = out[(out["task"] == "t") & (out["subcategory"] == "object")].iloc[0]
    assert (row["judge_a"], row["judge_b"], row["diff"], row["n"]) == ("a", "b", 1.0, 10)
    assert row["p_value"] == pytest.approx(mcnemar_exact(10, 0)) == pytest.approx(2 / 1024)


def test_metrics_result_carries_comparisons_and_interval_method():
    rows = [rec(j, str(i), "0" if (i + k) % 3 else "1") for i in range(12) for k, j in enumerate("ab")]
    frame = records_frame(rows)
    res = compute_metrics(frame, resamples=200)
    pd.testing.assert_frame_equal(res.comparisons, compute_comparisons(frame, resamples=200))
    assert "cluster" in res.interval_method and res.interval_info["resamples"] == 200
    assert compute_metrics(frame, intervals=False).interval_method == "none"


def test_scale_study_by_hand():
    rows = [rec("vlm", str(i), "0", scale="1-10") for i in range(4)]  # 4/4 right at 1-10
    rows += [rec("vlm", str(i), "0" if i < 1 else "1", scale="0-100") for i in range(4)]  # 1/4 at 0-100
    rows += [rec("vlm", str(i), "0", scale="0-100", task="u") for i in range(4)]  # task u pools in: 5/8
    rows += [rec("clip", str(i), "0") for i in range(4)]  # one scale only: not in the study
    out = scale_study(records_frame(rows), resamples=200).set_index("scale")
    assert list(out.columns) == ["judge", "perspective", "acc_with_tie", "ci_low", "ci_high", "n"]
    assert set(out["judge"]) == {"vlm"}
    assert out.loc["1-10", "acc_with_tie"] == 1.0 and out.loc["1-10", "n"] == 4
    assert out.loc["0-100", "acc_with_tie"] == 5 / 8 and out.loc["0-100", "n"] == 8
    assert out.loc["1-10", "ci_high"] == 1.0 and out.loc["1-10", "ci_low"] < 1.0


def _run(folder, rows) -> None:
    folder.mkdir()
    write_records(rows, folder / "records.jsonl")
    (folder / "run.json").write_text(json.dumps({"records": "records.jsonl"}), encoding="utf-8")


def test_compare_runs_labels_colliding_judges_and_keeps_common_items(tmp_path):
    # run "before": judge j right on 30 items; run "after": the same judge name wrong on them, plus clip;
    # item 99 exists only in "after" and must not be compared
    _run(tmp_path / "before", [rec("j", str(i), "0") for i in range(30)])
    _run(tmp_path / "after", [rec("j", str(i), "1") for i in range(30)] + [rec("clip", str(i), "0")
                                                                           for i in range(31)]
         + [rec("j", "99", "1")])
    md = compare_runs([tmp_path / "before", tmp_path / "after"], tmp_path / "out", resamples=200)
    table = pd.read_csv(tmp_path / "out" / "comparisons.csv")
    assert tuple(table.columns) == COMPARISON_COLUMNS
    pooled = table[(table["task"] == "ALL")].set_index(["judge_a", "judge_b"])
    assert set(pooled.index) == {("after:j", "before:j"), ("after:j", "clip"), ("before:j", "clip")}
    row = pooled.loc[("after:j", "before:j")]
    assert row["diff"] == -1.0 and row["n"] == 30 and row["p_adjusted"] < 0.05
    assert pooled.loc[("before:j", "clip"), "diff"] == 0.0 and pooled.loc[("before:j", "clip"), "p_value"] == 1
    text = md.read_text(encoding="utf-8")
    assert "| after:j | before:j | alignment | ALL | score | -100.0 *" in text
    assert "items common to every run (matched on task, item_id and scale): 30" in text


def test_compare_runs_needs_common_items(tmp_path):
    _run(tmp_path / "a", [rec("j", "1", "0")])
    _run(tmp_path / "b", [rec("j", "2", "0")])
    with pytest.raises(DataError, match="no pairwise item in common"):
        compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
    with pytest.raises(DataError, match="at least two"):
        compare_runs([tmp_path / "a"], tmp_path / "out")
    with pytest.raises(DataError, match="no such run"):
        compare_runs([tmp_path / "a", tmp_path / "missing"], tmp_path / "out")
