"""The source interface: a task config in, items out.

A source reads rows from somewhere (a hub dataset, a Parquet file, a JSONL/CSV file with an image
folder, the embedded synthetic generator) and maps them to items (`PairItem`, `BiasItem`, `CaptionPairItem`,
`GroupItem`; see `mjbench.items`) through the task's column mapping. A problem with one row (a bad label, an empty prompt) becomes an entry in
`LoadResult.problems` naming the item, row and value, and is counted by reason (without the row) in
`LoadResult.dropped`, so that a run can say how many rows of each task were left out and why. A problem
with the whole source (file missing, a mapped column that does not exist) raises DataError naming the file
and column. Images are never decoded here.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from mjbench.config import TaskConfig, validate
from mjbench.errors import UnknownNameError
from mjbench.items import BiasItem, Item
from mjbench.registry import Registry


@dataclass
class LoadResult:
    items: list[Item]
    problems: list[str] = field(default_factory=list)  # one line per item that could not be built
    dropped: dict[str, int] = field(default_factory=dict)  # why rows were left out (no row number) -> count


class SourceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str


class Source:
    """Base class: subclasses set `Options` (validating the task's `source:` mapping) and `load`."""

    Options: ClassVar[type[SourceOptions]] = SourceOptions
    #: a local folder holding hub repositories as `<owner>/<name>/` snapshots, read instead of the hub
    #: (`--hub-mirror`; set by `make_source`); only the `hub` source uses it
    hub_mirror: Path | None = None

    def __init__(self, task: TaskConfig):
        self.task = task
        #: relative paths in a task YAML are relative to the YAML's folder
        self.base_dir = task.path.parent if task.path else Path.cwd()
        self.options = validate(self.Options, task.source, f"{self.where}: source")

    @property
    def where(self) -> str:
        """How errors name this task: its YAML file, else its name."""
        return str(self.task.path) if self.task.path else f"task {self.task.name}"

    def resolve(self, path: str | Path) -> Path:
        """A path from the task YAML, relative to the YAML's folder (`~` expanded)."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def load(self) -> LoadResult:
        raise NotImplementedError

    def count(self) -> int | None:
        """Number of items if cheap to know (for `tasks list`), else None."""
        return None


SOURCES: Registry[type[Source]] = Registry("source", entry_point_group="mjbench.sources")


def make_source(task: TaskConfig, hub_mirror: str | Path | None = None) -> Source:
    """Instantiate the task's source; an unknown type names the task file and suggests close names.
    `hub_mirror`: a folder of local hub snapshots (`<owner>/<name>/`) that `hub` sources read instead of the hub."""
    name = task.source["type"]
    try:
        cls = SOURCES.get(name)
    except UnknownNameError as exc:
        where = task.path or f"task {task.name}"
        exc.args = (f"{where}: source.type: {exc}",)
        raise
    source = cls(task)
    if hub_mirror is not None:
        source.hub_mirror = Path(hub_mirror).expanduser()
    return source


def load_task(
    task: TaskConfig, limit: int | None = None, seed: int = 0, hub_mirror: str | Path | None = None
) -> LoadResult:
    """Load a task's items; `limit` keeps a seeded sample of that many, in their original order."""
    result = make_source(task, hub_mirror).load()
    items = [it if it.task == task.name else it.model_copy(update={"task": task.name}) for it in result.items]
    if limit is not None and limit < len(items):
        rng = random.Random(f"{seed}:{task.name}")
        keep = stratified_sample(items, limit, rng, key=lambda it: it.subcategory, cluster=_bias_group)
        items = [items[i] for i in keep]
    return LoadResult(items=items, problems=result.problems, dropped=result.dropped)


def _bias_group(item: Item) -> str | None:
    # bias metrics compare images within a group, so a sample keeps groups together
    return item.group if isinstance(item, BiasItem) else None


def stratified_sample(
    items: Sequence[Any],
    limit: int,
    rng: random.Random,
    key: Callable[[Any], str],
    cluster: Callable[[Any], str | None] = lambda _: None,
) -> list[int]:
    """Indices of `limit` items, sorted: every stratum (subcategory) keeps items where possible, the rest
    proportionally to stratum size. Within a stratum, items sharing a cluster (a bias group) are taken
    together so that a small sample still holds comparable items."""
    strata: dict[str, list[int]] = {}
    for i, item in enumerate(items):
        strata.setdefault(key(item), []).append(i)
    names = list(strata)
    if limit < len(names):  # fewer items than strata: a random subset of strata, one item each
        names = sorted(rng.sample(names, limit), key=list(strata).index)
        quota = dict.fromkeys(names, 1)
    else:
        quota = _allocate({n: len(strata[n]) for n in names}, limit)
    keep: list[int] = []
    for name in names:
        keep += _pick(strata[name], quota[name], rng, [cluster(items[i]) for i in strata[name]])
    return sorted(keep)


def _allocate(sizes: dict[str, int], limit: int) -> dict[str, int]:
    """One item per stratum, then the rest by largest remainder in proportion to what is left."""
    quota = dict.fromkeys(sizes, 1)
    spare = {n: s - 1 for n, s in sizes.items()}
    left, total = limit - len(sizes), sum(spare.values())
    if left <= 0 or total == 0:
        return quota
    shares = {n: left * s / total for n, s in spare.items()}
    for n in sizes:
        quota[n] += int(shares[n])
    order = sorted(sizes, key=lambda n: (-(shares[n] - int(shares[n])), list(sizes).index(n)))
    for n in order[: limit - sum(quota.values())]:
        quota[n] += 1
    return {n: min(q, sizes[n]) for n, q in quota.items()}


def _pick(indices: list[int], n: int, rng: random.Random, clusters: list[str | None]) -> list[int]:
    if all(c is None for c in clusters):
        return rng.sample(indices, n)
    groups: dict[str | None, list[int]] = {}
    for i, c in zip(indices, clusters, strict=True):
        groups.setdefault(c, []).append(i)
    order = list(groups)
    rng.shuffle(order)
    out: list[int] = []
    for c in order:
        members = groups[c][:]
        rng.shuffle(members)
        out += members[: n - len(out)]
        if len(out) >= n:
            break
    return out
