"""The Ray engine: a local-model judge's requests as a Ray Data pipeline, for clusters.

The driver (the `mjbench run` process) plans, reads the store and stays its only writer, exactly as in a
local run; Ray only computes. Requests travel as rows (index, pickled request with its images' encoded
bytes, so workers need no access to the driver's files), cut into blocks of the judge's `batch_size` and put
into Ray's object store one block at a time (the driver never holds more than one block; the object store
spills to disk). `map_batches` runs them on an actor pool: one actor = one model, loaded once, with one GPU
when the judge runs on CUDA. Answers come back to the driver as they finish and are stored per batch, so
resume and the cache work as locally.

An actor whose model will not load, or a batch that raises, answers `error` for its requests (the message
names the judge and the exception), like the local engine: re-running retries exactly those.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from typing import Any

from mjbench.adapters.base import Judge, PairRequest, Response, ScoreRequest
from mjbench.config import JudgeConfig
from mjbench.engines import Kind, LocalEngine
from mjbench.errors import ConfigError, ItemError, MjbenchError
from mjbench.images import ImageRef
from mjbench.redact import redact

log = logging.getLogger("mjbench")

#: judge families that run a neural model: with `device: auto` they take a GPU where the cluster has one
MODEL_FAMILIES = ("score", "vlm")


def import_ray() -> Any:
    """Ray, connected: to the cluster in RAY_ADDRESS (set by `ray job submit`) or started by `ray start`, else
    a local instance; a session already started by the caller (`ray.init(...)`) is used as it is."""
    try:
        import ray
    except ImportError:
        raise MjbenchError("--engine ray needs Ray: pip install 'mjbench[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or None, log_to_driver=False)
    # mjbench's own progress bar counts answers; Ray Data's per-dataset bars and logs would bury it
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    return ray


def gpus_per_actor(config: JudgeConfig, cluster_gpus: float) -> int:
    """One GPU per actor for a judge on CUDA (`cuda`, `cuda:N`, or `auto` for a model where the cluster has
    GPUs); none otherwise (`device: cpu`, heuristics, baselines)."""
    if config.device.startswith("cuda"):
        return 1
    return 1 if config.device == "auto" and cluster_gpus > 0 and config.family in MODEL_FAMILIES else 0


def _portable_ref(ref: ImageRef) -> ImageRef:
    """The same image as encoded bytes: a worker on another machine cannot read the driver's paths or
    dataset readers. Its cached hash travels along (it is the content hash of those bytes)."""
    data = ref.read_bytes()
    digest = ref.hash
    ref.release()
    out = ImageRef(data=data, origin=ref.origin)
    out._hash = digest
    return out


def portable(request: ScoreRequest | PairRequest) -> bytes:
    """A request pickled with its images' bytes inside; ItemError if an image cannot be read."""
    if isinstance(request, ScoreRequest):
        request = dataclasses.replace(request, image=_portable_ref(request.image))
    else:
        a, b = request.images
        request = dataclasses.replace(request, images=(_portable_ref(a), _portable_ref(b)))
    return pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)


class JudgeActor:
    """One model in one Ray actor: created and set up once, then called per batch by `map_batches`."""

    def __init__(self, config: JudgeConfig, kind: Kind):
        from mjbench.adapters.base import create_judge

        self.kind = kind
        self.name = config.name
        self.setup_error: str | None = None
        try:
            self.judge = create_judge(config)
            self.judge.setup()
        except Exception as exc:  # answered per request below, so the run goes on and says why
            self.setup_error = redact(f"judge {config.name} cannot run: {type(exc).__name__}: {exc}")

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        indices = [int(i) for i in batch["index"]]
        answers: dict[int, Response] = {}
        if self.setup_error is None:
            requests = [pickle.loads(blob) for blob in batch["request"]]
            try:
                answered = (self.judge.iter_score(requests) if self.kind == "score"
                            else self.judge.iter_compare(requests))
                for chunk in answered:
                    answers.update(chunk)
            except Exception as exc:  # an adapter bug or a fatal model error: this batch fails, the run goes on
                message = redact(f"judge {self.name} failed: {type(exc).__name__}: {exc}")
                answers = {i: answers.get(i) or Response.failure(message) for i in range(len(indices))}
        else:
            answers = {i: Response.failure(self.setup_error) for i in range(len(indices))}
        payloads = [json.dumps(answers[i].to_dict(), ensure_ascii=False) for i in range(len(indices))]
        return {"index": np.asarray(indices, dtype=np.int64), "response": np.asarray(payloads, dtype=object)}


class RayEngine(LocalEngine):
    """Local-model judges on a Ray actor pool; API judges are left to the runner's asyncio policy."""

    name = "ray"

    def __init__(self, actors: int | None = None):
        """Checks that Ray is installed, so a run that cannot use it stops before anything is judged."""
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("--engine ray needs Ray: pip install 'mjbench[ray]'")
        if actors is not None and actors < 1:
            raise ConfigError(f"--ray-actors must be at least 1, not {actors}")
        self.actors = actors

    def setup(self, judge: Judge) -> None:
        if judge.capabilities.concurrent:
            judge.setup()
            return
        import_ray()  # a cluster that cannot be reached fails the judge's start, not its requests

    def batches(self, judge: Judge, requests: Sequence[ScoreRequest | PairRequest],
                kind: Kind) -> Iterator[list[tuple[int, Response]]]:
        if judge.capabilities.concurrent:  # never asked by the runner; kept honest for direct callers
            yield from super().batches(judge, requests, kind)
            return
        ray = import_ray()
        import pyarrow as pa

        cfg = judge.config
        refs, unreadable = [], []
        for start in range(0, len(requests), cfg.batch_size):
            index, blobs = [], []
            for i in range(start, min(start + cfg.batch_size, len(requests))):
                try:
                    blobs.append(portable(requests[i]))
                    index.append(i)
                except ItemError as exc:  # no request can be made: answered here, as a local judge would
                    unreadable.append((i, Response.failure(str(exc))))
            if index:
                refs.append(ray.put(pa.table({"index": pa.array(index, pa.int64()),
                                              "request": pa.array(blobs, pa.binary())})))
        if unreadable:
            yield unreadable
        if not refs:
            return
        resources = ray.cluster_resources()
        gpus = gpus_per_actor(cfg, resources.get("GPU", 0))
        most = int(resources.get("GPU", 1) if gpus else resources.get("CPU", 1)) or 1
        size = min(self.actors, most) if self.actors else most
        log.info("judge %s: %d requests on up to %d Ray actor(s), %d GPU each, batches of %d",
                 cfg.name, len(requests) - len(unreadable), size, gpus, cfg.batch_size)
        answers = ray.data.from_arrow_refs(refs).map_batches(
            JudgeActor, fn_constructor_kwargs={"config": cfg, "kind": kind}, batch_size=cfg.batch_size,
            batch_format="numpy", compute=ray.data.ActorPoolStrategy(min_size=1, max_size=size), num_gpus=gpus,
        )
        for batch in answers.iter_batches(batch_size=None, batch_format="numpy"):
            yield [(int(i), Response.from_dict(json.loads(p)))
                   for i, p in zip(batch["index"], batch["response"], strict=True)]
