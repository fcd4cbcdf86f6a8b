"""Fakes shared by the runner and CLI tests: an in-memory source, a brightness judge (batch), a slow one and
a concurrent one (the network-judge path). A subprocess can use them too: `python tests/fakes.py ARGS...`
runs the CLI with these registered."""

from __future__ import annotations

import asyncio
import io
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from PIL import Image
from pydantic import BaseModel, ConfigDict

from mjbench.adapters.base import ADAPTERS, Capabilities, Judge, PairRequest, Response, ScoreRequest
from mjbench.images import ImageRef
from mjbench.items import PairItem
from mjbench.sources.base import SOURCES, LoadResult, Source, SourceOptions


def _png(level: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (level, level, level)).save(buf, format="PNG")
    return buf.getvalue()


class MemoryOptions(SourceOptions):
    n: int = 10
    broken_item: int | None = None
    identical: bool = False  # both images of every item byte-identical


@SOURCES.register("test-memory")
class MemorySource(Source):
    """Pairs of grey images; the brighter one is preferred; image0 is reused by every third item."""

    Options = MemoryOptions

    def load(self) -> LoadResult:
        opts = MemoryOptions.model_validate(self.task.source)
        items = []
        for i in range(opts.n):
            hi, lo = ImageRef(data=_png(200 + i)), ImageRef(data=_png(50 + (i % 3)))
            if i == opts.broken_item:
                hi = ImageRef(path=Path("/nonexistent/broken.png"))
            if opts.identical:
                lo = ImageRef(data=_png(200 + i))
            first_is_better = i % 2 == 0
            items.append(PairItem(
                item_id=f"i{i}", prompt=f"prompt {i % 3}", task=self.task.name, perspective=self.task.perspective,
                subcategory="odd" if i % 2 else "even", image0=hi if first_is_better else lo,
                image1=lo if first_is_better else hi, label="0" if first_is_better else "1"))
        return LoadResult(items)

    def count(self) -> int:
        return MemoryOptions.model_validate(self.task.source).n


CALLS: dict[str, int] = {"score": 0, "compare": 0}
FAIL_AFTER: dict[str, int | None] = {"n": None, "interrupt": None}


@ADAPTERS.register("test-brightness")
class BrightnessJudge(Judge):
    """Scores an image by its mean brightness; can be told to crash after N requests."""

    capabilities = Capabilities(modes=("single", "pair"))

    def _check_crash(self) -> None:
        done = CALLS["score"] + CALLS["compare"]
        if FAIL_AFTER["n"] is not None and done >= FAIL_AFTER["n"]:
            raise RuntimeError("simulated adapter failure")
        if FAIL_AFTER["interrupt"] is not None and done >= FAIL_AFTER["interrupt"]:
            raise KeyboardInterrupt

    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        out = []
        for r in requests:
            self._check_crash()
            CALLS["score"] += 1
            try:
                out.append(Response(score=float(r.image.load().getpixel((0, 0))[0])))
            except Exception as exc:
                out.append(Response.failure(str(exc)))
        return out

    def compare(self, requests: Sequence[PairRequest]) -> list[Response]:
        out = []
        for _ in requests:
            self._check_crash()
            CALLS["compare"] += 1
            out.append(Response(verdict="0", raw_output="the first one"))  # pure position bias
        return out


@ADAPTERS.register("test-item-first")
class ItemFirstJudge(Judge):
    """A pair judge that always prefers the item's image0, whichever order it is shown in."""

    capabilities = Capabilities(modes=("pair",))

    def compare(self, requests: Sequence[PairRequest]) -> list[Response]:
        CALLS["compare"] += len(requests)
        return [Response(verdict="0" if r.order == "01" else "1") for r in requests]


REFRESH: dict[str, float | None] = {"add": None}


@ADAPTERS.register("test-refreshing")
class RefreshingJudge(BrightnessJudge):
    """Brightness whose stored answers a "newer parser" shifts by REFRESH["add"] (once per answer)."""

    def refresh(self, request: ScoreRequest | PairRequest, stored: Response) -> Response:
        if REFRESH["add"] is None or stored.extra.get("refreshed"):
            return stored
        return Response(score=(stored.score or 0) + REFRESH["add"], extra={"refreshed": True})


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    delay_s: float = 0.0  # per request
    fail: str | None = None  # raise RuntimeError(fail) on every request


def _brightness(r: ScoreRequest) -> float:
    return float(r.image.load().getpixel((0, 0))[0])


@ADAPTERS.register("test-slow")
class SlowJudge(Judge):
    """Brightness, one request at a time with a delay: keeps a run busy long enough to race or kill it."""

    capabilities = Capabilities(modes=("single",))
    Options = FakeOptions

    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        out = []
        for r in requests:
            time.sleep(self.options.delay_s)
            if self.options.fail:
                raise RuntimeError(self.options.fail)
            CALLS["score"] += 1
            out.append(Response(score=_brightness(r)))
        return out


@ADAPTERS.register("test-async")
class AsyncJudge(Judge):
    """Brightness through the concurrent (network-judge) path; can fail every request."""

    capabilities = Capabilities(modes=("single",), batchable=False, concurrent=True, uses_perspective=True)
    Options = FakeOptions

    async def ascore(self, request: ScoreRequest) -> Response:
        await asyncio.sleep(self.options.delay_s)
        CALLS["score"] += 1
        if self.options.fail:
            raise RuntimeError(self.options.fail)
        return Response(score=_brightness(request))


def make_workspace(root: Path, broken_item: int | None = 5) -> Path:
    """Task `mem` (12 pairs, item i5 broken unless told otherwise) and judges `bright` (single),
    `bright-pair` (pair), `slow` (0.05 s per request) and `async` (concurrent)."""
    CALLS.update(score=0, compare=0)
    FAIL_AFTER.update(n=None, interrupt=None)
    REFRESH.update(add=None)
    (root / "tasks").mkdir(parents=True)
    (root / "judges").mkdir()
    broken = "" if broken_item is None else f", broken_item: {broken_item}"
    (root / "tasks" / "mem.yaml").write_text(
        f"name: mem\nperspective: quality\nsource: {{type: test-memory, n: 12{broken}}}\n")
    (root / "judges" / "bright.yaml").write_text(
        "name: bright\nadapter: test-brightness\nbatch_size: 2\n")
    (root / "judges" / "bright-pair.yaml").write_text(
        "name: bright-pair\nadapter: test-brightness\nmode: pair\nbatch_size: 2\n")
    (root / "judges" / "slow.yaml").write_text(
        "name: slow\nadapter: test-slow\nbatch_size: 1\noptions: {delay_s: 0.05}\n")
    (root / "judges" / "async.yaml").write_text(
        "name: async\nadapter: test-async\nmax_concurrency: 4\nmax_retries: 0\n")
    return root



def invoke_cli(*args: str):
    """The CLI in this process (typer's CliRunner), errors as the user sees them."""
    from typer.testing import CliRunner

    from mjbench.cli import app

    return CliRunner().invoke(app, list(args))


if __name__ == "__main__":  # the CLI with the fakes registered, for tests that need a second process
    from mjbench.cli import app

    app(sys.argv[1:], prog_name="mjbench")
