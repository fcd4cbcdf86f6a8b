"""The leaderboard: one row per judge x scale, judges' accuracy per perspective with the items behind it.

Every accuracy comes with `<p>_n` (items judged) and `<p>_invalid_rate` (share without a valid verdict), so a
number built on a few answers is visible as such; a judge x perspective without any valid verdict is `n/a`
and the row's `note` says why (`failed: ...`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mjbench.groups import GROUP_INVALID, SIGNED_METRICS, is_group_record, undefined_reason
from mjbench.metrics import ALL, BIAS, BIAS_GROUP_METRICS, OVERALL, MetricsResult
from mjbench.report.reasons import judge_failures, no_verdict_reason, select
from mjbench.report.tables import Table, missing, pct, perspective_rank

if TYPE_CHECKING:
    import pandas as pd

LEADERBOARD_ACCURACY = ("acc_with_tie", "acc_without_tie")
#: gold-label metrics (mjbench.gold) shown where a perspective's tasks have such labels; brier: lower is better
LEADERBOARD_GOLD = ("acc_exact", "acc_half_credit", "acc_tie_calibrated", "acc_strength_weighted", "acc_decisive",
                    "brier")
LOWER_IS_BETTER = ("brier",)
#: group metrics (mjbench.groups) shown for a perspective whose tasks have groups of candidates
LEADERBOARD_GROUP = ("top1_acc", "kendall_tau")
_GROUP_LABELS = {"top1_acc": "top-1", "kendall_tau": "tau"}
GROUP_NOTE = (
    "Groups of candidates (one prompt, N candidates): top-1 (%) = the judge's single highest-scored candidate "
    "is a gold best (a tie for the top counts wrong); tau = Kendall's tau-b between the judge's scores and the "
    "gold (-1 to 1); both averaged over the groups of the perspective's tasks; groups (invalid %): groups "
    "scored and the share with a candidate without a valid score (wrong in top-1, left out of tau).")
_GOLD_LABELS = {"acc_exact": "exact", "acc_half_credit": "half credit", "acc_tie_calibrated": "tie-calibrated",
                "acc_strength_weighted": "strength-weighted", "acc_decisive": "decisive", "brier": "Brier"}
#: an accuracy whose items have a valid verdict for under this share (in %) is marked with MARK
MIN_COVERAGE_PCT = 90
MARK = "\u2020"
LEADERBOARD_NOTE = (
    "Accuracy (%) with and without ties, item-weighted over each perspective (pooled over tasks by item "
    "counts); bias ACC, NDS and GES (%) over all items. n (invalid %): the items judged and the share of them "
    "without a valid verdict (error, parse error, refusal, no prediction); invalid items count as wrong in "
    "w/ tie and are left out of w/o tie. n/a: no number can be given; where the judge failed, the note says "
    "why, else the value is undefined (not run, or no item where the judge chose an image). Where a task has "
    "gold ties, both_bad, graded or soft labels: exact, half credit and tie-calibrated accuracy over all items "
    "(gold ties included), strength-weighted accuracy, accuracy on decisive votes (%), and the Brier score "
    "(0-1, lower is better); see metrics.csv for the rest.")
LEADERBOARD_LEGEND = (f"{MARK} under {MIN_COVERAGE_PCT} % of the items have a valid verdict (invalid rate above "
                      f"{100 - MIN_COVERAGE_PCT} %): the number describes only part of the data.")


def value_columns(p: str, gold: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The value columns of perspective `p`, in order: accuracies (or bias metrics), the gold-label metrics
    `gold` it has, then n and invalid rate."""
    values = list(BIAS_GROUP_METRICS) if p == BIAS else [f"{p}_{a}" for a in (*LEADERBOARD_ACCURACY, *gold)]
    return values + [f"{p}_n", f"{p}_invalid_rate"]


def group_columns(p: str) -> list[str]:
    """The group columns of perspective `p`: top-1 and tau, then groups and their invalid rate."""
    return [f"{p}_{g}" for g in LEADERBOARD_GROUP] + [f"{p}_n_groups", f"{p}_{GROUP_INVALID}"]


def _blocks(board: pd.DataFrame) -> list[tuple[str, list[str], str, str]]:
    """(perspective, value columns, n column, invalid-rate column) of each column block of a board, in
    column order: a perspective's pairwise (or bias) block, then its groups block where it has one."""
    out = []
    for c in board.columns:
        if c.endswith("_n_groups"):
            p = c.removesuffix("_n_groups")
            out.append((p, group_columns(p)[:-2], c, f"{p}_{GROUP_INVALID}"))
        elif c.endswith("_n"):
            p = c.removesuffix("_n")
            out.append((p, value_columns(p, _gold_of(board, p))[:-2], c, f"{p}_invalid_rate"))
    return out


def _gold_of(board: pd.DataFrame, p: str) -> list[str]:
    """The gold-label metrics the board has for perspective `p`."""
    return [g for g in LEADERBOARD_GOLD if f"{p}_{g}" in board.columns]


def _frame(metrics: MetricsResult | pd.DataFrame) -> pd.DataFrame:
    return metrics.metrics if isinstance(metrics, MetricsResult) else metrics


def _pooled(rows: pd.DataFrame) -> float:
    """Item-weighted pooling over tasks: sum(value x n) / sum(n). A task without a valid verdict (value NaN,
    n items) adds its items and no correct answer; the result is NaN only where no task has a value."""
    defined = rows["value"].notna() & (rows["n"] > 0)
    if not defined.any():
        return float("nan")
    return float((rows["value"].fillna(0.0) * rows["n"]).sum() / rows["n"].sum())


def _failed_rows(run_info: dict[str, Any], failures: dict[str, str], present: set[str]) -> list[tuple[str, str]]:
    """(judge, scale) rows for judges that failed before making any record: their configured scales (those
    asked for), else `-`."""
    judges = run_info.get("judges") if isinstance(run_info.get("judges"), dict) else {}
    wanted = (run_info.get("requested") or {}).get("scales") if isinstance(run_info.get("requested"), dict) else None
    rows = []
    for judge in sorted(set(failures) - present):
        cfg = judges.get(judge) if isinstance(judges.get(judge), dict) else {}
        scales = [str(s) for s in cfg.get("scales") or [] if wanted is None or s in wanted]
        rows += [(judge, s) for s in scales or ["-"]]
    return rows


def build_leaderboard(metrics: MetricsResult | pd.DataFrame, records: pd.DataFrame | None = None,
                      run_info: dict[str, Any] | None = None) -> pd.DataFrame:
    """One row per judge x scale. Per pairwise perspective `<p>_acc_with_tie`, `<p>_acc_without_tie`
    (subcategory ALL), for bias `bias_acc`, `bias_nds`, `bias_ges` (overall); then `<p>_n` (items; bias:
    records) and `<p>_invalid_rate`; for a perspective with groups of candidates (only there)
    `<p>_top1_acc`, `<p>_kendall_tau`, `<p>_n_groups`, `<p>_group_invalid_rate` (a perspective with groups
    only has no pairwise columns); last `note`: why a perspective has no number (`failed: ...`), from
    run_info["judge_failures"] where the runner recorded a reason, else from the records. Values are
    fractions, pooled over tasks item-weighted. Judges that failed before making any record get a row too."""
    import pandas as pd

    info = run_info or {}
    failures = judge_failures(info)
    m = _frame(metrics)
    pair = m[(m["perspective"] != BIAS) & (m["subcategory"] == ALL)]
    pair = pair[pair["metric"].isin([*LEADERBOARD_ACCURACY, *LEADERBOARD_GOLD, "invalid_rate"])]
    bias = m[(m["perspective"] == BIAS) & (m["subcategory"] == OVERALL)]
    bias = bias[bias["metric"].isin([*BIAS_GROUP_METRICS, "invalid_rate"])]
    parts = pd.concat([pair, bias], ignore_index=True)
    group_parts = m[(m["subcategory"] == ALL) & m["metric"].isin([*LEADERBOARD_GROUP, GROUP_INVALID])]
    paired = set(parts["perspective"].astype(str))
    grouped = set(group_parts.loc[group_parts["metric"] == GROUP_INVALID, "perspective"].astype(str))
    perspectives = sorted(paired | grouped, key=perspective_rank)
    parts = pd.concat([parts, group_parts], ignore_index=True) if len(group_parts) else parts
    keys = set(zip(parts["judge"].astype(str), parts["scale"].astype(str), strict=True))
    keys = sorted(keys | set(_failed_rows(info, failures, {j for j, _ in keys})))
    gold = {p: [g for g in LEADERBOARD_GOLD if ((parts["perspective"] == p) & (parts["metric"] == g)).any()]
            for p in perspectives}
    details = metrics.candidate_groups if isinstance(metrics, MetricsResult) else None

    def columns_of(p: str) -> list[str]:
        return (value_columns(p, gold[p]) if p in paired else []) + (group_columns(p) if p in grouped else [])

    empty = parts.iloc[:0]
    cells = {tuple(map(str, k)): g for k, g in parts.groupby(["judge", "scale", "perspective", "metric"])}
    out: list[dict[str, Any]] = []
    for judge, scale in keys:
        row: dict[str, Any] = {"judge": judge, "scale": scale}
        ran: list[str] = []
        dead: list[str] = []
        undefined: list[str] = []
        for p in perspectives:
            blocks = []
            if p in paired:
                metric_names = BIAS_GROUP_METRICS if p == BIAS else (*LEADERBOARD_ACCURACY, *gold[p])
                blocks.append((p, "invalid_rate", metric_names, value_columns(p, gold[p])))
            if p in grouped:
                blocks.append((f"{p} groups", GROUP_INVALID, LEADERBOARD_GROUP, group_columns(p)))
            for label, invalid_name, metric_names, cols in blocks:
                invalid = cells.get((judge, scale, p, invalid_name), empty)
                items = int(invalid["n"].sum())
                bad = int(sum(round(v * n) for v, n in zip(invalid["value"], invalid["n"], strict=True)))
                for name, column in zip(metric_names, cols[:-2], strict=True):
                    row[column] = _pooled(cells.get((judge, scale, p, name), empty))
                row[cols[-2]] = items if items else None
                row[cols[-1]] = bad / items if items else float("nan")
                ran += [label] if items else []
                dead += [label] if items and bad == items else []
            if p in grouped and f"{p} groups" not in dead:
                undefined += _undefined_notes(details, judge, scale, p, row)
        row["note"] = "; ".join(x for x in [_note(judge, scale, ran, dead, records, failures), *undefined] if x)
        out.append(row)
    columns = ["judge", "scale"] + [c for p in perspectives for c in columns_of(p)] + ["note"]
    board = pd.DataFrame(out, columns=columns)
    for p in perspectives:
        counts = [f"{p}_n", f"{p}_n_groups"]
        floats = [c for c in columns_of(p) if c not in counts]
        board[floats] = board[floats].astype(float)
        for c in counts:
            if c in board.columns:
                board[c] = board[c].astype("Int64")
    board["note"] = board["note"].astype(str)
    return board


def _undefined_notes(details: pd.DataFrame | None, judge: str, scale: str, p: str, row: dict[str, Any]) -> list[str]:
    """`<p> tau: undefined: ...` for the group columns of a row that are n/a though groups were answered."""
    if details is None or details.empty:
        return []
    g = details[(details["judge"] == judge) & (details["scale"] == scale) & (details["perspective"] == p)]
    if g.empty:
        return []
    notes = []
    for name in LEADERBOARD_GROUP:
        if not missing(row.get(f"{p}_{name}")):
            continue
        if name != "top1_acc" and (g["gold"] == "best").all():
            notes.append(f"{p} {_GROUP_LABELS[name]}: gold names only the best candidates")
            continue
        why = undefined_reason(g, name)
        if why:
            notes.append(f"{p} {_GROUP_LABELS[name]}: {why}")
    return notes


def _note(judge: str, scale: str, ran: list[str], dead: list[str], records: pd.DataFrame | None,
          failures: dict[str, str]) -> str:
    """Why the row's `n/a` cells have no number: one reason when the judge has no valid verdict anywhere it
    ran (or it never ran: failed before making a record), else one per perspective (or `<p> groups`, a
    perspective's groups of candidates) without a verdict."""
    row_records = select(records, judge=judge, scale=scale)
    if not ran:
        return no_verdict_reason(judge, row_records, failures) if judge in failures else ""
    if dead == ran:
        return no_verdict_reason(judge, row_records, failures)

    def subset(label: str) -> pd.DataFrame | None:
        p = label.removesuffix(" groups")
        here = select(row_records, judge=judge, perspective=p)
        if here is None:
            return None
        in_group = is_group_record(here)
        return here[in_group] if label.endswith(" groups") else here[~in_group]

    return "; ".join(f"{p}: {no_verdict_reason(judge, subset(p), failures)}" for p in dead)


def _column_label(column: str, perspective: str) -> str:
    if column in BIAS_GROUP_METRICS:
        return "bias " + column.removeprefix("bias_").upper()
    suffix = column.removeprefix(f"{perspective}_")
    return f"{perspective} " + {"acc_with_tie": "w/ tie", "acc_without_tie": "w/o tie", **_GOLD_LABELS,
                                **_GROUP_LABELS}[suffix]


def _cell(column: str, value: Any) -> str:
    """A percentage, or for a lower-is-better score (Brier) and a correlation (tau) the value with three
    decimals."""
    if column.endswith(LOWER_IS_BETTER) or column.endswith(SIGNED_METRICS):
        return "n/a" if missing(value) else f"{float(value):.3f}"
    return pct(value)


def leaderboard_table(board: pd.DataFrame) -> Table:
    """The leaderboard as text cells: percentages, `n (invalid %)` per perspective, MARK on accuracies with
    under MIN_COVERAGE valid verdicts, and the note column where any row has one."""
    blocks = _blocks(board)
    headers = ["judge", "scale"]
    for p, values, n_col, _ in blocks:
        counted = f"{p} groups (invalid %)" if n_col.endswith("_n_groups") else f"{p} n (invalid %)"
        headers += [_column_label(c, p) for c in values] + [counted]
    with_note = bool((board["note"] != "").any()) if len(board) else False
    if with_note:
        headers.append("note")
    rows = []
    for r in board.to_dict("records"):
        cells = [str(r["judge"]), str(r["scale"])]
        for _, values, n_col, invalid_col in blocks:
            n, invalid = r[n_col], r[invalid_col]
            low = _low_coverage(n, invalid)
            for c in values:
                cells.append(_cell(c, r[c]) + (f" {MARK}" if low and not missing(r[c]) else ""))
            cells.append("" if missing(n) else f"{int(n)} ({pct(invalid)})")
        if with_note:
            cells.append(str(r["note"]))
        rows.append(cells)
    grouped = any(n_col.endswith("_n_groups") for _, _, n_col, _ in blocks)
    return Table("Leaderboard", headers, rows, note=LEADERBOARD_NOTE + (" " + GROUP_NOTE if grouped else ""),
                 legend=LEADERBOARD_LEGEND)


def _low_coverage(n: Any, invalid: float) -> bool:
    """Fewer than MIN_COVERAGE_PCT % of the `n` items (or groups) have a valid verdict: the numbers get a mark."""
    return not missing(n) and 100 * (n - round(invalid * n)) < MIN_COVERAGE_PCT * n


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}


def tex_escape(text: str) -> str:
    """Text as LaTeX that prints it verbatim (one pass, so an escape is never escaped again)."""
    import re

    return re.sub(r"[\\&%$#_{}~^<>|]", lambda m: _TEX_SPECIAL[m.group()], " ".join(str(text).split()))


def leaderboard_tex(board: pd.DataFrame) -> str:
    """The leaderboard as a LaTeX table in the shape of the MJ-Bench tables (needs booktabs): judges as
    rows, perspectives as column groups (w/ tie, w/o tie; bias ACC, NDS, GES), percentages with one
    decimal, the best value of each column in bold, `--` where there is no number."""
    blocks = _blocks(board)
    groups = [(p, values) for p, values, _, _ in blocks]
    spec = "ll" + "".join(" " + "c" * len(cols) for _, cols in groups)
    best = {c: board[c].min() if c.endswith(LOWER_IS_BETTER) else board[c].max()
            for _, cols in groups for c in cols if board[c].notna().any()}
    lines = ["% mjbench leaderboard; needs \\usepackage{booktabs}",
             "\\begin{table}[t]", "\\centering", "\\small", f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
    head, rules, start = ["", ""], [], 3
    for (p, cols), (_, _, n_col, _) in zip(groups, blocks, strict=True):
        title = p.capitalize() + (" groups" if n_col.endswith("_n_groups") else "")
        head.append(f"\\multicolumn{{{len(cols)}}}{{c}}{{{tex_escape(title)}}}")
        rules.append(f"\\cmidrule(lr){{{start}-{start + len(cols) - 1}}}")
        start += len(cols)
    sub = ["Judge", "Scale"] + [_column_label(c, p).removeprefix(f"{p} ") for p, cols in groups for c in cols]
    lines += [" & ".join(head) + " \\\\", " ".join(rules), " & ".join(sub) + " \\\\", "\\midrule"]
    for r in board.to_dict("records"):
        cells = [tex_escape(r["judge"]), tex_escape(r["scale"])]
        for _, cols, n_col, invalid_col in blocks:
            n, invalid = r[n_col], r[invalid_col]
            low = _low_coverage(n, invalid)
            for c in cols:
                if missing(r[c]):
                    cells.append("--")
                    continue
                text = _cell(c, r[c])
                text = f"\\textbf{{{text}}}" if r[c] == best.get(c) else text
                cells.append(text + ("$^\\dagger$" if low else ""))
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}",
              "\\caption{" + tex_escape(LEADERBOARD_NOTE.split(" n (invalid %)")[0]) + " Best per column in bold; "
              "-- : no number (see leaderboard.md); $^\\dagger$: " + tex_escape(LEADERBOARD_LEGEND[2:]) + "}",
              "\\end{table}"]
    return "\n".join(lines) + "\n"
