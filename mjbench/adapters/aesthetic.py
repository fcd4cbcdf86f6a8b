"""The LAION aesthetic predictor v2: an MLP head on the L2-normalised CLIP ViT-L/14 image embedding.

Image-only: the prompt is ignored, so each distinct image is scored once whatever its prompts. The head
file is LAION's `sac+logos+ava1-l14-linearMSE.pth` (improved-aesthetic-predictor), a state dict of
`layers = Sequential(Linear(768, 1024), Dropout(0.2), Linear(1024, 128), Dropout(0.2), Linear(128, 64),
Dropout(0.1), Linear(64, 16), Linear(16, 1))` (keys `layers.0`, `.2`, `.4`, `.6`, `.7`; no activations,
as in LAION's `simple_inference.py`). The score is on LAION's roughly 1-10 rating scale.

Options: `head_path` (a path or `hf-hub:org/repo/file`), `clip_model` (ViT-L-14), `clip_pretrained`
(`openai`; a tag or a checkpoint path), `precision`, `prefetch_workers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from mjbench.adapters._scoring import (
    PrefetchScorer,
    ScorerOptions,
    file_problem,
    first_line,
    missing_packages,
    resolve_file,
    where,
)
from mjbench.adapters.base import Capabilities
from mjbench.adapters.open_clip_scorer import OpenClipModel, Precision, is_file_spec
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from PIL import Image

#: indices of the Linear layers in LAION's Sequential; Dropouts sit at 1, 3 and 5
_LINEAR_AT = (0, 2, 4, 6, 7)
_DROPOUT_AT = {1: 0.2, 3: 0.2, 5: 0.1}


def load_aesthetic_head(path: str, field_name: str, config: JudgeConfig) -> torch.nn.Sequential:
    """Build LAION's head with the layer sizes found in the file and load it strictly."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors all mean: not a head file
        raise ConfigError(f"{where(config)}: {field_name}: cannot read {path}: {first_line(exc)}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {k.removeprefix("layers."): v for k, v in state.items()} if isinstance(state, dict) else {}
    try:
        shapes = [tuple(state[f"{i}.weight"].shape) for i in _LINEAR_AT]
    except KeyError:
        raise ConfigError(
            f"{where(config)}: {field_name}: {path} is not a LAION aesthetic head "
            f"(expected Linear layers layers.0, .2, .4, .6, .7; found {', '.join(sorted(state)[:6]) or 'nothing'})"
        ) from None
    modules: list[torch.nn.Module] = []
    for i in range(8):
        if i in _DROPOUT_AT:
            modules.append(torch.nn.Dropout(_DROPOUT_AT[i]))
        else:
            out_features, in_features = shapes[_LINEAR_AT.index(i)]
            modules.append(torch.nn.Linear(in_features, out_features))
    head = torch.nn.Sequential(*modules)
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ConfigError(f"{where(config)}: {field_name}: {path}: {first_line(exc)}") from None
    return head.eval()


class AestheticOptions(ScorerOptions):
    head_path: str
    clip_model: str = "ViT-L-14"
    clip_pretrained: str | None = "openai"
    precision: Precision | None = None


class AestheticScorer(PrefetchScorer):
    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single",), needs_network=True)
    Options = AestheticOptions
    text_mode = "none"
    #: 2: large JPEGs are decoded in draft mode and reduced to 2x the CLIP input side first
    version = "2"
    options: AestheticOptions

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        self._clip: OpenClipModel | None = None
        self._head: Any = None

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        reason = missing_packages(["torch", "open_clip"], "torch")
        if reason:
            return reason
        pretrained = config.options.get("clip_pretrained", "openai")
        if isinstance(pretrained, str) and is_file_spec(pretrained):
            reason = file_problem(pretrained, "options.clip_pretrained", config)
        head = config.options.get("head_path")
        return reason or (file_problem(head, "options.head_path", config) if isinstance(head, str) else None)

    def _load(self) -> None:
        o = self.options
        head_file = resolve_file(o.head_path, "options.head_path", self.config)
        head = load_aesthetic_head(head_file, "options.head_path", self.config)
        clip = OpenClipModel(
            self.config, o.clip_model, o.clip_pretrained, None, o.precision,
            fields=("options.clip_model", "options.clip_pretrained", "options.checkpoint"),
        )
        embed_dim = getattr(clip.model.visual, "output_dim", head[0].in_features)
        if head[0].in_features != embed_dim:
            raise ConfigError(
                f"{where(self.config)}: options.head_path: the head takes {head[0].in_features}-d embeddings, "
                f"{o.clip_model} gives {embed_dim}-d"
            )
        self._head = head.to(clip.device)
        self._clip = clip

    def _unload(self) -> None:
        self._clip = self._head = None

    def _decode_min_side(self) -> int | None:
        assert self._clip is not None
        return 2 * self._clip.input_side

    def _preprocess(self, image: Image.Image) -> Any:
        assert self._clip is not None
        return self._clip.prepare(image)

    def _encode_images(self, prepared: list[Any], prompts: list[str]) -> list[Any]:
        import torch

        assert self._clip is not None
        emb = self._clip.encode_images(prepared).to(self._clip.device)
        with torch.inference_mode():
            return [float(v) for v in self._head(emb).squeeze(-1).cpu()]
