"""Published preference data as tasks and published results as judges.

- GenAI-Bench (image generation) and Pick-a-Pic v1 (validation_unique, test_unique): the shipped tasks load
  from local files in those repositories' layouts, read through a hub mirror, with their four-class and tie
  labels.
- Verdict-only published results: a `precomputed` judge runs through `mjbench run` on items whose image files
  are missing or are URLs, reading no image; a judge that looks at pixels still gets its error records.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from test_fetch import ImageServer
from typer.testing import CliRunner

from mjbench.catalog import Catalog
from mjbench.cli import app
from mjbench.records import read_records
from mjbench.sources import load_task


def png(color: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (5, 4), color).save(buf, format=fmt)
    return buf.getvalue()


# --- GenAI-Bench --------------------------------------------------------------------------------------

GENAI_CARD = """---
license: cc-by-4.0
configs:
- config_name: image_generation
  data_files:
  - split: test
    path: image_generation/test-*
- config_name: image_edition
  data_files:
  - split: test
    path: image_edition/test-*
---
# GenAI-Bench
"""


@pytest.fixture
def genai_mirror(tmp_path: Path) -> Path:
    """DIR/TIGER-Lab/GenAI-Bench/: a card with configs, and image_generation/test-*.parquet written by datasets
    (Image features, so {bytes, path} structs with the datasets metadata), columns as in the real config."""
    datasets = pytest.importorskip("datasets")
    repo = tmp_path / "mirror" / "TIGER-Lab" / "GenAI-Bench"
    (repo / "image_generation").mkdir(parents=True)
    (repo / "image_edition").mkdir()
    (repo / "README.md").write_text(GENAI_CARD)
    votes = ["leftvote", "rightvote", "tievote", "bothbad_vote", "weirdvote"]
    n = len(votes)
    features = datasets.Features({
        "prompt": datasets.Value("string"), "left_model": datasets.Value("string"),
        "right_model": datasets.Value("string"), "left_image": datasets.Image(), "right_image": datasets.Image(),
        "vote_type": datasets.Value("string"),
    })
    datasets.Dataset.from_dict({
        "prompt": [f"prompt {i}" for i in range(n)], "left_model": ["SDXL"] * n, "right_model": ["PixArt"] * n,
        "left_image": [{"bytes": png((i * 40, 0, 0)), "path": f"l{i}.png"} for i in range(n)],
        "right_image": [{"bytes": png((0, i * 40, 0)), "path": f"r{i}.png"} for i in range(n)],
        "vote_type": votes,
    }, features=features).to_parquet(str(repo / "image_generation" / "test-00000-of-00001.parquet"))
    # another config beside it, which must not leak in
    datasets.Dataset.from_dict({"instruct_prompt": ["x"], "vote_type": ["leftvote"]}).to_parquet(
        str(repo / "image_edition" / "test-00000-of-00001.parquet"))
    return tmp_path / "mirror"


def test_genai_bench_image_generation_task(genai_mirror: Path, tmp_path: Path) -> None:
    cfg = Catalog().task("genai-bench-image-generation")
    assert cfg.source["repo"] == "TIGER-Lab/GenAI-Bench" and cfg.source["name"] == "image_generation"
    assert "CC BY 4.0" in cfg.license and "2406.04485" in cfg.citation
    result = load_task(cfg, hub_mirror=genai_mirror)
    assert [it.label for it in result.items] == ["0", "1", "tie", "both_bad"]
    assert [it.prompt for it in result.items] == ["prompt 0", "prompt 1", "prompt 2", "prompt 3"]
    assert result.items[1].meta["left_model"] == "SDXL" and result.items[1].meta["right_model"] == "PixArt"
    assert result.items[1].image0.load().getpixel((0, 0)) == (40, 0, 0)  # left image = image0
    assert result.items[1].image1.load().getpixel((0, 0)) == (0, 40, 0)
    assert result.dropped == {"label 'weirdvote' is not 0, 1 or tie (or both_bad)": 1}  # never guessed


# --- Pick-a-Pic v1 ------------------------------------------------------------------------------------

def _pickapic_rows(labels: list[float], seed: int) -> dict[str, list]:
    n = len(labels)
    return {
        "are_different": [True] * n, "best_image_uid": [f"u{seed}{i}" for i in range(n)],
        "caption": [f"caption {seed}-{i}" for i in range(n)], "created_at": ["2023-04-01"] * n,
        "has_label": [True] * n, "image_0_uid": [f"a{seed}{i}" for i in range(n)],
        "image_0_url": [f"https://example.org/a{seed}{i}.png" for i in range(n)],
        "image_1_uid": [f"b{seed}{i}" for i in range(n)],
        "image_1_url": [f"https://example.org/b{seed}{i}.png" for i in range(n)],
        "jpg_0": [png((200, seed, i), "JPEG") for i in range(n)], "jpg_1": [png((seed, 200, i), "JPEG") for i in range(n)],
        "label_0": labels, "label_1": [1.0 - x for x in labels], "model_0": ["sd"] * n, "model_1": ["sdxl"] * n,
        "ranking_id": list(range(seed * 100, seed * 100 + n)), "user_id": [7] * n,
        "num_example_per_prompt": [1] * n,
    }


@pytest.fixture
def pickapic_mirror(tmp_path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "mirror" / "yuvalkirstain" / "pickapic_v1" / "data"
    data.mkdir(parents=True)
    pq.write_table(pa.table(_pickapic_rows([1.0, 0.0, 0.5, 1.0], 1)),
                   data / "validation_unique-00000-of-00001-5c2f7a8b.parquet")
    pq.write_table(pa.table(_pickapic_rows([0.0, 0.5], 2)), data / "test_unique-00000-of-00001-9d0e1f2a.parquet")
    pq.write_table(pa.table(_pickapic_rows([1.0] * 3, 3)), data / "train-00000-of-00002-1a2b3c4d.parquet")
    pq.write_table(pa.table(_pickapic_rows([1.0] * 3, 4)), data / "validation-00000-of-00001-0a0b0c0d.parquet")
    return tmp_path / "mirror"


def test_pickapic_v1_tasks(pickapic_mirror: Path) -> None:
    catalog = Catalog()
    val = load_task(catalog.task("pickapic-v1-validation-unique"), hub_mirror=pickapic_mirror)
    assert [it.label for it in val.items] == ["0", "1", "tie", "0"]  # label_0 = 1 means image 0 won
    assert [it.prompt for it in val.items] == [f"caption 1-{i}" for i in range(4)]
    assert val.items[2].meta["ranking_id"] == 102 and val.problems == []
    assert val.items[0].image0.load().size == (5, 4)  # jpg_0: encoded bytes, read on demand
    test = load_task(catalog.task("pickapic-v1-test-unique"), hub_mirror=pickapic_mirror)
    assert [it.label for it in test.items] == ["1", "tie"]  # the non-unique splits beside them stay out
    for name in ("pickapic-v1-validation-unique", "pickapic-v1-test-unique"):
        cfg = catalog.task(name)
        assert cfg.source["repo"] == "yuvalkirstain/pickapic_v1" and "2305.01569" in cfg.citation and cfg.license


# --- verdict-only published results through `mjbench run` ---------------------------------------------

def test_verdict_only_results_run_on_missing_and_url_images(tmp_path: Path) -> None:
    """A published results file (MJ-Bench's shape) with image paths that do not exist here and image URLs:
    the task loads every row, the precomputed judge answers every item without reading an image, and a pixel
    judge on the same items still reports each unreadable image."""
    ws = tmp_path / "ws"
    (ws / "tasks").mkdir(parents=True)
    (ws / "judges").mkdir()
    with ImageServer() as server:
        rows = [
            {"caption": "a red apple", "image0": "images/gone_0.png", "image1": f"{server.url}/red.png",
             "label": "0", "score_0": 0.9, "score_1": 0.1, "pred": "0"},
            {"caption": "two cats", "image0": f"{server.url}/blue.png", "image1": "images/gone_1.png",
             "label": "1", "score_0": 0.2, "score_1": 0.8, "pred": "0"},
            {"caption": "a car", "image0": "images/gone_2.png", "image1": "images/gone_3.png",
             "label": "tie", "score_0": 0.5, "score_1": 0.5, "pred": "tie"},
        ]
        (ws / "published.json").write_text(json.dumps(rows, indent=4))
        (ws / "tasks" / "pub.yaml").write_text(yaml.safe_dump({
            "name": "pub", "perspective": "alignment", "source": {"type": "table", "path": "../published.json"}}))
        (ws / "judges" / "their-judge.yaml").write_text(yaml.safe_dump({
            "name": "their-judge", "adapter": "precomputed", "family": "precomputed", "mode": "pair",
            "options": {"path": "../published.json", "row_ids": "pub-", "verdict_column": "pred"}}))
        out = tmp_path / "run"
        res = CliRunner().invoke(app, ["run", "-I", str(ws), "--tasks", "pub", "--judges", "their-judge",
                                       "--out", str(out), "-q"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        # judging read no image: the correctly judged item's URL was never fetched (the report's failure gallery
        # may fetch a wrongly judged item's image for its thumbnail, which is the report's business)
        assert server.hits["/red.png"] == 0
        records = read_records([out / "records.jsonl"])
        assert len(records) == 6 and set(records["status"]) == {"ok"}  # 3 items x 2 orders
        by_item = records[records["order"] == "01"].set_index("item_id")
        assert by_item.loc["pub-0", "pred"] == "0" and by_item.loc["pub-1", "pred"] == "0"
        assert by_item.loc["pub-2", "pred"] == "tie"
        assert set(records[records["order"] == "10"]["pred"]) == {"0", "tie"}  # mapped back to the items' order
        # a judge that looks at pixels: the missing files are error records naming them, the run goes on
        res = CliRunner().invoke(app, ["run", "-I", str(ws), "--tasks", "pub", "--judges", "random",
                                       "--out", str(tmp_path / "pixels"), "-q"], catch_exceptions=False)
        assert res.exit_code == 1
        pixel = read_records([tmp_path / "pixels" / "records.jsonl"])
        assert list(pixel["status"]) == ["error"] * 3
        assert "image file not found" in pixel["error"].iloc[0] and "gone_0.png" in pixel["error"].iloc[0]
