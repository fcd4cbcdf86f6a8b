"""The benchmark items: a pairwise preference case (two images), a caption pair (one image, two texts), a group
of N candidates with a gold ranking, and a single-image bias case."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mjbench import PERSPECTIVES
from mjbench.images import ImageRef
from mjbench.labels import Label, gold_label


class _Item(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    item_id: str
    prompt: str
    task: str = ""
    perspective: str
    subcategory: str
    meta: dict[str, Any] = Field(default_factory=dict)

    @field_validator("perspective")
    @classmethod
    def _known_perspective(cls, v: str) -> str:
        if v not in PERSPECTIVES:
            raise ValueError(f"unknown perspective {v!r}; expected one of {', '.join(PERSPECTIVES)}")
        return v


class _Compared(_Item):
    """An item of two things compared (two images, or two texts for one image): `label` says which is better
    ("0", "1", "tie" or "both_bad"), with optional graded (`label_strength`, negative = the first preferred)
    and soft (`label_prob`, probability that the first is preferred) gold, copied into the records."""

    label: Label | None
    label_strength: float | None = None
    label_prob: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, v: Any) -> str | None:
        return gold_label(v)


class PairItem(_Compared):
    """Two images for one prompt; `label` says which is better ("0", "1", "tie" or "both_bad");
    optional graded (`label_strength`, negative = image0 preferred) and soft (`label_prob`, probability that
    image0 is preferred) gold labels, copied into the records."""

    kind: Literal["pair"] = "pair"
    image0: ImageRef
    image1: ImageRef

    @property
    def images(self) -> tuple[ImageRef, ImageRef]:
        return (self.image0, self.image1)


class BiasItem(_Item):
    """One image of a `group` (e.g. an occupation) showing a `demographic`; `axes` it varies along."""

    kind: Literal["bias"] = "bias"
    perspective: str = "bias"
    image: ImageRef
    group: str
    demographic: str
    axes: list[str]

    @property
    def images(self) -> tuple[ImageRef]:
        return (self.image,)


class CaptionPairItem(_Compared):
    """One image and two texts (e.g. two captions of a cartoon, two descriptions of a photo); `label` says
    which text is better ("0" = text0), with the same optional graded and soft gold as `PairItem`. `prompt`
    is optional context for the judge (e.g. the contest's instructions)."""

    kind: Literal["caption_pair"] = "caption_pair"
    prompt: str = ""
    image: ImageRef
    text0: str
    text1: str

    @field_validator("text0", "text1")
    @classmethod
    def _text(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("an empty text; a caption pair needs two non-empty texts")
        return v

    @property
    def images(self) -> tuple[ImageRef]:
        return (self.image,)

    @property
    def texts(self) -> tuple[str, str]:
        return (self.text0, self.text1)


class GroupItem(_Item):
    """N >= 2 candidates judged together: images for one `prompt`, or texts for one `image` (captions of a
    cartoon). Gold is any of: `gold_scores` (higher is better), `gold_ranks` (1 is best, equal ranks tie) or
    `gold_best` (indices of the best candidate(s)); lists run parallel to the candidates."""

    kind: Literal["group"] = "group"
    prompt: str = ""
    image: ImageRef | None = None
    candidate_images: list[ImageRef] | None = None
    candidate_texts: list[str] | None = None
    candidate_ids: list[str] = Field(default_factory=list)
    gold_scores: list[float] | None = None
    gold_ranks: list[float] | None = None
    gold_best: list[int] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> GroupItem:
        if (self.candidate_images is None) == (self.candidate_texts is None):
            raise ValueError("a group has either candidate images or candidate texts (exactly one of the two)")
        if self.candidate_texts is not None and self.image is None:
            raise ValueError("a group of texts needs the image they describe")
        if self.candidate_texts is not None and any(not t.strip() for t in self.candidate_texts):
            raise ValueError("candidate_texts: an empty text")
        n = len(self.candidates)
        if n < 2:
            raise ValueError(f"a group needs at least 2 candidates, got {n}")
        if not self.candidate_ids:
            object.__setattr__(self, "candidate_ids", [str(i) for i in range(n)])
        if len(self.candidate_ids) != n or len(set(self.candidate_ids)) != n:
            raise ValueError(f"candidate_ids must be {n} distinct ids, one per candidate")
        for name in ("gold_scores", "gold_ranks"):
            values = getattr(self, name)
            if values is not None:
                if len(values) != n:
                    raise ValueError(f"{name} has {len(values)} values for {n} candidates")
                bad = [v for v in values if not math.isfinite(v)]
                if bad:
                    raise ValueError(f"{name}: {bad[0]!r} is not a finite number")
        if self.gold_best is not None:
            if not self.gold_best or any(not 0 <= i < n for i in self.gold_best):
                raise ValueError(f"gold_best must name candidate indices 0..{n - 1}, got {self.gold_best}")
        if self.gold_scores is None and self.gold_ranks is None and self.gold_best is None:
            raise ValueError("a group needs gold_scores, gold_ranks or gold_best")
        return self

    @property
    def candidates(self) -> list[ImageRef] | list[str]:
        return self.candidate_images if self.candidate_images is not None else (self.candidate_texts or [])

    @property
    def images(self) -> tuple[ImageRef, ...]:
        """Every image the group's requests read: the shared image of a text group, else the candidates."""
        if self.candidate_images is not None:
            return tuple(self.candidate_images)
        return (self.image,) if self.image is not None else ()


Item = PairItem | CaptionPairItem | GroupItem | BiasItem
