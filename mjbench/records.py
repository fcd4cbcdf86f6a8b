"""The records contract: one row per judge x item x scale x order (see DESIGN.md, "Records").

Readers accept JSONL, Parquet and CSV from any producer; `axes` may be a list or a `|`-joined string.
Reading is strict and exact: floats round-trip bit for bit in every format, labels and predictions go
through the one label normaliser (`mjbench.labels`), orders may be spelled 1/01/10, and a record without
a judge, task, perspective, subcategory, item_id or scale is an error, never a silently dropped row.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mjbench.errors import DataError
from mjbench.labels import Label, gold_label

if TYPE_CHECKING:
    import pandas as pd

REQUIRED_COLUMNS = (
    "judge", "task", "perspective", "subcategory", "item_id", "scale", "label",
    "score_0", "score_1", "pred", "status",
)
OPTIONAL_COLUMNS = (
    "order", "label_strength", "label_prob", "group", "demographic", "axes", "prompt", "raw_output",
    "attempts", "latency_s", "input_tokens", "output_tokens", "cost_usd", "error", "image0_url", "image1_url",
    "text0", "text1", "candidate", "gold_score", "gold_rank", "gold_best",
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
    label: Label | None
    score_0: float | None
    score_1: float | None
    pred: Label | None
    status: Literal["ok", "parse_error", "refused", "error"]
    order: Literal["01", "10"] | None = None
    #: graded gold (e.g. -3..3, HelpSteer3-style): negative = image0 preferred, positive = image1, 0 = tie
    label_strength: float | None = None
    #: soft gold: probability that image0 is preferred (e.g. a vote share)
    label_prob: float | None = Field(default=None, ge=0.0, le=1.0)
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
    #: the http(s) address of an image fetched on demand (bias rows: the image in image0_url), else null
    image0_url: str | None = None
    image1_url: str | None = None
    #: caption pairs: the two texts compared for one image (text0 <-> score_0); group rows: the candidate's text
    text0: str | None = None
    text1: str | None = None
    #: group rows (one per candidate of a group item; `label`/`pred` null, the judge's score in `score_0`):
    #: the candidate's id within its group, and whichever gold the group has (score: higher is better;
    #: rank: 1 is best, equal ranks tie; best: this candidate is (one of) the gold best)
    candidate: str | None = None
    gold_score: float | None = None
    gold_rank: float | None = None
    gold_best: bool | None = None


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


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One JSON object per line (blank lines skipped), parsed by the `json` module so that every float is
    read back exactly; a bad line is a DataError naming file and line."""
    rows = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: line {n}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {n}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def read_json_list(path: Path) -> list[dict[str, Any]]:
    """A `.json` file holding a list of objects (one per item, as MJ-Bench's result files are), parsed by the
    `json` module so that every float is read back exactly."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise DataError(f"{path}: expected a JSON list of objects (one per item)")
    return data


def read_text(path: Path) -> str:
    """A UTF-8 text file (a BOM is dropped); a read or decoding error names the file."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None


def read_records(paths: Sequence[Path | str]) -> pd.DataFrame:
    """Read and normalise records files (JSONL, Parquet, CSV): every column is converted explicitly (the
    same frame under pandas 2 and 3, and from each format), floats are read exactly, and bad values are a
    DataError naming the file, the row (1-based data row) and the value. `status` absent means `ok`."""
    import pandas as pd

    frames = [_read_file(Path(p)) for p in paths]
    if not frames:
        return _normalise(records_frame([]), Path("records"))
    return pd.concat(frames, ignore_index=True)


def _read_file(p: Path) -> pd.DataFrame:
    import pandas as pd

    if not p.is_file():
        raise DataError(f"records file not found: {p}")
    suffix = p.suffix.lower()
    if suffix not in (".jsonl", ".json", ".parquet", ".csv"):
        raise DataError(f"{p}: records must be .jsonl, .parquet or .csv")
    try:
        if suffix == ".jsonl":
            df = pd.DataFrame(read_jsonl(p), dtype=object)
        elif suffix == ".json":
            df = pd.DataFrame(read_json_list(p), dtype=object)
        elif suffix == ".parquet":
            df = pd.read_parquet(p)
        else:  # every cell as text, converted below: exact floats, no type guessing
            df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except DataError:
        raise
    except Exception as exc:  # pandas and pyarrow raise many kinds; name the file
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        raise DataError(f"{p}: cannot read records ({first})") from None
    if "status" not in df.columns:
        df["status"] = "ok"
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{p}: missing required record column(s): {', '.join(missing)}")
    return _normalise(df, p)


KEY_COLUMNS = ("judge", "task", "perspective", "subcategory", "item_id", "scale")
TEXT_COLUMNS = KEY_COLUMNS + ("group", "demographic", "prompt", "raw_output", "error", "image0_url", "image1_url",
                              "text0", "text1", "candidate")
NUMBER_COLUMNS = ("score_0", "score_1", "label_strength", "label_prob", "attempts", "latency_s", "input_tokens",
                  "output_tokens", "cost_usd", "gold_score", "gold_rank")
STATUSES = ("ok", "parse_error", "refused", "error")
_ORDERS = {"01": "01", "1": "01", "1.0": "01", "10": "10", "10.0": "10"}


def _normalise(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Every record column converted explicitly: text as str or None, numbers as float64 (NaN where
    missing), labels through the one label normaliser, orders as "01"/"10"/None, axes as lists."""
    import pandas as pd

    def column(col: str, fn: Any) -> pd.Series:
        return pd.Series(_convert(df, col, fn, path), dtype=object)

    columns = {col: column(col, _key_text if col in KEY_COLUMNS else _text) for col in TEXT_COLUMNS}
    for col in KEY_COLUMNS:
        empty = columns[col].isna().to_numpy()
        if empty.any():
            raise DataError(
                f"{path}: column {col!r} is empty in {int(empty.sum())} row(s) (first: row "
                f"{int(empty.argmax()) + 1}); every record needs {', '.join(KEY_COLUMNS)}"
            )
    columns["label"] = column("label", lambda v: gold_label(v, what="label"))
    columns["pred"] = column("pred", lambda v: gold_label(v, what="pred"))
    columns |= {col: _number_column(df, col, path) for col in NUMBER_COLUMNS}
    outside = ~columns["label_prob"].isna() & ~columns["label_prob"].between(0.0, 1.0)
    if outside.any():
        row = int(outside.to_numpy().argmax())
        raise DataError(f"{path}: row {row + 1}: column label_prob: {float(columns['label_prob'][row])!r} is not a "
                        "probability in [0, 1]")
    columns["gold_best"] = column("gold_best", read_flag)
    columns["status"] = column("status", _status)
    columns["order"] = column("order", _order)
    # distinct values share one list object: each row gets its own copy
    columns["axes"] = pd.Series([None if a is None else list(a) for a in _convert(df, "axes", _axes, path)],
                                dtype=object)
    extra = {c: df[c].reset_index(drop=True) for c in df.columns if c not in RECORD_COLUMNS}
    return pd.DataFrame({**{c: columns[c] for c in RECORD_COLUMNS}, **extra})


_NO_BOOLS = frozenset({"string", "integer", "floating", "mixed-integer-float", "decimal", "empty"})


def _convert(df: pd.DataFrame, col: str, fn: Any, path: Path) -> Any:
    """`fn` applied to every value of a column, once per distinct value where the values are hashable and
    bool-free (most columns repeat a few values). A ValueError becomes a DataError naming the file, the
    1-based row and the value."""
    import numpy as np
    import pandas as pd
    from pandas.api.types import infer_dtype

    values = df[col].to_numpy(dtype=object) if col in df.columns else np.full(len(df), None, dtype=object)
    # pandas takes True for 1 when it finds distinct values, and True must stay an error: columns that may
    # hold a bool (mixed types) go through the loop
    if infer_dtype(values, skipna=True) in _NO_BOOLS:
        codes, uniques = pd.factorize(values, use_na_sentinel=False)
        converted = np.empty(len(uniques), dtype=object)
        for k, value in enumerate(uniques):
            try:
                converted[k] = fn(value)
            except ValueError as exc:
                row = int(np.argmax(codes == k)) + 1
                raise DataError(f"{path}: row {row}: {exc}") from None
        return converted[codes]
    out = []
    for row, value in enumerate(values, start=1):
        try:
            out.append(fn(value))
        except ValueError as exc:
            raise DataError(f"{path}: row {row}: {exc}") from None
    return out


def _values(df: pd.DataFrame, col: str) -> list[Any]:
    return df[col].tolist() if col in df.columns else [None] * len(df)


def is_blank(value: Any) -> bool:
    """None, NaN or blank text: no value (every reader of record columns uses this one test)."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text(value: Any) -> str | None:
    """Text as written, "" as None (CSV cannot tell them apart); an integral float (an id that pandas read
    as 7.0) as "7"."""
    if value is None or (isinstance(value, str) and not value):
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _key_text(value: Any) -> str | None:
    """A key column's text; blank counts as missing."""
    text = _text(value)
    return text if text is not None and text.strip() else None


def _number_column(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    """float64; numbers already stored as numbers are kept bit for bit, text is parsed with `float`
    (correctly rounded, so a shortest-repr float reads back exactly)."""
    import pandas as pd
    from pandas.api.types import infer_dtype

    if col in df.columns and df[col].dtype.kind in "fiu":
        return pd.Series(df[col].to_numpy(dtype="float64"), dtype="float64")
    values = df[col].to_numpy(dtype=object, copy=True) if col in df.columns else None
    if values is not None and infer_dtype(values, skipna=True) in _NO_BOOLS:
        values[pd.isna(values) | (values == "")] = math.nan
        try:  # numpy parses each text with Python's `float`: exact, and fast
            return pd.Series(values.astype("float64"), dtype="float64")
        except (TypeError, ValueError):
            pass  # the loop below names the row and value
    out = []
    for row, value in enumerate(_values(df, col), start=1):
        if is_blank(value):
            out.append(math.nan)
            continue
        try:
            if isinstance(value, bool):
                raise ValueError
            out.append(float(value))
        except (TypeError, ValueError):
            raise DataError(f"{path}: row {row}: column {col}: {value!r} is not a number") from None
    return pd.Series(out, dtype="float64")


_FLAGS = {"true": True, "1": True, "1.0": True, "false": False, "0": False, "0.0": False}


def read_flag(value: Any) -> bool | None:
    """A yes/no column (`gold_best`): true/false/1/0 in any format, None where missing."""
    if is_blank(value):
        return None
    if isinstance(value, bool):
        return value
    flag = _FLAGS.get(str(value).strip().lower())
    if flag is None:
        raise ValueError(f"{value!r} is not true or false")
    return flag


def _status(value: Any) -> str:
    if is_blank(value):
        return "ok"
    text = str(value).strip()
    if text not in STATUSES:
        raise ValueError(f"status {value!r} is not one of {', '.join(STATUSES)}")
    return text


def _order(value: Any) -> str | None:
    """"01" or "10" from any spelling a reader may give (1, 1.0, "1", "01", 10, 10.0, "10"); else an error."""
    if is_blank(value):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
        value = str(int(value))
    order = _ORDERS.get(str(value).strip())
    if order is None:
        raise ValueError(f"order {value!r} is not 01 or 10")
    return order


def _axes(value: Any) -> list[str] | None:
    """A list, or in CSV a `|`-joined string."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return [a for a in value.split("|") if a] or None
    return [str(a) for a in value]
