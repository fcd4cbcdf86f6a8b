"""`table` source: your own data as a JSONL, JSON or CSV file plus image files.

Format
------
One row per item, in a file named by the task's `source.path` (relative to the task YAML's folder):

- `.jsonl` (one JSON object per line; blank lines skipped), `.json` (a list of objects) or `.csv`
  (comma-separated, header row, UTF-8). The columns are the same in each format.
- Pairwise tasks (`kind: pair`, the default) need per row:
  `prompt` (or `caption`): the text the images were generated from;
  `image0`, `image1`: image file paths, relative to the data file's folder (or to `source.image_root`,
  itself relative to the task YAML's folder); a path that leaves that folder (`../x.png`, `/etc/x.png`)
  is refused unless the source sets `allow_outside_paths: true`;
  `label`: which image is better: `0`, `1` or `tie` (also `0.0`/`1.0`, `image0`/`image1`,
  `image_0`/`image_1`; see `mjbench.labels`). Other codes (`2`, `0.5`, `equal`) are refused unless
  `label_map:` in the task YAML translates them, e.g. `label_map: {"2": tie}`.
- Bias tasks (`kind: bias`) need per row: `prompt`, `image` (a path as above), `group` (what the images
  should be judged alike within, e.g. an occupation), `demographic` (e.g. `old female`), and optionally
  `axes`: the demographic axes the row varies along, a JSON list (`["age", "gender"]`) or in CSV a
  `|`-joined string (`age|gender`); without it `source.axis_keywords` can derive them from `demographic`.
- Optional for both: `item_id` (unique; default `<task>-<row index>`), a subcategory column named by the
  task's `subcategory: {column: ...}`, `info` (text or a JSON object; `subcategory: {info_key: ...}`
  reads one key of it). Other columns are ignored unless `source.meta_columns` lists them.
- Different column names: map them in the task YAML, e.g. `columns: {prompt: text, image0: left}`.

A missing column stops the load with an error naming the file and the columns that exist; a bad row
(unknown label, empty prompt, no image) is reported as a problem naming the item, the row (counted from 1,
header excluded) and the value, left out and counted in `LoadResult.dropped`; a
missing or unreadable image file is reported when the image is first used, naming the file.

Example (`mydata.jsonl`, beside `images/`):
    {"item_id": "a1", "prompt": "a red apple", "image0": "images/a1_0.png", "image1": "images/a1_1.png", "label": 0}
Example task YAML:
    name: my-alignment
    perspective: alignment
    source: {type: table, path: mydata.jsonl}
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, ClassVar

from mjbench.errors import DataError
from mjbench.records import read_json_list, read_jsonl, read_text
from mjbench.sources.base import SourceOptions
from mjbench.sources.tabular import Table, TabularOptions, TabularSource

FORMATS = (".jsonl", ".json", ".csv")


class TableOptions(TabularOptions):
    path: str


class TableSource(TabularSource):
    Options: ClassVar[type[SourceOptions]] = TableOptions

    @property
    def path(self) -> Path:
        path = self.resolve(self.options.path)  # type: ignore[attr-defined]
        if path.suffix.lower() not in FORMATS:
            raise DataError(f"{self.where}: source.path: {path} is not one of {', '.join(FORMATS)}")
        if not path.is_file():
            raise DataError(f"{self.where}: source.path: data file not found: {path}")
        return path

    def table(self) -> Table:
        path = self.path
        rows = _read_csv(path) if path.suffix.lower() == ".csv" else _read_json(path)
        columns: dict[str, None] = {}
        for row in rows:
            columns.update(dict.fromkeys(row))
        return Table(columns=list(columns), rows=rows, origin=str(path), base_dir=path.parent)

    def count(self) -> int | None:
        path = self.path
        if self.options.filter:  # type: ignore[attr-defined]
            return None
        if path.suffix.lower() == ".jsonl":
            with path.open("rb") as fh:
                return sum(1 for line in fh if line.strip())
        return len(self.table().rows)  # type: ignore[arg-type]


def _read_json(path: Path) -> list[dict[str, Any]]:
    return read_json_list(path) if path.suffix.lower() == ".json" else read_jsonl(path)


def _read_csv(path: Path) -> list[dict[str, Any]]:
    text = read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise DataError(f"{path}: empty CSV file (no header row)")
    return [dict(row) for row in reader]
