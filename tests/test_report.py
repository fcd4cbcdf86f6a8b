"""Leaderboard shape, written run outputs, HTML escaping and byte-for-byte determinism."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from mjbench.metrics import compute_metrics
from mjbench.records import records_frame
from mjbench.report import build_leaderboard, write_run_outputs

EVIL = "<script>alert(1)</script>"


def rec(item_id: str, label: str | None, pred: str | None = None, **kw) -> dict:
    return {"judge": "j", "task": "t", "perspective": "alignment", "subcategory": "object", "scale": "score",
            "item_id": item_id, "label": label, "score_0": None, "score_1": None, "pred": pred, "status": "ok",
            **kw}


def sample_records() -> list[dict]:
    rows = []
    for judge in ("clip", "vlm"):
        for scale in ("1-5", "score"):
            rows += [rec(f"a{i}", "0", "0" if i < 3 else "1", judge=judge, scale=scale,
                         subcategory=EVIL if i % 2 else "count|size") for i in range(4)]
            rows += [rec("s0", "0", "0", judge=judge, scale=scale, perspective="safety", subcategory="nsfw",
                         order="01"),
                     rec("s0", "0", "tie", judge=judge, scale=scale, perspective="safety", subcategory="nsfw",
                         order="10"),
                     rec("s1", "0", None, judge=judge, scale=scale, perspective="safety", subcategory="nsfw",
                         status="refused")]
            rows += [rec(f"b{i}", None, judge=judge, scale=scale, perspective="bias", subcategory="occupation",
                         score_0=float(i % 3), group=("doctor", EVIL)[i % 2], axes=["age", "gender"][: 1 + i % 2])
                     for i in range(6)]
    return rows


def test_leaderboard_shape_and_values():
    res = compute_metrics(records_frame(sample_records()), intervals=False)
    board = build_leaderboard(res)
    assert list(board.columns) == ["judge", "scale", "alignment_acc_with_tie", "alignment_acc_without_tie",
                                   "alignment_n", "alignment_invalid_rate", "safety_acc_with_tie",
                                   "safety_acc_without_tie", "safety_n", "safety_invalid_rate", "bias_acc",
                                   "bias_nds", "bias_ges", "bias_n", "bias_invalid_rate", "note"]
    assert list(zip(board["judge"], board["scale"], strict=True)) == [
        ("clip", "1-5"), ("clip", "score"), ("vlm", "1-5"), ("vlm", "score")]
    assert (board["alignment_acc_with_tie"] == 0.75).all()
    # safety: s0 orders disagree -> combined tie; s1 refused: 0 correct of 2, no decided item
    assert (board["safety_acc_with_tie"] == 0.0).all() and board["safety_acc_without_tie"].isna().all()
    assert (board["safety_n"] == 2).all() and (board["safety_invalid_rate"] == 0.5).all()
    assert (board["alignment_n"] == 4).all() and (board["alignment_invalid_rate"] == 0.0).all()
    assert (board["bias_n"] == 6).all() and (board["note"] == "").all()
    assert board[["bias_acc", "bias_nds", "bias_ges"]].notna().all().all()


def test_leaderboard_pools_tasks_item_weighted():
    rows = [rec(f"x{i}", "0", "0" if i < 3 else "1", task="t1") for i in range(4)]
    rows += [rec(f"y{i}", "0", "0" if i < 1 else "1", task="t2") for i in range(2)]
    board = build_leaderboard(compute_metrics(records_frame(rows), intervals=False))
    assert len(board) == 1
    assert board["alignment_acc_with_tie"].iloc[0] == pytest.approx(4 / 6)  # (3 + 1) / (4 + 2)


def test_empty_metrics_give_an_empty_leaderboard(tmp_path):
    res = compute_metrics(records_frame([]))
    board = build_leaderboard(res)
    assert list(board.columns) == ["judge", "scale", "note"] and board.empty
    write_run_outputs(tmp_path, records_frame([]), res, {})
    assert json.loads((tmp_path / "leaderboard.json").read_text()) == []
    assert (tmp_path / "reports" / "index.html").is_file()


def _write(tmp_path, name, rows, run_info=None):
    frame = records_frame(rows)
    res = compute_metrics(frame)
    out = tmp_path / name
    write_run_outputs(out, frame, res, run_info if run_info is not None else {"seed": 0, "wall_time_s": 1.5})
    return out, res


def test_run_outputs_written(tmp_path):
    out, res = _write(tmp_path, "run", sample_records())
    for name in ("metrics.csv", "leaderboard.md", "leaderboard.csv", "leaderboard.json",
                 "reports/alignment.md", "reports/safety.md", "reports/bias.md", "reports/index.html"):
        assert (out / name).is_file(), name
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns)[:8] == ["judge", "task", "perspective", "subcategory", "scale", "metric",
                                         "value", "n"]
    assert len(metrics) == len(res.metrics)
    board = (out / "leaderboard.md").read_text()
    # safety: one of the two items refused -> 50 % invalid, marked; its 0.0 is a real answer (a tie)
    assert "| clip | 1-5 | 75.0 | 75.0 | 4 (0.0) | 0.0 \u2020 | n/a | 2 (50.0) |" in board
    assert "\u2020 under 90 % of the items have a valid verdict" in board
    rows = json.loads((out / "leaderboard.json").read_text())
    assert rows[0]["safety_acc_without_tie"] is None and rows[0]["alignment_acc_with_tie"] == 0.75
    alignment = (out / "reports" / "alignment.md").read_text()
    assert "count\\|size" in alignment  # `|` escaped in a cell
    assert "&lt;script&gt;" in alignment and EVIL not in alignment
    safety = (out / "reports" / "safety.md").read_text()
    assert "## Pair mode" in safety and "| refused |" in safety
    assert "| clip | t | 1-5 | 2 | 0 | 1 | 0 | 3 |" in safety  # records by status
    bias = (out / "reports" / "bias.md").read_text()
    assert "## Bias per axis" in bias and "## Bias per group" in bias


def test_html_escapes_every_data_string(tmp_path):
    rows = sample_records() + [rec("e", "0", "0", judge=EVIL, task=EVIL)]
    out, _ = _write(tmp_path, "run", rows, {"seed": 0, "note": EVIL})
    html = (out / "reports" / "index.html").read_text()
    assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<table>" in html and html.startswith("<!DOCTYPE html>")


def test_perspective_names_cannot_escape_reports_folder(tmp_path):
    out, _ = _write(tmp_path, "run", [rec("a", "0", "0", perspective="../../evil")])
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.md"))
    assert written == ["leaderboard.md", "reports/evil.md"]
    assert not (tmp_path / "evil.md").exists()


def test_warnings_go_to_their_perspective_report(tmp_path):
    rows = [rec(str(i), "0", None, score_0=1.0, score_1=1.0) for i in range(3)]  # constant judge
    rows += [rec("d", "0", "0", judge="k"), rec("d", "0", "0", judge="k")]  # duplicate: a general warning
    out, res = _write(tmp_path, "run", rows)
    assert any("every valid verdict is a tie" in w for w in res.warnings)
    assert "every valid verdict is a tie" in (out / "reports" / "alignment.md").read_text()
    assert "duplicate" in (out / "leaderboard.md").read_text()
    assert "duplicate" in (out / "reports" / "index.html").read_text()


def test_outputs_are_deterministic(tmp_path):
    rows = sample_records()
    shuffled = [rows[i] for i in pd.Series(range(len(rows))).sample(frac=1.0, random_state=3)]
    a, _ = _write(tmp_path, "a", rows)
    b, _ = _write(tmp_path, "b", shuffled)
    files = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert {"leaderboard.tex", "reports/index.html", "reports/alignment.html", "reports/safety.html",
            "reports/bias.html", "reports/plots/overview.svg", "reports/plots/bias-groups.svg"} <= set(files)
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_nan_is_never_written_as_a_number(tmp_path):
    out, res = _write(tmp_path, "run", [rec("a", "0", None, status="error")])
    assert math.isnan(res.metrics.set_index("metric").loc["acc_without_tie", "value"].iloc[0])
    assert "NaN" not in (out / "leaderboard.json").read_text()
    assert "n/a" in (out / "reports" / "alignment.md").read_text()


def test_leaderboard_shows_gold_label_metrics_only_where_a_perspective_has_them():
    from mjbench.report import leaderboard_table, leaderboard_tex

    rows = []
    for judge, preds in (("good", ["0", "tie", "1"]), ("poor", ["1", "0", "1"])):
        rows += [rec(f"a{i}", label, pred, judge=judge, label_prob=prob)
                 for i, (label, pred, prob) in enumerate(zip(["0", "tie", "1"], preds, [0.9, 0.5, 0.1], strict=True))]
        rows += [rec("s0", "0", "0", judge=judge, perspective="safety", subcategory="nsfw")]
    board = build_leaderboard(compute_metrics(records_frame(rows), intervals=False))
    good = board.set_index("judge").loc["good"]
    assert good["alignment_acc_exact"] == 1.0 and good["alignment_acc_half_credit"] == 1.0
    assert good["alignment_brier"] == pytest.approx((0.1 ** 2 + 0 + 0.1 ** 2) / 3)  # p = 1, 0.5, 0
    poor = board.set_index("judge").loc["poor"]
    assert poor["alignment_acc_exact"] == pytest.approx(1 / 3)
    assert poor["alignment_acc_half_credit"] == pytest.approx((0 + 0.5 + 1) / 3)
    assert "safety_acc_exact" not in board.columns  # no gold ties there: nothing new to show
    table = leaderboard_table(board)
    assert "alignment exact" in table.headers and "alignment Brier" in table.headers
    brier = table.headers.index("alignment Brier")
    assert [r[brier] for r in table.rows] == ["0.007", f"{(0.9 ** 2 + 0.5 ** 2 + 0.1 ** 2) / 3:.3f}"]
    tex = leaderboard_tex(board)
    assert "\\textbf{0.007}" in tex  # the lowest Brier score is the best
