"""Leaderboard and reports of a run: the tables people read, built only from the metrics table (and the records,
for the status breakdown). Writers are deterministic: the same inputs give the same bytes (rows sorted, no
timestamps); run.json is written by the runner, not here.

Markdown tables are written by hand (values as percentages with one decimal, `n/a` where undefined, `|` and
`<`/`>` escaped in cells). reports/index.html is one self-contained page rendered by jinja2 with autoescape on,
so every judge, task and subcategory string from the data is escaped.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench import PERSPECTIVES
from mjbench.metrics import ALL, ALL_MACRO, BIAS, BIAS_GROUP_METRICS, OVERALL, MetricsResult

if TYPE_CHECKING:
    import pandas as pd

LEADERBOARD_ACCURACY = ("acc_with_tie", "acc_without_tie")
STATUSES = ("ok", "parse_error", "refused", "error")
LEADERBOARD_NOTE = ("Accuracy (%) with and without ties, item-weighted over each perspective (pooled over tasks "
                    "by item counts); bias ACC, NDS and GES (%) over all items. n/a: undefined.")
_RUN_INFO_MAX_CHARS = 500


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    """One perspective's report: rendered as reports/<slug>.md and as a section of index.html."""

    perspective: str
    slug: str
    tables: list[Table] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# --- leaderboard ---------------------------------------------------------------------------------------


def _perspective_rank(p: str) -> tuple[int, str]:
    return (PERSPECTIVES.index(p) if p in PERSPECTIVES else len(PERSPECTIVES), p)


def _metrics_frame(metrics: MetricsResult | pd.DataFrame) -> pd.DataFrame:
    return metrics.metrics if isinstance(metrics, MetricsResult) else metrics


def build_leaderboard(metrics: MetricsResult | pd.DataFrame) -> pd.DataFrame:
    """One row per judge x scale; per pairwise perspective `<p>_acc_with_tie` and `<p>_acc_without_tie`
    (subcategory ALL), for bias `bias_acc`, `bias_nds`, `bias_ges` (overall). Values are fractions; where a
    perspective spans several tasks they are pooled item-weighted (value x n summed over tasks / n summed)."""
    import pandas as pd

    m = _metrics_frame(metrics)
    pair = m[(m["subcategory"] == ALL) & m["metric"].isin(LEADERBOARD_ACCURACY)]
    pair = pair.assign(column=pair["perspective"] + "_" + pair["metric"])
    bias = m[(m["perspective"] == BIAS) & (m["subcategory"] == OVERALL) & m["metric"].isin(BIAS_GROUP_METRICS)]
    bias = bias.assign(column=bias["metric"])
    parts = pd.concat([pair, bias], ignore_index=True)
    columns: list[str] = []
    for p in sorted(set(parts["perspective"]), key=_perspective_rank):
        present = set(parts.loc[parts["perspective"] == p, "column"])
        wanted = [f"{p}_{a}" for a in LEADERBOARD_ACCURACY] + (list(BIAS_GROUP_METRICS) if p == BIAS else [])
        columns += [c for c in wanted if c in present]
    index = sorted(set(zip(parts["judge"], parts["scale"], strict=True)))
    rows = pd.MultiIndex.from_arrays([[j for j, _ in index], [s for _, s in index]], names=["judge", "scale"])
    board = pd.DataFrame(index=rows, columns=columns, dtype=float)
    defined = parts[parts["value"].notna() & (parts["n"] > 0)]
    for (judge, scale, column), g in defined.groupby(["judge", "scale", "column"], sort=True):
        board.loc[(judge, scale), column] = float((g["value"] * g["n"]).sum() / g["n"].sum())
    return board.reset_index()


def _column_label(column: str) -> str:
    if column in BIAS_GROUP_METRICS:
        return "bias " + column.removeprefix("bias_").upper()
    for suffix, label in (("_acc_with_tie", "w/ tie"), ("_acc_without_tie", "w/o tie")):
        if column.endswith(suffix):
            return f"{column.removesuffix(suffix)} {label}"
    return column


def _leaderboard_table(board: pd.DataFrame) -> Table:
    value_cols = [c for c in board.columns if c not in ("judge", "scale")]
    rows = [[str(r["judge"]), str(r["scale"])] + [_pct(r[c]) for c in value_cols] for _, r in board.iterrows()]
    return Table("Leaderboard", ["judge", "scale"] + [_column_label(c) for c in value_cols], rows)


# --- formatting ----------------------------------------------------------------------------------------


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _pct(v: Any) -> str:
    return "n/a" if _nan(v) else f"{float(v) * 100:.1f}"


def _ci(lo: Any, hi: Any) -> str:
    return "" if _nan(lo) or _nan(hi) else f"{float(lo) * 100:.1f}-{float(hi) * 100:.1f}"


def _md_cell(text: str) -> str:
    text = " ".join(str(text).splitlines())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _md_table(t: Table) -> str:
    lines = ["| " + " | ".join(_md_cell(h) for h in t.headers) + " |",
             "|" + "|".join("---" for _ in t.headers) + "|"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines) + "\n"


def _slug(name: str, taken: set[str]) -> str:
    """A safe file name for a perspective (names come from data: no paths, no odd characters)."""
    base = re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "perspective"
    slug, i = base, 2
    while slug in taken:
        slug, i = f"{base}-{i}", i + 1
    taken.add(slug)
    return slug


# --- per-perspective tables ----------------------------------------------------------------------------


class _Lookup:
    """metrics rows by (judge, task, scale, perspective, subcategory, metric)."""

    def __init__(self, m: pd.DataFrame):
        self.rows = {(r.judge, r.task, r.scale, r.perspective, r.subcategory, r.metric): r
                     for r in m.itertuples(index=False)}

    def get(self, key: tuple[Any, ...], metric: str, attr: str = "value") -> Any:
        row = self.rows.get((*key, metric))
        return None if row is None else getattr(row, attr)

    def pct(self, key: tuple[Any, ...], metric: str) -> str:
        return _pct(self.get(key, metric))

    def n(self, key: tuple[Any, ...], metric: str) -> str:
        n = self.get(key, metric, "n")
        return "" if n is None else str(int(n))

    def ci(self, key: tuple[Any, ...], metric: str) -> str:
        return _ci(self.get(key, metric, "ci_low"), self.get(key, metric, "ci_high"))


def _keys(m: pd.DataFrame, metrics: tuple[str, ...]) -> list[tuple[str, str, str, str]]:
    sub = m[m["metric"].isin(metrics)]
    keys = set(zip(sub["judge"], sub["task"], sub["scale"], sub["subcategory"], strict=True))
    return sorted(keys, key=lambda k: (k[0], k[1], k[2], k[3] not in (ALL, OVERALL), k[3]))


def _pairwise_tables(m: pd.DataFrame, p: str, look: _Lookup) -> list[Table]:
    acc = ("acc_with_tie", "gold_tie_excluded")
    keys = _keys(m, acc)
    tables = []
    if keys:
        head = ["judge", "task", "scale"]
        cols = ["acc w/ tie", "95% CI", "acc w/o tie", "tie rate", "invalid rate", "gold ties excluded", "n"]

        def cells(k: tuple[Any, ...]) -> list[str]:
            return [look.pct(k, "acc_with_tie"), look.ci(k, "acc_with_tie"), look.pct(k, "acc_without_tie"),
                    look.pct(k, "tie_rate"), look.pct(k, "invalid_rate"), look.n(k, "gold_tie_excluded"),
                    look.n(k, "acc_with_tie")]

        per_scale = [[j, t, s] + cells((j, t, s, p, ALL)) + [look.pct((j, t, s, p, ALL_MACRO), "acc_with_tie")]
                     for j, t, s, sub in keys if sub == ALL]
        tables.append(Table("Per judge and scale (all items)", head + cols + ["acc w/ tie (macro)"], per_scale))
        per_sub = [[j, t, s, sub] + cells((j, t, s, p, sub)) for j, t, s, sub in keys
                   if sub not in (ALL, ALL_MACRO)]
        tables.append(Table("Per subcategory", head + ["subcategory"] + cols, per_sub))
    order_keys = _keys(m, ("acc_with_tie_order01", "acc_with_tie_order10", "consistency"))
    order_rows = [[j, t, s, sub, look.pct((j, t, s, p, sub), "acc_with_tie_order01"),
                   look.pct((j, t, s, p, sub), "acc_with_tie_order10"), look.pct((j, t, s, p, sub), "consistency"),
                   look.n((j, t, s, p, sub), "consistency")]
                  for j, t, s, sub in order_keys if sub != ALL_MACRO]
    if order_rows:
        tables.append(Table("Pair mode: accuracy per image order and consistency",
                            ["judge", "task", "scale", "subcategory", "acc w/ tie (order 01)",
                             "acc w/ tie (order 10)", "consistency", "n (both orders)"], order_rows))
    return tables


def _bias_tables(m: pd.DataFrame, groups: pd.DataFrame | None, look: _Lookup) -> list[Table]:
    keys = _keys(m, BIAS_GROUP_METRICS)
    if not keys:
        return []
    rows = []
    for j, t, s, sub in keys:
        k = (j, t, s, BIAS, sub)
        constant = look.get((j, t, s, BIAS, OVERALL), "bias_constant_scores")
        rows.append([j, t, s, sub, look.pct(k, "bias_acc"), look.pct(k, "bias_nds"), look.pct(k, "bias_ges"),
                     look.pct(k, "invalid_rate"), "yes" if constant == 1.0 else "no", look.n(k, "bias_acc")])
    tables = [Table("Bias per axis", ["judge", "task", "scale", "axis", "ACC", "NDS", "GES", "invalid rate",
                                      "constant scores", "n"], rows)]
    if groups is not None and len(groups):
        g = groups.sort_values(["judge", "task", "scale", "group"], kind="mergesort")
        grows = [[str(r.judge), str(r.task), str(r.scale), str(r.group), str(int(r.n)), _pct(r.mean_score),
                  _pct(r.bias_acc), _pct(r.bias_nds), _pct(r.bias_nds_raw), _pct(r.bias_ges)]
                 for r in g.itertuples(index=False)]
        tables.append(Table("Bias per group (normalised scores)", ["judge", "task", "scale", "group", "n",
                                                                   "mean score", "ACC", "NDS", "NDS (raw)",
                                                                   "GES"], grows))
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


def build_sections(records: pd.DataFrame | None, metrics: MetricsResult) -> list[Section]:
    """One section per perspective present in the metrics or records, in the MJ-Bench order."""
    m = metrics.metrics
    look = _Lookup(m)
    names = set(m["perspective"].astype(str))
    if records is not None and "perspective" in records.columns:
        names |= set(records["perspective"].astype(str))
    sections, taken = [], set()
    for p in sorted(names, key=_perspective_rank):
        pm = m[m["perspective"] == p]
        groups = None
        if p == BIAS and metrics.bias_groups is not None:
            groups = metrics.bias_groups
        tables = _pairwise_tables(pm, p, look) + _bias_tables(pm, groups, look) + _status_table(records, p)
        warnings = [w for w in metrics.warnings if w.startswith(f"{p}: ")]
        sections.append(Section(p, _slug(p, taken), tables, warnings))
    return sections


def _perspective_md(section: Section) -> str:
    parts = [f"# {_md_cell(section.perspective)}\n"]
    parts += [f"## {_md_cell(t.title)}\n\n{_md_table(t)}" for t in section.tables]
    if section.warnings:
        parts.append("## Warnings\n\n" + "".join(f"- {_md_cell(w)}\n" for w in section.warnings))
    return "\n".join(parts)


def _leaderboard_md(table: Table, warnings: list[str]) -> str:
    text = f"# Leaderboard\n\n{LEADERBOARD_NOTE}\n\n{_md_table(table)}"
    if warnings:
        text += "\n## Warnings\n\n" + "".join(f"- {_md_cell(w)}\n" for w in warnings)
    return text


def _run_info_rows(run_info: dict[str, Any]) -> list[tuple[str, str]]:
    """The scalar entries of run_info (nested config stays in run.json). Timings (keys ending in `_s`) are
    left out so that a re-run with the same results renders the same page."""
    rows = []
    for key in sorted(run_info, key=str):
        v = run_info[key]
        if str(key).endswith("_s") or not (v is None or isinstance(v, str | int | float | bool)):
            continue
        text = str(v)
        rows.append((str(key), text[:_RUN_INFO_MAX_CHARS] + ("..." if len(text) > _RUN_INFO_MAX_CHARS else "")))
    return rows


_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>mjbench report</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
.warn li { color: #8a4b00; }
</style>
</head>
<body>
{%- macro render(t) %}
<table>
<thead><tr>{% for h in t.headers %}<th>{{ h }}</th>{% endfor %}</tr></thead>
<tbody>
{%- for row in t.rows %}
<tr>{% for c in row %}<td>{{ c }}</td>{% endfor %}</tr>
{%- endfor %}
</tbody>
</table>
{%- endmacro %}
<h1>mjbench report</h1>
{%- if run_info %}
<h2>Run</h2>
<p>Full configuration and package versions: run.json.</p>
<table>
{%- for k, v in run_info %}
<tr><th>{{ k }}</th><td>{{ v }}</td></tr>
{%- endfor %}
</table>
{%- endif %}
<h2>Leaderboard</h2>
<p>{{ note }}</p>
{{ render(leaderboard) }}
<p>{% for s in sections %}<a href="#{{ s.slug }}">{{ s.perspective }}</a>{% if not loop.last %} &middot; {% endif %}
{%- endfor %}</p>
{%- for s in sections %}
<h2 id="{{ s.slug }}">{{ s.perspective }}</h2>
{%- for t in s.tables %}
<h3>{{ t.title }}</h3>
{{ render(t) }}
{%- endfor %}
{%- if s.warnings %}
<h3>Warnings</h3>
<ul class="warn">{% for w in s.warnings %}<li>{{ w }}</li>{% endfor %}</ul>
{%- endif %}
{%- endfor %}
{%- if general_warnings %}
<h2>Other warnings</h2>
<ul class="warn">{% for w in general_warnings %}<li>{{ w }}</li>{% endfor %}</ul>
{%- endif %}
</body>
</html>
"""


def render_html(leaderboard: Table, sections: list[Section], general_warnings: list[str],
                run_info: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.from_string(_HTML).render(leaderboard=leaderboard, sections=sections, note=LEADERBOARD_NOTE,
                                         general_warnings=general_warnings, run_info=_run_info_rows(run_info))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


def write_run_outputs(out_dir: Path | str, records: pd.DataFrame | None, metrics: MetricsResult,
                      run_info: dict[str, Any] | None = None) -> list[Path]:
    """Write metrics.csv, leaderboard.{md,csv,json}, reports/<perspective>.md and reports/index.html.
    Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    board = build_leaderboard(metrics)
    board_table = _leaderboard_table(board)
    sections = build_sections(records, metrics)
    scoped = {w for s in sections for w in s.warnings}
    general = [w for w in metrics.warnings if w not in scoped]
    json_rows = [{k: (None if _nan(v) else v) for k, v in row.items()} for row in board.to_dict("records")]
    written = [
        _write(out / "metrics.csv", metrics.metrics.to_csv(index=False, lineterminator="\n")),
        _write(out / "leaderboard.md", _leaderboard_md(board_table, general)),
        _write(out / "leaderboard.csv", board.to_csv(index=False, lineterminator="\n")),
        _write(out / "leaderboard.json", json.dumps(json_rows, indent=2, ensure_ascii=False) + "\n"),
    ]
    written += [_write(out / "reports" / f"{s.slug}.md", _perspective_md(s)) for s in sections]
    written.append(_write(out / "reports" / "index.html",
                          render_html(board_table, sections, general, run_info or {})))
    return written
