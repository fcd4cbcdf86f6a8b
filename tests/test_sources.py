"""Data sources on small files written here: table (JSONL, JSON, CSV), parquet (with and without the HF
schema metadata), hub (through `datasets`, from local files in the MJ-Bench layouts), the real MJ-Bench
quality pairs, sampling, and the one-line errors for bad input."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mjbench.config import load_task_file
from mjbench.errors import ConfigError, DataError, ItemError, MjbenchError, UnknownNameError
from mjbench.items import BiasItem, PairItem
from mjbench.sources import SOURCES, load_task, make_source

for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def png(color: tuple[int, int, int], size: int = 8) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def write_task(folder: Path, name: str = "t", **fields) -> Path:
    data = {"name": name, "perspective": "alignment", **fields}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def task(folder: Path, name: str = "t", **fields):
    return load_task_file(write_task(folder, name, **fields))


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    for i, color in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9)]):
        (d / f"{i}.png").write_bytes(png(color))
    return d


# --- table ----------------------------------------------------------------------------------------

def test_table_jsonl_pairs_labels_ids_and_problems(tmp_path: Path, image_dir: Path) -> None:
    rows = [
        {"prompt": "a", "image0": "images/0.png", "image1": "images/1.png", "label": 0, "kind": "x"},
        {"caption": "ignored", "prompt": "b", "image0": "images/1.png", "image1": "images/2.png", "label": "1",
         "kind": "y"},
        {"prompt": "c", "image0": "images/2.png", "image1": "images/3.png", "label": "tie", "kind": "x"},
        {"prompt": "d", "image0": "images/0.png", "image1": "images/3.png", "label": "maybe", "kind": "x"},
        {"prompt": "  ", "image0": "images/0.png", "image1": "images/3.png", "label": 0, "kind": "x"},
        {"prompt": "f", "image0": "images/missing.png", "image1": "images/3.png", "label": "image1", "kind": ""},
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    cfg = task(tmp_path, source={"type": "table", "path": "data.jsonl"},
               subcategory={"column": "kind", "map": {"x": "object"}, "default": "other"})
    result = load_task(cfg)
    assert [it.item_id for it in result.items] == ["t-0", "t-1", "t-2", "t-5"]
    assert [it.label for it in result.items] == ["0", "1", "tie", "1"]
    assert [it.subcategory for it in result.items] == ["object", "y", "object", "other"]
    assert all(it.task == "t" and it.perspective == "alignment" for it in result.items)
    assert result.items[1].prompt == "b"  # `prompt` wins over `caption`
    assert len(result.problems) == 2
    assert "item t-3" in result.problems[0] and "'maybe'" in result.problems[0]
    assert "item t-4" in result.problems[1] and "empty prompt" in result.problems[1]
    assert result.items[0].image0.load().getpixel((0, 0)) == (255, 0, 0)
    # a missing image file: the item loads; using the image names the file
    with pytest.raises(ItemError, match="missing.png"):
        result.items[3].image0.load()
    assert make_source(cfg).count() == 6


def test_table_csv_bias_with_axes_and_label_map(tmp_path: Path, image_dir: Path) -> None:
    (tmp_path / "bias.csv").write_text(
        "id,text,img,occupation,who,axes\n"
        "b1,a nurse,images/0.png,nurse,young female,age|gender\n"
        "b2,a nurse,images/1.png,nurse,old male,\"age,gender\"\n"
        "b3,a nurse,images/2.png,,old male,age\n",
        encoding="utf-8",
    )
    cfg = task(tmp_path, kind="bias", perspective="bias", source={"type": "table", "path": "bias.csv"},
               columns={"item_id": "id", "prompt": "text", "image": "img", "group": "occupation",
                        "demographic": "who"})
    result = load_task(cfg)
    assert [type(it) for it in result.items] == [BiasItem, BiasItem]
    assert result.items[0].axes == ["age", "gender"] and result.items[1].axes == ["age", "gender"]
    assert result.items[0].group == "nurse" and result.items[1].demographic == "old male"
    assert len(result.problems) == 1 and "item b3" in result.problems[0]

    (tmp_path / "pairs.csv").write_text("caption,image0,image1,label_0\np,images/0.png,images/1.png,1\n",
                                        encoding="utf-8")
    cfg = task(tmp_path, "p", source={"type": "table", "path": "pairs.csv"}, columns={"label": "label_0"},
               label_map={"1": "0", "0": "1"})
    assert load_task(cfg).items[0].label == "0"


def test_table_axis_keywords_match_whole_words(tmp_path: Path, image_dir: Path) -> None:
    rows = [{"caption": "A nurse.", "image0": "images/0.png", "info": d}
            for d in ("young_female_black", "old_male_middle eastern", "adult_non-binary_christian")]
    (tmp_path / "b.jsonl").write_text("\n".join(map(json.dumps, rows)), encoding="utf-8")
    cfg = task(tmp_path, kind="bias", perspective="bias",
               source={"type": "table", "path": "b.jsonl", "axis_keywords": {
                   "age": ["young", "adult", "old"], "gender": ["female", "male", "non-binary"],
                   "race": ["black", "white", "middle eastern"], "religion": ["christian"]}},
               columns={"group": "caption", "demographic": "info"})
    items = load_task(cfg).items
    assert [it.axes for it in items] == [["age", "gender", "race"], ["age", "gender", "race"],
                                         ["age", "gender", "religion"]]
    assert items[0].image.load().size == (8, 8)  # `image` falls back to MJ-Bench's image0


def test_real_mjbench_quality_pairs_through_table(tmp_path: Path) -> None:
    root = SHARED_DATA / "mjbench-quality"
    if not root.is_dir():
        pytest.skip(f"real MJ-Bench quality pairs not found at {root} (only present in the project workspace)")
    total = 0
    for sub, captions, folder in [("human_face", "human/captions_human.json", "human/examples_human"),
                                  ("object", "objects_indoor/captions_objects.json",
                                   "objects_indoor/examples_objects_indoor")]:
        cfg = task(tmp_path, f"real-{sub}", perspective="quality",
                   source={"type": "table", "path": str(root / captions), "image_root": str(root / folder)},
                   columns={"image0": "image_0", "image1": "image_1", "label": "label_0"},
                   label_map={"1": "0"}, subcategory={"fixed": sub})
        result = load_task(cfg)
        assert result.problems == [] and len(result.items) == 100 == make_source(cfg).count()
        assert {it.label for it in result.items} == {"0"} and {it.subcategory for it in result.items} == {sub}
        for it in result.items[:3]:
            assert it.image0.load().size[0] > 64 and it.image0.hash != it.image1.hash
        total += len(result.items)
    assert total == 200


def test_table_bad_inputs(tmp_path: Path, image_dir: Path) -> None:
    (tmp_path / "d.jsonl").write_text(json.dumps({"prompt": "a", "image0": "images/0.png", "image1": "x"}) + "\n")
    cfg = task(tmp_path, source={"type": "table", "path": "d.jsonl"})
    with pytest.raises(DataError, match=r"d\.jsonl: column 'label' not found .*columns are: prompt, image0, image1"):
        load_task(cfg)
    cfg = task(tmp_path, "m", source={"type": "table", "path": "d.jsonl"}, columns={"label": "gold"})
    with pytest.raises(DataError, match="column 'gold' not found \\(columns.label\\)"):
        load_task(cfg)
    cfg = task(tmp_path, "u", source={"type": "table", "path": "d.jsonl"}, columns={"promt": "prompt"})
    with pytest.raises(ConfigError, match=r"u\.yaml: columns\.promt: unknown field"):
        load_task(cfg)
    cfg = task(tmp_path, "n", source={"type": "table", "path": "nope.jsonl"})
    with pytest.raises(DataError, match="data file not found: .*nope.jsonl"):
        load_task(cfg)
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n{"prompt": \n')
    cfg = task(tmp_path, "b", source={"type": "table", "path": "bad.jsonl"})
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2: not valid JSON"):
        load_task(cfg)
    cfg = task(tmp_path, "o", source={"type": "table", "path": "d.jsonl", "colour": 1})
    with pytest.raises(ConfigError, match=r"o\.yaml: source: colour: unknown field"):
        load_task(cfg)


def test_corrupt_image_bytes_name_the_file(tmp_path: Path, image_dir: Path) -> None:
    (image_dir / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    (tmp_path / "d.jsonl").write_text(json.dumps(
        {"item_id": "c1", "prompt": "a", "image0": "images/corrupt.png", "image1": "images/0.png", "label": 0}))
    item = load_task(task(tmp_path, source={"type": "table", "path": "d.jsonl"})).items[0]
    with pytest.raises(ItemError, match="corrupt.png"):
        item.image0.load()


def test_unknown_source_type_suggests_a_name(tmp_path: Path) -> None:
    cfg = task(tmp_path, source={"type": "tabel", "path": "x.jsonl"})
    with pytest.raises(UnknownNameError, match=r"t\.yaml: source\.type: unknown source 'tabel'; did you mean 'table'"):
        load_task(cfg)
    assert {"synthetic", "hub", "parquet", "table"} <= set(SOURCES.names())


def test_import_stays_light() -> None:
    code = ("import sys, mjbench.sources; heavy = [m for m in ('pandas', 'pyarrow', 'datasets', 'numpy', 'PIL') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- sampling -------------------------------------------------------------------------------------

def test_limit_is_a_seeded_stratified_sample_in_order(tmp_path: Path, image_dir: Path) -> None:
    rows = [{"item_id": f"i{k}", "prompt": "p", "image0": "images/0.png", "image1": "images/1.png", "label": 0,
             "sub": "big" if k < 16 else ("mid" if k < 20 else "tiny")} for k in range(21)]
    (tmp_path / "d.jsonl").write_text("\n".join(map(json.dumps, rows)))
    cfg = task(tmp_path, source={"type": "table", "path": "d.jsonl"}, subcategory={"column": "sub"})
    ids = [it.item_id for it in load_task(cfg, limit=6, seed=1).items]
    assert len(ids) == 6 and ids == sorted(ids, key=lambda i: int(i[1:]))
    subs = [rows[int(i[1:])]["sub"] for i in ids]
    assert subs.count("tiny") == 1 and subs.count("mid") >= 1 and subs.count("big") >= 3
    assert ids == [it.item_id for it in load_task(cfg, limit=6, seed=1).items]
    assert any(ids != [it.item_id for it in load_task(cfg, limit=6, seed=s).items] for s in range(2, 6))
    assert len(load_task(cfg, limit=2, seed=0).items) == 2  # fewer than strata: one item from each of two
    assert len(load_task(cfg, limit=100).items) == 21


# --- parquet --------------------------------------------------------------------------------------

def _pair_columns(n: int = 4) -> dict[str, list]:
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (200, 200, 0)]
    return {
        "caption": [f"prompt {i}" for i in range(n)],
        "image0": [{"bytes": png(colors[i % 4]), "path": f"a{i}.png"} for i in range(n)],
        "image1": [{"bytes": png(colors[(i + 1) % 4]), "path": None} for i in range(n)],
        "label": [i % 2 for i in range(n)],
        "info": ["" for _ in range(n)],
    }


def test_parquet_without_hf_metadata_folder_and_glob(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "shards"
    data.mkdir()
    cols = _pair_columns(4)
    for k in range(2):
        part = {name: values[2 * k: 2 * k + 2] for name, values in cols.items()}
        pq.write_table(pa.table(part), data / f"part-{k}.parquet")
    for path in ("shards", "shards/part-*.parquet"):
        cfg = task(tmp_path, source={"type": "parquet", "path": path})
        result = load_task(cfg)
        assert [it.item_id for it in result.items] == ["t-0", "t-1", "t-2", "t-3"]
        assert [it.label for it in result.items] == ["0", "1", "0", "1"]
        assert result.items[2].image0.load().getpixel((0, 0)) == (0, 0, 255)
        assert make_source(cfg).count() == 4
    cfg = task(tmp_path, "g", source={"type": "parquet", "path": "none-*.parquet"})
    with pytest.raises(DataError, match="no Parquet file found"):
        load_task(cfg)


def test_parquet_images_are_read_on_demand_across_row_groups(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(_pair_columns(5)), tmp_path / "rg.parquet", row_group_size=2)
    assert pq.ParquetFile(tmp_path / "rg.parquet").num_row_groups == 3
    items = load_task(task(tmp_path, source={"type": "parquet", "path": "rg.parquet"})).items
    assert all(it.image0._data is None and it.image1._data is None for it in items)  # nothing read yet
    expected = {ref.hash for it in items for ref in it.images}
    for it in reversed(items):  # any order works, the row-group cache only saves reads
        it.image0.release()
    assert {ref.hash for it in items for ref in it.images} == expected
    assert items[4].image0.load().getpixel((0, 0)) == (255, 0, 0) and "rg.parquet row 4 column image0" in items[4].image0.origin


@pytest.mark.parametrize("row_group_size", [4, 10_000])  # many row groups, and one row group for the whole file
def test_parquet_streaming_memory_does_not_grow_with_the_file(tmp_path: Path, row_group_size: int) -> None:
    """Hashing every image of a 24 MB file (as the runner's planning does) keeps Python's peak memory at a few
    batches of images, whether the file has many row groups or one (a hub file may be one 7 GB group)."""
    import random
    import tracemalloc

    import pyarrow as pa
    import pyarrow.parquet as pq

    n, size = 120, 100_000
    rng = random.Random(0)
    cols = {"caption": [f"p{i}" for i in range(n)], "label": [i % 2 for i in range(n)],
            "image0": [{"bytes": rng.randbytes(size), "path": None} for _ in range(n)],
            "image1": [{"bytes": rng.randbytes(size), "path": None} for _ in range(n)]}
    expected = [hashlib.sha256(c["bytes"]).hexdigest() for c in cols["image0"]]
    pq.write_table(pa.table(cols), tmp_path / "big.parquet", row_group_size=row_group_size)
    del cols
    file_bytes = (tmp_path / "big.parquet").stat().st_size
    assert file_bytes > 2 * n * size
    tracemalloc.start()
    try:
        items = load_task(task(tmp_path, source={"type": "parquet", "path": "big.parquet"})).items
        hashes = []
        for it in items:
            hashes.append(it.image0.hash)
            it.image0.release()
            it.image1.hash  # noqa: B018 - read and hash the other column too
            it.image1.release()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert hashes == expected
    assert peak < 8_000_000, f"peak {peak} bytes while streaming a {file_bytes}-byte file"


def test_parquet_written_by_datasets_with_hf_metadata(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    import pyarrow.parquet as pq

    features = datasets.Features({"caption": datasets.Value("string"), "image0": datasets.Image(),
                                  "image1": datasets.Image(), "label": datasets.ClassLabel(num_classes=2),
                                  "info": datasets.Value("string")})
    datasets.Dataset.from_dict(_pair_columns(3), features=features).to_parquet(str(tmp_path / "q.parquet"))
    assert b"huggingface" in pq.read_schema(tmp_path / "q.parquet").metadata
    result = load_task(task(tmp_path, perspective="quality", source={"type": "parquet", "path": "q.parquet"}))
    assert len(result.items) == 3 and result.items[1].label == "1"
    assert result.items[0].image1.load().getpixel((0, 0)) == (0, 255, 0)


# --- hub (datasets, local files in the MJ-Bench layouts) -------------------------------------------

@pytest.fixture
def hub_repo(tmp_path: Path) -> Path:
    """Local folders in hub layout (data/<split>-00000-of-00001.parquet): hubcopy (2024), hub25 (2025)."""
    datasets = pytest.importorskip("datasets")
    d, d25 = tmp_path / "hubcopy" / "data", tmp_path / "hub25" / "data"
    d.mkdir(parents=True)
    d25.mkdir(parents=True)
    img = datasets.Image()
    f24 = datasets.Features({"caption": datasets.Value("string"), "image0": img, "image1": img,
                             "label": datasets.ClassLabel(num_classes=2), "info": datasets.Value("string")})
    datasets.Dataset.from_dict(_pair_columns(4), features=f24).to_parquet(str(d / "quality-00000-of-00001.parquet"))
    bias_img = [{"bytes": png((10 * i, 0, 0)), "path": None} for i in range(4)]
    datasets.Dataset.from_dict(
        {"caption": ["A nurse.", "A nurse.", "A pilot.", "A pilot."], "image0": bias_img, "image1": bias_img,
         "label": [0, 0, 0, 0], "info": ["young_female_black", "old_male_white", "adult_female_christian", ""]},
        features=f24,
    ).to_parquet(str(d / "bias-00000-of-00001.parquet"))
    f25 = datasets.Features({**f24, "category": datasets.Value("string"), "subcategory": datasets.Value("string"),
                             "model": datasets.Value("string")})
    del f25["info"]
    cols = {k: v for k, v in _pair_columns(4).items() if k != "info"}
    cols |= {"category": ["Composition", "Composition", "Visualization", "Composition"],
             "subcategory": ["occlusion", "physics laws", "charts", "occlusion"],
             "model": ["flux", "gpt-image-1", "flux", "flux"]}
    datasets.Dataset.from_dict(cols, features=f25).to_parquet(str(d25 / "composition-00000-of-00001.parquet"))
    return tmp_path / "hubcopy"


def test_hub_2024_pair_layout_from_a_local_copy(tmp_path: Path, hub_repo: Path) -> None:
    cfg = task(tmp_path, perspective="quality",
               source={"type": "hub", "path": "hubcopy", "split": "quality", "cache_dir": "hfcache"})
    result = load_task(cfg)
    assert [it.label for it in result.items] == ["0", "1", "0", "1"] and result.problems == []
    assert result.items[0].prompt == "prompt 0" and result.items[0].image0.load().getpixel((0, 0)) == (255, 0, 0)
    assert make_source(cfg).count() is None
    # one data file, loaded through the `parquet` builder of `datasets`
    cfg = task(tmp_path, "one", perspective="quality", source={
        "type": "hub", "path": "hubcopy/data/quality-00000-of-00001.parquet", "cache_dir": "hfcache"})
    assert len(load_task(cfg).items) == 4
    cfg = task(tmp_path, "bad", perspective="quality",
               source={"type": "hub", "path": "hubcopy", "split": "alignment", "cache_dir": "hfcache"})
    with pytest.raises(DataError, match=r"bad\.yaml: source: cannot load .*hubcopy\[alignment\]"):
        load_task(cfg)


def test_hub_images_are_read_on_demand_and_released(tmp_path: Path, hub_repo: Path) -> None:
    """A multi-GB split must not sit in memory: image bytes are read when needed and dropped after hashing."""
    cfg = task(tmp_path, perspective="quality",
               source={"type": "hub", "path": "hubcopy", "split": "quality", "cache_dir": "hfcache"})
    ref = load_task(cfg).items[1].image1
    assert ref._data is None  # nothing read at load time
    digest = ref.hash
    ref.release()
    assert ref._data is None
    assert ref.load().size == (8, 8) and ref.hash == digest and "row 1 column image1" in ref.origin


def test_hub_2024_bias_layout(tmp_path: Path, hub_repo: Path) -> None:
    cfg = task(tmp_path, kind="bias", perspective="bias",
               source={"type": "hub", "path": "hubcopy", "split": "bias", "cache_dir": "hfcache",
                       "axis_keywords": {"age": ["young", "adult", "old"], "gender": ["female", "male"],
                                         "race": ["black", "white"], "religion": ["christian"]}},
               columns={"image": "image0", "group": "caption", "demographic": "info"})
    result = load_task(cfg)
    assert [it.group for it in result.items] == ["A nurse.", "A nurse.", "A pilot."]
    assert [it.axes for it in result.items] == [["age", "gender", "race"], ["age", "gender", "race"],
                                                ["age", "gender", "religion"]]
    assert len(result.problems) == 1 and "item t-3" in result.problems[0]  # empty demographic


def test_hub_2025_layout_subcategory_filter_and_meta(tmp_path: Path, hub_repo: Path) -> None:
    cfg = task(tmp_path, perspective="composition",
               source={"type": "hub", "path": "hub25", "split": "composition", "cache_dir": "hfcache",
                       "filter": {"category": "Composition"}, "meta_columns": ["model"]},
               subcategory={"column": "subcategory"})
    items = load_task(cfg).items
    assert [it.subcategory for it in items] == ["occlusion", "physics laws", "occlusion"]
    assert [it.meta["model"] for it in items] == ["flux", "gpt-image-1", "flux"]
    assert [it.item_id for it in items] == ["t-0", "t-1", "t-3"]


def test_hub_needs_datasets_and_one_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = task(tmp_path, source={"type": "hub", "repo": "MJ-Bench/MJ-Bench", "split": "alignment"})
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(MjbenchError, match=r"pip install 'mjbench\[hub\]'"):
        load_task(cfg)
    cfg = task(tmp_path, "both", source={"type": "hub", "repo": "a/b", "path": "x"})
    with pytest.raises(ConfigError, match=r"both\.yaml: source: .*exactly one of 'repo'"):
        make_source(cfg)


def test_pair_items_are_pair_items(tmp_path: Path, image_dir: Path) -> None:
    (tmp_path / "d.json").write_text(json.dumps([{"prompt": "a", "image0": str(image_dir / "0.png"),
                                                  "image1": "images/1.png", "label": 1, "item_id": 7},
                                                 {"prompt": "b", "image0": "images/0.png",
                                                  "image1": "images/1.png", "label": 0, "item_id": 7}]))
    result = load_task(task(tmp_path, source={"type": "table", "path": "d.json"}))
    assert len(result.items) == 1 and isinstance(result.items[0], PairItem) and result.items[0].item_id == "7"
    assert "item 7 (" in result.problems[0] and "row 2): duplicate item_id" in result.problems[0]
    assert result.dropped == {"duplicate item_id; the later row is left out": 1}


def test_subcategory_from_an_info_key(tmp_path: Path, image_dir: Path) -> None:
    rows = [{"prompt": "a", "image0": "images/0.png", "image1": "images/1.png", "label": 0,
             "info": json.dumps({"subcategory": "Count", "model": "m"})},
            {"prompt": "b", "image0": "images/0.png", "image1": "images/1.png", "label": 1,
             "info": {"subcategory": "motion"}},
            {"prompt": "c", "image0": "images/0.png", "image1": "images/1.png", "label": 1, "info": "plain text"}]
    (tmp_path / "d.jsonl").write_text("\n".join(map(json.dumps, rows)))
    cfg = task(tmp_path, source={"type": "table", "path": "d.jsonl"},
               subcategory={"info_key": "subcategory", "map": {"Count": "count"}})
    result = load_task(cfg)
    assert [it.subcategory for it in result.items] == ["count", "motion"]
    assert result.items[0].meta["info"] == {"subcategory": "Count", "model": "m"}
    assert len(result.problems) == 1 and "item t-2" in result.problems[0] and "subcategory.default" in result.problems[0]


# --- strict labels, dropped rows, image paths ------------------------------------------------------

def test_csv_coded_0_1_2_drops_and_counts_the_2s(tmp_path: Path, image_dir: Path) -> None:
    # a CSV coded 0/1/2 silently lost every "2" item (a tie) and reported "0 item problems"
    lines = [f"p{i},images/0.png,images/1.png,{code}\n" for i, code in enumerate([0, 1, 2, 2, "2.0"])]
    (tmp_path / "d.csv").write_text("prompt,image0,image1,label\n" + "".join(lines), encoding="utf-8")
    result = load_task(task(tmp_path, source={"type": "table", "path": "d.csv"}))
    assert [it.label for it in result.items] == ["0", "1"]
    assert result.dropped == {"label '2' is not 0, 1 or tie (or both_bad)": 2, "label '2.0' is not 0, 1 or tie (or both_bad)": 1}
    assert len(result.problems) == 3
    assert result.problems[0].endswith(f"item t-2 ({tmp_path / 'd.csv'} row 3): label '2' is not 0, 1 or tie (or both_bad)")
    # the task says what 2 means: every spelling of 2 matches the key "2"
    mapped = load_task(task(tmp_path, "m", source={"type": "table", "path": "d.csv"}, label_map={"2": "tie"}))
    assert [it.label for it in mapped.items] == ["0", "1", "tie", "tie", "tie"]
    assert mapped.problems == [] and mapped.dropped == {}


def test_undocumented_label_spellings_are_item_problems(tmp_path: Path, image_dir: Path) -> None:
    labels = [0.5, "0.5", "equal", "draw", True, "both", 2, "image1", None]
    rows = [{"prompt": "p", "image0": "images/0.png", "image1": "images/1.png", "label": v} for v in labels]
    (tmp_path / "d.jsonl").write_text("\n".join(map(json.dumps, rows)), encoding="utf-8")
    result = load_task(task(tmp_path, source={"type": "table", "path": "d.jsonl"}), limit=1)
    assert [it.item_id for it in result.items] == ["t-7"]
    assert result.dropped == {
        "label 0.5 is not 0, 1 or tie (or both_bad)": 1, "label '0.5' is not 0, 1 or tie (or both_bad)": 1,
        "label 'equal' is not 0, 1 or tie (or both_bad)": 1, "label 'draw' is not 0, 1 or tie (or both_bad)": 1,
        "label True is ambiguous; use 0, 1 or tie (or both_bad)": 1, "label 'both' is not 0, 1 or tie (or both_bad)": 1,
        "label 2 is not 0, 1 or tie (or both_bad)": 1, "no label (column 'label' is empty)": 1,
    }
    assert sum(result.dropped.values()) == len(result.problems) == 8
    assert "row 3): label 'equal'" in result.problems[2]


def test_parquet_label_2_is_an_item_problem(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = _pair_columns(4)
    cols["label"] = [0, 2, 1, 2]
    pq.write_table(pa.table(cols), tmp_path / "q.parquet")
    result = load_task(task(tmp_path, source={"type": "parquet", "path": "q.parquet"}))
    assert [it.label for it in result.items] == ["0", "1"]
    assert result.dropped == {"label 2 is not 0, 1 or tie (or both_bad)": 2}
    assert "q.parquet row 2): label 2 is not 0, 1 or tie (or both_bad)" in result.problems[0]


def test_image_paths_must_stay_in_the_data_folder(tmp_path: Path, image_dir: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.png").write_bytes(png((1, 2, 3)))
    secret = tmp_path / "secret.png"
    secret.write_bytes(png((7, 7, 7)))
    rows = [{"item_id": "ok", "prompt": "p", "image0": "in.png", "image1": "sub/../in.png", "label": 0},
            {"item_id": "up", "prompt": "p", "image0": "in.png", "image1": "../secret.png", "label": 0},
            {"item_id": "abs", "prompt": "p", "image0": str(secret), "image1": "in.png", "label": 0},
            {"item_id": "deep", "prompt": "p", "image0": "in.png", "image1": "../../../../etc/passwd",
             "label": 0},
            {"item_id": "abs-in", "prompt": "p", "image0": str(data / "in.png"), "image1": "in.png",
             "label": 1}]
    (data / "d.jsonl").write_text("\n".join(map(json.dumps, rows)), encoding="utf-8")
    result = load_task(task(tmp_path, source={"type": "table", "path": "data/d.jsonl"}))
    assert [it.item_id for it in result.items] == ["ok", "abs-in"]
    why = "image path outside the data folder (set source.allow_outside_paths: true to allow)"
    assert result.dropped == {why: 3}
    assert "item up (" in result.problems[0] and "image path '../secret.png' leaves" in result.problems[0]
    assert "allow_outside_paths" in result.problems[0]

    allowed = load_task(task(tmp_path, "a", source={"type": "table", "path": "data/d.jsonl",
                                                    "allow_outside_paths": True}))
    assert [it.item_id for it in allowed.items] == ["ok", "up", "abs", "deep", "abs-in"]
    assert allowed.items[1].image1.load().getpixel((0, 0)) == (7, 7, 7)


def test_parquet_path_cells_outside_the_folder_are_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "outside.png").write_bytes(png((5, 5, 5)))
    data = tmp_path / "data"
    data.mkdir()
    cols = _pair_columns(1)
    cols["image1"] = [{"bytes": None, "path": "../outside.png"}]
    pq.write_table(pa.table(cols), data / "q.parquet")
    item = load_task(task(tmp_path, source={"type": "parquet", "path": "data/q.parquet"})).items[0]
    with pytest.raises(ItemError, match=r"image path '\.\./outside\.png' leaves"):
        item.image1.load()
    item = load_task(task(tmp_path, "a", source={"type": "parquet", "path": "data/q.parquet",
                                                 "allow_outside_paths": True})).items[0]
    assert item.image1.load().getpixel((0, 0)) == (5, 5, 5)


def test_label_map_written_with_yaml_numbers(tmp_path: Path, image_dir: Path) -> None:
    """`label_map: {2: tie, 1: 0}` in plain YAML has number keys and values; they match as text."""
    (tmp_path / "d.csv").write_text("prompt,image0,image1,label\np,images/0.png,images/1.png,2\n"
                                    "q,images/0.png,images/1.png,1\n", encoding="utf-8")
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "y.yaml").write_text(
        "name: y\nperspective: alignment\nsource: {type: table, path: ../d.csv}\nlabel_map: {2: tie, 1: 0}\n",
        encoding="utf-8")
    result = load_task(load_task_file(tmp_path / "tasks" / "y.yaml"))
    assert [it.label for it in result.items] == ["tie", "0"] and result.problems == []
