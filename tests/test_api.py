"""API judges (OpenAI-compatible, Anthropic, Gemini) against a stub server on 127.0.0.1, through the
runner's policy: answers, refusals, 429/500/400, time-outs, concurrency, and keys kept out of messages."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image
from stub_server import (
    LEAK_MODES,
    Scripted,
    StubReply,
    StubServer,
    answer,
    default_responder,
    error,
    leak,
    sent_key,
)

import mjbench.adapters  # noqa: F401  (registers the adapter table)
from mjbench.adapters.api import encode_image, parse_retry_after
from mjbench.adapters.base import PairRequest, Response, ScoreRequest, create_judge
from mjbench.config import JudgeConfig, load_judge_file
from mjbench.errors import ConfigError
from mjbench.images import ImageRef
from mjbench.policy import run_requests_sync

KEY = "sk-test-SECRET-0123456789"
BASES = {"openai": "/v1", "anthropic": "/v1", "gemini": "/v1beta"}
FAST = {"base_delay": 0.001, "max_delay": 0.05}


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)  # the stub is local: never route it through a proxy
    monkeypatch.setenv("STUB_API_KEY", KEY)


@pytest.fixture
def stub():
    server = StubServer()
    with server:
        yield server


def png(color: str, size=(48, 32)) -> ImageRef:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return ImageRef(data=buf.getvalue(), origin=f"{color}.png")


def judge_config(stub: StubServer, adapter: str = "openai", **kw) -> JudgeConfig:
    base = {"name": f"stub-{adapter}", "adapter": adapter, "model": "stub-model", "base_url": stub.url + BASES[adapter],
            "api_key_env": "STUB_API_KEY", "scales": ["1-10"], "max_concurrency": 4, "max_retries": 2,
            "timeout_s": 5, "pricing": {"input_per_mtok": 2.0, "output_per_mtok": 10.0}}
    return JudgeConfig(**{**base, **kw})


def single(caption: str, scale: str = "1-10") -> ScoreRequest:
    return ScoreRequest(image=png("red"), prompt=caption, scale=scale, perspective="alignment")


def pair(caption: str, scale: str = "1-10") -> PairRequest:
    return PairRequest(images=(png("red"), png("blue")), prompt=caption, scale=scale, perspective="quality",
                       order="10")


def run(cfg: JudgeConfig, requests, **kw) -> dict[int, Response]:
    judge = create_judge(cfg)
    call = judge.acompare if cfg.mode == "pair" else judge.ascore
    out: dict[int, Response] = {}

    def on_result(i, r):
        assert i not in out, f"request {i} delivered twice"
        out[i] = r

    run_requests_sync(call, requests, cfg, on_result, **{**FAST, **kw})
    assert sorted(out) == list(range(len(requests))), "a request was lost"
    return out


def by_caption(script):
    return Scripted(lambda req: req.caption, script)


# -- good answers, every provider, both modes ----------------------------------------------------------

@pytest.mark.parametrize("adapter", ["openai", "anthropic", "gemini"])
def test_good_answers_single_and_pair(stub, adapter):
    out = run(judge_config(stub, adapter), [single("a red cube"), single("a cat")])
    for r in out.values():
        assert (r.status, r.score, r.attempts, r.extra["parse"]) == ("ok", 7, 1, "strict")
        assert (r.input_tokens, r.output_tokens) == (1000, 50)
        assert r.cost_usd == pytest.approx((1000 * 2.0 + 50 * 10.0) / 1e6)
        assert "RATING: 7" in r.raw_output and r.latency_s > 0
    pout = run(judge_config(stub, adapter, mode="pair"), [pair("a red cube")])
    assert (pout[0].status, pout[0].scores, pout[0].verdict) == ("ok", (8, 3), "0")  # shown order
    req = stub.requests[-1]
    assert req.n_images == 2 and "Image A" in req.text and "a red cube" in req.text


def test_openai_request_shape(stub):
    run(judge_config(stub, "openai", options={"system_prompt": "Be strict."}), [single("a red cube")])
    req = stub.requests[0]
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = req.body
    assert body["model"] == "stub-model" and body["temperature"] == 0 and body["max_tokens"] == 1024
    assert body["messages"][0] == {"role": "system", "content": "Be strict."}
    content = body["messages"][1]["content"]
    assert content[0]["type"] == "image_url" and content[-1]["type"] == "text"
    url = content[0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    sent = base64.b64decode(url.split(",", 1)[1])
    assert sent == png("red").read_bytes()  # small PNGs go byte for byte


def test_anthropic_and_gemini_request_shape(stub):
    run(judge_config(stub, "anthropic"), [single("x")])
    a = stub.requests[-1]
    assert a.path == "/v1/messages" and a.headers["x-api-key"] == KEY and "anthropic-version" in a.headers
    assert a.body["max_tokens"] == 1024 and a.body["messages"][0]["content"][0]["source"]["type"] == "base64"
    run(judge_config(stub, "gemini", generation={"topK": 1}), [single("x")])
    g = stub.requests[-1]
    assert g.path == "/v1beta/models/stub-model:generateContent" and g.headers["x-goog-api-key"] == KEY
    assert g.body["generationConfig"] == {"temperature": 0.0, "maxOutputTokens": 1024, "topK": 1}
    assert g.body["contents"][0]["parts"][0]["inlineData"]["mimeType"] == "image/png"


def test_local_server_needs_no_key(stub):
    cfg = judge_config(stub, "openai", api_key_env=None)
    assert create_judge(cfg).check_available(cfg) is None
    out = run(cfg, [single("x")])
    assert out[0].status == "ok" and "authorization" not in stub.requests[0].headers


def test_check_available_names_the_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cfg = JudgeConfig(name="g", adapter="openai", model="gpt-4o", scales=["1-10"])
    assert "set OPENAI_API_KEY" in create_judge(cfg).check_available(cfg)
    cfg2 = JudgeConfig(name="c", adapter="anthropic", model="m", api_key_env="MY_KEY", scales=["1-10"])
    monkeypatch.delenv("MY_KEY", raising=False)
    assert "set MY_KEY" in create_judge(cfg2).check_available(cfg2)


# -- off-format answers and refusals -------------------------------------------------------------------

def test_off_format_answer_is_parse_error_with_raw_kept(stub):
    stub.responder = by_caption({"rambling": [lambda r: answer(r, "The cube is nice. I like it a lot.")],
                                 "too high": [lambda r: answer(r, "RATING: 12")],
                                 "cut": [lambda r: answer(r, "The cube is", finish="length")]})
    out = run(judge_config(stub), [single("rambling"), single("too high"), single("cut"), single("fine")])
    assert out[0].status == "parse_error" and out[0].raw_output == "The cube is nice. I like it a lot."
    assert out[0].attempts == 1  # never silently re-asked
    assert out[1].status == "parse_error" and out[1].error == "rating 12 outside 1-10"
    assert "cut off at max_output_tokens" in out[2].error
    assert out[3].status == "ok"


@pytest.mark.parametrize(
    "adapter, reply",
    [
        ("openai", lambda r: answer(r, None, refusal="I can't help with that request.")),
        ("openai", lambda r: answer(r, None, finish="content_filter")),
        ("openai", lambda r: answer(r, "I'm sorry, but I can't help with evaluating this image.")),
        ("anthropic", lambda r: answer(r, "", finish="refusal")),
        ("gemini", lambda r: answer(r, None, finish="SAFETY")),
        ("gemini", lambda r: StubReply(200, {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
                                             "usageMetadata": {"promptTokenCount": 900}})),
    ],
)
def test_refusals(stub, adapter, reply):
    stub.responder = by_caption({"unsafe": [reply]})
    out = run(judge_config(stub, adapter), [single("unsafe"), single("fine")])
    assert out[0].status == "refused" and out[0].attempts == 1 and "refused" in out[0].error
    assert out[1].status == "ok"


# -- HTTP failures and retries -------------------------------------------------------------------------

def test_429_with_retry_after_then_success(stub):
    stub.responder = by_caption({"busy": [lambda r: error(r, 429, "Rate limit reached", retry_after="0.02"),
                                          default_responder]})
    out = run(judge_config(stub), [single("busy"), single("calm")])
    assert out[0].status == "ok" and out[0].attempts == 2 and out[0].extra["retry_waits_s"] == [0.02]
    assert out[1].attempts == 1
    assert stub.responder.calls == {"busy": 2, "calm": 1}


@pytest.mark.parametrize("adapter", ["openai", "anthropic", "gemini"])
def test_500_gives_up_after_max_retries(stub, adapter):
    stub.responder = by_caption({"down": [lambda r: error(r, 500, "internal error")]})
    out = run(judge_config(stub, adapter, max_retries=2), [single("down"), single("up")])
    assert out[0].status == "error" and out[0].attempts == 3
    assert out[0].error == f"gave up after 3 attempts: {adapter} HTTP 500: internal error"
    assert out[1].status == "ok" and stub.responder.calls["down"] == 3


def test_4xx_is_not_retried_and_never_leaks_the_key(stub):
    stub.responder = by_caption({"bad": [lambda r: error(r, 401, f"Incorrect API key provided: {KEY}.")],
                                 "big": [lambda r: error(r, 400, "Image too large")]})
    out = run(judge_config(stub), [single("bad"), single("big")])
    assert out[0].status == "error" and out[0].attempts == 1
    assert out[0].error == "openai HTTP 401: Incorrect API key provided: ***."
    assert KEY not in repr(out[0])
    assert out[1].error == "openai HTTP 400: Image too large"


def test_slow_answers_time_out(stub):
    stub.responder = by_caption({"slow": [lambda r: answer(r, "RATING: 5", delay_s=1.0)]})
    out = run(judge_config(stub, timeout_s=0.15, max_retries=1), [single("slow"), single("quick")])
    assert out[0].status == "error" and out[0].attempts == 2 and "timed out" in out[0].error
    assert out[1].status == "ok"


def test_concurrency_is_never_exceeded_and_nothing_lost(stub):
    def responder(req):
        n = int(req.caption.split()[-1])
        if n % 7 == 3 and stub.responder.calls[req.caption] == 1:
            return error(req, 503, "overloaded", delay_s=0.01)
        if n % 11 == 5:
            return answer(req, "no idea", delay_s=0.01)
        return answer(req, f"RATING: {n % 10 + 1}", delay_s=0.02)

    stub.responder = Scripted(lambda r: r.caption, {}, default=responder)
    requests = [single(f"item {i}") for i in range(40)]
    out = run(judge_config(stub, max_concurrency=4), requests)
    assert stub.max_in_flight <= 4 and stub.max_in_flight >= 2
    for i in range(40):
        r = out[i]
        if i % 11 == 5:
            assert r.status == "parse_error"
        else:
            assert (r.status, r.score) == ("ok", i % 10 + 1)
            assert r.attempts == (2 if i % 7 == 3 else 1)
    assert len(stub.requests) == 40 + sum(1 for i in range(40) if i % 7 == 3)


# -- helpers and configs -------------------------------------------------------------------------------

def test_retry_after_parsing():
    import httpx

    assert parse_retry_after(httpx.Headers({"retry-after": "7"})) == 7
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250", "retry-after": "7"})) == 0.25
    assert parse_retry_after(httpx.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0  # past
    future = parse_retry_after(httpx.Headers({"retry-after": "Fri, 01 Jan 2100 00:00:00 GMT"}))
    assert future > 1e6
    assert parse_retry_after(httpx.Headers({"retry-after": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None


def test_images_are_downscaled_to_max_side():
    big = png("green", size=(2000, 500))
    mime, data = encode_image(big, 256, "jpeg")
    im = Image.open(io.BytesIO(base64.b64decode(data)))
    assert mime == "image/jpeg" and im.format == "JPEG" and im.size == (256, 64)
    mime, data = encode_image(big, 4096, "png")
    assert mime == "image/png" and base64.b64decode(data) == big.read_bytes()


def test_bad_prompt_and_scale_config_named(stub):
    with pytest.raises(ConfigError, match="prompts.typo"):
        create_judge(judge_config(stub, prompts={"typo": "x"}))
    with pytest.raises(ConfigError, match="raw-score scale"):
        create_judge(judge_config(stub, scales=["score"]))
    with pytest.raises(ConfigError, match="needs a model id"):
        create_judge(judge_config(stub, model=None))


def test_prompt_override_from_yaml(stub, tmp_path):
    (tmp_path / "p.j2").write_text("Rate {{ caption }} for {{ perspective }} ({{ range_text }}).\nRATING: {{ placeholder }}")
    cfg = judge_config(stub, prompts={"alignment.single": "p.j2", "single": "Generic {{ caption }}"})
    cfg.path = tmp_path / "judge.yaml"
    run(cfg, [single("a cube"), ScoreRequest(image=png("red"), prompt="b", scale="1-10", perspective="safety")])
    texts = sorted(r.text for r in stub.requests)
    assert texts == ["Generic b", "Rate a cube for alignment (1-10).\nRATING: <number 1-10>"]


def test_shipped_vlm_and_api_judges_load():
    root = Path(__file__).resolve().parents[1] / "judges"
    names = {"gpt-4o", "gpt-4.1", "gpt-4o-mini", "claude-sonnet-4.6", "gemini-3-flash", "openai-compatible-local",
             "llava-1.5-7b", "llava-1.5-13b", "llava-v1.6-mistral-7b", "llava-v1.6-vicuna-13b", "idefics2-8b",
             "internvl3-8b", "qwen2-vl-7b", "qwen2.5-vl-7b", "vllm-qwen2.5-vl-7b", "vllm-llava-v1.6-mistral-7b",
             "vllm-internvl3-8b", "sglang-qwen2.5-vl-7b"}
    for name in names:
        cfg = load_judge_file(root / f"{name}.yaml")
        assert cfg.name == name and cfg.family in ("api", "vlm")
        judge = create_judge(cfg)  # validates options, prompts and scales without loading anything
        assert judge.capabilities.concurrent == (cfg.family == "api")
        if name.startswith(("vllm-", "sglang-")):  # served templates: a replica list, deterministic decoding
            assert isinstance(cfg.base_url, list) and judge.replicas.urls == [u.rstrip("/") for u in cfg.base_url]
            assert cfg.options["temperature"] == 0 and cfg.api_key_env is None


# -- images are checked before they cost a request ----------------------------------------------------

def broken_png(name: str = "truncated.png") -> ImageRef:
    buf = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(buf, "PNG")
    data = buf.getvalue()
    return ImageRef(data=data[: len(data) // 2], origin=name)  # the header is intact, the pixels are not


@pytest.mark.parametrize("adapter", ["openai", "anthropic", "gemini"])
def test_undecodable_image_is_an_error_and_costs_no_request(stub, adapter):
    requests = [ScoreRequest(image=broken_png(), prompt="a cat", scale="1-10", perspective="quality"),
                ScoreRequest(image=ImageRef(data=b"", origin="empty.png"), prompt="a cat", scale="1-10",
                             perspective="quality")]
    out = run(judge_config(stub, adapter), requests)
    assert [r.status for r in out.values()] == ["error", "error"]
    assert "cannot decode image truncated.png" in out[0].error and "empty.png" in out[1].error
    assert out[0].attempts == 1 and stub.requests == []
    pair_req = PairRequest(images=(png("red"), broken_png("b.png")), prompt="x", scale="1-10",
                           perspective="quality")
    pout = run(judge_config(stub, adapter, mode="pair"), [pair_req])
    assert pout[0].status == "error" and "b.png" in pout[0].error and stub.requests == []


def test_oversized_image_is_an_error_and_costs_no_request(stub, monkeypatch):
    monkeypatch.setenv("MJBENCH_MAX_PIXELS", "1000")
    out = run(judge_config(stub), [single("a red cube")])  # 48 x 32 = 1536 pixels
    assert out[0].status == "error" and "red.png is 48x32" in out[0].error and "MJBENCH_MAX_PIXELS" in out[0].error
    assert stub.requests == []


# -- the key never leaves in a message or an answer -----------------------------------------------------

@pytest.mark.parametrize("mode", LEAK_MODES)
@pytest.mark.parametrize("adapter", ["openai", "anthropic", "gemini"])
def test_echoed_key_is_masked_everywhere(stub, adapter, mode):
    stub.responder = lambda request: leak(mode, request)
    out = run(judge_config(stub, adapter), [single("x")])
    text = repr(out[0])
    assert stub.requests and sent_key(stub.requests[0]) == KEY
    assert not [KEY[i:i + 8] for i in range(len(KEY) - 7) if KEY[i:i + 8] in text], text
    assert "***" in text
    if mode == "answer":
        assert (out[0].status, out[0].score, out[0].raw_output) == ("ok", 7, "Using key ***.\nRATING: 7")
    else:
        assert out[0].status == "error"


def test_the_resolved_key_variable_is_registered(stub, monkeypatch):
    """The adapter registers its own key variable: masked even where the runner registered nothing."""
    from mjbench.redact import redact

    monkeypatch.setenv("ONLY_THE_ADAPTER_KNOWS", "zz-unshaped-secret-4242")
    create_judge(judge_config(stub, api_key_env="ONLY_THE_ADAPTER_KNOWS"))
    assert redact("echo zz-unshaped-secret-4242") == "echo ***"


# -- stored answers are re-parsed by the current parser, with no request ---------------------------------

def test_refresh_reparses_answers_of_an_older_parser(stub):
    from mjbench.parsing import PARSER_VERSION

    judge = create_judge(judge_config(stub, "openai"))
    req = single("x")
    # as parser 1 stored it: "0,85"-style cut short to 7, no parser version recorded
    old = Response(status="ok", score=7.0, raw_output="Fine.\nRATING: 7,5", attempts=2, latency_s=1.5,
                   input_tokens=900, output_tokens=40, cost_usd=0.002,
                   extra={"finish_reason": "stop", "parse": "lenient", "retry_waits_s": [0.5]})
    new = judge.refresh(req, old)
    assert (new.status, new.score, new.error) == ("ok", 7.5, None)
    assert (new.attempts, new.latency_s, new.input_tokens, new.output_tokens, new.cost_usd) == (2, 1.5, 900, 40,
                                                                                              0.002)
    assert new.extra == {"finish_reason": "stop", "retry_waits_s": [0.5], "parse": "strict",
                         "parser": PARSER_VERSION}
    assert judge.refresh(req, new) is new  # the current version: kept as it is
    # an old parse error can become ok, and an old ok a parse error ("1,000" was read as 1)
    cut = Response(status="parse_error", raw_output="The cube", error="no rating found",
                   extra={"finish_reason": "length"})
    assert "cut off at max_output_tokens" in judge.refresh(req, cut).error
    thousand = judge.refresh(req, Response(status="ok", score=1.0, raw_output="RATING: 1,000"))
    assert thousand.status == "parse_error" and "ambiguous number 1,000" in thousand.error
    pjudge = create_judge(judge_config(stub, "openai", mode="pair"))
    preq = pair("x")
    swallowed = Response(status="parse_error", raw_output="I prefer Image B\nRATING A: 4\nRATING B: 8",
                         error="rating A and the verdict are missing", extra={"parse": "lenient"})
    fixed = pjudge.refresh(preq, swallowed)
    assert (fixed.status, fixed.scores, fixed.verdict) == ("ok", (4, 8), None)
    assert stub.requests == []  # nothing was asked


def test_refresh_leaves_errors_and_provider_refusals(stub):
    judge = create_judge(judge_config(stub, "openai"))
    req = single("x")
    provider = Response(status="refused", raw_output="RATING: 7", error="refused by the API (refusal)")
    error_ = Response(status="error", error="openai HTTP 400: Image too large")
    no_raw = Response(status="parse_error", error="empty output")
    for stored in (provider, error_, no_raw):
        assert judge.refresh(req, stored) is stored
    parser_refusal = Response(status="refused", raw_output="I'm sorry, but I can't help.\nRATING: 3",
                              error="judge refused ('I'm sorry, but')")  # a parse, so it is read again
    assert (judge.refresh(req, parser_refusal).status, judge.refresh(req, parser_refusal).score) == ("ok", 3)


def test_a_key_in_options_headers_is_refused_with_the_field_named():
    """Options are part of the identity written to run.json: a key there would be published."""
    from mjbench.adapters.base import create_judge
    from mjbench.config import JudgeConfig
    from mjbench.errors import ConfigError

    cfg = JudgeConfig(name="leaky", adapter="openai", model="m", base_url="http://127.0.0.1:9", scales=["1-10"],
                      options={"headers": {"Authorization": "Bearer sk-abcdefgh12345678", "X-Trace": "1"}})
    with pytest.raises(ConfigError, match=r"options\.headers.*Authorization carries a key.*api_key_env"):
        create_judge(cfg)
    create_judge(cfg.model_copy(update={"options": {"headers": {"X-Trace": "1"}}}))


# -- several servers behind one judge (data parallelism across machines) ---------------------------------

def dead_url() -> str:
    """The address of a server that has just stopped: connections to it are refused."""
    with StubServer() as gone:
        url = gone.url
    return url


def verdicts(out: dict[int, Response]) -> list[tuple]:
    return [(out[i].status, out[i].score, out[i].raw_output, out[i].error) for i in sorted(out)]


def test_replicas_share_the_requests_and_answer_as_one_server():
    many = [single(f"caption {i}") for i in range(20)]
    with StubServer() as a, StubServer() as b:
        both = run(judge_config(a, base_url=[a.url + "/v1", b.url + "/v1"]), many)
        assert len(a.requests) == len(b.requests) == 10  # round-robin: an even split
        assert {r.path for r in a.requests + b.requests} == {"/v1/chat/completions"}
        alone = run(judge_config(a), many)
    assert verdicts(both) == verdicts(alone)
    assert all(r.attempts == 1 for r in both.values())


def test_a_dead_replica_s_requests_are_retried_on_the_others():
    many = [single(f"caption {i}") for i in range(12)]
    with StubServer() as a:
        out = run(judge_config(a, base_url=[dead_url() + "/v1", a.url + "/v1"]), many)
        assert len(a.requests) == 12  # every request was answered by the live one
    assert {r.status for r in out.values()} == {"ok"}
    retried = [r for r in out.values() if r.attempts == 2]
    # the first attempts in flight went to the dead one; once it failed it was left out of the rotation
    assert 1 <= len(retried) <= 4 and all(r.attempts <= 2 for r in out.values())


def test_a_dead_replica_is_reported_when_retries_are_off():
    dead = dead_url() + "/v1"
    with StubServer() as a:
        out = run(judge_config(a, base_url=[dead, a.url + "/v1"], max_retries=0, max_concurrency=1),
                  [single(f"caption {i}") for i in range(4)])
    failed = [r for r in out.values() if r.status == "error"]
    assert len(failed) == 1 and f"connection failed to {dead}" in failed[0].error  # names the server
    assert [r.status for r in out.values()].count("ok") == 3  # the dead one is then skipped


def test_replica_rotation_skips_servers_that_are_out(monkeypatch):
    from mjbench.adapters import api

    clock = [100.0]
    monkeypatch.setattr(api.time, "monotonic", lambda: clock[0])
    r = api.Replicas(["a", "b", "c"], cooldown_s=10)
    assert [r.pick() for _ in range(4)] == ["a", "b", "c", "a"]
    r.down("c")
    assert [r.pick() for _ in range(4)] == ["b", "a", "b", "a"]
    r.down("a"), r.down("b")
    assert [r.pick() for _ in range(3)] == ["b", "c", "a"]  # all out: plain rotation, the policy decides
    clock[0] += 11
    r.down("b")
    assert [r.pick() for _ in range(3)] == ["c", "a", "c"]  # back in after the cool-down
    single_server = api.Replicas(["only"])
    single_server.down("only")
    assert single_server.pick() == "only"


def test_the_cache_key_does_not_depend_on_the_replicas():
    def identity(base_url):
        cfg = JudgeConfig(name="j", adapter="openai", model="m", base_url=base_url, scales=["1-10"])
        return create_judge(cfg).identity()

    one = identity("http://a:8000/v1")
    assert identity(["http://a:8000/v1", "http://b:8000/v1"]) == one
    assert identity(["http://a:8000/v1", "http://c:8000/v1", "http://d:8000/v1"]) == one
    assert identity("http://b:8000/v1") != one  # another deployment


@pytest.mark.parametrize(("value", "message"), [([], "empty list"), (["http://a/v1", " "], "empty address"),
                                                (["http://a/v1", "http://a/v1"], "listed twice")])
def test_bad_replica_lists_are_config_errors(tmp_path, value, message):
    import json as _json

    path = tmp_path / "j.yaml"
    path.write_text(f"name: j\nadapter: openai\nmodel: m\nbase_url: {_json.dumps(value)}\n")
    with pytest.raises(ConfigError, match=rf"j\.yaml: base_url: .*{message}"):
        load_judge_file(path)
