"""The source interface: a task config in, items out.

A source reads rows from somewhere (a hub dataset, a Parquet file, a JSONL/CSV file with an image
folder, the embedded synthetic generator) and maps them to `PairItem` / `BiasItem` through the task's
column mapping. A problem with one row (a bad label, an empty prompt) becomes an entry in
`LoadResult.problems` naming the item; a problem with the whole source (file missing, a mapped column
that does not exist) raises DataError naming the file and column. Images are never decoded here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from mjbench.config import TaskConfig
from mjbench.items import BiasItem, PairItem
from mjbench.registry import Registry


@dataclass
class LoadResult:
    items: list[PairItem | BiasItem]
    problems: list[str] = field(default_factory=list)  # one line per item that could not be built


class SourceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str


class Source:
    """Base class: subclasses set `Options` (validating the task's `source:` mapping) and `load`."""

    Options: ClassVar[type[SourceOptions]] = SourceOptions

    def __init__(self, task: TaskConfig):
        self.task = task
        #: relative paths in a task YAML are relative to the YAML's folder
        self.base_dir = task.path.parent if task.path else Path.cwd()

    def load(self) -> LoadResult:
        raise NotImplementedError

    def count(self) -> int | None:
        """Number of items if cheap to know (for `tasks list`), else None."""
        return None


SOURCES: Registry[type[Source]] = Registry("source", entry_point_group="mjbench.sources")


def load_task(task: TaskConfig, limit: int | None = None, seed: int = 0) -> LoadResult:
    """Load a task's items; `limit` keeps a seeded sample of that many, in their original order."""
    raise NotImplementedError  # implemented with the sources
