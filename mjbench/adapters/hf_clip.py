"""CLIP-style scorers through transformers (AutoModel + AutoProcessor): PickScore, CLIP, SigLIP.

Score = the model's own image-text logit: `logit_scale.exp() * cos(image, text)` for CLIP and PickScore
(PickScore's reference code takes exactly this before its softmax over candidates), plus `logit_bias` for
SigLIP (`logits_per_image` of SiglipModel, whose sigmoid is the match probability). `score_scale: <number>`
replaces both by `number * cos`.

The judge's `model` is a hub id or a local folder; option `processor` names a different processor (PickScore
ships none: it uses `laion/CLIP-ViT-H-14-laion2B-s32B-b79K`'s). Text is padded to the longest prompt, or
to the model's maximum length for SigLIP, which was trained that way (option `padding` overrides).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mjbench.adapters._scoring import (
    DualEncoderOptions,
    DualEncoderScorer,
    first_line,
    missing_packages,
    model_problem,
    resolve_device,
    resolve_dtype,
    resolve_model,
    where,
)
from mjbench.adapters.base import Capabilities
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError, MjbenchError

if TYPE_CHECKING:
    from PIL import Image


def features(output: Any) -> Any:
    """transformers 5 returns a model output whose `pooler_output` is the projected embedding; 4.x a tensor."""
    import torch

    return output if isinstance(output, torch.Tensor) else output.pooler_output


def processor_input_side(processor: Any, model: Any) -> int | None:
    """The largest side the image processor resizes or crops to (`size`, `crop_size`: shortest_edge, height,
    width), else the vision config's `image_size`; None where neither says."""
    image_processor = getattr(processor, "image_processor", processor)
    sides = []
    for attr in ("size", "crop_size"):
        value = getattr(image_processor, attr, None)
        if isinstance(value, dict):
            sides += [v for k, v in value.items() if k in ("shortest_edge", "height", "width") and isinstance(v, int)]
        elif isinstance(value, int):
            sides.append(value)
    if not sides:
        vision = getattr(getattr(model, "config", None), "vision_config", None)
        size = getattr(vision, "image_size", None)
        sides = [size] if isinstance(size, int) else []
    return max(sides) if sides else None


def require_model(config: JudgeConfig) -> str:
    if not config.model:
        raise ConfigError(f"{where(config)}: model: the {config.adapter} adapter needs a model id or folder")
    return config.model


def hf_problem(config: JudgeConfig) -> str | None:
    """`check_available` of the transformers scorers: packages, then the model and processor ids or folders."""
    reason = missing_packages(["torch", "transformers"], "torch")
    if reason or not config.model:
        return reason
    processor = config.options.get("processor")
    return model_problem(config.model, "model", config, config.revision) or (
        model_problem(processor, "options.processor", config) if isinstance(processor, str) else None
    )


def load_pretrained(config: JudgeConfig, model_cls: Any, processor: str | None) -> tuple[Any, Any, str]:
    """Load `config.model` with `model_cls` and its processor; errors name the judge and the id."""
    from transformers import AutoProcessor

    require_model(config)
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device, judge=config.name)
    model_id = resolve_model(config.model, "model", config)
    processor_id = resolve_model(processor, "options.processor", config) if processor else model_id
    try:
        model = model_cls.from_pretrained(model_id, revision=config.revision, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise MjbenchError(f"{where(config)}: model: cannot load {config.model}: {first_line(exc)}") from None
    try:
        proc = AutoProcessor.from_pretrained(processor_id, revision=None if processor else config.revision)
    except (OSError, ValueError) as exc:
        field = "options.processor" if processor else "model"
        raise MjbenchError(
            f"{where(config)}: {field}: cannot load the processor {processor_id}: {first_line(exc)}"
        ) from None
    return model.to(device).eval(), proc, device


class HFClipOptions(DualEncoderOptions):
    processor: str | None = None
    padding: Literal["longest", "max_length"] | None = None


class TransformersCheckpoint:
    """What the transformers scorers share (mixed in before their scorer base): a model id checked at
    construction, availability from the hub cache, model and processor loaded together, and PIL-only
    prefetching, since the processor's torch ops run in the model's thread. Large JPEGs are decoded in
    draft mode and reduced to 2x the processor's input side before the processor resizes them."""

    #: 2: large JPEGs are decoded in draft mode and reduced to 2x the input side first
    version = "2"

    config: JudgeConfig
    options: Any

    def __init__(self, config: JudgeConfig):
        super().__init__(config)  # type: ignore[call-arg]
        require_model(config)
        self._model: Any = None
        self._processor: Any = None

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        return hf_problem(config)

    def _load_checkpoint(self, model_cls: Any) -> Any:
        model, processor, self._device = load_pretrained(self.config, model_cls, self.options.processor)
        self._max_length = int(model.config.text_config.max_position_embeddings)
        self._dtype = next(model.parameters()).dtype
        self._model, self._processor = model, processor
        return model

    def _unload(self) -> None:
        self._model = self._processor = None

    def _decode_min_side(self) -> int | None:
        side = processor_input_side(self._processor, self._model)
        return 2 * side if side else None

    def _preprocess(self, image: Image.Image) -> Any:
        return image


class HFClipScorer(TransformersCheckpoint, DualEncoderScorer):
    """A transformers dual encoder (CLIPModel, SiglipModel, ...) as a single-image scorer."""

    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single",), needs_network=True)
    Options = HFClipOptions
    options: HFClipOptions

    def _load(self) -> None:
        from transformers import AutoModel

        model = self._load_checkpoint(AutoModel)
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ConfigError(f"{where(self.config)}: model: {self.config.model} is not an image-text dual encoder")
        o = self.options
        self._set_scale(model, o.score_scale)
        siglip = "siglip" in str(getattr(model.config, "model_type", ""))
        self._padding = o.padding or ("max_length" if siglip else "longest")

    def _encode_images(self, prepared: list[Any], prompts: list[str]) -> list[Any]:
        import torch

        pixels = self._processor.image_processor(images=prepared, return_tensors="pt")["pixel_values"]
        x = pixels.to(device=self._device, dtype=self._dtype)
        with torch.inference_mode():
            emb = features(self._model.get_image_features(pixel_values=x)).float()
        return list(torch.nn.functional.normalize(emb, dim=-1).cpu())

    def _encode_texts(self, prompts: list[str]) -> list[Any]:
        import torch

        tokens = self._processor.tokenizer(
            prompts, padding=self._padding, truncation=True, max_length=self._max_length, return_tensors="pt"
        )
        inputs = {k: v.to(self._device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            emb = features(self._model.get_text_features(**inputs)).float()
        return list(torch.nn.functional.normalize(emb, dim=-1).cpu())
