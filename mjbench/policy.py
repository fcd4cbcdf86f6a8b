"""How the runner calls network judges: concurrency, pacing, time-outs and retries, in one place.

`run_requests(call, requests, config, on_result)` sends every request through `call` (a judge's
`ascore` or `acompare`) and hands each finished `Response` to `on_result(index, response)` as soon as
it is done, so the runner can store it at once. Policy, all from the judge's `JudgeConfig`:

- at most `max_concurrency` requests in flight (a fixed pool of workers pulling the next index);
- `requests_per_minute`: attempt starts are spaced 60/rpm seconds apart (retries included);
- `timeout_s` per attempt (asyncio.wait_for); a time-out counts as a transient failure;
- `TransientError` (429, 5xx, time-outs) is retried at most `max_retries` times, with exponential
  backoff and full jitter (uniform in [0, min(max_delay, base_delay * 2**(k-1))], a seeded
  random.Random, so runs are reproducible), or exactly the server's `retry_after`, never longer than
  `max_delay`. After the last failure: status `error`, "gave up after N attempts: <last message>";
- any other exception is not retried: status `error` with its message;
- `parse_retries` (default 0): a `parse_error` answer is asked again, at most that many times. This is
  off by default, since re-asking until an answer parses flatters a judge; when on, every attempt is
  counted in `attempts`, token usage and cost are summed over them, and the earlier raw outputs are
  kept in `extra["earlier_outputs"]`.
Every attempt is counted in `Response.attempts`. Each request is delivered exactly once; a
KeyboardInterrupt, a cancellation or an exception from `on_result` (a store that cannot keep the answer)
stops the rest at once: no new request is sent, requests in flight are cancelled, what was delivered
stays delivered, and the exception propagates. When all is
done, a judge's optional `aclose()` coroutine is awaited (it closes connection pools bound to this
event loop).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mjbench.config import JudgeConfig
from mjbench.errors import MjbenchError
from mjbench.responses import Response, TransientError

R = TypeVar("R")

#: first backoff ceiling in seconds (doubles per retry, full jitter below it)
BASE_DELAY_S = 1.0
#: the longest single wait, for backoff and for a server's Retry-After alike
MAX_DELAY_S = 60.0


class _Pacer:
    """Spaced starts: no two attempts begin less than 60/rpm seconds apart."""

    def __init__(self, requests_per_minute: float | None):
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        start = max(now, self._next)
        self._next = start + self.interval  # reserved before sleeping: no two workers get the same slot
        if start > now:
            await asyncio.sleep(start - now)


class _Backoff:
    def __init__(self, base_delay: float, max_delay: float, seed: int):
        self.base, self.cap = base_delay, max_delay
        self.rng = random.Random(seed)

    def delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.cap)
        return self.rng.uniform(0.0, min(self.cap, self.base * 2 ** (retry - 1)))


def _add(a: float | int | None, b: float | int | None) -> Any:
    return b if a is None else a if b is None else a + b


async def _one(
    call: Callable[[R], Awaitable[Response]], request: R, config: JudgeConfig, pacer: _Pacer, backoff: _Backoff,
) -> Response:
    """All attempts for one request, ending in the response to record."""
    attempts = retries = reasks = 0
    started = time.monotonic()
    waits: list[float] = []
    earlier: list[Response] = []
    while True:
        attempts += 1
        await pacer.wait()
        t0 = time.monotonic()
        try:
            resp = await asyncio.wait_for(call(request), config.timeout_s)
        except TransientError as exc:
            message, retry_after = str(exc), exc.retry_after
        except TimeoutError:
            message, retry_after = f"timed out after {config.timeout_s:g} s", None
        except MjbenchError as exc:  # a bad image, a bad config: asking again gives the same answer
            return Response.failure(str(exc), attempts=attempts, latency_s=time.monotonic() - t0)
        except Exception as exc:  # an adapter bug or an unexpected client error: recorded, not retried
            return Response.failure(f"{type(exc).__name__}: {exc}", attempts=attempts,
                                    latency_s=time.monotonic() - t0)
        else:
            if resp.latency_s is None:
                resp.latency_s = time.monotonic() - t0
            if resp.status == "parse_error" and reasks < config.parse_retries:
                reasks += 1
                earlier.append(resp)
                continue
            resp.attempts = attempts
            for old in earlier:
                resp.input_tokens = _add(old.input_tokens, resp.input_tokens)
                resp.output_tokens = _add(old.output_tokens, resp.output_tokens)
                resp.cost_usd = _add(old.cost_usd, resp.cost_usd)
            if earlier:
                resp.extra["earlier_outputs"] = [old.raw_output for old in earlier]
            if waits:
                resp.extra["retry_waits_s"] = waits
            return resp
        retries += 1
        if retries > config.max_retries:
            plural = "s" if attempts != 1 else ""
            return Response.failure(
                f"gave up after {attempts} attempt{plural}: {message}", attempts=attempts,
                latency_s=time.monotonic() - started, extra={"retry_waits_s": waits} if waits else {},
            )
        wait = backoff.delay(retries, retry_after)
        waits.append(round(wait, 4))
        await asyncio.sleep(wait)


async def run_requests(
    call: Callable[[R], Awaitable[Response]],
    requests: Sequence[R],
    config: JudgeConfig,
    on_result: Callable[[int, Response], None],
    *,
    base_delay: float = BASE_DELAY_S,
    max_delay: float = MAX_DELAY_S,
    seed: int = 0,
) -> None:
    """Send all `requests` through `call` under the judge's policy; `on_result(i, response)` per request."""
    pacer = _Pacer(config.requests_per_minute)
    backoff = _Backoff(base_delay, max_delay, seed)
    indices = iter(range(len(requests)))  # shared by the workers: each index is taken exactly once

    stopped: list[BaseException] = []  # a failed delivery: no worker sends or delivers anything more

    async def worker() -> None:
        for i in indices:
            if stopped:
                return
            response = await _one(call, requests[i], config, pacer, backoff)
            if stopped:
                return
            try:
                on_result(i, response)
            except BaseException as exc:
                stopped.append(exc)
                raise

    tasks = [asyncio.create_task(worker()) for _ in range(min(config.max_concurrency, len(requests)))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        aclose = getattr(getattr(call, "__self__", None), "aclose", None)
        if aclose is not None:
            await aclose()


def run_requests_sync(
    call: Callable[[R], Awaitable[Response]],
    requests: Sequence[R],
    config: JudgeConfig,
    on_result: Callable[[int, Response], None],
    **kwargs: Any,
) -> None:
    """`run_requests` from synchronous code. Inside a running event loop (a notebook) it runs on a helper
    thread with its own loop, and `on_result` is called from that thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(run_requests(call, requests, config, on_result, **kwargs))
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run_requests(call, requests, config, on_result, **kwargs)).result()
