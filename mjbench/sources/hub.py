"""`hub` source: a Hugging Face dataset repository, read as published.

`source.repo` names a hub dataset (`MJ-Bench/MJ-Bench`) with an optional `revision` (pin a commit for
reproducible numbers); `source.path` instead names a local copy: a folder written by `save_to_disk`, a folder in
hub layout, or one data file (`.parquet`, `.jsonl`, `.json`, `.csv`, `.arrow`).

Two ways to read a repository:

- **Named files** (`data_files`: a path, a glob, or a list of them; e.g. `data/alignment.parquet`). The
  repository's files at that revision are listed first (`huggingface_hub`); a name or glob that matches no
  file stops the load with one line listing the data files that do exist, so a wrong name in a task YAML is
  fixed in a minute. `require_columns` keeps only the named Parquet files whose schema has those columns (read
  from each file's footer, so a 7 GB file that is not wanted is never downloaded), which selects files by
  their layout rather than by a guessed name. When every selected file is Parquet, the files are read with
  the streaming Parquet reader of the `parquet` source (row batches, images read on demand): only the named
  files are downloaded, and `datasets` is not needed (only `huggingface_hub`).
- **A dataset config** (`name`, `split`, no `data_files`, or data files that are not all Parquet): loaded
  with `datasets.load_dataset`, for repositories whose card declares configs (e.g. GenAI-Bench). Image
  columns are read undecoded (`{bytes, path}`), each cell read from the memory-mapped dataset when needed.

**Hub mirror.** Clusters without internet read a local snapshot instead: with `--hub-mirror DIR` (or the
environment variable `MJBENCH_HUB_MIRROR`), repository `owner/name` is read from `DIR/owner/name/`, as
`hf download owner/name --repo-type dataset --revision REV --local-dir DIR/owner/name` writes it. The same
logic applies, the listing being the snapshot's files (its `.cache/` folder left out); where the snapshot
records the commit it was downloaded at and it differs from the pinned revision, a warning says so.

Columns are mapped as in the `table` source; `filter` selects rows by column value (e.g. `{category:
composition}`), and a filter that matches no row names the values present. The MJ-Bench layouts are
described in `tasks/mjbench*.yaml`.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, model_validator

from mjbench.errors import ConfigError, DataError, ItemError, MjbenchError
from mjbench.images import ImageRef
from mjbench.sources.base import SourceOptions
from mjbench.sources.parquet import count_rows, parquet_table
from mjbench.sources.tabular import Table, TabularOptions, TabularSource, image_from_cell, passes_filter

log = logging.getLogger("mjbench")

BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".csv": "csv", ".arrow": "arrow"}
#: the environment variable read when no `--hub-mirror` is given
HUB_MIRROR_ENV = "MJBENCH_HUB_MIRROR"
#: at most this many file names in the "data files there" listing
_LIST_MAX = 40


class HubOptions(TabularOptions):
    repo: str | None = None  # hub dataset id
    path: str | None = None  # local copy (relative to the task YAML's folder)
    name: str | None = None  # dataset config (datasets path only)
    split: str = "train"  # datasets path only; with data_files, every named file is read
    revision: str | None = None  # pin a commit for reproducible numbers
    data_files: str | list[str] | dict[str, str | list[str]] | None = None
    #: keep only the named Parquet files whose schema has all these columns (e.g. the 2025 MJ-Bench layout)
    require_columns: list[str] = Field(default_factory=list)
    cache_dir: str | None = None

    @model_validator(mode="after")
    def _one_location(self) -> HubOptions:
        if (self.repo is None) == (self.path is None):
            raise ValueError("give exactly one of 'repo' (a hub dataset id) or 'path' (a local copy)")
        if self.require_columns and self.data_files is None:
            raise ValueError("require_columns selects among data_files; set data_files too (e.g. 'data/*.parquet')")
        return self


class HubSource(TabularSource):
    Options: ClassVar[type[SourceOptions]] = HubOptions

    @property
    def opts(self) -> HubOptions:
        return self.options  # type: ignore[return-value]

    def mirror_root(self) -> Path | None:
        """The mirror folder in force: `--hub-mirror`, else $MJBENCH_HUB_MIRROR, else None (the hub)."""
        if self.hub_mirror is not None:
            return self.hub_mirror
        env = os.environ.get(HUB_MIRROR_ENV, "").strip()
        return Path(env).expanduser() if env else None

    def table(self) -> Table:
        o = self.opts
        if o.repo is not None and o.data_files is not None:
            repo = self._repository()
            files = self._named_files(repo)
            if all(f.lower().endswith(".parquet") for f in files):
                files = self._with_columns(repo, files)
                local = [repo.local(f) for f in files]
                origin = f"{o.repo}:{files[0]}" if len(files) == 1 else f"{o.repo} ({', '.join(files)})"
                base_dir = local[0].parent
                image_base = self.resolve(o.image_root) if o.image_root else base_dir
                return parquet_table(local, origin, base_dir, image_base, o.allow_outside_paths)
            if o.require_columns:
                raise ConfigError(f"{self.where}: source.require_columns: needs Parquet data files, not "
                                  f"{', '.join(f for f in files if not f.lower().endswith('.parquet'))}")
            return self._dataset_table(repo, files)
        return self._dataset_table(self._repository() if o.repo is not None else None, None)

    def count(self) -> int | None:
        """Rows of the named Parquet files where that costs no download (a mirror), else None; with a `filter`,
        the rows it keeps (only the filtered columns are read)."""
        o = self.opts
        if o.repo is None or o.data_files is None or self.mirror_root() is None:
            return None
        try:
            repo = self._repository()
            files = self._with_columns(repo, self._named_files(repo))
        except MjbenchError:
            return None
        if not all(f.lower().endswith(".parquet") for f in files):
            return None
        local = [repo.local(f) for f in files]
        if not o.filter:
            return count_rows(local)
        import pyarrow.parquet as pq

        try:
            return sum(passes_filter(row, o.filter) for f in local
                       for row in pq.read_table(f, columns=list(o.filter)).to_pylist())
        except (OSError, ValueError, KeyError):  # a filter column the files lack: the load will say so
            return None

    # -- the repository: its files, where they are ----------------------------------------------
    def _repository(self) -> _Repository:
        o = self.opts
        assert o.repo is not None
        mirror = self.mirror_root()
        if mirror is not None:
            return _Mirror(o.repo, o.revision, mirror, self.where)
        cache_dir = str(self.resolve(o.cache_dir)) if o.cache_dir else None
        return _Remote(o.repo, o.revision, cache_dir, self.where)

    def _patterns(self) -> list[str]:
        files = self.opts.data_files
        if isinstance(files, dict):
            if self.opts.split not in files:
                raise ConfigError(f"{self.where}: source.data_files: no entry for split {self.opts.split!r}; "
                                  f"entries: {', '.join(files)}")
            files = files[self.opts.split]
        return [files] if isinstance(files, str) else list(files or [])

    def _named_files(self, repo: _Repository) -> list[str]:
        """The repository's files that `data_files` names, in listing order; a pattern matching nothing is an
        error listing the data files that exist."""
        listing = repo.files()
        chosen: dict[str, None] = {}
        for pattern in self._patterns():
            hits = [f for f in listing if fnmatch.fnmatchcase(f, pattern.lstrip("/"))]
            if not hits:
                data = [f for f in listing if Path(f).suffix.lower() in BUILDERS] or listing
                more = f", ... ({len(data) - _LIST_MAX} more)" if len(data) > _LIST_MAX else ""
                shown = ", ".join(data[:_LIST_MAX]) + more
                raise DataError(f"{self.where}: source.data_files: {pattern!r} matches no file of {repo.label}; "
                                f"data files there: {shown or 'none'}")
            chosen.update(dict.fromkeys(sorted(hits)))
        return list(chosen)

    def _with_columns(self, repo: _Repository, files: list[str]) -> list[str]:
        need = self.opts.require_columns
        if not need:
            return files
        schemas = {f: repo.columns(f) for f in files}
        kept = [f for f in files if all(c in schemas[f] for c in need)]
        if not kept:
            seen = "; ".join(f"{f}: {', '.join(cols)}" for f, cols in schemas.items())
            raise DataError(f"{self.where}: source.require_columns: no data file of {repo.label} has columns "
                            f"{', '.join(need)}; files and their columns: {seen}")
        return kept

    # -- the datasets path -----------------------------------------------------------------------
    def _dataset_table(self, repo: _Repository | None, files: list[str] | None) -> Table:
        ds, origin, base_dir = self._dataset(repo, files)
        from datasets import Image

        image_columns = [col for col, feature in ds.features.items() if isinstance(feature, Image)]
        for col in image_columns:
            if ds.features[col].decode:
                ds = ds.cast_column(col, Image(decode=False))
        o = self.opts
        image_base = self.resolve(o.image_root) if o.image_root else base_dir
        rows = _lazy_rows(ds, image_columns, origin, image_base, o.allow_outside_paths)
        return Table(columns=list(ds.column_names), rows=rows, origin=origin, base_dir=base_dir)

    def _dataset(self, repo: _Repository | None, files: list[str] | None) -> tuple[Any, str, Path | None]:
        try:
            import datasets
        except ImportError:
            raise MjbenchError(
                f"{self.where}: source type 'hub' needs the datasets package here (a dataset config, or data "
                "files that are not all Parquet); pip install 'mjbench[hub]'"
            ) from None
        o = self.opts
        cache_dir = str(self.resolve(o.cache_dir)) if o.cache_dir else None
        common: dict[str, Any] = {"split": o.split, "cache_dir": cache_dir}
        data_files: Any = o.data_files if files is None else {o.split: files}
        base_dir: Path | None = None
        if isinstance(repo, _Mirror):
            origin = f"{repo.label}[{o.split}]"
            base_dir = repo.root
            call = partial(datasets.load_dataset, str(repo.root), o.name, data_files=data_files, **common)
        elif repo is not None:
            origin = f"{o.repo}[{o.split}]"
            call = partial(datasets.load_dataset, o.repo, o.name, revision=o.revision, data_files=data_files,
                           **common)
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
            raise DataError(f"{self.where}: source: cannot load {origin}: {_why(exc)}") from None
        return ds, origin, base_dir


def _why(exc: BaseException) -> str:
    """One line for a hub or datasets failure, with what to do about the usual ones."""
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    low = f"{type(exc).__name__} {msg}".lower()
    if "gated" in low or "401" in low:
        msg += " (a gated dataset: accept its conditions on the hub, then `hf auth login` or set HF_TOKEN)"
    elif "offline" in low:
        msg += f" (no hub access here: read a local snapshot with --hub-mirror DIR or {HUB_MIRROR_ENV})"
    return msg


class _Repository:
    """A hub dataset repository at one revision: its file listing, local copies of its files, and their
    Parquet columns."""

    label: str

    def files(self) -> list[str]:
        raise NotImplementedError

    def local(self, path: str) -> Path:
        raise NotImplementedError

    def columns(self, path: str) -> list[str]:
        raise NotImplementedError


class _Mirror(_Repository):
    """`DIR/<owner>/<name>/`, as `hf download --repo-type dataset --local-dir` writes it."""

    def __init__(self, repo: str, revision: str | None, mirror: Path, where: str):
        self.repo, self.revision, self.where = repo, revision, where
        self.root = mirror / repo
        self.label = f"{repo} in the hub mirror {self.root}"
        if not self.root.is_dir():
            raise DataError(
                f"{where}: hub mirror {mirror} has no folder {repo}/ (fill it with `hf download {repo} "
                f"--repo-type dataset{f' --revision {revision}' if revision else ''} --local-dir {self.root}`)"
            )

    def files(self) -> list[str]:
        out = []
        for p in self.root.rglob("*"):
            rel = p.relative_to(self.root).as_posix()
            if p.is_file() and not rel.startswith(".cache/"):
                out.append(rel)
        return sorted(out)

    def local(self, path: str) -> Path:
        self._check_revision(path)
        return self.root / path

    def columns(self, path: str) -> list[str]:
        import pyarrow.parquet as pq

        try:
            return list(pq.read_schema(self.root / path).names)
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.root / path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None

    def _check_revision(self, path: str) -> None:
        """`hf download --local-dir` keeps the commit of each file in `.cache/huggingface/download/`."""
        meta = self.root / ".cache" / "huggingface" / "download" / f"{path}.metadata"
        if not self.revision or not meta.is_file():
            return
        try:
            commit = meta.read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError, UnicodeDecodeError):
            return
        if commit and commit != self.revision and len(self.revision) == 40:
            log.warning("%s: %s in the hub mirror was downloaded at commit %s, not the pinned revision %s",
                        self.where, path, commit, self.revision)


class _Remote(_Repository):
    """The repository on the hub (needs `huggingface_hub`, installed with `mjbench[hub]`)."""

    def __init__(self, repo: str, revision: str | None, cache_dir: str | None, where: str):
        self.repo, self.revision, self.cache_dir, self.where = repo, revision, cache_dir, where
        self.label = f"{repo} at revision {revision or 'main'}"

    def _hub(self) -> Any:
        try:
            import huggingface_hub
        except ImportError:
            raise MjbenchError(
                f"{self.where}: source type 'hub' needs huggingface_hub; pip install 'mjbench[hub]'") from None
        return huggingface_hub

    def _fail(self, what: str, exc: Exception) -> DataError:
        return DataError(f"{self.where}: source: cannot {what} {self.label}: {_why(exc)}")

    def files(self) -> list[str]:
        hub = self._hub()
        try:
            return sorted(hub.HfApi().list_repo_files(self.repo, repo_type="dataset", revision=self.revision))
        except Exception as exc:  # noqa: BLE001 - gated, not found, offline, HTTP errors
            raise self._fail("list the files of", exc) from None

    def local(self, path: str) -> Path:
        hub = self._hub()
        try:
            return Path(hub.hf_hub_download(self.repo, path, repo_type="dataset", revision=self.revision,
                                            cache_dir=self.cache_dir))
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"download {path} of", exc) from None

    def columns(self, path: str) -> list[str]:
        """From the file's footer, read over HTTP range requests: the file itself is not downloaded."""
        import pyarrow.parquet as pq

        hub = self._hub()
        at = f"@{quote(self.revision, safe='')}" if self.revision else ""
        try:
            with hub.HfFileSystem().open(f"datasets/{self.repo}{at}/{path}", "rb") as fh:
                return list(pq.ParquetFile(fh).schema_arrow.names)
        except Exception as exc:  # noqa: BLE001
            raise self._fail(f"read the schema of {path} in", exc) from None


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
