"""Why a judge has no number: the runner's recorded failure, else what its records say.

A judge that did not answer is shown as `n/a` with `failed: <reason>`, never as a 0 % judge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mjbench.report.tables import missing, shorten

if TYPE_CHECKING:
    import pandas as pd

#: how each status reads after "8/8 records ..."; `ok` here means ok without a prediction
_STATUS_WORDS = {"error": "errored", "parse_error": "could not be parsed", "refused": "refused",
                 "ok": "had no prediction"}
ERROR_CHARS = 80


def judge_failures(run_info: dict[str, Any] | None) -> dict[str, str]:
    """run_info["judge_failures"] as {judge: reason}; empty where the run recorded none (e.g. aggregate)."""
    failures = (run_info or {}).get("judge_failures") or {}
    return {str(k): str(v) for k, v in failures.items()}


def select(records: pd.DataFrame | None, **where: str) -> pd.DataFrame | None:
    """The records matching every column = value given (compared as text)."""
    if records is None:
        return None
    mask = records["judge"].astype(str) == where.pop("judge")
    for col, value in where.items():
        mask &= records[col].astype(str) == value
    return records[mask]


def no_verdict_reason(judge: str, records: pd.DataFrame | None, failures: dict[str, str]) -> str:
    """`failed: ...` for a subset where `judge` has no valid verdict. `records` are that subset's records;
    the runner's reason wins (it says what to fix), else the statuses are counted, with the first error."""
    if judge in failures:
        return f"failed: {failures[judge]}"
    if records is None or records.empty:
        return "failed: no valid verdict"
    scored = records[records["label"].astype(str) != "tie"] if "label" in records.columns else records
    if scored.empty:
        scored = records
    status = scored["status"].where(scored["status"].notna(), "ok").astype(str)
    counts = status.value_counts()
    n = len(scored)
    if len(counts) == 1:
        kind = str(counts.index[0])
        text = f"{n}/{n} records {_STATUS_WORDS.get(kind, kind)}"
    else:
        parts = [f"{int(c)} {_STATUS_WORDS.get(str(k), str(k))}" for k, c in sorted(counts.items())]
        text = f"no valid verdict in {n} records ({', '.join(parts)})"
    first = _first_error(scored)
    return f"failed: {text}" + (f" (first error: {first})" if first else "")


def _first_error(records: pd.DataFrame) -> str:
    """The error text of the first record (by task, item, order) that has one, shortened: the same
    whatever order the records were read in."""
    if "error" not in records.columns:
        return ""
    errors = records[[not missing(e) and str(e).strip() != "" for e in records["error"]]]
    if errors.empty:
        return ""
    keys = [c for c in ("task", "item_id", "order") if c in errors.columns]
    ordered = errors.assign(**{f"_{c}": errors[c].astype(str) for c in keys})
    ordered = ordered.sort_values([f"_{c}" for c in keys], kind="mergesort")
    return shorten(str(ordered["error"].iloc[0]), ERROR_CHARS)
