"""Groups of N candidates (mjbench.groups): each metric against hand-computed values, gold and judge ties,
undefined (NaN) cases, invalid candidates, intervals, and `mjbench aggregate` over mixed records."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mjbench.cli import app
from mjbench.groups import group_acc, kendall_tau, ndcg_at_k, spearman_rho, top1_acc
from mjbench.metrics import compute_metrics, pairwise_verdicts
from mjbench.records import read_records, records_frame
from mjbench.report import build_leaderboard, leaderboard_table, write_run_outputs

D = [1 / math.log2(r + 1) for r in range(1, 11)]  # DCG discounts of ranks 1..10


# --- one group -------------------------------------------------------------------------------------------


def test_gold_ties_matched_by_judge_ties():
    gold, judge = [3, 2, 2, 1], [0.9, 0.5, 0.5, 0.1]
    # pairs (x = judge, y = gold): (0,1) (0,2) (0,3) (1,3) (2,3) concordant, (1,2) tied in both.
    # tau-b = (n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2)), n_0 = 6 pairs, n_1 = pairs tied in x = 1,
    # n_2 = pairs tied in y = 1: 5 / sqrt(5 * 5) = 1
    assert kendall_tau(judge, gold) == pytest.approx(1.0)
    assert spearman_rho(judge, gold) == pytest.approx(1.0)
    assert group_acc(judge, gold) == 1.0  # the gold-tied pair (1, 2) is skipped
    assert top1_acc(judge, np.array(gold) == 3) == 1.0
    # gains 2, 1, 1, 0; the tie block {1, 2} gets mean gain 1 at ranks 2 and 3: DCG = IDCG
    assert ndcg_at_k(judge, gold) == pytest.approx(1.0)


def test_judge_tie_on_a_gold_ordered_pair():
    gold, judge = [3, 2, 2, 1], [0.9, 0.6, 0.5, 0.5]
    # concordant: (0,1) (0,2) (0,3) (1,3) = 4; discordant 0; (1,2) tied in gold only (n_2 = 1);
    # (2,3) tied in the judge only (n_1 = 1): tau-b = 4 / sqrt((6 - 1)(6 - 1)) = 0.8
    assert kendall_tau(judge, gold) == pytest.approx(0.8)
    # average ranks: judge [4, 3, 1.5, 1.5], gold [4, 2.5, 2.5, 1]; deviations from 2.5:
    # [1.5, 0.5, -1, -1] and [1.5, 0, 0, -1.5]: rho = 3.75 / sqrt(4.5 * 4.5)
    assert spearman_rho(judge, gold) == pytest.approx(3.75 / 4.5)
    assert group_acc(judge, gold) == 0.0  # (2, 3) differ in gold, tie in the judge: wrong
    assert top1_acc(judge, np.array(gold) == 3) == 1.0
    # gains [2, 1, 1, 0]; judge order 0, 1, then the tie block {2, 3} with mean gain 0.5 at ranks 3 and 4
    dcg = 2 * D[0] + 1 * D[1] + 0.5 * (D[2] + D[3])
    assert ndcg_at_k(judge, gold) == pytest.approx(dcg / (2 * D[0] + D[1] + D[2]))


def test_discordant_pairs():
    gold, judge = [1, 2, 3], [0.3, 0.1, 0.2]
    # (0,1) discordant, (0,2) discordant, (1,2) concordant: tau = (1 - 2) / 3
    assert kendall_tau(judge, gold) == pytest.approx(-1 / 3)
    # ranks judge [3, 1, 2], gold [1, 2, 3]: d = [2, -1, -1], rho = 1 - 6 * 6 / (3 * 8) = -0.5
    assert spearman_rho(judge, gold) == pytest.approx(-0.5)
    assert group_acc(judge, gold) == 0.0 and top1_acc(judge, np.array(gold) == 3) == 0.0
    # gains [0, 1, 2]: judge order 0, 2, 1 -> DCG = 0 + 2 D2 + 1 D3; IDCG = 2 + D2
    assert ndcg_at_k(judge, gold) == pytest.approx((2 * D[1] + D[2]) / (2 * D[0] + D[1]))


def test_ndcg_averages_judge_ties_and_caps_k():
    gold = [3, 2, 1]
    # judge puts the worst first, then ties the two best: block {0, 1} mean gain 1.5 at ranks 2, 3
    assert ndcg_at_k([0.5, 0.5, 0.9], gold) == pytest.approx(1.5 * (D[1] + D[2]) / (2 + D[1]))
    # k = 1 with a two-way tie at the top: the block's discounts are [1, 0], mean gain 1.5; IDCG@1 = 2
    assert ndcg_at_k([0.5, 0.5, 0.1], gold, k=1) == pytest.approx(0.75)
    # k above N is capped at N
    assert ndcg_at_k([0.5, 0.4, 0.1], gold, k=50) == pytest.approx(1.0)
    # a judge that scores everything equally: the average over every order
    assert ndcg_at_k([1, 1, 1], gold) == pytest.approx((1.0 * (1 + D[1] + D[2])) / (2 + D[1]))
    assert math.isnan(ndcg_at_k([0.1, 0.2, 0.3], [2, 2, 2]))  # all gold equal: no gain to rank


def test_top1_with_gold_tied_best_and_judge_tie_at_the_top():
    best = np.array([True, True, False])  # gold [3, 3, 1]: both are best
    assert top1_acc([0.2, 0.8, 0.5], best) == 1.0
    assert top1_acc([0.8, 0.2, 0.5], best) == 1.0
    assert top1_acc([0.8, 0.8, 0.1], best) == 0.0  # the judge did not pick one: wrong, though both are best
    assert top1_acc([0.1, 0.2, 0.5], best) == 0.0
    assert math.isnan(top1_acc([0.1, 0.2], np.array([True, True])))  # every candidate best: undefined
    assert math.isnan(top1_acc([0.1, 0.2], np.array([False, False])))


def test_constant_sides_are_undefined():
    assert math.isnan(kendall_tau([0.5, 0.5, 0.5], [1, 2, 3]))
    assert math.isnan(spearman_rho([0.5, 0.5, 0.5], [1, 2, 3]))
    assert math.isnan(kendall_tau([0.1, 0.2, 0.3], [1, 1, 1]))
    assert math.isnan(group_acc([0.1, 0.2, 0.3], [1, 1, 1]))
    assert group_acc([0.5, 0.5, 0.5], [1, 2, 3]) == 0.0  # judge ties are wrong


def test_agrees_with_scipy_on_random_groups():
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(2, 8))
        s, g = rng.integers(0, 4, n).astype(float), rng.integers(0, 4, n).astype(float)
        if np.ptp(s) == 0 or np.ptp(g) == 0:
            continue
        assert kendall_tau(s, g) == pytest.approx(kendalltau(s, g).statistic)
        assert spearman_rho(s, g) == pytest.approx(spearmanr(s, g).statistic)


def _ndcg_by_permutations(scores, gold, k):
    """nDCG@k averaged over every order of the tied scores (the definition of ignore_ties=False)."""
    from itertools import permutations

    gains = np.array(gold, float) - min(gold)
    ideal = sum(x * d for x, d in zip(sorted(gains, reverse=True)[:k], D, strict=False))
    orders = [p for p in permutations(range(len(scores)))
              if all(scores[p[i]] >= scores[p[i + 1]] for i in range(len(p) - 1))]
    return float(np.mean([sum(gains[i] * D[r] for r, i in enumerate(p[:k])) for p in orders])) / ideal


@pytest.mark.parametrize("scores,gold,k", [([0.5, 0.5, 0.5, 0.1], [3, 0, 1, 2], 2), ([2, 1, 1, 1, 0], [0, 4, 1, 1, 3], 3),
                                           ([1, 1, 2, 2], [1, 2, 3, 4], 10)])
def test_ndcg_tie_average_equals_the_mean_over_tie_orders(scores, gold, k):
    assert ndcg_at_k(scores, gold, k) == pytest.approx(_ndcg_by_permutations(scores, gold, k))


# --- records -> metrics rows -----------------------------------------------------------------------------


def group(item, sub, scores, gold=None, *, judge="j", task="cc-groups", kind="gold_score", status=None,
          prompt=None, texts=None):
    rows = []
    for i, s in enumerate(scores):
        row = {"judge": judge, "task": task, "perspective": "humor", "subcategory": sub, "item_id": item,
               "scale": "score", "label": None, "score_0": s, "score_1": None, "pred": None,
               "status": (status or ["ok"] * len(scores))[i], "candidate": f"c{i}", "prompt": prompt}
        if gold is not None:
            row[kind] = gold[i]
        if texts:
            row["text0"] = texts[i]
        if row["status"] == "error":
            row["error"] = "HTTP 500 from the API"
        rows.append(row)
    return rows


def pair(item, sub, label, s0, s1, *, judge="j", task="cc-pairs"):
    return {"judge": judge, "task": task, "perspective": "humor", "subcategory": sub, "item_id": item,
            "scale": "score", "label": label, "score_0": s0, "score_1": s1, "pred": None, "status": "ok",
            "text0": "caption A", "text1": "caption B"}


def metric(res, metric, sub="ALL", task="cc-groups", judge="j"):
    m = res.metrics
    row = m[(m["judge"] == judge) & (m["task"] == task) & (m["subcategory"] == sub) & (m["metric"] == metric)]
    assert len(row) == 1, (metric, sub, task)
    return row.iloc[0]


def test_subset_means_invalid_groups_and_macro():
    rows = (group("g1", "c1", [0.9, 0.5, 0.5, 0.1], [3, 2, 2, 1])
            + group("g2", "c1", [0.9, 0.6, 0.5, 0.5], [3, 2, 2, 1])
            + group("g3", "c2", [0.3, 0.1, 0.2], [3, 2, 1], kind="gold_rank")  # rank 1 = best
            + group("g4", "c2", [0.1, None, 0.3], [1, 2, 3], status=["ok", "error", "ok"]))
    res = compute_metrics(records_frame(rows))
    # g3: gold = -rank = [-3, -2, -1] against [0.3, 0.1, 0.2]: the tau of test_discordant_pairs
    assert metric(res, "kendall_tau", "c2").value == pytest.approx(-1 / 3)
    assert metric(res, "kendall_tau", "c2").n == 1  # the invalid group g4 is left out of correlations
    assert metric(res, "top1_acc", "c2").value == 0.0 and metric(res, "top1_acc", "c2").n == 2  # g4 counts wrong
    assert metric(res, "group_invalid_rate", "c2").value == 0.5
    assert metric(res, "kendall_tau", "c1").value == pytest.approx(0.9)  # (1 + 0.8) / 2
    assert metric(res, "group_acc", "c1").value == 0.5
    assert metric(res, "ndcg_at_k", "c1").n == 2
    # ALL: group-weighted over the task's groups; ALL_MACRO: the mean of the subcategory values
    assert metric(res, "kendall_tau").value == pytest.approx((1 + 0.8 - 1 / 3) / 3)
    assert metric(res, "top1_acc").value == pytest.approx(2 / 4) and metric(res, "top1_acc").n == 4
    assert metric(res, "kendall_tau", "ALL_MACRO").value == pytest.approx((0.9 - 1 / 3) / 2)
    assert metric(res, "group_invalid_rate").value == 0.25
    assert set(res.metrics["metric"]) == {"group_acc", "top1_acc", "kendall_tau", "spearman_rho", "ndcg_at_k",
                                          "group_invalid_rate"}
    assert any("1 of 4 group(s) have a candidate without a valid score" in w for w in res.warnings)
    assert res.candidate_groups["valid"].tolist() == [True, True, True, False]


def test_no_valid_group_is_nan_never_zero():
    rows = group("g1", "c1", [None, None], [2, 1], status=["refused", "refused"])
    res = compute_metrics(records_frame(rows))
    for name in ("group_acc", "top1_acc", "kendall_tau", "spearman_rho", "ndcg_at_k"):
        assert math.isnan(metric(res, name).value), name
    assert metric(res, "group_invalid_rate").value == 1.0
    assert math.isnan(metric(res, "top1_acc").ci_low)


def test_undefined_groups_are_counted_with_the_reason():
    rows = (group("g1", "c1", [0.5, 0.5, 0.5], [3, 2, 1])  # judge constant
            + group("g2", "c1", [0.1, 0.2, 0.3], [1, 1, 1]))  # gold constant
    res = compute_metrics(records_frame(rows))
    tau = metric(res, "kendall_tau", "c1")
    assert math.isnan(tau.value) and tau.n == 0
    assert metric(res, "ndcg_at_k", "c1").n == 1  # defined for the constant judge, not for the constant gold
    assert metric(res, "group_acc", "c1").value == 0.0 and metric(res, "group_acc", "c1").n == 1
    assert metric(res, "top1_acc", "c1").n == 1  # every candidate of g2 is gold best: no top-1 question
    text = " ".join(res.warnings)
    assert "kendall_tau in 1 (gold all tied), 1 (judge scores all equal)" in text


def test_gold_best_only_gives_top1_only():
    rows = group("g1", "c1", [0.2, 0.9, 0.4], [False, True, False], kind="gold_best")
    rows += group("g2", "c1", [0.2, 0.9, 0.4], [True, None, None], kind="gold_best")  # missing = not best
    res = compute_metrics(records_frame(rows))
    assert set(res.metrics["metric"]) == {"top1_acc", "group_invalid_rate"}
    assert metric(res, "top1_acc", "c1").value == 0.5


def test_group_rows_stay_out_of_pairwise_and_bias():
    rows = group("g1", "c1", [0.9, 0.1], [2, 1]) + [pair("p1", "c1", "0", 0.8, 0.3)]
    res = compute_metrics(records_frame(rows))
    pairwise = res.metrics[res.metrics["task"] == "cc-pairs"]
    assert metric(res, "acc_with_tie", "c1", task="cc-pairs").value == 1.0
    assert metric(res, "acc_with_tie", "c1", task="cc-pairs").n == 1
    assert not res.metrics[(res.metrics["task"] == "cc-groups") & (res.metrics["metric"] == "acc_with_tie")].any().any()
    assert len(pairwise) and not any("gold label" in w or "duplicate" in w for w in res.warnings)
    verdicts, _ = pairwise_verdicts(records_frame(rows))
    assert verdicts["item_id"].tolist() == ["p1"]


def test_nothing_changes_without_group_rows():
    rows = [pair(f"p{i}", "c1", "0" if i % 2 else "1", 0.8, 0.3 + 0.1 * i) for i in range(6)]
    plain = records_frame(rows).drop(columns=["candidate", "gold_score", "gold_rank", "gold_best"])
    a, b = compute_metrics(plain), compute_metrics(records_frame(rows))
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    assert a.candidate_groups is None and a.warnings == b.warnings


def test_intervals_are_seeded_and_deterministic():
    rng = np.random.default_rng(0)
    rows = []
    for g in range(12):
        rows += group(f"g{g}", "c1", list(rng.random(4)), [4, 3, 2, 1])
    frame = records_frame(rows)
    one, two = compute_metrics(frame, seed=7), compute_metrics(frame, seed=7)
    pd.testing.assert_frame_equal(one.metrics, two.metrics)
    other = compute_metrics(frame, seed=8)
    tau, tau_other = metric(one, "kendall_tau", "c1"), metric(other, "kendall_tau", "c1")
    assert tau.value == tau_other.value
    assert (tau.ci_low, tau.ci_high) != (tau_other.ci_low, tau_other.ci_high)
    assert tau.ci_low <= tau.value <= tau.ci_high
    # records in another order: the same numbers
    shuffled = compute_metrics(frame.sample(frac=1.0, random_state=1), seed=7)
    pd.testing.assert_frame_equal(one.metrics, shuffled.metrics)
    top1 = metric(one, "top1_acc", "c1")
    assert 0.0 <= top1.ci_low <= top1.value <= top1.ci_high <= 1.0
    assert math.isnan(metric(one, "kendall_tau", "ALL_MACRO").ci_low)
    off = compute_metrics(frame, intervals=False)
    assert off.metrics["ci_low"].isna().all()


def test_ndcg_k_option():
    rows = group("g1", "c1", [0.5, 0.5, 0.1], [3, 2, 1])
    assert metric(compute_metrics(records_frame(rows), ndcg_k=1), "ndcg_at_k").value == pytest.approx(0.75)
    assert compute_metrics(records_frame(rows), ndcg_k=1).ndcg_k == 1


# --- reports ---------------------------------------------------------------------------------------------


def test_leaderboard_shows_group_columns_only_where_present():
    rows = [pair("p1", "c1", "0", 0.8, 0.3)]
    board = build_leaderboard(compute_metrics(records_frame(rows)))
    assert not [c for c in board.columns if "top1" in c or "tau" in c]
    rows += group("g1", "c1", [0.9, 0.1, 0.5], [3, 1, 2])
    board = build_leaderboard(compute_metrics(records_frame(rows)))
    assert list(board.columns) == ["judge", "scale", "humor_acc_with_tie", "humor_acc_without_tie", "humor_n",
                                   "humor_invalid_rate", "humor_top1_acc", "humor_kendall_tau", "humor_n_groups",
                                   "humor_group_invalid_rate", "note"]
    table = leaderboard_table(board)
    assert table.headers == ["judge", "scale", "humor w/ tie", "humor w/o tie", "humor n (invalid %)",
                             "humor top-1", "humor tau", "humor groups (invalid %)"]
    assert table.rows[0][table.headers.index("humor tau")] == "1.000"


def test_groups_only_perspective_and_reasons(tmp_path: Path):
    rows = group("g1", "c1", [0.5, 0.5], [2, 1], judge="flat")  # tau undefined: constant judge
    rows += group("g2", "c1", [None, None], [2, 1], judge="dead", status=["error", "error"])
    frame = records_frame(rows)
    res = compute_metrics(frame)
    board = build_leaderboard(res, frame).set_index("judge")
    assert "humor_acc_with_tie" not in board.columns and "humor_n" not in board.columns
    assert board.loc["dead", "note"].startswith("failed: 2/2 records errored")
    assert math.isnan(board.loc["flat", "humor_kendall_tau"])
    assert "humor tau: undefined: judge scores all equal in 1/1 groups" in board.loc["flat", "note"]
    assert board.loc["flat", "humor_top1_acc"] == 0.0
    write_run_outputs(tmp_path, frame, res, {})
    md = (tmp_path / "reports" / "humor.md").read_text()
    assert "Kendall tau: undefined: judge scores all equal in 1/1 groups" in md
    assert "failed: 2/2 records errored (first error: HTTP 500 from the API)" in md


# --- end to end ------------------------------------------------------------------------------------------


EVIL = "<script>alert('x')</script> | *bold*"


def test_aggregate_mixes_caption_pairs_and_groups(tmp_path: Path):
    rows = [pair("p1", "contest-1", "0", 0.8, 0.3), pair("p2", "contest-1", "1", 0.8, 0.3),
            pair("p3", EVIL, "1", 0.2, 0.7)]
    rows += group("g1", "contest-1", [0.9, 0.6, 0.5, 0.5], [3, 2, 2, 1], texts=["a", "b", "c", EVIL])
    rows += group("g2", EVIL, [0.3, 0.1, 0.2], [3, 2, 1], kind="gold_rank")
    rows += [{"judge": "j", "task": "align", "perspective": "alignment", "subcategory": "object", "item_id": "a1",
              "scale": "score", "label": "0", "score_0": 1.0, "score_1": 0.0, "pred": None, "status": "ok"}]
    path = tmp_path / "records.csv"
    records_frame(rows).to_csv(path, index=False)
    out = tmp_path / "agg"
    res = CliRunner().invoke(app, ["aggregate", str(path), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output

    m = pd.read_csv(out / "metrics.csv", keep_default_na=False, na_values={"value": ["", "nan", "NaN"]})
    assert list(m.columns) == ["judge", "task", "perspective", "subcategory", "scale", "metric", "value", "n",
                               "ci_low", "ci_high"]

    def value(task, sub, name):
        row = m[(m["task"] == task) & (m["subcategory"] == sub) & (m["metric"] == name)]
        assert len(row) == 1, (task, sub, name)
        return float(row["value"].iloc[0]), int(row["n"].iloc[0])

    assert value("cc-pairs", "contest-1", "acc_with_tie") == (0.5, 2)
    assert value("cc-pairs", EVIL, "acc_with_tie") == (1.0, 1)
    assert value("cc-groups", "contest-1", "kendall_tau")[0] == pytest.approx(0.8)
    assert value("cc-groups", "contest-1", "spearman_rho")[0] == pytest.approx(3.75 / 4.5)
    assert value("cc-groups", "contest-1", "top1_acc") == (1.0, 1)
    assert value("cc-groups", EVIL, "kendall_tau")[0] == pytest.approx(-1 / 3)
    assert value("cc-groups", "ALL", "group_invalid_rate") == (0.0, 2)
    assert value("align", "ALL", "acc_with_tie") == (1.0, 1)
    assert not len(m[(m["task"] == "cc-groups") & (m["metric"] == "acc_with_tie")])

    board = json.loads((out / "leaderboard.json").read_text())[0]
    assert board["humor_acc_with_tie"] == pytest.approx(2 / 3)
    assert board["humor_top1_acc"] == 0.5 and board["humor_n_groups"] == 2
    assert board["humor_kendall_tau"] == pytest.approx((0.8 - 1 / 3) / 2)
    assert board["alignment_acc_with_tie"] == 1.0 and "alignment_top1_acc" not in board
    md = (out / "leaderboard.md").read_text()
    assert "| humor top-1 | humor tau | humor groups (invalid %) |" in md
    assert "| 50.0 | 0.233 | 2 (0.0) |" in md

    report = (out / "reports" / "humor.md").read_text()
    assert "## Groups of candidates per subcategory" in report and "## Per subcategory" in report
    assert "| j | cc-groups | score | contest-1 | 100.0 |" in report
    assert "| j | cc-pairs | score | contest-1 | 50.0 |" in report
    assert "<script>" not in report and "&lt;script&gt;" in report and "\\| *bold*" in report
    html = (out / "reports" / "humor.html").read_text()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "Kendall tau" in html and "nDCG@10" in html
    assert (out / "reports" / "alignment.md").read_text().count("Groups of candidates") == 0


def test_aggregate_reads_group_records_from_jsonl_like_csv(tmp_path: Path):
    rows = group("g1", "c1", [0.9, 0.6, 0.5, 0.5], [3, 2, 2, 1]) + group("g2", "c1", [0.1, 0.2], [True, False],
                                                                      kind="gold_best")
    csv, jsonl = tmp_path / "r.csv", tmp_path / "r.jsonl"
    records_frame(rows).to_csv(csv, index=False)
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    a, b = compute_metrics(read_records([csv])), compute_metrics(read_records([jsonl]))
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    assert metric(a, "top1_acc", "c1").value == 0.5  # g1 right, g2 (best-only gold) wrong
