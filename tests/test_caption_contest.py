"""The `caption_contest` source: New Yorker caption-contest summaries as caption pairs and groups. Hand-checked
gold (label_prob, tie rule), seeded determinism, both data layouts, the environment override, the missing-data
message, and the shipped tasks on the real shared data (skipped where it is absent)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import pytest

from mjbench.catalog import Catalog
from mjbench.config import TaskConfig
from mjbench.errors import ConfigError, DataError
from mjbench.items import CaptionPairItem, GroupItem
from mjbench.sources import load_task, make_source
from mjbench.sources.caption_contest import ENV, pair_gold, split_strata

SHARED_CONTESTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "caption-contest"
COLUMNS = ["target_id", "rank", "funny", "somewhat_funny", "unfunny", "count", "score", "precision", "contest",
           "caption"]


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)


def jpg(shade: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 6), (shade, shade, 255 - shade)).save(buf, format="JPEG")
    return buf.getvalue()


def summary_rows(contest: int, n: int = 40) -> list[dict[str, Any]]:
    """n captions, rank 1 funniest: score falls from 2.5 by 0.03 a rank, precision 0.02 + 0.001 * rank, votes 100
    (the last three have 10 votes)."""
    rows = []
    for rank in range(1, n + 1):
        rows.append({"target_id": 1000 + 7 * rank, "rank": rank, "funny": 1, "somewhat_funny": 2, "unfunny": 3,
                     "count": 10 if rank > n - 3 else 100, "score": round(2.5 - 0.03 * rank, 4),
                     "precision": round(0.02 + 0.001 * rank, 4), "contest": contest,
                     "caption": f"caption {rank} of contest {contest}"})
    return rows


def write_summary(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def flat_layout(root: Path, contests: tuple[int, ...] = (660, 661)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for c in contests:
        write_summary(root / f"{c}_summary_KLUCB.csv", summary_rows(c))
        (root / f"{c}.jpg").write_bytes(jpg(c % 200))
    return root


def upstream_layout(root: Path, contests: tuple[int, ...] = (660, 661)) -> Path:
    for c in contests:
        write_summary(root / "contests" / "summaries" / f"{c}_summary_KLUCB.csv", summary_rows(c))
        (root / "contests" / "info" / str(c)).mkdir(parents=True)
        (root / "contests" / "info" / str(c) / f"{c}.jpg").write_bytes(jpg(c % 200))
    return root


def task(kind: str = "caption_pair", path: Path | None = None, **source: Any) -> TaskConfig:
    cfg = TaskConfig(name="cc", kind=kind, perspective="humor", source={"type": "caption_contest", **source})
    if path is not None:
        cfg.path = path
    return cfg


def phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


# --- gold ---------------------------------------------------------------------------------------------------

def test_pair_gold_by_hand() -> None:
    # s0 - s1 = 0.1, sqrt(0.03^2 + 0.04^2) = 0.05: z = 2, Phi(2) = 0.97725, text0 funnier
    z, prob, label = pair_gold(2.0, 0.03, 1.9, 0.04)
    assert z == pytest.approx(2.0) and prob == pytest.approx(0.9772499, abs=1e-6) and label == "0"
    # the other way round: z = -2, text1 funnier
    z, prob, label = pair_gold(1.9, 0.04, 2.0, 0.03)
    assert prob == pytest.approx(0.0227501, abs=1e-6) and label == "1"
    # 0.3 apart with standard errors 0.3 and 0.4 (0.5 for the difference): z = 0.6, within one: a tie
    z, prob, label = pair_gold(1.5, 0.3, 1.2, 0.4)
    assert z == pytest.approx(0.6) and prob == pytest.approx(0.7257469, abs=1e-6) and label == "tie"
    # exactly one standard error apart (1.25 = sqrt(0.75^2 + 1^2), exact in binary) is still a tie; a stricter
    # tie_z makes it a win
    assert pair_gold(2.5, 0.75, 1.25, 1.0) == (1.0, pytest.approx(phi(1.0)), "tie")
    assert pair_gold(2.5, 0.75, 1.25, 1.0, tie_z=0.5)[2] == "0"
    # no uncertainty: the higher mean wins outright, equal means tie
    assert pair_gold(1.6, 0.0, 1.5, 0.0) == (math.inf, 1.0, "0")
    assert pair_gold(1.5, 0.0, 1.6, 0.0) == (-math.inf, 0.0, "1")
    assert pair_gold(1.5, 0.0, 1.5, 0.0) == (0.0, 0.5, "tie")


def test_strata() -> None:
    assert split_strata(10, 2) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert split_strata(100, [0.01, 0.05, 0.2, 0.5, 1.0]) == [
        [0], list(range(1, 5)), list(range(5, 20)), list(range(20, 50)), list(range(50, 100))]
    assert split_strata(20, [0.01, 0.5, 1.0]) == [list(range(0, 10)), list(range(10, 20))]  # empty top dropped


# --- pairs --------------------------------------------------------------------------------------------------

def test_pairs_follow_the_documented_rules(tmp_path: Path) -> None:
    root = flat_layout(tmp_path / "cc")
    result = load_task(task(root=str(root), n_pairs=30, strata=3))
    assert result.problems == [] and result.dropped == {}
    items = result.items
    assert len(items) == 60 and {it.subcategory for it in items} == {"contest-660", "contest-661"}
    for it in items:
        assert isinstance(it, CaptionPairItem)
        m = it.meta
        s0, s1 = m["scores"]
        p0, p1 = m["precisions"]
        z = (s0 - s1) / math.sqrt(p0**2 + p1**2)
        assert it.label_prob == pytest.approx(phi(z), abs=1e-12)
        assert it.label == ("tie" if abs(s0 - s1) <= math.sqrt(p0**2 + p1**2) else "0" if s0 > s1 else "1")
        assert min(m["counts"]) >= 50  # the three 10-vote captions are never drawn
        lo, hi = sorted(m["target_ids"])
        assert it.item_id == f"contest-{m['contest']}-{lo}-{hi}"
        rank0 = int(it.text0.split()[1])
        assert m["ranks"] == [rank0, int(it.text1.split()[1])] and it.text0 != it.text1
        assert (m["draw"] == "within") == (m["strata"][0] == m["strata"][1])
        assert it.images[0].read_bytes() == (root / f"{m['contest']}.jpg").read_bytes()
        assert it.prompt == f"A cartoon from The New Yorker cartoon caption contest (contest {m['contest']})."
    per_contest = [[it for it in items if it.subcategory == c] for c in ("contest-660", "contest-661")]
    for group in per_contest:
        assert sum(it.meta["draw"] == "within" for it in group) == 6  # round(30 * 0.2)
        better_first = sum(it.meta["scores"][0] > it.meta["scores"][1] for it in group)
        assert better_first == 15  # exactly half: the gold is balanced
        assert len({it.item_id for it in group}) == 30
    labels = [it.label for it in items]  # type: ignore[union-attr]
    assert "tie" in labels and "0" in labels and "1" in labels


def test_pairs_are_deterministic_and_seeded(tmp_path: Path) -> None:
    root = flat_layout(tmp_path / "cc")

    def snapshot(**opts: Any) -> list[tuple[Any, ...]]:
        return [(it.item_id, it.text0, it.text1, it.label, it.label_prob)  # type: ignore[union-attr]
                for it in load_task(task(root=str(root), **opts)).items]

    first = snapshot(seed=1, n_pairs=20)
    assert first == snapshot(seed=1, n_pairs=20)
    other = snapshot(seed=2, n_pairs=20)
    assert other != first and {i[0] for i in other} != {i[0] for i in first}
    # a contest's pairs do not depend on which other contests are loaded
    only_661 = snapshot(seed=1, n_pairs=20, contests=[661])
    assert only_661 == [i for i in first if i[0].startswith("contest-661-")]


def test_a_tiny_contest_gives_what_it_can(tmp_path: Path) -> None:
    root = tmp_path / "cc"
    write_summary(root / "7_summary_KLUCB.csv", summary_rows(7, n=6))  # 3 eligible captions: 3 distinct pairs
    (root / "7.jpg").write_bytes(jpg(7))
    result = load_task(task(root=str(root), n_pairs=10))
    assert len(result.items) == 3 and result.problems == []
    assert sorted(it.item_id for it in result.items) == ["contest-7-1007-1014", "contest-7-1007-1021",
                                                         "contest-7-1014-1021"]


def test_bad_summary_rows_are_counted(tmp_path: Path) -> None:
    root = tmp_path / "cc"
    rows = summary_rows(5, n=10)
    rows[1]["score"] = "n/a"
    rows[2]["caption"] = "  "
    rows[3]["precision"] = -1
    rows[4]["score"] = 4.5
    rows[6]["caption"] = rows[0]["caption"].upper()  # a repeated text: not eligible, not a problem
    write_summary(root / "5_summary_KLUCB.csv", rows)
    (root / "5.jpg").write_bytes(jpg(5))
    result = load_task(task("group", root=str(root), k=2))
    assert result.dropped == {"summary row: score not a number": 1, "summary row: empty caption": 1,
                              "summary row: negative precision": 1, "summary row: score outside 1-3": 1}
    assert any("5_summary_KLUCB.csv row 2: column 'score': 'n/a' is not a number" in p for p in result.problems)
    group = result.items[0]
    assert isinstance(group, GroupItem)
    # eligible: ranks 1, 6, 8, 9, 10 minus the 10-vote ranks 8-10 -> 1 and 6 only: all of them
    assert sorted(group.meta["ranks"]) == [1, 6]


def test_missing_columns_name_the_file(tmp_path: Path) -> None:
    root = tmp_path / "cc"
    root.mkdir()
    (root / "9_summary_KLUCB.csv").write_text("rank,caption\n1,hello\n", encoding="utf-8")
    (root / "9.jpg").write_bytes(jpg(9))
    with pytest.raises(DataError, match=r"9_summary_KLUCB\.csv: column 'target_id' not found .*columns are: rank"):
        load_task(task(root=str(root), contests=[9]))
    result = load_task(task(root=str(root)))  # found, not asked for: left out and reported
    assert result.items == [] and result.dropped == {"contest summary unreadable": 1}


# --- groups -------------------------------------------------------------------------------------------------

def test_group_per_contest(tmp_path: Path) -> None:
    root = flat_layout(tmp_path / "cc")
    items = load_task(task("group", root=str(root), k=3)).items
    assert [it.item_id for it in items] == ["contest-660", "contest-661"]
    g = items[0]
    assert isinstance(g, GroupItem) and g.candidate_images is None and len(g.candidates) == 6
    ranks = g.meta["ranks"]
    assert sorted(ranks) == [1, 2, 3, 35, 36, 37]  # top 3 and bottom 3 of the 37 with >= 50 votes
    rows = {r["rank"]: r for r in summary_rows(660)}
    assert g.candidate_ids == [str(rows[r]["target_id"]) for r in ranks]
    assert g.gold_scores == [rows[r]["score"] for r in ranks]
    assert g.candidate_texts == [rows[r]["caption"] for r in ranks]
    assert [e for e in g.meta["ends"]] == ["top" if r <= 3 else "bottom" for r in ranks]
    assert g.images[0].read_bytes() == (root / "660.jpg").read_bytes() and g.subcategory == "contest-660"
    assert ranks != sorted(ranks)  # shuffled (seeded), so position says nothing
    again = load_task(task("group", root=str(root), k=3)).items[0]
    assert again.candidate_ids == g.candidate_ids  # type: ignore[union-attr]
    reseeded = load_task(task("group", root=str(root), k=3, seed=5)).items[0]
    assert reseeded.candidate_ids != g.candidate_ids and set(reseeded.candidate_ids) == set(g.candidate_ids)  # type: ignore[union-attr]


# --- where the data is --------------------------------------------------------------------------------------

def test_both_layouts_give_the_same_items(tmp_path: Path) -> None:
    flat = load_task(task(root=str(flat_layout(tmp_path / "flat")))).items
    up_root = upstream_layout(tmp_path / "clone")
    upstream = load_task(task(root=str(up_root))).items
    inner = load_task(task(root=str(up_root / "contests"))).items  # root at contests/ itself
    key = [(it.item_id, it.text0, it.text1, it.label) for it in flat]  # type: ignore[union-attr]
    assert len(key) == 200
    assert key == [(it.item_id, it.text0, it.text1, it.label) for it in upstream]  # type: ignore[union-attr]
    assert key == [(it.item_id, it.text0, it.text1, it.label) for it in inner]  # type: ignore[union-attr]
    assert upstream[0].images[0].origin.endswith("contests/info/660/660.jpg")


def test_root_is_relative_to_the_task_yaml_and_the_env_overrides_it(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    flat_layout(tmp_path / "data" / "cc", contests=(1,))
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "mine.yaml").write_text(
        "name: mine\nkind: caption_pair\nperspective: humor\n"
        "source: {type: caption_contest, root: ../data/cc, n_pairs: 4}\n", encoding="utf-8")
    cfg = Catalog(include_paths=[tmp_path]).task("mine")
    assert isinstance(cfg, TaskConfig)
    assert {it.subcategory for it in load_task(cfg).items} == {"contest-1"}
    assert make_source(cfg).count() == 4
    monkeypatch.setenv(ENV, str(flat_layout(tmp_path / "elsewhere", contests=(2,))))
    assert {it.subcategory for it in load_task(cfg).items} == {"contest-2"}
    monkeypatch.setenv(ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=rf"from {ENV}: caption-contest data folder not found: .*nowhere; get it"):
        load_task(cfg)


def test_missing_data_is_one_line_saying_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_task(task(root=str(tmp_path / "absent")))
    msg = str(info.value)
    assert "\n" not in msg and str(tmp_path / "absent") in msg
    assert "git clone https://github.com/nextml/caption-contest-data-api" in msg and ENV in msg
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no caption-contest data in .*empty \(looked for <N>_summary_KLUCB\.csv "
                                        r"beside <N>\.jpg, and contests/summaries/"):
        load_task(task(root=str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match=rf"source\.root: not set and {ENV} is empty"):
        load_task(task())
    root = flat_layout(tmp_path / "cc")
    with pytest.raises(DataError, match=r"source\.contests: contest 999 not found .*contests there: 660, 661"):
        load_task(task(root=str(root), contests=[999]))
    (root / "661.jpg").unlink()
    result = load_task(task(root=str(root)))
    assert {it.subcategory for it in result.items} == {"contest-660"}
    assert result.dropped == {"contest without its cartoon image": 1}
    with pytest.raises(DataError, match=r"contest 661: no cartoon image beside"):
        load_task(task(root=str(root), contests=[661]))


def test_kind_and_shape_must_agree(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kind: caption_contest items are caption pairs .* not pair"):
        make_source(task("pair", root=str(tmp_path)))
    with pytest.raises(ConfigError, match=r"source\.shape: group does not match kind: caption_pair"):
        make_source(task("caption_pair", root=str(tmp_path), shape="group"))
    make_source(task("group", root=str(tmp_path), shape="group"))
    with pytest.raises(ConfigError, match=r"source: strata: .*increasing fractions"):
        make_source(task(root=str(tmp_path), strata=[0.5, 0.2, 1.0]))
    with pytest.raises(ConfigError, match=r"source: n_pairs"):
        make_source(task(root=str(tmp_path), n_pairs=0))


# --- the real shared data and the shipped tasks ---------------------------------------------------------------

@pytest.fixture
def shared_contests() -> Path:
    if not (SHARED_CONTESTS / "660_summary_KLUCB.csv").is_file():
        pytest.skip(f"the shared caption-contest data is not at {SHARED_CONTESTS} (only in the project workspace)")
    return SHARED_CONTESTS


def test_shipped_tasks_on_the_shared_data(shared_contests: Path) -> None:
    catalog = Catalog()
    assert [t.name for t in catalog.expand_tasks(["caption-contest"])] == ["caption-contest-pairs",
                                                                           "caption-contest-groups"]
    pairs_cfg = catalog.task("caption-contest-pairs")
    assert isinstance(pairs_cfg, TaskConfig) and pairs_cfg.license == "CC-BY-4.0"
    pairs = load_task(pairs_cfg)
    assert len(pairs.items) == 400
    assert {it.subcategory for it in pairs.items} == set(pairs_cfg.subcategories)
    # one caption of contest 661 is blank in the published summary: reported, left out
    assert pairs.dropped == {"summary row: empty caption": 1}
    labels = [it.label for it in pairs.items]  # type: ignore[union-attr]
    assert 0.1 < labels.count("tie") / len(labels) < 0.4 and abs(labels.count("0") - labels.count("1")) < 30
    assert all(isinstance(it, CaptionPairItem) and it.perspective == "humor" for it in pairs.items)
    top = [it for it in pairs.items if it.meta["draw"] == "across" and 0 in it.meta["strata"]]
    assert top and sum(it.label != "tie" for it in top) / len(top) > 0.7  # the top 1 % is clearly funnier
    groups = load_task(catalog.task("caption-contest-groups")).items  # type: ignore[arg-type]
    assert [g.item_id for g in groups] == [f"contest-{n}" for n in (660, 661, 662, 663)]
    g660 = groups[0]
    assert isinstance(g660, GroupItem) and len(g660.candidates) == 10
    best = g660.candidate_ids[g660.gold_scores.index(max(g660.gold_scores))]  # type: ignore[union-attr]
    assert best == "3582"  # rank 1 of contest 660: "And I was promoted to branch manager."
