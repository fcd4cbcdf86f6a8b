"""Candidate sets (`kind: candidates`): one prompt with two or more unlabelled images, for `mjbench label`.

Format
------
Any tabular source (`table` JSONL/JSON/CSV, `parquet`, `hub`) with `kind: candidates` in the task YAML.
One row per prompt:

- `prompt` (or `caption`): the text the images were generated from;
- `images`: two or more images: a list of paths (JSON, Parquet), a `|`-joined string of paths (CSV), or a
  list of `{bytes, path}` cells / URLs (Parquet, hub); paths are relative to the data file's folder (or
  `source.image_root`), with the same outside-the-folder rule as the `table` source;
- optional `group_id` (kept in the export) and `item_id` (default `<task>-<row index>`).
- Different names: `columns: {prompt: text, images: candidates, group_id: gid}`.

Example (`cands.jsonl`): `{"prompt": "a red apple", "images": ["a/0.png", "a/1.png", "a/2.png"]}`

Why pairs: a candidate set is loaded as every unordered pair (i < j) of its images, each a `PairItem`
without a label, so that the runner plans them exactly as benchmark items: a single-image judge rates each
distinct (image, prompt, scale) once (the pairs share its cache keys, and a later `mjbench run` of the same
judge reuses them) and a pair-mode judge compares every pair in the orders its config asks for. The set,
the pair's positions and the group id travel in `item.meta` (`set`, `pair`, `n`, `group_id`).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from mjbench.config import TaskConfig
from mjbench.errors import ConfigError, DataError
from mjbench.items import PairItem
from mjbench.sources.base import LoadResult
from mjbench.sources.tabular import (
    RowProblem,
    Table,
    TabularOptions,
    _empty,
    _missing,
    _plain,
    _subcategory,
    build_rows,
    image_from_cell,
)

#: canonical field -> the columns tried, in order, when the task does not map it
CANDIDATE_FIELDS: dict[str, tuple[str, ...]] = {
    "item_id": ("item_id",),
    "prompt": ("prompt", "caption"),
    "images": ("images",),
    "group_id": ("group_id",),
}
REQUIRED = ("prompt", "images")


def _columns(task: TaskConfig, table: Table, where: str) -> dict[str, str | None]:
    unknown = sorted(set(task.columns) - set(CANDIDATE_FIELDS))
    if unknown:
        raise ConfigError(f"{where}: columns.{unknown[0]}: unknown field for kind candidates; expected one of "
                          f"{', '.join(CANDIDATE_FIELDS)}")
    out: dict[str, str | None] = {}
    for name, defaults in CANDIDATE_FIELDS.items():
        if name in task.columns:
            if task.columns[name] not in table.columns:
                raise DataError(_missing(table.origin, task.columns[name], f"columns.{name}", table.columns))
            out[name] = task.columns[name]
            continue
        out[name] = next((c for c in defaults if c in table.columns), None)
        if out[name] is None and name in REQUIRED:
            wanted = " or ".join(repr(c) for c in defaults)
            raise DataError(_missing(table.origin, wanted, f"{name}, set columns.{name} in {where}", table.columns))
    return out


def _image_cells(value: Any) -> list[Any]:
    """The images of one row: a list, or a `|`-joined string (CSV)."""
    value = _plain(value)
    if isinstance(value, str):
        return [p.strip() for p in value.split("|") if p.strip()]
    if isinstance(value, (list, tuple)):
        return [v for v in value if not _empty(v)]
    return [value]


def rows_to_candidates(task: TaskConfig, table: Table, opts: TabularOptions, where: str) -> LoadResult:
    """One candidate set per row, loaded as its unordered pairs (see the module docstring)."""
    return build_rows(task, table, opts, where, _columns(task, table, where), _candidate_pairs)


def _candidate_pairs(task: TaskConfig, row: dict[str, Any], cols: dict[str, str | None], opts: TabularOptions,
                     table: Table, set_id: str, index: int) -> list[PairItem]:
    """One row's candidate set as its unordered pairs, or a RowProblem."""
    prompt = row.get(cols["prompt"])  # type: ignore[arg-type]
    if _empty(prompt):
        raise RowProblem(f"empty prompt (column {cols['prompt']!r})", "empty prompt")
    cells = _image_cells(row.get(cols["images"]))  # type: ignore[arg-type]
    if len(cells) < 2:
        raise RowProblem(f"{len(cells)} image(s) in column {cols['images']!r}; a candidate set needs "
                         "two or more", "fewer than two images")
    refs = [image_from_cell(c, table.base_dir, opts.allow_outside_paths, f"{set_id}/images[{k}]")
            for k, c in enumerate(cells)]
    group = row.get(cols["group_id"]) if cols["group_id"] else None
    meta = {"set": set_id, "n": len(refs), "row": index, "source": table.origin,
            "group_id": None if _empty(group) else str(_plain(group))}
    for col in opts.meta_columns:
        meta[col] = _plain(row.get(col))
    subcategory = _subcategory(task, row, None)
    return [PairItem(item_id=f"{set_id}/{i}-{j}", prompt=str(prompt), task=task.name,
                     perspective=task.perspective, subcategory=subcategory,
                     meta={**meta, "pair": [i, j]}, image0=refs[i], image1=refs[j], label=None)
            for i, j in combinations(range(len(refs)), 2)]
