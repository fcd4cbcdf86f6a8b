"""From the CLI with nothing but a judge YAML: an OpenAI-compatible judge served by a local stub."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from stub_server import StubServer, answer
from typer.testing import CliRunner

from mjbench.cli import app

SECRET = "sk-e2e-SECRET-987654321"


def position_biased(request):
    """Always prefers the first image shown; answers one caption off-format."""
    if "RATING A" in request.text:
        return answer(request, "Image A is better.\nRATING A: 8\nRATING B: 4\nBETTER: A")
    if request.index % 7 == 3:
        return answer(request, "I like it a lot!")
    return answer(request, "Fine.\nRATING: 6")


@pytest.fixture
def judge_yaml(tmp_path: Path, monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("E2E_KEY", SECRET)
    with StubServer(position_biased) as stub:
        path = tmp_path / "local-judge.yaml"
        path.write_text(
            "name: local-vlm\nadapter: openai\nfamily: api\nmodel: stub-model\nmode: pair\n"
            f"base_url: {stub.url}/v1\napi_key_env: E2E_KEY\nscales: ['1-10']\nmax_concurrency: 4\n")
        yield path, stub


def test_cli_run_with_api_judge_yaml(judge_yaml, tmp_path: Path):
    path, stub = judge_yaml
    out = tmp_path / "run"
    args = ["run", "--judges", str(path), "--tasks", "synthetic-quality,synthetic-bias", "--limit", "6",
            "--out", str(out), "-q"]
    res = CliRunner().invoke(app, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    recs = pd.read_json(out / "records.jsonl", lines=True, dtype=False)
    pairs = recs[recs.perspective == "quality"]
    assert sorted(pairs.order.unique()) == ["01", "10"] and len(pairs) == 2 * 6
    assert set(pairs.status) == {"ok"}
    # a judge that always picks the first image shown is caught: its two orders never agree
    metrics = pd.read_csv(out / "metrics.csv")
    consistency = metrics[(metrics.metric == "consistency") & (metrics.subcategory == "ALL")]
    assert consistency.value.tolist() == [0.0]
    bias = recs[recs.perspective == "bias"]
    assert len(bias) == 6 and "parse_error" in set(bias.status)  # off-format answers are counted, not guessed
    assert bias[bias.status == "parse_error"].raw_output.str.contains("I like it").all()
    for file in out.rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file
    seen = len(stub.requests)
    again = CliRunner().invoke(app, args, catch_exceptions=False)
    assert again.exit_code == 0 and len(stub.requests) == seen  # resumed: nothing asked twice
    assert json.loads((out / "run.json").read_text())["counts"]["requests_computed"] == 0


def test_cli_run_with_two_replicas_matches_one_server_and_shares_its_cache(tmp_path: Path, monkeypatch):
    """Data parallelism across machines: one judge, a round-robin list of servers. The records equal a
    single-server run's, and the cache key ignores the replicas: a run against a different set resumes."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)

    def judge(path: Path, base_url: str) -> Path:
        path.write_text("name: served-vlm\nadapter: openai\nfamily: api\nmodel: stub-model\nmode: pair\n"
                        f"base_url: {base_url}\nscales: ['1-10']\nmax_concurrency: 4\n")
        return path

    def run(judge_path: Path, out: Path) -> pd.DataFrame:
        args = ["run", "--judges", str(judge_path), "--tasks", "synthetic-quality", "--limit", "6",
                "--out", str(out), "-q"]
        res = CliRunner().invoke(app, args, catch_exceptions=False)
        assert res.exit_code == 0, res.output
        recs = pd.read_json(out / "records.jsonl", lines=True, dtype=False)
        return recs.drop(columns=[c for c in ("latency_s",) if c in recs]).sort_values(
            ["item_id", "order"]).reset_index(drop=True)

    with StubServer(position_biased) as a, StubServer(position_biased) as b, StubServer(position_biased) as c:
        two = run(judge(tmp_path / "two.yaml", f"[{a.url}/v1, {b.url}/v1]"), tmp_path / "two")
        assert len(a.requests) == len(b.requests) == 6  # 6 pairs x 2 orders, split evenly
        one = run(judge(tmp_path / "one.yaml", f"{a.url}/v1"), tmp_path / "one")
        pd.testing.assert_frame_equal(two, one)
        # the same store, another replica set: everything is read from the cache, nothing is asked
        seen = len(a.requests) + len(b.requests) + len(c.requests)
        again = run(judge(tmp_path / "two.yaml", f"[{a.url}/v1, {c.url}/v1]"), tmp_path / "two")
        assert len(a.requests) + len(b.requests) + len(c.requests) == seen
        assert json.loads((tmp_path / "two" / "run.json").read_text())["counts"]["requests_computed"] == 0
        pd.testing.assert_frame_equal(again, two)
