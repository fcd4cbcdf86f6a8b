"""The run facts shown at the top of the overview page: what ran, from which code, on which data, what
failed, how long it took and what it cost. Everything comes from run_info (run.json) and the records, so
the same run.json and records give the same page."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from mjbench.report.tables import Table, shorten

if TYPE_CHECKING:
    import pandas as pd

_DATE_KEYS = ("date", "started_at", "finished_at")


def _join(v: Any) -> str:
    if isinstance(v, list | tuple):
        return ", ".join(map(str, v))
    if isinstance(v, dict):
        return ", ".join(f"{k} {x}" for k, x in v.items())
    return str(v)


def total_cost(records: pd.DataFrame | None) -> float | None:
    """Sum of cost_usd over the records, or None where no record has a cost."""
    import pandas as pd

    if records is None or "cost_usd" not in records.columns:
        return None
    cost = pd.to_numeric(records["cost_usd"], errors="coerce").dropna()
    return float(cost.sum()) if len(cost) else None


def run_facts(run_info: dict[str, Any], records: pd.DataFrame | None, interval_method: str = "") -> Table:
    """Key facts as a two-column table (fact, value); absent facts are left out."""
    info = run_info
    rows: list[list[str]] = []

    def add(name: str, value: Any) -> None:
        if value is not None and value != "" and value != {} and value != []:
            rows.append([name, shorten(_join(value), 300)])

    for key in _DATE_KEYS:
        add(key.replace("_", " "), info.get(key))
    add("command", info.get("command"))
    requested = info.get("requested") if isinstance(info.get("requested"), dict) else {}
    for key in ("tasks", "judges", "scales"):
        add(key, requested.get(key))
    add("records file", info.get("records"))
    add("git revision", info.get("git_revision"))
    add("seed", info.get("seed"))
    add("limit (items per task)", info.get("limit"))
    add("tie threshold", info.get("tie_threshold"))
    add("bias normalisation", info.get("bias_normalization"))
    add("bias average", info.get("bias_average"))
    calibration = info.get("calibrate_on") if isinstance(info.get("calibrate_on"), dict) else {}
    add("tie epsilon fitted on", ", ".join(f"{'every task' if task == '*' else task}: {dev}"
                                           for task, dev in calibration.items()))
    add("intervals", interval_method)
    add("versions", info.get("versions"))
    counts = info.get("counts") if isinstance(info.get("counts"), dict) else {}
    add("items", counts.get("items"))
    n_records = counts.get("records", None if records is None else len(records))
    add("records", n_records)
    if "requests_computed" in counts:
        add("requests computed / reused", f"{counts['requests_computed']} / {counts.get('requests_reused', 0)}")
    task_counts = info.get("task_counts") if isinstance(info.get("task_counts"), dict) else {}
    if task_counts:
        dropped = sum(int(c.get("dropped") or 0) for c in task_counts.values() if isinstance(c, dict))
        add("rows dropped while loading", f"{dropped} (per task and why: the perspective pages)")
    problems = info.get("item_problems")
    if isinstance(problems, list):
        add("item problems", f"{len(problems)} (listed in run.json)")
    wall = info.get("wall_time_s")
    if isinstance(wall, int | float) and math.isfinite(wall):
        add("wall time", f"{wall:.1f} s")
    cost = total_cost(records)
    add("cost", "none recorded" if cost is None else f"{cost:.4f} USD (sum of cost_usd)")
    return Table("Run", ["fact", "value"], rows, note="Full configuration and package versions: run.json.")


def failure_table(run_info: dict[str, Any]) -> Table | None:
    """Per judge: could not run (judge_failures), or how many requests ended in error and why (failures)."""
    rows: list[list[str]] = []
    cannot = run_info.get("judge_failures") if isinstance(run_info.get("judge_failures"), dict) else {}
    partial = run_info.get("failures") if isinstance(run_info.get("failures"), dict) else {}
    for judge in sorted(set(map(str, cannot)) | set(map(str, partial))):
        if judge in cannot:
            rows.append([judge, "could not run", shorten(str(cannot[judge]), 300)])
            continue
        f = partial[judge] if isinstance(partial[judge], dict) else {}
        reasons = f.get("reasons") if isinstance(f.get("reasons"), dict) else {}
        why = "; ".join(f"{k} ({v})" for k, v in reasons.items())
        rows.append([judge, f"{f.get('requests', '?')} of {f.get('of', '?')} requests failed", shorten(why, 300)])
    if not rows:
        return None
    return Table("Failures per judge", ["judge", "failed", "why"], rows,
                 note="Requests that ended in error are re-tried by re-running the same command.")
