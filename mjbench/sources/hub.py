"""`hub` source: a Hugging Face dataset through `datasets` (the optional `mjbench[hub]` extra).

`source.repo` names a hub dataset (`MJ-Bench/MJ-Bench`) with optional `name` (config), `split`, `revision`
and `data_files`; `source.path` instead names a local copy: a folder written by `save_to_disk`, a folder in
hub layout (e.g. `data/<split>-00000-of-00001.parquet`), or one data file (`.parquet`, `.jsonl`, `.json`,
`.csv`, `.arrow`). Image columns are read undecoded (`{bytes, path}`), so nothing is decoded at load time.
Columns are mapped as in the `table` source. The MJ-Bench layouts are described in `tasks/mjbench*.yaml`.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from pydantic import model_validator

from mjbench.errors import DataError, ItemError, MjbenchError
from mjbench.images import ImageRef
from mjbench.sources.base import SourceOptions
from mjbench.sources.tabular import Table, TabularOptions, TabularSource, image_from_cell

BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".arrow": "arrow"}


class HubOptions(TabularOptions):
    repo: str | None = None  # hub dataset id
    path: str | None = None  # local copy (relative to the task YAML's folder)
    name: str | None = None  # dataset config
    split: str = "train"
    revision: str | None = None  # pin a commit for reproducible numbers
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    cache_dir: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> HubOptions:
        if (self.repo is None) == (self.path is None):
            raise ValueError("give exactly one of 'repo' (a hub dataset id) or 'path' (a local copy)")
        return self


class HubSource(TabularSource):
    Options: ClassVar[type[SourceOptions]] = HubOptions

    def table(self) -> Table:
        ds, origin, base_dir = self._dataset()
        from datasets import Image

        image_columns = [col for col, feature in ds.features.items() if isinstance(feature, Image)]
        for col in image_columns:
            if ds.features[col].decode:
                ds = ds.cast_column(col, Image(decode=False))
        o: HubOptions = self.options  # type: ignore[assignment]
        image_base = self.resolve(o.image_root) if o.image_root else base_dir
        rows = _lazy_rows(ds, image_columns, origin, image_base, o.allow_outside_paths)
        return Table(columns=list(ds.column_names), rows=rows, origin=origin, base_dir=base_dir)

    def _dataset(self) -> tuple[Any, str, Path | None]:
        try:
            import datasets
        except ImportError:
            raise MjbenchError(
                f"{self.where}: source type 'hub' needs the datasets package; pip install 'mjbench[hub]'"
            ) from None
        o: HubOptions = self.options  # type: ignore[assignment]
        cache_dir = str(self.resolve(o.cache_dir)) if o.cache_dir else None
        common: dict[str, Any] = {"split": o.split, "cache_dir": cache_dir}
        base_dir: Path | None = None
        if o.repo is not None:
            origin = f"{o.repo}[{o.split}]"
            call = partial(datasets.load_dataset, o.repo, o.name, revision=o.revision, data_files=o.data_files, **common)
        else:
            path = self.resolve(o.path or "")
            origin = f"{path}[{o.split}]"
            base_dir = path if path.is_dir() else path.parent
            if not path.exists():
                raise DataError(f"{self.where}: source.path: not found: {path}")
            if path.is_dir() and any((path / f).is_file() for f in ("state.json", "dataset_dict.json")):
                call = partial(_from_disk, datasets, path, o.split)  # written by save_to_disk
            elif path.is_dir():  # a local copy in hub layout
                call = partial(datasets.load_dataset, str(path), o.name, data_files=o.data_files, **common)
            elif path.suffix.lower() in BUILDERS:
                builder = BUILDERS[path.suffix.lower()]
                call = partial(datasets.load_dataset, builder, data_files={o.split: str(path)}, **common)
            else:
                raise DataError(f"{self.where}: source.path: {path} is not a folder or one of {', '.join(BUILDERS)}")
        try:
            ds = call()
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - datasets raises many types (offline, gated, bad split/files)
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            hint = ""
            if "gated" in msg.lower() or "401" in msg:
                hint = " (a gated dataset: accept its conditions on the hub, then `hf auth login` or set HF_TOKEN)"
            raise DataError(f"{self.where}: source: cannot load {origin}: {msg}{hint}") from None
        return ds, origin, base_dir


def _from_disk(datasets: Any, path: Path, split: str) -> Any:
    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise DataError(f"{path}: no split {split!r}; splits are: {', '.join(ds)}")
        ds = ds[split]
    return ds


def _lazy_rows(
    ds: Any, image_columns: list[str], origin: str, base_dir: Path | None, allow_outside: bool
) -> Iterator[dict[str, Any]]:
    """Rows without their image bytes: each image cell becomes an ImageRef that reads its row from the
    (memory-mapped) dataset when first needed, so a multi-GB split never sits in memory at once."""
    plain = ds.remove_columns(image_columns)
    by_column = {col: ds.select_columns([col]) for col in image_columns}
    for index, row in enumerate(plain):
        for col in image_columns:
            loader = partial(_cell_bytes, by_column[col], index, col, base_dir, allow_outside)
            row[col] = ImageRef(loader=loader, origin=f"{origin} row {index} column {col}")
        yield row


def _cell_bytes(column: Any, index: int, col: str, base_dir: Path | None, allow_outside: bool) -> bytes:
    cell = column[index][col]
    if cell is None:
        raise ItemError(f"row {index}: column {col} holds no image")
    return image_from_cell(cell, base_dir, allow_outside).read_bytes()
