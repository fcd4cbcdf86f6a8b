"""Interval and test machinery (mjbench.stats), checked against hand-computed values and a seeded simulation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mjbench.metrics import wilson_interval
from mjbench.stats import (
    COMPARISON_COLUMNS,
    design_effect,
    diff_interval,
    effective_size,
    holm,
    mcnemar_exact,
    newcombe_paired,
    paired_comparisons,
    share_interval,
    tied_with_best,
    wilson_bounds,
)

# --- intervals of one accuracy ---------------------------------------------------------------------------


def test_wilson_bounds_matches_the_closed_form_and_scipy():
    from scipy.stats import binomtest

    for k, n in [(0, 20), (20, 20), (7, 10), (333, 1000)]:
        ci = binomtest(k, n).proportion_ci(method="wilson")
        assert tuple(map(float, wilson_bounds(k / n, n))) == pytest.approx((ci.low, ci.high), abs=1e-12)
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert all(math.isnan(v) for v in wilson_bounds(0.0, 0))


def test_design_effect_by_hand():
    codes = np.array([0, 0, 1, 1])
    # clusters all-right and all-wrong: mean 0.5, item variance 0.25, totals (2, 0), residuals (1, -1):
    # V_cluster = G/(G-1) * 2 = 4, deff = 4 / (n * 0.25) = 4
    assert design_effect(np.array([1.0, 1, 0, 0]), codes) == pytest.approx(4.0)
    # each cluster half right: totals equal their expectation, no cluster variance: deff floored at 1
    assert design_effect(np.array([1.0, 0, 1, 0]), codes) == 1.0
    # no variance at all (every item right): cannot be estimated, taken as 1
    assert design_effect(np.ones(4), codes) == 1.0


def test_effective_size_is_n_for_items_and_shrinks_with_few_clusters():
    from scipy.stats import t

    y = np.array([1.0, 0, 1, 0, 1, 1])
    assert effective_size(y, np.arange(6)) == 6.0
    codes = np.array([0, 0, 1, 1, 2, 2])
    deff = design_effect(y, codes)
    factor = (t.ppf(0.975, 5) / t.ppf(0.975, 2)) ** 2  # Korn-Graubard: t(n-1) over t(G-1)
    assert effective_size(y, codes) == pytest.approx(6 / deff * factor)


def test_items_without_shared_clusters_get_the_wilson_interval():
    y = [1] * 17 + [0] * 3
    assert share_interval(y) == pytest.approx(wilson_interval(17, 20), abs=1e-12)
    assert share_interval(y, [f"p{i}" for i in range(20)]) == pytest.approx(wilson_interval(17, 20), abs=1e-12)


@pytest.mark.parametrize("k", [0, 20])
def test_clustered_interval_keeps_width_at_0_and_n(k):
    y = [1] * k + [0] * (20 - k)
    clusters = np.repeat([f"p{i}" for i in range(5)], 4)
    lo, hi = share_interval(y, clusters)
    if k == 20:
        assert hi == 1.0 and lo < wilson_interval(20, 20)[0] < 0.9  # wider than as if independent
    else:
        assert lo == 0.0 and hi > wilson_interval(0, 20)[1] > 0.1


def test_correlated_clusters_widen_the_interval():
    # 10 prompts of 4 items; a judge right on all items of 7 prompts and wrong on all of 3: 28/40
    y = np.repeat([1] * 7 + [0] * 3, 4)
    clusters = np.repeat(np.arange(10), 4)
    lo, hi = share_interval(y, clusters)
    wlo, whi = wilson_interval(28, 40)
    assert lo < wlo and hi > whi
    assert lo < 0.7 < hi


def test_interval_is_seeded_and_independent_of_record_order():
    rng = np.random.default_rng(1)
    y = rng.random(60) < 0.7
    clusters = np.array([f"prompt {i // 6}" for i in range(60)])
    a = share_interval(y, clusters, seed=3, key="k")
    perm = rng.permutation(60)
    assert share_interval(y[perm], clusters[perm], seed=3, key="k") == a
    assert share_interval(y, clusters, seed=3, key="k") == a


def _clustered_draws(rng, n, m, p, icc, size):
    """Beta-binomial clusters: each of n/m prompts has its own success rate (mean p, intraclass
    correlation icc); m items per prompt."""
    a, b = p * (1 - icc) / icc, (1 - p) * (1 - icc) / icc
    rates = rng.beta(a, b, size=(size, n // m))
    return (rng.random((size, n // m, m)) < rates[:, :, None]).reshape(size, n)


def test_clustered_coverage_is_near_nominal_where_independent_intervals_fail():
    """Seeded simulation (800 draws, loose bound): 5 prompts of 8 items with intraclass correlation 0.3.
    The clustered interval covers p at least 90 % of the time; the Wilson interval, which takes the items as
    independent, covers it far less (so the test fails without clustering)."""
    n, m, p = 40, 8, 0.8
    draws = _clustered_draws(np.random.default_rng(7), n, m, p, 0.3, 800)
    clusters = np.repeat(np.arange(n // m), m)
    ours = np.mean([lo <= p <= hi for lo, hi in
                    (share_interval(y, clusters, key=str(i), resamples=400) for i, y in enumerate(draws))])
    naive = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(int(y.sum()), n) for y in draws)])
    assert ours >= 0.90, ours
    assert naive < 0.85, naive


# --- paired differences ----------------------------------------------------------------------------------


def test_newcombe_paired_by_hand_when_every_item_is_concordant():
    # 20 items both right: p_a = p_b = 1, phi undefined (0): the interval is -(1 - l) .. +(1 - l), l = Wilson
    lo, hi = newcombe_paired(20, 0, 0, 0)
    w_lo = wilson_interval(20, 20)[0]
    assert (lo, hi) == pytest.approx((-(1 - w_lo), 1 - w_lo))


def test_newcombe_paired_contains_the_difference_and_stays_in_range():
    lo, hi = newcombe_paired(10, 8, 2, 5)
    assert -1 <= lo < (18 - 12) / 25 < hi <= 1
    assert lo < 0  # 8 vs 2 discordant items: not conclusive (McNemar p = 0.11)
    assert newcombe_paired(10, 12, 1, 2)[0] > 0  # 12 vs 1: A is better (McNemar p = 0.003)


def test_diff_interval_has_width_when_two_judges_agree_everywhere():
    y = np.ones(20)
    lo, hi = diff_interval(y, y, np.repeat(np.arange(5), 4))
    assert lo < 0 < hi


# --- tests -----------------------------------------------------------------------------------------------


def test_mcnemar_exact_by_hand():
    # b = 1, c = 6: two-sided binomial at 1/2 on 7 discordant items: 2 * (C(7,0) + C(7,1)) / 2^7 = 16/128
    assert mcnemar_exact(1, 6) == pytest.approx(16 / 128)
    assert mcnemar_exact(6, 1) == pytest.approx(16 / 128)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(3, 3) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_holm_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert len(holm([])) == 0


# --- comparison tables ------------------------------------------------------------------------------------


def verdict_rows(judge: str, outcomes: list[int], task: str = "t", subcategory: str = "s",
                 perspective: str = "alignment", scale: str = "score") -> list[dict]:
    return [{"judge": judge, "task": task, "perspective": perspective, "subcategory": subcategory,
             "scale": scale, "item_id": f"i{i}", "cluster": f"item\x1f{task}\x1fi{i}", "correct": bool(o)}
            for i, o in enumerate(outcomes)]


def test_paired_comparisons_tables_and_pooled_rows():
    rows = (verdict_rows("a", [1] * 30) + verdict_rows("b", [0] * 30) + verdict_rows("c", [1] * 29 + [0])
            + verdict_rows("a", [1, 1], task="u", subcategory="s2") + verdict_rows("b", [0, 1], task="u",
                                                                                   subcategory="s2"))
    out = paired_comparisons(pd.DataFrame(rows), resamples=200)
    assert tuple(out.columns) == COMPARISON_COLUMNS
    t = out.set_index(["task", "subcategory", "judge_a", "judge_b"])
    ab = t.loc[("t", "s", "a", "b")]
    assert ab["diff"] == 1.0 and ab["n"] == 30
    assert ab["p_value"] == pytest.approx(2 * 0.5**30)  # b = 30, c = 0
    # Holm over the 3 pairs of table t/s: a-c (b=1, c=0: p = 1) stays 1; a-b is the smallest: x3
    assert ab["p_adjusted"] == pytest.approx(3 * 2 * 0.5**30)
    assert t.loc[("t", "s", "a", "c"), "p_value"] == 1.0
    assert ab["ci_low"] > 0.8 and ab["ci_high"] == 1.0
    # judge c has no items in task u: the pooled table over both tasks pairs a and b on 32 items
    pooled = t.loc[("ALL", "ALL", "a", "b")]
    assert pooled["n"] == 32 and pooled["diff"] == pytest.approx(31 / 32)
    assert t.loc[("ALL", "ALL", "a", "c"), "n"] == 30
    assert t.loc[("u", "ALL", "a", "b"), "n"] == 2
    assert set(out.loc[out["task"] == "u", "judge_a"] + out.loc[out["task"] == "u", "judge_b"]) == {"ab"}


def test_a_small_difference_is_not_significant():
    out = paired_comparisons(pd.DataFrame(verdict_rows("a", [1, 1, 0, 1, 0, 1]) +
                                          verdict_rows("b", [1, 0, 1, 0, 0, 1])), resamples=200)
    row = out[(out["task"] == "t") & (out["subcategory"] == "s")].iloc[0]
    assert row["diff"] == pytest.approx(1 / 6)
    assert row["p_value"] == pytest.approx(mcnemar_exact(2, 1)) and row["p_value"] == 1.0
    assert row["ci_low"] < 0 < row["ci_high"]


def test_no_pairs_without_two_judges():
    out = paired_comparisons(pd.DataFrame(verdict_rows("a", [1, 0])))
    assert out.empty and tuple(out.columns) == COMPARISON_COLUMNS


def test_tied_with_best():
    table = pd.DataFrame([
        # a beats c clearly, a vs b not distinguishable; b best? no: a has the higher mean difference
        {"judge_a": "a", "judge_b": "b", "diff": 0.05, "p_adjusted": 0.40},
        {"judge_a": "a", "judge_b": "c", "diff": 0.30, "p_adjusted": 0.001},
        {"judge_a": "b", "judge_b": "c", "diff": 0.25, "p_adjusted": 0.01},
    ]).assign(task="ALL", subcategory="ALL", perspective="alignment", scale="score")
    assert tied_with_best(table, "alignment", "score") == {"b"}
    assert tied_with_best(table, "alignment", "score", best="c") == set()
    assert tied_with_best(table, "alignment", "1-10") == set()
    assert tied_with_best(table, "alignment", "score", alpha=0.0001) == {"b", "c"}
