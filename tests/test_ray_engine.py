"""The Ray engine gives the records of the local engine, with the driver as the store's only writer.

One local Ray session (2 CPUs) for the whole module: starting Ray costs several seconds.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mjbench.adapters.base import ScoreRequest
from mjbench.cli import app
from mjbench.config import JudgeConfig
from mjbench.engines.ray_engine import JudgeActor, gpus_per_actor, portable
from mjbench.images import ImageRef

runner = CliRunner()
RUN = ["--tasks", "synthetic", "--judges", "random,sharpness", "--limit", "2", "-q"]


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'mjbench[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


# -- without Ray: the pieces the pipeline is made of -------------------------------------------------
def test_requests_travel_with_their_bytes(tmp_path: Path):
    import pickle

    path = tmp_path / "a.png"
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(path)
    ref = ImageRef(path=path)
    sent = pickle.loads(portable(ScoreRequest(image=ref, prompt="p", scale="score", perspective="quality")))
    path.unlink()  # a worker on another machine cannot read the driver's files
    assert sent.image.hash == ref.hash and sent.image.load().size == (8, 8)


def test_an_actor_whose_model_will_not_load_answers_error_per_request(monkeypatch):
    import numpy as np

    from mjbench.adapters.heuristics import RandomJudge

    def fail(self):
        raise OSError("weights not found")

    monkeypatch.setattr(RandomJudge, "setup", fail)
    cfg = JudgeConfig(name="broken", adapter="random")
    actor = JudgeActor(cfg, "score")
    req = ScoreRequest(image=ImageRef(data=b"x"), prompt="p", scale="score", perspective="quality")
    out = actor({"index": np.array([7, 9]), "request": np.array([portable(req)] * 2, dtype=object)})
    assert out["index"].tolist() == [7, 9]
    answers = [json.loads(p) for p in out["response"]]
    assert [a["status"] for a in answers] == ["error", "error"]
    assert answers[0]["error"] == "judge broken cannot run: OSError: weights not found"


@pytest.mark.parametrize("device,family,cluster_gpus,expected", [
    ("cuda", "score", 0, 1), ("cuda:1", "vlm", 4, 1), ("auto", "score", 4, 1), ("auto", "score", 0, 0),
    ("auto", "heuristic", 4, 0), ("cpu", "vlm", 4, 0),
])
def test_gpus_per_actor_follow_the_device(device, family, cluster_gpus, expected):
    cfg = JudgeConfig(name="j", adapter="random", device=device, family=family)
    assert gpus_per_actor(cfg, cluster_gpus) == expected


def test_ray_engine_must_be_installed(monkeypatch):
    import importlib.util

    from mjbench.engines import get_engine

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    res = runner.invoke(app, ["run", *RUN, "--engine", "ray", "--out", "x"])
    assert res.exit_code == 2 and "--engine ray needs Ray: pip install 'mjbench[ray]'" in res.output
    with pytest.raises(Exception, match="--engine must be one of local, ray"):
        get_engine("spark")


# -- on a local Ray instance -----------------------------------------------------------------------
def test_ray_engine_records_equal_the_local_engine(ray_session, tmp_path: Path):
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    assert invoke("run", *RUN, "--out", str(local)).exit_code == 0
    res = invoke("run", *RUN, "--out", str(on_ray), "--engine", "ray", "--ray-actors", "2")
    assert res.exit_code == 0, res.output
    assert (local / "records.jsonl").read_bytes() == (on_ray / "records.jsonl").read_bytes()
    assert (local / "metrics.csv").read_bytes() == (on_ray / "metrics.csv").read_bytes()
    assert json.loads((on_ray / "run.json").read_text())["engine"] == "ray"
    # resume works as locally: everything is read back from the store the driver wrote
    again = invoke("run", *RUN, "--out", str(on_ray), "--engine", "ray")
    assert again.exit_code == 0 and "requests computed: 0," in again.output


def test_ray_engine_runs_a_shard(ray_session, tmp_path: Path):
    """Sharding and Ray compose: a shard's requests go through the actor pool into the shard's store."""
    out = tmp_path / "run"
    res = invoke("run", *RUN, "--out", str(out), "--shard", "1/2", "--engine", "ray")
    assert res.exit_code == 0, res.output
    with sqlite3.connect(out / "shards/1-of-2/store.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] > 0


@pytest.fixture(scope="module")
def tiny_clip_judge(tmp_path_factory) -> Path:
    """A tiny open_clip model as a `local-dir:` folder (config + weights), and a judge YAML naming it: each
    actor loads it itself, with nothing registered in its process beforehand."""
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    ws = tmp_path_factory.mktemp("ws")
    model_dir = ws / "tiny-clip"
    model_dir.mkdir()
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
    }
    (model_dir / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{model_dir}", pretrained=None, load_weights=False)
    torch.save(model.state_dict(), model_dir / "open_clip_pytorch_model.bin")
    (ws / "judges").mkdir()
    (ws / "judges" / "tiny-clip.yaml").write_text(
        f"name: tiny-clip\nadapter: open_clip\nmodel: 'local-dir:{model_dir}'\ndevice: cpu\nbatch_size: 4\n"
        "options: {prefetch_workers: 1}\n")
    return ws


def test_ray_engine_runs_a_real_model_in_its_actors(ray_session, tiny_clip_judge: Path, tmp_path: Path):
    args = ["--tasks", "synthetic-quality", "--judges", "tiny-clip", "--limit", "3", "-q", "-I", str(tiny_clip_judge)]
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    res = invoke("run", *args, "--out", str(local))
    assert res.exit_code == 0, res.output
    res = invoke("run", *args, "--out", str(on_ray), "--engine", "ray")
    assert res.exit_code == 0, res.output
    records = [json.loads(line) for line in (on_ray / "records.jsonl").read_text().splitlines()]
    assert records and all(r["status"] == "ok" for r in records)
    assert (local / "records.jsonl").read_bytes() == (on_ray / "records.jsonl").read_bytes()
