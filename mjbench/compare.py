"""Paired comparisons of judges on the same items: within a records table (`compute_comparisons`, also on
`MetricsResult.comparisons`), per feedback scale (`scale_study`), and across runs (`compare_runs`, the
logic of `mjbench compare`).

Across runs, items are matched on (task, item_id, scale) and only the items common to every run are
compared. A judge name found in more than one run is labelled `RUN:judge` (RUN = the run directory's
name, or the records file's stem) in every run where it appears, so that two runs of one judge (e.g.
before and after a prompt change) are compared with each other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from mjbench.errors import DataError
from mjbench.metrics import pairwise_verdicts, scale_study_table
from mjbench.stats import (
    COMPARISON_COLUMNS,
    DIFF_INTERVAL_METHOD,
    RESAMPLES,
    SEED,
    paired_comparisons,
    tied_with_best,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["compute_comparisons", "scale_study", "compare_runs", "comparisons_markdown", "tied_with_best",
           "COMPARISON_COLUMNS"]

_MATCH = ["task", "item_id", "scale"]


def compute_comparisons(records: pd.DataFrame, tie_threshold: float = 0.0, seed: int = SEED,
                        resamples: int = RESAMPLES, intervals: bool = True) -> pd.DataFrame:
    """Every pair of judges on their common items per table, with `COMPARISON_COLUMNS` (see
    `mjbench.stats.paired_comparisons`); correctness per item is `acc_with_tie`'s."""
    verdicts, _ = pairwise_verdicts(records, tie_threshold)
    scored = verdicts[verdicts["scored"]] if len(verdicts) else verdicts
    return paired_comparisons(scored, seed=seed, resamples=resamples, intervals=intervals)


def scale_study(records: pd.DataFrame, tie_threshold: float = 0.0, seed: int = SEED,
                resamples: int = RESAMPLES) -> pd.DataFrame:
    """acc_with_tie with its interval per judge, perspective and feedback scale (tasks of a perspective
    pooled), for judges run at two or more scales: columns `judge, perspective, scale, acc_with_tie,
    ci_low, ci_high, n`."""
    verdicts, _ = pairwise_verdicts(records, tie_threshold)
    scored = verdicts[verdicts["scored"]] if len(verdicts) else verdicts
    return scale_study_table(scored, True, seed, resamples)


def find_records(path: Path) -> Path:
    """The records file of a run directory (named in its run.json, else records.jsonl/.parquet/.csv), or
    the path itself where it is a file."""
    if path.is_file():
        return path
    if not path.is_dir():
        raise DataError(f"{path}: no such run directory or records file")
    info = path / "run.json"
    if info.is_file():
        try:
            named = json.loads(info.read_text(encoding="utf-8")).get("records")
        except (json.JSONDecodeError, AttributeError):
            named = None
        if isinstance(named, str) and (path / named).is_file():
            return path / named
    for suffix in ("jsonl", "parquet", "csv"):
        if (path / f"records.{suffix}").is_file():
            return path / f"records.{suffix}"
    raise DataError(f"{path}: no records file (records.jsonl, .parquet or .csv) in this run directory")


def _run_names(paths: Sequence[Path]) -> list[str]:
    """A distinct name per run: the directory name (a records file: its stem, or its folder's name where
    the stem is just `records`), numbered where two are the same."""
    names = []
    for p in paths:
        name = p.name if p.is_dir() else (p.parent.name if p.stem == "records" and p.parent.name else p.stem)
        names.append(name or "run")
    return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


def compare_runs(paths: Sequence[Path | str], out_dir: Path | str, tie_threshold: float = 0.0,
                 seed: int = SEED, resamples: int = RESAMPLES) -> Path:
    """Compare the judges of several runs (run directories or records files) on the items common to all of
    them; writes `comparisons.csv` and `comparisons.md` into `out_dir` and returns the Markdown path."""
    import pandas as pd

    from mjbench.records import read_records

    paths = [Path(p) for p in paths]
    if len(paths) < 2:
        raise DataError("compare: give at least two runs (run directories or records files)")
    names = _run_names(paths)
    frames = [read_records([find_records(p)]) for p in paths]
    runs_of: dict[str, set[str]] = {}
    for name, frame in zip(names, frames, strict=True):
        for judge in frame["judge"].astype(str).unique():
            runs_of.setdefault(judge, set()).add(name)
    labelled = []
    for name, frame in zip(names, frames, strict=True):
        frame = frame.copy()
        frame["judge"] = [f"{name}:{j}" if len(runs_of[str(j)]) > 1 else str(j) for j in frame["judge"]]
        frame["_key"] = list(zip(*(frame[c].astype(str) for c in _MATCH), strict=True))
        labelled.append(frame)
    common = set.intersection(*(set(f.loc[f["label"].notna(), "_key"]) for f in labelled))
    if not common:
        raise DataError(f"compare: the runs {', '.join(names)} have no pairwise item in common "
                        "(items are matched on task, item_id and scale)")
    records = pd.concat([f[f["_key"].isin(common)].drop(columns="_key") for f in labelled], ignore_index=True)
    table = compute_comparisons(records, tie_threshold=tie_threshold, seed=seed, resamples=resamples)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparisons.csv", index=False)
    judges = sorted(records["judge"].unique())
    header = [
        f"Runs: {', '.join(f'`{n}` ({p})' for n, p in zip(names, paths, strict=True))}.",
        f"Judges: {', '.join(f'`{j}`' for j in judges)}; items common to every run (matched on task, "
        f"item_id and scale): {len(common)}.",
    ]
    md = out / "comparisons.md"
    md.write_text(comparisons_markdown(table, header), encoding="utf-8")
    return md


def _pct(v: float) -> str:
    return "n/a" if v is None or math.isnan(v) else f"{100 * v:+.1f}"


def _p(v: float) -> str:
    return "n/a" if math.isnan(v) else ("<0.001" if v < 0.001 else f"{v:.3f}")


def comparisons_markdown(table: pd.DataFrame, header: Sequence[str] = ()) -> str:
    """A Markdown page of a comparisons table: the pooled rows (subcategory `ALL`: per task, and task `ALL`
    per perspective); the CSV beside it has every subcategory."""
    lines = ["# Paired comparisons", "", *header, "",
             "diff = accuracy (acc_with_tie) of judge A minus judge B on their common items, in percentage "
             f"points; {DIFF_INTERVAL_METHOD}; p: exact McNemar "
             "test on the items where exactly one judge is right; p (Holm): adjusted over the pairs of one "
             "table (task x perspective x subcategory x scale). * = p (Holm) < 0.05.", ""]
    pooled = table[table["subcategory"] == "ALL"]
    if pooled.empty:
        return "\n".join(lines + ["No two judges share an item.", ""])
    lines += ["| judge A | judge B | perspective | task | scale | diff (pp) | 95% CI | p | p (Holm) | n |",
              "|---|---|---|---|---|---:|---|---:|---:|---:|"]
    order = pooled.assign(_all=pooled["task"] != "ALL").sort_values(
        ["perspective", "_all", "task", "scale", "judge_a", "judge_b"], kind="mergesort")
    for _, r in order.iterrows():
        star = " *" if r["p_adjusted"] < 0.05 else ""
        lines.append(f"| {_cell(r['judge_a'])} | {_cell(r['judge_b'])} | {_cell(r['perspective'])} | "
                     f"{_cell(r['task'])} | {_cell(r['scale'])} | {_pct(r['diff'])}{star} | "
                     f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}] | {_p(r['p_value'])} | "
                     f"{_p(r['p_adjusted'])} | {int(r['n'])} |")
    return "\n".join(lines) + "\n"


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")
