"""`parquet` source: local Parquet files, read with pyarrow (no `datasets` needed).

`source.path` is one file, a folder (every `*.parquet` under it, sorted) or a glob (`data/quality-*.parquet`),
relative to the task YAML's folder. Image columns hold `{bytes, path}` structs, as written by Hugging Face
`datasets` (its schema metadata is not needed and is ignored), raw bytes, or file paths relative to the
data folder (or `source.image_root`; a path leaving it is refused unless `source.allow_outside_paths`).
Columns are mapped as in the `table` source.
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
        import pyarrow.parquet as pq

        files = self.files()
        columns: dict[str, None] = {}
        for f in files:
            columns.update(dict.fromkeys(_open(f, pq).schema_arrow.names))
        root = self.resolve(self.options.path)  # type: ignore[attr-defined]
        base_dir = root if root.is_dir() else files[0].parent
        origin = str(files[0]) if len(files) == 1 else f"{root} ({len(files)} files)"
        image_root = self.options.image_root  # type: ignore[attr-defined]
        image_base = self.resolve(image_root) if image_root else base_dir
        return Table(columns=list(columns), rows=self._rows(files, image_base), origin=origin, base_dir=base_dir)

    def _rows(self, files: list[Path], image_base: Path) -> Iterator[dict[str, Any]]:
        """Rows one row group at a time. Image columns (`{bytes, ...}` structs or binary) are not read
        here: each cell becomes an ImageRef that reads its row group's column when first needed."""
        import pyarrow.parquet as pq

        for f in files:
            try:
                pf = _open(f, pq)
                images = [field.name for field in pf.schema_arrow if _holds_image_bytes(field.type)]
                plain = [name for name in pf.schema_arrow.names if name not in images]
                reader = _ImageCells(f, self.options.allow_outside_paths)  # type: ignore[attr-defined]
                for rg in range(pf.num_row_groups):
                    for index, row in enumerate(pf.read_row_group(rg, columns=plain).to_pylist()):
                        for col in images:
                            row[col] = ImageRef(loader=partial(reader.read, rg, index, col, image_base),
                                                origin=f"{f} row group {rg} row {index} column {col}")
                        yield row
            except OSError as exc:
                raise DataError(f"{f}: cannot read Parquet data ({exc})") from None

    def count(self) -> int | None:
        import pyarrow.parquet as pq

        if self.options.filter:  # type: ignore[attr-defined]
            return None
        return sum(_open(f, pq).metadata.num_rows for f in self.files())


def _open(path: Path, pq: Any) -> Any:
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None


def _holds_image_bytes(arrow_type: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return True
    return pa.types.is_struct(arrow_type) and arrow_type.get_field_index("bytes") >= 0


class _ImageCells:
    """Reads image cells of one Parquet file, keeping the last row group read per column: the runner
    asks for images in item order, so each row group is read about once. Thread-safe (prefetching)."""

    def __init__(self, path: Path, allow_outside: bool = False):
        self.path = path
        self.allow_outside = allow_outside
        self._cache: dict[str, tuple[int, list[Any]]] = {}
        self._lock = threading.Lock()

    def read(self, row_group: int, index: int, col: str, base_dir: Path | None) -> bytes:
        import pyarrow.parquet as pq

        with self._lock:
            cached = self._cache.get(col)
            if cached is None or cached[0] != row_group:
                cells = _open(self.path, pq).read_row_group(row_group, columns=[col]).column(0).to_pylist()
                self._cache[col] = cached = (row_group, cells)
        cell = cached[1][index]
        if cell is None:
            raise ItemError(f"{self.path}: row group {row_group} row {index}: column {col} holds no image")
        return image_from_cell(cell, base_dir, self.allow_outside).read_bytes()
