"""Engines: where a local-model judge's requests are computed. The runner plans, reads and writes the store,
and builds records the same way whatever the engine; an engine only turns requests into answered batches.

- `local` (default): the judge in this process, batch by batch (`Judge.iter_score` / `iter_compare`).
- `ray`: a Ray Data pipeline over a pool of actors, one model per actor (`mjbench.engines.ray_engine`).

API judges (`capabilities.concurrent`) never reach an engine: they keep the runner's asyncio policy, since
their concurrency is the server's limit, not the cluster's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal

from mjbench.adapters.base import Judge, PairRequest, Response, ScoreRequest
from mjbench.errors import ConfigError

ENGINES = ("local", "ray")
Kind = Literal["score", "compare"]


class LocalEngine:
    """The judge's own batches, in this process."""

    name = "local"

    def setup(self, judge: Judge) -> None:
        judge.setup()

    def batches(self, judge: Judge, requests: Sequence[ScoreRequest | PairRequest],
                kind: Kind) -> Iterator[list[tuple[int, Response]]]:
        """(index into `requests`, response) per finished batch, as they arrive."""
        if kind == "score":
            return judge.iter_score(requests)  # type: ignore[arg-type]
        return judge.iter_compare(requests)  # type: ignore[arg-type]


def get_engine(name: str, actors: int | None = None) -> LocalEngine:
    """The engine called `name`; `actors` caps the Ray actor pool (default: one per GPU, or per CPU)."""
    if name == "local":
        return LocalEngine()
    if name == "ray":
        from mjbench.engines.ray_engine import RayEngine

        return RayEngine(actors=actors)
    raise ConfigError(f"--engine must be one of {', '.join(ENGINES)}, not {name!r}")
