"""The records contract: one row per judge x item x scale x order (see DESIGN.md, "Records").

Readers accept JSONL, Parquet and CSV from any producer; `axes` may be a list or a `|`-joined string.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from mjbench.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

REQUIRED_COLUMNS = (
    "judge", "task", "perspective", "subcategory", "item_id", "scale", "label",
    "score_0", "score_1", "pred", "status",
)
OPTIONAL_COLUMNS = (
    "order", "group", "demographic", "axes", "prompt", "raw_output", "attempts", "latency_s",
    "input_tokens", "output_tokens", "cost_usd", "error",
)
RECORD_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    judge: str
    task: str
    perspective: str
    subcategory: str
    item_id: str
    scale: str
    label: Literal["0", "1", "tie"] | None
    score_0: float | None
    score_1: float | None
    pred: Literal["0", "1", "tie"] | None
    status: Literal["ok", "parse_error", "refused", "error"]
    order: Literal["01", "10"] | None = None
    group: str | None = None
    demographic: str | None = None
    axes: list[str] | None = None
    prompt: str | None = None
    raw_output: str | None = None
    attempts: int | None = None
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    error: str | None = None


def write_records(records: Iterable[Record | dict[str, Any]], path: Path) -> Path:
    """Write records atomically (temp file, then rename): a crash never leaves half a file.
    The format follows the suffix: .jsonl, .parquet or .csv."""
    rows = [r.model_dump(mode="json") if isinstance(r, Record) else dict(r) for r in records]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".jsonl":
        with tmp.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    else:
        df = records_frame(rows)
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif path.suffix == ".csv":
            df = df.copy()
            df["axes"] = df["axes"].map(lambda a: "|".join(a) if isinstance(a, list) else a)
            df.to_csv(tmp, index=False)
        else:
            raise DataError(f"{path}: records must be .jsonl, .parquet or .csv")
    os.replace(tmp, path)
    return path


def records_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    df = pd.DataFrame(list(rows))
    for col in RECORD_COLUMNS:
        if col not in df.columns:
            df[col] = None
    return df[list(RECORD_COLUMNS) + [c for c in df.columns if c not in RECORD_COLUMNS]]


def _label_text(v: Any) -> Any:
    """Labels and predictions as the strings "0", "1", "tie" whatever the file stored (0, 1.0, "1")."""
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(int(v)) if v in (0, 1) else str(v)
    s = str(v).strip()
    return {"0.0": "0", "1.0": "1", "": None, "nan": None, "None": None}.get(s, s)


def _axes(v: Any) -> Any:
    if v is None or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, str):
        return [a for a in v.split("|") if a]
    return [str(a) for a in v]


def _object_column(series: pd.Series) -> pd.Series:
    """An object column whose missing values are None (pandas would turn them into NaN)."""
    out = series.astype(object)
    return out.where(out.notna(), None)


def read_records(paths: Sequence[Path | str]) -> pd.DataFrame:
    """Read and normalise records files (JSONL, Parquet, CSV). A missing required column is an error
    naming the file and column; `status` absent means `ok`."""
    import pandas as pd

    frames = []
    for p in map(Path, paths):
        if not p.is_file():
            raise DataError(f"records file not found: {p}")
        try:
            if p.suffix in (".jsonl", ".json"):
                df = pd.read_json(p, lines=p.suffix == ".jsonl", dtype=False)
            elif p.suffix == ".parquet":
                df = pd.read_parquet(p)
            elif p.suffix == ".csv":
                df = pd.read_csv(p, dtype={"label": str, "pred": str, "item_id": str, "order": str})
            else:
                raise DataError(f"{p}: records must be .jsonl, .parquet or .csv")
        except DataError:
            raise
        except Exception as exc:  # pandas raises many kinds; name the file
            raise DataError(f"{p}: cannot read records ({exc})") from None
        if "status" not in df.columns:
            df["status"] = "ok"
        missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
        if missing:
            raise DataError(f"{p}: missing required record column(s): {', '.join(missing)}")
        frames.append(df)
    df = pd.concat(frames, ignore_index=True) if frames else records_frame([])
    for col in RECORD_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df = df.astype({"item_id": str, "judge": str, "task": str, "subcategory": str, "scale": str})
    df["label"] = _object_column(df["label"].map(_label_text))
    df["pred"] = _object_column(df["pred"].map(_label_text))
    df["order"] = _object_column(df["order"].map(lambda v: None if v is None or v != v else str(v).zfill(2)))
    df["axes"] = _object_column(df["axes"].map(_axes))
    df["status"] = df["status"].fillna("ok")
    for col in ("score_0", "score_1"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df
