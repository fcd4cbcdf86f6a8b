"""Offline judges that need no download and no GPU: the chance baseline and two no-reference quality measures.

- `random`: a uniform score in [0, 1) drawn from sha256(seed, image hash, prompt). Deterministic per
  request and independent of batch order, so it is a reproducible chance baseline (about 50% accuracy).
  It still decodes every image (small: `RANDOM_CHECK_SIDE`), so a truncated or empty file is an `error`
  naming it, as with every other judge, and never a rating.
- `sharpness`: variance of the Laplacian of the grey image. Grey = PIL's "L" conversion (ITU-R 601-2 luma,
  0-255); Laplacian = the 4-neighbour kernel [[0, 1, 0], [1, -4, 1], [0, 1, 0]] with reflected borders
  (`scipy.ndimage.laplace`); score = population variance over all pixels. Higher = more high-frequency
  detail (sharper, but also noisier). It depends on resolution: option `size` resizes the shorter side
  first so images of different sizes compare fairly.
- `brisque`: minus the BRISQUE score (Mittal et al. 2012; the `brisque` package's LIVE-trained SVM), so
  that higher = better. brisque 0.2.0's own `score()` fails under numpy >= 2.4 (it calls float() on
  1-element arrays); this adapter computes the same features with the package's methods, flattens them to
  floats, and asks the package's SVM, which gives the package's number where its `score()` works.

`sharpness` and `brisque` first downscale an image longer than `HEAVY_MAX_SIDE` (2048 px) on its longest side
to that size (LANCZOS): their filters cost memory and time in proportion to the pixels (BRISQUE took 172 s and
10.6 GB on a 144-megapixel PNG). Images up to 2048 px, which covers MJ-Bench's 1024 x 1024 and most generators,
score exactly as before; a larger image scores as its 2048 px copy would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from mjbench.adapters._scoring import PrefetchScorer, ScorerOptions, missing_packages
from mjbench.adapters.base import Capabilities, Judge, Response, ScoreRequest
from mjbench.config import JudgeConfig
from mjbench.errors import ItemError

if TYPE_CHECKING:
    from PIL import Image

#: the random judge decodes each image to at most this side (a cheap full decode: JPEG draft mode)
RANDOM_CHECK_SIDE = 64
#: sharpness and BRISQUE work on images no longer than this (see the module docstring)
HEAVY_MAX_SIDE = 2048


def bounded(image: Image.Image, max_side: int | None = None) -> Image.Image:
    """`image`, or a LANCZOS copy no longer than `max_side` (default HEAVY_MAX_SIDE) on its longest side."""
    from PIL import Image

    max_side = max_side or HEAVY_MAX_SIDE
    if max(image.size) <= max_side:
        return image
    small = image.copy()
    small.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return small


class RandomOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 0


class RandomJudge(Judge):
    """The chance baseline: never looks at pixels, only at the image's content hash and the prompt."""

    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single",), deterministic=True)
    Options = RandomOptions
    options: RandomOptions

    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        out = []
        for req in requests:
            try:
                digest = req.image.hash
                req.image.load(RANDOM_CHECK_SIDE)  # never rate a file no other judge could read
            except ItemError as exc:
                out.append(Response.failure(str(exc)))
                continue
            seed = hashlib.sha256(f"{self.options.seed}\0{digest}\0{req.prompt}".encode()).digest()
            out.append(Response(score=int.from_bytes(seed[:8], "big") / 2**64))
        return out


class SharpnessOptions(ScorerOptions):
    #: resize so that the shorter side has this many pixels first (None: native resolution)
    size: int | None = Field(default=None, ge=8)


class SharpnessJudge(PrefetchScorer):
    """Variance of the Laplacian (see the module docstring); decoding and filtering run in worker threads."""

    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single",), deterministic=True)
    Options = SharpnessOptions
    text_mode = "none"
    options: SharpnessOptions

    def _preprocess(self, image: Image.Image) -> Any:
        return laplacian_variance(bounded(image), self.options.size)

    def _encode_images(self, prepared: list[Any], prompts: list[str]) -> list[Any]:
        return prepared


def laplacian_variance(image: Image.Image, size: int | None = None) -> float:
    import numpy as np
    from PIL import Image
    from scipy import ndimage

    if size is not None:
        w, h = image.size
        scale = size / min(w, h)
        image = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BICUBIC)
    grey = np.asarray(image.convert("L"), dtype=np.float64)
    return float(ndimage.laplace(grey, mode="reflect").var())


class BrisqueJudge(PrefetchScorer):
    """-BRISQUE (higher = better); the SVM and its feature scaling come from the `brisque` package."""

    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single",), deterministic=True)
    Options = ScorerOptions
    text_mode = "none"

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        self._model: Any = None

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        return missing_packages(["brisque", "cv2", "skimage", "libsvm", "threadpoolctl"], "quality")

    def _load(self) -> None:
        from brisque import BRISQUE

        self._model = BRISQUE(url=False)

    def _unload(self) -> None:
        self._model = None

    def _preprocess(self, image: Image.Image) -> Any:
        return -brisque_score(self._model, bounded(image))

    def _encode_images(self, prepared: list[Any], prompts: list[str]) -> list[Any]:
        return prepared


def brisque_score(model: Any, image: Image.Image) -> float:
    """What `BRISQUE.score` computes (grey image and its half-size copy, 36 features, SVM), numpy-2.4-safe.

    BLAS and OpenMP run single-threaded here: their multi-threaded reductions change the last digits from
    call to call, and two near-equal images then swap places; the same command must give the same numbers."""
    import cv2
    import numpy as np
    import skimage.color
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        grey = skimage.color.rgb2gray(np.asarray(image.convert("RGB")))
        half = cv2.resize(grey, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)
        features = chain.from_iterable(
            model.calculate_brisque_features(g, kernel_size=7, sigma=7 / 6) for g in (grey, half)
        )
        flat = np.array([np.asarray(f, dtype=np.float64).reshape(-1)[0] for f in features])
        return float(model.calculate_image_quality_score(flat))
