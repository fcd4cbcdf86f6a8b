"""Leaderboard and reports of a run: the tables people read, built from the metrics table, the records (for
the status breakdown and the reasons a judge has no number) and run_info (recorded judge failures, task data
counts). Writers are deterministic: the same inputs give the same bytes (rows sorted, no timestamps);
run.json is written by the runner, not here.

Markdown tables are written by hand (values as percentages with one decimal, `n/a` where undefined, `|` and
`<`/`>` escaped in cells). reports/index.html is one self-contained page rendered from
templates/index.html.j2 by jinja2 with autoescape on, so every judge, task and subcategory string from the
data is escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench.metrics import MetricsResult
from mjbench.report.leaderboard import (
    LEADERBOARD_ACCURACY,
    LEADERBOARD_LEGEND,
    LEADERBOARD_NOTE,
    MARK,
    MIN_COVERAGE_PCT,
    build_leaderboard,
    leaderboard_table,
)
from mjbench.report.perspective import STATUSES, build_sections, perspective_md
from mjbench.report.tables import Section, Table, md_block, md_cell, missing

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["LEADERBOARD_ACCURACY", "LEADERBOARD_LEGEND", "LEADERBOARD_NOTE", "MARK", "MIN_COVERAGE_PCT",
           "STATUSES", "Section", "Table", "build_leaderboard", "build_sections", "leaderboard_table",
           "render_html", "write_run_outputs"]

_RUN_INFO_MAX_CHARS = 500


def _leaderboard_md(table: Table, warnings: list[str]) -> str:
    text = md_block(table, level="#")
    if warnings:
        text += "\n## Warnings\n\n" + "".join(f"- {md_cell(w)}\n" for w in warnings)
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


def render_html(leaderboard: Table, sections: list[Section], general_warnings: list[str],
                run_info: dict[str, Any]) -> str:
    """reports/index.html from the package template, autoescaped."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mjbench.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return env.get_template("index.html.j2").render(leaderboard=leaderboard, sections=sections,
                                                    general_warnings=general_warnings,
                                                    run_info=_run_info_rows(run_info))


def _json_rows(board: pd.DataFrame) -> list[dict[str, Any]]:
    """Leaderboard rows for JSON: NaN and NA as null, numpy numbers as Python numbers."""
    rows = []
    for row in board.to_dict("records"):
        rows.append({k: None if missing(v) else v.item() if hasattr(v, "item") else v for k, v in row.items()})
    return rows


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


def write_run_outputs(out_dir: Path | str, records: pd.DataFrame | None, metrics: MetricsResult,
                      run_info: dict[str, Any] | None = None) -> list[Path]:
    """Write metrics.csv, leaderboard.{md,csv,json}, reports/<perspective>.md and reports/index.html.
    `run_info` may carry `judge_failures` ({judge: reason}) and `task_counts` ({task: {loaded, dropped, why}});
    both are optional. Returns the paths written."""
    info = run_info or {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    board = build_leaderboard(metrics, records, info)
    board_table = leaderboard_table(board)
    sections, unplaced = build_sections(records, metrics, info)
    scoped = {w for s in sections for w in s.warnings}
    general = [w for w in metrics.warnings if w not in scoped] + unplaced
    written = [
        _write(out / "metrics.csv", metrics.metrics.to_csv(index=False, lineterminator="\n")),
        _write(out / "leaderboard.md", _leaderboard_md(board_table, general)),
        _write(out / "leaderboard.csv", board.to_csv(index=False, lineterminator="\n")),
        _write(out / "leaderboard.json", json.dumps(_json_rows(board), indent=2, ensure_ascii=False) + "\n"),
    ]
    written += [_write(out / "reports" / f"{s.slug}.md", perspective_md(s)) for s in sections]
    written.append(_write(out / "reports" / "index.html", render_html(board_table, sections, general, info)))
    return written
