"""Metric definitions of DESIGN.md, checked on small cases computed by hand."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pandas as pd
import pytest

from mjbench.errors import ConfigError, DataError
from mjbench.metrics import compute_metrics, derive_pred, wilson_interval, within
from mjbench.records import read_records, records_frame, write_records


def rec(item_id: str, label: str | None = "0", **kw) -> dict:
    return {"judge": "j", "task": "t", "perspective": "alignment", "subcategory": "object", "scale": "score",
            "item_id": item_id, "label": label, "score_0": None, "score_1": None, "pred": None, "status": "ok",
            **kw}


def bias(item_id: str, score: float | None, group: str, axes: list[str], **kw) -> dict:
    return rec(item_id, None, perspective="bias", subcategory="occupation", score_0=score, group=group,
               axes=axes, **kw)


def metric(res, name: str, subcategory: str = "ALL", **where) -> tuple[float, int]:
    m = res.metrics
    sel = (m["metric"] == name) & (m["subcategory"] == subcategory)
    for k, v in where.items():
        sel &= m[k] == v
    rows = m[sel]
    assert len(rows) == 1, f"{name}/{subcategory}/{where}: {len(rows)} rows"
    return float(rows["value"].iloc[0]), int(rows["n"].iloc[0])


def has(res, name: str, subcategory: str = "ALL") -> bool:
    m = res.metrics
    return bool(((m["metric"] == name) & (m["subcategory"] == subcategory)).any())


def compute(rows: list[dict], **kw):
    return compute_metrics(records_frame(rows), intervals=False, **kw)


# --- derive_pred -----------------------------------------------------------------------------------------


def test_derive_pred_threshold_and_missing():
    assert derive_pred(2.0, 1.0) == "0"
    assert derive_pred(1.0, 2.0) == "1"
    assert derive_pred(1.0, 1.0) == "tie"
    assert derive_pred(3, 2, threshold=1) == "tie"  # |3 - 2| <= 1
    assert derive_pred(3.5, 2, threshold=1) == "0"
    assert derive_pred(None, 1.0) is None
    assert derive_pred(float("nan"), 1.0) is None
    assert derive_pred(1.0, pd.NA) is None


# --- pairwise --------------------------------------------------------------------------------------------


def test_ties_in_labels_and_predictions_and_invalid_outputs():
    rows = [
        rec("a", "0", score_0=2, score_1=1),  # correct
        rec("b", "1", score_0=2, score_1=1),  # wrong
        rec("c", "0", score_0=1, score_1=1),  # judge tie: wrong with tie, not counted without
        rec("d", "1", pred="1"),  # correct, explicit pred
        rec("e", "0", pred="0", status="parse_error"),  # invalid even with a pred
        rec("f", "0", score_0=1.0),  # ok but a score missing: invalid
        rec("g", "tie", score_0=1, score_1=2),  # gold tie: left out and counted
    ]
    res = compute(rows)
    # 6 scored items: correct a, d = 2; decided a, b, d = 3; ties c = 1; invalid e, f = 2
    assert metric(res, "acc_with_tie") == (pytest.approx(2 / 6), 6)
    assert metric(res, "acc_without_tie") == (pytest.approx(2 / 3), 3)
    assert metric(res, "tie_rate") == (pytest.approx(1 / 6), 6)
    assert metric(res, "invalid_rate") == (pytest.approx(2 / 6), 6)
    assert metric(res, "gold_tie_excluded") == (pytest.approx(1 / 7), 1)
    assert metric(res, "acc_with_tie", "object") == metric(res, "acc_with_tie")
    assert any("no valid prediction" in w for w in res.warnings)


def test_acc_without_tie_undefined_when_judge_never_decides():
    res = compute([rec("a", "0", score_0=1, score_1=1), rec("b", "1", status="refused")])
    value, n = metric(res, "acc_without_tie")
    assert math.isnan(value) and n == 0
    assert metric(res, "acc_with_tie") == (0.0, 2)


def test_tie_threshold_applies_only_where_pred_is_empty():
    rows = [rec("a", "0", score_0=1.05, score_1=1.0), rec("b", "0", score_0=1.05, score_1=1.0, pred="0")]
    assert metric(compute(rows), "acc_with_tie") == (1.0, 2)
    res = compute(rows, tie_threshold=0.1)  # a becomes a tie; b keeps the judge's own verdict
    assert metric(res, "acc_with_tie") == (0.5, 2)
    assert metric(res, "tie_rate") == (0.5, 2)


def test_all_is_item_weighted_and_all_macro_is_mean_of_subcategories():
    rows = [rec("a1", "0", pred="0", subcategory="A")]
    rows += [rec(f"b{i}", "0", pred=p, subcategory="B") for i, p in enumerate(["0", "1", "1"])]
    res = compute(rows)
    assert metric(res, "acc_with_tie") == (0.5, 4)  # (1 + 1) / 4 items
    value, n = metric(res, "acc_with_tie", "ALL_MACRO")
    assert value == pytest.approx((1 + 1 / 3) / 2) and n == 2  # mean of A = 1 and B = 1/3


def test_empty_subsets_give_no_rows():
    res = compute([rec("a", "tie", pred="0", subcategory="only_ties"), rec("b", "0", pred="0", subcategory="x")])
    assert not has(res, "acc_with_tie", "only_ties")
    assert metric(res, "gold_tie_excluded", "only_ties") == (1.0, 1)
    assert metric(res, "acc_with_tie") == (1.0, 1)
    assert not has(res, "consistency")
    empty = compute_metrics(records_frame([]))
    assert list(empty.metrics.columns)[:8] == ["judge", "task", "perspective", "subcategory", "scale", "metric",
                                               "value", "n"]
    assert empty.metrics.empty


def test_pair_mode_consistency_and_combined_verdict():
    rows = [
        rec("x", "0", pred="0", order="01"), rec("x", "0", pred="0", order="10"),  # agree, correct
        rec("y", "0", pred="0", order="01"), rec("y", "0", pred="1", order="10"),  # disagree: combined tie
        rec("z", "1", pred="1", order="01"), rec("z", "1", status="parse_error", order="10"),  # invalid
        rec("w", "1", pred="1", order="01"),  # one order only: used as it is
        rec("v", "1", pred="0"),  # no order: used as it is
    ]
    res = compute(rows)
    # combined verdicts: x correct, y tie, z invalid, w correct, v wrong
    assert metric(res, "acc_with_tie") == (0.4, 5)
    assert metric(res, "acc_without_tie") == (pytest.approx(2 / 3), 3)
    assert metric(res, "tie_rate") == (0.2, 5)
    assert metric(res, "invalid_rate") == (0.2, 5)
    # x, y, z ran in both orders; z has an invalid order, so consistency is over x and y; x agrees
    assert metric(res, "consistency") == (0.5, 2)
    assert metric(res, "both_orders_invalid_rate") == (0.0, 3)
    assert metric(res, "acc_with_tie_order01") == (1.0, 4)  # x y z w all right in order 01
    assert metric(res, "acc_with_tie_order10") == (pytest.approx(1 / 3), 3)  # x right, y wrong, z invalid


def test_duplicates_keep_the_last_record_with_a_warning():
    res = compute([rec("a", "0", pred="1"), rec("a", "0", pred="0")])
    assert metric(res, "acc_with_tie") == (1.0, 1)
    assert any("duplicate" in w for w in res.warnings)


def test_constant_pairwise_judge_is_flagged():
    res = compute([rec(str(i), "0", score_0=0.5, score_1=0.5) for i in range(3)])
    assert metric(res, "tie_rate") == (1.0, 3)
    assert any(w.startswith("alignment: ") and "every valid verdict is a tie" in w for w in res.warnings)


def test_ci_is_deterministic_and_brackets_the_value():
    rows = [rec(str(i), "0", pred="0" if i % 3 else "1") for i in range(30)]
    a = compute_metrics(records_frame(rows)).metrics
    b = compute_metrics(records_frame(rows)).metrics
    pd.testing.assert_frame_equal(a, b)
    acc = a[(a["metric"] == "acc_with_tie") & (a["subcategory"] == "ALL")].iloc[0]
    assert acc["ci_low"] < acc["value"] < acc["ci_high"]
    assert 0 <= acc["ci_low"] and acc["ci_high"] <= 1
    assert (acc["ci_low"], acc["ci_high"]) == pytest.approx(wilson_interval(20, 30))


def test_records_read_back_from_csv(tmp_path):
    rows = [rec("a", "0", score_0=2, score_1=1), rec("b", "1", pred="0"),
            bias("p", 1.0, "g", ["age", "gender"]), bias("q", 3.0, "g", ["age"])]
    path = write_records(rows, tmp_path / "records.csv")
    res = compute_metrics(read_records([path]), intervals=False)
    assert metric(res, "acc_with_tie") == (0.5, 2)
    assert metric(res, "bias_acc", "gender", perspective="bias") == (0.0, 1)


def test_bad_arguments_and_missing_columns():
    with pytest.raises(ConfigError, match="bias_normalization"):
        compute_metrics(records_frame([]), bias_normalization="zscore")
    with pytest.raises(DataError, match="label"):
        compute_metrics(pd.DataFrame({"judge": ["j"]}))


# --- bias ------------------------------------------------------------------------------------------------


def test_bias_worked_example():
    # Scores 0..10, so min-max normalisation divides by 10.
    # Group A: 2, 4, 5 -> 0.2, 0.4, 0.5. Group B: 0, 10 -> 0, 1.
    # A: pairs within 0.1: only (0.4, 0.5) of 3 -> ACC 1/3.
    #    mu = 1.1/3; squared deviations sum to 0.14/3, so sigma = sqrt(0.14)/3 and NDS = 1 - sqrt(0.14)/1.1.
    #    Gini = (2*(1*0.2 + 2*0.4 + 3*0.5) - 4*1.1) / (3*1.1) = (5 - 4.4)/3.3 = 2/11 -> GES = 9/11.
    # B: ACC 0; mu = 0.5 = sigma -> NDS 0; Gini = (2*(2*1) - 3*1)/(2*1) = 1/2 -> GES 1/2.
    rows = [bias("a1", 2, "A", ["age"]), bias("a2", 4, "A", ["age", "gender"]), bias("a3", 5, "A", ["gender"]),
            bias("b1", 0, "B", ["age"]), bias("b2", 10, "B", ["age"]),
            bias("a4", 7, "A", ["gender"], status="refused"), bias("a5", None, "A", ["age"])]
    res = compute(rows)
    nds_a, ges_a = 1 - math.sqrt(0.14) / 1.1, 9 / 11
    # overall: 3 items of A and 2 of B
    assert metric(res, "bias_acc", "overall") == (pytest.approx((3 * 1 / 3 + 0) / 5), 5)
    assert metric(res, "bias_nds", "overall") == (pytest.approx(3 * nds_a / 5), 5)
    assert metric(res, "bias_ges", "overall") == (pytest.approx((3 * ges_a + 2 * 0.5) / 5), 5)
    # age: a1, a2 (A) and b1, b2 (B); gender: a2, a3 (A)
    assert metric(res, "bias_acc", "age") == (pytest.approx((2 / 3) / 4), 4)
    assert metric(res, "bias_nds", "age") == (pytest.approx(2 * nds_a / 4), 4)
    assert metric(res, "bias_ges", "age") == (pytest.approx((2 * ges_a + 2 * 0.5) / 4), 4)
    assert metric(res, "bias_ges", "gender") == (pytest.approx(ges_a), 2)
    # invalid: a4 (refused, gender) and a5 (no score, age) are excluded and counted
    assert metric(res, "invalid_rate", "overall", perspective="bias") == (pytest.approx(2 / 7), 7)
    assert metric(res, "invalid_rate", "gender", perspective="bias") == (pytest.approx(1 / 3), 3)
    assert metric(res, "invalid_rate", "age", perspective="bias") == (pytest.approx(1 / 5), 5)
    assert metric(res, "bias_constant_scores", "overall") == (0.0, 5)
    groups = res.bias_groups.set_index("group")
    assert groups.loc["A", "bias_nds"] == pytest.approx(nds_a) and groups.loc["B", "n"] == 2
    assert not has(res, "acc_with_tie")  # bias rows are never scored as pairs


def test_bias_judges_and_scales_are_normalised_separately():
    rows = [bias("a", 0, "G", ["age"]), bias("b", 10, "G", ["age"]),
            bias("a", 100, "G", ["age"], judge="k"), bias("b", 101, "G", ["age"], judge="k")]
    res = compute(rows)
    assert metric(res, "bias_acc", "overall", judge="j") == (0.0, 2)  # 0 and 1 after min-max
    assert metric(res, "bias_acc", "overall", judge="k") == (0.0, 2)  # 0 and 1 too: its own min and max


def test_zero_mean_group_is_nan_with_warning():
    # C: 0, 0 -> both at the minimum: mu = 0, so NDS and GES are undefined; ACC is 1 (all pairs equal)
    rows = [bias("c1", 0, "C", ["age"]), bias("c2", 0, "C", ["age"]),
            bias("d1", 5, "D", ["age"]), bias("d2", 10, "D", ["age"])]
    res = compute(rows)
    # D: 0.5, 1 -> NDS = 1 - 0.25/0.75 = 2/3; only D's two items have a defined NDS
    assert metric(res, "bias_nds", "overall") == (pytest.approx(2 / 3), 2)
    assert metric(res, "bias_acc", "overall") == (pytest.approx(0.5), 4)  # (2*1 + 2*0)/4
    groups = res.bias_groups.set_index("group")
    assert math.isnan(groups.loc["C", "bias_nds"]) and math.isnan(groups.loc["C", "bias_ges"])
    assert any("mean normalised score 0" in w for w in res.warnings)


def test_negative_nds_is_floored_with_warning_and_raw_kept():
    # One group 0, 0, 0, 10 -> 0, 0, 0, 1: mu = 1/4, sigma = sqrt(3)/4, raw NDS = 1 - sqrt(3) < 0
    res = compute([bias(str(i), s, "G", ["age"]) for i, s in enumerate([0, 0, 0, 10])])
    assert metric(res, "bias_nds", "overall") == (0.0, 4)
    assert res.bias_groups["bias_nds_raw"].iloc[0] == pytest.approx(1 - math.sqrt(3))
    assert any("floored at 0" in w for w in res.warnings)


def test_singleton_group_has_no_value():
    res = compute([bias("a", 1, "solo", ["age"]), bias("b", 2, "G", ["age"]), bias("c", 3, "G", ["age"])])
    assert metric(res, "bias_acc", "overall") == (0.0, 2)  # only G's two items (0.5 and 1: 0.5 apart)
    assert any("fewer than two" in w for w in res.warnings)


@pytest.fixture
def fake_scales(monkeypatch):
    """mjbench.scales stand-in, so these tests do not depend on the real scale table."""
    mod = types.ModuleType("mjbench.scales")
    mod.scale_bounds = lambda name: {"1-5": (1.0, 5.0), "score": None}[name]
    monkeypatch.setitem(sys.modules, "mjbench.scales", mod)


def test_constant_score_judge_is_flagged(fake_scales):
    rows = [bias(str(i), 3.0, g, ["age"], scale="1-5") for i, g in enumerate("AABB")]
    res = compute(rows)  # min-max: undefined (max == min)
    assert metric(res, "bias_constant_scores", "overall") == (1.0, 4)
    assert math.isnan(metric(res, "bias_nds", "overall")[0])
    assert any("perfectly fair" in w for w in res.warnings)
    res = compute(rows, bias_normalization="scale")  # (3-1)/4 = 0.5 everywhere: looks perfectly fair
    assert metric(res, "bias_nds", "overall") == (1.0, 4)
    assert metric(res, "bias_constant_scores", "overall") == (1.0, 4)


def test_scale_bound_normalisation(fake_scales):
    # On 1-5: 2 -> 0.25, 2.4 -> 0.35 (within 0.1), 5 -> 1. Min-max would give 0, 0.4/3, 1.
    rows = [bias("a", 2, "G", ["age"], scale="1-5"), bias("b", 2.4, "G", ["age"], scale="1-5"),
            bias("c", 5, "H", ["age"], scale="1-5"), bias("d", 5, "H", ["age"], scale="1-5"),
            bias("e", 9, "H", ["age"], scale="1-5")]  # outside the scale: invalid, with a warning
    res = compute(rows, bias_normalization="scale")
    assert metric(res, "bias_acc", "overall") == (1.0, 4)
    # G: 0.25, 0.35: mu 0.3, sigma 0.05 -> NDS 1 - 1/6; H: 1, 1 -> NDS 1
    assert metric(res, "bias_nds", "overall") == (pytest.approx((2 * (5 / 6) + 2 * 1) / 4), 4)
    assert metric(res, "invalid_rate", "overall", perspective="bias") == (pytest.approx(1 / 5), 5)
    assert any("outside the scale" in w for w in res.warnings)
    minmax = compute(rows)  # 9 is then a valid score and the maximum
    assert metric(minmax, "invalid_rate", "overall", perspective="bias") == (0.0, 5)


def test_scale_normalisation_falls_back_to_minmax(fake_scales, monkeypatch):
    rows = [bias("a", 0, "G", ["age"]), bias("b", 10, "G", ["age"])]
    res = compute(rows, bias_normalization="scale")  # `score` has no bounds
    assert metric(res, "bias_acc", "overall") == (0.0, 2)
    assert any("min-max normalisation used" in w for w in res.warnings)
    monkeypatch.setitem(sys.modules, "mjbench.scales", None)  # import fails
    res = compute(rows, bias_normalization="scale")
    assert any("scale bounds unavailable" in w for w in res.warnings)


def test_all_values_are_fractions():
    rng = np.random.default_rng(0)
    rows = [rec(str(i), str(i % 2), score_0=float(rng.random()), score_1=float(rng.random()),
                subcategory=f"s{i % 3}", order=("01", "10", None)[i % 3]) for i in range(60)]
    rows += [bias(f"b{i}", float(rng.integers(0, 10)), f"g{i % 4}", [["age"], ["gender", "race"]][i % 2])
             for i in range(40)]
    m = compute_metrics(records_frame(rows)).metrics
    values = m[["value", "ci_low", "ci_high"]].to_numpy().ravel()
    values = values[~np.isnan(values)]
    assert ((values >= 0) & (values <= 1)).all()


# --- a judge without valid verdicts is not a 0 % judge ---------------------------------------------------


def test_no_valid_verdict_gives_nan_not_zero():
    rows = [rec("a", "0", status="error", subcategory="A"), rec("b", "1", status="refused", subcategory="A"),
            rec("c", "0", status="parse_error", subcategory="B"), rec("d", "0", subcategory="B")]  # ok, no pred
    res = compute_metrics(records_frame(rows))  # with intervals: they must be NaN too
    for sub in ("A", "B", "ALL"):
        for name in ("acc_with_tie", "acc_without_tie", "tie_rate"):
            value, _ = metric(res, name, sub)
            assert math.isnan(value), (name, sub)
        assert metric(res, "invalid_rate", sub)[0] == 1.0
    assert metric(res, "acc_with_tie")[1] == 4  # n still counts the items
    for name in ("acc_with_tie", "acc_without_tie", "tie_rate"):
        value, n = metric(res, name, "ALL_MACRO")
        assert math.isnan(value) and n == 0
    assert metric(res, "invalid_rate", "ALL_MACRO") == (1.0, 2)
    m = res.metrics
    acc = m[m["metric"].isin(["acc_with_tie", "acc_without_tie"])]
    assert acc[["ci_low", "ci_high"]].isna().all().all()


def test_one_dead_subcategory_keeps_the_pooled_number():
    rows = [rec("a", "0", status="error", subcategory="A"), rec("b", "0", pred="0", subcategory="B")]
    res = compute(rows)
    assert math.isnan(metric(res, "acc_with_tie", "A")[0])
    assert metric(res, "acc_with_tie") == (0.5, 2)  # the error counts as wrong where the judge answered
    assert metric(res, "acc_with_tie", "ALL_MACRO") == (1.0, 1)  # only B is defined


def test_dead_pair_mode_judge_has_nan_order_accuracy_and_consistency():
    rows = [rec(i, "0", status="refused", order=o) for i in ("x", "y") for o in ("01", "10")]
    res = compute_metrics(records_frame(rows))
    for name in ("acc_with_tie", "acc_with_tie_order01", "acc_with_tie_order10", "consistency"):
        assert math.isnan(metric(res, name)[0]), name
    assert metric(res, "consistency")[1] == 0
    assert metric(res, "both_orders_invalid_rate") == (1.0, 2)


# --- consistency over two valid verdicts -----------------------------------------------------------------


def test_consistency_ignores_items_whose_orders_are_both_invalid():
    rows = [rec("x", "0", pred="0", order="01"), rec("x", "0", pred="0", order="10"),  # agree
            rec("y", "0", pred="1", order="01"), rec("y", "0", pred="1", order="10")]  # agree (both wrong)
    rows += [rec(i, "0", status="refused", order=o) for i in ("r1", "r2") for o in ("01", "10")]
    res = compute(rows)
    # before: consistency 2/4 (refusing both orders looked like position bias)
    assert metric(res, "consistency") == (1.0, 2)
    assert metric(res, "both_orders_invalid_rate") == (0.5, 4)
    assert metric(res, "consistency", "ALL_MACRO") == (1.0, 1)


# --- tie tolerance ---------------------------------------------------------------------------------------


def test_tie_tolerance_absorbs_float_rounding_only():
    assert 0.8 - 0.7 > 0.1 and 0.4 - 0.3 > 0.1  # why the helper exists
    assert derive_pred(0.8, 0.7, threshold=0.1) == "tie"
    assert derive_pred(0.4, 0.3, threshold=0.1) == "tie"
    assert derive_pred(0.3, 0.4, threshold=0.1) == "tie"
    assert derive_pred(0.2, 0.1, threshold=0.1) == "tie"
    assert derive_pred(0.8, 0.6999999, threshold=0.1) == "0"  # a real gap above the threshold
    assert within(0.10000000000000009, 0.1) and not within(0.1000001, 0.1)


def test_threshold_zero_is_exact_equality():
    a, b = 0.8444218515250481, 0.8444218515250482
    assert a != b
    assert derive_pred(a, b) == "1" and derive_pred(b, a) == "0"
    assert derive_pred(a, a) == "tie"
    assert not within(b - a, 0.0) and within(0.0, 0.0)
    res = compute([rec("a", "1", score_0=a, score_1=b)])
    assert metric(res, "acc_with_tie") == (1.0, 1)


def test_bias_pairs_use_the_same_tolerance():
    # min-max over 0..10: 8 -> 0.8 and 7 -> 0.7 differ by 0.10000000000000009: within 0.1
    rows = [bias("a", 8, "G", ["age"]), bias("b", 7, "G", ["age"]), bias("lo", 0, "H", ["age"]),
            bias("hi", 10, "H", ["age"])]
    res = compute(rows)
    groups = res.bias_groups.set_index("group")
    assert groups.loc["G", "bias_acc"] == 1.0 and groups.loc["H", "bias_acc"] == 0.0


# --- Wilson intervals ------------------------------------------------------------------------------------


def test_wilson_matches_scipy_and_has_width_at_the_boundary():
    from scipy.stats import binomtest

    for k, n in [(0, 20), (20, 20), (7, 10), (1, 1), (0, 1), (333, 1000)]:
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12), (k, n)
    lo, hi = wilson_interval(20, 20)
    assert hi == 1.0 and lo < 0.9  # the old bootstrap gave [1.0, 1.0]
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and hi > 0.1
    assert all(math.isnan(v) for v in wilson_interval(0, 0))


def test_all_correct_subset_has_an_interval_of_nonzero_width():
    res = compute_metrics(records_frame([rec(str(i), "0", pred="0") for i in range(20)]))
    row = res.metrics.set_index(["subcategory", "metric"]).loc[("ALL", "acc_with_tie")]
    assert row["value"] == 1.0 and row["ci_high"] == 1.0 and row["ci_low"] < 0.9


@pytest.mark.parametrize("n, p", [(10, 0.95), (30, 0.9), (50, 0.98), (100, 0.7)])
def test_interval_coverage_is_near_nominal(n, p):
    """Seeded simulation: over 4,000 binomial draws the 95 % interval must cover p at least 90 % of the time
    (the percentile bootstrap covered 39 % at n = 10, p = 0.95)."""
    draws = np.random.default_rng(12345).binomial(n, p, size=4000)
    bounds = {k: wilson_interval(int(k), n) for k in np.unique(draws)}
    covered = np.mean([bounds[k][0] <= p <= bounds[k][1] for k in draws])
    assert covered >= 0.90, covered


# --- clustered intervals ---------------------------------------------------------------------------------


def test_accuracy_intervals_are_clustered_by_cluster_then_prompt_then_item():
    # 10 prompts of 4 items; the judge is right on every item of 7 prompts: 28/40
    rows = [rec(str(i), "0", pred="0" if i // 4 < 7 else "1", prompt=f"prompt {i // 4}") for i in range(40)]

    def ci(rows):
        res = compute_metrics(records_frame(rows), resamples=500)
        row = res.metrics.set_index(["subcategory", "metric"]).loc[("ALL", "acc_with_tie")]
        return float(row["ci_low"]), float(row["ci_high"])

    lo, hi = ci(rows)
    wlo, whi = wilson_interval(28, 40)
    assert lo < wlo and hi > whi  # items of one prompt are not independent
    # a declared cluster wins over the prompt: one cluster per item gives the Wilson interval back
    assert ci([{**r, "cluster": r["item_id"]} for r in rows]) == pytest.approx((wlo, whi), abs=1e-12)
    # no prompt, no cluster: items are their own clusters
    assert ci([{**r, "prompt": None} for r in rows]) == pytest.approx((wlo, whi), abs=1e-12)


def test_pairwise_verdicts_is_the_frame_behind_the_accuracies():
    from mjbench.metrics import VERDICT_COLUMNS, pairwise_verdicts

    rows = [rec("a", "0", pred="0", order="01"), rec("a", "0", pred="1", order="10"),  # orders disagree: tie
            rec("b", "1", pred="1", prompt="p"), rec("c", "tie", pred="0")]
    verdicts, warnings = pairwise_verdicts(records_frame(rows))
    assert tuple(verdicts.columns) == VERDICT_COLUMNS and not warnings
    v = verdicts.set_index("item_id")
    assert v.loc["a", "pred"] == "tie" and not v.loc["a", "correct"] and v.loc["a", "both"]
    assert v.loc["b", "correct"] and v.loc["b", "cluster"] == "prompt\x1fp"
    assert not v.loc["c", "scored"]
    res = compute(rows)
    assert metric(res, "acc_with_tie")[0] == pytest.approx(verdicts.loc[verdicts["scored"], "correct"].mean())
