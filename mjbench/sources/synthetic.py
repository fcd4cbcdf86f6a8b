"""`synthetic` source: the embedded procedural benchmark (see `mjbench.synthetic`), offline and seeded."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from mjbench.config import TaskConfig
from mjbench.errors import ConfigError, UnknownNameError
from mjbench.sources.base import LoadResult, Source, SourceOptions


class SyntheticOptions(SourceOptions):
    perspective: str | None = None  # default: the task's perspective
    per_subcategory: int = Field(default=20, ge=1, le=10_000)  # bias: rounded up to whole groups
    seed: int = 0  # the dataset's seed (not the sampling seed of `--seed`)
    size: int = Field(default=256, ge=64, le=1024)
    subcategories: list[str] | None = None  # default: all of the perspective
    cache_dir: str | None = None  # default: $MJBENCH_CACHE_DIR or ~/.cache/mjbench


class SyntheticSource(Source):
    Options: ClassVar[type[SourceOptions]] = SyntheticOptions

    def __init__(self, task: TaskConfig):
        super().__init__(task)
        from mjbench import synthetic

        o: SyntheticOptions = self.options  # type: ignore[assignment]
        self.perspective = o.perspective or task.perspective
        known = synthetic.subcategories(self.perspective)
        if not known:
            raise ConfigError(f"{self.where}: source.perspective: the synthetic generator has no {self.perspective!r}")
        want_kind = "bias" if self.perspective == "bias" else "pair"
        if task.kind != want_kind:
            raise ConfigError(f"{self.where}: kind: synthetic {self.perspective} items are {want_kind!r} items")
        for name in o.subcategories or []:
            if name not in known:
                exc = UnknownNameError(f"synthetic {self.perspective} subcategory", name, known)
                exc.args = (f"{self.where}: source.subcategories: {exc}",)
                raise exc

    def load(self) -> LoadResult:
        from mjbench import synthetic

        o: SyntheticOptions = self.options  # type: ignore[assignment]
        items = synthetic.generate(
            self.perspective,
            task=self.task.name,
            per_subcategory=o.per_subcategory,
            seed=o.seed,
            size=o.size,
            only=o.subcategories,
            cache_dir=self.resolve(o.cache_dir) if o.cache_dir else None,
        )
        return LoadResult(items=list(items))

    def count(self) -> int | None:
        from mjbench import synthetic

        o: SyntheticOptions = self.options  # type: ignore[assignment]
        return synthetic.count(self.perspective, o.per_subcategory, o.subcategories)
