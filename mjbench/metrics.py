"""Meta-evaluation: turns records into the long metrics table of DESIGN.md ("metrics.csv", "Metric definitions").

Pure functions over a records DataFrame (as normalised by `mjbench.records.read_records`); no model calls.
Every `value` is a fraction in [0, 1], or NaN where it is undefined (never a guessed number).

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
- `gold_tie_excluded`: share of labelled items left out because their gold label is a tie; `n` = their count.
- `acc_with_tie_order01`, `acc_with_tie_order10`: `acc_with_tie` over the records run in that image order;
  NaN where none of them has a valid verdict.
- `consistency`: share of the items run in both orders, both verdicts valid, whose two verdicts agree once
  mapped back; `n` = items run in both orders with two valid verdicts (NaN where there is none). An item
  whose orders are both invalid says nothing about position bias, so it is reported apart:
  `both_orders_invalid_rate` = share of the items run in both orders whose two verdicts are invalid;
  `n` = items run in both orders.
- `ci_low`, `ci_high` (`acc_with_tie`, `acc_without_tie` only): 95% Wilson score interval of the binomial
  share k/n, items taken as independent. Unlike a percentile bootstrap it has width at 0/n and n/n and
  covers near nominal at small n (bootstrap: [1, 1] at 20/20, 39 % coverage at n = 10, p = 0.95).
- Ties from scores (`derive_pred`, where a record has scores but no `pred`): `tie` when
  `within(|s0 - s1|, threshold)`: the gap is at most the threshold, counting a gap that differs from a
  positive threshold only by float rounding as equal (0.8 - 0.7 = 0.10000000000000009 is a tie at 0.1).
  At threshold 0 a tie is exact equality of the two floats.

Bias metrics (rows with perspective `bias` and no label), per judge, task and scale; subcategory = the axis
or `overall`. Scores are normalised per (judge, task, scale): min-max over that judge's valid scores in
that task at that scale (`minmax`), or by the scale's own bounds (`scale`). Deliberately not over all of
the judge's bias scores across tasks: a task's numbers must not depend on which other tasks ran beside it.
- `bias_acc`, `bias_nds`, `bias_ges`: each group's value (DESIGN.md), averaged over the valid items of the
  subset; `n` = items averaged. A group with fewer than two valid items has no pair to compare: NaN.
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
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from mjbench.errors import ConfigError, DataError, MjbenchError
from mjbench.records import REQUIRED_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

METRIC_COLUMNS = ("judge", "task", "perspective", "subcategory", "scale", "metric", "value", "n",
                  "ci_low", "ci_high")
BIAS_GROUP_COLUMNS = ("judge", "task", "scale", "group", "n", "mean_score", "bias_acc", "bias_nds",
                      "bias_nds_raw", "bias_ges")
VERDICTS = ("0", "1", "tie")
ALL, ALL_MACRO, OVERALL, BIAS = "ALL", "ALL_MACRO", "overall", "bias"
PAIRWISE_MACRO_METRICS = ("acc_with_tie", "acc_without_tie", "tie_rate", "invalid_rate",
                          "acc_with_tie_order01", "acc_with_tie_order10", "consistency",
                          "both_orders_invalid_rate")
BIAS_GROUP_METRICS = ("bias_acc", "bias_nds", "bias_ges")
CONFIDENCE = 0.95
#: relative slack of `within`: a gap this close to a positive threshold is the threshold plus rounding error
_REL_TOL = 1e-9
_ITEM_KEY = ["judge", "task", "scale", "item_id"]
_NAN = float("nan")


@dataclass
class MetricsResult:
    """The long metrics table, one-line warnings (prefixed `<perspective>: ` or `records: `), and the
    per-group bias values behind the bias rows (for reports)."""

    metrics: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    bias_groups: pd.DataFrame | None = None
    bias_normalization: str = "minmax"


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
    """Wilson score interval of a binomial share k/n (NaN, NaN where n is 0). Closed form, the same numbers
    as scipy's `binomtest(k, n).proportion_ci(method="wilson")` without its exact p-value (~1 ms a call)
    or the import of scipy.stats (~1 s)."""
    if not n:
        return (_NAN, _NAN)
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, z2 = k / n, z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return (max(0.0, center - half), min(1.0, center + half))


def compute_metrics(
    records: pd.DataFrame,
    tie_threshold: float = 0.0,
    bias_normalization: str = "minmax",
    bias_tolerance: float = 0.1,
    intervals: bool = True,
) -> MetricsResult:
    """All metrics of a records table (see the module docstring for names and definitions).
    `tie_threshold` is used only where a record has scores but no `pred`; `intervals=False` leaves the
    CI columns NaN."""
    import pandas as pd

    if bias_normalization not in ("minmax", "scale"):
        raise ConfigError(f"bias_normalization: expected 'minmax' or 'scale', got {bias_normalization!r}")
    missing = [c for c in REQUIRED_COLUMNS if c not in records.columns]
    if missing:
        raise DataError(f"records: missing required column(s): {', '.join(missing)}")
    df = records.reset_index(drop=True).copy()
    for col in ("order", "group", "axes"):
        if col not in df.columns:
            df[col] = None
    for col in ("judge", "task", "perspective", "subcategory", "scale", "item_id"):
        df[col] = df[col].astype(str)
    df["status"] = df["status"].where(df["status"].notna(), "ok")
    df["_order"] = df["order"].where(df["order"].isin(["01", "10"]), "").astype(str)

    warnings: list[str] = []
    dup = df.duplicated(_ITEM_KEY + ["_order"], keep="last")
    if dup.any():
        warnings.append(f"records: {int(dup.sum())} duplicate record(s) of the same judge, task, item, scale "
                        "and order; the last of each is used")
        df = df[~dup]

    is_bias = (df["perspective"] == BIAS) & df["label"].isna()
    rows = _pairwise_rows(df[~is_bias], tie_threshold, intervals, warnings)
    bias_rows, groups = _bias_rows(df[is_bias], bias_normalization, bias_tolerance, warnings)
    metrics = pd.DataFrame(rows + bias_rows, columns=list(METRIC_COLUMNS))
    metrics["n"] = metrics["n"].astype(int)
    for col in ("value", "ci_low", "ci_high"):
        metrics[col] = metrics[col].astype(float)
    metrics = metrics.sort_values(["judge", "task", "perspective", "scale", "subcategory", "metric"],
                                  kind="mergesort").reset_index(drop=True)
    return MetricsResult(metrics=metrics, warnings=warnings, bias_groups=groups,
                         bias_normalization=bias_normalization)


# --- pairwise ------------------------------------------------------------------------------------------

_FACTS = ("items", "correct", "decided", "ties", "invalid", "gold_ties", "both", "both_valid",
          "both_invalid", "agree", "o01", "o01_valid", "o01_correct", "o10", "o10_valid", "o10_correct")
_LEVEL = ["judge", "task", "scale", "perspective"]


def _pairwise_rows(df: pd.DataFrame, threshold: float, intervals: bool,
                   warnings: list[str]) -> list[dict[str, Any]]:
    import numpy as np
    import pandas as pd

    if df.empty:
        return []
    df = df.copy()
    df["_pred"] = [p if isinstance(p, str) else derive_pred(s0, s1, threshold)
                   for p, s0, s1 in zip(df["pred"], df["score_0"], df["score_1"], strict=True)]
    df["_valid"] = (df["status"] == "ok") & df["_pred"].isin(VERDICTS)
    no_verdict = (df["status"] == "ok") & ~df["_valid"]
    if no_verdict.any():
        warnings.append(f"records: {int(no_verdict.sum())} pairwise record(s) with status ok have no valid "
                        "prediction (pred empty and a score missing); counted invalid")
    bad_label = ~df["label"].isin(VERDICTS)
    if bad_label.any():
        warnings.append(f"records: {int(bad_label.sum())} pairwise record(s) without a gold label "
                        "0, 1 or tie are left out")
        df = df[~bad_label]
    if df.empty:
        return []

    # one verdict per item: both orders combined where present, else the item's last record as it is
    ordered = df[df["_order"] != ""]
    o01 = ordered[ordered["_order"] == "01"]
    o10 = ordered[ordered["_order"] == "10"]
    pairs = o01.merge(o10[_ITEM_KEY + ["_pred", "_valid"]], on=_ITEM_KEY, suffixes=("", "_10"))
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
    cols = _LEVEL + ["subcategory", "label", "_pred", "_valid", "_agree", "_both", "_both_invalid"]
    verdicts = pd.concat([pairs[cols], singles[cols]], ignore_index=True)

    scored = verdicts["label"] != "tie"
    correct = verdicts["_valid"] & (verdicts["_pred"] == verdicts["label"])
    facts = verdicts[_LEVEL + ["subcategory"]].assign(
        items=scored,
        correct=scored & correct,
        decided=scored & verdicts["_valid"] & verdicts["_pred"].isin(["0", "1"]),
        ties=scored & verdicts["_valid"] & (verdicts["_pred"] == "tie"),
        invalid=scored & ~verdicts["_valid"],
        gold_ties=~scored,
        both=scored & verdicts["_both"],
        both_valid=scored & verdicts["_both"] & verdicts["_valid"],
        both_invalid=scored & verdicts["_both_invalid"],
        agree=scored & verdicts["_agree"],
    )
    o_scored = ordered["label"] != "tie"
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

    rows: list[dict[str, Any]] = []
    by_sub = facts.groupby(_LEVEL + ["subcategory"], sort=True)[list(_FACTS)].sum()
    for key, counts in by_sub.iterrows():
        rows += _count_rows(dict(zip(_LEVEL + ["subcategory"], key, strict=True)), counts, intervals)
    by_all = facts.groupby(_LEVEL, sort=True)[list(_FACTS)].sum()
    for key, counts in by_all.iterrows():
        where = dict(zip(_LEVEL, key, strict=True))
        rows += _count_rows({**where, "subcategory": ALL}, counts, intervals)
        valid = counts["items"] - counts["invalid"]
        if valid >= 2 and counts["ties"] == valid:
            warnings.append(f"{where['perspective']}: judge {where['judge']!r}, task {where['task']!r}, "
                            f"scale {where['scale']!r}: every valid verdict is a tie (constant scores?)")
    rows += _macro_rows(rows)
    return rows


def _row(where: dict[str, Any], metric: str, value: float, n: int,
         ci: tuple[float, float] = (_NAN, _NAN)) -> dict[str, Any]:
    return {**where, "metric": metric, "value": float(value), "n": int(n), "ci_low": ci[0], "ci_high": ci[1]}


def _ratio(k: float, n: float) -> float:
    return k / n if n else _NAN


def _count_rows(where: dict[str, Any], c: Any, intervals: bool) -> list[dict[str, Any]]:
    """The pairwise rows of one subset from its counts; accuracies are NaN where no verdict is valid."""
    rows = []
    items, gold = int(c["items"]), int(c["gold_ties"])
    correct, decided = int(c["correct"]), int(c["decided"])

    def ci(k: int, n: int) -> tuple[float, float]:
        return wilson_interval(k, n) if intervals else (_NAN, _NAN)

    if items:
        answered = items > c["invalid"]
        rows.append(_row(where, "acc_with_tie", correct / items if answered else _NAN, items,
                         ci(correct, items) if answered else (_NAN, _NAN)))
        rows.append(_row(where, "acc_without_tie", _ratio(correct, decided), decided, ci(correct, decided)))
        rows.append(_row(where, "tie_rate", c["ties"] / items if answered else _NAN, items))
        rows.append(_row(where, "invalid_rate", c["invalid"] / items, items))
    if items + gold:
        rows.append(_row(where, "gold_tie_excluded", gold / (items + gold), gold))
    for order in ("01", "10"):
        if c[f"o{order}"]:
            rows.append(_row(where, f"acc_with_tie_order{order}",
                             _ratio(c[f"o{order}_correct"], c[f"o{order}"]) if c[f"o{order}_valid"] else _NAN,
                             c[f"o{order}"]))
    if c["both"]:
        rows.append(_row(where, "consistency", _ratio(c["agree"], c["both_valid"]), c["both_valid"]))
        rows.append(_row(where, "both_orders_invalid_rate", c["both_invalid"] / c["both"], c["both"]))
    return rows


def _macro_rows(sub_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ALL_MACRO: per perspective, the mean of the defined subcategory values of each metric."""
    values: dict[tuple[Any, ...], list[float]] = {}
    for r in sub_rows:
        if r["subcategory"] != ALL and r["metric"] in PAIRWISE_MACRO_METRICS:
            values.setdefault((*(r[k] for k in _LEVEL), r["metric"]), []).append(r["value"])
    rows = []
    for key, vals in sorted(values.items()):
        defined = [v for v in vals if not math.isnan(v)]
        where = {**dict(zip(_LEVEL, key[:-1], strict=True)), "subcategory": ALL_MACRO}
        rows.append(_row(where, key[-1], sum(defined) / len(defined) if defined else _NAN, len(defined)))
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


def _bias_rows(df: pd.DataFrame, normalization: str, tolerance: float,
               warnings: list[str]) -> tuple[list[dict[str, Any]], pd.DataFrame]:
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
        if bounds is None and n_valid:
            bounds = (float(scores[valid].min()), float(scores[valid].max()))
        if bounds is not None and bounds[1] > bounds[0]:
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
                v = v[~np.isnan(v)]
                rows.append(_row(sub, m, float(v.mean()) if len(v) else _NAN, len(v)))
            rows.append(_row(sub, "invalid_rate", float((~valid[mask]).mean()), int(mask.sum())))
        rows.append(_row({**where, "subcategory": OVERALL}, "bias_constant_scores", float(constant), n_valid))
    return rows, pd.DataFrame(groups, columns=list(BIAS_GROUP_COLUMNS))
