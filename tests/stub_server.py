"""A scriptable stub of the OpenAI, Anthropic and Gemini HTTP APIs for tests and benchmarks.

    with StubServer(responder) as stub:          # 127.0.0.1, a free port, stopped on exit
        config = JudgeConfig(..., base_url=stub.url + "/v1")

`responder(request: StubRequest) -> StubReply` decides each answer (status, JSON body, headers, delay);
`answer(request, text)` builds a well-formed success body for whichever API the request was sent to,
`error(request, status, message, retry_after=...)` an error body. `Scripted` plays a list of replies per
key (e.g. per caption), so "429 then success" is easy to write. `leak(mode, request)` and
`leaking_responder` echo the client's own API key back in the ways the redaction tests guard against. The stub records every request and the
largest number of requests it was handling at once (`max_in_flight`).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StubRequest:
    path: str
    headers: dict[str, str]
    body: Any
    index: int  # arrival order, from 0

    @property
    def api(self) -> str:
        if self.path.endswith("/chat/completions"):
            return "openai"
        if self.path.endswith("/messages"):
            return "anthropic"
        if self.path.endswith(":generateContent"):
            return "gemini"
        return "unknown"

    def _parts(self) -> list[dict[str, Any]]:
        if self.api == "gemini":
            return [p for c in self.body.get("contents", []) for p in c.get("parts", [])]
        parts = []
        for m in self.body.get("messages", []):
            content = m.get("content")
            if m.get("role") == "user" and isinstance(content, list):
                parts.extend(content)
        return parts

    @property
    def text(self) -> str:
        """The prompt text of the user message, whatever the API."""
        return "\n".join(p["text"] for p in self._parts() if isinstance(p.get("text"), str))

    @property
    def n_images(self) -> int:
        return sum(1 for p in self._parts() if p.get("type") in ("image_url", "image") or "inlineData" in p)

    @property
    def caption(self) -> str:
        m = re.search(r'caption[^"\n]*:\s*\n"(.*)"', self.text)
        return m.group(1) if m else ""


@dataclass
class StubReply:
    status: int = 200
    body: Any = None  # a dict/list is sent as JSON, a str as it is
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def answer(request: StubRequest, text: str | None, *, finish: str | None = None, refusal: str | None = None,
           input_tokens: int = 1000, output_tokens: int = 50, delay_s: float = 0.0) -> StubReply:
    """A successful answer in the shape of the API the request went to."""
    if request.api == "anthropic":
        body: dict[str, Any] = {
            "id": "msg_stub", "type": "message", "role": "assistant", "model": request.body.get("model"),
            "content": [{"type": "text", "text": text}] if text is not None else [],
            "stop_reason": finish or "end_turn",
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
    elif request.api == "gemini":
        cand: dict[str, Any] = {"finishReason": finish or "STOP", "index": 0}
        if text is not None:
            cand["content"] = {"role": "model", "parts": [{"text": text}]}
        body = {"candidates": [cand],
                "usageMetadata": {"promptTokenCount": input_tokens, "candidatesTokenCount": output_tokens,
                                  "totalTokenCount": input_tokens + output_tokens}}
    else:
        body = {
            "id": "chatcmpl-stub", "object": "chat.completion", "model": request.body.get("model"),
            "choices": [{"index": 0, "finish_reason": finish or "stop",
                         "message": {"role": "assistant", "content": text, "refusal": refusal}}],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                      "total_tokens": input_tokens + output_tokens},
        }
    return StubReply(200, body, delay_s=delay_s)


def error(request: StubRequest, status: int, message: str, *, retry_after: str | None = None,
          delay_s: float = 0.0) -> StubReply:
    """An error body as the API the request went to writes it (all use `error.message`)."""
    if request.api == "anthropic":
        body: dict[str, Any] = {"type": "error", "error": {"type": "api_error", "message": message}}
    elif request.api == "gemini":
        body = {"error": {"code": status, "message": message, "status": "UNAVAILABLE"}}
    else:
        body = {"error": {"message": message, "type": "server_error", "code": None}}
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return StubReply(status, body, headers, delay_s)


def default_responder(request: StubRequest) -> StubReply:
    """A well-behaved judge: single mode rates 7, pair mode prefers Image A."""
    if "RATING A" in request.text:
        return answer(request, "Image A matches the caption better.\nRATING A: 8\nRATING B: 3\nBETTER: A")
    return answer(request, "The image matches the caption.\nRATING: 7")


def sent_key(request: StubRequest) -> str:
    """The API key the client sent, whichever header its API uses ("" without one)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:]
    return request.headers.get("x-api-key") or request.headers.get("x-goog-api-key") or ""


#: ways a careless server or model hands the client's own key back (see `leak`)
LEAK_MODES = ("non_json_200", "non_object_200", "straddle_300", "answer", "error_400")


def leak(mode: str, request: StubRequest) -> StubReply:
    """A reply that echoes the request's key: in a non-JSON 200 body, in a JSON 200 body that is not an object,
    in an error message where the key straddles character 300, in the model's answer, or in a 400 message."""
    key = sent_key(request)
    if mode == "non_json_200":
        return StubReply(200, f"<html><body>upstream proxy: bad credentials {key}</body></html>")
    if mode == "non_object_200":
        return StubReply(200, ["error", f"credentials {key} rejected"])
    if mode == "straddle_300":
        return error(request, 400, "x" * (300 - len(key) // 2) + key + " is not valid")
    if mode == "answer":
        if "RATING A" in request.text:
            return answer(request, f"Using key {key}.\nRATING A: 8\nRATING B: 3\nBETTER: A")
        return answer(request, f"Using key {key}.\nRATING: 7")
    if mode == "error_400":
        return error(request, 400, f"Incorrect API key provided: {key}.")
    raise ValueError(f"unknown leak mode {mode!r}")


def leaking_responder(request: StubRequest) -> StubReply:
    """Cycles through LEAK_MODES by arrival order: any 5 consecutive requests see every mode."""
    return leak(LEAK_MODES[request.index % len(LEAK_MODES)], request)


class Scripted:
    """Plays `script[key(request)]` reply by reply (the last one repeats); `default` for other keys.
    Entries are StubReply objects or callables taking the request."""

    def __init__(self, key: Callable[[StubRequest], str], script: dict[str, list[Any]],
                 default: Callable[[StubRequest], StubReply] = default_responder):
        self.key, self.script, self.default = key, script, default
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()

    def __call__(self, request: StubRequest) -> StubReply:
        k = self.key(request)
        with self._lock:
            n = self.calls.get(k, 0)
            self.calls[k] = n + 1
        steps = self.script.get(k)
        if not steps:
            return self.default(request)
        step = steps[min(n, len(steps) - 1)]
        return step(request) if callable(step) else step


class StubServer:
    def __init__(self, responder: Callable[[StubRequest], StubReply] = default_responder):
        self.responder = responder
        self.requests: list[StubRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> StubServer:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real APIs
            disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs (~40 ms a reply)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with stub._lock:
                    req = StubRequest(self.path, {k.lower(): v for k, v in self.headers.items()}, body,
                                      len(stub.requests))
                    stub.requests.append(req)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                try:
                    reply = stub.responder(req)
                    if reply.delay_s:
                        time.sleep(reply.delay_s)
                    payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                    data = payload.encode("utf-8")
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (a time-out test)
                    pass
                finally:
                    with stub._lock:
                        stub.in_flight -= 1

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False  # a handler sleeping for a time-out test must not hold up stop()
            request_queue_size = 256  # many clients connect at once in the concurrency tests

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "the stub is not running"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
