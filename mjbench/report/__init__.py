"""Leaderboard and reports of a run: the tables people read, built from the metrics table, the records (for
the status breakdown, the failure gallery and the reasons a judge has no number) and run_info (run facts,
recorded judge failures, task data counts). Writers are deterministic: the same inputs give the same bytes
(rows sorted, plots with fixed ids and no dates; run_info is shown as run.json stores it, so a page rebuilt
from run.json equals the one the run wrote); run.json is written by the runner, not here.

Markdown tables are written by hand (values as percentages with one decimal, `n/a` where undefined, `|` and
`<`/`>` escaped in cells); leaderboard.tex escapes LaTeX's special characters. reports/index.html (overview)
and reports/<perspective>.html are self-contained pages rendered from templates/ by jinja2 with autoescape
on, so every judge, task, caption and raw output from the data is shown as text; plots are inline SVG (also
saved under reports/plots/) and gallery thumbnails are JPEG data URIs: nothing is fetched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench.metrics import BIAS, MetricsResult
from mjbench.report import plots
from mjbench.report.facts import failure_table, run_facts
from mjbench.report.gallery import (
    DEFAULT_GALLERY_MAX,
    ImageLookup,
    JudgeGallery,
    Thumbnails,
    build_gallery,
    page_styles,
)
from mjbench.report.leaderboard import (
    LEADERBOARD_ACCURACY,
    LEADERBOARD_LEGEND,
    LEADERBOARD_NOTE,
    MARK,
    MIN_COVERAGE_PCT,
    build_leaderboard,
    leaderboard_table,
    leaderboard_tex,
)
from mjbench.report.perspective import STATUSES, build_sections, interval_method, perspective_md
from mjbench.report.tables import Section, Table, md_block, md_cell, missing, perspective_rank

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_GALLERY_MAX", "LEADERBOARD_ACCURACY", "LEADERBOARD_LEGEND", "LEADERBOARD_NOTE", "MARK",
           "MIN_COVERAGE_PCT", "REPORT_OUTPUTS", "STATUSES", "ImageLookup", "Section", "Table", "build_leaderboard",
           "build_sections", "leaderboard_table", "leaderboard_tex", "rebuild_reports", "render_pages",
           "write_run_outputs"]

#: every name write_run_outputs may write into a run directory (comparisons.csv where the metrics have them)
REPORT_OUTPUTS = ("metrics.csv", "comparisons.csv", "leaderboard.md", "leaderboard.csv", "leaderboard.json",
                  "leaderboard.tex", "reports")


def _leaderboard_md(table: Table, warnings: list[str]) -> str:
    text = md_block(table, level="#")
    if warnings:
        text += "\n## Warnings\n\n" + "".join(f"- {md_cell(w)}\n" for w in warnings)
    return text


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


def _threshold_of(run_info: dict[str, Any]) -> Callable[[str], float]:
    """judge -> the tie threshold its verdicts were derived with: the run's override (run_info
    `tie_threshold`), else the judge's own (run_info `judges`), else 0."""
    judges = run_info.get("judges") if isinstance(run_info.get("judges"), dict) else {}
    override = run_info.get("tie_threshold")

    def threshold(judge: str) -> float:
        cfg = judges.get(judge)
        own = cfg.get("tie_threshold") if isinstance(cfg, dict) else None
        value = override if override is not None else own
        return float(value) if isinstance(value, int | float) else 0.0

    return threshold


def _metrics_threshold(run_info: dict[str, Any]) -> float:
    """The tie threshold the metrics were computed with (for records without a prediction)."""
    value = run_info.get("tie_threshold")
    return float(value) if isinstance(value, int | float) else 0.0


def _best(comparisons: pd.DataFrame | None, board: pd.DataFrame) -> Table | None:
    """Per perspective and scale: the most accurate judge (pooled accuracy with ties, as in the leaderboard)
    and the judges the paired comparisons cannot tell apart from it (where comparisons exist)."""
    tied = _tied_with_best()
    if tied is None or comparisons is None or comparisons.empty:
        return None
    keys = sorted({(str(p), str(s)) for p, s in zip(comparisons["perspective"], comparisons["scale"], strict=True)
                   if str(p) != BIAS}, key=lambda k: (perspective_rank(k[0]), k[1]))
    rows = []
    for p, scale in keys:
        column = f"{p}_acc_with_tie"
        if column not in board.columns:
            continue
        at = board[(board["scale"].astype(str) == scale) & board[column].notna()]
        if at.empty:
            continue
        best = min(zip(at[column], at["judge"].astype(str), strict=True), key=lambda vj: (-vj[0], vj[1]))[1]
        rows.append([p, scale, best, ", ".join(sorted(tied(comparisons, p, scale, best=best))) or "none"])
    if not rows:
        return None
    return Table("Best judges", ["perspective", "scale", "most accurate", "not significantly different from it"],
                 rows, note="Most accurate: highest accuracy with ties in the leaderboard. Not significantly "
                            "different: Holm-adjusted p at or above 0.05 in the paired comparison with it over "
                            "the items both judged (the comparison tables on each perspective page).")


def _tied_with_best() -> Callable[..., set[str]] | None:
    import importlib

    for module in ("mjbench.stats", "mjbench.compare"):
        try:
            fn = getattr(importlib.import_module(module), "tied_with_best", None)
        except ImportError:
            continue
        if fn is not None:
            return fn
    return None


def render_pages(board: pd.DataFrame, sections: list[Section], general_warnings: list[str],
                 run_info: dict[str, Any], records: pd.DataFrame | None, metrics: MetricsResult,
                 images: ImageLookup | None = None, gallery_max: int = DEFAULT_GALLERY_MAX
                 ) -> tuple[dict[str, str], list[plots.Plot]]:
    """The HTML pages ({file name: text}) and the plots they inline."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("mjbench.report", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    method = interval_method(metrics)
    m = metrics.metrics
    comparisons = getattr(metrics, "comparisons", None)
    thresholds = _threshold_of(run_info)
    thumbs = Thumbnails(images)
    nav = [(s.perspective, f"{s.slug}.html") for s in sections]
    overview = [p for p in (plots.overview_plot(board), plots.scale_study_plot(metrics, method)) if p is not None]
    all_plots = list(overview)
    pages: dict[str, str] = {}
    failures = failure_table(run_info)
    pages["index.html"] = env.get_template("index.html.j2").render(
        title="mjbench report", nav=nav, facts=run_facts(run_info, records, method),
        failures=failures, leaderboard=leaderboard_table(board), best=_best(comparisons, board),
        plots=overview, general_warnings=general_warnings, sections=sections)
    for s in sections:
        p = s.perspective
        page_plots = [x for x in (
            plots.subcategory_plot(m, p, s.slug, method), plots.order_plot(m, p, s.slug),
            plots.tie_threshold_plot(records, p, s.slug, thresholds), plots.calibration_plot(records, p, s.slug, _metrics_threshold(run_info)),
            plots.bias_heatmap(metrics.bias_groups, s.slug) if p == BIAS else None,
            plots.bias_axes_plot(m, s.slug) if p == BIAS else None) if x is not None]
        all_plots += page_plots
        gallery: list[JudgeGallery] = build_gallery(records, p, thumbs, gallery_max, _metrics_threshold(run_info))
        pages[f"{s.slug}.html"] = env.get_template("perspective.html.j2").render(
            title=f"mjbench: {p}", nav=nav, section=s, plots=page_plots, gallery=gallery,
            thumb_styles=page_styles(gallery),
            gallery_max=gallery_max, bias=p == BIAS)
    return pages, all_plots


def write_run_outputs(out_dir: Path | str, records: pd.DataFrame | None, metrics: MetricsResult,
                      run_info: dict[str, Any] | None = None, images: ImageLookup | None = None,
                      gallery_max: int = DEFAULT_GALLERY_MAX) -> list[Path]:
    """Write metrics.csv, comparisons.csv (where the metrics have comparisons), leaderboard.{md,csv,json,tex},
    reports/<perspective>.md, reports/index.html, reports/<perspective>.html and reports/plots/*.svg.
    `run_info` is what run.json holds (facts on the overview page; `judge_failures`, `failures`,
    `task_counts` optional); `images(task, item_id)` gives an item's images for the failure gallery
    (thumbnails), at most `gallery_max` items per judge, scale and subcategory. Returns the paths written."""
    if gallery_max < 0:
        raise ValueError(f"gallery_max must be 0 or more, not {gallery_max}")
    info = json.loads(json.dumps(run_info or {}, default=str))  # as run.json stores it: a rebuild renders the same
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
        _write(out / "leaderboard.tex", leaderboard_tex(board)),
    ]
    comparisons = getattr(metrics, "comparisons", None)
    if comparisons is not None:
        written.append(_write(out / "comparisons.csv", comparisons.to_csv(index=False, lineterminator="\n")))
    written += [_write(out / "reports" / f"{s.slug}.md", perspective_md(s)) for s in sections]
    pages, page_plots = render_pages(board, sections, general, info, records, metrics, images, gallery_max)
    written += [_write(out / "reports" / name, text) for name, text in pages.items()]
    written += [_write(out / "reports" / "plots" / f"{p.name}.svg", p.svg + "\n") for p in page_plots]
    return written


def rebuild_reports(run_dir: Path | str, gallery_max: int | None = None) -> list[Path]:
    """`mjbench report RUN_DIR`: the tables and pages of a run directory again, from its run.json and
    records, under its lock (see mjbench.report.rebuild); `gallery_max` None: run.json's, else the default."""
    from mjbench.report.rebuild import rebuild

    return rebuild(Path(run_dir), gallery_max)
