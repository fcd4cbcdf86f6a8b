"""ImageReward (Xu et al. 2023) through its own package, `image-reward` on PyPI (imported as `ImageReward`).

The package is not an mjbench extra: image-reward 1.5 pins `timm==0.6.13` and `fairscale==0.4.13` (a
downgrade of the timm that open_clip uses), and `import ImageReward` also imports `diffusers`,
`accelerate` and OpenAI's `clip` (installed from GitHub, not PyPI). Install it in an environment of its
own (`pip install image-reward` plus `pip install git+https://github.com/openai/CLIP.git`); this adapter
then uses its public API: `ImageReward.load(model)` and `model.score(prompt, image)`, one image at a time
(the package has no batched scoring across prompts), with decoding prefetched in threads.

The judge's `model` is `ImageReward-v1.0` (downloaded from THUDM/ImageReward) or a checkpoint path.
Options: `download_root`, `med_config` (paths passed through to `ImageReward.load`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from mjbench.adapters._scoring import (
    PrefetchScorer,
    ScorerOptions,
    first_line,
    local_path,
    missing_packages,
    resolve_device,
    where,
)
from mjbench.adapters.base import Capabilities
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError, MjbenchError

if TYPE_CHECKING:
    from PIL import Image

INSTALL_HINT = (
    "needs the ImageReward package, which does not install beside mjbench's torch extra (image-reward 1.5 "
    "pins timm==0.6.13 and fairscale==0.4.13 and imports diffusers, accelerate and OpenAI's clip); "
    "install it in a separate environment: pip install image-reward git+https://github.com/openai/CLIP.git"
)
DEFAULT_MODEL = "ImageReward-v1.0"


class ImageRewardOptions(ScorerOptions):
    download_root: str | None = None
    med_config: str | None = None


class ImageRewardScorer(PrefetchScorer):
    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single",), needs_network=True)
    Options = ImageRewardOptions
    text_mode = "joint"
    options: ImageRewardOptions

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        self._model: Any = None

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        reason = missing_packages(["torch"], "torch")
        if reason:
            return reason
        if missing_packages(["ImageReward"], "torch"):
            return INSTALL_HINT
        name = config.model or DEFAULT_MODEL
        if name != DEFAULT_MODEL and not local_path(name, config).is_file():
            return f"{where(config)}: model: checkpoint not found: {local_path(name, config)}"
        return None

    def _load(self) -> None:
        try:
            import ImageReward as RM
        except ImportError as exc:
            raise MjbenchError(f"judge {self.config.name}: {INSTALL_HINT} ({first_line(exc)})") from None
        name = self.config.model or DEFAULT_MODEL
        if name != DEFAULT_MODEL:
            path = local_path(name, self.config)
            if not path.is_file():
                raise ConfigError(f"{where(self.config)}: model: checkpoint not found: {path}")
            name = str(path)
        o = self.options
        kwargs: dict[str, Any] = {"device": resolve_device(self.config.device)}
        if o.download_root:
            kwargs["download_root"] = str(local_path(o.download_root, self.config))
        if o.med_config:
            kwargs["med_config"] = str(local_path(o.med_config, self.config))
        try:
            self._model = RM.load(name, **kwargs)
        except (OSError, RuntimeError, ValueError) as exc:
            raise MjbenchError(f"{where(self.config)}: model: cannot load {name}: {first_line(exc)}") from None

    def _unload(self) -> None:
        self._model = None

    def _preprocess(self, image: Image.Image) -> Any:
        return image  # ImageReward's own transform runs inside model.score

    def _encode_images(self, prepared: list[Any], prompts: list[str]) -> list[Any]:
        import torch

        with torch.inference_mode():  # model.score itself does not turn gradients off
            return [float(self._model.score(prompt, image)) for image, prompt in zip(prepared, prompts, strict=True)]
