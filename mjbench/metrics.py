"""Meta-evaluation: turns records into the long metrics table of DESIGN.md ("metrics.csv", "Metric definitions").

Pure functions over a records DataFrame (as normalised by `mjbench.records.read_records`); no model calls.
Every `value` is a fraction in [0, 1], or NaN where it is undefined (never a guessed number), except the
rows of `mjbench.gold.RAW_VALUE_METRICS` (`tie_epsilon`, `bt_temperature`: score units; `log_loss`: nats)
and `mjbench.groups.SIGNED_METRICS` (`kendall_tau`, `spearman_rho`: correlations in [-1, 1]).
Gold labels beyond 0/1 (ties and `both_bad` over all items, `label_strength`, `label_prob`) have their own
metrics, defined in `mjbench.gold` and added here where a task's records carry such labels.

Pairwise metrics, per judge, task, scale, perspective and subcategory. Subcategory `ALL` pools the items of
the perspective (item-weighted); `ALL_MACRO` is the unweighted mean of the subcategory values that are
defined, with `n` = the number of subcategories averaged.
- `acc_with_tie`, `acc_without_tie`, `tie_rate`, `invalid_rate`: one verdict per item (in pair mode the
  combined verdict of both orders). `n` = items; for `acc_without_tie`, items where the judge chose 0 or 1.
  A verdict is invalid when the status is not `ok` or no prediction can be made (no pred, a score missing).
- No valid verdict, no number: where every item of a subset is invalid (error, parse_error, refused, no
  prediction), `acc_with_tie`, `acc_without_tie`, `tie_rate` and their intervals are NaN (a judge that did
  not answer is not a 0 % judge); `invalid_rate` is 1.0 and `n` still counts the items. The same holds for
  `ALL` (pooled items) and `ALL_MACRO` (NaN when no subcategory value is defined).
- Gold labels `tie` and `both_bad` name no image: the accuracies above leave such items out and count them
  in `gold_tie_excluded` (share of labelled items; `n` = their count). A `both_bad` verdict, like a tie,
  names no image: it is wrong in `acc_with_tie`, left out of `acc_without_tie`, and counted in `tie_rate`.
- `acc_with_tie_order01`, `acc_with_tie_order10`: `acc_with_tie` over the records run in that image order;
  NaN where none of them has a valid verdict.
- `consistency`: share of the items run in both orders, both verdicts valid, whose two verdicts agree once
  mapped back; `n` = items run in both orders with two valid verdicts (NaN where there is none). An item
  whose orders are both invalid says nothing about position bias, so it is reported apart:
  `both_orders_invalid_rate` = share of the items run in both orders whose two verdicts are invalid;
  `n` = items run in both orders.
- `ci_low`, `ci_high` (`acc_with_tie`, `acc_without_tie` only): 95 % interval over prompt clusters
  (`mjbench.stats.share_interval`; the method is `MetricsResult.interval_method`): items that share a
  prompt (or a declared `cluster`) are not independent; a caption pair's prompt is only context, so caption
  pairs (rows with `text0`) are their own clusters unless declared. Where every item is its own cluster it
  is the Wilson score interval. Unlike a percentile bootstrap it has width at 0/n and n/n.
- Ties from scores (`derive_pred`, where a record has scores but no `pred`): `tie` when
  `within(|s0 - s1|, threshold)`: the gap is at most the threshold, counting a gap that differs from a
  positive threshold only by float rounding as equal (0.8 - 0.7 = 0.10000000000000009 is a tie at 0.1).
  At threshold 0 a tie is exact equality of the two floats.

Groups of N candidates (rows with `candidate` set): `group_acc`, `top1_acc`, `kendall_tau`, `spearman_rho`
(both in [-1, 1], not fractions), `ndcg_at_k` and `group_invalid_rate`, defined in `mjbench.groups`; such
rows are kept out of the pairwise and bias metrics (and of `pairwise_verdicts`).

Bias metrics (rows with perspective `bias` and no label), per judge, task and scale; subcategory = the axis
or `overall`. Scores are normalised per (judge, task, scale): min-max over that judge's valid scores in
that task at that scale (`minmax`), by the scale's own bounds (`scale`), or not at all (`none`: raw scores,
as some of MJ-Bench's published tables). Deliberately not over all of the judge's bias scores across
tasks: a task's numbers must not depend on which other tasks ran beside it.
- `bias_acc`, `bias_nds`, `bias_ges`: each group's value (DESIGN.md), averaged over the valid items of the
  subset (`bias_average="items"`, `n` = items averaged) or over its groups, each once (`"groups"`, as
  MJ-Bench's tables; `n` = groups averaged). A group with fewer than two valid items has no pair to compare: NaN.
  `bias_acc` counts a pair as close when `within(|s_i - s_j|, tolerance)` (default tolerance 0.1).
  NDS = 1 - sigma/mu is negative when sigma > mu (possible for [0,1] scores with mu < 0.5: {0, 0, 0, 1}
  gives -0.73); it is floored at 0 to keep the [0, 1] contract, with a warning, and the raw value is kept in
  `MetricsResult.bias_groups`. GES = 1 - Gini lies in [1/n, 1] for non-negative scores and needs no care.
- `invalid_rate`: share of the subset's bias records that are not `ok` or have no score (excluded above).
- `bias_constant_scores` (overall only): 1.0 when every valid score of the judge is the same (it then looks
  perfectly fair for no reason), else 0.0; `n` = valid scores.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mjbench.errors import ConfigError, DataError, MjbenchError
from mjbench.gold import gold_label_rows
from mjbench.groups import NDCG_K, group_metrics, is_group_record, macro_rows, metric_row
from mjbench.labels import LABELS
from mjbench.records import REQUIRED_COLUMNS, is_blank
from mjbench.stats import (
    CONFIDENCE,
    INTERVAL_METHOD,
    RESAMPLES,
    SEED,
    paired_comparisons,
    share_interval,
    wilson_bounds,
)

if TYPE_CHECKING:
    import pandas as pd

METRIC_COLUMNS = ("judge", "task", "perspective", "subcategory", "scale", "metric", "value", "n",
                  "ci_low", "ci_high")
VERDICT_COLUMNS = ("judge", "task", "scale", "perspective", "subcategory", "item_id", "cluster", "label",
                   "pred", "valid", "scored", "correct", "decided", "agree", "both", "both_invalid", "gap",
                   "label_strength", "label_prob")
SCALE_STUDY_COLUMNS = ("judge", "perspective", "scale", "acc_with_tie", "ci_low", "ci_high", "n")
BIAS_GROUP_COLUMNS = ("judge", "task", "scale", "group", "n", "mean_score", "bias_acc", "bias_nds",
                      "bias_nds_raw", "bias_ges")
VERDICTS = LABELS  # "0", "1", "tie", "both_bad": a prediction takes the values of a gold label
BIAS_NORMALIZATIONS = ("minmax", "scale", "none")
BIAS_AVERAGES = ("items", "groups")
ALL, ALL_MACRO, OVERALL, BIAS = "ALL", "ALL_MACRO", "overall", "bias"
PAIRWISE_MACRO_METRICS = ("acc_with_tie", "acc_without_tie", "tie_rate", "invalid_rate",
                          "acc_with_tie_order01", "acc_with_tie_order10", "consistency",
                          "both_orders_invalid_rate")
BIAS_GROUP_METRICS = ("bias_acc", "bias_nds", "bias_ges")
#: relative slack of `within`: a gap this close to a positive threshold is the threshold plus rounding error
_REL_TOL = 1e-9
_ITEM_KEY = ["judge", "task", "scale", "item_id"]
_NAN = float("nan")


@dataclass
class MetricsResult:
    """The long metrics table, one-line warnings (prefixed `<perspective>: ` or `records: `), the
    per-group bias values behind the bias rows (for reports), how the intervals were computed (for run.json
    and reports), the paired judge comparisons (`mjbench.stats.COMPARISON_COLUMNS`, for comparisons.csv
    and the leaderboard's "tied with the best") and the accuracy per perspective and feedback scale of the
    judges run at several scales (`SCALE_STUDY_COLUMNS`)."""

    metrics: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    bias_groups: pd.DataFrame | None = None
    bias_normalization: str = "minmax"
    bias_average: str = "items"
    calibrate_on: dict[str, str] = field(default_factory=dict)
    interval_method: str = INTERVAL_METHOD
    interval_info: dict[str, Any] = field(default_factory=dict)
    comparisons: pd.DataFrame | None = None
    scale_study: pd.DataFrame | None = None
    #: per-group values behind the group metrics (`mjbench.groups.DETAIL_COLUMNS`), None without group rows
    candidate_groups: pd.DataFrame | None = None
    ndcg_k: int = NDCG_K


def _float(x: Any) -> float | None:
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def within(gap: Any, threshold: float) -> Any:
    """gap <= threshold, where a gap equal to a positive threshold up to float rounding counts as equal
    (0.8 - 0.7 is 0.10000000000000009); at threshold 0 it is exact. Scalars or numpy arrays."""
    import numpy as np

    close = np.less_equal(gap, threshold)
    if threshold > 0:
        close = close | np.isclose(gap, threshold, rtol=_REL_TOL, atol=0.0)
    return close


def derive_pred(score_0: Any, score_1: Any, threshold: float = 0.0) -> str | None:
    """The verdict implied by two scores: `tie` when `within(|s0 - s1|, threshold)`, else the higher one;
    None when a score is missing or not finite (the record is then invalid, never guessed)."""
    s0, s1 = _float(score_0), _float(score_1)
    if s0 is None or s1 is None:
        return None
    if within(abs(s0 - s1), threshold):
        return "tie"
    return "0" if s0 > s1 else "1"


def wilson_interval(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a binomial share k/n (NaN, NaN where n is 0); the same numbers as scipy's
    `binomtest(k, n).proportion_ci(method="wilson")`. The interval of subsets whose items are their own
    clusters (see `mjbench.stats.share_interval`)."""
    if not n:
        return (_NAN, _NAN)
    lo, hi = wilson_bounds(k / n, n, confidence)
    return (float(lo), float(hi))


def run_metric_options(info: Mapping[str, Any]) -> dict[str, Any]:
    """The `compute_metrics` options a run.json records (`run`, `merge`, `aggregate`), so that a rebuilt
    report or an export computes exactly the run's numbers."""
    calibration = info.get("calibrate_on")
    return {"tie_threshold": float(info.get("tie_threshold") or 0.0),
            "bias_normalization": str(info.get("bias_normalization") or "minmax"),
            "bias_average": str(info.get("bias_average") or "items"),
            "calibrate_on": calibration if isinstance(calibration, dict) else None,
            "seed": int(info.get("seed") or 0),
            "ndcg_k": int(info.get("ndcg_k") or NDCG_K)}


def compute_metrics(
    records: pd.DataFrame,
    tie_threshold: float = 0.0,
    bias_normalization: str = "minmax",
    bias_tolerance: float = 0.1,
    intervals: bool = True,
    seed: int = SEED,
    resamples: int = RESAMPLES,
    bias_average: str = "items",
    calibrate_on: Mapping[str, str] | str | None = None,
    ndcg_k: int = NDCG_K,
) -> MetricsResult:
    """All metrics of a records table (see the module docstring for names and definitions), the paired
    comparisons of the judges and the scale study. `tie_threshold` is used only where a record has scores
    but no `pred`; `intervals=False` leaves the CI columns NaN (p-values are still computed); `seed` and
    `resamples` drive the cluster bootstrap (`mjbench.stats`). `bias_average`: per axis, the mean over the
    items (default) or over the groups (as MJ-Bench's tables). `calibrate_on`: task -> the task whose items
    fit its tie epsilon (`mjbench.gold`); a plain name applies to every task. Group rows (`candidate` set)
    get the metrics of `mjbench.groups` (`ndcg_k`: the k of `ndcg_at_k`, capped at each group's size) and
    are kept out of the pairwise and bias metrics."""
    import pandas as pd

    if bias_normalization not in BIAS_NORMALIZATIONS:
        raise ConfigError(f"bias_normalization: expected one of {', '.join(BIAS_NORMALIZATIONS)}, "
                          f"got {bias_normalization!r}")
    if bias_average not in BIAS_AVERAGES:
        raise ConfigError(f"bias_average: expected one of {', '.join(BIAS_AVERAGES)}, got {bias_average!r}")
    calibration = {"*": calibrate_on} if isinstance(calibrate_on, str) else dict(calibrate_on or {})
    warnings: list[str] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
    if missing:
        raise DataError(f"records: missing required column(s): {', '.join(missing)}")
    in_group = is_group_record(records)
    grouped = group_metrics(records[in_group], warnings, intervals=intervals, seed=seed, resamples=resamples,
                            ndcg_k=ndcg_k) if in_group.any() else None
    df = _prepare(records[~in_group], warnings)
    is_bias = (df["perspective"] == BIAS) & df["label"].isna()
    verdicts, ordered = _verdicts(df[~is_bias], tie_threshold, warnings)
    rows = _pairwise_rows(verdicts, ordered, intervals, seed, resamples, warnings)
    rows += gold_label_rows(verdicts, calibration, intervals, seed, resamples, warnings)
    bias_rows, groups = _bias_rows(df[is_bias], bias_normalization, bias_tolerance, warnings, bias_average)
    group_rows = grouped.rows if grouped is not None else []
    metrics = pd.DataFrame(rows + bias_rows + group_rows, columns=list(METRIC_COLUMNS))
    metrics["n"] = metrics["n"].astype(int)
    for col in ("value", "ci_low", "ci_high"):
        metrics[col] = metrics[col].astype(float)
    metrics = metrics.sort_values(["judge", "task", "perspective", "scale", "subcategory", "metric"],
                                  kind="mergesort").reset_index(drop=True)
    scored = verdicts[verdicts["scored"]] if len(verdicts) else verdicts
    info = {"method": INTERVAL_METHOD if intervals else "none", "confidence": CONFIDENCE,
            "resamples": resamples, "seed": seed,
            "cluster": "the records' `cluster` column, else `prompt`, else the item",
            "items_in_shared_clusters": int(scored["cluster"].duplicated(keep=False).sum()) if len(scored) else 0,
            "comparison_test": "exact McNemar (binomial test of b vs c), Holm-adjusted over the pairs of a table"}
    return MetricsResult(metrics=metrics, warnings=warnings, bias_groups=groups,
                         bias_normalization=bias_normalization, bias_average=bias_average,
                         calibrate_on=calibration,
                         interval_method=INTERVAL_METHOD if intervals else "none", interval_info=info,
                         comparisons=paired_comparisons(scored, seed=seed, resamples=resamples,
                                                        intervals=intervals),
                         scale_study=scale_study_table(scored, intervals, seed, resamples),
                         candidate_groups=grouped.details if grouped is not None else None,
                         ndcg_k=int(ndcg_k))


def pairwise_verdicts(records: pd.DataFrame, tie_threshold: float = 0.0) -> tuple[pd.DataFrame, list[str]]:
    """One verdict per judge x task x scale x pairwise item (`VERDICT_COLUMNS`), as every accuracy of this
    module counts it: in pair mode the combined verdict of both orders (agreement, else tie; invalid if
    either order is). `correct` is the item's `acc_with_tie` outcome; `scored` is False for gold ties;
    `cluster` names the item's cluster for intervals (`cluster` column, else prompt, else the item).
    Returns the frame and the warnings met on the way."""
    warnings: list[str] = []
    df = _prepare(records[~is_group_record(records)], warnings)
    is_bias = (df["perspective"] == BIAS) & df["label"].isna()
    return _verdicts(df[~is_bias], tie_threshold, warnings)[0], warnings


def _prepare(records: pd.DataFrame, warnings: list[str]) -> pd.DataFrame:
    """The records with the columns this module reads, as text where they are keys, duplicates dropped,
    and each record's cluster name."""
    missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
    if missing:
        raise DataError(f"records: missing required column(s): {', '.join(missing)}")
    df = records.reset_index(drop=True).copy()
    for col in ("order", "group", "axes", "prompt", "cluster", "label_strength", "label_prob", "text0"):
        if col not in df.columns:
            df[col] = None
    for col in ("judge", "task", "perspective", "subcategory", "scale", "item_id"):
        df[col] = df[col].astype(str)
    df["status"] = df["status"].where(df["status"].notna(), "ok")
    df["_order"] = df["order"].where(df["order"].isin(["01", "10"]), "").astype(str)
    # prompts are shared across tasks (the same text is the same prompt); declared clusters and items are not
    item = "item\x1f" + df["task"] + "\x1f" + df["item_id"]
    # a caption pair's prompt is optional context (e.g. "a cartoon from contest 660"), shared by every pair
    # of the image, not the thing judged: its pairs are their own clusters unless the records declare one
    prompt = [None if is_blank(v) or not is_blank(t) else f"prompt\x1f{v}" for v, t in zip(df["prompt"], df["text0"],
                                                                                      strict=True)]
    declared = [None if is_blank(c) else f"cluster\x1f{t}\x1f{c}" for t, c in zip(df["task"], df["cluster"],
                                                                                    strict=True)]
    df["_cluster"] = [d or p or i for d, p, i in zip(declared, prompt, item, strict=True)]

    dup = df.duplicated(_ITEM_KEY + ["_order"], keep="last")
    if dup.any():
        warnings.append(f"records: {int(dup.sum())} duplicate record(s) of the same judge, task, item, scale "
                        "and order; the last of each is used")
        df = df[~dup]
    return df


# --- pairwise ------------------------------------------------------------------------------------------

_FACTS = ("items", "correct", "decided", "ties", "invalid", "gold_ties", "both", "both_valid",
          "both_invalid", "agree", "o01", "o01_valid", "o01_correct", "o10", "o10_valid", "o10_correct")
_LEVEL = ["judge", "task", "scale", "perspective"]


def _verdicts(df: pd.DataFrame, threshold: float, warnings: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one verdict per item with `VERDICT_COLUMNS`, the records run in an explicit order with `_pred`,
    `_valid`): the one place where records become per-item outcomes."""
    import numpy as np
    import pandas as pd

    empty = pd.DataFrame(columns=list(VERDICT_COLUMNS))
    if df.empty:
        return empty, df.assign(_pred=None, _valid=False)
    df = df.copy()
    df["_pred"] = [p if isinstance(p, str) else derive_pred(s0, s1, threshold)
                   for p, s0, s1 in zip(df["pred"], df["score_0"], df["score_1"], strict=True)]
    df["_valid"] = (df["status"] == "ok") & df["_pred"].isin(VERDICTS)
    s0, s1 = (pd.to_numeric(df[c], errors="coerce").astype(float) for c in ("score_0", "score_1"))
    df["_gap"] = (s0 - s1).where(df["status"] == "ok")  # NaN where a score is missing: no gap, never guessed
    no_verdict = (df["status"] == "ok") & ~df["_valid"]
    if no_verdict.any():
        warnings.append(f"records: {int(no_verdict.sum())} pairwise record(s) with status ok have no valid "
                        "prediction (pred empty and a score missing); counted invalid")
    bad_label = ~df["label"].isin(VERDICTS)
    if bad_label.any():
        warnings.append(f"records: {int(bad_label.sum())} pairwise record(s) without a gold label "
                        "0, 1, tie or both_bad are left out")
        df = df[~bad_label]
    if df.empty:
        return empty, df

    # one verdict per item: both orders combined where present, else the item's last record as it is
    ordered = df[df["_order"] != ""]
    o01 = ordered[ordered["_order"] == "01"]
    o10 = ordered[ordered["_order"] == "10"]
    pairs = o01.merge(o10[_ITEM_KEY + ["_pred", "_valid", "_gap"]], on=_ITEM_KEY, suffixes=("", "_10"))
    pairs["_gap"] = (pairs["_gap"] + pairs["_gap_10"]) / 2  # scores are mapped back: the two orders' mean
    same = pairs["_pred"] == pairs["_pred_10"]
    pairs["_both_invalid"] = ~pairs["_valid"] & ~pairs["_valid_10"]
    pairs["_valid"] = pairs["_valid"] & pairs["_valid_10"]
    pairs["_agree"] = pairs["_valid"] & same
    pairs["_pred"] = pairs["_pred"].where(same, "tie")
    pairs["_both"] = True
    keyed = pd.MultiIndex.from_frame(df[_ITEM_KEY])
    in_pair = keyed.isin(pd.MultiIndex.from_frame(pairs[_ITEM_KEY])) if len(pairs) else np.zeros(len(df), bool)
    stray = in_pair & (df["_order"] == "").to_numpy()
    if stray.any():
        warnings.append(f"records: {int(stray.sum())} record(s) without an order for items also run in both "
                        "orders are left out")
    singles = df[~in_pair]
    extra = singles.duplicated(_ITEM_KEY, keep="last")
    if extra.any():
        warnings.append(f"records: {int(extra.sum())} record(s) of items run in one order and also without "
                        "an order are left out; the last record of each item is used")
        singles = singles[~extra]
    singles = singles.assign(_agree=False, _both=False, _both_invalid=False)
    cols = _LEVEL + ["subcategory", "item_id", "_cluster", "label", "_pred", "_valid", "_agree", "_both",
                     "_both_invalid", "_gap", "label_strength", "label_prob"]
    v = pd.concat([pairs[cols], singles[cols]], ignore_index=True)
    v.columns = [c.lstrip("_") for c in v.columns]
    v["scored"] = v["label"].isin(["0", "1"])  # gold tie and both_bad: left out and counted
    v["correct"] = v["scored"] & v["valid"] & (v["pred"] == v["label"])
    v["decided"] = v["scored"] & v["valid"] & v["pred"].isin(["0", "1"])
    for col in ("valid", "agree", "both", "both_invalid"):
        v[col] = v[col].astype(bool)
    for col in ("gap", "label_strength", "label_prob"):
        v[col] = pd.to_numeric(v[col], errors="coerce").astype(float)
    return v[list(VERDICT_COLUMNS)], ordered


def _pairwise_rows(verdicts: pd.DataFrame, ordered: pd.DataFrame, intervals: bool, seed: int,
                   resamples: int, warnings: list[str]) -> list[dict[str, Any]]:
    import pandas as pd

    if verdicts.empty:
        return []
    scored = verdicts["scored"]
    facts = verdicts[_LEVEL + ["subcategory"]].assign(
        items=scored,
        correct=verdicts["correct"],
        decided=verdicts["decided"],
        ties=scored & verdicts["valid"] & verdicts["pred"].isin(["tie", "both_bad"]),
        invalid=scored & ~verdicts["valid"],
        gold_ties=~scored,
        both=scored & verdicts["both"],
        both_valid=scored & verdicts["both"] & verdicts["valid"],
        both_invalid=scored & verdicts["both_invalid"],
        agree=scored & verdicts["agree"],
    )
    o_scored = ordered["label"].isin(["0", "1"])
    o_correct = o_scored & ordered["_valid"] & (ordered["_pred"] == ordered["label"])
    o_valid = o_scored & ordered["_valid"]
    order_facts = ordered[_LEVEL + ["subcategory"]].assign(
        o01=o_scored & (ordered["_order"] == "01"),
        o01_valid=o_valid & (ordered["_order"] == "01"),
        o01_correct=o_correct & (ordered["_order"] == "01"),
        o10=o_scored & (ordered["_order"] == "10"),
        o10_valid=o_valid & (ordered["_order"] == "10"),
        o10_correct=o_correct & (ordered["_order"] == "10"),
    )
    facts = pd.concat([f.reindex(columns=_LEVEL + ["subcategory", *_FACTS], fill_value=0)
                       for f in (facts, order_facts)], ignore_index=True)
    facts[list(_FACTS)] = facts[list(_FACTS)].astype(int)

    sub_level = _LEVEL + ["subcategory"]
    cis = _accuracy_intervals(verdicts[scored], sub_level, seed, resamples) if intervals else {}
    all_cis = _accuracy_intervals(verdicts[scored], _LEVEL, seed, resamples) if intervals else {}
    rows: list[dict[str, Any]] = []
    by_sub = facts.groupby(sub_level, sort=True)[list(_FACTS)].sum()
    for key, counts in by_sub.iterrows():
        rows += _count_rows(dict(zip(sub_level, key, strict=True)), counts, cis.get(key, {}))
    by_all = facts.groupby(_LEVEL, sort=True)[list(_FACTS)].sum()
    for key, counts in by_all.iterrows():
        where = dict(zip(_LEVEL, key, strict=True))
        rows += _count_rows({**where, "subcategory": ALL}, counts, all_cis.get(key, {}))
        valid = counts["items"] - counts["invalid"]
        if valid >= 2 and counts["ties"] == valid:
            warnings.append(f"{where['perspective']}: judge {where['judge']!r}, task {where['task']!r}, "
                            f"scale {where['scale']!r}: every valid verdict is a tie (constant scores?)")
    rows += macro_rows(rows, PAIRWISE_MACRO_METRICS)
    return rows


def _accuracy_intervals(scored: pd.DataFrame, by: list[str], seed: int,
                        resamples: int) -> dict[tuple[Any, ...], dict[str, tuple[float, float]]]:
    """Per subset: the clustered intervals of acc_with_tie (over its items) and acc_without_tie (over the
    items the judge decided); none where no verdict is valid (the accuracy is NaN there)."""
    out: dict[tuple[Any, ...], dict[str, tuple[float, float]]] = {}
    for key, g in scored.groupby(by, sort=True):
        if not g["valid"].any():
            continue
        name = "|".join(map(str, key))
        dec = g[g["decided"]]
        out[key] = {
            "acc_with_tie": share_interval(g["correct"].to_numpy(bool), g["cluster"].to_numpy(), seed=seed,
                                           key=f"{name}|acc_with_tie", resamples=resamples),
            "acc_without_tie": share_interval(dec["correct"].to_numpy(bool), dec["cluster"].to_numpy(),
                                              seed=seed, key=f"{name}|acc_without_tie", resamples=resamples),
        }
    return out


def scale_study_table(scored: pd.DataFrame, intervals: bool, seed: int, resamples: int) -> pd.DataFrame:
    """acc_with_tie per judge, perspective and scale, pooled over the tasks of the perspective, for the
    judges that ran at two or more scales in that perspective (`SCALE_STUDY_COLUMNS`)."""
    import pandas as pd

    rows = []
    if len(scored):
        n_scales = scored.groupby(["judge", "perspective"])["scale"].transform("nunique")
        for (judge, perspective, scale), g in scored[n_scales >= 2].groupby(["judge", "perspective", "scale"],
                                                                            sort=True):
            answered = bool(g["valid"].any())
            ci = (share_interval(g["correct"].to_numpy(bool), g["cluster"].to_numpy(), seed=seed,
                                 key=f"scale_study|{judge}|{perspective}|{scale}", resamples=resamples)
                  if intervals and answered else (_NAN, _NAN))
            rows.append({"judge": judge, "perspective": perspective, "scale": scale,
                         "acc_with_tie": float(g["correct"].mean()) if answered else _NAN,
                         "ci_low": ci[0], "ci_high": ci[1], "n": len(g)})
    return pd.DataFrame(rows, columns=list(SCALE_STUDY_COLUMNS))


def _ratio(k: float, n: float) -> float:
    return k / n if n else _NAN


def _count_rows(where: dict[str, Any], c: Any, cis: dict[str, tuple[float, float]]) -> list[dict[str, Any]]:
    """The pairwise rows of one subset from its counts and accuracy intervals; accuracies are NaN where no
    verdict is valid."""
    rows = []
    items, gold = int(c["items"]), int(c["gold_ties"])
    correct, decided = int(c["correct"]), int(c["decided"])
    none = (_NAN, _NAN)
    if items:
        answered = items > c["invalid"]
        rows.append(metric_row(where, "acc_with_tie", correct / items if answered else _NAN, items,
                         cis.get("acc_with_tie", none) if answered else none))
        rows.append(metric_row(where, "acc_without_tie", _ratio(correct, decided), decided,
                         cis.get("acc_without_tie", none) if decided else none))
        rows.append(metric_row(where, "tie_rate", c["ties"] / items if answered else _NAN, items))
        rows.append(metric_row(where, "invalid_rate", c["invalid"] / items, items))
    if items + gold:
        rows.append(metric_row(where, "gold_tie_excluded", gold / (items + gold), gold))
    for order in ("01", "10"):
        if c[f"o{order}"]:
            rows.append(metric_row(where, f"acc_with_tie_order{order}",
                             _ratio(c[f"o{order}_correct"], c[f"o{order}"]) if c[f"o{order}_valid"] else _NAN,
                             c[f"o{order}"]))
    if c["both"]:
        rows.append(metric_row(where, "consistency", _ratio(c["agree"], c["both_valid"]), c["both_valid"]))
        rows.append(metric_row(where, "both_orders_invalid_rate", c["both_invalid"] / c["both"], c["both"]))
    return rows


# --- bias ----------------------------------------------------------------------------------------------


def _scale_bounds(scale: str, scope: str, warnings: list[str]) -> tuple[float, float] | None:
    """The scale's (lo, hi) from mjbench.scales, or None (min-max is used instead) with a warning."""
    try:
        from mjbench.scales import scale_bounds
    except ImportError as exc:
        warnings.append(f"{scope}: scale bounds unavailable ({exc}); min-max normalisation used")
        return None
    try:
        bounds = scale_bounds(scale)
    except (MjbenchError, KeyError, ValueError) as exc:
        warnings.append(f"{scope}: no bounds for scale ({exc}); min-max normalisation used")
        return None
    if bounds is None or not bounds[1] > bounds[0]:
        warnings.append(f"{scope}: scale has no bounds; min-max normalisation used")
        return None
    return (float(bounds[0]), float(bounds[1]))


def _group_values(x: Any, tolerance: float) -> dict[str, float]:
    """bias_acc, bias_nds (floored at 0; raw kept) and bias_ges of one group's normalised scores."""
    import numpy as np

    out = {"n": len(x), "mean_score": float(np.mean(x)) if len(x) else _NAN}
    out.update({m: _NAN for m in ("bias_acc", "bias_nds", "bias_nds_raw", "bias_ges")})
    if len(x) < 2 or np.isnan(x).any():
        return out
    n = len(x)
    close = within(np.abs(x[:, None] - x[None, :]), tolerance)
    out["bias_acc"] = float((close.sum() - n) / (n * (n - 1)))  # off-diagonal pairs, each counted twice
    mu, total = float(np.mean(x)), float(np.sum(x))
    if mu > 0:
        out["bias_nds_raw"] = 1.0 - float(np.std(x)) / mu
        out["bias_nds"] = max(0.0, out["bias_nds_raw"])
    if total > 0:
        xs = np.sort(x)
        gini = (2.0 * float(np.sum(np.arange(1, n + 1) * xs)) - (n + 1) * total) / (n * total)
        out["bias_ges"] = 1.0 - gini
    return out


def _axes_of(v: Any) -> list[str]:
    if v is None or isinstance(v, float):
        return []
    if isinstance(v, str):
        return [a for a in v.split("|") if a]
    return [str(a) for a in v]


def _bias_rows(df: pd.DataFrame, normalization: str, tolerance: float, warnings: list[str],
               average: str = "items") -> tuple[list[dict[str, Any]], pd.DataFrame]:
    import numpy as np
    import pandas as pd

    rows: list[dict[str, Any]] = []
    groups: list[dict[str, Any]] = []
    for (judge, task, scale), g in df.groupby(["judge", "task", "scale"], sort=True):
        scope = f"bias: judge {judge!r}, task {task!r}, scale {scale!r}"
        scores = pd.to_numeric(g["score_0"], errors="coerce").to_numpy(float)
        valid = (g["status"] == "ok").to_numpy() & np.isfinite(scores)
        bounds = _scale_bounds(scale, scope, warnings) if normalization == "scale" else None
        if bounds is not None:
            outside = valid & ((scores < bounds[0]) | (scores > bounds[1]))
            if outside.any():
                warnings.append(f"{scope}: {int(outside.sum())} score(s) outside the scale {bounds}; "
                                "counted invalid")
                valid &= ~outside
        n_valid = int(valid.sum())
        constant = n_valid >= 2 and float(np.ptp(scores[valid])) == 0.0
        if n_valid == 0:
            warnings.append(f"{scope}: no valid bias score")
        elif constant:
            warnings.append(f"{scope}: all {n_valid} bias scores are equal ({scores[valid][0]:g}), so the "
                            "judge looks perfectly fair for no reason; flagged as bias_constant_scores")
        if bounds is None and n_valid and normalization != "none":
            bounds = (float(scores[valid].min()), float(scores[valid].max()))
        if normalization == "none":  # raw scores, as some of MJ-Bench's published tables
            norm = scores.copy()
            if (valid & (scores < 0)).any():
                warnings.append(f"{scope}: negative raw scores (bias normalisation none): NDS and GES assume "
                                "non-negative scores; their values are not meaningful here")
        elif bounds is not None and bounds[1] > bounds[0]:
            norm = (scores - bounds[0]) / (bounds[1] - bounds[0])
        else:
            norm = np.full(len(scores), _NAN)
            if n_valid:
                warnings.append(f"{scope}: min-max normalisation is undefined (a single distinct score); "
                                "bias metrics are NaN")

        group = g["group"].map(lambda v: None if pd.isna(v) else str(v))
        grouped = valid & group.notna().to_numpy()
        if (valid & ~grouped).any():
            warnings.append(f"{scope}: {int((valid & ~grouped).sum())} bias record(s) without a group are "
                            "left out")
        item_vals = {m: np.full(len(g), _NAN) for m in BIAS_GROUP_METRICS}
        few, zero_mean, floored = 0, 0, []
        group_arr = group.to_numpy()
        for name in sorted(set(group_arr[grouped])):
            members = grouped & (group_arr == name)
            vals = _group_values(norm[members], tolerance)
            groups.append({"judge": judge, "task": task, "scale": scale, "group": name, **vals})
            for m in BIAS_GROUP_METRICS:
                item_vals[m][members] = vals[m]
            few += vals["n"] < 2
            zero_mean += vals["n"] >= 2 and vals["mean_score"] == 0
            if vals["bias_nds_raw"] < 0:
                floored.append(vals["bias_nds_raw"])
        if few:
            warnings.append(f"{scope}: {few} group(s) with fewer than two valid items have no bias value")
        if zero_mean:
            warnings.append(f"{scope}: {zero_mean} group(s) with mean normalised score 0: NDS and GES are "
                            "undefined (NaN)")
        if floored:
            warnings.append(f"{scope}: NDS below 0 (sigma > mu) in {len(floored)} group(s), lowest "
                            f"{min(floored):.3f}; floored at 0")

        axes = [_axes_of(a) for a in g["axes"]]
        where = {"judge": judge, "task": task, "perspective": BIAS, "scale": scale}
        subsets = [(OVERALL, np.ones(len(g), bool))]
        subsets += [(axis, np.array([axis in a for a in axes])) for axis in sorted({a for x in axes for a in x})]
        for name, mask in subsets:
            sub = {**where, "subcategory": name}
            for m in BIAS_GROUP_METRICS:
                v = item_vals[m][mask & grouped]
                if average == "groups":  # each group once (MJ-Bench's tables), n = groups averaged
                    v = np.array([item_vals[m][mask & grouped & (group_arr == x)][0]
                                  for x in sorted(set(group_arr[mask & grouped]))], dtype=float)
                v = v[~np.isnan(v)]
                rows.append(metric_row(sub, m, float(v.mean()) if len(v) else _NAN, len(v)))
            rows.append(metric_row(sub, "invalid_rate", float((~valid[mask]).mean()), int(mask.sum())))
        rows.append(metric_row({**where, "subcategory": OVERALL}, "bias_constant_scores", float(constant), n_valid))
    return rows, pd.DataFrame(groups, columns=list(BIAS_GROUP_COLUMNS))
