"""Core types shared by every layer: the requests a judge is asked, the response it gives, and their status.

They live below both the adapters and the parser (`mjbench.parsing`), the store and the policies, so that
no lower layer imports the adapter package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from mjbench.errors import MjbenchError
from mjbench.images import ImageRef

Status = Literal["ok", "parse_error", "refused", "error"]
STATUSES: tuple[str, ...] = ("ok", "parse_error", "refused", "error")


@dataclass(frozen=True)
class ScoreRequest:
    """Rate one image for a prompt. `item_id`/`image_index` say where it came from (messages, lookups)."""

    image: ImageRef
    prompt: str
    scale: str
    perspective: str
    task: str = ""
    item_id: str = ""
    image_index: int | None = None  # 0 or 1 for pair items, None for single-image (bias) items
    #: "text": `prompt` is a candidate text rated for the image (a caption of a cartoon, a description), not
    #: the prompt the image was generated from; VLM judges then use the caption templates
    rates: Literal["image", "text"] = "image"
    #: one aspect of quality to judge (e.g. `aesthetic`), replacing the perspective's criteria in VLM prompts
    aspect: str | None = None


@dataclass(frozen=True)
class PairRequest:
    """Judge two images at once (or two texts for one image, see `texts`); `images` are in the order shown,
    `order` says how that maps back."""

    images: tuple[ImageRef, ImageRef]
    prompt: str
    scale: str
    perspective: str
    order: Literal["01", "10"] = "01"
    task: str = ""
    item_id: str = ""
    #: the gold classes the task declares (e.g. with `both_bad`): pair prompts then offer them all
    labels: tuple[str, ...] | None = None
    #: two texts compared for one image (caption pairs), in the order shown; `images` then holds that image twice
    texts: tuple[str, str] | None = None
    aspect: str | None = None


@dataclass
class Response:
    """What a judge said about one request. Indices refer to the shown order."""

    status: Status = "ok"
    score: float | None = None  # single mode
    scores: tuple[float | None, float | None] | None = None  # pair mode, shown order
    verdict: Literal["0", "1", "tie", "both_bad"] | None = None  # pair mode, shown order
    raw_output: str | None = None
    error: str | None = None
    attempts: int = 1
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(cls, error: str, status: Status = "error", **kw: Any) -> Response:
        return cls(status=status, error=error, **kw)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if d["scores"] is not None:
            d["scores"] = list(d["scores"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Response:
        d = dict(d)
        if d.get("scores") is not None:
            d["scores"] = tuple(d["scores"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class TransientError(MjbenchError):
    """A failure worth retrying (HTTP 429, 5xx, time-out). `retry_after` is in seconds, if the server said."""

    def __init__(self, message: str, retry_after: float | None = None, **usage: Any):
        super().__init__(message)
        self.retry_after = retry_after
        self.usage = usage
