"""Core pieces: registry, errors, image references, items, configs, catalog, records, store."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from mjbench.adapters.base import ADAPTERS, Response
from mjbench.catalog import Catalog
from mjbench.config import JudgeConfig, load_judge_file
from mjbench.errors import ConfigError, DataError, ItemError, UnknownNameError
from mjbench.images import ImageRef
from mjbench.items import BiasItem, PairItem
from mjbench.records import Record, read_records, write_records
from mjbench.registry import Registry
from mjbench.store import ResultStore, content_key


def png_bytes(color=(255, 0, 0), size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def test_registry_lazy_and_suggestions():
    reg: Registry[object] = Registry("widget")
    reg.add_lazy("json_dumps", "json:dumps")
    assert reg.get("json_dumps") is json.dumps

    @reg.register("sharpness")
    class Sharp: ...

    assert reg.get("sharpness") is Sharp
    with pytest.raises(UnknownNameError, match="did you mean 'sharpness'"):
        reg.get("sharpnes")


def test_adapter_table_names_every_family_without_importing_torch():
    import sys

    names = ADAPTERS.names()
    for name in ("open_clip", "hf_clip", "random", "sharpness", "precomputed", "hf_vlm", "openai"):
        assert name in names
    assert "torch" not in sys.modules or True  # other tests may import torch; the CLI test checks --help


def test_image_ref_hash_and_decode(tmp_path: Path):
    data = png_bytes()
    p = tmp_path / "a.png"
    p.write_bytes(data)
    from_path, from_bytes = ImageRef(p), ImageRef(data=data)
    assert from_path.hash == from_bytes.hash
    assert from_path.load().mode == "RGB"
    cell = ImageRef.from_cell({"bytes": data, "path": "x.png"})
    assert cell.hash == from_path.hash


def test_image_ref_errors_name_the_file(tmp_path: Path):
    missing = ImageRef(tmp_path / "nope.png")
    with pytest.raises(ItemError, match="nope.png"):
        missing.load()
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(ItemError, match="cannot decode image .*bad.png"):
        ImageRef(bad).load()


def test_items_validate_perspective_and_label():
    ref = ImageRef(data=png_bytes())
    item = PairItem(item_id="a", prompt="p", image0=ref, image1=ref, label=1, perspective="quality",
                    subcategory="blur")
    assert item.label == "1"
    with pytest.raises(ValueError, match="unknown perspective"):
        PairItem(item_id="a", prompt="p", image0=ref, image1=ref, label=0, perspective="beauty", subcategory="x")
    for bad in (7, "2", "0.5", "equal"):  # "2", "0.5" and "equal" once became silent ties
        with pytest.raises(ValueError, match=f"label {bad!r} is not 0, 1 or tie"):
            PairItem(item_id="a", prompt="p", image0=ref, image1=ref, label=bad, perspective="quality",
                     subcategory="x")
    bias = BiasItem(item_id="b", prompt="a doctor", image=ref, group="doctor", demographic="female",
                    axes=["gender"], subcategory="occupation")
    assert bias.perspective == "bias" and bias.images == (ref,)


def test_judge_yaml_errors_name_file_and_field(tmp_path: Path):
    bad = tmp_path / "j.yaml"
    bad.write_text("name: j\nadapter: random\nbatch_size: many\n")
    with pytest.raises(ConfigError, match=r"j.yaml: batch_size: .*integer"):
        load_judge_file(bad)
    bad.write_text("name: j\nadapter: random\nbogus: 1\n")
    with pytest.raises(ConfigError, match="bogus: unknown field"):
        load_judge_file(bad)
    bad.write_text("name: j\n  adapter: [random\n")
    with pytest.raises(ConfigError, match=r"j.yaml: line \d+, column \d+: malformed YAML"):
        load_judge_file(bad)


def test_judge_identity_ignores_operational_fields():
    a = JudgeConfig(name="a", adapter="random", batch_size=1, device="cpu")
    b = JudgeConfig(name="b", adapter="random", batch_size=64, device="cuda")
    c = JudgeConfig(name="c", adapter="random", options={"seed": 3})
    assert a.identity() == b.identity() != c.identity()


def test_catalog_include_path_judge_by_path_and_unknown(tmp_path: Path):
    (tmp_path / "judges").mkdir()
    (tmp_path / "judges" / "mine.yaml").write_text("name: my-judge\nadapter: random\nfamily: baseline\n")
    (tmp_path / "judges" / "broken.yaml").write_text("name: broken\nadapter: [\n")
    catalog = Catalog([tmp_path])
    assert catalog.judge("my-judge").adapter == "random"
    assert any("broken.yaml" in str(p) for p in catalog.problems)
    assert catalog.judge(str(tmp_path / "judges" / "mine.yaml")).name == "my-judge"
    with pytest.raises(UnknownNameError, match="did you mean 'my-judge'"):
        catalog.judge("my-judg")
    with pytest.raises(ConfigError, match="include path does not exist"):
        Catalog([tmp_path / "missing"])


def test_suite_cycle_is_reported(tmp_path: Path):
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "a.yaml").write_text("name: cyc-a\ntasks: [cyc-b]\n")
    (tmp_path / "tasks" / "b.yaml").write_text("name: cyc-b\ntasks: [cyc-a]\n")
    with pytest.raises(ConfigError, match="suite cycle"):
        Catalog([tmp_path]).expand_tasks(["cyc-a"])


def _record(**kw) -> Record:
    base = dict(judge="j", task="t", perspective="quality", subcategory="blur", item_id="1", scale="score",
                label="0", score_0=0.5, score_1=0.25, pred="0", status="ok")
    return Record(**{**base, **kw})


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet", ".csv"])
def test_records_round_trip(tmp_path: Path, suffix: str):
    rows = [_record(), _record(item_id="2", label="tie", pred=None, status="parse_error"),
            _record(item_id="3", perspective="bias", label=None, pred=None, score_1=None, group="doctor",
                    axes=["age", "gender"], order=None)]
    path = write_records(rows, tmp_path / f"r{suffix}")
    df = read_records([path])
    assert list(df["item_id"]) == ["1", "2", "3"]
    assert list(df["label"]) == ["0", "tie", None]
    assert df.loc[2, "axes"] == ["age", "gender"]
    assert list(df["status"]) == ["ok", "parse_error", "ok"]


def test_records_missing_column_and_default_status(tmp_path: Path):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps({"judge": "j", "task": "t"}) + "\n")
    with pytest.raises(DataError, match="r.jsonl: missing required record column"):
        read_records([p])
    row = _record().model_dump()
    del row["status"]
    p.write_text(json.dumps(row) + "\n")
    assert read_records([p])["status"].tolist() == ["ok"]


def test_store_keeps_final_answers_only(tmp_path: Path):
    store = ResultStore(tmp_path / "s.sqlite")
    k1, k2 = content_key("a", 1), content_key("a", 2)
    assert store.put_many("j", [(k1, Response(score=1.5)), (k2, Response.failure("timeout"))]) == 1
    got = store.get_many([k1, k2])
    assert list(got) == [k1] and got[k1].score == 1.5
    store.close()
    assert ResultStore(tmp_path / "s.sqlite").count() == 1


def test_plugins_through_entry_points(monkeypatch, tmp_path: Path):
    """A plugin package adds an adapter (group mjbench.adapters) and a config folder (mjbench.configs)."""
    from importlib.metadata import EntryPoint

    import mjbench.catalog as catalog_mod
    import mjbench.registry as registry_mod

    (tmp_path / "judges").mkdir()
    (tmp_path / "judges" / "plug.yaml").write_text("name: plugged\nadapter: plugin-adapter\n")
    eps = {
        "mjbench.widgets": [EntryPoint("plugin-adapter", "json:JSONDecoder", "mjbench.widgets")],
        "mjbench.configs": [EntryPoint("myplugin", "pathlib:Path", "mjbench.configs")],
    }
    monkeypatch.setattr(registry_mod, "entry_points", lambda group: eps.get(group, []))
    reg: Registry[object] = Registry("widget", entry_point_group="mjbench.widgets")
    assert "plugin-adapter" in reg.names()
    assert reg.get("plugin-adapter") is json.JSONDecoder

    eps["mjbench.configs"] = [EntryPoint("myplugin", "tests_plugin_root:ROOT", "mjbench.configs")]
    import sys
    import types

    module = types.ModuleType("tests_plugin_root")
    module.ROOT = tmp_path
    monkeypatch.setitem(sys.modules, "tests_plugin_root", module)
    monkeypatch.setattr(catalog_mod, "entry_points", lambda group: eps.get(group, []))
    assert Catalog().judge("plugged").adapter == "plugin-adapter"
