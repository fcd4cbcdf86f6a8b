"""Scores or verdicts computed elsewhere, read from a JSONL, JSON, CSV or Parquet file keyed by item id.

Single mode, two layouts (option `layout`, `auto` picks by the columns present):
- long: one row per image, columns `item_id`, `image_index` (0 or 1; empty means 0, the only image of a
  bias item) and `score`;
- wide: one row per item, columns `item_id`, `score_0` and `score_1` (MJ-Bench's result files and
  mjbench's own records have this shape; bias items use `score_0`).
Pair mode: one row per item with `verdict` ("0", "1", "tie", spelled as gold labels are: see `mjbench.labels`;
anything else, such as "2" or "equal", is an error response naming the value) and/or
the wide score columns, always in the item's own order: the adapter maps them to the order shown.

Formats: `.jsonl`, `.csv`, `.parquet`, and `.json` holding a list of objects, the shape of MJ-Bench's own
result files (`caption`, `image0`/`image1` paths, `label`, `score_0`/`score_1`, `pred`; read them with
`verdict_column: pred` in pair mode, or as wide scores in single mode). Such files carry no item id: with
`row_ids: PREFIX` the row counted k from 0 in file order (before `filters`) answers item `PREFIX<k>`, which
is how the `table`, `parquet` and `hub` sources name rows without an id (`<task>-<row>`).

Column names are options; `task_column` / `scale_column` add the task or scale to the key, and `filters`
keeps only matching rows (e.g. `{judge: pickscore-v1}` to read one judge out of a records file). An item
the file lacks is an error response naming the item and the file, never an invented score. Relative paths
are relative to the judge YAML's folder. The judge never reads an image (`needs_pixels` is off): items whose
image files are missing, or are URLs, are judged from the file alone. The file's sha256 is part of the judge
identity, so editing the file invalidates cached results.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from mjbench.adapters._scoring import local_path, where
from mjbench.adapters.base import Capabilities, Judge, PairRequest, Response, ScoreRequest
from mjbench.config import JudgeConfig
from mjbench.errors import DataError
from mjbench.labels import gold_label
from mjbench.records import read_json_list, read_jsonl

if TYPE_CHECKING:
    import pandas as pd

_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet",
            ".pq": "parquet"}
_SWAP = {"0": "1", "1": "0", "tie": "tie", "both_bad": "both_bad"}


class PrecomputedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    format: Literal["auto", "jsonl", "json", "csv", "parquet"] = "auto"
    layout: Literal["auto", "long", "wide"] = "auto"
    item_column: str = "item_id"
    #: the file has no id column: row k (from 0, in file order) answers item f"{row_ids}{k}", e.g. "<task>-"
    row_ids: str | None = None
    image_column: str = "image_index"
    score_column: str = "score"
    score_columns: tuple[str, str] = ("score_0", "score_1")
    verdict_column: str = "verdict"
    task_column: str | None = None
    scale_column: str | None = None
    filters: dict[str, str | int | float | bool] = Field(default_factory=dict)


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class PrecomputedJudge(Judge):
    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single", "pair"), keyed_by_item=True,
                                                        needs_pixels=False)
    Options = PrecomputedOptions
    options: PrecomputedOptions

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        self.path = local_path(self.options.path, config)
        self._scores: dict[Hashable, float | None] | None = None
        self._verdicts: dict[Hashable, tuple[str | None, str | None]] | None = None
        self._digest: str | None = None

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        path = config.options.get("path")
        if not isinstance(path, str):
            return None  # the constructor reports the missing option
        p = local_path(path, config)
        return None if p.is_file() else f"{where(config)}: options.path: file not found: {p}"

    def identity(self) -> dict[str, Any]:
        if self._digest is None and self.path.is_file():
            h = hashlib.sha256()
            with self.path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            self._digest = h.hexdigest()
        return {**super().identity(), "file_sha256": self._digest}

    # -- loading -----------------------------------------------------------------------------------
    def setup(self) -> None:
        if self._scores is not None or self._verdicts is not None:
            return
        df = self._read()
        if self.config.mode == "pair":
            self._verdicts = self._index_verdicts(df)
        else:
            self._scores = self._index_scores(df)

    def close(self) -> None:
        self._scores = self._verdicts = None

    def _read(self) -> pd.DataFrame:
        import pandas as pd

        o = self.options
        if not self.path.is_file():
            raise DataError(f"{where(self.config)}: options.path: file not found: {self.path}")
        fmt = o.format if o.format != "auto" else _FORMATS.get(self.path.suffix.lower())
        if fmt is None:
            raise DataError(f"{self.path}: cannot tell the format from the suffix; set options.format")
        try:
            if fmt == "jsonl":
                df = pd.DataFrame(read_jsonl(self.path), dtype=object)  # values as the json module read them
            elif fmt == "json":
                df = pd.DataFrame(read_json_list(self.path), dtype=object)
            elif fmt == "csv":
                # every cell as text, scores then parsed by `float`: exact under every pandas version
                # (pandas 2's default parser may change the last digit of a score)
                df = pd.read_csv(self.path, dtype=str)
            else:
                df = pd.read_parquet(self.path)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise DataError(f"{self.path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from None
        if o.row_ids is not None:  # numbered before filtering: row k of the file is item <row_ids>k
            if o.item_column in df.columns:
                raise DataError(f"{self.path}: has a column {o.item_column!r}: use it (options.item_column) "
                                "or rename it, not options.row_ids as well")
            df[o.item_column] = [f"{o.row_ids}{k}" for k in range(len(df))]
        for column, value in o.filters.items():
            self._require(df, column, f"filters.{column}")
            df = df[df[column].astype(str) == str(value)]
        self._require(df, o.item_column, "item_column")
        for column in (o.task_column, o.scale_column):
            if column:
                self._require(df, column, "task_column" if column == o.task_column else "scale_column")
        return df

    def _require(self, df: pd.DataFrame, column: str, option: str) -> None:
        if column not in df.columns:
            raise DataError(
                f"{self.path}: no column {column!r} (options.{option}); columns: {', '.join(map(str, df.columns))}"
            )

    def _layout(self, df: pd.DataFrame) -> str:
        o = self.options
        long_ok = o.image_column in df.columns and o.score_column in df.columns
        wide_ok = all(c in df.columns for c in o.score_columns)
        layout = o.layout
        if layout == "auto":
            layout = "wide" if wide_ok else "long" if long_ok else ""
        if (layout == "long" and not long_ok) or (layout == "wide" and not wide_ok) or not layout:
            wanted = {
                "long": f"{o.image_column!r} and {o.score_column!r}",
                "wide": " and ".join(map(repr, o.score_columns)),
            }
            need = wanted.get(layout) or f"{wanted['long']} (long layout) or {wanted['wide']} (wide layout)"
            raise DataError(f"{self.path}: needs columns {need}; columns: {', '.join(map(str, df.columns))}")
        return layout

    def _keys(self, df: pd.DataFrame) -> list[tuple[Any, Any, str]]:
        o = self.options
        n = len(df)
        tasks = df[o.task_column].astype(str).tolist() if o.task_column else [None] * n
        scales = df[o.scale_column].astype(str).tolist() if o.scale_column else [None] * n
        return list(zip(tasks, scales, df[o.item_column].astype(str).tolist(), strict=True))

    def _put(self, table: dict[Hashable, Any], key: Hashable, value: Any) -> None:
        if key in table and table[key] != value and not (_empty(table[key]) and _empty(value)):
            raise DataError(
                f"{self.path}: {self._describe(key)} has two different values ({table[key]!r}, {value!r}); "
                "use options.filters, task_column or scale_column to tell the rows apart"
            )
        table[key] = value

    def _index_scores(self, df: pd.DataFrame) -> dict[Hashable, float | None]:
        o = self.options
        table: dict[Hashable, float | None] = {}
        keys = self._keys(df)
        if self._layout(df) == "wide":
            for key, s0, s1 in zip(keys, df[o.score_columns[0]], df[o.score_columns[1]], strict=True):
                self._put(table, (*key, 0), self._number(s0, key))
                if not _empty(s1):
                    self._put(table, (*key, 1), self._number(s1, key))
            return table
        for key, index, value in zip(keys, df[o.image_column], df[o.score_column], strict=True):
            try:
                image = 0 if _empty(index) else int(float(index))
            except (TypeError, ValueError):
                raise DataError(f"{self.path}: {self._describe(key)}: image index {index!r} is not 0 or 1") from None
            self._put(table, (*key, image), self._number(value, key))
        return table

    def _index_verdicts(self, df: pd.DataFrame) -> dict[Hashable, tuple[str | None, str | None]]:
        o = self.options
        has_verdict = o.verdict_column in df.columns
        has_scores = all(c in df.columns for c in o.score_columns)
        if not (has_verdict or has_scores):
            raise DataError(
                f"{self.path}: pair mode needs column {o.verdict_column!r} (options.verdict_column) or "
                f"{' and '.join(map(repr, o.score_columns))}; columns: {', '.join(map(str, df.columns))}"
            )
        n = len(df)
        verdicts = df[o.verdict_column].tolist() if has_verdict else [None] * n
        s0 = df[o.score_columns[0]].tolist() if has_scores else [None] * n
        s1 = df[o.score_columns[1]].tolist() if has_scores else [None] * n
        table: dict[Hashable, Any] = {}
        for key, verdict, a, b in zip(self._keys(df), verdicts, s0, s1, strict=True):
            try:
                label = gold_label(verdict, what="verdict")
            except ValueError as exc:
                label = f"error: {exc}"
            scores = None if _empty(a) or _empty(b) else (self._number(a, key), self._number(b, key))
            self._put(table, key, (label, scores))
        return table

    def _number(self, value: Any, key: Hashable) -> float | None:
        if _empty(value):
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            raise DataError(f"{self.path}: {self._describe(key)}: score {value!r} is not a number") from None

    @staticmethod
    def _describe(key: Any) -> str:
        task, scale, item = key[:3]
        text = f"item {item}" + (f" image {key[3]}" if len(key) > 3 else "")
        extra = ", ".join(f"{k} {v}" for k, v in (("task", task), ("scale", scale)) if v is not None)
        return f"{text} ({extra})" if extra else text

    # -- judging -----------------------------------------------------------------------------------
    def _key(self, req: ScoreRequest | PairRequest) -> tuple[Any, Any, str]:
        o = self.options
        return (req.task if o.task_column else None, req.scale if o.scale_column else None, req.item_id)

    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        self.setup()
        assert self._scores is not None
        out = []
        for req in requests:
            key = (*self._key(req), req.image_index or 0)
            if key not in self._scores:
                out.append(Response.failure(f"no precomputed score for {self._describe(key)} in {self.path}"))
            elif self._scores[key] is None:
                out.append(Response.failure(f"the precomputed score for {self._describe(key)} in {self.path} is empty"))
            else:
                out.append(Response(score=self._scores[key]))
        return out

    def compare(self, requests: Sequence[PairRequest]) -> list[Response]:
        self.setup()
        assert self._verdicts is not None
        out = []
        for req in requests:
            key = self._key(req)
            if key not in self._verdicts:
                out.append(Response.failure(f"no precomputed verdict for {self._describe(key)} in {self.path}"))
                continue
            label, scores = self._verdicts[key]
            if label is not None and label.startswith("error: "):
                out.append(Response.failure(f"{self.path}: {self._describe(key)}: {label.removeprefix('error: ')}"))
                continue
            if label is None and scores is None:
                out.append(Response.failure(f"the precomputed verdict for {self._describe(key)} in {self.path} is empty"))
                continue
            if req.order == "10":
                label = _SWAP[label] if label is not None else None
                scores = (scores[1], scores[0]) if scores is not None else None
            out.append(Response(verdict=label, scores=scores))  # type: ignore[arg-type]
        return out
