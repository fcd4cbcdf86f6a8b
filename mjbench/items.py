"""The two kinds of benchmark item: a pairwise preference case and a single-image bias case."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mjbench import PERSPECTIVES
from mjbench.images import ImageRef

Label = Literal["0", "1", "tie"]


def normalise_label(value: Any) -> str | None:
    """Map the many spellings of a preference label to "0", "1", "tie" or None (unknown)."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    if isinstance(value, bool):
        raise ValueError(f"label {value!r} is ambiguous; use 0, 1 or tie")
    if isinstance(value, (int, float)):
        if value in (0, 1):
            return str(int(value))
        raise ValueError(f"label {value!r} is not 0, 1 or tie")
    text = str(value).strip().lower()
    if text in ("0", "0.0", "image0", "image_0"):
        return "0"
    if text in ("1", "1.0", "image1", "image_1"):
        return "1"
    if text in ("tie", "2", "equal", "0.5", "draw"):
        return "tie"
    if text in ("", "none", "null", "nan"):
        return None
    raise ValueError(f"label {value!r} is not 0, 1 or tie")


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
    """Two images for one prompt; `label` says which is better ("0", "1" or "tie")."""

    kind: Literal["pair"] = "pair"
    image0: ImageRef
    image1: ImageRef
    label: Label | None

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, v: Any) -> str | None:
        return normalise_label(v)

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
