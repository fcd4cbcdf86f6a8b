"""Caption pairs (`kind: caption_pair`) and groups (`kind: group`) from tabular sources.

Any tabular source (`table` JSONL/JSON/CSV, `parquet`, `hub`) reads these shapes; the task's `kind` says which,
and `columns:` maps fields to columns where the names differ, as for pairwise items. One row per item.

Caption pairs: one image, two texts, which text is better
-----------------------------------------------------------
- `image`: the image both texts describe (a path relative to the data file's folder or `source.image_root`,
  a `{bytes, path}` cell, or a URL; the same outside-the-folder rule as the `table` source);
- `text0`, `text1` (or `caption0`, `caption1`): the two texts;
- `label`: which text is better, `0` (text0), `1`, `tie` or `both_bad`, through the one label normaliser and
  the task's `label_map`;
- optional: `prompt` (context for the judge, e.g. the contest's instructions; default empty), `item_id`
  (default `<task>-<row index>`), `label_strength` (graded gold, negative = text0 better), `label_prob`
  (probability that text0 is better, in [0, 1]), `subcategory`, `info`.

Example: `{"image": "cartoons/660.jpg", "text0": "I'm the new branch manager.", "text1": "Hi.", "label": 0}`

Groups: N >= 2 candidates with a gold ranking
---------------------------------------------
The task says what the candidates are: `candidates: images` (the default; images generated for one prompt)
or `candidates: texts` (texts for one image, e.g. captions of a cartoon).

- `prompt` (image groups: required, `caption` also read; text groups: optional context);
- `image` (text groups only, required): the image the texts describe;
- `candidates` (image groups also read `images`, text groups `texts`): a list (JSON, Parquet), or in CSV a JSON
  list (`["a", "b|c"]`, for texts holding `|`) or a `|`-joined string (`a.png|b.png`); image candidates are
  paths / cells / URLs as above;
- gold, at least one of: `gold_scores` (one number per candidate, higher is better), `gold_ranks` (one per
  candidate, 1 is best, equal ranks are ties) and `gold_best` (the index or indices, from 0, of the best
  candidate(s)); lists as for `candidates` (`3.5|1|2` in CSV); a row whose gold lists are all empty is refused;
- optional: `candidate_ids` (one distinct id per candidate; default `0`..`N-1`), `item_id`, `subcategory`,
  `info`.

Example: `{"prompt": "a red apple", "candidates": ["a/0.png", "a/1.png", "a/2.png"], "gold_ranks": [2, 1, 3]}`

Subcategory: the task's `subcategory:` spec when it sets one; otherwise a `subcategory` column where the data
has one (or `columns: {subcategory: COL}`); otherwise `all`. A bad row (empty text, a wrong number of gold
values, a bad label, an image path leaving the folder) is reported naming the file, the row (counted from 1)
and the value, left out, and counted by reason in `LoadResult.dropped`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from mjbench.config import SubcategorySpec, TaskConfig
from mjbench.errors import ConfigError, DataError
from mjbench.images import ImageRef
from mjbench.items import CaptionPairItem, GroupItem
from mjbench.sources.base import LoadResult
from mjbench.sources.tabular import (
    RowProblem,
    Table,
    TabularOptions,
    _empty,
    _label,
    _missing,
    _number,
    _parse_info,
    _plain,
    _subcategory,
    build_rows,
    image_from_cell,
)

#: canonical field -> the columns tried, in order, when the task does not map it
CAPTION_PAIR_FIELDS: dict[str, tuple[str, ...]] = {
    "item_id": ("item_id",),
    "prompt": ("prompt",),
    "image": ("image",),
    "text0": ("text0", "caption0"),
    "text1": ("text1", "caption1"),
    "label": ("label",),
    "label_strength": ("label_strength",),
    "label_prob": ("label_prob",),
    "subcategory": ("subcategory",),
    "info": ("info",),
}
GOLD_FIELDS = ("gold_scores", "gold_ranks", "gold_best")
GROUP_FIELDS: dict[str, dict[str, tuple[str, ...]]] = {
    mode: {
        "item_id": ("item_id",),
        "prompt": ("prompt", "caption") if mode == "images" else ("prompt",),
        **({"image": ("image",)} if mode == "texts" else {}),
        "candidates": ("candidates", mode),
        "candidate_ids": ("candidate_ids",),
        **{name: (name,) for name in GOLD_FIELDS},
        "subcategory": ("subcategory",),
        "info": ("info",),
    }
    for mode in ("images", "texts")
}
REQUIRED = {
    "caption_pair": ("image", "text0", "text1", "label"),
    "images": ("prompt", "candidates"),
    "texts": ("image", "candidates"),
}


def rows_to_shapes(task: TaskConfig, table: Table, opts: TabularOptions, where: str) -> LoadResult:
    """One `CaptionPairItem` (kind caption_pair) or `GroupItem` (kind group) per row."""
    if task.kind == "caption_pair":
        fields, required, what = CAPTION_PAIR_FIELDS, REQUIRED["caption_pair"], "kind caption_pair"
    elif task.kind == "group":
        mode = task.candidates or "images"
        fields, required, what = GROUP_FIELDS[mode], REQUIRED[mode], f"kind group of {mode}"
    else:  # pragma: no cover - dispatch only sends these two kinds
        raise ConfigError(f"{where}: kind: {task.kind} is not a caption pair or group task")
    cols = _columns(task, table, where, fields, required, what)
    if task.kind == "group" and not any(cols[g] for g in GOLD_FIELDS):
        raise DataError(_missing(table.origin, " or ".join(repr(g) for g in GOLD_FIELDS),
                                 f"a group needs gold, set columns.gold_scores (or gold_ranks, gold_best) in {where}",
                                 table.columns))
    task = _with_subcategory(task, cols, where)
    if task.kind == "caption_pair":
        build: Callable[..., Any] = _caption_pair
    else:
        build = _group
    return build_rows(task, table, opts, where, cols, build)


def _columns(task: TaskConfig, table: Table, where: str, fields: dict[str, tuple[str, ...]],
             required: tuple[str, ...], what: str) -> dict[str, str | None]:
    unknown = sorted(set(task.columns) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: columns.{unknown[0]}: unknown field for {what}; expected one of "
                          f"{', '.join(fields)}")
    present = set(table.columns)
    out: dict[str, str | None] = {}
    for name, defaults in fields.items():
        if name in task.columns:
            if task.columns[name] not in present:
                raise DataError(_missing(table.origin, task.columns[name], f"columns.{name}", table.columns))
            out[name] = task.columns[name]
            continue
        out[name] = next((c for c in defaults if c in present), None)
        if out[name] is None and name in required:
            wanted = " or ".join(repr(c) for c in defaults)
            raise DataError(_missing(table.origin, wanted, f"{name}, set columns.{name} in {where}", table.columns))
    spec = task.subcategory
    if "subcategory" in task.model_fields_set:
        if spec.column is not None and spec.column not in present:
            raise DataError(_missing(table.origin, spec.column, "subcategory.column", table.columns))
        if spec.info_key is not None and out["info"] is None:
            raise DataError(_missing(table.origin, "info", "subcategory.info_key needs an info column",
                                     table.columns))
    return out


def _with_subcategory(task: TaskConfig, cols: dict[str, str | None], where: str) -> TaskConfig:
    """The task's own `subcategory:` wins; else the subcategory column (named or found); else `all`."""
    if "subcategory" in task.model_fields_set:
        if "subcategory" in task.columns:
            raise ConfigError(f"{where}: columns.subcategory: the task also sets subcategory:, keep one of the two")
        return task
    if cols["subcategory"] is None:
        return task
    return task.model_copy(update={"subcategory": SubcategorySpec(column=cols["subcategory"])})


def _common(task: TaskConfig, row: dict[str, Any], cols: dict[str, str | None], opts: TabularOptions,
            table: Table, item_id: str, index: int) -> dict[str, Any]:
    info = _parse_info(row.get(cols["info"])) if cols["info"] else None
    meta: dict[str, Any] = {"row": index, "source": table.origin}
    if cols["info"] and not _empty(info):
        meta["info"] = info
    for col in opts.meta_columns:
        meta[col] = _plain(row.get(col))
    return {"item_id": item_id, "task": task.name, "perspective": task.perspective,
            "subcategory": _subcategory(task, row, info), "meta": meta}


def _text(value: Any, name: str, col: str | None, kind: str | None = None) -> str:
    """A non-empty text; `kind` names the field in the drop reason (default: `name`)."""
    value = _plain(value)
    kind = kind or name
    if _empty(value):
        raise RowProblem(f"empty {name} (column {col!r})", f"empty {kind}")
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise RowProblem(f"{name} (column {col!r}) is a {type(value).__name__}, not a text", f"{kind}: not a text")
    return str(value)


def _image(value: Any, name: str, col: str | None, table: Table, opts: TabularOptions, item_id: str) -> ImageRef:
    if _empty(_plain(value)):
        raise RowProblem(f"no image (column {col!r} is empty)", "no image")
    path = value.get("path") if isinstance(value, dict) else value if isinstance(value, str) else None
    origin = f"{item_id}/{name}" + (f" ({path})" if path else "")
    return image_from_cell(value, table.base_dir, opts.allow_outside_paths, origin)


def _make(cls: type, **fields: Any) -> Any:
    """Build an item; a validation error becomes one RowProblem line naming the field."""
    try:
        return cls(**fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise RowProblem(f"{loc}: {msg}" if loc else msg) from None


def _caption_pair(task: TaskConfig, row: dict[str, Any], cols: dict[str, str | None], opts: TabularOptions,
                  table: Table, item_id: str, index: int) -> CaptionPairItem:
    def cell(name: str) -> Any:
        col = cols.get(name)
        return row.get(col) if col else None

    prompt = _plain(cell("prompt"))
    return _make(
        CaptionPairItem,
        **_common(task, row, cols, opts, table, item_id, index),
        prompt="" if _empty(prompt) else str(prompt),
        image=_image(cell("image"), "image", cols["image"], table, opts, item_id),
        text0=_text(cell("text0"), "text0", cols["text0"]),
        text1=_text(cell("text1"), "text1", cols["text1"]),
        label=_label(cell("label"), task.label_map, cols["label"]),
        label_strength=_number(cell("label_strength"), cols["label_strength"]),
        label_prob=_number(cell("label_prob"), cols["label_prob"], low=0.0, high=1.0),
    )


def list_cell(value: Any) -> list[Any]:
    """A list cell: a list (JSON, Parquet), or text holding a JSON list or `|`-joined values (CSV). Pieces
    are kept as they are (an empty piece stays, so that parallel lists stay aligned)."""
    value = _plain(value)
    if _empty(value):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, list):
                return parsed
        return [p.strip() for p in text.split("|")]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _as_number(piece: Any) -> float:
    """A list piece as a float; NaN for what is not a number (a bool is not one)."""
    piece = _plain(piece)
    try:
        return math.nan if isinstance(piece, bool) else float(piece)
    except (TypeError, ValueError):
        return math.nan


def _numbers(value: Any, name: str, col: str | None, n: int) -> list[float] | None:
    pieces = list_cell(value)
    if not pieces:
        return None
    out = []
    for piece in pieces:
        piece, number = _plain(piece), _as_number(piece)
        if not math.isfinite(number):
            raise RowProblem(f"{name} (column {col!r}): {piece!r} is not a number", f"{name}: not a number")
        out.append(number)
    if len(out) != n:
        raise RowProblem(f"{name} (column {col!r}) has {len(out)} values for {n} candidates",
                         f"{name}: wrong number of values")
    return out


def _indices(value: Any, col: str | None, n: int) -> list[int] | None:
    pieces = list_cell(value)
    if not pieces:
        return None
    out = []
    for piece in pieces:
        piece, number = _plain(piece), _as_number(piece)
        if not (math.isfinite(number) and number.is_integer() and 0 <= number < n):
            raise RowProblem(f"gold_best (column {col!r}): {piece!r} is not a candidate index 0..{n - 1}",
                             "gold_best: not a candidate index")
        out.append(int(number))
    return sorted(set(out))


def _group(task: TaskConfig, row: dict[str, Any], cols: dict[str, str | None], opts: TabularOptions,
           table: Table, item_id: str, index: int) -> GroupItem:
    def cell(name: str) -> Any:
        col = cols.get(name)
        return row.get(col) if col else None

    mode = task.candidates or "images"
    common = _common(task, row, cols, opts, table, item_id, index)
    prompt = _plain(cell("prompt"))
    if mode == "images" and _empty(prompt):
        raise RowProblem(f"empty prompt (column {cols['prompt']!r})", "empty prompt")
    pieces = list_cell(cell("candidates"))
    n = len(pieces)
    if n < 2:
        raise RowProblem(f"{n} candidate(s) in column {cols['candidates']!r}; a group needs two or more",
                         "fewer than two candidates")
    for k, piece in enumerate(pieces):
        if _empty(_plain(piece)):
            raise RowProblem(f"candidate {k} (column {cols['candidates']!r}) is empty", "empty candidate")
    fields: dict[str, Any] = {"prompt": "" if _empty(prompt) else str(prompt)}
    if mode == "images":
        fields["candidate_images"] = [_image(p, f"candidates[{k}]", cols["candidates"], table, opts, item_id)
                                      for k, p in enumerate(pieces)]
    else:
        fields["image"] = _image(cell("image"), "image", cols["image"], table, opts, item_id)
        fields["candidate_texts"] = [_text(p, f"candidate {k}", cols["candidates"], "candidate")
                                     for k, p in enumerate(pieces)]
    ids = list_cell(cell("candidate_ids"))
    if ids:
        if len(ids) != n:
            raise RowProblem(f"candidate_ids (column {cols['candidate_ids']!r}) has {len(ids)} values for {n} "
                             "candidates", "candidate_ids: wrong number of values")
        fields["candidate_ids"] = [str(_plain(i)).strip() for i in ids]
        repeated = next((i for k, i in enumerate(fields["candidate_ids"]) if i in fields["candidate_ids"][:k]), None)
        if repeated is not None:
            raise RowProblem(f"candidate_ids (column {cols['candidate_ids']!r}) repeat the id {repeated!r}",
                             "candidate_ids: not distinct")
    fields["gold_scores"] = _numbers(cell("gold_scores"), "gold_scores", cols["gold_scores"], n)
    fields["gold_ranks"] = _numbers(cell("gold_ranks"), "gold_ranks", cols["gold_ranks"], n)
    fields["gold_best"] = _indices(cell("gold_best"), cols["gold_best"], n)
    if all(fields[g] is None for g in GOLD_FIELDS):
        named = ", ".join(f"{g} ({cols[g]!r})" for g in GOLD_FIELDS if cols[g])
        raise RowProblem(f"no gold: {named} empty", "no gold")
    return _make(GroupItem, **common, **fields)
