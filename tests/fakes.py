"""Fakes shared by the runner and CLI tests: an in-memory source and a brightness judge."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

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
            first_is_better = i % 2 == 0
            items.append(PairItem(
                item_id=f"i{i}", prompt=f"prompt {i % 3}", task=self.task.name, perspective="quality",
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




def make_workspace(root: Path) -> Path:
    """Task `mem` (12 pairs, item i5 broken) and judges `bright` (single) and `bright-pair` (pair)."""
    CALLS.update(score=0, compare=0)
    FAIL_AFTER.update(n=None, interrupt=None)
    (root / "tasks").mkdir(parents=True)
    (root / "judges").mkdir()
    (root / "tasks" / "mem.yaml").write_text(
        "name: mem\nperspective: quality\nsource: {type: test-memory, n: 12, broken_item: 5}\n")
    (root / "judges" / "bright.yaml").write_text(
        "name: bright\nadapter: test-brightness\nbatch_size: 2\n")
    (root / "judges" / "bright-pair.yaml").write_text(
        "name: bright-pair\nadapter: test-brightness\nmode: pair\nbatch_size: 2\n")
    return root
