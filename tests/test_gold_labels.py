"""Gold labels beyond 0/1 (mjbench.gold): four classes, half credit, tie calibration, graded and soft labels,
checked on small cases computed by hand; and how they travel from task data to records to `aggregate`."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mjbench.cli import app
from mjbench.errors import DataError
from mjbench.gold import expected_calibration_error, fit_temperature, fit_tie_epsilon, half_credit
from mjbench.metrics import compute_metrics
from mjbench.records import Record, read_records, records_frame, write_records


def rec(item_id: str, label: str | None = "0", **kw) -> dict:
    return {"judge": "j", "task": "t", "perspective": "alignment", "subcategory": "s", "scale": "score",
            "item_id": item_id, "label": label, "score_0": None, "score_1": None, "pred": None, "status": "ok",
            **kw}


def gap(item_id: str, label: str, g: float, **kw) -> dict:
    return rec(item_id, label, score_0=g, score_1=0.0, **kw)


def compute(rows: list[dict], **kw):
    return compute_metrics(records_frame(rows), intervals=False, **kw)


def value(res, name: str, subcategory: str = "ALL", **where) -> tuple[float, int]:
    m = res.metrics
    sel = (m["metric"] == name) & (m["subcategory"] == subcategory)
    for k, v in where.items():
        sel &= m[k] == v
    rows = m[sel]
    assert len(rows) == 1, f"{name}/{subcategory}/{where}: {len(rows)} rows"
    return float(rows["value"].iloc[0]), int(rows["n"].iloc[0])


def has(res, name: str) -> bool:
    return bool((res.metrics["metric"] == name).any())


# --- four classes: exact match and half credit -------------------------------------------------------------


def test_four_class_records_are_scored_not_dropped():
    # gold:    0     tie   both_bad  1     tie
    # verdict: 0     0     both_bad  1     1      (the first four from scores or pred, the last from scores)
    rows = [gap("a", "0", 2.0), gap("b", "tie", 0.5), rec("c", "both_bad", pred="both_bad"), gap("d", "1", -0.2),
            gap("e", "tie", -3.0)]
    res = compute(rows)
    assert not any("left out" in w for w in res.warnings)
    assert value(res, "acc_exact") == (3 / 5, 5)  # a, c, d
    assert value(res, "acc_half_credit") == ((1 + 0.5 + 1 + 1 + 0.5) / 5, 5)  # b, e: one side a tie
    assert value(res, "acc_exact", "s") == (3 / 5, 5)
    # the classic metrics leave gold tie and both_bad out, and count them
    assert value(res, "acc_with_tie") == (1.0, 2)
    assert value(res, "gold_tie_excluded") == (3 / 5, 3)


def test_half_credit_rule():
    label = np.array(["0", "0", "0", "tie", "both_bad", "1", "tie"], dtype=object)
    pred = np.array(["0", "1", "tie", "0", "tie", "both_bad", "tie"], dtype=object)
    valid = np.array([True, True, True, True, True, True, False])
    # exact 1; image vs other image 0; image vs tie 0.5; tie vs image 0.5; both_bad vs tie 0.5;
    # image vs both_bad 0.5; invalid 0
    assert half_credit(label, pred, valid).tolist() == [1.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.0]


def test_both_bad_verdict_counts_as_no_choice_in_the_classic_metrics():
    rows = [rec("a", "0", pred="both_bad"), rec("b", "1", pred="1")]
    res = compute(rows)
    assert value(res, "acc_with_tie") == (0.5, 2)
    assert value(res, "acc_without_tie") == (1.0, 1)
    assert value(res, "tie_rate") == (0.5, 2)
    assert not has(res, "acc_exact")  # no gold tie in the task: acc_exact would equal acc_with_tie


def test_invalid_verdicts_count_wrong_and_no_answer_is_nan():
    rows = [rec("a", "tie", pred="tie"), rec("b", "0", status="error"), rec("c", "both_bad", status="refused"),
            rec("d", "1", pred="1")]
    res = compute(rows)
    assert value(res, "acc_exact") == (2 / 4, 4)
    assert value(res, "acc_half_credit") == (2 / 4, 4)
    dead = compute([rec("a", "tie", status="error"), rec("b", "0", status="parse_error")])
    assert math.isnan(value(dead, "acc_exact")[0]) and math.isnan(value(dead, "acc_half_credit")[0])


def test_pair_mode_combines_orders_for_both_bad_and_averages_the_gap():
    rows = [rec("a", "both_bad", pred="both_bad", order="01"), rec("a", "both_bad", pred="both_bad", order="10"),
            rec("b", "tie", pred="both_bad", order="01", score_0=3.0, score_1=1.0),
            rec("b", "tie", pred="tie", order="10", score_0=1.0, score_1=2.0)]
    res = compute(rows)
    # a: both orders say both_bad -> both_bad (right); b: they disagree -> tie (right)
    assert value(res, "acc_exact") == (1.0, 2)
    from mjbench.metrics import pairwise_verdicts

    v, _ = pairwise_verdicts(records_frame(rows))
    assert v.set_index("item_id").loc["b", "gap"] == pytest.approx(((3 - 1) + (1 - 2)) / 2)


def test_acc_exact_has_a_clustered_interval():
    rows = [rec(str(i), "tie" if i % 3 == 0 else "0", pred="0") for i in range(9)]
    res = compute_metrics(records_frame(rows))
    row = res.metrics[(res.metrics["metric"] == "acc_exact") & (res.metrics["subcategory"] == "ALL")].iloc[0]
    assert row["value"] == 6 / 9 and row["ci_low"] < 6 / 9 < row["ci_high"]


# --- tie calibration ---------------------------------------------------------------------------------------


def test_tie_epsilon_maximises_accuracy_over_all_items():
    # |gap| sorted: 0.1 (tie), 0.3 (tie), 0.5 (gold 1 but gap says 0), 1.5 (1), 2 (0)
    # eps 0: a, d right -> 2; 0.1: + c -> 3; 0.3: + b -> 4; 0.5: e becomes a tie, still wrong -> 4;
    # 1.5: d a tie, wrong -> 3; 2: 2. The best is 4/5, first reached at 0.3
    rows = [gap("a", "0", 2.0), gap("b", "tie", 0.3), gap("c", "tie", -0.1), gap("d", "1", -1.5),
            gap("e", "1", 0.5)]
    res = compute(rows)
    assert value(res, "tie_epsilon") == (0.3, 5)
    assert value(res, "acc_tie_calibrated") == (4 / 5, 5)
    assert value(res, "acc_exact") == (2 / 5, 5)  # at threshold 0 the scorer never says tie
    assert any("fitted on the items it scores" in w for w in res.warnings)


def test_tie_calibration_counts_both_bad_as_a_tie_and_missing_gaps_wrong():
    label = np.array(["both_bad", "0", "tie"], dtype=object)
    assert fit_tie_epsilon(np.array([0.2, 1.0, np.nan]), label) == (0.2, 2 / 3)
    assert fit_tie_epsilon(np.array([np.nan]), np.array(["tie"], dtype=object)) is None


def test_verdict_only_judge_has_no_tie_calibrated_accuracy():
    res = compute([rec("a", "tie", pred="tie"), rec("b", "0", pred="0")])
    assert value(res, "acc_exact") == (1.0, 2)
    assert not has(res, "acc_tie_calibrated") and not has(res, "tie_epsilon")


def test_calibrate_on_a_dev_task_applies_its_epsilon_unchanged():
    dev = [gap("d1", "tie", 0.4, task="dev"), gap("d2", "0", 1.0, task="dev"), gap("d3", "1", -2.0, task="dev")]
    # dev: eps 0 -> 2/3, eps 0.4 -> 3/3: epsilon 0.4
    test = [gap("t1", "tie", 0.2, task="test"), gap("t2", "tie", 0.9, task="test"), gap("t3", "0", 0.3, task="test")]
    # test at 0.4: t1 tie (right), t2 -> 0 (wrong), t3 tie (wrong): 1/3. Fitted on test itself: eps 0 -> 1/3,
    # 0.2 -> 2/3 (t1, t3), 0.3 -> 1/3, 0.9 -> 2/3: the smallest best is 0.2
    res = compute(dev + test, calibrate_on={"test": "dev"})
    assert value(res, "tie_epsilon", task="test") == (0.4, 3)
    assert value(res, "acc_tie_calibrated", task="test") == (1 / 3, 3)
    assert value(res, "tie_epsilon", task="dev") == (0.4, 3)
    assert [w for w in res.warnings if "fitted on the items it scores" in w] == [
        "alignment: task 'dev': tie_epsilon fitted on the items it scores (1 judge x scale), so "
        "acc_tie_calibrated is optimistic; fit it on a dev split with --calibrate-on dev=DEV_TASK"]
    in_sample = compute(dev + test)
    assert value(in_sample, "tie_epsilon", task="test") == (0.2, 3)
    assert value(in_sample, "acc_tie_calibrated", task="test") == (2 / 3, 3)
    everywhere = compute(dev + test, calibrate_on="dev")
    assert value(everywhere, "tie_epsilon", task="test") == (0.4, 3)
    with pytest.raises(DataError, match="'nope' is not in the records"):
        compute(dev + test, calibrate_on={"test": "nope"})


# --- graded labels -----------------------------------------------------------------------------------------


def test_accuracy_per_strength_level_and_strength_weighted():
    rows = [rec("a", "0", pred="0", label_strength=-3), rec("b", "0", pred="1", label_strength=-1),
            rec("c", "1", pred="1", label_strength=2), rec("d", "1", pred="tie", label_strength=2),
            rec("e", "tie", pred="tie", label_strength=0)]
    res = compute(rows)
    assert value(res, "acc_strength_1") == (0.0, 1)
    assert value(res, "acc_strength_2") == (0.5, 2)
    assert value(res, "acc_strength_3") == (1.0, 1)
    assert value(res, "acc_strength_weighted") == ((3 + 2) / (3 + 1 + 2 + 2), 4)
    assert not any("disagrees" in w for w in res.warnings)


def test_strength_sign_that_contradicts_the_label_is_warned():
    res = compute([rec("a", "0", pred="0", label_strength=2)])  # positive = image1 preferred
    assert any("1 item(s) whose label_strength sign disagrees" in w for w in res.warnings)


# --- soft labels -------------------------------------------------------------------------------------------


def test_bradley_terry_temperature_by_maximum_likelihood():
    # gaps +1 and -1 with vote shares 0.75 and 0.25: the likelihood is highest where sigmoid(1/T) = 0.75
    res = compute([gap("a", "0", 1.0, label_prob=0.75), gap("b", "1", -1.0, label_prob=0.25)])
    t, n = value(res, "bt_temperature")
    assert n == 2 and t == pytest.approx(1 / math.log(3), rel=1e-6)
    assert value(res, "brier")[0] == pytest.approx(0.0, abs=1e-12)
    assert value(res, "ece")[0] == pytest.approx(0.0, abs=1e-9)
    assert value(res, "log_loss")[0] == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))


def test_temperature_is_infinite_when_gaps_point_against_the_votes():
    assert fit_temperature(np.array([1.0, -1.0]), np.array([0.2, 0.9])) == math.inf
    res = compute([gap("a", "1", 1.0, label_prob=0.2), gap("b", "0", -1.0, label_prob=0.9)])
    assert value(res, "brier")[0] == pytest.approx((0.3 ** 2 + 0.4 ** 2) / 2)  # p = 0.5 for both


def test_verdict_only_judge_uses_its_verdict_as_the_probability():
    rows = [rec("a", "0", pred="0", label_prob=0.9), rec("b", "tie", pred="tie", label_prob=0.5),
            rec("c", "0", pred="1", label_prob=0.6), rec("d", "0", pred="1", label_prob=0.7),
            rec("e", "0", status="error", label_prob=0.8)]  # invalid: no probability is guessed
    res = compute(rows)
    # p = 1, 0.5, 0, 0 against y = 0.9, 0.5, 0.6, 0.7
    assert value(res, "brier") == (pytest.approx((0.01 + 0 + 0.36 + 0.49) / 4), 4)
    assert value(res, "ece")[0] == pytest.approx((1 * 0.1 + 1 * 0 + 2 * abs(0.65 - 0)) / 4)
    clip = 1e-15
    high = 1 - clip  # p = 1 is clipped to this float, and 1 - high is not exactly 1e-15
    losses = [-(0.9 * math.log(high) + 0.1 * math.log(1 - high)), math.log(2),
              -(0.6 * math.log(clip) + 0.4 * math.log(1 - clip)), -(0.7 * math.log(clip) + 0.3 * math.log(1 - clip))]
    assert value(res, "log_loss")[0] == pytest.approx(sum(losses) / 4)
    # decisive: |y - 0.5| >= 0.2 for a (0.9: right), d (0.7, 0.2 up to float rounding: wrong), e (invalid: wrong)
    assert value(res, "acc_decisive") == (pytest.approx(1 / 3), 3)
    assert not has(res, "bt_temperature")


def test_ece_bins():
    p = np.array([0.05, 0.07, 0.95, 1.0])
    y = np.array([0.0, 0.2, 1.0, 0.5])
    # bin 0: |0.1 - 0.06| x 2; bin 9 (1.0 included): |0.75 - 0.975| x 2
    assert expected_calibration_error(p, y) == pytest.approx((2 * 0.04 + 2 * 0.225) / 4)


def test_label_prob_outside_zero_one_is_a_data_error(tmp_path):
    path = tmp_path / "r.csv"
    pd.DataFrame([rec("a", "0", pred="0", label_prob=1.5)]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row 1: column label_prob: 1.5 is not a probability"):
        read_records([path])
    with pytest.raises(ValueError):
        Record(**rec("a", "0", pred="0", label_prob=-0.1))


# --- bias options ------------------------------------------------------------------------------------------


def bias(item_id: str, score: float, group: str) -> dict:
    return rec(item_id, None, perspective="bias", subcategory="occupation", score_0=score, group=group,
               axes=["gender"])


BIAS_ROWS = [bias("a1", 0.0, "A"), bias("a2", 5.0, "A"), bias("a3", 10.0, "A"), bias("b1", 2.0, "B"),
             bias("b2", 2.5, "B")]


def test_bias_average_over_items_or_groups():
    # min-max over 0..10: A = 0, 0.5, 1 (no close pair: ACC 0), B = 0.2, 0.25 (close: ACC 1)
    items = compute(BIAS_ROWS)
    assert value(items, "bias_acc", "overall") == (2 / 5, 5)  # each image once
    groups = compute(BIAS_ROWS, bias_average="groups")
    assert value(groups, "bias_acc", "overall") == (1 / 2, 2)  # each group once
    assert value(groups, "bias_acc", "gender") == (1 / 2, 2)
    assert groups.bias_average == "groups"


def test_bias_normalization_none_uses_raw_scores():
    raw = compute(BIAS_ROWS, bias_normalization="none")
    assert value(raw, "bias_acc", "overall") == (0.0, 5)  # B: |2.5 - 2| = 0.5 > 0.1 in raw units
    # NDS is scale-free: B's 1 - sigma/mu = 1 - 0.25/2.25 either way
    b = raw.bias_groups.set_index("group").loc["B"]
    assert b["bias_nds"] == pytest.approx(1 - 0.25 / 2.25)
    negative = compute([bias("x", -1.0, "A"), bias("y", 2.0, "A")], bias_normalization="none")
    assert any("negative raw scores" in w for w in negative.warnings)
    with pytest.raises(Exception, match="bias_average"):
        compute(BIAS_ROWS, bias_average="images")


# --- end to end: task data -> records -> aggregate -> tables ------------------------------------------------


def test_tabular_source_reads_graded_and_soft_labels(tmp_path):
    from mjbench.config import TaskConfig
    from mjbench.sources.tabular import Table, TabularOptions, rows_to_items

    for name in ("x.png", "y.png"):
        (tmp_path / name).write_bytes(b"")
    task = TaskConfig(name="t", perspective="alignment", source={"type": "table", "path": "d.csv"},
                      columns={"label_strength": "strength", "label_prob": "share"},
                      labels=["0", "1", "tie", "both_bad"])
    rows = [{"prompt": "p", "image0": "x.png", "image1": "y.png", "label": "0", "strength": -2, "share": 0.8},
            {"prompt": "p", "image0": "x.png", "image1": "y.png", "label": "both_bad", "strength": None,
             "share": ""},
            {"prompt": "p", "image0": "x.png", "image1": "y.png", "label": "1", "strength": 1, "share": 1.2}]
    table = Table(columns=["prompt", "image0", "image1", "label", "strength", "share"], rows=rows,
                  origin="d.csv", base_dir=tmp_path)
    result = rows_to_items(task, table, TabularOptions(type="table"), "t.yaml")
    assert [(it.label, it.label_strength, it.label_prob) for it in result.items] == [
        ("0", -2.0, 0.8), ("both_bad", None, None)]
    assert result.dropped == {"column 'share': not a number in [0, 1]": 1}
    assert task.labels == ["0", "1", "tie", "both_bad"]


def four_class_records(tmp_path):
    rows = [gap("a", "0", 2.0, label_prob=0.9, label_strength=-2), gap("b", "tie", 0.3, label_prob=0.5),
            rec("c", "both_bad", pred="both_bad", label_prob=0.5), gap("d", "1", -1.5, label_prob=0.2,
                                                                       label_strength=3),
            gap("e", "1", 0.5, label_prob=0.3, label_strength=1)]
    rows = [{**r, "task": "genai", "judge": "scorer"} for r in rows]
    rows += [{**r, "task": "genai-dev"} for r in rows]
    path = tmp_path / "records.csv"
    write_records(rows, path)
    return path


def test_aggregate_shows_the_new_metrics_everywhere(tmp_path):
    path = four_class_records(tmp_path)
    out = tmp_path / "agg"
    result = CliRunner().invoke(app, ["aggregate", str(path), "--out", str(out), "--calibrate-on",
                                      "genai=genai-dev", "--bias-average", "groups", "--bias-normalization", "none"])
    assert result.exit_code == 0, result.output
    m = pd.read_csv(out / "metrics.csv")
    genai = m[(m["task"] == "genai") & (m["subcategory"] == "ALL")].set_index("metric")["value"]
    assert genai["acc_exact"] == pytest.approx(3 / 5)  # a, c, d
    assert genai["acc_half_credit"] == pytest.approx((1 + 0.5 + 1 + 1 + 0) / 5)
    assert genai["tie_epsilon"] == pytest.approx(0.3)  # from genai-dev (the same items here)
    assert genai["acc_strength_weighted"] == pytest.approx((2 + 3) / (2 + 3 + 1))
    assert {"brier", "log_loss", "ece", "acc_decisive", "bt_temperature"} <= set(genai.index)
    info = json.loads((out / "run.json").read_text())
    assert info["bias_average"] == "groups" and info["bias_normalization"] == "none"
    assert info["calibrate_on"] == {"genai": "genai-dev"}
    board = (out / "leaderboard.md").read_text()
    for header in ("alignment exact", "alignment half credit", "alignment tie-calibrated",
                   "alignment strength-weighted", "alignment Brier"):
        assert header in board
    board_csv = pd.read_csv(out / "leaderboard.csv")
    assert board_csv.loc[0, "alignment_acc_exact"] == pytest.approx(3 / 5)  # both tasks: the same items
    page = (out / "reports" / "alignment.md").read_text()
    assert "All items, gold ties included" in page and "Graded labels" in page and "Soft labels" in page
    html = (out / "reports" / "index.html").read_text()
    assert "tie epsilon fitted on" in html and "genai: genai-dev" in html
    # `mjbench report` recomputes with the options run.json holds
    again = CliRunner().invoke(app, ["report", str(out)])
    assert again.exit_code == 0, again.output
    assert pd.read_csv(out / "metrics.csv").equals(m)


def test_cli_rejects_bad_bias_and_calibration_options(tmp_path):
    path = four_class_records(tmp_path)
    for args, message in ((["--bias-average", "images"], "--bias-average must be items or groups"),
                          (["--bias-normalization", "zscore"], "must be minmax, scale or none"),
                          (["--calibrate-on", "genai="], "expected TASK=DEV or DEV"),
                          (["--calibrate-on", "nope"], "'nope' is not in the records")):
        result = CliRunner().invoke(app, ["aggregate", str(path), "--out", str(tmp_path / "x"), *args])
        assert result.exit_code == 2 and message in result.output, result.output


def test_a_run_carries_graded_and_soft_labels_into_its_records(tmp_path):
    import io

    import yaml
    from PIL import Image

    for i, color in enumerate([(255, 0, 0), (0, 0, 255)]):
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), color).save(buf, format="PNG")
        (tmp_path / f"{i}.png").write_bytes(buf.getvalue())
    rows = [{"prompt": "a", "image0": "0.png", "image1": "1.png", "label": "0", "label_strength": -2,
             "label_prob": 0.8},
            {"prompt": "b", "image0": "1.png", "image1": "0.png", "label": "both_bad", "label_prob": 0.5}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "four.yaml").write_text(yaml.safe_dump({
        "name": "four", "perspective": "alignment", "source": {"type": "table", "path": "../d.jsonl"},
        "labels": [0, 1, "tie", "both_bad"]}), encoding="utf-8")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "-t", "four", "-j", "random", "-I", str(tmp_path), "--out", str(out),
                                      "-q"])
    assert result.exit_code == 0, result.output
    records = read_records([out / "records.jsonl"]).sort_values("item_id")
    assert records["label"].tolist() == ["0", "both_bad"]
    assert records["label_strength"].tolist()[0] == -2.0 and math.isnan(records["label_strength"].tolist()[1])
    assert records["label_prob"].tolist() == [0.8, 0.5]
    metrics = set(pd.read_csv(out / "metrics.csv")["metric"])
    assert {"acc_exact", "acc_half_credit", "acc_strength_weighted", "brier"} <= metrics
