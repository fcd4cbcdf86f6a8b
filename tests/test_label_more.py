"""`mjbench label`, more: the judges' measured accuracy from a benchmark run, candidate sets from Parquet and
from a hub mirror, pair-mode judges (both orders, win shares), every policy and filter on a set whose
answers are worked out by hand, the data report (preferences.md and preferences.html), and determinism (the
end-to-end jury on the real MJ-Bench quality photos is in test_label.py)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest
from fakes import invoke_cli
from PIL import Image, ImageFilter
from pydantic import BaseModel, ConfigDict

from mjbench.adapters.base import ADAPTERS, Capabilities, Judge, Response, ScoreRequest
from mjbench.errors import ConfigError
from mjbench.label import DROP_REASONS, OUTPUT_NAMES, LabelSpec, run_label


class ChannelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: int = 0  # the score: this channel of pixel (0, 0)
    refuse_blue: bool = False  # refuse images whose pixel (0, 0) has blue 255


@ADAPTERS.register("test-label-channel")
class ChannelJudge(Judge):
    """Scores an image by one colour channel of its top-left pixel: the scores are set by the test's images."""

    capabilities = Capabilities(modes=("single",))
    Options = ChannelOptions

    def score(self, requests: Sequence[ScoreRequest]) -> list[Response]:
        out = []
        for r in requests:
            pixel = r.image.load().getpixel((0, 0))
            if self.options.refuse_blue and pixel[2] == 255:
                out.append(Response.failure("refused", status="refused", raw_output="I cannot rate this."))
            else:
                out.append(Response(score=float(pixel[self.options.channel])))
        return out


def _png(red: int, green: int, blue: int = 0, tag: int = 0) -> Image.Image:
    """8x8: the judges read pixel (0, 0); `tag` at (7, 7) keeps images with equal scores distinct."""
    im = Image.new("RGB", (8, 8), (128, 128, 128))
    im.putpixel((0, 0), (red, green, blue))
    im.putpixel((7, 7), (tag, tag, tag))
    return im


#: set -> images as (red, green[, blue]): judge `red` scores the red value, judge `green` the green value
HAND_SETS: dict[str, list[tuple[int, ...]]] = {
    "agree": [(200, 200), (100, 100), (10, 10)],  # both judges: 0 > 1 > 2
    "split": [(200, 10), (100, 100), (10, 200)],  # opposite rankings
    "same": [(150, 150), (150, 150)],  # equal scores (distinct images)
    "mixed": [(200, 10), (100, 200), (10, 50)],  # red: 0 > 1 > 2, green: 1 > 2 > 0
}


def _workspace(root: Path, sets: dict[str, list[tuple[int, ...]]] = HAND_SETS, prompts: dict[str, str] | None = None,
               ) -> Path:
    """Candidate task `hand` from `sets` (image order as given) and judges `red`, `green`, `red-refusing`,
    `first` (pair mode: always the item's image0) and `position` (pair mode: always the first shown)."""
    (root / "img").mkdir(parents=True)
    rows = []
    for s, images in sets.items():
        names = []
        for k, pixel in enumerate(images):
            name = f"img/{s}_{k}.png"
            _png(*pixel, tag=k).save(root / name)
            names.append(name)
        rows.append({"item_id": s, "prompt": (prompts or {}).get(s, f"prompt {s}"), "images": names})
    (root / "hand.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "hand.yaml").write_text("name: hand\nkind: candidates\nperspective: quality\n"
                                    "source: {type: table, path: hand.jsonl}\n")
    judges = root / "judges"
    judges.mkdir()
    (judges / "red.yaml").write_text("name: red\nadapter: test-label-channel\noptions: {channel: 0}\n")
    (judges / "green.yaml").write_text("name: green\nadapter: test-label-channel\noptions: {channel: 1}\n")
    (judges / "red-refusing.yaml").write_text(
        "name: red-refusing\nadapter: test-label-channel\noptions: {channel: 0, refuse_blue: true}\n")
    (judges / "first.yaml").write_text("name: first\nadapter: test-item-first\nmode: pair\n")
    (judges / "position.yaml").write_text("name: position\nadapter: test-brightness\nmode: pair\n")
    return root / "hand.yaml"


def _label(task: Path, out: Path, judges: Sequence[str], **kw: object) -> tuple[object, pd.DataFrame]:
    import fakes  # noqa: F401  (registers the pair-mode fakes)

    result = run_label(LabelSpec(tasks=[str(task)], judges=list(judges), out=out, quiet=True,
                                 include_paths=[task.parent], **kw))  # type: ignore[arg-type]
    return result, pd.read_parquet(out / "preferences.parquet")


def _pairs(df: pd.DataFrame) -> list[tuple[str, int, int]]:
    return sorted(zip(df.set_id, df.chosen_index.astype(int), df.rejected_index.astype(int), strict=True))


# ----------------------------------------------------------------------------------------------------
# policies, juries and filters, worked out by hand


def test_policies_on_a_hand_checked_set(tmp_path: Path) -> None:
    """vote: `agree` ranks 0 > 1 > 2 (Copeland 1, 0.5, 0); `split` and `same` are all ties; `mixed` has one
    2-0 pair (1 over 2) and two 1-1 pairs: scores 0.5, 0.75, 0.25."""
    task = _workspace(tmp_path)
    store = tmp_path / "store.sqlite"
    result, df = _label(task, tmp_path / "bw", ["red", "green"], jury="vote", store=store)
    assert _pairs(df) == [("agree", 0, 2), ("mixed", 1, 2)]
    assert result.dropped == {**dict.fromkeys(DROP_REASONS, 0), "tie": 2}
    row = df.set_index("set_id").loc["agree"]
    assert (row.chosen_score, row.rejected_score, row.margin, row.agreement, row.n_voters) == (1.0, 0.0, 1.0, 1.0, 2)
    assert (row.chosen_score__red, row.rejected_score__red, row.chosen_score__green) == (200.0, 10.0, 200.0)
    mixed = df.set_index("set_id").loc["mixed"]
    assert (mixed.chosen_score, mixed.rejected_score, mixed.agreement) == (0.75, 0.25, 1.0)

    result, df = _label(task, tmp_path / "each", ["red", "green"], jury="vote", policy="best-vs-each", store=store)
    # mixed: best is 1; 1 vs 0 is a 1-1 vote, but jury scores 0.75 > 0.5 keep it, with half the judges agreeing
    assert _pairs(df) == [("agree", 0, 1), ("agree", 0, 2), ("mixed", 1, 0), ("mixed", 1, 2)]
    assert df.set_index(["set_id", "rejected_index"]).agreement.to_dict() == {
        ("agree", 1): 1.0, ("agree", 2): 1.0, ("mixed", 0): 0.5, ("mixed", 2): 1.0}
    assert result.dropped["tie"] == 2 + 1  # split: best vs each of two (both ties); same: one pair

    result, df = _label(task, tmp_path / "all", ["red", "green"], jury="vote", policy="all-pairs", store=store)
    assert _pairs(df) == [("agree", 0, 1), ("agree", 0, 2), ("agree", 1, 2), ("mixed", 0, 2), ("mixed", 1, 0),
                          ("mixed", 1, 2)]
    assert result.kept == 6 and result.dropped["tie"] == 3 + 1  # split: 3 pairs, same: 1
    assert result.computed == 0  # every image was scored by the first call (one shared store)

    # borda, by hand: mixed: red 1, 0.5, 0; green 0, 1, 0.5 -> 0.5, 0.75, 0.25 (as vote here)
    _, df = _label(task, tmp_path / "borda", ["red", "green"], jury="borda", store=store)
    assert _pairs(df) == [("agree", 0, 2), ("mixed", 1, 2)]
    # mean of z-scores: the order within `agree` is that of both judges
    _, df = _label(task, tmp_path / "mean", ["red", "green"], jury="mean", store=store)
    assert ("agree", 0, 2) in _pairs(df) and (df.margin > 0).all()


def test_each_filter_on_a_hand_checked_set(tmp_path: Path) -> None:
    task = _workspace(tmp_path)
    store = tmp_path / "store.sqlite"
    common = {"jury": "vote", "policy": "all-pairs", "store": store}
    # margins of the 6 kept pairs: agree 0.5, 1, 0.5; mixed (1, 0) 0.25, (1, 2) 0.5, (0, 2) 0.25
    result, df = _label(task, tmp_path / "margin", ["red", "green"], min_margin=0.5, **common)
    assert _pairs(df) == [("agree", 0, 1), ("agree", 0, 2), ("agree", 1, 2), ("mixed", 1, 2)]
    assert result.dropped["min_margin"] == 2 and result.dropped["tie"] == 4
    # agreement: mixed (1, 0) and (0, 2) have one judge each way: 0.5
    result, df = _label(task, tmp_path / "agree", ["red", "green"], min_agreement=0.75, **common)
    assert (df.agreement == 1.0).all() and len(df) == 4 and result.dropped["min_agreement"] == 2
    # the chosen score floor: chosen scores agree 1, 1, 0.5; mixed 0.75, 0.75, 0.5
    result, df = _label(task, tmp_path / "floor", ["red", "green"], min_chosen_score=0.75, **common)
    assert _pairs(df) == [("agree", 0, 1), ("agree", 0, 2), ("mixed", 1, 0), ("mixed", 1, 2)]
    assert result.dropped["min_chosen_score"] == 2
    # a pair is counted under the first rule it fails: margin before agreement before the floor
    result, _ = _label(task, tmp_path / "all3", ["red", "green"], min_margin=0.5, min_agreement=0.75,
                       min_chosen_score=0.75, **common)
    assert result.kept == 3 and result.dropped == {"judge_invalid": 0, "tie": 4, "min_margin": 2,
                                                   "min_agreement": 0, "min_chosen_score": 1}
    md = (tmp_path / "all3" / "preferences.md").read_text()
    for line in ("| kept | 3 | 30.0 % |", "| dropped: tie | 4 | 40.0 % |", "| dropped: min_margin | 2 | 20.0 % |",
                 "| dropped: min_chosen_score | 1 | 10.0 % |", "| min_margin | 0.5 |", "| min_agreement | 0.75 |"):
        assert line in md, line


def test_a_judge_without_a_valid_score_drops_its_pairs(tmp_path: Path) -> None:
    """`red-refusing` refuses image 1 of `agree` (blue 255): green still ranks it, but every pair with it
    has a judge without a valid score and is dropped as judge_invalid; the other pair is kept."""
    sets = {"agree": [(200, 200), (100, 100, 255), (10, 10)]}
    task = _workspace(tmp_path, sets)
    result, df = _label(task, tmp_path / "out", ["red-refusing", "green"], jury="vote", policy="all-pairs")
    assert _pairs(df) == [("agree", 0, 2)]
    assert result.dropped["judge_invalid"] == 2 and not result.failures  # a refusal is a final answer
    records = pd.read_json(tmp_path / "out" / "records.jsonl", lines=True)
    assert (records.status == "refused").sum() == 2  # one image, in the two pairs that hold it


# ----------------------------------------------------------------------------------------------------
# pair mode


def test_pair_mode_asks_both_orders_and_scores_win_shares(tmp_path: Path) -> None:
    task = _workspace(tmp_path, {"three": [(1, 1), (2, 2), (3, 3)], "two": [(5, 5), (6, 6)]})
    result, df = _label(task, tmp_path / "first", ["first"], policy="all-pairs")
    records = pd.read_json(tmp_path / "first" / "records.jsonl", lines=True, dtype={"order": str})
    asked = records.groupby("item_id")["order"].apply(lambda s: sorted(s)).to_dict()
    assert asked == {k: ["01", "10"] for k in ("three/0-1", "three/0-2", "three/1-2", "two/0-1")}
    assert result.computed == 8
    # `first` always prefers the item's image0 (the lower index) in both orders: win shares 1, 0.5, 0
    by = {(s, c, r): (cs, rs) for s, c, r, cs, rs in zip(df.set_id, df.chosen_index, df.rejected_index,
                                                          df.chosen_score__first, df.rejected_score__first,
                                                          strict=True)}
    assert by == {("three", 0, 1): (1.0, 0.5), ("three", 0, 2): (1.0, 0.0), ("three", 1, 2): (0.5, 0.0),
                  ("two", 0, 1): (1.0, 0.0)}
    # a judge that always names the image shown first wins and loses each pair once: every share is 0.5
    result, df = _label(task, tmp_path / "position", ["position"], policy="all-pairs")
    assert df.empty and result.dropped["tie"] == 4
    # a jury of a pair-mode and a single-mode judge: win shares beside the red scores. `red` ranks the sets
    # the other way round (brightest last), so every Borda score ties: nothing kept, the schema stays
    _, df = _label(task, tmp_path / "both", ["first", "red"], jury="borda", policy="all-pairs")
    assert df.empty and {"chosen_score__first", "rejected_score__red", "judges", "n_voters"} <= set(df.columns)
    task = _workspace(tmp_path / "desc", {"three": [(3, 3), (2, 2), (1, 1)]})  # now `red` agrees with `first`
    _, df = _label(task, tmp_path / "desc" / "out", ["first", "red"], jury="borda")
    assert _pairs(df) == [("three", 0, 2)] and df.agreement.tolist() == [1.0]
    assert (df.chosen_score__first.tolist(), df.chosen_score__red.tolist()) == ([1.0], [3.0])


# ----------------------------------------------------------------------------------------------------
# sources: Parquet and the hub (a local mirror)


def _noise_sets(n_sets: int = 4) -> list[dict]:
    """Rows of {prompt, images: [{bytes, path}, ...]}: a sharp noise image and two blurred copies (sharp last)."""
    rows = []
    for s in range(n_sets):
        base = Image.effect_noise((32, 32), 50 + 5 * s).convert("RGB")
        cells = []
        for k in (2, 1, 0):
            buf = io.BytesIO()
            (base.filter(ImageFilter.GaussianBlur(2 * k)) if k else base).save(buf, format="PNG")
            cells.append({"bytes": buf.getvalue(), "path": f"s{s}_blur{k}.png"})
        rows.append({"prompt": f"noise {s}", "images": cells, "group_id": f"g{s % 2}"})
    return rows


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("prompt", pa.string()), ("images", pa.list_(image)), ("group_id", pa.string())])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def _check_sharp_chosen(out: Path, df: pd.DataFrame) -> None:
    assert len(df) == 4 and (df.chosen_index == 2).all() and (df.rejected_index == 0).all()
    for col in ("chosen", "rejected"):
        assert df[col].str.startswith("images/").all()  # bytes without a path are written out
        for name, digest in zip(df[col], df[f"{col}_hash"], strict=True):
            assert (out / name).is_file() and digest in name
    assert sorted(df.group_id) == ["g0", "g0", "g1", "g1"]


def test_candidates_from_parquet(tmp_path: Path) -> None:
    _write_parquet(tmp_path / "data" / "cands.parquet", _noise_sets())
    (tmp_path / "p.yaml").write_text("name: pq-cands\nkind: candidates\nperspective: quality\n"
                                     "source: {type: parquet, path: data/cands.parquet}\n")
    result, df = _label(tmp_path / "p.yaml", tmp_path / "out", ["sharpness"])
    assert result.computed == 12
    _check_sharp_chosen(tmp_path / "out", df)
    html = (tmp_path / "out" / "preferences.html").read_text()
    assert html.count('class="thumb p') == 8  # the images/ copies of the bytes are shown


def test_candidates_from_a_hub_mirror(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    _write_parquet(mirror / "someone" / "cands" / "data" / "train-00000.parquet", _noise_sets())
    (mirror / "someone" / "cands" / "README.md").write_text("# candidates\n")
    (tmp_path / "h.yaml").write_text(
        "name: hub-cands\nkind: candidates\nperspective: quality\n"
        "source: {type: hub, repo: someone/cands, data_files: data/train-*.parquet}\n")
    result, df = _label(tmp_path / "h.yaml", tmp_path / "out", ["sharpness"], hub_mirror=mirror)
    assert result.computed == 12
    _check_sharp_chosen(tmp_path / "out", df)
    with pytest.raises(Exception, match="hub mirror"):  # a repository the mirror lacks: said, not fetched
        (tmp_path / "x.yaml").write_text("name: x\nkind: candidates\nperspective: quality\n"
                                         "source: {type: hub, repo: someone/other, data_files: a.parquet}\n")
        _label(tmp_path / "x.yaml", tmp_path / "x", ["sharpness"], hub_mirror=mirror)


# ----------------------------------------------------------------------------------------------------
# --benchmark


def test_benchmark_run_gives_the_judges_accuracy(tmp_path: Path) -> None:
    """A tiny `mjbench run` of the same judges on labelled pairs, then `mjbench label --benchmark RUN_DIR`:
    judge_accuracy in every row equals that run's leaderboard."""
    task = _workspace(tmp_path)
    pairs = [{"prompt": f"pair {k}", "image0": f"img/{a}", "image1": f"img/{b}", "label": label}
             for k, (a, b, label) in enumerate([("agree_0.png", "agree_2.png", 0), ("agree_1.png", "agree_0.png", 1),
                                                ("mixed_0.png", "mixed_2.png", 0), ("mixed_1.png", "mixed_2.png", 0),
                                                ("split_0.png", "split_2.png", 0)])]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (tmp_path / "pairs.yaml").write_text("name: pairs\nperspective: quality\nsource: {type: table, path: pairs.jsonl}\n")
    run = invoke_cli("run", "--tasks", str(tmp_path / "pairs.yaml"), "--judges", "red,green", "--include-path",
                     str(tmp_path), "--out", str(tmp_path / "run"), "-q")
    assert run.exit_code == 0, run.output
    board = {r["judge"]: r for r in json.loads((tmp_path / "run" / "leaderboard.json").read_text())}
    # by hand: red is right on all 5; green is wrong on mixed_0 vs mixed_2 and on split_0 vs split_2
    assert board["red"]["quality_acc_with_tie"] == 1.0 and board["green"]["quality_acc_with_tie"] == pytest.approx(0.6)

    out = tmp_path / "prefs"
    label = invoke_cli("label", "--tasks", str(task), "--judges", "red,green", "--jury", "vote", "--include-path",
                       str(tmp_path), "--out", str(out), "--benchmark", str(tmp_path / "run"), "-q")
    assert label.exit_code == 0, label.output
    assert "2 preference pairs" in label.output
    df = pd.read_parquet(out / "preferences.parquet")
    expected = {j: {"quality": board[j]["quality_acc_with_tie"]} for j in ("red", "green")}
    assert [json.loads(a) for a in df.judge_accuracy] == [expected] * len(df)
    info = json.loads((out / "run.json").read_text())["label"]
    assert info["judge_accuracy"] == expected and info["benchmark"] == str(tmp_path / "run")
    for name in ("preferences.md", "preferences.html"):
        text = (out / name).read_text()
        assert "Judges&#39; measured accuracy" in text or "Judges' measured accuracy" in text
        assert f"{board['green']['quality_acc_with_tie']:.3f}" in text

    with pytest.raises(ConfigError, match="no leaderboard row for judge"):  # a judge the run did not have
        _label(task, tmp_path / "p2", ["red", "sharpness"], benchmark=tmp_path / "run")
    with pytest.raises(ConfigError, match="cannot read"):
        _label(task, tmp_path / "p3", ["red"], benchmark=tmp_path / "nowhere")


# ----------------------------------------------------------------------------------------------------
# the report


def test_html_report_counts_escapes_and_shows_the_lowest_agreement(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script> & a "quoted" <b>prompt</b>'
    task = _workspace(tmp_path, prompts={"mixed": evil})
    result, df = _label(task, tmp_path / "out", ["red", "green"], jury="vote", policy="all-pairs",
                        min_chosen_score=0.6)
    # by hand (see test_each_filter_on_a_hand_checked_set): 6 candidate pairs, 2 with a chosen score of 0.5
    assert result.kept == 4 and result.dropped["min_chosen_score"] == 2 and result.dropped["tie"] == 4
    assert "preferences.html" in OUTPUT_NAMES
    html = (tmp_path / "out" / "preferences.html").read_text()
    assert "<script" not in html and "<b>prompt</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; a &#34;quoted&#34; &lt;b&gt;prompt&lt;/b&gt;" in html
    # counts: 4 kept of 10 considered, each drop reason with its number
    assert re.search(r'<b id="kept">4</b> pairs kept of 10 considered', html)
    assert "<td>kept</td><td>4</td><td>40.0 %</td>" in html
    assert "<td>dropped: tie</td><td>4</td>" in html and "<td>dropped: min_chosen_score</td><td>2</td>" in html
    assert "<td>dropped: min_margin</td><td>0</td>" in html
    # plots, inline and deterministic
    for name in ("pref-pairs", "pref-scores", "pref-margin", "pref-agreement"):
        assert f'id="plot-{name}"' in html
    # the gallery: the lowest agreement first (mixed 1 vs 0 at 0.5), chosen and rejected side by side
    cards = html.split('<div class="card">')[1:]
    assert len(cards) == 4
    assert "agreement <b>0.5</b> of 2 judges" in cards[0] and "&lt;script&gt;" in cards[0]
    assert all(c.count('class="thumb p') == 2 and "chosen" in c and "rejected" in c for c in cards)
    assert html.count("data:image/jpeg;base64,") == len(set(df.chosen_hash) | set(df.rejected_hash))
    # coverage: each judge column, share of kept pairs with both scores
    assert "<td>red</td><td>4</td><td>4</td><td>4</td><td>100.0 %</td>" in html
    # the Markdown report says the same, escaped for Markdown
    md = (tmp_path / "out" / "preferences.md").read_text()
    assert "| kept | 4 | 40.0 % |" in md and "| red | 4 | 4 | 4 | 100.0 % |" in md and "<script" not in md


def test_report_of_an_empty_export_and_rebuilt_from_the_export(tmp_path: Path) -> None:
    from mjbench.report.preferences import summarize, write_preference_reports

    task = _workspace(tmp_path, {"split": HAND_SETS["split"]})
    result, df = _label(task, tmp_path / "out", ["red", "green"], jury="vote")
    assert df.empty and result.dropped["tie"] == 1
    html = (tmp_path / "out" / "preferences.html").read_text()
    assert '<b id="kept">0</b> pairs kept of 1 considered' in html and "No pair was kept" in html

    # the reports again from the export alone (no ImageRefs): images read from the exported paths
    task = _workspace(tmp_path / "b")
    _, df = _label(task, tmp_path / "b" / "out", ["red", "green"], jury="vote")
    info = json.loads((tmp_path / "b" / "out" / "run.json").read_text())["label"]
    before = (tmp_path / "b" / "out" / "preferences.html").read_text()
    write_preference_reports(tmp_path / "b" / "out", df, info)
    assert (tmp_path / "b" / "out" / "preferences.html").read_text() == before
    assert summarize(df, info).kept == 2


# ----------------------------------------------------------------------------------------------------
# determinism


def test_same_command_gives_identical_files(tmp_path: Path) -> None:
    task = _workspace(tmp_path)
    for out in ("a", "b"):
        _label(task, tmp_path / out, ["red", "green", "first"], jury="mean", policy="all-pairs")
    for name in ("preferences.parquet", "preferences.jsonl", "preferences.md", "preferences.html", "records.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # another seed only moves tie-breaks: the kept pairs (none tied here) stay
    _, seeded = _label(task, tmp_path / "c", ["red", "green", "first"], jury="mean", policy="all-pairs", seed=7)
    assert _pairs(seeded) == _pairs(pd.read_parquet(tmp_path / "a" / "preferences.parquet"))
