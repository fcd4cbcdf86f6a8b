"""API VLM judges: OpenAI-compatible chat completions, Anthropic Messages and Gemini generateContent.

Each request is one HTTP call with the image(s) as base64 and the prompt text after them. Adapters only
translate: concurrency, pacing, time-outs and retries are `mjbench.policy`'s. They raise
`TransientError` for what is worth retrying (HTTP 408, 429, 5xx, time-outs, dropped connections, with the
server's Retry-After), and return an `error` Response naming the HTTP status and the server's message for
other failures. The API key is read from the environment variable named by `api_key_env` (by default
the provider's usual one when no `base_url` is set; a self-hosted `base_url` server needs none unless
`api_key_env` is given) and registered with `mjbench.redact`: every message and raw output this adapter returns
went through `redact` (the full text first, shortened after), so the key never appears in one.

Every image is decoded in full (and downscaled) before a request is sent: a truncated, corrupt or oversized
file becomes an `error` Response naming it, and costs no request.

Options (`options:` in the judge YAML): `max_image_side` (images are downscaled to this longest side;
an image already small enough and in PNG or JPEG is sent byte for byte), `image_format` (png or jpeg,
for re-encoded images), `temperature` (0 by default; null leaves it out), `max_output_tokens`,
`system_prompt`, `headers` (extra non-secret headers); OpenAI also `max_tokens_field`.
`generation:` holds provider-native request fields merged into the body (for Gemini, into
`generationConfig`), e.g. `{reasoning_effort: low}` or `{thinkingConfig: {thinkingBudget: 0}}`.
Cost is computed from the reported token usage and the YAML's `pricing`.

Served judges at scale: `base_url` may list several replicas of one deployment (e.g. one vLLM or SGLang
server per machine). Each attempt goes to the next replica in turn (`Replicas`); a replica whose connection
fails is skipped for `REPLICA_COOLDOWN_S`, so the policy's retry of that request lands on another one. The
cache key does not depend on which replica answered (`JudgeConfig.identity`).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import os
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mjbench.adapters.base import (
    ADAPTERS,
    PROVIDER_REFUSAL,
    Capabilities,
    PairRequest,
    Response,
    ScoreRequest,
    TextJudge,
    TransientError,
)
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError, ItemError
from mjbench.images import ImageRef
from mjbench.prompts import PromptBook
from mjbench.redact import redact, redact_response, register_secret_env

if TYPE_CHECKING:
    import httpx

#: status codes worth retrying besides 5xx
RETRY_STATUS = {408, 429}
#: seconds a replica whose connection failed is left out of the rotation (unless every replica is out)
REPLICA_COOLDOWN_S = 30.0


#: request headers that carry credentials; never accepted in a judge YAML's `options.headers`
_SECRET_HEADERS = {"authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"}


class APIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_image_side: int = Field(default=1024, ge=32)
    image_format: Literal["png", "jpeg"] = "png"
    temperature: float | None = Field(default=0.0, ge=0)
    max_output_tokens: int = Field(default=1024, ge=1)
    system_prompt: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _no_secret_headers(cls, v: dict[str, str]) -> dict[str, str]:
        """Options are part of the judge's identity (run.json, the store): a key written here would be
        published with the results. Keys come from the environment variable named by `api_key_env`."""
        secret = sorted(name for name in v if name.strip().lower() in _SECRET_HEADERS)
        if secret:
            raise ValueError(f"{', '.join(secret)} carries a key; name its environment variable in api_key_env "
                             "instead (options are written to run.json)")
        return v


class OpenAIOptions(APIOptions):
    #: newer OpenAI reasoning models take `max_completion_tokens`; most compatible servers `max_tokens`
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


@dataclass
class Reply:
    """The provider-independent part of an answer."""

    text: str | None
    refused: str | None = None  # why the provider says it refused, if it did
    input_tokens: int | None = None
    output_tokens: int | None = None
    finish: str | None = None


def encode_image(ref: ImageRef, max_side: int, fmt: str = "png") -> tuple[str, str]:
    """(mime type, base64) of an image no longer than `max_side` on its longest side. The image is decoded in
    full first, even where its own bytes are sent: a truncated or corrupt file raises ItemError naming it."""
    img = ref.load(max_side)
    original, size = ref.header()
    if original in ("PNG", "JPEG") and img.size == size:
        return f"image/{original.lower()}", base64.b64encode(ref.read_bytes()).decode("ascii")
    buf = io.BytesIO()
    img.save(buf, format=fmt.upper(), **({"quality": 95} if fmt == "jpeg" else {}))
    return f"image/{fmt}", base64.b64encode(buf.getvalue()).decode("ascii")


class Replicas:
    """Round-robin over a judge's servers. `down(url)` leaves a server out for `cooldown_s`; when every
    server is out, the rotation goes on over all of them (the attempt fails and the policy decides). Used from
    one event loop at a time, so no lock is needed."""

    def __init__(self, urls: list[str], cooldown_s: float = REPLICA_COOLDOWN_S):
        self.urls = urls
        self.cooldown_s = cooldown_s
        self._next = 0
        self._out_until = [0.0] * len(urls)

    def pick(self) -> str:
        now = time.monotonic()
        n = len(self.urls)
        live = [i for i in range(n) if self._out_until[i] <= now] or list(range(n))
        i = min(live, key=lambda j: (j - self._next) % n)  # the next live one in rotation order
        self._next = (i + 1) % n
        return self.urls[i]

    def down(self, url: str) -> None:
        if len(self.urls) > 1:
            self._out_until[self.urls.index(url)] = time.monotonic() + self.cooldown_s


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def _quote(text: str, limit: int) -> str:
    """Server text for a message: redacted in full first (a key cut in half by the limit would survive the
    masking), then whitespace-collapsed and shortened."""
    return " ".join(redact(text).split())[:limit]


def _server_message(response: httpx.Response) -> str:
    """The error message a server put in its body (all three providers use `error.message`)."""
    try:
        data = response.json()
    except ValueError:
        return _quote(response.text, 300) or response.reason_phrase
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict) and err.get("message"):
        return _quote(str(err["message"]), 300)
    if isinstance(err, str):
        return _quote(err, 300)
    return _quote(response.text, 300)


class _APIJudge(TextJudge):
    capabilities: ClassVar[Capabilities] = Capabilities(
        modes=("single", "pair"), batchable=False, concurrent=True, needs_network=True, deterministic=False,
        uses_perspective=True,
    )
    Options: ClassVar[type[BaseModel]] = APIOptions
    provider: ClassVar[str] = ""
    default_base_url: ClassVar[str] = ""
    default_key_env: ClassVar[str] = ""

    def __init__(self, config: JudgeConfig):
        super().__init__(config)
        if not config.model:
            raise ConfigError(f"{config.path or config.name}: model: adapter {config.adapter!r} needs a model id")
        self.prompts = PromptBook(config)
        register_secret_env(self.key_env(config))
        urls = config.base_url if isinstance(config.base_url, list) else [config.base_url or self.default_base_url]
        self.replicas = Replicas([u.rstrip("/") for u in urls])
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def identity(self) -> dict[str, Any]:
        """Also the prompt templates' text: editing a packaged prompt must not reuse cached answers."""
        return {**super().identity(), "prompt_templates": self.prompts.fingerprint()}

    # -- key and availability ---------------------------------------------------------------------------
    @classmethod
    def key_env(cls, config: JudgeConfig) -> str | None:
        if config.api_key_env:
            return config.api_key_env
        return None if config.base_url else cls.default_key_env

    @classmethod
    def check_available(cls, config: JudgeConfig) -> str | None:
        env = cls.key_env(config)
        if env and not os.environ.get(env):
            return f"set {env} (the API key for judge {config.name})"
        return None

    def _key(self) -> str | None:
        env = self.key_env(self.config)
        key = os.environ.get(env) if env else None
        if env and not key:
            raise ConfigError(f"judge {self.config.name}: set {env} (the API key)")
        return key

    # -- HTTP -------------------------------------------------------------------------------------------
    def _client(self) -> httpx.AsyncClient:
        """One connection pool per event loop (each `run_requests_sync` runs its own loop)."""
        import httpx

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            n = self.config.max_concurrency
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.config.timeout_s),
                limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close this event loop's connection pool (awaited by `mjbench.policy.run_requests`)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    def close(self) -> None:
        self._clients.clear()

    async def _post(self, base: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
        import httpx

        try:
            r = await self._client().post(base + path, json=body, headers={**self.options.headers, **headers})
        except httpx.TimeoutException as exc:
            raise TransientError(f"{self.provider}: request timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            self.replicas.down(base)  # the next attempt (the policy's retry) goes to another replica
            where = f" to {base}" if len(self.replicas.urls) > 1 else ""
            raise TransientError(f"{self.provider}: connection failed{where} "
                                 f"({_quote(str(exc), 300) or type(exc).__name__})") from None
        if r.status_code in RETRY_STATUS or r.status_code >= 500:
            raise TransientError(f"{self.provider} HTTP {r.status_code}: {_server_message(r)}",
                                 retry_after=parse_retry_after(r.headers))
        if r.status_code >= 400:
            raise _HTTPError(f"{self.provider} HTTP {r.status_code}: {_server_message(r)}")
        try:
            data = r.json()
        except ValueError:
            raise _HTTPError(f"{self.provider}: the response is not JSON ({_quote(r.text, 100)!r})") from None
        if not isinstance(data, dict):
            raise _HTTPError(f"{self.provider}: unexpected response {_quote(str(data), 100)!r}")
        return data

    # -- judging ----------------------------------------------------------------------------------------
    async def ascore(self, request: ScoreRequest) -> Response:
        return await self._ask(request)

    async def acompare(self, request: PairRequest) -> Response:
        return await self._ask(request)

    async def _ask(self, request: ScoreRequest | PairRequest) -> Response:
        return redact_response(await self._answer(request))

    async def _answer(self, request: ScoreRequest | PairRequest) -> Response:
        images, text, mode = self.prompts.for_request(request)
        opts = self.options
        try:
            encoded = [await asyncio.to_thread(encode_image, ref, opts.max_image_side, opts.image_format)
                       for ref in images]
        except ItemError as exc:  # a broken image costs no request
            return Response.failure(str(exc))
        path, body, headers = self.build(encoded, text)
        t0 = time.monotonic()
        try:
            data = await self._post(self.replicas.pick(), path, body, headers)
        except _HTTPError as exc:
            return Response.failure(str(exc), latency_s=time.monotonic() - t0)
        latency = time.monotonic() - t0
        try:
            reply = self.read(data)
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            return Response.failure(f"{self.provider}: unexpected response shape ({type(exc).__name__}: {exc})",
                                    latency_s=latency)
        extra = {"finish_reason": reply.finish} if reply.finish else {}
        response = (
            Response(status="refused", raw_output=reply.text, error=f"{PROVIDER_REFUSAL} ({reply.refused})",
                     extra=extra)
            if reply.refused is not None else self.parse_answer(reply.text, mode, request.scale, extra)
        )
        response.input_tokens, response.output_tokens = reply.input_tokens, reply.output_tokens
        response.cost_usd, response.latency_s = self.cost(reply.input_tokens, reply.output_tokens), latency
        return response

    def parse_answer(self, raw: str | None, mode: str, scale: str, extra: dict[str, Any]) -> Response:
        """Also says when an unreadable answer was cut off by the output limit."""
        response = super().parse_answer(raw, mode, scale, extra)
        if response.status == "parse_error" and extra.get("finish_reason") in ("length", "max_tokens", "MAX_TOKENS"):
            response.error = f"{response.error} (the answer was cut off at max_output_tokens)"
        return response

    def cost(self, input_tokens: int | None, output_tokens: int | None) -> float | None:
        if input_tokens is None and output_tokens is None:
            return None
        p = self.config.pricing
        return ((input_tokens or 0) * p.input_per_mtok + (output_tokens or 0) * p.output_per_mtok) / 1e6

    def _common(self) -> dict[str, Any]:
        """temperature and the output limit, under the names most providers use."""
        out: dict[str, Any] = {}
        if self.options.temperature is not None:
            out["temperature"] = self.options.temperature
        return out

    # provider specifics
    def build(self, images: list[tuple[str, str]], text: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        """(path after the base URL, JSON body, headers) of one request."""
        raise NotImplementedError

    def read(self, data: dict[str, Any]) -> Reply:
        raise NotImplementedError


class _HTTPError(Exception):
    """A non-retryable HTTP failure; becomes an `error` Response with this message."""


@ADAPTERS.register("openai")
class OpenAIJudge(_APIJudge):
    """OpenAI chat completions and every server that speaks it (vLLM, SGLang, TGI, Ollama, OpenRouter)."""

    Options = OpenAIOptions
    provider = "openai"
    default_base_url = "https://api.openai.com/v1"
    default_key_env = "OPENAI_API_KEY"

    def build(self, images: list[tuple[str, str]], text: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{b64}"}} for mime, b64 in images
        ]
        content.append({"type": "text", "text": text})
        messages: list[dict[str, Any]] = []
        if self.options.system_prompt:
            messages.append({"role": "system", "content": self.options.system_prompt})
        messages.append({"role": "user", "content": content})
        body = {"model": self.config.model, "messages": messages, **self._common(),
                self.options.max_tokens_field: self.options.max_output_tokens, **self.config.generation}
        key = self._key()
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return "/chat/completions", body, headers

    def read(self, data: dict[str, Any]) -> Reply:
        choice = data["choices"][0]
        message = choice.get("message") or {}
        content = message.get("content")
        if isinstance(content, list):  # some compatible servers return content parts
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        usage = data.get("usage") or {}
        finish = choice.get("finish_reason")
        refused = None
        if message.get("refusal"):
            refused, content = "refusal", message["refusal"]
        elif finish == "content_filter":
            refused = "finish_reason content_filter"
        return Reply(content, refused, usage.get("prompt_tokens"), usage.get("completion_tokens"), finish)


@ADAPTERS.register("anthropic")
class AnthropicJudge(_APIJudge):
    """Anthropic Messages API."""

    provider = "anthropic"
    default_base_url = "https://api.anthropic.com/v1"
    default_key_env = "ANTHROPIC_API_KEY"
    api_version: ClassVar[str] = "2023-06-01"

    def build(self, images: list[tuple[str, str]], text: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        content: list[dict[str, Any]] = [
            {"type": "image", "source": {"type": "base64", "media_type": mime, "data": b64}} for mime, b64 in images
        ]
        content.append({"type": "text", "text": text})
        body: dict[str, Any] = {"model": self.config.model, "max_tokens": self.options.max_output_tokens,
                                **self._common(), "messages": [{"role": "user", "content": content}]}
        if self.options.system_prompt:
            body["system"] = self.options.system_prompt
        body.update(self.config.generation)
        headers = {"anthropic-version": self.api_version}
        key = self._key()
        if key:
            headers["x-api-key"] = key
        return "/messages", body, headers

    def read(self, data: dict[str, Any]) -> Reply:
        text = "".join(block.get("text", "") for block in data.get("content") or [] if block.get("type") == "text")
        usage = data.get("usage") or {}
        stop = data.get("stop_reason")
        refused = "stop_reason refusal" if stop == "refusal" else None
        return Reply(text, refused, usage.get("input_tokens"), usage.get("output_tokens"), stop)


#: Gemini finish and block reasons that mean the model or its filters refused
GEMINI_REFUSALS = {"SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "SPII", "IMAGE_SAFETY", "RECITATION"}


@ADAPTERS.register("gemini")
class GeminiJudge(_APIJudge):
    """Google Gemini API generateContent."""

    provider = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com/v1beta"
    default_key_env = "GEMINI_API_KEY"

    def build(self, images: list[tuple[str, str]], text: str) -> tuple[str, dict[str, Any], dict[str, str]]:
        parts: list[dict[str, Any]] = [{"inlineData": {"mimeType": mime, "data": b64}} for mime, b64 in images]
        parts.append({"text": text})
        generation = {**self._common(), "maxOutputTokens": self.options.max_output_tokens, **self.config.generation}
        body: dict[str, Any] = {"contents": [{"role": "user", "parts": parts}], "generationConfig": generation}
        if self.options.system_prompt:
            body["systemInstruction"] = {"parts": [{"text": self.options.system_prompt}]}
        key = self._key()
        headers = {"x-goog-api-key": key} if key else {}
        return f"/models/{self.config.model}:generateContent", body, headers

    def read(self, data: dict[str, Any]) -> Reply:
        usage = data.get("usageMetadata") or {}
        tokens_in = usage.get("promptTokenCount")
        out_parts = [usage.get("candidatesTokenCount"), usage.get("thoughtsTokenCount")]  # thinking is billed
        tokens_out = sum(x for x in out_parts if x is not None) if any(x is not None for x in out_parts) else None
        candidates = data.get("candidates") or []
        block = (data.get("promptFeedback") or {}).get("blockReason")
        if not candidates:
            reason = f"prompt blocked: {block}" if block else "no candidates"
            return Reply(None, reason if block else None, tokens_in, tokens_out, None)
        cand = candidates[0]
        finish = cand.get("finishReason")
        parts = (cand.get("content") or {}).get("parts") or []
        text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
        refused = f"finishReason {finish}" if finish in GEMINI_REFUSALS else None
        return Reply(text, refused, tokens_in, tokens_out, finish)
