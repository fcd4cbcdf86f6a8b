"""Every Eval Ever export, validated against the package's own JSON schemas (vendored from the
every-eval-ever 0.3.0 wheel: the package needs Python >= 3.12) and its datastore layout rules."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest

from mjbench.export import EEE_SCHEMA_VERSION, export_eee
from mjbench.metrics import compute_metrics
from mjbench.records import read_records, write_records

SCHEMAS = Path(__file__).resolve().parents[1] / "mjbench" / "export" / "schemas"
# the package's path rule (validation_core.check_path_structure): data/collection/developer/model/uuid4 file
UUID4 = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
PATH = re.compile(rf"^data/[^/]+/[^/]+/[^/]+/{UUID4}(\.json|_samples\.jsonl)$")


def validator(name: str) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
    assert schema["version"] == EEE_SCHEMA_VERSION
    return jsonschema.Draft7Validator(schema)


def rec(judge: str, item: str, **kw) -> dict:
    return {"judge": judge, "task": "mj-align", "perspective": "alignment", "subcategory": "object",
            "scale": "score", "item_id": item, "label": "0", "score_0": None, "score_1": None, "pred": None,
            "status": "ok", "prompt": f"a photo number {item}", **kw}


def make_run(folder: Path, with_metrics: bool = True) -> Path:
    rows = [rec("clip", str(i), score_0=0.9, score_1=0.1 if i < 3 else 0.95) for i in range(4)]  # 3/4 right
    for i in range(4):  # API judge in pair mode: agrees in both orders on items 0, 1; item 3 fails
        second = "0" if i < 2 else "1"
        rows += [rec("gpt", str(i), order="01", pred="0", raw_output="Image 1 is better", input_tokens=100,
                     output_tokens=5),
                 rec("gpt", str(i), order="10", pred=second if i < 3 else None,
                     status="ok" if i < 3 else "error", error=None if i < 3 else "HTTP 500",
                     raw_output="Image 2 is better", input_tokens=100, output_tokens=5)]
    rows.append(rec("gpt", "9", label="tie", order="01", pred="0"))  # gold tie: no sample
    rows.append(rec("dead", "0", status="error", error="no key"))  # no valid verdict: accuracy NaN
    rows += [rec("clip", f"b{i}", label=None, perspective="bias", task="mj-bias", score_0=float(i),
                 group="doctor", axes=["age"]) for i in range(3)]
    folder.mkdir()
    write_records(rows, folder / "records.jsonl")
    info = {"records": "records.jsonl", "seed": 0, "tie_threshold": 0.0, "bias_normalization": "minmax",
            "git_revision": "abc", "versions": {"mjbench": "0.1.0"},
            "judges": {"clip": {"adapter": "hf_clip", "model": "openai/clip-vit-base-patch32", "mode": "single"},
                       "gpt": {"adapter": "api", "model": "gpt-4o", "mode": "pair"}},
            "tasks": {"mj-align": {"version": "2024", "source": {"type": "hub", "repo": "MJ-Bench/MJ-Bench",
                                                                 "split": "alignment"}}}}
    (folder / "run.json").write_text(json.dumps(info), encoding="utf-8")
    if with_metrics:
        compute_metrics(read_records([folder / "records.jsonl"])).metrics.to_csv(folder / "metrics.csv",
                                                                                  index=False)
    return folder


@pytest.mark.parametrize("with_metrics", [True, False])
def test_export_validates_against_the_every_eval_ever_schemas(tmp_path, with_metrics):
    run = make_run(tmp_path / "run", with_metrics)
    out = tmp_path / "eee"
    paths = export_eee(run, out, retrieved_timestamp="1700000000")
    rel = sorted(p.relative_to(out).as_posix() for p in paths)
    assert len(rel) == 6 and all(PATH.match(r) for r in rel), rel
    aggregate_v, instance_v = validator("eval.schema.json"), validator("instance_level_eval.schema.json")
    by_model = {}
    for path in paths:
        if path.suffix != ".json":
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        assert not [e.message for e in aggregate_v.iter_errors(data)]
        by_model[data["model_info"]["id"]] = data
        detail = data["detailed_evaluation_results"]
        # the package's companion rules: same folder and UUID, row count, checksum, matching ids
        assert detail["file_path"] == path.relative_to(out).as_posix().replace(".json", "_samples.jsonl")
        text = (out / detail["file_path"]).read_text(encoding="utf-8")
        assert detail["checksum"] == hashlib.sha256(text.encode("utf-8")).hexdigest()
        samples = [json.loads(line) for line in text.splitlines()]
        assert detail["total_rows"] == len(samples)
        for s in samples:
            assert not [e.message for e in instance_v.iter_errors(s)]
            assert (s["evaluation_id"], s["model_id"]) == (data["evaluation_id"], data["model_info"]["id"])
    assert set(by_model) == {"openai/clip-vit-base-patch32", "api/gpt-4o", "mjbench/dead"}
    dead = {r["evaluation_result_id"]: r for r in by_model["mjbench/dead"]["evaluation_results"]}
    assert "mj-align/alignment/ALL/score/acc_with_tie" not in dead  # NaN is left out, never written as 0
    assert dead["mj-align/alignment/ALL/score/invalid_rate"]["score_details"]["score"] == 1.0
    assert "data/mjbench/openai/clip-vit-base-patch32/" in " ".join(rel)

    clip = {r["evaluation_result_id"]: r for r in by_model["openai/clip-vit-base-patch32"]["evaluation_results"]}
    acc = clip["mj-align/alignment/ALL/score/acc_with_tie"]
    assert acc["score_details"]["score"] == 0.75 and acc["score_details"]["uncertainty"]["num_samples"] == 4
    ci = acc["score_details"]["uncertainty"]["confidence_interval"]
    assert ci["lower"] < 0.75 < ci["upper"] and ci["confidence_level"] == 0.95 and "Wilson" in ci["method"]
    assert acc["source_data"] == {"dataset_name": "mj-align", "source_type": "hf_dataset",
                                  "hf_repo": "MJ-Bench/MJ-Bench", "hf_split": "alignment",
                                  "additional_details": {"task_version": "2024"}}
    assert clip["mj-align/alignment/ALL/score/invalid_rate"]["metric_config"]["lower_is_better"] is True
    assert "mj-bias/bias/overall/score/bias_acc" in clip

    gpt = by_model["api/gpt-4o"]
    assert gpt["model_info"]["additional_details"]["deployment_type"] == "externally_managed"
    sample_path = out / gpt["detailed_evaluation_results"]["file_path"]
    samples = {s["sample_id"]: s for s in map(json.loads, sample_path.read_text(encoding="utf-8").splitlines())}
    assert set(samples) == {"0", "1", "2", "3"}  # the gold tie (item 9) has no correctness
    assert [samples[i]["evaluation"]["is_correct"] for i in "0123"] == [True, True, False, False]
    assert samples["2"]["answer_attribution"][0]["extracted_value"] == "tie"  # orders disagree
    assert samples["3"]["error"] == "HTTP 500" and samples["3"]["answer_attribution"][0]["extracted_value"] == ""
    assert samples["0"]["output"]["raw"] == ["Image 1 is better", "Image 2 is better"]
    assert samples["0"]["token_usage"]["total_tokens"] == 210
    assert samples["0"]["evaluation_result_id"] == "mj-align/alignment/object/score/acc_with_tie"


def test_undefined_values_are_left_out_and_export_is_deterministic(tmp_path):
    run = make_run(tmp_path / "run")
    a = export_eee(run, tmp_path / "a", retrieved_timestamp="1")
    b = export_eee(run, tmp_path / "b", retrieved_timestamp="1")
    assert [p.relative_to(tmp_path / "a") for p in a] == [p.relative_to(tmp_path / "b") for p in b]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b, strict=True))
    for path in a:
        text = path.read_text(encoding="utf-8")
        assert "NaN" not in text and "Infinity" not in text
