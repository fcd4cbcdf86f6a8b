"""Jury judges end to end: `adapter: jury` YAML benchmarked by `mjbench run` beside its members, and used by
`mjbench label`. These tests need the runner hook (`mjbench.jury.expand_members` before the judges are
resolved, `is_jury` skipped in the judging loop, `add_jury_records` before the metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fakes import invoke_cli
from PIL import Image, ImageFilter

from mjbench.jury import jury_records
from mjbench.records import Record, read_jsonl

MEMBERS = ["sharpness", "brisque", "random"]


def _records(path: Path) -> list[Record]:
    return [Record(**row) for row in read_jsonl(path)]


def test_jury_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = invoke_cli("run", "--judges", "jury-offline", "--limit", "3", "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    metrics = pd.read_csv(out / "metrics.csv")
    assert set(metrics.judge) == {*MEMBERS, "jury-offline"}  # members not asked for run too, and stay
    jury = metrics[metrics.judge == "jury-offline"]
    assert set(jury.perspective) == {"alignment", "safety", "quality", "bias", "composition", "visualization"}
    assert set(jury.scale) == {"score"}
    assert (jury[jury.metric == "acc_with_tie"].value.notna()).all()
    board = (out / "leaderboard.md").read_text()
    assert "| jury-offline |" in board and "| sharpness |" in board

    # the jury's rows are exactly those derived from its members' rows
    records = _records(out / "records.jsonl")
    mine = [r for r in records if r.judge == "jury-offline"]
    derived = jury_records("jury-offline", MEMBERS, "vote", [r for r in records if r.judge in MEMBERS])
    assert [r.model_dump() for r in mine] == [r.model_dump() for r in derived]
    assert all(r.order is None and r.status == "ok" for r in mine)
    n_items = len({(r.task, r.item_id) for r in records if r.judge == "sharpness"})
    assert len(mine) == n_items  # one row per item (and scale): no orders
    info = json.loads((out / "run.json").read_text())
    assert "jury-offline" in info["judges"]
    assert set(info["judge_identities"]) == {*MEMBERS, "jury-offline"}  # the hashes keying their answers

    again = invoke_cli("run", "--judges", "jury-offline", "--limit", "3", "--out", str(out), "-q")
    assert again.exit_code == 0, again.output  # resumes from the store; the jury is never asked
    assert _records(out / "records.jsonl") == records


def test_jury_with_a_member_that_cannot_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "judges").mkdir()
    (tmp_path / "judges" / "j-api.yaml").write_text(
        "name: j-api\nadapter: jury\noptions: {members: [sharpness, gpt-4o@1-10], method: mean}\n")
    out = tmp_path / "run"
    res = invoke_cli("run", "--tasks", "synthetic-quality", "--judges", "j-api", "-I", str(tmp_path),
                     "--limit", "3", "--out", str(out), "-q")
    assert res.exit_code == 1, res.output  # finished but incomplete: gpt-4o could not start
    records = _records(out / "records.jsonl")
    mine = [r for r in records if r.judge == "j-api"]
    assert mine and all(r.status == "error" and r.pred is None for r in mine)
    assert all("gpt-4o (error" in (r.error or "") and "a majority (2) is needed" in (r.error or "") for r in mine)
    metrics = pd.read_csv(out / "metrics.csv")
    acc = metrics[(metrics.judge == "j-api") & (metrics.metric == "acc_with_tie")]
    assert acc.value.isna().all()  # a jury that could not answer is n/a, never a 0 % judge


def test_jury_with_an_unknown_member_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "judges").mkdir()
    (tmp_path / "judges" / "j-bad.yaml").write_text(
        "name: j-bad\nadapter: jury\noptions: {members: [sharpness, sharpnes]}\n")
    res = invoke_cli("run", "--judges", "j-bad", "-I", str(tmp_path), "--out", str(tmp_path / "run"), "-q")
    assert res.exit_code == 2
    assert "j-bad.yaml: options.members: unknown judge 'sharpnes'" in res.output
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_jury_list_and_show() -> None:
    listed = invoke_cli("judges", "list")
    assert listed.exit_code == 0 and "jury-offline" in listed.output
    shown = invoke_cli("judges", "show", "jury-offline")
    assert shown.exit_code == 0 and "adapter: jury" in shown.output and "- brisque" in shown.output


def test_jury_labels_candidate_sets(tmp_path: Path) -> None:
    """`mjbench label --judges jury-offline`: the jury labels alone (its members run for it, not beside it)."""
    from mjbench.label import LabelSpec, run_label

    (tmp_path / "img").mkdir()
    rows = []
    for s in range(4):
        base = Image.effect_noise((48, 48), 60 + s).convert("RGB")
        names = []
        for k in range(3):
            name = f"img/s{s}_{k}.png"
            (base.filter(ImageFilter.GaussianBlur(2 * k)) if k else base).save(tmp_path / name)
            names.append(name)
        rows.append({"prompt": f"noise {s}", "images": names[::-1]})
    (tmp_path / "cands.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "cands.yaml").write_text(
        "name: cands\nkind: candidates\nperspective: quality\nsource: {type: table, path: cands.jsonl}\n")
    result = run_label(LabelSpec(tasks=[str(tmp_path / "cands.yaml")], judges=["jury-offline"],
                                 out=tmp_path / "out", quiet=True))
    df = pd.read_parquet(tmp_path / "out" / "preferences.parquet")
    assert result.kept == len(df) > 0
    assert all(list(j) == ["jury-offline"] for j in df.judges)
    assert "chosen_score__jury_offline" in df.columns and "chosen_score__sharpness" not in df.columns
    records = _records(tmp_path / "out" / "records.jsonl")
    assert {r.judge for r in records} == {*MEMBERS, "jury-offline"}
    # each image has one jury score, whatever pair it is in
    per_image: dict[tuple[str, int], set[float]] = {}
    for r in records:
        if r.judge == "jury-offline":
            set_id, pair = r.item_id.rsplit("/", 1)
            i, j = (int(x) for x in pair.split("-"))
            per_image.setdefault((set_id, i), set()).add(r.score_0)
            per_image.setdefault((set_id, j), set()).add(r.score_1)
    assert all(len(v) == 1 for v in per_image.values())


def test_a_jury_identity_changes_with_a_member_identity(tmp_path: Path) -> None:
    """A dataset labelled by a jury records an identity that moves when a member's weights or options do."""
    from mjbench.adapters.base import create_judge
    from mjbench.catalog import Catalog
    from mjbench.store import content_key

    (tmp_path / "judges").mkdir()
    (tmp_path / "judges" / "j.yaml").write_text(
        "name: j\nadapter: jury\noptions: {members: [sharpness, my-random], method: vote}\n")
    ids = []
    for seed in (0, 1):
        (tmp_path / "judges" / "my-random.yaml").write_text(
            f"name: my-random\nadapter: random\noptions: {{seed: {seed}}}\n")
        catalog = Catalog([tmp_path])
        jury = create_judge(catalog.judge("j"))
        jury.catalog = catalog
        ids.append(content_key(jury.identity()))
    assert ids[0] != ids[1]

