"""The two kinds of benchmark item: a pairwise preference case and a single-image bias case."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class PairItem(_Item):
    """Two images for one prompt; `label` says which is better ("0", "1", "tie" or "both_bad");
    optional graded (`label_strength`, negative = image0 preferred) and soft (`label_prob`, probability that
    image0 is preferred) gold labels, copied into the records."""

    kind: Literal["pair"] = "pair"
    image0: ImageRef
    image1: ImageRef
    label: Label | None
    label_strength: float | None = None
    label_prob: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, v: Any) -> str | None:
        return gold_label(v)

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


Item = PairItem | BiasItem
