"""An API VLM judging caption pairs (pair mode, both orders) and a text group (single mode) from the CLI, served
by a local stub: one image per request, the caption templates, verdicts mapped back to text0/text1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from stub_server import StubServer, answer
from typer.testing import CliRunner

from mjbench.cli import app


def prefers_longer_text(request):
    """Pair prompts: the longer of Text A and Text B is funnier; single prompts: the rating is the length."""
    texts = dict(re.findall(r'^Text ([AB]): "(.*)"$', request.text, flags=re.M))
    if texts:
        better = "A" if len(texts["A"]) > len(texts["B"]) else "B"
        return answer(request, f"RATING A: {min(10, len(texts['A']))}\nRATING B: {min(10, len(texts['B']))}\n"
                               f"BETTER: {better}")
    rated = re.search(r'^"(.*)"$', request.text, flags=re.M)
    return answer(request, f"RATING: {min(10, len(rated.group(1)))}")


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("E2E_KEY", "sk-test")
    Image.new("RGB", (16, 16), (200, 180, 20)).save(tmp_path / "cartoon.png")
    pairs = [{"item_id": "p0", "image": "cartoon.png", "text0": "a rather long caption", "text1": "short",
              "label": 0},
             {"item_id": "p1", "image": "cartoon.png", "text0": "tiny", "text1": "much longer one", "label": 1}]
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    group = {"item_id": "g0", "image": "cartoon.png", "candidates": ["ab", "abcdef", "abcd"],
             "gold_scores": [1.0, 3.0, 2.0]}
    (tmp_path / "group.jsonl").write_text(json.dumps(group) + "\n")
    (tmp_path / "pairs.yaml").write_text("name: cap-pairs\nkind: caption_pair\nperspective: humor\n"
                                         "source: {type: table, path: pairs.jsonl}\n")
    (tmp_path / "group.yaml").write_text("name: cap-group\nkind: group\ncandidates: texts\nperspective: humor\n"
                                         "source: {type: table, path: group.jsonl}\n")
    with StubServer(prefers_longer_text) as stub:
        for mode in ("pair", "single"):
            (tmp_path / f"vlm-{mode}.yaml").write_text(
                f"name: vlm-{mode}\nadapter: openai\nfamily: api\nmodel: stub\nmode: {mode}\n"
                f"base_url: {stub.url}/v1\napi_key_env: E2E_KEY\nscales: ['1-10']\n")
        yield tmp_path, stub


def test_api_judge_compares_captions_in_both_orders_and_rates_a_text_group(workspace):
    root, stub = workspace
    out = root / "run"
    res = CliRunner().invoke(app, ["run", "--tasks", str(root / "pairs.yaml"), "--judges", str(root / "vlm-pair.yaml"),
                                   "--out", str(out), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert len(stub.requests) == 4 and all(r.n_images == 1 for r in stub.requests)
    assert all("funn" in r.text and "Text A:" in r.text for r in stub.requests)
    recs = pd.read_json(out / "records.jsonl", lines=True, dtype=False)
    assert set(recs.order) == {"01", "10"} and set(recs.status) == {"ok"}
    assert (recs.pred == recs.label.astype(str)).all()  # the longer text wins, mapped back in both orders
    metrics = pd.read_csv(out / "metrics.csv")
    row = metrics[(metrics.metric == "consistency") & (metrics.subcategory == "ALL")]
    assert row.value.tolist() == [1.0]

    out = root / "group-run"
    seen = len(stub.requests)
    res = CliRunner().invoke(app, ["run", "--tasks", str(root / "group.yaml"), "--judges",
                                   str(root / "vlm-single.yaml"), "--out", str(out), "-q"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    asked = stub.requests[seen:]
    assert len(asked) == 3 and all(r.n_images == 1 and "RATING:" in r.text for r in asked)
    recs = pd.read_json(out / "records.jsonl", lines=True, dtype=False).set_index("candidate")
    assert recs.score_0.to_dict() == {"0": 2.0, "1": 6.0, "2": 4.0}
    metrics = pd.read_csv(out / "metrics.csv")
    values = metrics[metrics.subcategory == "ALL"].set_index("metric").value
    assert values["top1_acc"] == 1.0 and values["kendall_tau"] == 1.0 and values["group_acc"] == 1.0
