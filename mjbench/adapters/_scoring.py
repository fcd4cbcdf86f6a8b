"""Shared machinery of the local scorers.

- device and dtype resolution (`auto` picks cuda, then mps, then cpu);
- file options given as a local path (relative to the judge YAML's folder) or `hf-hub:org/repo/file`;
- `PrefetchScorer`, the batched pipeline behind every single-image scorer: each distinct image (by content
  hash) and each distinct prompt is encoded once per adapter lifetime, and the next batch is decoded and
  preprocessed in worker threads while the model works on the current one;
- `decode_at_least`: decode only as many pixels as the model will use (JPEG draft mode, `Image.reduce`).

Nothing heavy is imported at module level: torch is imported inside the functions that need it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import sys
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from mjbench.adapters.base import Capabilities, Judge, Response, ScoreRequest
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError, ItemError, MjbenchError
from mjbench.images import ImageRef

log = logging.getLogger("mjbench")

if TYPE_CHECKING:
    import torch
    from PIL import Image

HF_HUB_PREFIX = "hf-hub:"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# -- packages, devices, dtypes ---------------------------------------------------------------------
def missing_packages(modules: Sequence[str], extra: str) -> str | None:
    """Why the adapter cannot run (a package is not importable), or None. Cheap: nothing is imported."""

    def present(name: str) -> bool:
        if sys.modules.get(name) is not None:
            return True
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False

    missing = [m for m in modules if not present(m)]
    if not missing:
        return None
    return f"needs {', '.join(missing)} (pip install 'mjbench[{extra}]')"


def resolve_device(name: str) -> str:
    """`auto` means the best accelerator present: cuda, then mps, then cpu."""
    if name != "auto":
        return name
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def supports_half(device: str) -> bool:
    """float16 needs an accelerator: on the CPU many kernels (convolutions among them) have no half version,
    so a float16 model fails every batch with a float/half mismatch."""
    return device.startswith(("cuda", "mps"))


def resolve_dtype(name: str, device: str, cuda_auto: str = "float16", judge: str = "") -> torch.dtype:
    """`auto` is `cuda_auto` on cuda (for scorers float16: scores differ from float32 in the 3rd or 4th
    digit; generative VLMs ask for bfloat16) and float32 elsewhere. An explicit float16 on a device without
    half kernels falls back to float32, with a one-line notice (the same YAML serves a GPU and a laptop)."""
    import torch

    if name == "auto":
        return getattr(torch, cuda_auto) if device.startswith("cuda") else torch.float32
    if name == "float16" and not supports_half(device):
        log.warning("judge %s: dtype float16 is not supported on %s; using float32", judge or "?", device)
        return torch.float32
    return getattr(torch, name)


def where(config: JudgeConfig) -> str:
    """How messages name a judge: its YAML file, or its name where it has none."""
    return str(config.path) if config.path else f"judge {config.name}"


# -- file options: local paths and hf-hub: files ---------------------------------------------------
def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def local_path(spec: str, config: JudgeConfig) -> Path:
    """A relative path is relative to the judge YAML's folder (the working directory without one)."""
    p = Path(spec).expanduser()
    if p.is_absolute():
        return p
    return (config.path.parent if config.path else Path.cwd()) / p


def _split_hub_spec(spec: str, field_name: str, config: JudgeConfig) -> tuple[str, str]:
    parts = spec[len(HF_HUB_PREFIX) :].strip("/").split("/")
    if len(parts) < 3 or not all(parts):
        raise ConfigError(
            f"{where(config)}: {field_name}: {spec!r} should be hf-hub:<org>/<repo>/<file in the repo>"
        )
    return "/".join(parts[:2]), "/".join(parts[2:])


def in_hub_cache(repo_id: str, filename: str, revision: str | None = None) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, filename, revision=revision), str)


def file_problem(spec: str | None, field_name: str, config: JudgeConfig) -> str | None:
    """Why a file option cannot be used here (missing file, not cached while offline), or None. No download."""
    if not spec:
        return None
    if spec.startswith(HF_HUB_PREFIX):
        try:
            repo_id, filename = _split_hub_spec(spec, field_name, config)
        except ConfigError as exc:
            return str(exc)
        if hub_offline() and not in_hub_cache(repo_id, filename):
            return f"{where(config)}: {field_name}: {spec} is not in the local hub cache and HF_HUB_OFFLINE is set"
        return None
    path = local_path(spec, config)
    if not path.is_file():
        return f"{where(config)}: {field_name}: file not found: {path}"
    return None


def resolve_file(spec: str, field_name: str, config: JudgeConfig) -> str:
    """A usable local file for a file option: downloads `hf-hub:` files (once; the hub caches them)."""
    problem = file_problem(spec, field_name, config)
    if spec.startswith(HF_HUB_PREFIX):
        if problem:
            raise MjbenchError(problem)
        repo_id, filename = _split_hub_spec(spec, field_name, config)
        from huggingface_hub import hf_hub_download

        try:
            return hf_hub_download(repo_id=repo_id, filename=filename)
        except Exception as exc:  # noqa: BLE001 - the hub client raises many types (HTTP, offline, missing)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MjbenchError(f"{where(config)}: {field_name}: cannot fetch {spec}: {first}") from None
    if problem:
        raise ConfigError(problem)
    return str(local_path(spec, config))


def model_problem(spec: str, field_name: str, config: JudgeConfig, revision: str | None = None) -> str | None:
    """Why a transformers model id or folder cannot be used here, or None. No download."""
    path = local_path(spec, config)
    if path.is_dir():
        return None
    if not _HUB_ID.match(spec):
        return f"{where(config)}: {field_name}: model folder not found: {path}"
    if hub_offline() and not in_hub_cache(spec, "config.json", revision):
        return f"{where(config)}: {field_name}: {spec} is not in the local hub cache and HF_HUB_OFFLINE is set"
    return None


def resolve_model(spec: str, field_name: str, config: JudgeConfig) -> str:
    """A local folder (relative to the YAML) if there is one, else the hub id unchanged."""
    path = local_path(spec, config)
    if path.is_dir():
        return str(path)
    if not _HUB_ID.match(spec):
        raise ConfigError(f"{where(config)}: {field_name}: model folder not found: {path}")
    return spec


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- decoding no more than the model uses -----------------------------------------------------------
def decode_at_least(ref: ImageRef, min_side: int) -> Image.Image:
    """`ref` decoded with its shortest side reduced towards `min_side` but never below it (`ImageRef.load`'s
    `min_side`: JPEG draft mode, then `Image.reduce` by a whole factor; nothing resampled, so the model's own
    resize makes the final step).

    Why not `ref.load(max_side)`: that bounds the longest side, so a wide image would lose pixels its
    shortest side needs (CLIP resizes the shortest side), and its final LANCZOS step costs more than the
    draft saves (measured on 1024 px JPEGs: 45 ms against 25 ms for a full decode and the model's resize)."""
    return ref.load(min_side=min_side)


def default_prefetch_workers() -> int:
    """One decoding thread per core (PIL releases the GIL while it decodes), at most 16."""
    return max(1, min(os.cpu_count() or 1, 16))


# -- the batched, de-duplicating, prefetching pipeline ---------------------------------------------
class ScorerOptions(BaseModel):
    """Options every PrefetchScorer takes."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    #: threads that decode and preprocess the next batch while the model works (0: inline, no overlap;
    #: null: one per CPU core, see `default_prefetch_workers`)
    prefetch_workers: int | None = Field(default=None, ge=0, le=64)


@dataclass
class _Unit:
    """One distinct thing to encode: an image (or an image and a prompt, for joint models)."""

    key: Hashable
    image: Any  # ImageRef
    prompt: str
    requests: list[int] = field(default_factory=list)


class PrefetchScorer(Judge):
    """Base of the single-image scorers. Subclasses implement the hooks:

    - `_load()`: load the model (called once, by `setup`);
    - `_decode_min_side()`: the shortest side the model needs after decoding, or None for every pixel;
      scorers that resize to a fixed input return a safe bound (2x their input side), so large JPEGs are
      decoded in draft mode and reduced before `_preprocess` (see `decode_at_least`);
    - `_preprocess(image)`: decoded PIL image -> what `_encode_images` takes; runs in prefetch threads, so
      it must be thread-safe, and should keep to PIL/numpy work: torch ops from several threads at once
      oversubscribe the CPU cores (measured on 2 cores: with to-tensor and normalise in the threads,
      prefetching cost 10-20% at batch size 1);
    - `_encode_images(prepared, prompts)`: a batch of model inputs -> one feature per image;
    - `_encode_texts(prompts)`: a batch of prompts -> one feature per prompt (`text_mode="embedding"`);
    - `_combine(image_feature, text_feature)`: the score (text_feature is None unless `"embedding"`).

    `text_mode` says how the prompt enters: `"embedding"` (separate text encoder, e.g. CLIP: images are
    cached by content hash, prompts by text), `"joint"` (the model reads image and prompt together, e.g.
    BLIP ITM: cached per image hash and prompt) or `"none"` (image-only, e.g. aesthetic, sharpness).

    Memory: at most two batches of prepared images are held (the one being encoded and the next one being
    decoded); a decoded image is dropped as soon as `_preprocess` has turned it into model input.
    """

    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single",))
    Options: ClassVar[type[BaseModel]] = ScorerOptions
    text_mode: ClassVar[Literal["embedding", "joint", "none"]] = "embedding"

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        self._loaded = False
        self._min_side: int | None = None
        self._image_cache: dict[Hashable, Any] = {}
        self._text_cache: dict[str, Any] = {}

    # -- hooks -------------------------------------------------------------------------------------
    def _load(self) -> None:
        """Load weights. The default has nothing to load."""

    def _unload(self) -> None:
        """Drop the model."""

    def _decode_min_side(self) -> int | None:
        """The shortest side worth decoding (called after `_load`); None decodes every pixel."""
        return None

    def _preprocess(self, image: Image.Image) -> Any:
        raise NotImplementedError

    def _encode_images(self, prepared: list[Any], prompts: list[str]) -> list[Any]:
        raise NotImplementedError

    def _encode_texts(self, prompts: list[str]) -> list[Any]:
        raise NotImplementedError

    def _combine(self, image_feature: Any, text_feature: Any | None) -> float:
        return float(image_feature)

    # -- lifecycle ---------------------------------------------------------------------------------
    def setup(self) -> None:
        if not self._loaded:
            self._load()
            self._min_side = self._decode_min_side()
            self._loaded = True

    def close(self) -> None:
        self._image_cache.clear()
        self._text_cache.clear()
        self._unload()
        self._loaded = False

    # -- judging -----------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        out: list[Response | None] = [None] * len(requests)
        for batch in self.iter_score(requests):
            for i, response in batch:
                out[i] = response
        assert all(r is not None for r in out)
        return out  # type: ignore[return-value]

    def iter_score(self, requests: Sequence[ScoreRequest]) -> Iterator[list[tuple[int, Response]]]:
        """Yield the already-known answers first, then one list per model batch of distinct images."""
        self.setup()
        first: list[tuple[int, Response]] = []
        cached: list[tuple[int, Hashable]] = []
        units: dict[Hashable, _Unit] = {}
        for i, req in enumerate(requests):
            try:
                digest = req.image.hash
            except ItemError as exc:
                first.append((i, Response.failure(str(exc))))
                continue
            req.image.release()  # a file is read again when decoded: memory stays flat on large tasks
            key: Hashable = (digest, req.prompt) if self.text_mode == "joint" else digest
            if key in self._image_cache:
                cached.append((i, key))
            else:
                units.setdefault(key, _Unit(key, req.image, req.prompt)).requests.append(i)
        if cached:
            first += self._respond(requests, cached)
        if first:
            yield first

        pending = list(units.values())
        size = self.config.batch_size
        chunks = [pending[s : s + size] for s in range(0, len(pending), size)]
        workers = getattr(self.options, "prefetch_workers", 0)
        workers = default_prefetch_workers() if workers is None else workers
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mjbench-prefetch") if workers else None
        try:
            futures = self._submit(pool, chunks[0]) if pool and chunks else []
            for n, chunk in enumerate(chunks):
                if pool:
                    prepared = [f.result() for f in futures]
                    # decode the next batch while the model works on this one
                    futures = self._submit(pool, chunks[n + 1]) if n + 1 < len(chunks) else []
                else:
                    prepared = [self._prepare(u) for u in chunk]
                yield self._run_chunk(requests, chunk, prepared)
        finally:
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)

    # -- internals ---------------------------------------------------------------------------------
    def _submit(self, pool: ThreadPoolExecutor, chunk: list[_Unit]) -> list[Future]:
        return [pool.submit(self._prepare, u) for u in chunk]

    def _prepare(self, unit: _Unit) -> tuple[Any, str | None]:
        """Decode and preprocess one image; a failure becomes a message naming the image."""
        try:
            ref = unit.image
            image = ref.load() if self._min_side is None else decode_at_least(ref, self._min_side)
            return self._preprocess(image), None
        except ItemError as exc:
            return None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a preprocessing failure belongs to this image only
            return None, f"cannot score image {unit.image.origin}: {type(exc).__name__}: {first_line(exc)}"
        finally:
            unit.image.release()

    def _run_chunk(
        self, requests: Sequence[ScoreRequest], chunk: list[_Unit], prepared: list[tuple[Any, str | None]]
    ) -> list[tuple[int, Response]]:
        out: list[tuple[int, Response]] = []
        good: list[tuple[_Unit, Any]] = []
        for unit, (value, error) in zip(chunk, prepared, strict=True):
            if error is not None:
                out += [(i, Response.failure(error)) for i in unit.requests]
            else:
                good.append((unit, value))
        if not good:
            return out
        try:
            features = self._encode_images([v for _, v in good], [u.prompt for u, _ in good])
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory: this batch fails, the run goes on
            message = f"{self.config.name}: the model failed on a batch of {len(good)} images: {first_line(exc)}"
            return out + [(i, Response.failure(message)) for u, _ in good for i in u.requests]
        for (unit, _), feature in zip(good, features, strict=True):
            self._image_cache[unit.key] = feature
        return out + self._respond(requests, [(i, u.key) for u, _ in good for i in u.requests])

    def _respond(
        self, requests: Sequence[ScoreRequest], pairs: list[tuple[int, Hashable]]
    ) -> list[tuple[int, Response]]:
        if self.text_mode == "embedding":
            try:
                self._ensure_texts([requests[i].prompt for i, _ in pairs])
            except (RuntimeError, ValueError) as exc:
                message = f"{self.config.name}: the text encoder failed: {first_line(exc)}"
                return [(i, Response.failure(message)) for i, _ in pairs]
        out = []
        for i, key in pairs:
            text = self._text_cache[requests[i].prompt] if self.text_mode == "embedding" else None
            value = float(self._combine(self._image_cache[key], text))
            if math.isfinite(value):
                out.append((i, Response(score=value)))
            else:
                origin = requests[i].image.origin
                out.append((i, Response.failure(f"{self.config.name}: non-finite score {value} for {origin}")))
        return out

    def _ensure_texts(self, prompts: list[str]) -> None:
        missing = list(dict.fromkeys(p for p in prompts if p not in self._text_cache))
        size = self.config.batch_size
        for s in range(0, len(missing), size):
            batch = missing[s : s + size]
            for prompt, feature in zip(batch, self._encode_texts(batch), strict=True):
                self._text_cache[prompt] = feature


class DualEncoderOptions(ScorerOptions):
    #: "logit_scale": the model's own logit_scale.exp() (and logit_bias if it has one); a number: that factor
    score_scale: float | Literal["logit_scale"] = "logit_scale"


class DualEncoderScorer(PrefetchScorer):
    """A CLIP-style scorer: score = scale * cos(image embedding, text embedding) + bias, where scale and bias
    are the model's own `logit_scale.exp()` and `logit_bias` (SigLIP; 0 without one) or, with option
    `score_scale: <number>`, that number and 0. Embeddings reach `_combine` L2-normalised."""

    Options: ClassVar[type[BaseModel]] = DualEncoderOptions
    text_mode = "embedding"

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        self._scale, self._bias = 1.0, 0.0

    def _set_scale(self, model: Any, score_scale: float | str) -> None:
        if score_scale == "logit_scale":
            self._scale = float(model.logit_scale.detach().float().exp())
            bias = getattr(model, "logit_bias", None)
            self._bias = float(bias.detach().float()) if bias is not None else 0.0
        else:
            self._scale, self._bias = float(score_scale), 0.0

    def _combine(self, image_feature: Any, text_feature: Any | None) -> float:
        return self._scale * float(image_feature @ text_feature) + self._bias
