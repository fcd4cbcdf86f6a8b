"""The adapter protocol: what every judge family implements, and nothing more.

Adapters turn requests into responses. They never compute accuracy, never cache, never retry and
never decide concurrency: the runner owns those policies. Two request kinds exist:

- `ScoreRequest` (mode `single`): rate one image for a prompt at a feedback scale.
- `PairRequest` (mode `pair`): both images in one request, in the order shown to the judge; the
  judge rates both and/or names the better one. Indices in the response refer to the shown order;
  the runner maps them back to the item's order.

Local models implement the batch methods `score` / `compare`. Network judges set
`capabilities.concurrent` and implement `ascore` / `acompare`, raising `TransientError` for what
is worth retrying (429, 5xx, time-outs); the runner's policy retries, paces and counts attempts.

Judges that answer in free text derive from `TextJudge`: their answers are read by `mjbench.parsing`, and
`refresh` re-reads a stored raw answer when a newer parser version exists (no request is sent).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from mjbench.config import JudgeConfig, _format_validation
from mjbench.errors import ConfigError, ItemError
from mjbench.images import ImageRef
from mjbench.parsing import PARSER_VERSION, parse_output
from mjbench.registry import Registry
from mjbench.responses import (  # noqa: F401  (re-exported: adapters import them from here)
    STATUSES,
    PairRequest,
    Response,
    ScoreRequest,
    Status,
    TransientError,
)


@dataclass(frozen=True)
class Capabilities:
    modes: tuple[str, ...] = ("single",)
    batchable: bool = True  # `score`/`compare` take many requests at once
    concurrent: bool = False  # network judge: `ascore`/`acompare`, run concurrently by the runner
    needs_gpu: bool = False  # too slow to be useful without one
    needs_network: bool = False  # downloads weights or calls an API
    deterministic: bool = True
    keyed_by_item: bool = False  # answers depend on the item id (precomputed), not only on content
    #: the request text depends on the perspective (VLM prompts with per-perspective criteria); scorers rate
    #: (image, prompt) the same whatever the perspective, so their cache key leaves it out
    uses_perspective: bool = False
    #: the judge reads the images; False (precomputed) lets the runner plan it without reading or hashing any
    #: image (keyed by task, item id and order), so items whose image files are missing or are URLs still run
    needs_pixels: bool = True


class NoOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Judge:
    """Base class of every adapter. Subclasses set `capabilities`, optionally `Options`, and implement
    `score` (single mode) and/or `compare` (pair mode), or their async twins for network judges."""

    capabilities: ClassVar[Capabilities] = Capabilities()
    #: pydantic model validating `options:` of the judge YAML
    Options: ClassVar[type[BaseModel]] = NoOptions
    #: bump when the adapter's scoring changes, so cached results are not reused
    version: ClassVar[str] = "1"

    def __init__(self, config: JudgeConfig):
        self.config = config
        try:
            self.options = self.Options.model_validate(config.options)
        except ValidationError as exc:
            where = config.path or f"judge {config.name}"
            raise ConfigError(_format_validation(where, exc).replace(": ", ": options.", 1)) from None
        unsupported = [] if config.mode in self.capabilities.modes else [config.mode]
        if unsupported:
            raise ConfigError(
                f"{config.path or config.name}: mode: adapter {config.adapter!r} supports "
                f"{', '.join(self.capabilities.modes)}, not {config.mode!r}"
            )

    # -- identity and availability -----------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """Everything that determines this judge's answers (keys the result store)."""
        return {"adapter_version": self.version, **self.config.identity()}

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        """Why this judge cannot run here (missing package, weights, key), or None. Cheap: no model load."""
        return None

    @property
    def needs_network(self) -> bool:
        n = self.config.needs_network
        return self.capabilities.needs_network if n is None else n

    # -- lifecycle ---------------------------------------------------------------------------------
    def setup(self) -> None:
        """Load weights or open clients. Called once by the runner before the first request."""

    def close(self) -> None:
        """Release models and clients."""

    def refresh(self, request: ScoreRequest | PairRequest, stored: Response) -> Response:
        """A stored answer brought up to date without asking the judge again (e.g. its raw text parsed by a
        newer parser). Judges whose stored answer is final return it as it is."""
        return stored

    # -- judging -----------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        raise NotImplementedError(f"adapter {self.config.adapter!r} does not rate single images")

    def compare(self, requests: Sequence[PairRequest]) -> list[Response]:
        raise NotImplementedError(f"adapter {self.config.adapter!r} does not compare pairs")

    def iter_score(self, requests: Sequence[ScoreRequest]) -> Iterator[list[tuple[int, Response]]]:
        """Yield (index into `requests`, response) per finished batch, so the runner stores results as
        they arrive. Adapters that overlap decoding with model work override this."""
        size = self.config.batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            yield list(zip(range(start, start + len(chunk)), self.score(chunk), strict=True))

    def iter_compare(self, requests: Sequence[PairRequest]) -> Iterator[list[tuple[int, Response]]]:
        size = self.config.batch_size
        for start in range(0, len(requests), size):
            chunk = requests[start : start + size]
            yield list(zip(range(start, start + len(chunk)), self.compare(chunk), strict=True))

    async def ascore(self, request: ScoreRequest) -> Response:
        raise NotImplementedError

    async def acompare(self, request: PairRequest) -> Response:
        raise NotImplementedError


#: how API judges begin the error of a refusal flagged by the provider (not by reading the text); `refresh`
#: leaves those alone, since no parse made them
PROVIDER_REFUSAL = "refused by the API"


class TextJudge(Judge):
    """A judge that answers in free text read by `mjbench.parsing` (API and transformers VLMs). Its parses
    carry `extra["parser"]`, so a stored answer read by an older parser is re-read on the way out of the store
    without asking the judge again."""

    def parse_answer(self, raw: str | None, mode: str, scale: str, extra: dict[str, Any]) -> Response:
        """The Response for one raw answer (status, scores, verdict, error; `extra` holds what the judge reported
        beside the text, e.g. `finish_reason`). Usage fields are the caller's."""
        return parse_output(raw, mode, scale).response(raw, extra=dict(extra))

    def refresh(self, request: ScoreRequest | PairRequest, stored: Response) -> Response:
        """Re-parse the stored raw output when another parser version read it; usage, latency, cost and
        attempts stay as stored. Errors (no answer) and provider-flagged refusals are not parses: kept as stored."""
        if stored.extra.get("parser") == PARSER_VERSION or stored.raw_output is None or stored.status == "error":
            return stored
        if stored.status == "refused" and (stored.error or "").startswith(PROVIDER_REFUSAL):
            return stored
        mode = "pair" if isinstance(request, PairRequest) else "single"
        beside = {k: v for k, v in stored.extra.items() if k not in ("parse", "parser")}
        fresh = self.parse_answer(stored.raw_output, mode, request.scale, beside)
        return dataclasses.replace(
            stored, status=fresh.status, score=fresh.score, scores=fresh.scores, verdict=fresh.verdict,
            error=fresh.error, extra=fresh.extra,
        )


def load_images(images: Sequence[ImageRef], max_side: int | None = None) -> tuple[list[Any], list[str | None]]:
    """Decode images (no longer than `max_side`, see `ImageRef.load`); a broken one yields None and its error
    message instead of failing the batch."""
    out: list[Any] = []
    errors: list[str | None] = []
    for ref in images:
        try:
            out.append(ref.load(max_side))
            errors.append(None)
        except ItemError as exc:
            out.append(None)
            errors.append(str(exc))
    return out, errors


ADAPTERS: Registry[type[Judge]] = Registry("adapter", entry_point_group="mjbench.adapters")


def create_judge(config: JudgeConfig) -> Judge:
    """The one factory: adapter class from the registry, configured by the YAML."""
    cls = ADAPTERS.get(config.adapter)
    return cls(config)
