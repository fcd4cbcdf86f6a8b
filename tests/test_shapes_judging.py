"""Judging the item shapes beyond image pairs: caption pairs (one image, two texts), groups of N candidates
(single mode: each candidate rated once; pair mode: every pair, win share), and per-aspect requests."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest
from PIL import Image

from mjbench.adapters.base import ADAPTERS, Capabilities, Judge, create_judge
from mjbench.config import JudgeConfig
from mjbench.errors import ConfigError
from mjbench.images import ImageRef
from mjbench.items import CaptionPairItem, GroupItem, PairItem
from mjbench.prompts import PromptBook, aspects, criteria
from mjbench.responses import PairRequest, Response, ScoreRequest
from mjbench.runner import RunSpec, _plan_judge, run_benchmark
from mjbench.sources.base import SOURCES, LoadResult, Source, SourceOptions

SEEN: list[ScoreRequest | PairRequest] = []


def _ref(level: int) -> ImageRef:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (level, level, level)).save(buf, format="PNG")
    return ImageRef(data=buf.getvalue())


@ADAPTERS.register("test-text-length")
class TextLengthJudge(Judge):
    """Rates a text by its length (longer = better); in pair mode prefers the longer text. Image pairs: the
    brighter image."""

    capabilities = Capabilities(modes=("single", "pair"), uses_perspective=True)

    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        SEEN.extend(requests)
        return [Response(score=float(len(r.prompt)) if r.rates == "text" else float(r.image.load().getpixel((0, 0))[0]))
                for r in requests]

    def compare(self, requests: Sequence[PairRequest]) -> list[Response]:
        SEEN.extend(requests)
        out = []
        for r in requests:
            a, b = (len(t) for t in r.texts) if r.texts else (float(i.load().getpixel((0, 0))[0]) for i in r.images)
            out.append(Response(verdict="0" if a > b else "1" if b > a else "tie"))
        return out


class ShapesOptions(SourceOptions):
    shape: str = "caption_pair"


@SOURCES.register("test-shapes")
class ShapesSource(Source):
    Options = ShapesOptions

    def load(self) -> LoadResult:
        opts = ShapesOptions.model_validate(self.task.source)
        common = dict(task=self.task.name, perspective="humor", subcategory="c1")
        cartoon = _ref(100)
        if opts.shape == "caption_pair":
            return LoadResult([
                CaptionPairItem(item_id="p0", image=cartoon, text0="a long funny caption", text1="meh", label="0",
                                label_prob=0.7, **common),
                CaptionPairItem(item_id="p1", image=cartoon, text0="short", text1="a much longer caption", label="0",
                                **common),
            ])
        return LoadResult([GroupItem(item_id="g0", image=cartoon, candidate_texts=["a", "bbb", "cc"],
                                     candidate_ids=["x", "y", "z"], gold_scores=[1.0, 3.0, 2.0], gold_best=[1],
                                     **common)])

    def count(self) -> int:
        return 2


@pytest.fixture
def workspace(tmp_path):
    SEEN.clear()
    (tmp_path / "tasks").mkdir()
    (tmp_path / "judges").mkdir()
    (tmp_path / "tasks" / "cap.yaml").write_text("name: cap\nperspective: humor\nsource: {type: test-shapes}\n")
    (tmp_path / "tasks" / "grp.yaml").write_text(
        "name: grp\nperspective: humor\nsource: {type: test-shapes, shape: group}\n")
    (tmp_path / "judges" / "len.yaml").write_text("name: len\nadapter: test-text-length\n")
    (tmp_path / "judges" / "len-pair.yaml").write_text("name: len-pair\nadapter: test-text-length\nmode: pair\n")
    return tmp_path


def _run(ws, tasks, judges, **kw):
    return run_benchmark(RunSpec(tasks=tasks, judges=judges, out=ws / "out", include_paths=[ws], quiet=True, **kw))


def test_caption_pairs_rate_each_text_for_the_one_image(workspace):
    result = _run(workspace, ["cap"], ["len"])
    rows = result.records.set_index("item_id")
    assert rows.loc["p0", "pred"] == "0" and rows.loc["p1", "pred"] == "1"
    assert rows.loc["p0", "text0"] == "a long funny caption" and rows.loc["p0", "text1"] == "meh"
    assert rows.loc["p0", "score_0"] == len("a long funny caption") and rows.loc["p0", "label_prob"] == 0.7
    assert {r.rates for r in SEEN} == {"text"} and len(SEEN) == 4
    acc = result.metrics.metrics
    row = acc[(acc.metric == "acc_with_tie") & (acc.subcategory == "ALL") & (acc.judge == "len")]
    assert row.value.iloc[0] == pytest.approx(0.5)
    page = (result.out_dir / "reports" / "humor.html").read_text()  # the failure gallery shows the texts
    assert "text0: short" in page and "text1: a much longer caption" in page and "figcaption>image<" in page


def test_caption_pairs_in_pair_mode_show_both_orders(workspace):
    result = _run(workspace, ["cap"], ["len-pair"])
    assert len(SEEN) == 4 and all(r.texts is not None for r in SEEN)
    shown = {(r.item_id, r.order): r.texts for r in SEEN}
    assert shown[("p0", "01")] == ("a long funny caption", "meh")
    assert shown[("p0", "10")] == ("meh", "a long funny caption")
    preds = result.records.groupby("item_id").pred.agg(set)
    assert preds["p0"] == {"0"} and preds["p1"] == {"1"}  # mapped back in both orders


def test_group_in_single_mode_rates_each_candidate_once(workspace):
    result = _run(workspace, ["grp"], ["len"])
    assert len(SEEN) == 3  # N requests for N candidates, never one per pair
    rows = result.records.set_index("candidate")
    assert list(rows.index) == ["x", "y", "z"]
    assert rows.loc["y", "score_0"] == 3.0 and rows.loc["y", "gold_score"] == 3.0
    assert rows.loc["y", "gold_best"] == True and rows.loc["x", "gold_best"] == False  # noqa: E712
    assert rows.loc["z", "text0"] == "cc"
    assert rows.label.isna().all() and rows.pred.isna().all()


def test_group_in_pair_mode_scores_each_candidate_by_its_win_share(workspace):
    result = _run(workspace, ["grp"], ["len-pair"])
    assert len(SEEN) == 6  # 3 pairs x 2 orders
    scores = result.records.set_index("candidate").score_0
    # lengths a=1, bbb=3, cc=2: bbb wins all 4 of its comparisons, cc 2 of 4, a none
    assert scores.to_dict() == {"x": 0.0, "y": 1.0, "z": 0.5}


def test_aspects_ask_text_judges_once_per_aspect_and_name_the_records(workspace):
    result = _run(workspace, ["cap"], ["len"], aspects=("aesthetic", "fidelity"))
    assert len(SEEN) == 8
    assert {r.aspect for r in SEEN} == {"aesthetic", "fidelity"}
    assert set(result.records.judge) == {"len:aesthetic", "len:fidelity"}


def test_a_task_declares_its_default_aspects_and_the_command_overrides_them(workspace):
    (workspace / "tasks" / "cap.yaml").write_text(
        "name: cap\nperspective: humor\naspects: [harmlessness]\nsource: {type: test-shapes}\n")
    result = _run(workspace, ["cap"], ["len"])
    assert set(result.records.judge) == {"len:harmlessness"}
    SEEN.clear()
    result = run_benchmark(RunSpec(tasks=["cap"], judges=["len"], out=workspace / "out2", include_paths=[workspace],
                                   quiet=True, aspects=("fidelity",)))
    assert set(result.records.judge) == {"len:fidelity"} and {r.aspect for r in SEEN} == {"fidelity"}
    (workspace / "tasks" / "cap.yaml").write_text(
        "name: cap\nperspective: humor\naspects: [beauty]\nsource: {type: test-shapes}\n")
    with pytest.raises(ConfigError, match="aspects.*unknown aspect 'beauty'"):
        _run(workspace, ["cap"], ["len"])


def test_aspects_leave_judges_without_prompt_text_alone(workspace):
    judge = create_judge(JudgeConfig(name="sharp", adapter="sharpness"))
    item = PairItem(item_id="i", prompt="a cat", task="t", perspective="quality", subcategory="s",
                    image0=_ref(10), image1=_ref(20), label="0")
    plain, _ = _plan_judge(judge, "id", {"t": [item]}, ["score"])
    with_aspects, planned = _plan_judge(judge, "id", {"t": [item]}, ["score"], aspects=("aesthetic",))
    assert set(plain) == set(with_aspects) and planned[0].aspect is None


def test_unknown_aspect_is_a_config_error(workspace):
    with pytest.raises(ConfigError, match="unknown aspect 'beauty'; known aspects: aesthetic, fidelity"):
        _run(workspace, ["cap"], ["len"], aspects=("beauty",))
    assert aspects() == ["aesthetic", "fidelity", "harmlessness", "prompt_following"]


def _vlm() -> JudgeConfig:
    return JudgeConfig(name="vlm", adapter="openai", model="m", base_url="http://127.0.0.1:9", scales=["1-10"])


def test_caption_prompts_show_one_image_and_the_texts():
    book = PromptBook(_vlm())
    cartoon = _ref(5)
    images, text, mode = book.for_request(PairRequest(
        images=(cartoon, cartoon), prompt="", scale="1-10", perspective="humor", texts=("Tell the boss", "I quit")))
    assert images == [cartoon] and mode == "pair"
    assert 'Text A: "Tell the boss"' in text and 'Text B: "I quit"' in text and "funny" in text
    assert text.rstrip().endswith("BETTER: <A | B | TIE>")
    images, text, mode = book.for_request(ScoreRequest(image=cartoon, prompt="Tell the boss", scale="1-10",
                                                       perspective="captioning", rates="text"))
    assert mode == "single" and '"Tell the boss"' in text and "hallucination" in text
    assert text.rstrip().endswith("RATING: <1-10>") or "RATING:" in text.splitlines()[-1]


def test_an_aspect_replaces_the_perspective_criteria_in_the_prompt():
    book = PromptBook(_vlm())
    req = ScoreRequest(image=_ref(5), prompt="a red apple", scale="1-10", perspective="alignment")
    _, plain, _ = book.for_request(req)
    _, aesthetic, _ = book.for_request(ScoreRequest(**{**req.__dict__, "aspect": "aesthetic"}))
    assert criteria("alignment") in plain and criteria("alignment") not in aesthetic
    assert criteria("alignment", "aesthetic") in aesthetic


def test_label_with_aspects_exports_one_score_column_per_judge_and_aspect(workspace):
    import json

    import pandas as pd

    from mjbench.label import LabelSpec, run_label

    (workspace / "img").mkdir()
    rows = []
    for s in range(3):
        names = []
        for k, level in enumerate((40, 200, 120)):
            name = f"img/s{s}_{k}.png"
            Image.new("RGB", (8, 8), (level + s,) * 3).save(workspace / name)
            names.append(name)
        rows.append({"prompt": f"grey {s}", "images": names})
    (workspace / "cands.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (workspace / "cands.yaml").write_text(
        "name: cands\nkind: candidates\nperspective: quality\nsource: {type: table, path: cands.jsonl}\n")
    result = run_label(LabelSpec(tasks=[str(workspace / "cands.yaml")], judges=["len", "sharpness"],
                                 out=workspace / "lab", quiet=True, include_paths=[workspace],
                                 aspects=("aesthetic", "fidelity")))
    df = pd.read_parquet(workspace / "lab" / "preferences.parquet")
    assert result.kept == 3
    for col in ("chosen_score__len_aesthetic", "rejected_score__len_fidelity", "chosen_score__sharpness"):
        assert col in df.columns and df[col].notna().all(), col
    assert {r.aspect for r in SEEN} == {"aesthetic", "fidelity"} and len(SEEN) == 2 * 9
    assert all("len:aesthetic" in judges for judges in df.judges)


def test_an_embedding_scorer_encodes_the_shared_image_once_and_each_caption_once():
    """A text group (one cartoon, N captions) costs one image embedding and N text embeddings."""
    from mjbench.adapters._scoring import PrefetchScorer

    class Counting(PrefetchScorer):
        text_mode = "embedding"
        images_encoded: list[int] = []
        texts_encoded: list[str] = []

        def _preprocess(self, image):
            return image.size

        def _encode_images(self, prepared, prompts):
            self.images_encoded.append(len(prepared))
            return [1.0 for _ in prepared]

        def _encode_texts(self, prompts):
            self.texts_encoded.extend(prompts)
            return [float(len(p)) for p in prompts]

        def _combine(self, image_feature, text_feature):
            return image_feature * text_feature

    judge = Counting(JudgeConfig(name="emb", adapter="sharpness", batch_size=8))
    item = GroupItem(item_id="g", task="t", perspective="humor", subcategory="c", image=_ref(9),
                     candidate_texts=["one", "three", "fifteen"], gold_scores=[1.0, 2.0, 3.0])
    units, _ = _plan_judge(judge, "id", {"t": [item]}, ["score"])
    answers = judge.score([u.request for u in units.values()])
    assert [a.score for a in answers] == [3.0, 5.0, 7.0]
    assert sum(judge.images_encoded) == 1 and sorted(judge.texts_encoded) == ["fifteen", "one", "three"]


def test_caption_pairs_sharing_a_context_prompt_are_their_own_clusters():
    import pandas as pd

    from mjbench.metrics import pairwise_verdicts

    rows = [dict(judge="j", task="t", perspective="humor", subcategory="c", item_id=f"i{k}", scale="score",
                 label="0", score_0=1.0, score_1=0.0, pred="0", status="ok", prompt="a cartoon from contest 1",
                 text0=f"caption {k}", text1="other") for k in range(3)]
    image_rows = [{**r, "text0": None, "text1": None, "task": "u"} for r in rows]
    verdicts = pairwise_verdicts(pd.DataFrame(rows + image_rows))[0].set_index(["task", "item_id"])
    assert verdicts.loc["t"].cluster.nunique() == 3  # caption pairs: one cluster each
    assert verdicts.loc["u"].cluster.nunique() == 1  # image pairs for one prompt: one cluster


def test_an_image_only_judge_on_texts_is_warned_about(workspace, caplog):
    with caplog.at_level("WARNING", logger="mjbench"):
        result = _run(workspace, ["cap"], ["sharpness"])
    assert "judge sharpness rates images without reading any text" in caplog.text
    assert set(result.records.pred) == {"tie"}


def test_ndcg_k_is_an_aggregate_option_recorded_in_run_json(tmp_path):
    import json
    import math

    import pandas as pd
    from typer.testing import CliRunner

    from mjbench.cli import app

    rows = [dict(judge="j", task="t", perspective="humor", subcategory="c", item_id="g", scale="score", label=None,
                 score_0=s, score_1=None, pred=None, status="ok", candidate=str(i), gold_score=g)
            for i, (s, g) in enumerate([(0.1, 3.0), (0.9, 2.0), (0.5, 1.0)])]
    pd.DataFrame(rows).to_csv(tmp_path / "groups.csv", index=False)
    found = {}
    for k in (1, 10):
        out = tmp_path / f"k{k}"
        res = CliRunner().invoke(app, ["aggregate", str(tmp_path / "groups.csv"), "--out", str(out), "--ndcg-k", str(k)])
        assert res.exit_code == 0, res.output
        assert json.loads((out / "run.json").read_text())["ndcg_k"] == k
        m = pd.read_csv(out / "metrics.csv")
        found[k] = m[(m.metric == "ndcg_at_k") & (m.subcategory == "ALL")].value.item()
    # judge order: candidate 1 (gain 1), 2 (gain 0), 0 (gain 2); ideal: 2, 1, 0
    assert found[1] == pytest.approx(1 / 2)
    assert found[10] == pytest.approx((1 + 0 + 2 / 2) / (2 + 1 / math.log2(3)))
