"""The precomputed judge: scores or verdicts from JSONL, CSV or Parquet, keyed by item id."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mjbench.adapters.base import PairRequest, ScoreRequest, create_judge
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError, DataError
from mjbench.images import ImageRef

IMG = ImageRef(data=b"unused: a precomputed judge never reads pixels", origin="x.png")


def judge(mode: str = "single", path=None, **options):
    options = {"path": str(path), **options}
    return create_judge(JudgeConfig(name="pre", adapter="precomputed", mode=mode, options=options))


def sreq(item: str, index: int | None, task: str = "t", scale: str = "score") -> ScoreRequest:
    return ScoreRequest(image=IMG, prompt="p", scale=scale, perspective="quality", task=task, item_id=item,
                        image_index=index)


def preq(item: str, order: str = "01") -> PairRequest:
    return PairRequest(images=(IMG, IMG), prompt="p", scale="score", perspective="quality", order=order,
                       task="t", item_id=item)


def write(df: pd.DataFrame, path) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in df.to_dict("records")))
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)


LONG = pd.DataFrame({"item_id": ["a", "a", "b", "007"], "image_index": [0, 1, 0, 0], "score": [0.5, 0.25, 2.0, 3.0]})


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_long_layout_in_every_format(tmp_path, suffix):
    path = tmp_path / f"scores{suffix}"
    write(LONG, path)
    j = judge(path=path)
    assert j.check_available(j.config) is None
    out = j.score([sreq("a", 0), sreq("a", 1), sreq("b", 0), sreq("007", None), sreq("b", 1), sreq("zzz", 0)])
    assert [r.score for r in out[:4]] == [0.5, 0.25, 2.0, 3.0]  # "007" stays a string id; None means image 0
    assert out[4].status == out[5].status == "error"
    assert out[4].error == f"no precomputed score for item b image 1 in {path}"
    assert out[5].error == f"no precomputed score for item zzz image 0 in {path}"


def test_wide_layout_with_filters_and_custom_columns(tmp_path):
    # an mjbench records file holding two judges: pick one of them
    rows = pd.DataFrame({
        "judge": ["pickscore-v1", "pickscore-v1", "clip-v1"], "id": ["a", "b", "a"],
        "s0": [1.0, 5.0, 9.0], "s1": [2.0, None, 9.5],
    })
    path = tmp_path / "records.parquet"
    write(rows, path)
    j = judge(path=path, item_column="id", score_columns=["s0", "s1"], filters={"judge": "pickscore-v1"})
    out = j.score([sreq("a", 0), sreq("a", 1), sreq("b", 0), sreq("b", 1)])
    assert [r.score for r in out[:3]] == [1.0, 2.0, 5.0]
    assert out[3].status == "error" and "item b image 1" in out[3].error


def test_task_and_scale_columns_join_the_key(tmp_path):
    rows = pd.DataFrame({"task": ["t", "u"], "scale": ["score", "score"], "item_id": ["a", "a"],
                         "image_index": [0, 0], "score": [1.0, 2.0]})
    path = tmp_path / "scores.csv"
    write(rows, path)
    with pytest.raises(DataError, match="item a image 0 has two different values"):
        judge(path=path).setup()
    j = judge(path=path, task_column="task", scale_column="scale")
    out = j.score([sreq("a", 0, task="u"), sreq("a", 0, task="v")])
    assert out[0].score == 2.0
    assert out[1].error == f"no precomputed score for item a image 0 (task v, scale score) in {path}"


def test_pair_mode_maps_verdicts_to_the_shown_order(tmp_path):
    rows = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "verdict": ["0", "image1", "tie", "maybe"]})
    path = tmp_path / "verdicts.jsonl"
    write(rows, path)
    j = judge("pair", path=path)
    out = j.compare([preq("a"), preq("a", "10"), preq("b", "10"), preq("c", "10"), preq("d"), preq("e")])
    assert [r.verdict for r in out[:4]] == ["0", "1", "0", "tie"]
    assert out[4].status == "error" and "maybe" in out[4].error
    assert out[5].error == f"no precomputed verdict for item e in {path}"


def test_pair_mode_with_scores_only(tmp_path):
    path = tmp_path / "scores.csv"
    write(pd.DataFrame({"item_id": ["a"], "score_0": [0.1], "score_1": [0.9]}), path)
    out = judge("pair", path=path).compare([preq("a"), preq("a", "10")])
    assert out[0].scores == (0.1, 0.9) and out[0].verdict is None
    assert out[1].scores == (0.9, 0.1)


def test_file_and_column_problems_are_named(tmp_path):
    gone = tmp_path / "gone.jsonl"
    j = judge(path=gone)
    assert str(gone) in j.check_available(j.config)
    with pytest.raises(DataError, match="file not found"):
        j.setup()
    path = tmp_path / "scores.csv"
    write(pd.DataFrame({"item": ["a"], "value": [1.0]}), path)
    with pytest.raises(DataError, match=r"no column 'item_id' \(options.item_column\)"):
        judge(path=path).setup()
    with pytest.raises(DataError, match="needs columns"):
        judge(path=path, item_column="item").setup()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"item_id": "a", "image_index": 0, "score": 1}\n{oops\n')
    with pytest.raises(DataError, match=r"bad\.jsonl: line 2: not valid JSON"):
        judge(path=bad).setup()
    with pytest.raises(ConfigError, match=r"options\.path: Field required"):
        create_judge(JudgeConfig(name="pre", adapter="precomputed", options={}))


def test_identity_follows_the_file_content(tmp_path):
    path = tmp_path / "scores.csv"
    write(LONG, path)
    before = judge(path=path).identity()
    write(LONG.assign(score=LONG.score + 1), path)
    after = judge(path=path).identity()
    assert before["file_sha256"] != after["file_sha256"]
    assert judge(path=path).capabilities.keyed_by_item


def test_undocumented_verdicts_are_errors_not_ties(tmp_path):
    # "2", "0.5" and "equal" used to become silent ties
    rows = pd.DataFrame({"item_id": ["a", "b", "c", "d"], "verdict": ["2", "0.5", "equal", "image_0"]})
    path = tmp_path / "verdicts.jsonl"
    write(rows, path)
    out = judge("pair", path=path).compare([preq("a"), preq("b"), preq("c"), preq("d")])
    assert [r.status for r in out] == ["error", "error", "error", "ok"]
    assert out[0].error == f"{path}: item a: verdict '2' is not 0, 1 or tie (or both_bad)"
    assert "verdict 'equal'" in out[2].error and out[3].verdict == "0"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_scores_are_read_exactly(tmp_path, suffix):
    import random

    rng = random.Random(3)
    values = [rng.random() * 10 ** rng.randint(-6, 6) for _ in range(300)]
    path = tmp_path / f"scores{suffix}"
    write(pd.DataFrame({"item_id": [f"i{k}" for k in range(300)], "image_index": 0, "score": values}), path)
    out = judge(path=path).score([sreq(f"i{k}", 0) for k in range(300)])
    assert [r.score for r in out] == values  # pandas 2's default CSV parser changed some last digits


# MJ-Bench's own result files (get_rm_score*.py): a JSON list of objects, no item id, images as paths
MJBENCH_RESULT = [
    {"caption": "a red apple", "image0": "images/0_0.png", "image1": "images/0_1.png", "label": "0",
     "score_0": 0.7125, "score_1": 0.2, "pred": "0"},
    {"caption": "two cats", "image0": "images/1_0.png", "image1": "images/1_1.png", "label": "1",
     "score_0": 0.1, "score_1": 0.9000000000000001, "pred": "1"},
    {"caption": "a blue car", "image0": "images/2_0.png", "image1": "images/2_1.png", "label": "0",
     "score_0": 0.5, "score_1": 0.5, "pred": "tie"},
]


def test_mjbench_result_json_files(tmp_path):
    path = tmp_path / "clipscore_v1_alignment.json"
    path.write_text(json.dumps(MJBENCH_RESULT, indent=4))
    # single mode: the wide scores, row k answering item t-k (how sources name rows without an id)
    single = judge(path=path, row_ids="t-")
    out = single.score([sreq("t-0", 0), sreq("t-0", 1), sreq("t-1", 1), sreq("t-2", 0), sreq("t-3", 0)])
    assert [r.score for r in out[:4]] == [0.7125, 0.2, 0.9000000000000001, 0.5]  # exact, as json reads them
    assert out[4].error == f"no precomputed score for item t-3 image 0 in {path}"
    # pair mode: MJ-Bench's `pred` as the verdict, mapped to the order shown
    pair = judge("pair", path=path, row_ids="t-", verdict_column="pred")
    out = pair.compare([preq("t-0"), preq("t-1", "10"), preq("t-2", "10")])
    assert [r.verdict for r in out] == ["0", "0", "tie"] and out[1].scores == (0.9000000000000001, 0.1)
    # format set explicitly for another suffix; not a list of objects; an id column and row_ids at once
    other = tmp_path / "results.txt"
    other.write_text(json.dumps(MJBENCH_RESULT))
    assert judge(path=other, format="json", row_ids="t-").score([sreq("t-1", 0)])[0].score == 0.1
    (tmp_path / "obj.json").write_text(json.dumps({"results": MJBENCH_RESULT}))
    with pytest.raises(DataError, match=r"obj\.json: expected a JSON list of objects"):
        judge(path=tmp_path / "obj.json").setup()
    (tmp_path / "ids.json").write_text(json.dumps([{"item_id": "x", "score_0": 1, "score_1": 2}]))
    with pytest.raises(DataError, match=r"ids\.json: has a column 'item_id': use it"):
        judge(path=tmp_path / "ids.json", row_ids="t-").setup()


def test_both_bad_verdicts_and_no_pixels(tmp_path):
    path = tmp_path / "verdicts.jsonl"
    write(pd.DataFrame({"item_id": ["a"], "verdict": ["both_bad"]}), path)
    out = judge("pair", path=path).compare([preq("a"), preq("a", "10")])
    assert [r.verdict for r in out] == ["both_bad", "both_bad"]  # no image to swap: the same in both orders
    assert judge(path=path).capabilities.needs_pixels is False
