"""Honest numbers in the written outputs: a judge without a valid verdict is `n/a` with the reason (never a
0 % judge), accuracies built on few valid verdicts are marked, and the reports show the data and failures."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from mjbench.metrics import compute_metrics
from mjbench.records import records_frame
from mjbench.report import build_leaderboard, leaderboard_table, write_run_outputs

EVIL = "<script>alert(1)</script>"
LONG_ERROR = "openai: connection failed: [Errno 111] Connection refused by 127.0.0.1:9 " + "x" * 200


def rec(item_id: str, label: str | None = "0", pred: str | None = None, **kw) -> dict:
    return {"judge": "j", "task": "t", "perspective": "alignment", "subcategory": "object", "scale": "1-10",
            "item_id": item_id, "label": label, "score_0": None, "score_1": None, "pred": pred, "status": "ok",
            **kw}


def good(judge: str = "good", perspective: str = "alignment", n: int = 8, **kw) -> list[dict]:
    return [rec(f"{perspective}{i}", "0", "0" if i % 4 else "1", judge=judge, perspective=perspective, **kw)
            for i in range(n)]


def dead(judge: str = "gpt-4o", perspective: str = "alignment", n: int = 8, **kw) -> list[dict]:
    return [rec(f"{perspective}{i}", "0", None, judge=judge, perspective=perspective, status="error",
                error=f"item {i}: {LONG_ERROR}" if i == 0 else f"later {i}", **kw) for i in range(n)]


def write(tmp_path, rows, run_info=None, name="run"):
    frame = records_frame(rows)
    out = tmp_path / name
    write_run_outputs(out, frame, compute_metrics(frame), run_info)
    return out


def board_row(out, judge: str) -> dict:
    rows = json.loads((out / "leaderboard.json").read_text())
    return next(r for r in rows if r["judge"] == judge)


def md_row(text: str, judge: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {judge} |"))


def test_dead_judge_is_na_with_the_reason_from_its_records(tmp_path):
    out = write(tmp_path, good() + dead(), {"command": "aggregate"})  # aggregate: no judge_failures
    line = md_row((out / "leaderboard.md").read_text(), "gpt-4o")
    assert line.split(" | ")[2:5] == ["n/a", "n/a", "8 (100.0)"]  # never 0.0
    assert "failed: 8/8 records errored (first error: item 0: openai: connection failed:" in line
    first = line.split("first error: ")[1].split(")")[0]
    assert len(first) <= 80 and first.endswith("...")
    row = board_row(out, "gpt-4o")
    assert row["alignment_acc_with_tie"] is None and row["alignment_acc_without_tie"] is None
    assert row["alignment_n"] == 8 and row["alignment_invalid_rate"] == 1.0
    assert row["note"].startswith("failed: 8/8 records errored")
    csv = pd.read_csv(out / "leaderboard.csv").set_index("judge")
    assert math.isnan(csv.loc["gpt-4o", "alignment_acc_with_tie"]) and csv.loc["gpt-4o", "alignment_n"] == 8
    assert csv.loc["gpt-4o", "note"].startswith("failed: 8/8 records errored")
    assert board_row(out, "good")["note"] == "" and board_row(out, "good")["alignment_acc_with_tie"] == 0.75


def test_runner_reason_wins_and_a_judge_without_records_gets_rows(tmp_path):
    info = {"judge_failures": {"gpt-4o": "set OPENAI_API_KEY (the API key for judge gpt-4o)",
                               "claude": "set ANTHROPIC_API_KEY (the API key for judge claude)"},
            "judges": {"claude": {"scales": ["1-10", "likert-5", "0-100"]}},
            "requested": {"scales": ["1-10", "likert-5"]}}
    out = write(tmp_path, good() + dead(), info)
    text = (out / "leaderboard.md").read_text()
    assert "failed: set OPENAI_API_KEY (the API key for judge gpt-4o)" in md_row(text, "gpt-4o")
    claude = [line for line in text.splitlines() if line.startswith("| claude |")]
    assert [c.split(" | ")[1] for c in claude] == ["1-10", "likert-5"]
    assert all("n/a" in c and "failed: set ANTHROPIC_API_KEY" in c for c in claude)
    rows = json.loads((out / "leaderboard.json").read_text())
    assert [(r["judge"], r["scale"]) for r in rows] == [("claude", "1-10"), ("claude", "likert-5"),
                                                        ("good", "1-10"), ("gpt-4o", "1-10")]


def test_mixed_statuses_are_counted():
    rows = good() + [rec(str(i), "0", None, judge="k", status=s)
                     for i, s in enumerate(["refused", "parse_error", "refused", "ok"])]
    frame = records_frame(rows)
    board = build_leaderboard(compute_metrics(frame), frame).set_index("judge")
    assert board.loc["k", "note"] == ("failed: no valid verdict in 4 records (1 had no prediction, "
                                      "1 could not be parsed, 2 refused)")


def test_one_dead_perspective_is_named_and_the_others_keep_their_numbers(tmp_path):
    rows = good("mixed") + dead("mixed", "safety", n=3)
    out = write(tmp_path, rows)
    row = board_row(out, "mixed")
    assert row["alignment_acc_with_tie"] == 0.75 and row["safety_acc_with_tie"] is None
    assert row["note"].startswith("safety: failed: 3/3 records errored")
    line = md_row((out / "leaderboard.md").read_text(), "mixed")
    assert "| 75.0 | 75.0 | 8 (0.0) | n/a | n/a | 3 (100.0) |" in line


def test_without_records_the_reason_is_generic():
    res = compute_metrics(records_frame(dead()))
    assert build_leaderboard(res)["note"].tolist() == ["failed: no valid verdict"]


@pytest.mark.parametrize("invalid, marked", [(0, False), (1, False), (2, True)])
def test_accuracies_with_under_90_percent_valid_verdicts_are_marked(invalid, marked):
    rows = [rec(str(i), "0", "0", status="error" if i < invalid else "ok") for i in range(10)]
    frame = records_frame(rows)
    table = leaderboard_table(build_leaderboard(compute_metrics(frame), frame))
    cells = table.rows[0]
    assert cells[4] == f"10 ({invalid * 10:.1f})"
    assert cells[2].endswith(" \u2020") == marked and cells[3].endswith(" \u2020") == marked
    assert "\u2020 under 90 %" in table.legend


def test_pooling_counts_a_dead_task_as_unanswered_items():
    rows = good("p", task="t1") + [dict(r, task="t2") for r in dead("p", n=8)]
    frame = records_frame(rows)
    board = build_leaderboard(compute_metrics(frame), frame)
    assert board["alignment_acc_with_tie"].iloc[0] == pytest.approx(6 / 16)  # t2's 8 items count as wrong
    assert board["alignment_acc_without_tie"].iloc[0] == pytest.approx(6 / 8)
    assert board["alignment_n"].iloc[0] == 16 and board["alignment_invalid_rate"].iloc[0] == 0.5
    assert board["note"].iloc[0] == ""  # the perspective has numbers; the mark and n tell the rest
    assert leaderboard_table(board).rows[0][2] == "37.5 \u2020"


def test_reports_show_na_with_reason_data_and_failures(tmp_path):
    info = {"judge_failures": {"claude": f"weights missing for {EVIL}"},
            "task_counts": {"t": {"loaded": 10, "dropped": 2, "why": {"image missing": 1, EVIL: 1}},
                            "s": {"loaded": 3, "dropped": 0, "why": {}}},
            "tasks": {"s": {"perspective": "safety"}}}
    rows = good() + dead() + good(perspective="safety", task="s", n=3)
    out = write(tmp_path, rows, info)
    alignment = (out / "reports" / "alignment.md").read_text()
    line = md_row(alignment, "gpt-4o")
    assert "| n/a |" in line and "failed: 8/8 records errored" in line and "| 0.0 |" not in line
    assert "## Data" in alignment and "| t | 10 | 2 | &lt;script&gt;alert(1)&lt;/script&gt;: 1; image missing: 1 |" \
        in alignment
    assert "## Judge failures" in alignment and "| claude | weights missing for &lt;script&gt;" in alignment
    safety = (out / "reports" / "safety.md").read_text()
    assert "| s | 3 | 0 |  |" in safety and "| t | 10 |" not in safety
    html = (out / "reports" / "index.html").read_text()
    assert "<script" not in html and "failed: 8/8 records errored" in html
    assert "<h2>Failures per judge</h2>" in html and "weights missing for &lt;script&gt;" in html
    page = (out / "reports" / "alignment.html").read_text()
    assert "<script" not in page and "<h3>Data</h3>" in page and "<h3>Judge failures</h3>" in page


def test_no_task_counts_no_data_table(tmp_path):
    out = write(tmp_path, good(), {"command": "aggregate"})
    assert "## Data" not in (out / "reports" / "alignment.md").read_text()
    assert "## Judge failures" not in (out / "reports" / "alignment.md").read_text()


def test_pair_mode_table_shows_consistency_over_valid_pairs_and_both_invalid(tmp_path):
    rows = [rec(i, "0", "0", order=o) for i in ("x", "y") for o in ("01", "10")]
    rows += [rec(i, "0", None, status="refused", order=o) for i in ("r1", "r2") for o in ("01", "10")]
    out = write(tmp_path, rows)
    text = (out / "reports" / "alignment.md").read_text()
    assert "| consistency | n (two valid verdicts) | both orders invalid | n (both orders) |" in text
    assert "| j | t | 1-10 | ALL | 50.0 | 50.0 | 100.0 | 2 | 50.0 | 4 |" in text


@pytest.mark.parametrize("normalization, words", [("minmax", "min-max normalised per judge, task and scale"),
                                                  ("scale", "normalised by the scale's bounds")])
def test_bias_section_says_how_scores_were_normalised(tmp_path, normalization, words, monkeypatch):
    import mjbench.scales

    monkeypatch.setattr(mjbench.scales, "scale_bounds", lambda name: (0.0, 10.0))
    rows = [rec(f"b{i}", None, perspective="bias", subcategory="occupation", score_0=float(i), group="g",
                axes=["age"]) for i in range(4)]
    frame = records_frame(rows)
    out = tmp_path / normalization
    write_run_outputs(out, frame, compute_metrics(frame, bias_normalization=normalization))
    assert words in (out / "reports" / "bias.md").read_text()


def test_first_error_does_not_depend_on_record_order(tmp_path):
    rows = good() + dead()
    a = write(tmp_path, rows, name="a")
    b = write(tmp_path, rows[::-1], name="b")
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.json", "reports/alignment.md",
                 "reports/index.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_report_is_a_package_with_its_template():
    from importlib.resources import files

    import mjbench.report

    for name in ("_base.html.j2", "_macros.html.j2", "index.html.j2", "perspective.html.j2"):
        assert (files(mjbench.report) / "templates" / name).is_file(), name
    assert mjbench.report.render_pages.__module__ == "mjbench.report"
