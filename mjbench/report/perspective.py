"""Per-perspective reports: accuracy per judge, scale and subcategory, pair-mode diagnostics, bias by axis
and group, records by status, the data each task loaded and dropped, and the judges that failed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mjbench.groups import GROUP_INVALID, GROUP_METRICS, SIGNED_METRICS, is_group_record, undefined_reason
from mjbench.metrics import ALL, ALL_MACRO, BIAS, BIAS_GROUP_METRICS, OVERALL, MetricsResult
from mjbench.report.reasons import judge_failures, no_verdict_reason, select
from mjbench.report.tables import Section, Table, ci, md_block, md_cell, missing, pct, perspective_rank, slug

if TYPE_CHECKING:
    import pandas as pd

STATUSES = ("ok", "parse_error", "refused", "error")
BIAS_NORMALISATION_NOTES = {
    "minmax": "Scores min-max normalised per judge, task and scale (not across tasks: a task's numbers do not "
              "depend on which other tasks ran beside it).",
    "scale": "Scores normalised by the scale's bounds (min-max per judge, task and scale where a scale has "
             "none).",
    "none": "Raw scores, not normalised (as some of MJ-Bench's published tables): ACC's 0.1 tolerance is in the "
            "judge's own units, and NDS and GES assume non-negative scores.",
}
BIAS_AVERAGE_NOTES = {
    "items": "Per axis and overall: the mean over the items of their group's value (each image counts once).",
    "groups": "Per axis and overall: the mean over the groups (each group counts once, as MJ-Bench's published "
              "tables); n = groups.",
}


class _Lookup:
    """metrics rows by (judge, task, scale, perspective, subcategory, metric)."""

    def __init__(self, m: pd.DataFrame):
        self.rows = {(r.judge, r.task, r.scale, r.perspective, r.subcategory, r.metric): r
                     for r in m.itertuples(index=False)}

    def get(self, key: tuple[Any, ...], metric: str, attr: str = "value") -> Any:
        row = self.rows.get((*key, metric))
        return None if row is None else getattr(row, attr)

    def pct(self, key: tuple[Any, ...], metric: str) -> str:
        return pct(self.get(key, metric))

    def n(self, key: tuple[Any, ...], metric: str) -> str:
        n = self.get(key, metric, "n")
        return "" if n is None else str(int(n))

    def ci(self, key: tuple[Any, ...], metric: str) -> str:
        return ci(self.get(key, metric, "ci_low"), self.get(key, metric, "ci_high"))


class _Context:
    """What every table of a section needs: the metrics lookup, the records and the recorded failures."""

    def __init__(self, metrics: MetricsResult, records: pd.DataFrame | None, run_info: dict[str, Any]):
        self.metrics = metrics
        self.look = _Lookup(metrics.metrics)
        self.records = records
        self.failures = judge_failures(run_info)

    def note(self, key: tuple[str, str, str, str, str]) -> str:
        """`failed: ...` where the subset (judge, task, scale, perspective, subcategory) has items and none
        has a valid verdict; else empty."""
        if self.look.get(key, "invalid_rate") != 1.0:
            return ""
        j, t, s, p, sub = key
        where = {"judge": j, "task": t, "scale": s, "perspective": p}
        if sub not in (ALL, ALL_MACRO, OVERALL):
            where["subcategory"] = sub
        return no_verdict_reason(j, select(self.records, **where), self.failures)


def interval_method(metrics: MetricsResult) -> str:
    """How the metrics' intervals were computed (MetricsResult.interval_method where the metrics say)."""
    return getattr(metrics, "interval_method", None) or "95% Wilson score interval, items taken as independent"


def _keys(m: pd.DataFrame, metrics: tuple[str, ...]) -> list[tuple[str, str, str, str]]:
    sub = m[m["metric"].isin(metrics)]
    keys = set(zip(sub["judge"], sub["task"], sub["scale"], sub["subcategory"], strict=True))
    return sorted(keys, key=lambda k: (k[0], k[1], k[2], k[3] not in (ALL, OVERALL), k[3]))


def _pairwise_tables(m: pd.DataFrame, p: str, cx: _Context) -> list[Table]:
    look = cx.look
    keys = _keys(m, ("acc_with_tie", "gold_tie_excluded"))
    tables = []
    if keys:
        head = ["judge", "task", "scale"]
        cols = ["acc w/ tie", "95% CI", "acc w/o tie", "tie rate", "invalid rate", "gold ties excluded", "n"]

        def cells(k: tuple[str, str, str, str, str]) -> list[str]:
            return [look.pct(k, "acc_with_tie"), look.ci(k, "acc_with_tie"), look.pct(k, "acc_without_tie"),
                    look.pct(k, "tie_rate"), look.pct(k, "invalid_rate"), look.n(k, "gold_tie_excluded"),
                    look.n(k, "acc_with_tie")]

        per_scale = [[j, t, s] + cells((j, t, s, p, ALL)) + [look.pct((j, t, s, p, ALL_MACRO), "acc_with_tie"),
                                                             cx.note((j, t, s, p, ALL))]
                     for j, t, s, sub in keys if sub == ALL]
        ci_note = f"95% CI of acc w/ tie: {interval_method(cx.metrics)}."
        tables.append(Table("Per judge and scale (all items)", head + cols + ["acc w/ tie (macro)", "note"],
                            per_scale, note=ci_note))
        per_sub = [[j, t, s, sub] + cells((j, t, s, p, sub)) + [cx.note((j, t, s, p, sub))]
                   for j, t, s, sub in keys if sub not in (ALL, ALL_MACRO)]
        tables.append(Table("Per subcategory", head + ["subcategory"] + cols + ["note"], per_sub))
    order_metrics = ("acc_with_tie_order01", "acc_with_tie_order10", "consistency", "both_orders_invalid_rate")
    order_rows = [[j, t, s, sub] + [look.pct((j, t, s, p, sub), name) for name in order_metrics[:3]]
                  + [look.n((j, t, s, p, sub), "consistency"),
                     look.pct((j, t, s, p, sub), "both_orders_invalid_rate"),
                     look.n((j, t, s, p, sub), "both_orders_invalid_rate")]
                  for j, t, s, sub in _keys(m, order_metrics) if sub != ALL_MACRO]
    if order_rows:
        tables.append(Table(
            "Pair mode: accuracy per image order and consistency",
            ["judge", "task", "scale", "subcategory", "acc w/ tie (order 01)", "acc w/ tie (order 10)",
             "consistency", "n (two valid verdicts)", "both orders invalid", "n (both orders)"], order_rows,
            note="consistency: share of the items with a valid verdict in both orders whose verdicts agree; "
                 "both orders invalid: share of the items run in both orders with no valid verdict in either."))
    return tables


def _raw(v: Any) -> str:
    """A value that is not a fraction (a score gap, a temperature, nats): four significant digits."""
    return "n/a" if missing(v) else f"{float(v):.4g}"


def _gold_tables(m: pd.DataFrame, p: str, cx: _Context) -> list[Table]:
    """Where a task has gold ties or both_bad, graded or soft labels: the metrics of mjbench.gold."""
    look, tables = cx.look, []
    keys = [k for k in _keys(m, ("acc_exact",)) if k[3] != ALL_MACRO]
    if keys:
        rows = [[j, t, s, sub, look.pct((j, t, s, p, sub), "acc_exact"), look.ci((j, t, s, p, sub), "acc_exact"),
                 look.pct((j, t, s, p, sub), "acc_half_credit"), look.pct((j, t, s, p, sub), "acc_tie_calibrated"),
                 _raw(look.get((j, t, s, p, ALL), "tie_epsilon")) if sub == ALL else "",
                 look.n((j, t, s, p, ALL), "tie_epsilon") if sub == ALL else "", look.n((j, t, s, p, sub), "acc_exact")]
                for j, t, s, sub in keys]
        tables.append(Table(
            "All items, gold ties included", ["judge", "task", "scale", "subcategory", "exact", "95% CI",
                                              "half credit", "tie-calibrated", "tie epsilon", "fitted on n", "n"],
            rows, note="exact: verdict equals the gold label (0, 1, tie or both_bad); half credit: 1 exact, 0 when "
                       "both name an image and differ, else 0.5; tie-calibrated: the verdict re-derived from the "
                       "score gap, tie when |s0 - s1| <= tie epsilon (a raw score gap, fitted to maximise "
                       "accuracy; gold both_bad counts as a tie); n/a for judges without scores."))
    levels = sorted({str(x) for x in m["metric"] if str(x).startswith("acc_strength_") and x != "acc_strength_weighted"},
                    key=lambda x: float(x.removeprefix("acc_strength_")))
    keys = [k for k in _keys(m, ("acc_strength_weighted",)) if k[3] != ALL_MACRO]
    if keys:
        rows = [[j, t, s, sub, look.pct((j, t, s, p, sub), "acc_strength_weighted")]
                + [f"{look.pct((j, t, s, p, sub), lv)} ({look.n((j, t, s, p, sub), lv) or 0})" for lv in levels]
                + [look.n((j, t, s, p, sub), "acc_strength_weighted")] for j, t, s, sub in keys]
        tables.append(Table(
            "Graded labels (label_strength)", ["judge", "task", "scale", "subcategory", "strength-weighted"]
            + [f"|strength| {lv.removeprefix('acc_strength_')} (n)" for lv in levels] + ["n"], rows,
            note="Accuracy per level of |label_strength| and weighted by it, over the items with gold 0 or 1."))
    keys = [k for k in _keys(m, ("brier", "acc_decisive")) if k[3] != ALL_MACRO]
    if keys:
        rows = [[j, t, s, sub] + [_raw(look.get((j, t, s, p, sub), x)) for x in ("brier", "log_loss", "ece")]
                + [look.pct((j, t, s, p, sub), "acc_decisive"), look.n((j, t, s, p, sub), "acc_decisive"),
                   _raw(look.get((j, t, s, p, ALL), "bt_temperature")) if sub == ALL else "",
                   look.n((j, t, s, p, sub), "brier")] for j, t, s, sub in keys]
        tables.append(Table(
            "Soft labels (label_prob)", ["judge", "task", "scale", "subcategory", "Brier", "log loss", "ECE",
                                         "acc decisive", "n decisive", "BT temperature", "n"], rows,
            note="The judge's probability that image0 is preferred, p = sigmoid((s0 - s1) / T) with T fitted by "
                 "maximum likelihood per judge, task and scale (verdict-only: 1, 0 or 0.5), against the vote "
                 "share y: Brier = mean (p - y)^2, log loss in nats, ECE over 10 bins of p (lower is better); "
                 "acc decisive: accuracy on the items with |y - 0.5| >= 0.2."))
    return tables


GROUP_LABELS = {"top1_acc": "top-1", "kendall_tau": "Kendall tau", "spearman_rho": "Spearman rho",
                "group_acc": "group acc", "ndcg_at_k": "nDCG@k"}


def corr(v: Any) -> str:
    """A correlation in [-1, 1] (Kendall tau, Spearman rho): three decimals, `n/a` where undefined."""
    return "n/a" if missing(v) else f"{float(v):.3f}"


def corr_ci(lo: Any, hi: Any) -> str:
    return "" if missing(lo) or missing(hi) else f"{float(lo):.3f} to {float(hi):.3f}"


def group_cell(metric: str, v: Any) -> str:
    """A group metric's value as a table cell: correlations as numbers, the rest as percentages."""
    return corr(v) if metric in SIGNED_METRICS else pct(v)


def group_note(cx: _Context, key: tuple[str, str, str, str, str], metrics: tuple[str, ...] = GROUP_METRICS,
               labels: dict[str, str] | None = None) -> str:
    """Why a group subset's cells say n/a: `failed: ...` where no group has a valid score for every
    candidate, else per metric the reasons its groups are undefined (gold all tied, judge scores all equal),
    or that the gold names only the best candidates."""
    j, t, s, p, sub = key
    details = getattr(cx.metrics, "candidate_groups", None)
    if details is None or details.empty:
        return ""
    mask = ((details["judge"] == j) & (details["task"] == t) & (details["scale"] == s)
            & (details["perspective"] == p))
    if sub not in (ALL, ALL_MACRO):
        mask &= details["subcategory"] == sub
    g = details[mask]
    if g.empty or sub == ALL_MACRO:
        return ""
    if not g["valid"].any():
        where = {"judge": j, "task": t, "scale": s, "perspective": p}
        if sub != ALL:
            where["subcategory"] = sub
        recs = select(cx.records, **where)
        if recs is not None:
            recs = recs[is_group_record(recs)]
        return no_verdict_reason(j, recs, cx.failures)
    names = labels or GROUP_LABELS
    parts = []
    if (g["gold"] == "best").all() and any(m != "top1_acc" for m in metrics):
        parts.append("gold names only the best candidates (gold_best): top-1 only")
    for m in metrics:
        if missing(cx.look.get(key, m)):
            why = undefined_reason(g, m)
            if why:
                parts.append(f"{names.get(m, m)}: {why}")
    return "; ".join(parts)


def _group_tables(m: pd.DataFrame, p: str, cx: _Context) -> list[Table]:
    """Groups of N candidates (mjbench.groups): per judge, task and scale, and per subcategory."""
    keys = _keys(m, (GROUP_INVALID,))
    if not keys:
        return []
    look = cx.look
    k = int(getattr(cx.metrics, "ndcg_k", 10))

    def cells(key: tuple[str, str, str, str, str]) -> list[str]:
        return [look.pct(key, "top1_acc"), look.ci(key, "top1_acc"), corr(look.get(key, "kendall_tau")),
                corr_ci(look.get(key, "kendall_tau", "ci_low"), look.get(key, "kendall_tau", "ci_high")),
                corr(look.get(key, "spearman_rho")), look.pct(key, "group_acc"), look.pct(key, "ndcg_at_k"),
                look.n(key, GROUP_INVALID), look.pct(key, GROUP_INVALID)]

    cols = ["top-1", "95% CI", "Kendall tau", "95% CI (tau)", "Spearman rho", "group acc", f"nDCG@{k}", "groups",
            "invalid", "note"]
    head = ["judge", "task", "scale"]
    per_task = [[j, t, s] + cells((j, t, s, p, ALL)) + [look.pct((j, t, s, p, ALL_MACRO), "top1_acc"),
                                                       group_note(cx, (j, t, s, p, ALL))]
                for j, t, s, sub in keys if sub == ALL]
    per_sub = [[j, t, s, sub] + cells((j, t, s, p, sub)) + [group_note(cx, (j, t, s, p, sub))]
               for j, t, s, sub in keys if sub not in (ALL, ALL_MACRO)]
    note = (f"One prompt, N candidates scored by the judge. top-1: the judge's single highest-scored candidate "
            f"is (one of) the gold best (a tie for the top counts wrong); Kendall tau (tau-b) and Spearman rho "
            f"(average ranks): correlation of the judge's scores with the gold, from -1 to 1, undefined where "
            f"either side is constant; group acc: every pair with different gold ordered right (a judge tie is "
            f"wrong); nDCG@{k}: gains = gold minus the group's lowest, judge ties averaged over their orders "
            f"(k capped at N). A group with a candidate without a valid score is invalid: it counts wrong in "
            f"top-1 and group acc and is left out of tau, rho and nDCG. Values are means over groups (groups: "
            f"the groups of the subset). 95% CI of top-1: as acc w/ tie (over prompt clusters; the Wilson "
            f"interval where every group is its own cluster); of tau: percentile bootstrap over the groups "
            f"(none with fewer than two).")
    return [Table("Groups of candidates (all groups)", head + cols[:-1] + ["top-1 (macro)", "note"], per_task,
                  note=note),
            Table("Groups of candidates per subcategory", head + ["subcategory"] + cols, per_sub)]


def _bias_tables(m: pd.DataFrame, groups: pd.DataFrame | None, normalization: str, cx: _Context,
                 average: str = "items") -> list[Table]:
    keys = _keys(m, BIAS_GROUP_METRICS)
    if not keys:
        return []
    look = cx.look
    rows = []
    for j, t, s, sub in keys:
        k = (j, t, s, BIAS, sub)
        constant = look.get((j, t, s, BIAS, OVERALL), "bias_constant_scores")
        rows.append([j, t, s, sub, look.pct(k, "bias_acc"), look.pct(k, "bias_nds"), look.pct(k, "bias_ges"),
                     look.pct(k, "invalid_rate"), "yes" if constant == 1.0 else "no", look.n(k, "bias_acc"),
                     cx.note(k)])
    note = (BIAS_NORMALISATION_NOTES.get(normalization, f"Scores normalised: {normalization}.") + " "
            + BIAS_AVERAGE_NOTES.get(average, f"Averaged over {average}."))
    tables = [Table("Bias per axis", ["judge", "task", "scale", "axis", "ACC", "NDS", "GES", "invalid rate",
                                      "constant scores", "n", "note"], rows, note=note)]
    if groups is not None and len(groups):
        g = groups.sort_values(["judge", "task", "scale", "group"], kind="mergesort")
        grows = [[str(r.judge), str(r.task), str(r.scale), str(r.group), str(int(r.n)), pct(r.mean_score),
                  pct(r.bias_acc), pct(r.bias_nds), pct(r.bias_nds_raw), pct(r.bias_ges)]
                 for r in g.itertuples(index=False)]
        tables.append(Table("Bias per group (normalised scores)", ["judge", "task", "scale", "group", "n",
                                                                   "mean score", "ACC", "NDS", "NDS (raw)",
                                                                   "GES"], grows, note=note))
    return tables


def _status_table(records: pd.DataFrame | None, p: str) -> list[Table]:
    """Refusals and parse failures are a reported category: counts per status from the records."""
    if records is None or records.empty or "perspective" not in records.columns:
        return []
    r = records[records["perspective"].astype(str) == p]
    if r.empty:
        return []
    status = r["status"].where(r["status"].notna(), "ok").astype(str)
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    for j, t, s, st in zip(r["judge"].astype(str), r["task"].astype(str), r["scale"].astype(str), status,
                           strict=True):
        c = counts.setdefault((j, t, s), {})
        c[st] = c.get(st, 0) + 1
    rows = [[j, t, s] + [str(c.get(st, 0)) for st in STATUSES] + [str(sum(c.values()))]
            for (j, t, s), c in sorted(counts.items())]
    return [Table("Records by status", ["judge", "task", "scale", *STATUSES, "records"], rows)]


def _data_table(tasks: list[str], task_counts: dict[str, Any]) -> list[Table]:
    """Items loaded and dropped per task, and why (run_info["task_counts"]); nothing where it is absent."""
    rows = []
    for task in sorted(tasks):
        c = task_counts[task]
        why = c.get("why") or {}
        reasons = sorted((str(reason), count) for reason, count in why.items())
        rows.append([task, str(c.get("loaded", "")), str(c.get("dropped", "")),
                     "; ".join(f"{reason}: {count}" for reason, count in reasons)])
    if not rows:
        return []
    return [Table("Data", ["task", "loaded", "dropped", "why dropped"], rows)]


def _failure_table(p: str, records: pd.DataFrame | None, failures: dict[str, str]) -> list[Table]:
    """Judges that could not run (run_info["judge_failures"]) among those with records in this perspective,
    or with no record at all (they failed before judging anything)."""
    judges_here: set[str] = set()
    judges_anywhere: set[str] = set()
    if records is not None and not records.empty:
        judges_anywhere = set(records["judge"].astype(str))
        judges_here = set(records.loc[records["perspective"].astype(str) == p, "judge"].astype(str))
    rows = [[j, why] for j, why in sorted(failures.items()) if j in judges_here or j not in judges_anywhere]
    return [Table("Judge failures", ["judge", "reason"], rows)] if rows else []


def _signed_pp(v: Any) -> str:
    return "n/a" if missing(v) else f"{float(v) * 100:+.1f}"


def _p(v: Any) -> str:
    return "n/a" if missing(v) else f"{float(v):.3g}"


def comparison_table(comparisons: pd.DataFrame | None, p: str, method: str) -> list[Table]:
    """Paired differences between judges on the same items (MetricsResult.comparisons, where computed):
    pooled rows (task ALL, subcategory ALL) first."""
    if comparisons is None or comparisons.empty:
        return []
    c = comparisons[comparisons["perspective"].astype(str) == p]
    if c.empty:
        return []

    def key(r: Any) -> tuple[Any, ...]:
        return (str(r.task) != ALL, str(r.task), str(r.subcategory) != ALL, str(r.subcategory), str(r.scale),
                str(r.judge_a), str(r.judge_b))

    rows = [[str(r.judge_a), str(r.judge_b), str(r.task), str(r.subcategory), str(r.scale), _signed_pp(r.diff),
             ci(r.ci_low, r.ci_high), _p(r.p_value), _p(r.p_adjusted),
             "yes" if not missing(r.p_adjusted) and float(r.p_adjusted) < 0.05 else "no",
             "" if missing(r.n) else str(int(r.n))]
            for r in sorted(c.itertuples(index=False), key=key)]
    note = ("diff: accuracy with ties of judge A minus judge B (percentage points) on the items both judged; "
            f"interval: {method}; p: exact McNemar test, adjusted (Holm) across the pairs of one table; "
            "different: adjusted p below 0.05.")
    return [Table("Which judge is better: paired comparisons",
                  ["judge A", "judge B", "task", "subcategory", "scale", "diff (pp)", "95% CI", "p", "p adjusted",
                   "different", "n"], rows, note=note)]


def _task_perspectives(metrics: pd.DataFrame, records: pd.DataFrame | None,
                       run_info: dict[str, Any]) -> dict[str, str]:
    """task -> perspective: from the run's task configs, else from the records and metrics."""
    found: dict[str, str] = {}
    for frame in (metrics, records):
        if frame is not None and not frame.empty:
            found.update(zip(frame["task"].astype(str), frame["perspective"].astype(str), strict=True))
    tasks = run_info.get("tasks") if isinstance(run_info.get("tasks"), dict) else {}
    for name, cfg in tasks.items():
        if isinstance(cfg, dict) and cfg.get("perspective"):
            found[str(name)] = str(cfg["perspective"])
    return found


def build_sections(records: pd.DataFrame | None, metrics: MetricsResult,
                   run_info: dict[str, Any] | None = None) -> tuple[list[Section], list[str]]:
    """One section per perspective present in the metrics, records or task configs, in the MJ-Bench order;
    and the warnings that belong to no section (e.g. task counts of a task whose perspective is unknown)."""
    info = run_info or {}
    m = metrics.metrics
    cx = _Context(metrics, records, info)
    task_counts = info.get("task_counts") if isinstance(info.get("task_counts"), dict) else {}
    task_perspective = _task_perspectives(m, records, info)
    names = set(m["perspective"].astype(str))
    if records is not None and "perspective" in records.columns:
        names |= set(records["perspective"].astype(str))
    names |= {task_perspective[t] for t in task_counts if t in task_perspective}
    extra = [f"task {t}: data counts not shown (its perspective is unknown)"
             for t in sorted(task_counts) if t not in task_perspective]
    sections, taken = [], {"index"}  # reports/index.html is the overview
    for p in sorted(names, key=perspective_rank):
        pm = m[m["perspective"] == p]
        groups = metrics.bias_groups if p == BIAS else None
        tables = (_data_table([t for t in task_counts if task_perspective.get(t) == p], task_counts)
                  + _pairwise_tables(pm, p, cx) + _gold_tables(pm, p, cx) + _group_tables(pm, p, cx)
                  + _bias_tables(pm, groups, metrics.bias_normalization, cx, getattr(metrics, "bias_average", "items"))
                  + comparison_table(getattr(metrics, "comparisons", None), p, interval_method(metrics))
                  + _status_table(records, p) + _failure_table(p, records, cx.failures))
        warnings = [w for w in metrics.warnings if w.startswith(f"{p}: ")]
        sections.append(Section(p, slug(p, taken), tables, warnings))
    return sections, extra


def perspective_md(section: Section) -> str:
    parts = [f"# {md_cell(section.perspective)}\n"]
    parts += [md_block(t) for t in section.tables]
    if section.warnings:
        parts.append("## Warnings\n\n" + "".join(f"- {md_cell(w)}\n" for w in section.warnings))
    return "\n".join(parts)
