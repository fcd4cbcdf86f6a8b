"""`parquet` source: local Parquet files, read with pyarrow (no `datasets` needed).

`source.path` is one file, a folder (every `*.parquet` under it, sorted) or a glob (`data/quality-*.parquet`),
relative to the task YAML's folder. Image columns hold `{bytes, path}` structs, as written by Hugging Face
`datasets` (its schema metadata is not needed and is ignored), raw bytes, or file paths relative to the
data folder (or `source.image_root`; a path leaving it is refused unless `source.allow_outside_paths`).
Columns are mapped as in the `table` source.

Files are streamed, so memory does not grow with their size (MJ-Bench's quality file is about 7 GB, and a
hub file may be a single row group): the plain columns are read `PLAIN_BATCH_ROWS` rows at a time, and each
image cell is an ImageRef that reads its column `IMAGE_BATCH_ROWS` rows at a time when first needed, through
a buffered reader (`pre_buffer` off) that never loads a whole column chunk. The `hub` source reads the Parquet
files of a hub repository (or of a local mirror of one) through the same functions.
"""

from __future__ import annotations

import glob
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from mjbench.errors import DataError, ItemError
from mjbench.images import ImageRef
from mjbench.sources.base import SourceOptions
from mjbench.sources.tabular import Table, TabularOptions, TabularSource, image_from_cell

#: rows of the plain (non-image) columns decoded at a time
PLAIN_BATCH_ROWS = 256
#: rows of one image column decoded at a time (8 MJ-Bench quality images are about 25 MB)
IMAGE_BATCH_ROWS = 8
#: read buffer when streaming a column chunk; without one, Arrow reads a whole column chunk into memory
_BUFFER_BYTES = 1 << 20


class ParquetOptions(TabularOptions):
    path: str


class ParquetSource(TabularSource):
    Options: ClassVar[type[SourceOptions]] = ParquetOptions

    def files(self) -> list[Path]:
        raw = self.options.path  # type: ignore[attr-defined]
        path = self.resolve(raw)
        if path.is_dir():
            found = sorted(path.rglob("*.parquet"))
        elif any(ch in raw for ch in "*?["):
            found = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        else:
            found = [path] if path.is_file() else []
        if not found:
            raise DataError(f"{self.where}: source.path: no Parquet file found at {path}")
        return found

    def table(self) -> Table:
        files = self.files()
        root = self.resolve(self.options.path)  # type: ignore[attr-defined]
        base_dir = root if root.is_dir() else files[0].parent
        origin = str(files[0]) if len(files) == 1 else f"{root} ({len(files)} files)"
        image_root = self.options.image_root  # type: ignore[attr-defined]
        image_base = self.resolve(image_root) if image_root else base_dir
        allow_outside = self.options.allow_outside_paths  # type: ignore[attr-defined]
        return parquet_table(files, origin, base_dir, image_base, allow_outside)

    def count(self) -> int | None:
        if self.options.filter:  # type: ignore[attr-defined]
            return None
        return count_rows(self.files())


def parquet_table(files: list[Path], origin: str, base_dir: Path, image_base: Path | None,
                  allow_outside: bool = False) -> Table:
    """The rows of Parquet `files`, streamed (see the module docstring); the columns are the union of theirs."""
    import pyarrow.parquet as pq

    columns: dict[str, None] = {}
    for f in files:
        columns.update(dict.fromkeys(_open(f, pq).schema_arrow.names))
    return Table(columns=list(columns), rows=_rows(files, image_base, allow_outside), origin=origin,
                 base_dir=base_dir)


def count_rows(files: list[Path]) -> int:
    """Rows in Parquet `files`, from their footers (nothing else is read)."""
    import pyarrow.parquet as pq

    return sum(_open(f, pq).metadata.num_rows for f in files)


def _rows(files: list[Path], image_base: Path | None, allow_outside: bool) -> Iterator[dict[str, Any]]:
    """Rows a batch at a time. Image columns (`{bytes, ...}` structs or binary) are not read here: each cell
    becomes an ImageRef that reads its column, a few rows at a time, when first needed."""
    import pyarrow.parquet as pq

    for f in files:
        try:
            pf = _open(f, pq)
            images = [field.name for field in pf.schema_arrow if _holds_image_bytes(field.type)]
            plain = [name for name in pf.schema_arrow.names if name not in images]
            reader = _ImageCells(f, allow_outside)
            batches = (b.to_pylist() for b in pf.iter_batches(batch_size=PLAIN_BATCH_ROWS, columns=plain)) \
                if plain else ([{}] * min(PLAIN_BATCH_ROWS, pf.metadata.num_rows - start)
                               for start in range(0, pf.metadata.num_rows, PLAIN_BATCH_ROWS))
            index = 0
            for batch in batches:
                for row in batch:
                    row = dict(row)
                    for col in images:
                        row[col] = ImageRef(loader=partial(reader.read, index, col, image_base),
                                            origin=f"{f} row {index} column {col}")
                    index += 1
                    yield row
        except OSError as exc:
            raise DataError(f"{f}: cannot read Parquet data ({exc})") from None


def _open(path: Path, pq: Any) -> Any:
    try:
        return pq.ParquetFile(path, buffer_size=_BUFFER_BYTES, pre_buffer=False)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def _holds_image_bytes(arrow_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return True
    return pa.types.is_struct(arrow_type) and arrow_type.get_field_index("bytes") >= 0


class _Cursor:
    """Where one image column of one file is being read: a batch iterator, the row its current batch starts
    at, and that batch's cells."""

    def __init__(self, batches: Iterator[Any], start: int):
        self.batches = batches
        self.start = start
        self.cells: list[Any] = []

    def covers(self, row: int) -> bool:
        return self.start <= row < self.start + len(self.cells)


class _ImageCells:
    """Reads image cells of one Parquet file, keeping one batch of `IMAGE_BATCH_ROWS` rows per column: the
    runner asks for images in item order, so the file is read about once, front to back; asking for an
    earlier row starts again at its row group. Thread-safe (prefetching)."""

    def __init__(self, path: Path, allow_outside: bool = False):
        self.path = path
        self.allow_outside = allow_outside
        self._file: Any = None
        self._starts: list[int] = []  # first row of each row group
        self._cursors: dict[str, _Cursor] = {}
        self._lock = threading.Lock()

    def read(self, row: int, col: str, base_dir: Path | None) -> bytes:
        with self._lock:
            cell = self._cell(row, col)
        if cell is None:
            raise ItemError(f"{self.path}: row {row}: column {col} holds no image")
        return image_from_cell(cell, base_dir, self.allow_outside).read_bytes()

    def _cell(self, row: int, col: str) -> Any:
        import bisect

        import pyarrow.parquet as pq

        if self._file is None:
            self._file = _open(self.path, pq)
            meta = self._file.metadata
            self._starts = [0]
            for rg in range(meta.num_row_groups):
                self._starts.append(self._starts[-1] + meta.row_group(rg).num_rows)
        cursor = self._cursors.get(col)
        if cursor is None or row < cursor.start:  # (re)start at the row group holding `row`
            rg = max(0, bisect.bisect_right(self._starts, row) - 1)
            groups = list(range(rg, self._file.metadata.num_row_groups))
            batches = self._file.iter_batches(batch_size=IMAGE_BATCH_ROWS, row_groups=groups, columns=[col])
            cursor = self._cursors[col] = _Cursor(batches, self._starts[rg])
        while not cursor.covers(row):
            cursor.start += len(cursor.cells)
            cursor.cells = []  # dropped before the next batch is read: one batch in memory at a time
            batch = next(cursor.batches, None)
            if batch is None:
                del self._cursors[col]
                raise ItemError(f"{self.path}: row {row}: no such row")
            cursor.cells = batch.column(0).to_pylist()
        return cursor.cells[row - cursor.start]
