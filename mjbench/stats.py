"""Interval and test machinery for accuracies (numpy, scipy, pandas; imports nothing from mjbench, so that
metrics can use it: it sits below `metrics` in the layers).

Items of a preference set are not independent: MJ-Bench and most sets reuse one prompt for several items,
and a judge that misreads a prompt misreads all of its items. Every accuracy interval is therefore
computed over clusters (cluster = the records' `cluster` column where present, else `prompt`, else the
item itself; see `mjbench.metrics.pairwise_verdicts`).

`share_interval` (accuracies), the 95 % interval of a share k/n:
- every cluster one item: the Wilson score interval (closed form, correct at 0/n and n/n);
- else the wider, on each side, of (a) the percentile interval of a cluster bootstrap (clusters drawn with
  replacement, seeded per subset) and (b) the Wilson interval at the Korn-Graubard effective sample size
  n* = n / deff * (t(n-1) / t(G-1))^2 (Korn and Graubard 1998), where the design effect
  deff = max(1, V_cluster / V_binomial) compares the linearised variance of the ratio estimator over the
  G clusters with the binomial one, and the t quantiles widen the interval when clusters are few.
  (a) alone collapses to [1, 1] at n/n and is too narrow with few clusters; (b) keeps width at the
  boundary, where deff cannot be estimated (no variance) and is taken as 1.
  Coverage, measured by simulation, is in the README ("Metrics").

`diff_interval` (paired differences acc_a - acc_b on the same items): the same rule with the paired
cluster bootstrap of the per-item difference and Newcombe's hybrid score interval for paired proportions
(Newcombe 1998, method 10) at the Korn-Graubard effective sample size of the per-item differences.

`mcnemar_exact`: exact two-sided McNemar test (binomial test of b vs. c on the discordant items; items
taken as independent). `holm`: Holm's step-down adjustment across the pairs of one table.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
INTERVAL_METHOD = (
    "95% interval over prompt clusters (cluster = the `cluster` column, else `prompt`, else the item): "
    "the wider of a seeded cluster-bootstrap percentile interval and the Wilson interval at the "
    "Korn-Graubard effective size (n / design effect, few-cluster t correction); the Wilson interval where "
    "every cluster is one item"
)
DIFF_INTERVAL_METHOD = (
    "95% interval of the paired difference over prompt clusters: the wider of a seeded paired "
    "cluster-bootstrap percentile interval and Newcombe's paired score interval at n / design effect"
)
COMPARISON_COLUMNS = ("judge_a", "judge_b", "task", "perspective", "subcategory", "scale", "diff",
                      "ci_low", "ci_high", "p_value", "p_adjusted", "n")
ALL = "ALL"
_NAN = float("nan")


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_bounds(p: Any, n: Any, confidence: float = CONFIDENCE) -> tuple[Any, Any]:
    """Wilson score interval of a share p observed on n (possibly fractional, an effective size) items;
    scalars or numpy arrays; NaN where n is 0."""
    p, n = np.asarray(p, float), np.asarray(n, float)
    z2 = _z(confidence) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        center = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = math.sqrt(z2) / (1 + z2 / n) * np.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    lo, hi = np.clip(center - half, 0.0, 1.0), np.clip(center + half, 0.0, 1.0)
    bad = ~(n > 0)
    return np.where(bad, _NAN, lo)[()], np.where(bad, _NAN, hi)[()]


def rng_for(seed: int, key: str) -> np.random.Generator:
    """A generator seeded by the run seed and a subset's name: a subset's interval does not depend on which
    other subsets were computed, or in what order."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([int(seed), digest])


def cluster_codes(clusters: Any) -> np.ndarray:
    """Integer codes 0..G-1 of cluster labels, in sorted label order: the same codes (and so the same
    bootstrap draws) whatever the order of the records."""
    arr = np.asarray(clusters)
    if arr.dtype.kind not in "iub":
        arr = arr.astype(str)
    return np.unique(arr, return_inverse=True)[1].reshape(-1)


def design_effect(values: np.ndarray, codes: np.ndarray) -> float:
    """deff of the mean of per-item values (0/1 correctness, or -1/0/1 paired differences) over clusters
    `codes` (0..G-1): the linearised cluster variance of the ratio estimator over the variance under
    independent items, at least 1. Where every item has the same value the variance is 0 and the ratio
    cannot be estimated: then 1 (the few-cluster factor of `effective_size` still applies)."""
    values = np.asarray(values, float)
    n = len(values)
    g = int(codes.max()) + 1 if n else 0
    if g < 2:
        return float(max(n, 1))
    mean = values.mean()
    v_item = float(np.mean((values - mean) ** 2))
    if v_item <= 0.0:
        return 1.0
    totals = np.bincount(codes, weights=values, minlength=g)
    sizes = np.bincount(codes, minlength=g)
    v_cluster = g / (g - 1) * float(np.sum((totals - mean * sizes) ** 2))
    return max(1.0, v_cluster / (n * v_item))


def effective_size(values: np.ndarray, codes: np.ndarray, confidence: float = CONFIDENCE) -> float:
    """Korn-Graubard effective sample size n / deff * (t(n-1) / t(G-1))^2 of clustered per-item values;
    n where every cluster is one item."""
    n = len(values)
    g = int(codes.max()) + 1 if n else 0
    if g == n:
        return float(n)
    if g < 2:
        return 1.0
    return n / design_effect(values, codes) * _t_ratio(n, g, confidence) ** 2


@lru_cache(maxsize=4096)
def _t_ratio(n: int, g: int, confidence: float) -> float:
    from scipy.stats import t

    q = 0.5 + confidence / 2
    return float(t.ppf(q, n - 1) / t.ppf(q, g - 1))


def bootstrap_means(totals: np.ndarray, sizes: np.ndarray, rng: np.random.Generator, resamples: int,
                     confidence: float) -> tuple[float, float]:
    """Percentile interval of sum(totals) / sum(sizes) over clusters drawn with replacement (in chunks, so
    that memory stays bounded for many clusters)."""
    g = len(sizes)
    chunk = max(1, 2_000_000 // g)
    est = np.empty(resamples)
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        idx = rng.integers(0, g, size=(stop - start, g))
        est[start:stop] = totals[idx].sum(axis=1) / sizes[idx].sum(axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(est, [alpha, 1 - alpha])
    return float(lo), float(hi)


def share_interval(correct: Any, clusters: Any = None, *, seed: int = SEED, key: str = "",
                   resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """95 % interval of the share of true values in `correct` (one per item), items grouped by `clusters`
    (labels; None = every item its own cluster). See the module docstring. NaN, NaN without items."""
    y = np.asarray(correct, float)
    n = len(y)
    if n == 0:
        return (_NAN, _NAN)
    k = float(y.sum())
    codes = np.arange(n) if clusters is None else cluster_codes(clusters)
    g = int(codes.max()) + 1
    if g == n:
        lo, hi = wilson_bounds(k / n, n, confidence)
        return (float(lo), float(hi))
    lo, hi = wilson_bounds(k / n, effective_size(y, codes, confidence), confidence)
    if g >= 2:
        totals = np.bincount(codes, weights=y, minlength=g)
        sizes = np.bincount(codes, minlength=g).astype(float)
        blo, bhi = bootstrap_means(totals, sizes, rng_for(seed, key), resamples, confidence)
        lo, hi = min(float(lo), blo), max(float(hi), bhi)
    return (float(lo), float(hi))


def newcombe_paired(a: float, b: float, c: float, d: float,
                    confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Newcombe's hybrid score interval (1998, method 10) for p_A - p_B on paired items: a = both right,
    b = only A right, c = only B right, d = both wrong (counts may be fractional: an effective size)."""
    n = a + b + c + d
    if n <= 0:
        return (_NAN, _NAN)
    pa, pb = (a + b) / n, (a + c) / n
    l1, u1 = (float(v) for v in wilson_bounds(pa, n, confidence))
    l2, u2 = (float(v) for v in wilson_bounds(pb, n, confidence))
    denom = (a + b) * (c + d) * (a + c) * (b + d)
    num = a * d - b * c
    if num > 0:  # Newcombe's continuity-corrected phi
        num = max(num - n / 2, 0.0)
    phi = num / math.sqrt(denom) if denom > 0 else 0.0
    diff = pa - pb
    dl1, du2, du1, dl2 = pa - l1, u2 - pb, u1 - pa, pb - l2
    lo = diff - math.sqrt(max(0.0, dl1**2 - 2 * phi * dl1 * du2 + du2**2))
    hi = diff + math.sqrt(max(0.0, du1**2 - 2 * phi * du1 * dl2 + dl2**2))
    return (max(-1.0, lo), min(1.0, hi))


def diff_interval(correct_a: Any, correct_b: Any, clusters: Any = None, *, seed: int = SEED, key: str = "",
                  resamples: int = RESAMPLES, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """95 % interval of acc_A - acc_B on the same items (paired): the wider, on each side, of the paired
    cluster bootstrap and Newcombe's paired interval at n / deff (deff of the per-item differences)."""
    ya, yb = np.asarray(correct_a, float), np.asarray(correct_b, float)
    n = len(ya)
    if n == 0:
        return (_NAN, _NAN)
    codes = np.arange(n) if clusters is None else cluster_codes(clusters)
    g = int(codes.max()) + 1
    delta = ya - yb
    scale = effective_size(delta, codes, confidence) / n
    both, only_a = float(np.sum(ya * yb)), float(np.sum(ya * (1 - yb)))
    only_b, neither = float(np.sum((1 - ya) * yb)), float(np.sum((1 - ya) * (1 - yb)))
    lo, hi = newcombe_paired(both * scale, only_a * scale, only_b * scale, neither * scale, confidence)
    if g < n and g >= 2:
        totals = np.bincount(codes, weights=delta, minlength=g)
        sizes = np.bincount(codes, minlength=g).astype(float)
        blo, bhi = bootstrap_means(totals, sizes, rng_for(seed, key), resamples, confidence)
        lo, hi = min(lo, blo), max(hi, bhi)
    return (lo, hi)


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value: a binomial test of b successes in b + c discordant items at 1/2.
    1.0 where no item is discordant."""
    if b + c == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(int(b), int(b + c), 0.5).pvalue)


def holm(p_values: Any) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    p = np.asarray(p_values, float)
    m = len(p)
    if m == 0:
        return p
    order = np.argsort(p, kind="mergesort")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def paired_comparisons(verdicts: pd.DataFrame, *, seed: int = SEED, resamples: int = RESAMPLES,
                       intervals: bool = True) -> pd.DataFrame:
    """Every pair of judges on their common items, per table (task x perspective x subcategory x scale,
    the task's pooled subcategory `ALL`, and per perspective task `ALL` pooling the items of all its tasks),
    with `COMPARISON_COLUMNS`. `verdicts`: one row per judge x task x scale x item with `perspective`,
    `subcategory`, `item_id`, `cluster` and `correct` (bool), gold-tie items left out.
    diff = acc_a - acc_b on the common items (judge_a < judge_b by name), n = common items; p_value = exact
    McNemar; p_adjusted = Holm over the pairs of one table."""
    import pandas as pd

    if verdicts.empty or verdicts["judge"].nunique() < 2:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    v = verdicts[["judge", "task", "perspective", "subcategory", "scale", "item_id", "cluster", "correct"]]
    tables = [v, v.assign(subcategory=ALL), v.assign(task=ALL, item_id=v["task"] + "\x1f" + v["item_id"],
                                                     subcategory=ALL)]
    rows: list[dict[str, Any]] = []
    for frame in tables:
        for key, t in frame.groupby(["task", "perspective", "subcategory", "scale"], sort=True):
            rows += _table_rows(dict(zip(("task", "perspective", "subcategory", "scale"), key, strict=True)),
                                t, seed, resamples, intervals)
    out = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    out["n"] = out["n"].astype(int)
    return out.drop_duplicates(["judge_a", "judge_b", "task", "perspective", "subcategory", "scale"]
                               ).reset_index(drop=True)


def _table_rows(where: dict[str, Any], t: pd.DataFrame, seed: int, resamples: int,
                intervals: bool) -> list[dict[str, Any]]:
    judges, judge_idx = np.unique(t["judge"].to_numpy().astype(str), return_inverse=True)
    if len(judges) < 2:
        return []
    items, item_idx = np.unique(t["item_id"].to_numpy().astype(str), return_inverse=True)
    correct = np.full((len(judges), len(items)), np.nan)
    correct[judge_idx, item_idx] = t["correct"].to_numpy(float)
    clusters = np.empty(len(items), dtype=object)
    clusters[item_idx] = t["cluster"].to_numpy()
    codes = cluster_codes(clusters)
    rows = []
    for i, ja in enumerate(judges):
        for j in range(i + 1, len(judges)):
            jb = judges[j]
            common = ~np.isnan(correct[i]) & ~np.isnan(correct[j])
            n = int(common.sum())
            if not n:
                continue
            ya, yb = correct[i, common], correct[j, common]
            b, c = int(np.sum((ya == 1) & (yb == 0))), int(np.sum((ya == 0) & (yb == 1)))
            key = "|".join([ja, jb, *(str(where[k]) for k in ("task", "perspective", "subcategory", "scale"))])
            ci = (diff_interval(ya, yb, codes[common], seed=seed, key=key, resamples=resamples)
                  if intervals else (_NAN, _NAN))
            rows.append({"judge_a": str(ja), "judge_b": str(jb), **where, "diff": float(ya.mean() - yb.mean()),
                         "ci_low": ci[0], "ci_high": ci[1], "p_value": mcnemar_exact(b, c), "n": n})
    for row, p in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row["p_adjusted"] = float(p)
    return rows


def tied_with_best(comparisons: pd.DataFrame, perspective: str, scale: str, best: str | None = None,
                   alpha: float = 0.05) -> set[str]:
    """The judges statistically tied with the best one in a perspective at a scale: p_adjusted >= alpha in
    the pooled table (task and subcategory `ALL`) against the best. The best judge itself is not in the
    set. `best` defaults to the judge with the highest mean difference against the others (which is the
    highest pooled acc_with_tie where all judges answered the same items); pass it where the ranking comes
    from elsewhere."""
    t = comparisons[(comparisons["task"] == ALL) & (comparisons["subcategory"] == ALL)
                    & (comparisons["perspective"] == perspective) & (comparisons["scale"] == scale)]
    if t.empty:
        return set()
    if best is None:
        gains = [(judge, float(np.mean(np.concatenate([t.loc[t["judge_a"] == judge, "diff"].to_numpy(float),
                                                       -t.loc[t["judge_b"] == judge, "diff"].to_numpy(float)]))))
                 for judge in sorted(set(t["judge_a"]) | set(t["judge_b"]))]
        best = min(gains, key=lambda jg: (-jg[1], jg[0]))[0]
    tied = set()
    for _, r in t[(t["judge_a"] == best) | (t["judge_b"] == best)].iterrows():
        if r["p_adjusted"] >= alpha:
            tied.add(r["judge_b"] if r["judge_a"] == best else r["judge_a"])
    return tied
