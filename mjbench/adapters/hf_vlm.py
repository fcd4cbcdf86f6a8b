"""Open VLM judges through transformers: AutoModelForImageTextToText + AutoProcessor + the model's chat
template, greedy decoding, batched generation with left padding.

Each request becomes one user message: its image(s) first (pair mode: Image A, then Image B), then the
prompt text from `mjbench.prompts`. The answer is parsed by `mjbench.parsing`; the raw text is kept.
Options (`options:` in the judge YAML): `max_new_tokens`, `image_max_side` (decoded no larger than this, see
`ImageRef.load`, before the processor), `multi_image` (false for models that cannot take two images in one prompt: pair mode is then
refused), `system_prompt`, `attn_implementation`, `processor_kwargs` (passed to
`AutoProcessor.from_pretrained`, e.g. Qwen's `min_pixels`/`max_pixels`). `generation:` holds extra
`generate()` arguments; decoding is greedy unless it says otherwise. `device` auto picks CUDA, then MPS,
then the CPU; `dtype` auto means bfloat16 on CUDA and float32 elsewhere.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from mjbench.adapters._scoring import hub_offline, resolve_device, resolve_dtype
from mjbench.adapters.base import (
    ADAPTERS,
    Capabilities,
    PairRequest,
    Response,
    ScoreRequest,
    TextJudge,
    load_images,
)
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError, MjbenchError
from mjbench.prompts import PromptBook


class HFVLMOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(default=512, ge=1)
    image_max_side: int | None = Field(default=None, ge=16)
    multi_image: bool = True
    system_prompt: str | None = None
    attn_implementation: str | None = None
    processor_kwargs: dict[str, Any] = Field(default_factory=dict)


@ADAPTERS.register("hf_vlm")
class HFVLMJudge(TextJudge):
    capabilities: ClassVar[Capabilities] = Capabilities(modes=("single", "pair"), needs_gpu=True, needs_network=True,
                                                        uses_perspective=True)
    Options: ClassVar[type[BaseModel]] = HFVLMOptions

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        where = config.path or config.name
        if not config.model:
            raise ConfigError(f"{where}: model: adapter 'hf_vlm' needs a model id or a local folder")
        if config.mode == "pair" and not self.options.multi_image:
            raise ConfigError(f"{where}: mode: pair needs two images per prompt, but options.multi_image is false")
        self.prompts = PromptBook(config)
        self.model: Any = None
        self.processor: Any = None

    def identity(self) -> dict[str, Any]:
        """Also the prompt templates' text: editing a packaged prompt must not reuse cached answers."""
        return {**super().identity(), "prompt_templates": self.prompts.fingerprint()}

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
        if missing:
            return f"needs {', '.join(missing)}: pip install 'mjbench[torch]'"
        model = config.model or ""
        if Path(model).expanduser().is_dir():
            return None
        if hub_offline():
            from huggingface_hub import try_to_load_from_cache

            if not isinstance(try_to_load_from_cache(model, "config.json", revision=config.revision), str):
                return f"{model} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set"
        return None

    # -- lifecycle ------------------------------------------------------------------------------------
    def setup(self) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        device = resolve_device(self.config.device)
        dtype = resolve_dtype(self.config.dtype, device, cuda_auto="bfloat16")
        opts = self.options
        model_id = self.config.model
        try:
            self.processor = AutoProcessor.from_pretrained(model_id, revision=self.config.revision,
                                                           **opts.processor_kwargs)
            extra = {"attn_implementation": opts.attn_implementation} if opts.attn_implementation else {}
            model = AutoModelForImageTextToText.from_pretrained(model_id, revision=self.config.revision,
                                                                dtype=dtype, **extra)
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MjbenchError(f"judge {self.config.name}: cannot load {model_id}: {first}") from None
        self.model = model.to(device).eval()
        tokenizer = self.processor.tokenizer
        tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token

    def close(self) -> None:
        self.model = self.processor = None

    # -- judging --------------------------------------------------------------------------------------
    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        return self._judge(requests)

    def compare(self, requests: Sequence[PairRequest]) -> list[Response]:
        return self._judge(requests)

    def _judge(self, requests: Sequence[ScoreRequest | PairRequest]) -> list[Response]:
        if self.model is None:
            self.setup()
        out: list[Response | None] = [None] * len(requests)
        jobs: list[tuple[int, list[Any], str, str, str]] = []  # index, images, text, mode, scale
        for i, req in enumerate(requests):
            refs, text, mode = self.prompts.for_request(req)
            images, errors = load_images(refs, self.options.image_max_side)
            bad = [e for e in errors if e]
            if bad:
                out[i] = Response.failure(bad[0])
                continue
            jobs.append((i, images, text, mode, req.scale))
        if jobs:
            for (i, _, _, mode, scale), result in zip(jobs, self._generate_safely(jobs), strict=True):
                if isinstance(result, Response):
                    out[i] = result
                else:
                    raw, n_in, n_out, latency = result
                    response = self.parse_answer(raw, mode, scale, {})
                    response.input_tokens, response.output_tokens, response.latency_s = n_in, n_out, latency
                    out[i] = response
        return [r if r is not None else Response.failure("no response") for r in out]

    def _generate_safely(self, jobs: list[tuple[int, list[Any], str, str, str]]) -> list[Any]:
        """Generate for a batch; on out-of-memory, split it in halves down to single requests."""
        import torch

        oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
        try:
            return self._generate([(imgs, text) for _, imgs, text, _, _ in jobs])
        except oom:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if len(jobs) == 1:
                return [Response.failure("out of GPU memory on a single request (lower image_max_side or "
                                         "max_new_tokens)")]
            half = len(jobs) // 2
            return self._generate_safely(jobs[:half]) + self._generate_safely(jobs[half:])

    def _conversation(self, images: list[Any], text: str) -> list[dict[str, Any]]:
        content = [{"type": "image", "image": im} for im in images] + [{"type": "text", "text": text}]
        messages: list[dict[str, Any]] = []
        if self.options.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.options.system_prompt}]})
        messages.append({"role": "user", "content": content})
        return messages

    def _generate(self, batch: list[tuple[list[Any], str]]) -> list[tuple[str, int, int, float]]:
        """Raw texts, input and output token counts, and per-request latency for one padded batch."""
        import torch

        t0 = time.monotonic()
        inputs = self.processor.apply_chat_template(
            [self._conversation(images, text) for images, text in batch],
            add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
            processor_kwargs={"padding": True},
        )
        inputs = inputs.to(self.model.device, dtype=self.model.dtype)  # casts only floating tensors
        generation = {"max_new_tokens": self.options.max_new_tokens, "do_sample": False, **self.config.generation}
        with torch.inference_mode():
            output = self.model.generate(**inputs, **generation)
        prompt_len = inputs["input_ids"].shape[1]
        new_tokens = output[:, prompt_len:]
        texts = self.processor.batch_decode(new_tokens, skip_special_tokens=True)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        n_in = inputs["attention_mask"].sum(dim=1).tolist()
        latency = (time.monotonic() - t0) / len(batch)  # the batch's time, shared out evenly
        results = []
        for row, text in enumerate(texts):
            ids = new_tokens[row].tolist()
            n_out = next((k + 1 for k, t in enumerate(ids) if t in eos_ids), len(ids))
            results.append((text.strip(), int(n_in[row]), n_out, latency))
        return results
