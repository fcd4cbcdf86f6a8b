"""CLIP-style scorers through open_clip: CLIP (OpenAI, LAION), HPS v2 / v2.1, any open_clip architecture.

Score = s * cos(image embedding, text embedding) (+ the model's logit_bias for SigLIP-style models), with
s = `logit_scale.exp()` by default (the "CLIP score" of PickScore, about 100 * cos for OpenAI CLIP) or a
fixed `score_scale`. HPS v2 reports the plain cosine (`image_features @ text_features.T` in the hpsv2
package), so the HPS judges set `score_scale: 1.0`. Rankings do not depend on s; tie thresholds do.

Options: `model_name` (an open_clip architecture, `hf-hub:org/repo` or `local-dir:/path`; defaults to the
judge's `model`), `pretrained` (a tag such as `openai`, a checkpoint path, `hf-hub:org/repo/file`, or null
for random weights, which is for tests and benchmarks), `checkpoint` (a state dict applied after creation,
e.g. `hf-hub:xswu/HPSv2/HPS_v2.1_compressed.pt`), `precision` (fp32, fp16, bf16, amp; default from the
judge's `dtype`), `score_scale`, `resize_mode` (`longest` for HPS), `weights_only` (true: torch.load
refuses pickled code; false only for a trusted checkpoint that needs it), `prefetch_workers`.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mjbench.adapters._scoring import (
    HF_HUB_PREFIX,
    DualEncoderOptions,
    DualEncoderScorer,
    file_problem,
    first_line,
    hub_offline,
    in_hub_cache,
    missing_packages,
    resolve_device,
    resolve_dtype,
    resolve_file,
    supports_half,
    where,
)
from mjbench.adapters.base import Capabilities
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    import torch
    from PIL import Image

Precision = Literal["fp32", "fp16", "bf16", "amp"]
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".npz")
log = logging.getLogger("mjbench")
_PRECISION_OF_DTYPE = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}
_UNPICKLING_HINT = (
    "the file holds more than tensors; set options.weights_only: false only if you trust where it came from"
)


def is_file_spec(value: str) -> bool:
    """`pretrained` holds either a tag (`openai`, `laion2b_s32b_b79k`) or a file."""
    return value.startswith(HF_HUB_PREFIX) or "/" in value or "\\" in value or value.endswith(_WEIGHT_SUFFIXES)


def pretrained_tag_problem(model_name: str, tag: str, field_name: str, config: JudgeConfig) -> str | None:
    """Why open_clip's pretrained `tag` cannot be loaded here, or None. No download: the tag's weights must be
    in the hub cache (or open_clip's URL cache) when HF_HUB_OFFLINE is set, as for every hub-backed judge."""
    import open_clip
    from open_clip import pretrained as oc_pretrained

    if model_name.startswith(("hf-hub:", "local-dir:")):
        return None
    cfg = oc_pretrained.get_pretrained_cfg(model_name, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        return f"{where(config)}: {field_name}: {model_name} has no pretrained tag {tag!r} (known: {', '.join(tags) or 'none'})"
    if "file" in cfg or not hub_offline():
        return None
    hub = cfg.get("hf_hub", "")
    if hub:
        repo_id, filename = hub.rstrip("/").rsplit("/", 1) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else [oc_pretrained.HF_SAFE_WEIGHTS_NAME, oc_pretrained.HF_WEIGHTS_NAME]
        if filename.endswith((".bin", ".pth", ".pt")):
            names.insert(0, filename.rsplit(".", 1)[0] + ".safetensors")
        if any(in_hub_cache(repo_id, name) for name in names):
            return None
    url = cfg.get("url", "")
    if url and (Path("~/.cache/clip").expanduser() / Path(url).name).is_file():
        return None
    return (f"{where(config)}: {field_name}: the {tag!r} weights of {model_name} are not in the local cache and "
            "HF_HUB_OFFLINE is set")


class OpenClipModel:
    """An open_clip model with its preprocessing and tokenizer, on one device, in one precision.
    Shared by the open_clip and aesthetic adapters."""

    def __init__(
        self,
        config: JudgeConfig,
        model_name: str,
        pretrained: str | None,
        checkpoint: str | None,
        precision: Precision | None,
        weights_only: bool = True,
        resize_mode: str | None = None,
        fields: tuple[str, str, str] = ("options.model_name", "options.pretrained", "options.checkpoint"),
    ):
        import pickle

        import open_clip
        import torch

        name_field, pretrained_field, checkpoint_field = fields
        if ":" not in model_name and model_name not in open_clip.list_models():
            unknown = UnknownNameError("open_clip model", model_name, open_clip.list_models())
            raise ConfigError(f"{where(config)}: {name_field}: {unknown}")
        self.device = resolve_device(config.device)
        if precision is None:
            dtype = resolve_dtype(config.dtype, self.device, judge=config.name)
            precision = _PRECISION_OF_DTYPE[str(dtype).removeprefix("torch.")]  # type: ignore[assignment]
        elif precision == "fp16" and not supports_half(self.device):
            log.warning("judge %s: precision fp16 is not supported on %s; using fp32", config.name, self.device)
            precision = "fp32"
        weights = None
        if pretrained:
            weights = resolve_file(pretrained, pretrained_field, config) if is_file_spec(pretrained) else pretrained
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=weights, precision=precision, device=self.device, weights_only=weights_only,
                image_resize_mode=resize_mode,
            )
        except pickle.UnpicklingError as exc:
            raise ConfigError(f"{where(config)}: {pretrained_field}: {_UNPICKLING_HINT}: {first_line(exc)}") from None
        except RuntimeError as exc:  # unknown pretrained tag, a checkpoint that does not fit
            raise ConfigError(f"{where(config)}: {pretrained_field}: {first_line(exc)}") from None
        if checkpoint:
            path = resolve_file(checkpoint, checkpoint_field, config)
            try:
                open_clip.load_checkpoint(model, path, device=self.device, weights_only=weights_only)
            except pickle.UnpicklingError as exc:
                raise ConfigError(
                    f"{where(config)}: {checkpoint_field}: {_UNPICKLING_HINT}: {first_line(exc)}"
                ) from None
            except (RuntimeError, KeyError, ValueError, OSError) as exc:
                raise ConfigError(
                    f"{where(config)}: {checkpoint_field}: {Path(path).name} does not fit {model_name}: "
                    f"{first_line(exc)}"
                ) from None
        self.model = model.eval()
        self.preprocess = preprocess
        # PIL-level steps (resize, crop, mode) run in the prefetch threads; the tensor steps (to tensor,
        # normalise) in the model's thread: torch ops from several threads oversubscribe the CPU cores
        steps = list(getattr(preprocess, "transforms", [preprocess]))
        cut = next((i for i, t in enumerate(steps) if type(t).__name__.endswith("ToTensor")), len(steps))
        self.pil_steps, self.tensor_steps = steps[:cut], steps[cut:]
        self.tokenizer = open_clip.get_tokenizer(model_name)
        size = getattr(model.visual, "image_size", 224)
        #: the model's square input side (224 for ViT-B-32 and ViT-H-14)
        self.input_side = int(max(size) if isinstance(size, (tuple, list)) else size)
        self.dtype = next(model.parameters()).dtype
        self.amp = precision == "amp"
        self.torch = torch

    def _context(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return self.torch.autocast(device_type=self.device.split(":")[0])
        return contextlib.nullcontext()

    def prepare(self, image: Image.Image) -> Any:
        """The PIL part of the preprocessing (thread-safe, no torch ops)."""
        for step in self.pil_steps:
            image = step(image)
        return image

    def encode_images(self, prepared: list[Any]) -> torch.Tensor:
        """L2-normalised image embeddings, float32 on the CPU, from `prepare`d images."""
        pixels = []
        for item in prepared:
            for step in self.tensor_steps:
                item = step(item)
            pixels.append(item)
        x = self.torch.stack(pixels).to(device=self.device, dtype=self.dtype)
        with self.torch.inference_mode(), self._context():
            return self.model.encode_image(x, normalize=True).float().cpu()

    def encode_texts(self, prompts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(prompts).to(self.device)
        with self.torch.inference_mode(), self._context():
            return self.model.encode_text(tokens, normalize=True).float().cpu()


class OpenClipOptions(DualEncoderOptions):
    model_name: str | None = None
    pretrained: str | None = None
    checkpoint: str | None = None
    precision: Precision | None = None
    #: how images reach the model's square input: the model's default (null; "shortest" side + centre crop for
    #: CLIP), "longest" side + black padding (what HPS v2 was trained and evaluated with), or "squash"
    resize_mode: Literal["shortest", "longest", "squash"] | None = None
    #: torch.load(weights_only=...): keep True unless a trusted checkpoint pickles non-tensor objects
    weights_only: bool = True


class OpenClipScorer(DualEncoderScorer):
    """Any open_clip model as a single-image, prompt-conditioned scorer."""

    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single",), needs_network=True)
    Options = OpenClipOptions
    #: 2: large JPEGs are decoded in draft mode and reduced to 2x the input side before the model's resize
    version = "2"
    options: OpenClipOptions

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        self.model_name = self.options.model_name or config.model
        if not self.model_name:
            raise ConfigError(f"{where(config)}: options.model_name: the open_clip adapter needs an architecture")
        self._clip: OpenClipModel | None = None

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        reason = missing_packages(["torch", "open_clip"], "torch")
        if reason:
            return reason
        options = config.options
        pretrained = options.get("pretrained")
        if isinstance(pretrained, str) and is_file_spec(pretrained):
            reason = file_problem(pretrained, "options.pretrained", config)
        elif isinstance(pretrained, str):
            reason = pretrained_tag_problem(options.get("model_name") or config.model or "", pretrained,
                                            "options.pretrained", config)
        return reason or file_problem(options.get("checkpoint"), "options.checkpoint", config)

    def _load(self) -> None:
        o = self.options
        clip = OpenClipModel(
            self.config, self.model_name, o.pretrained, o.checkpoint, o.precision, o.weights_only, o.resize_mode
        )
        self._set_scale(clip.model, o.score_scale)
        self._clip = clip

    def _unload(self) -> None:
        self._clip = None

    def _decode_min_side(self) -> int | None:
        assert self._clip is not None
        return 2 * self._clip.input_side

    def _preprocess(self, image: Image.Image) -> Any:
        assert self._clip is not None
        return self._clip.prepare(image)

    def _encode_images(self, prepared: list[Any], prompts: list[str]) -> list[Any]:
        assert self._clip is not None
        return list(self._clip.encode_images(prepared))

    def _encode_texts(self, prompts: list[str]) -> list[Any]:
        assert self._clip is not None
        return list(self._clip.encode_texts(prompts))
