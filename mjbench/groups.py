"""Metrics for groups of N candidates (one prompt or image, N >= 2 candidates scored by the judge).

Pure functions over records (no model calls); `mjbench.metrics.compute_metrics` adds their rows to the long
metrics table and keeps group rows out of the pairwise and bias metrics.

Group records: one row per candidate, `candidate` set (its id within the group), `score_0` = the judge's
score of that candidate, `label`/`pred` null, the gold in `gold_score` (higher is better), `gold_rank`
(1 = best, equal ranks tie) and/or `gold_best` (this candidate is (one of) the best). A group is identified
by (judge, task, perspective, subcategory, item_id, scale).

Gold of a group: `gold_score` where every candidate has one, else `-gold_rank` where every candidate has
one, else `gold_best` (a candidate without `gold_best` counts as not best where another has it). The gold
best candidates are those with the highest gold (all of them where several tie). A group whose candidates
lack gold, or that has fewer than two candidates, is left out with a warning.

A group is *valid* when every candidate has status `ok` and a finite score. Per valid group:
- `group_acc`: 1 when every pair of candidates with different gold is ordered by the judge's scores the
  way gold orders it, else 0; a judge tie on such a pair is wrong; pairs tied in gold are skipped (NaN
  where every candidate ties in gold).
- `top1_acc`: 1 when the judge's single highest-scored candidate is among the gold best, else 0; a tie for
  the judge's top is 0 (the judge did not pick one). NaN where every candidate is gold best.
- `kendall_tau`: Kendall's tau-b between the judge's scores and gold (`scipy.stats.kendalltau`):
  (n_c - n_d) / sqrt((n_0 - n_1)(n_0 - n_2)), n_0 = N(N-1)/2 pairs, n_1 / n_2 = pairs tied in the judge's
  scores / in gold; in [-1, 1].
- `spearman_rho`: Spearman's rho (`scipy.stats.spearmanr`, average ranks for ties); in [-1, 1].
  tau and rho are NaN (undefined) where the judge's scores or the gold are all equal.
- `ndcg_at_k`: gains = gold minus the group's lowest gold (the worst candidate gains 0); DCG@k =
  sum over the judge's ranking of gain / log2(rank + 1), rank = 1..k; judge ties are averaged over every
  order of the tied candidates (each tied candidate gets the mean gain of its tie block times the block's
  discounts: `sklearn.metrics.ndcg_score(ignore_ties=False)`); divided by the ideal DCG@k (gold order).
  k = min(`ndcg_k`, N), `ndcg_k` = NDCG_K (10) unless given. NaN where every gold is equal.
Gold `gold_best` only: `top1_acc` alone (the rank metrics and `group_acc` are absent).

Invalid candidates (error, parse error, refusal, no score): the group is invalid. As an invalid pairwise
verdict counts as wrong in `acc_with_tie`, an invalid group counts 0 in `group_acc` and `top1_acc` (a judge
that cannot score one candidate has not ordered the group; scoring the rest only would reward failing on
the hard candidate). Correlations and nDCG have no "wrong" value: they are averaged over the valid groups
only. Where no counted group of a subset is valid, every value is NaN (a judge that did not answer is never
a 0 % judge). `group_invalid_rate` = invalid groups / groups.

Per subset (judge x task x scale x perspective x subcategory; `ALL` = the groups of the task's perspective;
`ALL_MACRO` = mean of the defined subcategory values, `n` = subcategories): the mean over groups, `n` =
the groups averaged (`group_acc`, `top1_acc`: the groups where the gold defines it, invalid ones included;
correlations and nDCG: the valid groups where it is defined). Undefined groups are counted per reason
(warnings and `GroupResult.details`). Intervals (`ci_low`, `ci_high`, 95 %, not on `ALL_MACRO`):
`group_acc` and `top1_acc` are shares, so they get the interval of `acc_with_tie`
(`mjbench.stats.share_interval`: Wilson where every group is its own cluster, which keeps width at 0/n and
n/n); `kendall_tau`, `spearman_rho` and `ndcg_at_k` a percentile bootstrap over the groups (clusters of
groups sharing a `cluster` or prompt are drawn together), seeded by the run seed and the subset's name;
NaN with fewer than two clusters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mjbench.errors import DataError
from mjbench.records import is_blank, read_flag
from mjbench.stats import CONFIDENCE, RESAMPLES, SEED, bootstrap_means, cluster_codes, rng_for, share_interval

if TYPE_CHECKING:
    import pandas as pd

GROUP_METRICS = ("group_acc", "top1_acc", "kendall_tau", "spearman_rho", "ndcg_at_k")
#: shares: an invalid group counts 0; the others are averaged over the valid groups
SHARE_METRICS = ("group_acc", "top1_acc")
RANK_METRICS = ("group_acc", "kendall_tau", "spearman_rho", "ndcg_at_k")  # need gold_score or gold_rank
#: in [-1, 1], not fractions
SIGNED_METRICS = ("kendall_tau", "spearman_rho")
GROUP_INVALID = "group_invalid_rate"
ALL_GROUP_METRICS = (*GROUP_METRICS, GROUP_INVALID)
NDCG_K = 10
GROUP_KEY = ["judge", "task", "scale", "perspective", "subcategory", "item_id"]
DETAIL_COLUMNS = (*GROUP_KEY, "cluster", "candidates", "invalid_candidates", "valid", "gold",
                  *GROUP_METRICS, *(f"why_{m}" for m in GROUP_METRICS))
ALL, ALL_MACRO = "ALL", "ALL_MACRO"
_LEVEL = ["judge", "task", "scale", "perspective"]
_NAN = float("nan")

# reasons a group's value is undefined (NaN)
GOLD_TIED = "gold all tied"
JUDGE_TIED = "judge scores all equal"
INVALID = "invalid group"
NO_BEST = "no candidate is gold best"
ALL_BEST = "every candidate is gold best"


@dataclass
class GroupResult:
    """The metrics rows of the groups and the per-group values behind them (`DETAIL_COLUMNS`, one row per
    judge x task x scale x group: values, and `why_<metric>` = why a value is NaN, empty where defined)."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    details: pd.DataFrame | None = None
    ndcg_k: int = NDCG_K


def is_group_record(records: pd.DataFrame) -> Any:
    """Boolean mask of the group rows (`candidate` set) of a records frame; all False without the column."""
    if "candidate" not in records.columns:
        return np.zeros(len(records), dtype=bool)
    return records["candidate"].map(lambda v: not is_blank(v)).to_numpy(dtype=bool)


# --- one group -----------------------------------------------------------------------------------------


def group_acc(scores: Any, gold: Any) -> float:
    """1.0 when every pair with different gold is ordered the same way by the scores (a score tie is wrong),
    else 0.0; NaN where every gold ties (no pair to order)."""
    s, g = np.asarray(scores, float), np.asarray(gold, float)
    dg = np.sign(g[:, None] - g[None, :])
    ds = np.sign(s[:, None] - s[None, :])
    pairs = dg != 0
    if not pairs.any():
        return _NAN
    return float(bool(np.all(ds[pairs] == dg[pairs])))


def top1_acc(scores: Any, best: Any) -> float:
    """1.0 when the single highest score belongs to a gold-best candidate, 0.0 otherwise (a tie for the top
    is 0); NaN where no candidate or every candidate is gold best."""
    s, b = np.asarray(scores, float), np.asarray(best, bool)
    if not b.any() or b.all():
        return _NAN
    top = np.flatnonzero(s == s.max())
    return float(len(top) == 1 and bool(b[top[0]]))


def kendall_tau(scores: Any, gold: Any) -> float:
    """Kendall's tau-b (scipy.stats.kendalltau); NaN where either side is constant."""
    s, g = np.asarray(scores, float), np.asarray(gold, float)
    if len(s) < 2 or np.ptp(s) == 0 or np.ptp(g) == 0:
        return _NAN
    from scipy.stats import kendalltau

    return float(kendalltau(s, g).statistic)


def spearman_rho(scores: Any, gold: Any) -> float:
    """Spearman's rho with average ranks for ties (scipy.stats.spearmanr); NaN where either side is constant."""
    s, g = np.asarray(scores, float), np.asarray(gold, float)
    if len(s) < 2 or np.ptp(s) == 0 or np.ptp(g) == 0:
        return _NAN
    from scipy.stats import spearmanr

    return float(spearmanr(s, g).statistic)


def ndcg_at_k(scores: Any, gold: Any, k: int = NDCG_K) -> float:
    """nDCG@k of the judge's ranking with gains gold - min(gold), discount 1 / log2(rank + 1), k capped at N;
    tied scores averaged over their orders (as sklearn's ndcg_score with ignore_ties=False). NaN where every
    gold is equal (no gain to rank)."""
    s, g = np.asarray(scores, float), np.asarray(gold, float)
    n = len(s)
    if n == 0 or k < 1:
        return _NAN
    gains = g - g.min()
    discount = 1.0 / np.log2(np.arange(n) + 2.0)
    discount[min(k, n):] = 0.0
    ideal = float(np.sum(np.sort(gains)[::-1] * discount))
    if ideal <= 0.0:
        return _NAN
    # tie blocks of the judge's scores, best first: each block's mean gain times the sum of its discounts
    _, inverse, counts = np.unique(-s, return_inverse=True, return_counts=True)
    block_gain = np.bincount(inverse.reshape(-1), weights=gains, minlength=len(counts)) / counts
    ends = np.cumsum(counts)
    cum = np.concatenate([[0.0], np.cumsum(discount)])
    block_discount = cum[ends] - cum[ends - counts]
    return float(np.sum(block_gain * block_discount)) / ideal


def group_values(scores: Any, gold: Any, best: Any, rank_gold: bool, k: int = NDCG_K) -> dict[str, float]:
    """Every metric of one valid group: `gold` the group's gold values (higher is better; ignored where
    `rank_gold` is False: gold_best only, then only top1_acc), `best` the gold-best mask."""
    out = {"top1_acc": top1_acc(scores, best)}
    if rank_gold:
        out.update(group_acc=group_acc(scores, gold), kendall_tau=kendall_tau(scores, gold),
                   spearman_rho=spearman_rho(scores, gold), ndcg_at_k=ndcg_at_k(scores, gold, k))
    return out


def _reason(metric: str, value: float, scores: np.ndarray, gold: np.ndarray | None, best: np.ndarray) -> str:
    if not math.isnan(value):
        return ""
    if metric == "top1_acc":
        return NO_BEST if not best.any() else ALL_BEST
    if gold is not None and np.ptp(gold) == 0:
        return GOLD_TIED
    if metric in SIGNED_METRICS and np.ptp(scores) == 0:
        return JUDGE_TIED
    return "undefined"


# --- records -> groups -----------------------------------------------------------------------------------


def _column(df: pd.DataFrame, col: str) -> pd.Series:
    import pandas as pd

    return df[col] if col in df.columns else pd.Series([None] * len(df), index=df.index, dtype=object)


def group_details(records: pd.DataFrame, warnings: list[str], ndcg_k: int = NDCG_K) -> pd.DataFrame:
    """One row per group (`DETAIL_COLUMNS`) from the group rows of a records frame (as normalised by
    `mjbench.records.read_records`; other rows are ignored)."""
    import pandas as pd

    df = records[is_group_record(records)].copy()
    if df.empty:
        return pd.DataFrame(columns=list(DETAIL_COLUMNS))
    for col in GROUP_KEY:
        df[col] = df[col].astype(str)
    df["candidate"] = df["candidate"].astype(str)
    df["status"] = _column(df, "status").where(_column(df, "status").notna(), "ok")
    for col in ("score_0", "gold_score", "gold_rank"):
        df[col] = pd.to_numeric(_column(df, col), errors="coerce").astype(float)
    try:  # the records reader has read it already; a frame built by hand is held to the same rule
        df["gold_best"] = _column(df, "gold_best").map(read_flag)
    except ValueError as exc:
        raise DataError(f"records: column gold_best: {exc}") from None
    dup = df.duplicated(GROUP_KEY + ["candidate"], keep="last")
    if dup.any():
        warnings.append(f"records: {int(dup.sum())} duplicate group record(s) of the same judge, task, item, "
                        "scale and candidate; the last of each is used")
        df = df[~dup]
    cluster = _column(df, "cluster")
    prompt = _column(df, "prompt")
    df["_cluster"] = [f"cluster\x1f{t}\x1f{c}" if not is_blank(c) else f"prompt\x1f{p}" if not is_blank(p)
                      else f"item\x1f{t}\x1f{i}"
                      for t, c, p, i in zip(df["task"], cluster, prompt, df["item_id"], strict=True)]

    rows: list[dict[str, Any]] = []
    small, no_gold = {}, {}
    for key, g in df.groupby(GROUP_KEY, sort=True):
        where = dict(zip(GROUP_KEY, key, strict=True))
        scope = (where["perspective"], where["judge"], where["task"], where["scale"])
        g = g.sort_values("candidate", kind="mergesort")
        if len(g) < 2:
            small[scope] = small.get(scope, 0) + 1
            continue
        score_gold, rank_gold = g["gold_score"].to_numpy(float), g["gold_rank"].to_numpy(float)
        flags = g["gold_best"].tolist()
        if np.isfinite(score_gold).all():
            kind, gold = "score", score_gold
        elif np.isfinite(rank_gold).all():
            kind, gold = "rank", -rank_gold
        elif any(f is not None for f in flags):
            kind, gold = "best", None
        else:
            no_gold[scope] = no_gold.get(scope, 0) + 1
            continue
        best = (gold == gold.max()) if gold is not None else np.array([bool(f) for f in flags])
        scores = g["score_0"].to_numpy(float)
        ok = (g["status"] == "ok").to_numpy() & np.isfinite(scores)
        valid = bool(ok.all())
        row: dict[str, Any] = {**where, "cluster": str(g["_cluster"].iloc[-1]), "candidates": len(g),
                               "invalid_candidates": int((~ok).sum()), "valid": valid, "gold": kind}
        metrics = ("top1_acc",) if gold is None else ("top1_acc", *RANK_METRICS)
        for m in GROUP_METRICS:
            row[m], row[f"why_{m}"] = _NAN, ""
        if valid:
            values = group_values(scores, gold, best, gold is not None, ndcg_k)
            for m in metrics:
                row[m] = values[m]
                row[f"why_{m}"] = _reason(m, values[m], scores, gold, best)
        else:  # counts wrong where the gold defines the share; no correlation
            shares = {"top1_acc": top1_acc(np.zeros(len(g)), best)}
            if gold is not None:
                shares["group_acc"] = group_acc(np.arange(len(g)), gold)  # NaN only where gold all ties
            for m in metrics:
                defined = m in shares and not math.isnan(shares[m])
                row[m] = 0.0 if defined else _NAN
                row[f"why_{m}"] = "" if defined else (INVALID if m not in shares else
                                                      _reason(m, _NAN, scores, gold, best))
        for m in GROUP_METRICS:
            if m not in metrics:
                row[f"why_{m}"] = "gold_best only"
        rows.append(row)
    for (p, j, t, s), count in sorted(small.items()):
        warnings.append(f"{p}: judge {j!r}, task {t!r}, scale {s!r}: {count} group(s) with fewer than two "
                        "candidates are left out")
    for (p, j, t, s), count in sorted(no_gold.items()):
        warnings.append(f"{p}: judge {j!r}, task {t!r}, scale {s!r}: {count} group(s) without gold_score, "
                        "gold_rank or gold_best on every candidate are left out")
    out = pd.DataFrame(rows, columns=list(DETAIL_COLUMNS))
    for m in GROUP_METRICS:
        out[m] = out[m].astype(float)
    out["valid"] = out["valid"].astype(bool)
    return out


# --- subsets -----------------------------------------------------------------------------------------------


def metric_row(where: dict[str, Any], metric: str, value: float, n: int,
               ci: tuple[float, float] = (_NAN, _NAN)) -> dict[str, Any]:
    """One row of metrics.csv (long format); `mjbench.metrics` writes its rows with it too."""
    return {**where, "metric": metric, "value": float(value), "n": int(n), "ci_low": ci[0], "ci_high": ci[1]}


def bootstrap_mean_interval(values: Any, clusters: Any = None, *, seed: int = SEED, key: str = "",
                            resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the mean of per-group values, clusters of groups drawn with replacement
    (None: each group its own cluster), seeded by `seed` and `key`; NaN, NaN with fewer than two clusters."""
    y = np.asarray(values, float)
    if len(y) == 0:
        return (_NAN, _NAN)
    codes = np.arange(len(y)) if clusters is None else cluster_codes(clusters)
    g = int(codes.max()) + 1
    if g < 2:
        return (_NAN, _NAN)
    totals = np.bincount(codes, weights=y, minlength=g)
    sizes = np.bincount(codes, minlength=g).astype(float)
    return bootstrap_means(totals, sizes, rng_for(seed, key), resamples, confidence)


def _subset_rows(where: dict[str, Any], g: pd.DataFrame, intervals: bool, seed: int,
                 resamples: int) -> list[dict[str, Any]]:
    name = "|".join(str(where[k]) for k in ("judge", "task", "scale", "perspective", "subcategory"))
    rows = []
    for m in GROUP_METRICS:
        eligible = g[g[f"why_{m}"] != "gold_best only"]
        if eligible.empty:
            continue  # the gold of this subset does not define the metric: no row
        counted = eligible[eligible[m].notna()]
        answered = bool(counted["valid"].any())
        value = float(counted[m].mean()) if answered else _NAN
        ci = (_NAN, _NAN)
        if intervals and answered:
            key = f"groups|{name}|{m}"
            if m in SHARE_METRICS:
                ci = share_interval(counted[m].to_numpy(bool), counted["cluster"].to_numpy(), seed=seed, key=key,
                                    resamples=resamples)
            else:
                ci = bootstrap_mean_interval(counted[m].to_numpy(float), counted["cluster"].to_numpy(), seed=seed,
                                             key=key, resamples=resamples)
        rows.append(metric_row(where, m, value, len(counted), ci))
    rows.append(metric_row(where, GROUP_INVALID, float((~g["valid"]).mean()), len(g)))
    return rows


def macro_rows(sub_rows: list[dict[str, Any]], metrics: Any = None) -> list[dict[str, Any]]:
    """ALL_MACRO: per judge, task, scale and perspective, the mean of the defined subcategory values of each
    metric (of `metrics` only, where given); `mjbench.metrics` uses it for the pairwise metrics too."""
    values: dict[tuple[Any, ...], list[float]] = {}
    for r in sub_rows:
        if r["subcategory"] != ALL and (metrics is None or r["metric"] in metrics):
            values.setdefault((*(r[k] for k in _LEVEL), r["metric"]), []).append(r["value"])
    rows = []
    for key, vals in sorted(values.items()):
        defined = [v for v in vals if not math.isnan(v)]
        where = {**dict(zip(_LEVEL, key[:-1], strict=True)), "subcategory": ALL_MACRO}
        rows.append(metric_row(where, key[-1], sum(defined) / len(defined) if defined else _NAN, len(defined)))
    return rows


def group_metrics(records: pd.DataFrame, warnings: list[str], *, intervals: bool = True, seed: int = SEED,
                  resamples: int = RESAMPLES, ndcg_k: int = NDCG_K) -> GroupResult:
    """The metrics rows (metrics.csv's long format) of every group in `records` (see the module docstring)
    and the per-group details."""
    if int(ndcg_k) < 1:
        raise ValueError(f"ndcg_k must be 1 or more, not {ndcg_k}")
    details = group_details(records, warnings, int(ndcg_k))
    rows: list[dict[str, Any]] = []
    if details.empty:
        return GroupResult(rows, details, int(ndcg_k))
    sub_rows: list[dict[str, Any]] = []
    for key, g in details.groupby(_LEVEL + ["subcategory"], sort=True):
        sub_rows += _subset_rows(dict(zip(_LEVEL + ["subcategory"], key, strict=True)), g, intervals, seed,
                                 resamples)
    for key, g in details.groupby(_LEVEL, sort=True):
        where = dict(zip(_LEVEL, key, strict=True))
        rows += _subset_rows({**where, "subcategory": ALL}, g, intervals, seed, resamples)
        _warn_undefined(where, g, warnings)
    rows = sub_rows + rows
    rows += macro_rows(sub_rows)
    return GroupResult(rows, details, int(ndcg_k))


def undefined_counts(g: pd.DataFrame, metric: str) -> dict[str, int]:
    """reason -> number of groups of `g` (details rows) whose `metric` is NaN for that reason."""
    why = g[f"why_{metric}"]
    why = why[(why != "") & (why != "gold_best only")]
    return {str(k): int(v) for k, v in sorted(why.value_counts().items())}


def undefined_reason(g: pd.DataFrame, metric: str) -> str:
    """Why a subset's `metric` is NaN: `undefined: <reason> in k/n groups` (reasons joined), or empty."""
    counts = undefined_counts(g, metric)
    counts.pop(INVALID, None)  # reported as failed / invalid elsewhere
    if not counts:
        return ""
    n = int((g[f"why_{metric}"] != "gold_best only").sum())
    return "undefined: " + ", ".join(f"{why} in {k}/{n} groups" for why, k in counts.items())


def _warn_undefined(where: dict[str, Any], g: pd.DataFrame, warnings: list[str]) -> None:
    scope = f"{where['perspective']}: judge {where['judge']!r}, task {where['task']!r}, scale {where['scale']!r}"
    valid = g[g["valid"]]
    if g["valid"].sum() < len(g):
        warnings.append(f"{scope}: {len(g) - int(g['valid'].sum())} of {len(g)} group(s) have a candidate without "
                        "a valid score; they count as wrong in group_acc and top1_acc and are left out of the "
                        "correlations and nDCG")
    parts = []
    for m in GROUP_METRICS:
        counts = undefined_counts(valid, m)
        if counts:
            parts.append(f"{m} in " + ", ".join(f"{k} ({why})" for why, k in counts.items()))
    if parts:
        warnings.append(f"{scope}: undefined (NaN) group values: {'; '.join(parts)}")
