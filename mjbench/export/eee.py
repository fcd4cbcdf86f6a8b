"""Every Eval Ever export (schema 0.3.0, package `every-eval-ever`): one aggregate JSON per judge and its
per-sample `_samples.jsonl`, in the datastore layout `data/<collection>/<developer>/<model>/<uuid>.json`.

Mapping (field names from the package's own JSON schemas, vendored in `schemas/` for the tests):
- one aggregate per judge; `model_info.id` is the judge's model id where it has the hub form `org/name`,
  else `<adapter>/<model>` (or `mjbench/<judge>` for judges without a model: heuristics, baselines), since
  the datastore files a model under its id's prefix;
- `evaluation_results`: one per metrics.csv row of the judge with a defined value; `evaluation_result_id`
  = `task/perspective/subcategory/scale/metric`; the interval in `score_details.uncertainty.
  confidence_interval` (with the run's interval method), n in `num_samples`; NaN values (a judge with no
  valid verdict) are left out, never written as 0; the group metrics' correlations (`kendall_tau`,
  `spearman_rho`) have `metric_kind` correlation and `min_score` -1;
- samples: one per pairwise item with a gold preference (gold ties and bias images have no correctness),
  pointing at the item's `acc_with_tie` result; `evaluation.is_correct` is the item's acc_with_tie outcome
  (the combined verdict of both orders in pair mode), `output.raw` the judge's raw outputs (or its scores);
- the file UUID (a version-4 UUID in form) and everything else derive from the run's content, so the same
  run directory gives the same bytes; `retrieved_timestamp` is the modification time of run.json (or of the
  records file), in Unix seconds, unless given.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

EEE_SCHEMA_VERSION = "0.3.0"
_LOWER_IS_BETTER = {"invalid_rate", "tie_rate", "both_orders_invalid_rate", "gold_tie_excluded",
                    "bias_constant_scores", "group_invalid_rate"}
#: group metrics that are correlations in [-1, 1] (mjbench.groups.SIGNED_METRICS), not proportions
_CORRELATIONS = {"kendall_tau", "spearman_rho"}
_LOCAL_ADAPTERS = {"open_clip", "hf_clip", "hf_vlm", "blip_itm", "image_reward", "aesthetic"}
_UNSAFE = re.compile(r'[<>:"\\|?*\x00-\x1f/]')


def export_eee(run_dir: Path | str, out_dir: Path | str, collection: str = "mjbench",
               organization: str = "mjbench", evaluator_relationship: str = "third_party",
               retrieved_timestamp: str | None = None) -> list[Path]:
    """Write the Every Eval Ever files of a run directory under `out_dir` (aggregate JSON and samples JSONL
    per judge, in `data/<collection>/<developer>/<model>/`); returns the paths written."""
    from mjbench.compare import find_records
    from mjbench.metrics import pairwise_verdicts
    from mjbench.records import read_records

    run_dir = Path(run_dir)
    records_path = find_records(run_dir)
    info_path = run_dir / "run.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    records = read_records([records_path])
    if records.empty:
        raise DataError(f"{run_dir}: the run has no records to export")
    metrics = _metrics(run_dir, records, info)
    verdicts, _ = pairwise_verdicts(records, float(info.get("tie_threshold") or 0.0))
    stamp = retrieved_timestamp or str(int((info_path if info_path.is_file() else records_path).stat().st_mtime))
    intervals = info.get("intervals") if isinstance(info.get("intervals"), dict) else {}
    from mjbench.stats import CONFIDENCE, INTERVAL_METHOD

    method = str(intervals.get("method") or INTERVAL_METHOD)
    confidence = float(intervals.get("confidence") or CONFIDENCE)
    written = []
    for judge in sorted(records["judge"].astype(str).unique()):
        cfg = (info.get("judges") or {}).get(judge) or {}
        model = _model_info(judge, cfg)
        developer, name = _path_parts(model["id"])
        evaluation_id = f"{collection}/{model['id']}/{stamp}"
        file_id = _uuid4(evaluation_id)
        folder = Path(out_dir) / "data" / _component(collection) / developer / name
        folder.mkdir(parents=True, exist_ok=True)
        repo_dir = f"data/{_component(collection)}/{developer}/{name}"
        results = _results(metrics[metrics["judge"] == judge], info, method, confidence)
        if not results:
            continue
        aggregate: dict[str, Any] = {
            "schema_version": EEE_SCHEMA_VERSION,
            "evaluation_id": evaluation_id,
            "retrieved_timestamp": stamp,
            "source_metadata": {
                "source_name": f"mjbench run {run_dir.resolve().name}",
                "source_type": "evaluation_run",
                "source_organization_name": organization,
                "evaluator_relationship": evaluator_relationship,
            },
            "model_info": model,
            "eval_library": {"name": "mjbench", "version": str((info.get("versions") or {}).get("mjbench")
                                                                or _version()),
                             "additional_details": _strings({
                                 "git_revision": info.get("git_revision"), "seed": info.get("seed"),
                                 "tie_threshold": info.get("tie_threshold"),
                                 "bias_normalization": info.get("bias_normalization"),
                                 "interval_method": method})},
            "evaluation_results": results,
        }
        samples = _samples(verdicts[verdicts["judge"] == judge], records[records["judge"] == judge],
                           evaluation_id, model["id"])
        sample_path = folder / f"{file_id}_samples.jsonl"
        if samples:
            text = "".join(json.dumps(s, ensure_ascii=False, allow_nan=False) + "\n" for s in samples)
            sample_path.write_text(text, encoding="utf-8")
            aggregate["detailed_evaluation_results"] = {
                "format": "jsonl", "file_path": f"{repo_dir}/{file_id}_samples.jsonl",
                "hash_algorithm": "sha256", "checksum": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                "total_rows": len(samples)}
            written.append(sample_path)
        path = folder / f"{file_id}.json"
        path.write_text(json.dumps(aggregate, ensure_ascii=False, allow_nan=False, indent=2) + "\n",
                        encoding="utf-8")
        written.append(path)
    return sorted(written)


def _metrics(run_dir: Path, records: pd.DataFrame, info: dict[str, Any]) -> pd.DataFrame:
    """The run's published metrics.csv, or the metrics recomputed from its records with its options."""
    import pandas as pd

    path = run_dir / "metrics.csv"
    if path.is_file():
        return pd.read_csv(path, dtype={"judge": str, "task": str, "perspective": str, "subcategory": str,
                                        "scale": str, "metric": str}, keep_default_na=False,
                           na_values={"value": ["", "nan", "NaN"], "ci_low": ["", "nan", "NaN"],
                                      "ci_high": ["", "nan", "NaN"]})
    from mjbench.metrics import compute_metrics, run_metric_options

    return compute_metrics(records, **run_metric_options(info)).metrics


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mjbench")
    except PackageNotFoundError:
        return "unknown"


def _strings(d: dict[str, Any]) -> dict[str, str]:
    """additional_details: the schema wants string values; unset ones are left out."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in d.items() if v is not None}


def _model_info(judge: str, cfg: dict[str, Any]) -> dict[str, Any]:
    adapter, model = cfg.get("adapter"), cfg.get("model")
    if isinstance(model, str) and "/" in model.strip("/"):
        model_id = model.strip("/")
    elif isinstance(model, str) and model:
        model_id = f"{adapter or 'mjbench'}/{model}"
    else:
        model_id = f"mjbench/{judge}"
    api = adapter == "api"
    return {
        "name": judge,
        "id": model_id,
        "inference_platform": "API" if api else "local",
        "additional_details": _strings({
            "deployment_type": "externally_managed" if api else "self_deployed",
            "model_availability": ("closed_weights" if api else "open_weights" if adapter in _LOCAL_ADAPTERS
                                   else "unknown"),
            "adapter": adapter, "revision": cfg.get("revision"), "mode": cfg.get("mode"),
            "family": cfg.get("family")}),
    }


def _component(text: str) -> str:
    """One portable path component (the datastore's rules: no `/ : * ? " < > |`, no trailing dot)."""
    out = _UNSAFE.sub("_", text.strip()).rstrip(". ") or "_"
    return "_data" if out == "data" else out


def _path_parts(model_id: str) -> tuple[str, str]:
    """(developer, model) folders of a model id `org/name[/more]`: the prefix, and the rest joined by `_`."""
    head, _, rest = model_id.partition("/")
    return _component(head), "_".join(_component(p) for p in rest.split("/"))


def _uuid4(text: str) -> str:
    """A version-4 UUID in form, derived from `text` (the same run gives the same file names)."""
    return str(uuid.UUID(bytes=hashlib.sha256(text.encode("utf-8")).digest()[:16], version=4))


def _result_id(task: str, perspective: str, subcategory: str, scale: str, metric: str) -> str:
    return f"{task}/{perspective}/{subcategory}/{scale}/{metric}"


def _source_data(task: str, info: dict[str, Any]) -> dict[str, Any]:
    cfg = (info.get("tasks") or {}).get(task) or {}
    source = cfg.get("source") or {}
    if source.get("type") == "hub" and source.get("repo"):
        out = {"dataset_name": task, "source_type": "hf_dataset", "hf_repo": str(source["repo"])}
        if source.get("split"):
            out["hf_split"] = str(source["split"])
        details = _strings({"revision": source.get("revision"), "task_version": cfg.get("version")})
        return out | ({"additional_details": details} if details else {})
    details = _strings({"source": source.get("type"), "task_version": cfg.get("version"),
                        "license": cfg.get("license") or None})
    return {"dataset_name": task, "source_type": "other"} | ({"additional_details": details} if details else {})


def _results(metrics: pd.DataFrame, info: dict[str, Any], method: str,
             confidence: float) -> list[dict[str, Any]]:
    results = []
    for r in metrics.itertuples(index=False):
        value = float(r.value)
        if not math.isfinite(value):
            continue
        score: dict[str, Any] = {"score": value, "uncertainty": {"num_samples": int(r.n)}}
        lo, hi = float(r.ci_low), float(r.ci_high)
        if math.isfinite(lo) and math.isfinite(hi):
            score["uncertainty"]["confidence_interval"] = {"lower": lo, "upper": hi,
                                                           "confidence_level": confidence, "method": method}
        results.append({
            "evaluation_result_id": _result_id(r.task, r.perspective, r.subcategory, r.scale, r.metric),
            "evaluation_name": f"{r.task}/{r.subcategory}",
            "source_data": _source_data(r.task, info),
            "metric_config": {
                "evaluation_description": f"mjbench {r.metric} on task {r.task}, perspective {r.perspective}, "
                                          f"subcategory {r.subcategory}, feedback scale {r.scale}",
                "metric_id": f"mjbench.{r.metric}",
                "metric_name": str(r.metric),
                "metric_kind": _kind(str(r.metric)),
                "metric_unit": "coefficient" if r.metric in _CORRELATIONS else "proportion",
                "metric_parameters": {"perspective": r.perspective, "subcategory": r.subcategory,
                                      "feedback_scale": r.scale},
                "lower_is_better": r.metric in _LOWER_IS_BETTER,
                "score_type": "continuous",
                "min_score": -1.0 if r.metric in _CORRELATIONS else 0.0,
                "max_score": 1.0,
            },
            "score_details": score,
        })
    return results


def _kind(metric: str) -> str:
    if metric in _CORRELATIONS:
        return "correlation"
    if metric == "ndcg_at_k":
        return "ndcg"
    return "accuracy" if metric.startswith(("acc", "bias_acc", "group_acc", "top1_acc")) else "rate"


def _raw(rec: Any) -> str:
    """A record's raw output, or (scorers) its scores."""
    if isinstance(rec.raw_output, str):
        return rec.raw_output
    order = f"order {rec.order}: " if isinstance(rec.order, str) else ""
    return f"{order}score_0={rec.score_0}, score_1={rec.score_1}, pred={rec.pred}, status={rec.status}"


def _samples(verdicts: pd.DataFrame, records: pd.DataFrame, evaluation_id: str,
             model_id: str) -> list[dict[str, Any]]:
    by_item: dict[tuple[str, str, str], list[Any]] = {}
    for rec in records.itertuples(index=False):
        by_item.setdefault((str(rec.task), str(rec.scale), str(rec.item_id)), []).append(rec)
    samples = []
    scored = verdicts[verdicts["scored"]].sort_values(["task", "scale", "item_id"], kind="mergesort")
    for v in scored.itertuples(index=False):
        recs = sorted(by_item.get((v.task, v.scale, v.item_id), []),
                      key=lambda r: r.order if isinstance(r.order, str) else "")
        prompt = next((r.prompt for r in recs if isinstance(r.prompt, str)), "")
        tokens_in = [int(r.input_tokens) for r in recs if _finite(r.input_tokens)]
        tokens_out = [int(r.output_tokens) for r in recs if _finite(r.output_tokens)]
        statuses = sorted({str(r.status) for r in recs})
        sample: dict[str, Any] = {
            "schema_version": EEE_SCHEMA_VERSION,
            "evaluation_id": evaluation_id,
            "model_id": model_id,
            "evaluation_name": f"{v.task}/{v.subcategory}",
            "evaluation_result_id": _result_id(v.task, v.perspective, v.subcategory, v.scale, "acc_with_tie"),
            "sample_id": str(v.item_id),
            "interaction_type": "single_turn",
            "input": {"raw": prompt, "reference": [str(v.label)], "choices": ["0", "1", "tie"]},
            "output": {"raw": [_raw(r) for r in recs]},
            "answer_attribution": [{"turn_idx": 0, "source": "output.raw",
                                    "extracted_value": str(v.pred) if v.valid else "",
                                    "extraction_method": "mjbench verdict (both orders combined in pair mode)",
                                    "is_terminal": True}],
            "evaluation": {"score": 1.0 if v.correct else 0.0, "is_correct": bool(v.correct)},
            "metadata": {"task": str(v.task), "perspective": str(v.perspective),
                         "subcategory": str(v.subcategory), "feedback_scale": str(v.scale),
                         "status": ",".join(statuses), "valid": str(bool(v.valid)).lower()},
        }
        if tokens_in and tokens_out:
            sample["token_usage"] = {"input_tokens": sum(tokens_in), "output_tokens": sum(tokens_out),
                                     "total_tokens": sum(tokens_in) + sum(tokens_out)}
        errors = [str(r.error) for r in recs if isinstance(r.error, str) and r.error]
        if not v.valid:
            sample["error"] = "; ".join(errors) or f"no valid verdict (status {','.join(statuses)})"
        samples.append(sample)
    return samples


def _finite(x: Any) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
