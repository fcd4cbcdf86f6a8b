"""`mjbench label`: candidate sets judged through the runner, juries, policies, filters and the export."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image, ImageFilter

from mjbench.errors import ConfigError
from mjbench.label import LabelSpec, run_label

JUDGES = ["sharpness", "random"]


def _sets(tmp_path: Path, n_sets: int = 6, n_images: int = 3, csv: bool = False) -> Path:
    """Sets of one sharp noise image and blurred copies (more blur = worse), in a shuffled order."""
    rng = random.Random(1)
    (tmp_path / "img").mkdir()
    rows = []
    for s in range(n_sets):
        base = Image.effect_noise((48, 48), 60 + s).convert("RGB")
        names = []
        for k in range(n_images):
            name = f"img/s{s}_{k}.png"
            (base.filter(ImageFilter.GaussianBlur(2 * k)) if k else base).save(tmp_path / name)
            names.append(name)
        rng.shuffle(names)
        rows.append({"prompt": f"noise {s}", "images": names, "group_id": f"g{s % 2}"})
    if csv:
        data = tmp_path / "cands.csv"
        data.write_text("prompt,images,group_id\n" + "".join(
            f"{r['prompt']},{'|'.join(r['images'])},{r['group_id']}\n" for r in rows))
    else:
        data = tmp_path / "cands.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "cands.yaml").write_text(
        f"name: cands\nkind: candidates\nperspective: quality\nsource: {{type: table, path: {data.name}}}\n")
    return tmp_path / "cands.yaml"


def _label(task: Path, out: Path, **kw: object) -> tuple[object, pd.DataFrame]:
    result = run_label(LabelSpec(tasks=[str(task)], judges=kw.pop("judges", JUDGES), out=out, quiet=True,
                                 **kw))  # type: ignore[arg-type]
    return result, pd.read_parquet(out / "preferences.parquet")


def test_label_export_schema_determinism_and_resume(tmp_path: Path) -> None:
    task = _sets(tmp_path)
    result, df = _label(task, tmp_path / "out")
    assert result.computed == 6 * 3 * 2 and result.reused == 0  # each image scored once per judge
    assert len(df) == 6 and result.kept == 6
    for col in ("prompt", "chosen", "rejected", "images", "chosen_hash", "rejected_hash", "chosen_score",
                "rejected_score", "margin", "agreement", "chosen_score__sharpness", "rejected_score__random",
                "judges", "judge_identities", "revision", "group_id"):
        assert col in df.columns, col
    assert (df.margin > 0).all() and (df.chosen_score - df.rejected_score == df.margin).all()
    assert all(list(i) == [c, r] for i, c, r in zip(df.images, df.chosen, df.rejected, strict=True))
    assert all(Path(p).is_file() for p in df.chosen)
    assert list(df.judges[0]) == ["random", "sharpness"]
    jsonl = pd.read_json(tmp_path / "out" / "preferences.jsonl", lines=True)
    assert jsonl.chosen_hash.tolist() == df.chosen_hash.tolist()
    md = (tmp_path / "out" / "preferences.md").read_text()
    assert "| kept | 6 |" in md and "margin" in md
    info = json.loads((tmp_path / "out" / "run.json").read_text())
    assert info["command"] == "label" and info["label"]["kept"] == 6

    again, df2 = _label(task, tmp_path / "out")  # resume: everything from the store, same export
    assert again.computed == 0 and again.reused == 36
    pd.testing.assert_frame_equal(df, df2)
    _, df3 = _label(task, tmp_path / "other")  # a fresh store: the same data again
    pd.testing.assert_frame_equal(df.drop(columns=[]), df3)

    import datasets

    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "out" / "preferences.parquet"),
                               split="train")
    assert ds.num_rows == 6 and {"prompt", "chosen", "rejected", "images"} <= set(ds.column_names)
    ds = ds.cast_column("chosen", datasets.Image())
    assert ds[0]["chosen"].size == (48, 48)


def test_sharpness_prefers_the_sharp_image_and_policies(tmp_path: Path) -> None:
    task = _sets(tmp_path, csv=True)  # CSV: images `|`-joined
    _, df = _label(task, tmp_path / "a", judges=["sharpness"])
    assert df.chosen.str.endswith("_0.png").all() and df.rejected.str.endswith("_2.png").all()
    _, each = _label(task, tmp_path / "b", judges=["sharpness"], policy="best-vs-each", store=tmp_path / "a" /
                     "store.sqlite")
    assert len(each) == 12 and each.chosen.str.endswith("_0.png").all()
    result, pairs = _label(task, tmp_path / "c", judges=["sharpness"], policy="all-pairs", jury="borda")
    assert len(pairs) == 18 and result.computed == 18
    for jury in ("vote", "borda"):
        result, df = _label(task, tmp_path / f"j-{jury}", jury=jury, store=tmp_path / "a" / "store.sqlite")
        # two judges can tie a set (one vote each way): such a set gives no pair, counted as a tie
        assert result.kept + result.dropped["tie"] == 6 and df.agreement.between(0.5, 1).all()


def test_filters_count_what_they_drop(tmp_path: Path) -> None:
    task = _sets(tmp_path)
    result, df = _label(task, tmp_path / "out", policy="all-pairs", min_agreement=1.0)
    assert (df.agreement == 1.0).all()
    assert result.kept + result.dropped["min_agreement"] == 18 and result.dropped["min_agreement"] > 0
    md = (tmp_path / "out" / "preferences.md").read_text()
    assert f"| dropped: min_agreement | {result.dropped['min_agreement']} |" in md
    result, df = _label(task, tmp_path / "m", policy="all-pairs", min_margin=1.0, min_chosen_score=0.0)
    assert (df.margin >= 1.0).all() and (df.chosen_score >= 0).all()
    assert result.kept + sum(result.dropped.values()) == 18 and result.dropped["min_margin"] > 0


def test_label_refuses_pair_tasks_and_bad_options(tmp_path: Path) -> None:
    task = _sets(tmp_path)
    with pytest.raises(ConfigError, match="--policy"):
        _label(task, tmp_path / "o", policy="best")
    with pytest.raises(ConfigError, match="needs `kind: candidates`"):
        run_label(LabelSpec(tasks=["synthetic-alignment"], judges=["random"], out=tmp_path / "p", quiet=True))
    (tmp_path / "bad.jsonl").write_text(json.dumps({"prompt": "x", "images": ["img/s0_0.png"]}) + "\n")
    (tmp_path / "bad.yaml").write_text("name: bad\nkind: candidates\nperspective: quality\n"
                                       "source: {type: table, path: bad.jsonl}\n")
    from mjbench.catalog import Catalog
    from mjbench.sources import load_task

    loaded = load_task(Catalog([]).expand_tasks([str(tmp_path / "bad.yaml")])[0])
    assert loaded.items == [] and loaded.dropped == {"fewer than two images": 1}


def test_real_quality_pairs_as_candidates(tmp_path: Path, shared_data: Path) -> None:
    """MJ-Bench quality pairs (clean photo vs its distorted copy) given without labels: the offline jury
    must choose the clean photo in the large majority of sets (measured on all 200: mean 87 %, vote and
    borda 93.5 %; sharpness alone 100 %, brisque 90 %, random 48 %). Also on these real images: the schema,
    the report, resume (everything reused, the same bytes) and a filter."""
    root = shared_data / "mjbench-quality"
    rows = []
    for captions, folder in [("human/captions_human.json", "human/examples_human"),
                             ("objects_indoor/captions_objects.json", "objects_indoor/examples_objects_indoor")]:
        for k, r in enumerate(json.loads((root / captions).read_text())[:10]):
            images = [f"{folder}/{r['image_0']}", f"{folder}/{r['image_1']}"]
            rows.append({"prompt": r["caption"], "images": images[::-1] if k % 2 else images})
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "c.yaml").write_text("name: real\nkind: candidates\nperspective: quality\n"
                                     f"source: {{type: table, path: c.jsonl, image_root: {root}}}\n")
    judges = ["sharpness", "brisque", "random"]
    out = tmp_path / "out"
    result, df = _label(tmp_path / "c.yaml", out, judges=judges, jury="vote")
    assert result.kept == len(df) == 20
    assert result.computed == 20 * 2 * 3 and result.reused == 0 and not result.failures
    clean = (~df.chosen.str.contains("edited")).mean()
    assert clean >= 0.8, clean
    # schema on real images
    for col in ("prompt", "chosen", "rejected", "images", "chosen_hash", "rejected_hash", "chosen_score",
                "rejected_score", "margin", "agreement", "n_voters", "chosen_score__brisque",
                "rejected_score__sharpness", "chosen_score__random", "judges", "judge_identities", "jury", "policy",
                "revision", "task", "set_id"):
        assert col in df.columns, col
    assert (df.jury == "vote").all() and (df.n_voters == 3).all() and df.agreement.between(0.5, 1).all()
    assert all(Path(p).is_file() for p in df.chosen) and all(Path(p).is_file() for p in df.rejected)
    assert sorted(set(df.prompt)) == sorted({r["prompt"] for r in rows})
    html = (out / "preferences.html").read_text()
    assert '<b id="kept">20</b>' in html and html.count('<div class="card">') == 16
    files = {n: (out / n).read_bytes() for n in ("preferences.parquet", "preferences.html", "preferences.md")}

    # resume: the same command again reuses every answer and writes the same bytes
    again, _ = _label(tmp_path / "c.yaml", out, judges=judges, jury="vote")
    assert again.computed == 0 and again.reused == result.computed
    assert all((out / n).read_bytes() == b for n, b in files.items())

    # other juries and a filter from the same store: nothing judged again
    borda, bdf = _label(tmp_path / "c.yaml", tmp_path / "borda", judges=judges, jury="borda",
                        store=out / "store.sqlite")
    assert borda.computed == 0 and (~bdf.chosen.str.contains("edited")).mean() >= 0.8
    strict, sdf = _label(tmp_path / "c.yaml", tmp_path / "strict", judges=judges, jury="vote", min_agreement=1.0,
                         store=out / "store.sqlite")
    assert strict.computed == 0 and (sdf.agreement == 1.0).all()
    assert strict.kept + strict.dropped["min_agreement"] == 20 and strict.dropped["min_agreement"] > 0
    assert set(sdf.chosen_hash) <= set(df.chosen_hash)


def test_run_refuses_unlabelled_candidates(tmp_path: Path) -> None:
    """A candidates task has no gold label: `mjbench run` says to label it instead of reporting nothing."""
    from mjbench.runner import RunSpec, run_benchmark

    task = _sets(tmp_path)
    with pytest.raises(ConfigError, match=r"task cands holds unlabelled candidates.*mjbench label"):
        run_benchmark(RunSpec(tasks=[str(task)], judges=["random"], out=tmp_path / "r", quiet=True))
    assert not (tmp_path / "r" / "records.jsonl").exists()


def test_a_candidate_filter_that_matches_no_row_is_an_error_as_for_every_tabular_task(tmp_path: Path) -> None:
    from mjbench.config import load_task_file
    from mjbench.errors import DataError
    from mjbench.sources import load_task

    _sets(tmp_path)
    (tmp_path / "filtered.yaml").write_text(
        "name: filtered\nkind: candidates\nperspective: quality\n"
        "source: {type: table, path: cands.jsonl, filter: {group_id: g9}}\n")
    with pytest.raises(DataError, match=r"source.filter: no row of .*cands.jsonl has group_id='g9'; values there: "
                                        r"group_id: g0, g1"):
        load_task(load_task_file(tmp_path / "filtered.yaml"))
