"""Caption pairs (`kind: caption_pair`) and groups (`kind: group`) from the tabular sources: JSONL, JSON, CSV,
Parquet and a hub mirror, with column mappings; bad rows are problems counted by reason."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from mjbench.config import TaskConfig
from mjbench.errors import ConfigError, DataError
from mjbench.items import CaptionPairItem, GroupItem
from mjbench.sources import LoadResult, load_task
from mjbench.sources.shapes import list_cell


def png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (6, 4), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    (tmp_path / "img").mkdir()
    for k in range(4):
        (tmp_path / "img" / f"{k}.png").write_bytes(png((40 * k, 10, 200 - 40 * k)))
    return tmp_path


def task(path: Path, kind: str, source_type: str = "table", **extra: Any) -> TaskConfig:
    source = {"type": source_type, "path": str(path), **extra.pop("source", {})}
    return TaskConfig(name="t", kind=kind, perspective="humor", source=source, **extra)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


# --- caption pairs ----------------------------------------------------------------------------------------

CAPTION_ROWS = [
    {"id": "c1", "pic": "img/0.png", "a": "I'm the new branch manager.", "b": "Hi.", "win": "A", "p": 0.9,
     "contest": "660", "prompt": "Which caption is funnier?"},
    {"id": "c2", "pic": "img/1.png", "a": "Sliiide!", "b": "Tell the boss I'm in the branch office.", "win": "B",
     "p": 0.2, "contest": "661", "prompt": ""},
    {"id": "c3", "pic": "img/1.png", "a": "Same.", "b": "Same, again.", "win": "same", "p": 0.5,
     "contest": "661", "prompt": ""},
]
CAPTION_MAP = {"item_id": "id", "image": "pic", "text0": "a", "text1": "b", "label": "win", "label_prob": "p"}
LABEL_MAP = {"A": "0", "B": "1", "same": "tie"}


def _check_caption_pairs(result: LoadResult) -> None:
    assert result.problems == [] and result.dropped == {}
    items = result.items
    assert [it.item_id for it in items] == ["c1", "c2", "c3"]
    assert all(isinstance(it, CaptionPairItem) for it in items)
    first = items[0]
    assert isinstance(first, CaptionPairItem)
    assert first.texts == ("I'm the new branch manager.", "Hi.") and first.prompt == "Which caption is funnier?"
    assert [it.label for it in items] == ["0", "1", "tie"]  # type: ignore[union-attr]
    assert [it.label_prob for it in items] == [0.9, 0.2, 0.5]  # type: ignore[union-attr]
    assert items[1].prompt == ""
    assert first.images[0].read_bytes() == png((0, 10, 200))
    assert first.perspective == "humor" and first.task == "t"


def test_caption_pairs_from_jsonl_csv_and_parquet(images: Path) -> None:
    for path in (write_jsonl(images / "d.jsonl", CAPTION_ROWS), write_csv(images / "d.csv", CAPTION_ROWS)):
        result = load_task(task(path, "caption_pair", columns=CAPTION_MAP, label_map=LABEL_MAP,
                                subcategory={"column": "contest", "map": {"660": "contest-660"}, "default": "x"}))
        _check_caption_pairs(result)
        assert [it.subcategory for it in result.items] == ["contest-660", "661", "661"]
    # Parquet with {bytes, path} image structs, as datasets writes them
    rows = [{**r, "pic": {"bytes": (images / r["pic"]).read_bytes(), "path": r["pic"]}} for r in CAPTION_ROWS]
    result = load_task(task(write_parquet(images / "d.parquet", rows), "caption_pair", "parquet",
                            columns=CAPTION_MAP, label_map=LABEL_MAP))
    _check_caption_pairs(result)
    assert {it.subcategory for it in result.items} == {"all"}


def test_caption_pair_default_columns_and_subcategory_column(images: Path) -> None:
    rows = [{"image": "img/0.png", "caption0": "one", "caption1": "two", "label": 1, "subcategory": "s1",
             "label_strength": -2}]
    result = load_task(task(write_jsonl(images / "d.jsonl", rows), "caption_pair"))
    item = result.items[0]
    assert isinstance(item, CaptionPairItem)
    assert item.texts == ("one", "two") and item.label == "1" and item.subcategory == "s1"
    assert item.label_strength == -2 and item.item_id == "t-0" and item.prompt == ""
    # the same column through `columns:`, and the task's own subcategory: wins
    result = load_task(task(images / "d.jsonl", "caption_pair", subcategory={"fixed": "mine"}))
    assert result.items[0].subcategory == "mine"
    with pytest.raises(ConfigError, match=r"columns\.subcategory: the task also sets subcategory:"):
        load_task(task(images / "d.jsonl", "caption_pair", subcategory={"fixed": "mine"},
                       columns={"subcategory": "subcategory"}))


def test_bad_caption_pair_rows_are_counted_by_reason(images: Path) -> None:
    rows = [
        {"item_id": "ok", "image": "img/0.png", "text0": "a", "text1": "b", "label": 0},
        {"item_id": "no-text", "image": "img/0.png", "text0": "a", "text1": "  ", "label": 0},
        {"item_id": "no-text-2", "image": "img/0.png", "text0": "", "text1": "b", "label": 1},
        {"item_id": "bad-label", "image": "img/0.png", "text0": "a", "text1": "b", "label": 2},
        {"item_id": "no-label", "image": "img/0.png", "text0": "a", "text1": "b", "label": ""},
        {"item_id": "no-image", "image": "", "text0": "a", "text1": "b", "label": 0},
        {"item_id": "outside", "image": "../x.png", "text0": "a", "text1": "b", "label": 0},
        {"item_id": "bad-prob", "image": "img/0.png", "text0": "a", "text1": "b", "label": 0, "label_prob": 1.5},
        {"item_id": "ok", "image": "img/0.png", "text0": "a", "text1": "b", "label": 0},
    ]
    path = write_jsonl(images / "bad.jsonl", rows)
    result = load_task(task(path, "caption_pair"))
    assert [it.item_id for it in result.items] == ["ok"]
    assert result.dropped["empty text1"] == 1 and result.dropped["empty text0"] == 1
    assert any("label 2 is not 0, 1 or tie" in reason for reason in result.dropped)
    assert sum(result.dropped.values()) == 8 and len(result.problems) == 8
    line = next(p for p in result.problems if "no-text " in p)
    assert f"{path} row 2" in line and "empty text1 (column 'text1')" in line and "\n" not in line
    assert any("bad-label" in p and "row 4" in p and "2" in p for p in result.problems)
    assert any("outside" in p and "'../x.png'" in p for p in result.problems)
    assert any("duplicate item_id" in p and "row 9" in p for p in result.problems)


def test_caption_pair_missing_column_and_unknown_field(images: Path) -> None:
    path = write_jsonl(images / "d.jsonl", [{"image": "img/0.png", "text0": "a", "label": 0}])
    with pytest.raises(DataError, match=r"column 'text1' or 'caption1' not found .*columns are: image, text0, label"):
        load_task(task(path, "caption_pair"))
    with pytest.raises(ConfigError, match=r"columns\.image0: unknown field for kind caption_pair"):
        load_task(task(path, "caption_pair", columns={"image0": "image"}))


# --- groups -----------------------------------------------------------------------------------------------

def _image_group_rows() -> list[dict[str, Any]]:
    return [
        {"gid": "g1", "text": "a red apple", "cands": ["img/0.png", "img/1.png", "img/2.png"],
         "scores": [0.5, 2.0, 1.0], "names": ["sd", "dalle", "mj"], "cat": "fruit"},
        {"gid": "g2", "text": "a blue car", "cands": ["img/3.png", "img/0.png"], "scores": [1.0, 1.0],
         "names": ["x", "y"], "cat": "car"},
    ]


GROUP_MAP = {"item_id": "gid", "prompt": "text", "candidates": "cands", "gold_scores": "scores",
             "candidate_ids": "names"}


def _check_image_groups(result: LoadResult) -> None:
    assert result.problems == [] and result.dropped == {}
    g1, g2 = result.items
    assert isinstance(g1, GroupItem) and isinstance(g2, GroupItem)
    assert g1.item_id == "g1" and g1.prompt == "a red apple" and g1.candidate_texts is None
    assert g1.candidate_ids == ["sd", "dalle", "mj"] and g1.gold_scores == [0.5, 2.0, 1.0]
    assert g1.candidate_images is not None and len(g1.images) == 3
    assert g1.images[1].read_bytes() == png((40, 10, 160))
    assert g2.gold_scores == [1.0, 1.0] and g1.subcategory == "fruit"


def test_image_groups_from_jsonl_csv_and_parquet(images: Path) -> None:
    rows = _image_group_rows()
    spec = {"column": "cat"}
    result = load_task(task(write_jsonl(images / "g.jsonl", rows), "group", columns=GROUP_MAP, subcategory=spec))
    _check_image_groups(result)
    flat = [{**r, **{k: "|".join(map(str, r[k])) for k in ("cands", "scores", "names")}} for r in rows]
    result = load_task(task(write_csv(images / "g.csv", flat), "group", columns=GROUP_MAP, subcategory=spec,
                            candidates="images"))
    _check_image_groups(result)
    structs = [{**r, "cands": [{"bytes": (images / p).read_bytes(), "path": p} for p in r["cands"]]} for r in rows]
    result = load_task(task(write_parquet(images / "g.parquet", structs), "group", "parquet", columns=GROUP_MAP,
                            subcategory=spec))
    _check_image_groups(result)


def _text_group_rows() -> list[dict[str, Any]]:
    return [
        {"item_id": "cartoon-1", "image": "img/0.png", "texts": ["Sliiide!", "A | B, the pipe stays", "Hi."],
         "gold_ranks": [2, 1, 3], "gold_best": [1], "prompt": "rank these"},
        {"item_id": "cartoon-2", "image": "img/1.png", "texts": ["one", "two"], "gold_ranks": [1, 1],
         "gold_best": [0, 1], "prompt": ""},
    ]


def _check_text_groups(result: LoadResult) -> None:
    assert result.problems == [] and result.dropped == {}
    c1, c2 = result.items
    assert isinstance(c1, GroupItem) and isinstance(c2, GroupItem)
    assert c1.candidate_texts == ["Sliiide!", "A | B, the pipe stays", "Hi."] and c1.candidate_images is None
    assert c1.candidate_ids == ["0", "1", "2"] and c1.gold_ranks == [2, 1, 3] and c1.gold_best == [1]
    assert c1.gold_scores is None and c1.prompt == "rank these" and c2.prompt == ""
    assert c2.gold_best == [0, 1] and c2.gold_ranks == [1, 1]
    assert c1.images[0].read_bytes() == png((0, 10, 200)) and len(c1.images) == 1


def test_text_groups_from_jsonl_csv_parquet_and_a_hub_mirror(images: Path) -> None:
    rows = _text_group_rows()
    _check_text_groups(load_task(task(write_jsonl(images / "t.jsonl", rows), "group", candidates="texts")))
    # CSV: texts holding `|` as a JSON list; numbers `|`-joined
    flat = [{**r, "texts": json.dumps(r["texts"]), "gold_ranks": "|".join(map(str, r["gold_ranks"])),
             "gold_best": "|".join(map(str, r["gold_best"]))} for r in rows]
    _check_text_groups(load_task(task(write_csv(images / "t.csv", flat), "group", candidates="texts")))
    _check_text_groups(load_task(task(write_parquet(images / "t.parquet", rows), "group", "parquet",
                                      candidates="texts")))
    # hub: a local mirror of a repository whose Parquet files are named in data_files
    repo = images / "mirror" / "me" / "cartoons"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "img").mkdir()
    for k in range(2):
        (repo / "data" / "img" / f"{k}.png").write_bytes((images / "img" / f"{k}.png").read_bytes())
    write_parquet(repo / "data" / "test.parquet", rows)
    cfg = TaskConfig(name="t", kind="group", candidates="texts", perspective="humor",
                     source={"type": "hub", "repo": "me/cartoons", "data_files": "data/test.parquet"},
                     columns={"candidates": "texts"})
    _check_text_groups(load_task(cfg, hub_mirror=images / "mirror"))


def test_bad_group_rows_are_counted_by_reason(images: Path) -> None:
    base = {"image": "img/0.png", "candidates": ["a", "b", "c"]}
    rows = [
        {**base, "item_id": "ok", "gold_scores": [1, 2, 3]},
        {**base, "item_id": "two-scores", "gold_scores": [1, 2]},
        {**base, "item_id": "nan-score", "gold_scores": [1, "x", 3]},
        {**base, "item_id": "empty-text", "candidates": ["a", "", "c"], "gold_scores": [1, 2, 3]},
        {**base, "item_id": "one", "candidates": ["a"], "gold_scores": [1]},
        {**base, "item_id": "no-gold", "gold_scores": None, "gold_best": None},
        {**base, "item_id": "bad-best", "gold_best": [3]},
        {**base, "item_id": "ids", "gold_best": [0], "candidate_ids": ["x", "x", "y"]},
        {**base, "item_id": "no-image", "image": "", "gold_best": [0]},
    ]
    path = write_jsonl(images / "bad.jsonl", rows)
    result = load_task(task(path, "group", candidates="texts"))
    assert [it.item_id for it in result.items] == ["ok"]
    assert result.dropped == {
        "gold_scores: wrong number of values": 1, "gold_scores: not a number": 1, "empty candidate": 1,
        "fewer than two candidates": 1, "no gold": 1, "gold_best: not a candidate index": 1,
        "candidate_ids: not distinct": 1, "no image": 1,
    }
    line = next(p for p in result.problems if "two-scores" in p)
    assert f"{path} row 2" in line and "gold_scores (column 'gold_scores') has 2 values for 3 candidates" in line
    assert any("nan-score" in p and "'x' is not a number" in p for p in result.problems)
    assert any("bad-best" in p and "3 is not a candidate index 0..2" in p for p in result.problems)
    assert any("ids (" in p and "repeat the id 'x'" in p for p in result.problems)


def test_group_configuration_errors(images: Path) -> None:
    path = write_jsonl(images / "g.jsonl", [{"prompt": "p", "images": ["img/0.png", "img/1.png"]}])
    with pytest.raises(DataError, match=r"'gold_scores' or 'gold_ranks' or 'gold_best' not found"):
        load_task(task(path, "group"))
    with pytest.raises(DataError, match=r"column 'image' not found \(image, set columns\.image"):
        load_task(task(path, "group", candidates="texts"))
    with pytest.raises(ConfigError, match=r"columns\.image: unknown field for kind group of images"):
        load_task(task(path, "group", columns={"image": "prompt"}))
    with pytest.raises(ValueError, match=r"candidates\s+Value error, only for kind group \(this task is kind pair\)"):
        task(path, "pair", candidates="texts")


def test_image_groups_default_columns_and_outside_paths(images: Path) -> None:
    rows = [{"caption": "an apple", "images": "img/0.png|../secret.png", "gold_best": 0},
            {"caption": "a pear", "images": "img/0.png|img/1.png", "gold_best": 1}]
    result = load_task(task(write_csv(images / "g.csv", rows), "group"))
    assert [it.item_id for it in result.items] == ["t-1"]
    assert list(result.dropped) == ["image path outside the data folder (set source.allow_outside_paths: true "
                                    "to allow)"]
    item = result.items[0]
    assert isinstance(item, GroupItem) and item.prompt == "a pear" and item.gold_best == [1]


def test_list_cell() -> None:
    assert list_cell("a|b | c") == ["a", "b", "c"]
    assert list_cell('["a|b", "c"]') == ["a|b", "c"]
    assert list_cell("[not json|x") == ["[not json", "x"]
    assert list_cell(None) == [] and list_cell("") == [] and list_cell(3) == [3]
    assert list_cell("a||b") == ["a", "", "b"]  # kept, so that parallel lists stay aligned
