"""BLIP image-text matching through transformers (`BlipForImageTextRetrieval`).

Score (option `head`):
- `itm` (default): the ITM head's softmax probability of "match" (class 1), in [0, 1]. The head reads
  image and prompt together (cross-attention), so each distinct (image, prompt) is run once.
- `cosine`: cosine of the projected image and text [CLS] features (`use_itm_head=False`), as MJ-Bench's
  `blipscore_eval.py` computed it.

MJ-Bench's config names `Salesforce/blip-itm-base-coco`; `Salesforce/blip-itm-large-coco` is the larger
sibling. Option `processor` names a different processor folder or id.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from mjbench.adapters._scoring import PrefetchScorer, ScorerOptions
from mjbench.adapters.base import Capabilities
from mjbench.adapters.hf_clip import TransformersCheckpoint


class BlipItmOptions(ScorerOptions):
    processor: str | None = None
    head: Literal["itm", "cosine"] = "itm"


class BlipItmScorer(TransformersCheckpoint, PrefetchScorer):
    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single",), needs_network=True)
    Options = BlipItmOptions
    text_mode = "joint"
    options: BlipItmOptions

    def _load(self) -> None:
        from transformers import BlipForImageTextRetrieval

        self._load_checkpoint(BlipForImageTextRetrieval)

    def _encode_images(self, prepared: list[Any], prompts: list[str]) -> list[Any]:
        import torch

        tokens = self._processor.tokenizer(
            prompts, padding=True, truncation=True, max_length=self._max_length, return_tensors="pt"
        )
        pixels = self._processor.image_processor(images=prepared, return_tensors="pt")["pixel_values"]
        pixels = pixels.to(device=self._device, dtype=self._dtype)
        itm = self.options.head == "itm"
        with torch.inference_mode():
            out = self._model(
                input_ids=tokens["input_ids"].to(self._device),
                attention_mask=tokens["attention_mask"].to(self._device),
                pixel_values=pixels,
                use_itm_head=itm,
            ).itm_score.float()
        scores = out.softmax(dim=-1)[:, 1] if itm else out.diagonal()
        return [float(s) for s in scores.cpu()]
