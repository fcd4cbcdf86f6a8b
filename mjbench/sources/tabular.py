"""Rows to items: the column mapping shared by the `table`, `parquet` and `hub` sources.

A tabular source reads its rows into a `Table` (column names, row dicts, where they came from); this
module checks the task's `columns:` mapping against the real columns (a missing column is a DataError
naming the file and listing the columns that exist) and builds one item per row. A bad row (bad label,
empty prompt, no image, an image path outside the data folder) becomes a problem line naming the item,
the row (counted from 1) and the value, and is counted by reason in `LoadResult.dropped`; it never stops
the load.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from mjbench.config import TaskConfig
from mjbench.errors import ConfigError, DataError, ItemError
from mjbench.fetch import is_url
from mjbench.images import ImageRef
from mjbench.items import BiasItem, PairItem
from mjbench.labels import gold_label
from mjbench.sources.base import LoadResult, Source, SourceOptions

#: canonical field -> the columns tried, in order, when the task does not map it
PAIR_FIELDS: dict[str, tuple[str, ...]] = {
    "item_id": ("item_id",),
    "prompt": ("prompt", "caption"),
    "image0": ("image0",),
    "image1": ("image1",),
    "label": ("label",),
    "label_strength": ("label_strength",),  # graded gold, e.g. -3..3 (negative = image0 preferred)
    "label_prob": ("label_prob",),  # soft gold: probability that image0 is preferred
    "info": ("info",),
}
BIAS_FIELDS: dict[str, tuple[str, ...]] = {
    "item_id": ("item_id",),
    "prompt": ("prompt", "caption"),
    "image": ("image", "image0"),  # MJ-Bench's bias split repeats the image in image0 and image1
    "group": ("group",),
    "demographic": ("demographic",),
    "axes": ("axes",),
    "info": ("info",),
}
REQUIRED = {"pair": ("prompt", "image0", "image1", "label"), "bias": ("prompt", "image", "group", "demographic")}


class TabularOptions(SourceOptions):
    """Options every tabular source accepts (besides where its data is)."""

    #: folder that relative image paths are resolved against (default: the data file's folder)
    image_root: str | None = None
    #: keep only rows whose column equals the value (or is one of the listed values)
    filter: dict[str, Any] = Field(default_factory=dict)
    #: copy these columns into each item's `meta`
    meta_columns: list[str] = Field(default_factory=list)
    #: bias tasks without an axes column: axis -> words; an item carries every axis whose word occurs
    #: in its demographic string (e.g. {age: [young, old]} gives "old female" the axis age)
    axis_keywords: dict[str, list[str]] = Field(default_factory=dict)
    #: image paths must stay inside the data file's folder (or `image_root`): `../x.png` or `/etc/x.png`
    #: is refused as an item problem, so a shared data file cannot make a run read arbitrary files.
    #: Set true for data whose images live elsewhere (paths are then used as written).
    allow_outside_paths: bool = False


@dataclass
class Table:
    columns: list[str]
    rows: Iterable[dict[str, Any]]
    origin: str  # the file or dataset the rows come from, for messages
    base_dir: Path | None = None  # relative image paths are relative to this


class TabularSource(Source):
    """A source whose rows go through the task's column mapping; subclasses implement `table()`."""

    Options: ClassVar[type[SourceOptions]] = TabularOptions

    def table(self) -> Table:
        raise NotImplementedError

    def load(self) -> LoadResult:
        table = self.table()
        opts: TabularOptions = self.options  # type: ignore[assignment]
        if opts.image_root:  # like every path in a task YAML, relative to the YAML's folder
            table.base_dir = self.resolve(opts.image_root)
        if self.task.kind == "candidates":  # unlabelled candidate sets for `mjbench label`
            from mjbench.sources.candidates import rows_to_candidates

            return rows_to_candidates(self.task, table, opts, self.where)
        if self.task.kind in ("caption_pair", "group"):  # one image and two texts; N candidates, gold ranking
            from mjbench.sources.shapes import rows_to_shapes

            return rows_to_shapes(self.task, table, opts, self.where)
        return rows_to_items(self.task, table, opts, self.where)


class RowProblem(ItemError):
    """A row that cannot become an item; `reason` is the message without row-specific values, for the
    per-task count of dropped rows."""

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message


def resolve_columns(task: TaskConfig, columns: list[str], origin: str, where: str) -> dict[str, str | None]:
    """Canonical field -> column name (None for an optional field that is absent)."""
    fields = BIAS_FIELDS if task.kind == "bias" else PAIR_FIELDS
    unknown = sorted(set(task.columns) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: columns.{unknown[0]}: unknown field; expected one of {', '.join(fields)}"
        )
    present = set(columns)
    out: dict[str, str | None] = {}
    for name, defaults in fields.items():
        if name in task.columns:
            col = task.columns[name]
            if col not in present:
                raise DataError(_missing(origin, col, f"columns.{name}", columns))
            out[name] = col
            continue
        out[name] = next((c for c in defaults if c in present), None)
        if out[name] is None and name in REQUIRED[task.kind]:
            wanted = " or ".join(repr(c) for c in defaults)
            raise DataError(_missing(origin, wanted, f"{name}, set columns.{name} in {where}", columns))
    spec = task.subcategory
    if spec.column is not None and spec.column not in present:
        raise DataError(_missing(origin, spec.column, "subcategory.column", columns))
    if spec.info_key is not None and out["info"] is None:
        raise DataError(_missing(origin, "info", "subcategory.info_key needs an info column", columns))
    return out


def _missing(origin: str, col: str, why: str, columns: list[str]) -> str:
    quoted = col if col.startswith("'") else repr(col)
    return f"{origin}: column {quoted} not found ({why}); columns are: {', '.join(columns) or 'none'}"


def rows_to_items(task: TaskConfig, table: Table, opts: TabularOptions, where: str) -> LoadResult:
    return build_rows(task, table, opts, where, resolve_columns(task, table.columns, table.origin, where), _build)


def build_rows(task: TaskConfig, table: Table, opts: TabularOptions, where: str, cols: dict[str, str | None],
               build: Callable[..., Any]) -> LoadResult:
    """The row loop of every tabular shape: filter, item ids, duplicates, and one problem line per bad row
    (counted by reason). `build(task, row, cols, opts, table, item_id, index)` makes one item, or a list of
    items (a candidate set is loaded as its pairs), or raises."""
    for col in [*opts.filter, *opts.meta_columns]:
        if col not in table.columns:
            raise DataError(_missing(table.origin, col, "source.filter / source.meta_columns", table.columns))
    items: list[Any] = []
    problems: list[str] = []
    dropped: dict[str, int] = {}
    seen: set[str] = set()
    filtered_out: dict[str, set[str]] = {col: set() for col in opts.filter}  # values seen, for the error below
    rows = passed = 0
    for index, row in enumerate(table.rows):
        rows += 1
        if not passes_filter(row, opts.filter):
            for col, values in filtered_out.items():
                if len(values) < 30:
                    values.add(str(_plain(row.get(col))))
            continue
        passed += 1
        raw_id = row.get(cols["item_id"]) if cols["item_id"] else None
        item_id = f"{task.name}-{index}" if _empty(raw_id) else str(_plain(raw_id))
        try:
            if item_id in seen:
                raise RowProblem("duplicate item_id; the later row is left out")
            item = build(task, row, cols, opts, table, item_id, index)
        except (ItemError, ValueError) as exc:
            message = _one_line(exc)
            problems.append(f"{where}: item {item_id} ({table.origin} row {index + 1}): {message}")
            reason = getattr(exc, "reason", message)
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        seen.add(item_id)
        items.extend(item if isinstance(item, list) else [item])
    if opts.filter and rows and not passed:  # a filter value that is spelled otherwise in the data
        wanted = ", ".join(f"{col}={want!r}" for col, want in opts.filter.items())
        present = "; ".join(f"{col}: {', '.join(sorted(v))}" for col, v in filtered_out.items())
        raise DataError(f"{where}: source.filter: no row of {table.origin} has {wanted}; values there: {present}")
    return LoadResult(items=items, problems=problems, dropped=dropped)


def _build(
    task: TaskConfig,
    row: dict[str, Any],
    cols: dict[str, str | None],
    opts: TabularOptions,
    table: Table,
    item_id: str,
    index: int,
) -> PairItem | BiasItem:
    def cell(name: str) -> Any:
        col = cols.get(name)
        return row.get(col) if col else None

    prompt = cell("prompt")
    if _empty(prompt):
        raise ItemError(f"empty prompt (column {cols['prompt']!r})")
    info = _parse_info(cell("info"))
    meta: dict[str, Any] = {"row": index, "source": table.origin}
    if cols["info"] and not _empty(info):
        meta["info"] = info
    for col in opts.meta_columns:
        meta[col] = _plain(row.get(col))
    common: dict[str, Any] = {
        "item_id": item_id,
        "prompt": str(prompt),
        "task": task.name,
        "perspective": task.perspective,
        "subcategory": _subcategory(task, row, info),
        "meta": meta,
    }
    if task.kind == "bias":
        demographic = cell("demographic")
        group = cell("group")
        if _empty(group) or _empty(demographic):
            raise ItemError(f"empty group or demographic (columns {cols['group']!r}, {cols['demographic']!r})")
        return BiasItem(
            **common,
            image=_image(cell("image"), cols["image"], table, item_id, opts),
            group=str(group),
            demographic=str(demographic),
            axes=_axes(cell("axes"), str(demographic), opts.axis_keywords),
        )
    return PairItem(
        **common,
        image0=_image(cell("image0"), cols["image0"], table, item_id, opts),
        image1=_image(cell("image1"), cols["image1"], table, item_id, opts),
        label=_label(cell("label"), task.label_map, cols["label"]),
        label_strength=_number(cell("label_strength"), cols["label_strength"]),
        label_prob=_number(cell("label_prob"), cols["label_prob"], low=0.0, high=1.0),
    )


def _number(value: Any, col: str | None, low: float = -math.inf, high: float = math.inf) -> float | None:
    """An optional graded or soft gold label: a finite number in [low, high], or None where the cell is empty."""
    if _empty(value):
        return None
    try:
        number = float(_plain(value))
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(_plain(value), bool) or not low <= number <= high:
        raise RowProblem(f"column {col!r}: {value!r} is not a number in [{low:g}, {high:g}]",
                         f"column {col!r}: not a number in [{low:g}, {high:g}]")
    return number


def _label(value: Any, label_map: dict[str, str], col: str | None) -> str:
    label = gold_label(value, label_map)  # raises LabelError naming the bad value
    if label is None:
        raise ItemError(f"no label (column {col!r} is empty)")
    return label


def _image(value: Any, col: str | None, table: Table, item_id: str, opts: TabularOptions) -> ImageRef:
    if _empty(value):
        raise ItemError(f"no image (column {col!r} is empty)")
    origin = _image_origin(value, col, item_id)
    return image_from_cell(value, table.base_dir, opts.allow_outside_paths, origin)


def image_from_cell(
    cell: Any, base_dir: Path | None, allow_outside: bool, origin: str | None = None
) -> ImageRef:
    """`ImageRef.from_cell`, refusing a path (a text cell, or a `{path}` cell without bytes) that leaves
    `base_dir` once `..` is resolved, unless `allow_outside` (symbolic links are not followed). An http(s)
    URL is no path: it is fetched when first read (see `mjbench.fetch`)."""
    path = cell.get("path") if isinstance(cell, dict) and cell.get("bytes") is None else cell
    if isinstance(path, (str, Path)) and not is_url(path) and not allow_outside:
        _check_inside(Path(path), base_dir)
    return ImageRef.from_cell(cell, base_dir=base_dir, origin=origin)


def _check_inside(path: Path, base_dir: Path | None) -> None:
    reason = "image path outside the data folder (set source.allow_outside_paths: true to allow)"
    if base_dir is None:
        raise RowProblem(f"image path {str(path)!r} has no data folder to be inside; "
                         "set source.allow_outside_paths: true to use it", reason)
    root = os.path.abspath(base_dir)
    full = os.path.abspath(path if path.is_absolute() else Path(root) / path)
    if os.path.commonpath([root, full]) != root:
        raise RowProblem(f"image path {str(path)!r} leaves {root}; set source.allow_outside_paths: true "
                         "to allow it", reason)


def _image_origin(value: Any, col: str | None, item_id: str) -> str:
    path = value.get("path") if isinstance(value, dict) else value if isinstance(value, (str, Path)) else None
    return f"{item_id}/{col}" + (f" ({path})" if path else "")


def _subcategory(task: TaskConfig, row: dict[str, Any], info: Any) -> str:
    spec = task.subcategory
    raw: Any = spec.fixed
    if raw is None and spec.column is not None:
        raw = row.get(spec.column)
    if raw is None and spec.info_key is not None and isinstance(info, dict):
        raw = info.get(spec.info_key)
    raw = None if _empty(raw) else str(_plain(raw)).strip()
    if raw is not None:
        return spec.map.get(raw, raw)
    if spec.default is not None:
        return spec.default
    source = spec.column and f"column {spec.column!r}" or spec.info_key and f"info key {spec.info_key!r}"
    raise ItemError(f"no subcategory ({source or 'nothing'} is empty) and subcategory.default is not set")


def _axes(value: Any, demographic: str, keywords: dict[str, list[str]]) -> list[str]:
    if not _empty(value):
        value = _plain(value)
        parts = value if isinstance(value, list) else str(value).replace(",", "|").split("|")
        return [str(p).strip() for p in parts if str(p).strip()]
    # whole-word match, so that "male" is not found in "female"; keywords may span words ("middle eastern")
    text = " " + " ".join(re.split(r"[\s_,;|]+", demographic.lower())) + " "
    return [axis for axis, kws in keywords.items() if any(f" {kw.lower().strip()} " in text for kw in kws)]


def _parse_info(value: Any) -> Any:
    """`info` may hold a dict, a JSON object as text, or plain text."""
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return _plain(value)


def passes_filter(row: dict[str, Any], filt: dict[str, Any]) -> bool:
    for col, want in filt.items():
        got = _plain(row.get(col))
        allowed = want if isinstance(want, list) else [want]
        if got not in allowed and str(got) not in [str(a) for a in allowed]:
            return False
    return True


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (from pandas / pyarrow) to plain Python values."""
    if hasattr(value, "tolist") and not isinstance(value, (bytes, str)):
        return value.tolist()
    return value


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):  # NaN from pandas
        return True
    return isinstance(value, str) and not value.strip()


def _one_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
