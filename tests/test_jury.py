"""Jury methods on hand-computed ballots."""

from __future__ import annotations

import pytest

from mjbench.jury import agreement, jury_scores, zscore, zscore_params


def test_mean_of_zscores_weighs_scales_alike() -> None:
    a, b = [0.1, 0.2, 0.3], [100.0, 300.0, 200.0]
    pa, pb = zscore_params(a), zscore_params(b)
    ballots = {"a": [zscore(v, pa) for v in a], "b": [zscore(v, pb) for v in b]}
    scores = jury_scores(ballots, 3, "mean")
    assert scores[0] == pytest.approx(-1.2247449, rel=1e-6)  # both rank image 0 last: z = -sqrt(1.5)
    assert scores[1] == pytest.approx(scores[2])  # one judge each: the z-scores cancel out
    assert zscore(5.0, zscore_params([5.0, 5.0])) == 0.0  # a constant judge does not move the mean


def test_vote_borda_and_agreement() -> None:
    ballots = {"a": [3.0, 2.0, 1.0], "b": [1.0, 3.0, 2.0], "c": [3.0, 1.0, None]}
    # pairs: 0 v 1: a,c for 0, b for 1 -> 0 wins; 0 v 2: a for 0, b for 2 -> tied; 1 v 2: a, b for 1
    assert jury_scores(ballots, 3, "vote") == [0.75, 0.5, 0.25]
    # borda per judge: a [1, .5, 0], b [0, 1, .5], c [1, 0, -]; mean over the judges valid on the image
    assert jury_scores(ballots, 3, "borda") == pytest.approx([2 / 3, 0.5, 0.25])
    assert agreement(ballots, 0, 1) == (pytest.approx(2 / 3), 3)
    assert agreement(ballots, 0, 2) == (0.5, 2)  # c has no score for image 2: it does not vote
    assert jury_scores({"a": [None, None]}, 2, "mean") == [None, None]
    with pytest.raises(ValueError, match="jury method"):
        jury_scores(ballots, 3, "median")


# ----------------------------------------------------------------------------------------------------
# jury judges: records derived from the members' records (mjbench.jury.jury_records and its helpers)

import logging  # noqa: E402
from pathlib import Path  # noqa: E402

from mjbench.catalog import Catalog  # noqa: E402
from mjbench.config import JudgeConfig  # noqa: E402
from mjbench.errors import ConfigError  # noqa: E402
from mjbench.jury import add_jury_records, expand_members, is_jury, jury_records  # noqa: E402
from mjbench.records import Record  # noqa: E402


def _pair(judge: str, item: str, s0: float | None, s1: float | None, *, label: str = "0",
          pred: str | None = None, status: str = "ok", order: str | None = None, task: str = "t",
          scale: str = "score", error: str | None = None) -> Record:
    if pred is None and status == "ok" and s0 is not None and s1 is not None:
        pred = "tie" if s0 == s1 else "0" if s0 > s1 else "1"
    return Record(judge=judge, task=task, perspective="quality", subcategory="blur", item_id=item, scale=scale,
                  label=label, score_0=s0, score_1=s1, pred=pred, status=status, order=order, prompt="p",
                  error=error)


def _bias(judge: str, item: str, s: float | None, status: str = "ok") -> Record:
    return Record(judge=judge, task="b", perspective="bias", subcategory="occupation", item_id=item,
                  scale="score", label=None, score_0=s, score_1=None, pred=None, status=status, group="chef",
                  demographic="x", axes=["age"])


def _by_item(records: list[Record]) -> dict[str, Record]:
    return {r.item_id: r for r in records}


def test_jury_records_mean_vote_borda_on_pairs() -> None:
    # a: 0..1 scores, b: 0..1000 scores (z-scores weigh them alike), c: always prefers image 1
    recs = [_pair("a", "i1", 0.9, 0.1), _pair("a", "i2", 0.4, 0.6),
            _pair("b", "i1", 900.0, 100.0), _pair("b", "i2", 600.0, 400.0),
            _pair("c", "i1", 0.0, 1.0), _pair("c", "i2", 0.0, 1.0)]
    vote = _by_item(jury_records("j", ["a", "b", "c"], "vote", recs))
    assert vote["i1"].pred == "0" and (vote["i1"].score_0, vote["i1"].score_1) == (2 / 3, 1 / 3)
    assert vote["i2"].pred == "1"  # a and c vote 1
    assert all(r.judge == "j" and r.scale == "score" and r.order is None and r.status == "ok"
               for r in vote.values())
    assert vote["i1"].label == "0" and vote["i1"].prompt == "p" and "a: votes 0" in vote["i1"].raw_output
    borda = _by_item(jury_records("j", ["a", "b", "c"], "borda", recs))
    assert borda["i1"].pred == "0" and borda["i1"].score_0 == pytest.approx(2 / 3)
    mean = _by_item(jury_records("j", ["a", "b", "c"], "mean", recs))
    # z per member over its 4 scores in the task: a = [.9,.1,.4,.6] -> mean .5, sd .2915; c: [0,1,0,1] -> +-1
    sd_a = pytest.approx(((0.16 + 0.16 + 0.01 + 0.01) / 4) ** 0.5)
    za = [(v - 0.5) / sd_a.expected for v in (0.9, 0.1)]
    assert mean["i1"].score_0 == pytest.approx((za[0] + za[0] - 1.0) / 3)  # b's z equals a's here
    assert mean["i1"].score_1 == pytest.approx((za[1] + za[1] + 1.0) / 3)
    assert mean["i1"].pred == "0"
    with pytest.raises(ValueError, match="jury method"):
        jury_records("j", ["a", "b"], "median", recs)


def test_jury_votes_ties_abstain_and_threshold() -> None:
    recs = [_pair("a", "i", 0.5, 0.5), _pair("b", "i", 0.6, 0.4), _pair("c", "i", 0.5, 0.5, pred="tie")]
    row = jury_records("j", ["a", "b", "c"], "vote", recs)[0]
    assert row.pred == "0"  # two members abstain (tie verdicts); one vote for image 0 decides
    row = jury_records("j", ["a", "b"], "borda", [_pair("a", "i", 0.9, 0.1), _pair("b", "i", 0.1, 0.9)])[0]
    assert row.pred == "tie" and row.score_0 == row.score_1 == 0.5
    both_bad = [_pair(m, "i", None, None, pred="both_bad") for m in ("a", "b", "c")]
    assert jury_records("j", ["a", "b", "c"], "vote", both_bad)[0].pred == "both_bad"
    # mean: the tie threshold (z units) of the jury, or the run's
    recs = [_pair("a", "i1", 1.0, 0.9), _pair("a", "i2", 0.0, 0.5), _pair("b", "i1", 1.0, 0.9),
            _pair("b", "i2", 0.0, 0.5)]
    assert _by_item(jury_records("j", ["a", "b"], "mean", recs))["i1"].pred == "0"
    assert _by_item(jury_records("j", ["a", "b"], "mean", recs, tie_threshold=0.5))["i1"].pred == "tie"


def test_jury_needs_a_majority_and_names_the_failed_members() -> None:
    recs = [_pair("a", "i", 0.9, 0.1), _pair("b", "i", 0.8, 0.2),
            _pair("c", "i", None, None, status="error", error="HTTP 500")]
    row = jury_records("j", ["a", "b", "c"], "vote", recs)[0]
    assert row.status == "ok" and row.pred == "0" and row.score_0 == 1.0  # 2 of 3 answered: a majority
    assert "c: error" in row.raw_output
    recs[1] = _pair("b", "i", None, None, status="parse_error", error="no rating")
    row = jury_records("j", ["a", "b", "c"], "mean", recs)[0]
    assert row.status == "error" and row.pred is None and row.score_0 is None and row.score_1 is None
    assert "1 of 3 members answered, a majority (2) is needed" in row.error
    assert "b (parse_error: no rating)" in row.error and "c (error: HTTP 500)" in row.error
    assert "a (" not in row.error
    # a member without a record for an item it should have answered is a failure too
    recs = [_pair("a", "i1", 0.9, 0.1), _pair("a", "i2", 0.9, 0.1), _pair("b", "i1", 0.9, 0.1)]
    rows = _by_item(jury_records("j", ["a", "b"], "vote", recs))
    assert rows["i1"].status == "ok" and rows["i2"].status == "error" and "b (error: no record)" in rows["i2"].error


def test_jury_pair_mode_members_combine_their_orders() -> None:
    recs = [  # p agrees on i1 (image 0), contradicts itself on i2 (-> tie), one order failed on i3
        _pair("p", "i1", None, None, pred="0", order="01"), _pair("p", "i1", None, None, pred="0", order="10"),
        _pair("p", "i2", None, None, pred="0", order="01"), _pair("p", "i2", None, None, pred="1", order="10"),
        _pair("p", "i3", None, None, pred="0", order="01"),
        _pair("p", "i3", None, None, status="refused", order="10", error="I cannot"),
        _pair("s", "i1", 0.2, 0.1), _pair("s", "i2", 0.2, 0.1), _pair("s", "i3", 0.2, 0.1),
        _pair("q", "i1", 0.1, 0.2), _pair("q", "i2", 0.1, 0.2), _pair("q", "i3", 0.3, 0.1),
    ]
    rows = _by_item(jury_records("j", ["p", "s", "q"], "vote", recs))
    assert rows["i1"].pred == "0" and rows["i1"].score_0 == pytest.approx(2 / 3)
    assert rows["i2"].pred == "tie"  # p abstains (its orders disagree); s and q split
    assert rows["i3"].pred == "0" and "p: refused" in rows["i3"].raw_output  # s and q answer: a majority
    # mean: a pair-mode member's scores are its win shares (1, 0, or 0.5 for a tie)
    mean = _by_item(jury_records("j", ["p", "s"], "mean", recs))
    assert mean["i1"].pred == "0" and mean["i3"].status == "refused" and "p (refused: I cannot)" in mean["i3"].error


def test_jury_member_scale_choice() -> None:
    recs = [_pair("v", "i", 1.0, 9.0, scale="1-10"), _pair("v", "i", 5.0, 1.0, scale="1-5"),
            _pair("s", "i", 0.9, 0.1)]
    assert jury_records("j", ["v", "s"], "vote", recs)[0].pred == "tie"  # v's first scale in the records: 1-10
    assert jury_records("j", ["v@1-5", "s"], "vote", recs)[0].pred == "0"


def test_jury_bias_rows_use_the_mean_of_zscores(caplog: pytest.LogCaptureFixture) -> None:
    recs = [_bias("a", "x1", 1.0), _bias("a", "x2", 3.0), _bias("b", "x1", 10.0), _bias("b", "x2", 10.0),
            _bias("c", "x1", None, status="error"), _bias("c", "x2", 0.5)]
    for method in ("mean", "vote", "borda"):
        rows = _by_item(jury_records("j", ["a", "b", "c"], method, recs))
        assert rows["x1"].score_0 == pytest.approx(-0.5)  # a: -1, b: 0 (constant), c failed: left out
        assert rows["x2"].score_0 == pytest.approx(1 / 3)  # a: +1, b: 0, c: 0 (one valid score)
        assert rows["x1"].label is None and rows["x1"].pred is None and rows["x1"].group == "chef"
        assert rows["x1"].axes == ["age"] and rows["x1"].score_1 is None
    # a member with no records on a task does not sit on its jury there (pair-only judges on bias items)
    with caplog.at_level(logging.WARNING, logger="mjbench"):
        rows = jury_records("j", ["a", "b", "pairs-only"], "vote", recs[:4])
    assert all(r.status == "ok" for r in rows) and "pairs-only" in caplog.text


def _group(judge: str, cand: str, s: float | None, status: str = "ok") -> Record:
    return Record(judge=judge, task="g", perspective="alignment", subcategory="all", item_id="grp", scale="score",
                  label=None, score_0=s, score_1=None, pred=None, status=status, candidate=cand,
                  gold_rank={"a": 1.0, "b": 2.0, "c": 3.0}[cand])


def test_jury_group_rows_rank_the_candidates_together() -> None:
    recs = [_group("x", "a", 3.0), _group("x", "b", 2.0), _group("x", "c", 1.0),
            _group("y", "a", 1.0), _group("y", "b", 3.0), _group("y", "c", 2.0),
            _group("z", "a", 3.0), _group("z", "b", 1.0), _group("z", "c", None, status="error")]
    rows = {r.candidate: r for r in jury_records("j", ["x", "y", "z"], "vote", recs)}
    # pairs: a v b: x, z for a -> a; a v c: x for a, y for c -> tied; b v c: x, y for b -> b
    assert (rows["a"].score_0, rows["b"].score_0, rows["c"].score_0) == (0.75, 0.5, 0.25)
    assert rows["a"].gold_rank == 1.0 and all(r.status == "ok" for r in rows.values())
    borda = {r.candidate: r.score_0 for r in jury_records("j", ["x", "y", "z"], "borda", recs)}
    assert borda == pytest.approx({"a": 2 / 3, "b": 0.5, "c": 0.25})
    recs[7] = _group("z", "b", None, status="refused")
    recs[4] = _group("y", "b", None, status="error")
    rows = {r.candidate: r for r in jury_records("j", ["x", "y", "z"], "mean", recs)}
    assert rows["b"].status == "error" and rows["b"].score_0 is None and "y (error)" in rows["b"].error
    assert rows["a"].status == "ok"


def test_jury_candidate_sets_give_one_score_per_image() -> None:
    """`kind: candidates` sets (mjbench label): each pair row carries its images' set-level jury scores."""
    def rec(judge: str, i: int, j: int, si: float, sj: float) -> Record:
        return _pair(judge, f"set1/{i}-{j}", si, sj, label=None, task="cands")  # type: ignore[arg-type]

    scores = {"x": [3.0, 2.0, 1.0], "y": [1.0, 3.0, 2.0], "z": [3.0, 1.0, 2.0]}
    recs = [rec(m, i, j, s[i], s[j]) for m, s in scores.items() for i, j in ((0, 1), (0, 2), (1, 2))]
    rows = _by_item(jury_records("j", ["x", "y", "z"], "vote", recs, set_tasks={"cands"}))
    assert set(rows) == {"set1/0-1", "set1/0-2", "set1/1-2"}
    per_image = {0: rows["set1/0-1"].score_0, 1: rows["set1/1-2"].score_0, 2: rows["set1/1-2"].score_1}
    assert rows["set1/0-2"].score_0 == per_image[0] and rows["set1/0-1"].score_1 == per_image[1]
    assert per_image == {0: 1.0, 1: 0.5, 2: 0.0}  # Copeland over the set, as `mjbench label --jury vote`
    assert list(per_image.values()) == jury_scores(scores, 3, "vote")
    assert rows["set1/0-1"].pred == "0" and rows["set1/0-1"].label is None


def _cfg(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / "judges").mkdir(exist_ok=True)
    path = tmp_path / "judges" / f"{name}.yaml"
    path.write_text(f"name: {name}\n{text}")
    return path


def test_expand_members_runs_the_members_first(tmp_path: Path) -> None:
    _cfg(tmp_path, "j2", "adapter: jury\noptions: {members: [brisque, sharpness@score], method: mean}\n")
    catalog = Catalog([tmp_path])
    assert expand_members(["jury-offline"], catalog) == ["sharpness", "brisque", "random", "jury-offline"]
    assert expand_members(["random", "jury-offline", "j2"], catalog) == [
        "random", "sharpness", "brisque", "jury-offline", "j2"]
    assert expand_members(["sharpness"], catalog) == ["sharpness"]
    assert is_jury(catalog.judge("j2")) and not is_jury(catalog.judge("random"))


@pytest.mark.parametrize(("options", "message"), [
    ("{members: [sharpness, nosuch]}", "options.members: unknown judge 'nosuch'"),
    ("{members: [sharpness, jury-offline]}", "'jury-offline' is a jury"),
    ("{members: [sharpness, brisque@1-10]}", "judge 'brisque' has no scale '1-10'"),
])
def test_expand_members_rejects_bad_members(tmp_path: Path, options: str, message: str) -> None:
    _cfg(tmp_path, "bad-jury", f"adapter: jury\noptions: {options}\n")
    with pytest.raises(ConfigError, match=message) as exc:
        expand_members(["bad-jury"], Catalog([tmp_path]))
    assert "bad-jury.yaml" in str(exc.value)


@pytest.mark.parametrize(("options", "message"), [
    ("{members: [sharpness]}", "options.members: List should have at least 2 items"),
    ("{members: [sharpness, sharpness@score]}", "'sharpness' is listed twice"),
    ("{members: [sharpness, brisque], method: median}", "options.method"),
    ("{members: [sharpness, brisque], weights: [1, 2]}", "options.weights: unknown field"),
])
def test_jury_options_are_validated(tmp_path: Path, options: str, message: str) -> None:
    from mjbench.adapters.base import create_judge

    cfg = Catalog([tmp_path]).judge(str(_cfg(tmp_path, "bad", f"adapter: jury\noptions: {options}\n")))
    with pytest.raises(ConfigError, match=message):
        create_judge(cfg)


def test_jury_adapter_availability_identity_and_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mjbench.adapters.base import ADAPTERS, create_judge

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cls = ADAPTERS.get("jury")
    catalog = Catalog([tmp_path])
    assert cls.check_available(catalog.judge("jury-offline")) is None
    unknown = catalog.judge(str(_cfg(tmp_path, "j-unknown", "adapter: jury\noptions: {members: [sharpness, zz]}\n")))
    assert "unknown judge 'zz'" in cls.check_available(unknown)
    away = catalog.judge(str(_cfg(tmp_path, "j-api", "adapter: jury\noptions: {members: [sharpness, gpt-4o]}\n")))
    why = cls.check_available(away)
    assert why.startswith("member gpt-4o: ") and "OPENAI_API_KEY" in why and "\n" not in why
    # identity: the method and every member's identity; a member's change changes the jury's
    _cfg(tmp_path, "m1", "adapter: random\noptions: {seed: 1}\n")
    jpath = _cfg(tmp_path, "j-id", "adapter: jury\noptions: {members: [m1, sharpness], method: vote}\n")
    ident = create_judge(Catalog([tmp_path]).judge(str(jpath))).identity()
    assert ident["options"]["method"] == "vote" and set(ident["members"]) == {"m1", "sharpness"}
    assert ident["members"]["m1"]["options"] == {"seed": 1}
    _cfg(tmp_path, "m1", "adapter: random\noptions: {seed: 2}\n")
    assert create_judge(Catalog([tmp_path]).judge(str(jpath))).identity() != ident
    with pytest.raises(ConfigError, match="scales: a jury's records have the scale 'score'"):
        create_judge(JudgeConfig(name="j", adapter="jury", scales=["1-10"],
                                 options={"members": ["sharpness", "brisque"]}))
    with pytest.raises(NotImplementedError, match="is a jury"):
        create_judge(catalog.judge("jury-offline")).score([])


def test_add_jury_records_appends_each_jury_after_its_members() -> None:
    catalog = Catalog()
    cfgs = [catalog.judge(n) for n in expand_members(["jury-offline"], catalog)]
    recs = [_pair(m, "i", 0.9, 0.1) for m in ("sharpness", "brisque")] + [_pair("random", "i", 0.1, 0.9)]
    out = add_jury_records(cfgs, recs)
    assert out[:3] == recs and [r.judge for r in out[3:]] == ["jury-offline"]
    assert out[3].pred == "0" and out[3].status == "ok"
    mean_cfg = JudgeConfig(name="jm", adapter="jury", tie_threshold=10.0,
                           options={"members": ["sharpness", "brisque"], "method": "mean"})
    assert add_jury_records([mean_cfg], recs)[-1].pred == "tie"  # the jury's own threshold (z units)
    assert add_jury_records([mean_cfg], recs, tie_threshold=0.0)[-1].pred == "0"  # the run's overrides it
