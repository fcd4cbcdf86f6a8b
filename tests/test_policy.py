"""The runner's policy for network judges, with fake async calls (no network): concurrency, pacing,
time-outs, retries with backoff, Retry-After, parse re-asks, delivery exactly once, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from mjbench.adapters.base import Response, TransientError
from mjbench.config import JudgeConfig
from mjbench.errors import ItemError
from mjbench.policy import run_requests, run_requests_sync

FAST = {"base_delay": 0.001, "max_delay": 0.02}


def config(**kw) -> JudgeConfig:
    return JudgeConfig(name="fake", adapter="openai", **{"max_concurrency": 4, "timeout_s": 5, **kw})


def collect(call, requests, cfg, **kw) -> dict[int, Response]:
    out: dict[int, Response] = {}

    def on_result(i: int, r: Response) -> None:
        assert i not in out, f"request {i} delivered twice"
        out[i] = r

    run_requests_sync(call, requests, cfg, on_result, **{**FAST, **kw})
    return out


class Fake:
    """An async judge call scripted per request: a list of outcomes (Response, exception or seconds to hang)."""

    def __init__(self, script=None, delay=0.0):
        self.script = script or {}
        self.delay = delay
        self.calls: dict[int, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.starts: list[float] = []

    async def __call__(self, request: int) -> Response:
        n = self.calls.get(request, 0)
        self.calls[request] = n + 1
        self.starts.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            steps = self.script.get(request, [])
            step = steps[min(n, len(steps) - 1)] if steps else Response(score=float(request))
            if isinstance(step, (int, float)):
                await asyncio.sleep(step)
                return Response(score=float(request))
            await asyncio.sleep(self.delay)
            if isinstance(step, BaseException):
                raise step
            return Response(**{**step.to_dict(), "extra": dict(step.extra)})
        finally:
            self.in_flight -= 1


def test_concurrency_limit_and_exactly_once():
    fake = Fake(delay=0.01)
    out = collect(fake, list(range(30)), config(max_concurrency=3))
    assert sorted(out) == list(range(30))
    assert all(out[i].score == i and out[i].attempts == 1 for i in out)
    assert fake.max_in_flight == 3
    assert all(n == 1 for n in fake.calls.values())


def test_transient_errors_are_retried_and_counted():
    fake = Fake({1: [TransientError("HTTP 503: busy"), TransientError("HTTP 429: slow down"), Response(score=5)]})
    out = collect(fake, [0, 1, 2], config(max_retries=4))
    assert out[1].status == "ok" and out[1].score == 5 and out[1].attempts == 3
    assert len(out[1].extra["retry_waits_s"]) == 2
    assert out[0].attempts == 1 and fake.calls[1] == 3


def test_gives_up_after_max_retries():
    fake = Fake({0: [TransientError("HTTP 500: boom")]})
    out = collect(fake, [0], config(max_retries=2))
    assert out[0].status == "error" and out[0].attempts == 3
    assert out[0].error == "gave up after 3 attempts: HTTP 500: boom"
    assert fake.calls[0] == 3
    once = collect(Fake({0: [TransientError("HTTP 500: boom")]}), [0], config(max_retries=0))
    assert once[0].error == "gave up after 1 attempt: HTTP 500: boom"


def test_timeouts_are_transient():
    fake = Fake({0: [5.0]})  # hangs far longer than the time-out
    t0 = time.monotonic()
    out = collect(fake, [0, 1], config(timeout_s=0.05, max_retries=1))
    assert time.monotonic() - t0 < 2
    assert out[0].status == "error" and out[0].attempts == 2
    assert out[0].error.startswith("gave up after 2 attempts: timed out after 0.05 s")
    assert out[1].status == "ok"


def test_retry_after_is_honoured_but_capped():
    fake = Fake({0: [TransientError("429", retry_after=0.03), TransientError("429", retry_after=999), Response(score=1)]})
    t0 = time.monotonic()
    out = collect(fake, [0], config(), base_delay=0.001, max_delay=0.05)
    assert out[0].extra["retry_waits_s"] == [0.03, 0.05]
    assert 0.07 <= time.monotonic() - t0 < 1.0


def test_backoff_full_jitter_is_seeded():
    def waits(seed):
        fake = Fake({0: [TransientError("busy")] * 5 + [Response(score=1)]})
        return collect(fake, [0], config(max_retries=5), base_delay=0.001, max_delay=0.004, seed=seed)[0].extra[
            "retry_waits_s"]

    a, b, c = waits(1), waits(1), waits(2)
    assert a == b and a != c
    ceilings = [min(0.004, 0.001 * 2**k) for k in range(5)]
    assert all(0 <= w <= ceil + 1e-9 for w, ceil in zip(a, ceilings, strict=True))


def test_other_errors_are_recorded_not_retried():
    fake = Fake({0: [ItemError("cannot decode image x.png")], 1: [ValueError("adapter bug")]})
    out = collect(fake, [0, 1, 2], config())
    assert (out[0].status, out[0].error, out[0].attempts) == ("error", "cannot decode image x.png", 1)
    assert out[1].status == "error" and out[1].error == "ValueError: adapter bug"
    assert fake.calls[0] == fake.calls[1] == 1 and out[2].status == "ok"


def test_parse_errors_are_not_reasked_by_default():
    fake = Fake({0: [Response(status="parse_error", raw_output="??", error="no rating found")]})
    out = collect(fake, [0], config())
    assert out[0].status == "parse_error" and out[0].attempts == 1 and fake.calls[0] == 1


def test_parse_retries_are_capped_counted_and_summed():
    bad = Response(status="parse_error", raw_output="??", input_tokens=100, output_tokens=10, cost_usd=0.01)
    good = Response(score=7, raw_output="RATING: 7", input_tokens=100, output_tokens=5, cost_usd=0.02)
    out = collect(Fake({0: [bad, good]}), [0], config(parse_retries=2))
    r = out[0]
    assert (r.status, r.score, r.attempts) == ("ok", 7, 2)
    assert (r.input_tokens, r.output_tokens, r.cost_usd) == (200, 15, pytest.approx(0.03))
    assert r.extra["earlier_outputs"] == ["??"]
    capped = collect(Fake({0: [bad]}), [0], config(parse_retries=2))[0]
    assert capped.status == "parse_error" and capped.attempts == 3


def test_requests_per_minute_spaces_starts():
    fake = Fake()
    collect(fake, list(range(5)), config(max_concurrency=5, requests_per_minute=1200))  # one per 50 ms
    gaps = [b - a for a, b in zip(fake.starts, fake.starts[1:], strict=False)]
    assert len(gaps) == 4 and all(g >= 0.045 for g in gaps)


def test_results_arrive_as_they_finish():
    fake = Fake({0: [0.3]})  # request 0 is slow
    order: list[int] = []
    run_requests_sync(fake, [0, 1, 2, 3], config(max_concurrency=4), lambda i, r: order.append(i), **FAST)
    assert order[-1] == 0 and sorted(order) == [0, 1, 2, 3]


def test_cancel_keeps_delivered_results():
    fake = Fake({i: [0.01 * i] for i in range(10)})
    delivered: dict[int, Response] = {}

    async def main():
        task = asyncio.create_task(run_requests(fake, list(range(10)), config(max_concurrency=10),
                                                lambda i, r: delivered.setdefault(i, r), **FAST))
        await asyncio.sleep(0.045)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert 2 <= len(delivered) < 10
    assert all(r.status == "ok" for r in delivered.values())


def test_on_result_failure_stops_the_run():
    def on_result(i, r):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        run_requests_sync(Fake(), [0, 1, 2], config(), on_result, **FAST)


def test_a_failing_delivery_stops_new_requests_at_once():
    """A store that cannot keep an answer: no further request may be sent (each one is paid for)."""
    from mjbench.store import StoreError

    fake, delivered = Fake(delay=0.01), []

    def on_result(i, r):
        delivered.append(i)
        if len(delivered) == 3:
            raise StoreError("store s.sqlite: cannot write (database or disk is full)")

    with pytest.raises(StoreError, match="disk is full"):
        run_requests_sync(fake, list(range(100)), config(max_concurrency=4), on_result, **FAST)
    assert len(delivered) == 3 and sum(fake.calls.values()) <= 3 + 4


def test_sync_wrapper_inside_running_loop_and_aclose():
    class Judge:
        closed = 0

        async def ascore(self, request):
            return Response(score=request)

        async def aclose(self):
            Judge.closed += 1

    judge = Judge()
    out: dict[int, Response] = {}

    async def main():  # as in a notebook: a loop is already running
        run_requests_sync(judge.ascore, [1, 2], config(), out.__setitem__)

    asyncio.run(main())
    assert {i: r.score for i, r in out.items()} == {0: 1, 1: 2}
    assert Judge.closed == 1


def test_empty_request_list():
    run_requests_sync(Fake(), [], config(), lambda i, r: pytest.fail("nothing to deliver"))
