"""`parquet` source: local Parquet files, read with pyarrow (no `datasets` needed).

`source.path` is one file, a folder (every `*.parquet` under it, sorted) or a glob (`data/quality-*.parquet`),
relative to the task YAML's folder. Image columns hold `{bytes, path}` structs, as written by Hugging Face
`datasets` (its schema metadata is not needed and is ignored), raw bytes, or file paths relative to the
data folder (or `source.image_root`). Columns are mapped as in the `table` source.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from mjbench.errors import DataError
from mjbench.sources.base import SourceOptions
from mjbench.sources.tabular import Table, TabularOptions, TabularSource


class ParquetOptions(TabularOptions):
    path: str
    batch_size: int = 256  # rows decoded at a time


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
        return Table(columns=list(columns), rows=self._rows(files), origin=origin, base_dir=base_dir)

    def _rows(self, files: list[Path]) -> Iterator[dict[str, Any]]:
        import pyarrow.parquet as pq

        for f in files:
            try:
                for batch in _open(f, pq).iter_batches(batch_size=self.options.batch_size):  # type: ignore[attr-defined]
                    yield from batch.to_pylist()
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
