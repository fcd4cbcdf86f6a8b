"""Runner: planning, de-duplication, pair-order mapping, failures recorded, resume after a crash."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from mjbench.adapters.base import ADAPTERS, Capabilities, Judge, PairRequest, Response, ScoreRequest
from mjbench.images import ImageRef
from mjbench.items import PairItem
from mjbench.runner import RunSpec, run_benchmark
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


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    CALLS.update(score=0, compare=0)
    FAIL_AFTER.update(n=None, interrupt=None)
    (tmp_path / "tasks").mkdir()
    (tmp_path / "judges").mkdir()
    (tmp_path / "tasks" / "mem.yaml").write_text(
        "name: mem\nperspective: quality\nsource: {type: test-memory, n: 12, broken_item: 5}\n")
    (tmp_path / "judges" / "bright.yaml").write_text(
        "name: bright\nadapter: test-brightness\nbatch_size: 2\n")
    (tmp_path / "judges" / "bright-pair.yaml").write_text(
        "name: bright-pair\nadapter: test-brightness\nmode: pair\nbatch_size: 2\n")
    return tmp_path


def _spec(ws: Path, **kw) -> RunSpec:
    base = dict(tasks=["mem"], judges=["bright"], out=ws / "run", include_paths=[ws], quiet=True)
    return RunSpec(**{**base, **kw})


def test_single_mode_dedups_images_and_records_failures(workspace: Path):
    result = run_benchmark(_spec(workspace))
    recs = result.records
    assert len(recs) == 12 and recs["item_id"].is_unique
    # 12 bright images (one missing) + 3 distinct dark ones: the dark ones are rated once each
    assert CALLS["score"] == 11 + 3
    broken = recs[recs.item_id == "i5"].iloc[0]
    assert broken.status == "error" and "broken.png" in broken.error and broken.pred is None
    ok = recs[recs.status == "ok"]
    assert (ok.pred == ok.label).all()
    for name in ("metrics.csv", "leaderboard.md", "leaderboard.csv", "leaderboard.json", "run.json",
                 "records.jsonl"):
        assert (workspace / "run" / name).is_file(), name
    info = json.loads((workspace / "run" / "run.json").read_text())
    assert info["seed"] == 0 and info["counts"]["records"] == 12 and "versions" in info


def test_pair_mode_maps_orders_back(workspace: Path):
    result = run_benchmark(_spec(workspace, judges=["bright-pair"]))
    recs = result.records.sort_values(["item_id", "order"])
    ok = recs[recs.status == "ok"]
    assert set(ok.order) == {"01", "10"}
    assert (ok[ok.order == "01"].pred == "0").all() and (ok[ok.order == "10"].pred == "1").all()
    assert CALLS["compare"] == 2 * 11  # the broken item asks nothing


def test_resume_after_adapter_failure_computes_only_the_missing(workspace: Path):
    run_benchmark(_spec(workspace, out=workspace / "clean"))
    total = CALLS["score"]
    CALLS.update(score=0)
    FAIL_AFTER["n"] = 6
    first = run_benchmark(_spec(workspace))
    assert (first.records.status == "error").sum() > 1  # the rest is recorded as failed, not guessed
    assert "simulated adapter failure" in " ".join(first.records.error.dropna())
    FAIL_AFTER["n"] = None
    CALLS.update(score=0)
    second = run_benchmark(_spec(workspace))
    assert CALLS["score"] == total - 6
    assert second.reused == 6 and second.records["item_id"].is_unique
    metrics_clean = (workspace / "clean" / "metrics.csv").read_text()
    assert (workspace / "run" / "metrics.csv").read_text() == metrics_clean


def test_resume_after_interrupt(workspace: Path):
    FAIL_AFTER["interrupt"] = 4
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(_spec(workspace))
    FAIL_AFTER["interrupt"] = None
    CALLS.update(score=0)
    result = run_benchmark(_spec(workspace))
    assert result.reused == 4 and CALLS["score"] == 14 - 4
    CALLS.update(score=0)
    again = run_benchmark(_spec(workspace))
    assert CALLS["score"] == 0 and again.computed == 0


def test_limit_and_unknown_names(workspace: Path):
    from mjbench.errors import UnknownNameError

    result = run_benchmark(_spec(workspace, limit=4))
    assert len(result.records) == 4
    with pytest.raises(UnknownNameError, match="did you mean 'bright'"):
        run_benchmark(_spec(workspace, judges=["brigt"]))
