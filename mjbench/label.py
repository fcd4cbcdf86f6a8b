"""`mjbench label`: judges and juries label unlabelled candidate sets; the chosen pairs become preference
data (DPO).

One execution path: labelling is `run_benchmark` over `kind: candidates` tasks (each set loaded as its
unordered pairs, see `mjbench.sources.candidates`) with its own outputs instead of metrics, so it has the
run's store, resume, concurrency, failure handling, lock and atomic outputs. A single-image judge rates each
image once; a pair-mode judge compares every pair (both orders by default) and an image's score is its share
of wins in the set.

Outputs in the run directory: `preferences.parquet` and `preferences.jsonl` (the same rows),
`preferences.md` and `preferences.html` (kept and dropped pairs, distributions, score coverage; the page adds
plots and a gallery of the kept pairs with the lowest agreement; see `mjbench.report.preferences`),
`records.jsonl` (every judge's answers),
`run.json` (with a `label` section), and `images/` for candidates that had bytes but no path or URL.

Export columns: `prompt`, `chosen`, `rejected` (image path or URL), `images` ([chosen, rejected]: the
layout of TRL's image preference data; cast with `datasets.Image()` to decode), `chosen_hash`,
`rejected_hash`, `chosen_score`, `rejected_score` (jury scores, see `mjbench.jury`), `margin` (their
difference), `agreement`, `n_voters`, `chosen_score__<judge>` / `rejected_score__<judge>` (each judge's raw
score; for pair-mode judges its win share), `judges`, `judge_identities`, `jury`, `policy`, `revision`,
`task`, `set_id`, `group_id`, `chosen_index`, `rejected_index`, and with `--benchmark` `judge_accuracy`
(JSON: judge -> perspective -> acc_with_tie from that run's leaderboard).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mjbench.errors import ConfigError
from mjbench.items import PairItem
from mjbench.jury import METHODS, agreement, jury_scores, zscore, zscore_params
from mjbench.records import Record, write_records
from mjbench.store import content_key

POLICIES = ("best-vs-worst", "best-vs-each", "all-pairs")
#: drop reasons, in the order the filters are applied (a pair is counted under the first that fails)
DROP_REASONS = ("judge_invalid", "tie", "min_margin", "min_agreement", "min_chosen_score")
OUTPUT_NAMES = ("preferences.parquet", "preferences.jsonl", "preferences.md", "preferences.html", "records.jsonl",
                "images", "run.json")


@dataclass
class LabelSpec:
    tasks: Sequence[str]
    judges: Sequence[str]
    out: Path
    jury: str = "mean"
    policy: str = "best-vs-worst"
    min_margin: float = 0.0
    min_agreement: float = 0.0
    min_chosen_score: float | None = None
    seed: int = 0
    scales: Sequence[str] | None = None
    benchmark: Path | None = None  # a `mjbench run` directory: the judges' measured accuracy goes in the export
    include_paths: Sequence[Path | str] = ()
    store: Path | None = None
    device: str | None = None
    quiet: bool = False
    force: bool = False
    hub_mirror: Path | None = None
    engine: str = "local"
    #: VLM judges asked once per aspect: each (judge, aspect) is a jury member `judge:aspect`
    aspects: Sequence[str] = ()


@dataclass
class LabelResult:
    out_dir: Path
    kept: int
    dropped: dict[str, int]
    computed: int
    reused: int
    judge_failures: dict[str, str] = field(default_factory=dict)
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)


def run_label(spec: LabelSpec) -> LabelResult:
    """Check the options, then judge through `run_benchmark` with the preference export as its outputs."""
    from mjbench.catalog import Catalog
    from mjbench.runner import RunSpec, run_benchmark

    if spec.jury not in METHODS:
        raise ConfigError(f"--jury must be one of {', '.join(METHODS)}, not {spec.jury!r}")
    if spec.policy not in POLICIES:
        raise ConfigError(f"--policy must be one of {', '.join(POLICIES)}, not {spec.policy!r}")
    if not 0.0 <= spec.min_agreement <= 1.0:
        raise ConfigError(f"--min-agreement must be in [0, 1], not {spec.min_agreement}")
    for task in Catalog(spec.include_paths).expand_tasks(spec.tasks):
        if task.kind != "candidates":
            raise ConfigError(f"task {task.name}: kind is {task.kind!r}; `mjbench label` needs `kind: candidates` "
                              "(one prompt with two or more images per row)")
    accuracy = _benchmark_accuracy(spec.benchmark, spec.judges) if spec.benchmark else None
    summary: dict[str, Any] = {}

    def write(folder: Path, records: list[Record], items_by_task: dict[str, list[Any]],
              run_info: dict[str, Any]) -> None:
        summary.update(write_preferences(folder, records, items_by_task, run_info, spec, accuracy))

    result = run_benchmark(RunSpec(
        tasks=spec.tasks, judges=spec.judges, scales=spec.scales, out=spec.out, seed=spec.seed,
        include_paths=spec.include_paths, store=spec.store, device=spec.device, quiet=spec.quiet,
        force=spec.force, hub_mirror=spec.hub_mirror, engine=spec.engine, aspects=spec.aspects,
        command="label", write_outputs=write, output_names=OUTPUT_NAMES))
    return LabelResult(result.out_dir, summary["kept"], summary["dropped"], result.computed, result.reused,
                       result.judge_failures, result.failures)


# ----------------------------------------------------------------------------------------------------
# scores per judge and image


@dataclass
class _Set:
    task: str
    set_id: str
    prompt: str
    group_id: str | None
    images: dict[int, Any] = field(default_factory=dict)  # index -> ImageRef


def _sets(items_by_task: dict[str, list[Any]]) -> dict[tuple[str, str], _Set]:
    sets: dict[tuple[str, str], _Set] = {}
    for task, items in items_by_task.items():
        for it in items:
            assert isinstance(it, PairItem)
            key = (task, it.meta["set"])
            s = sets.setdefault(key, _Set(task, it.meta["set"], it.prompt, it.meta.get("group_id")))
            i, j = it.meta["pair"]
            s.images[i], s.images[j] = it.image0, it.image1
    return sets


def _judge_of(member: str) -> str:
    """The judge behind a jury member's name: `judge`, `judge:aspect`, `judge@scale` or `judge:aspect@scale`."""
    return member.split("@")[0].partition(":")[0]


def _asked_judges(spec: LabelSpec) -> set[str]:
    """The names of the judges the user asked for (a YAML path: the name inside it). A jury's members that were
    run only for it are not among them: the jury speaks for them."""
    from mjbench.config import load_judge_file

    return {load_judge_file(Path(j)).name if Path(j).suffix in (".yaml", ".yml") else j for j in spec.judges}


def _member_scores(records: list[Record], judges: set[str] | None = None,
                   ) -> dict[str, dict[tuple[str, str, int], float | None]]:
    """member (judge, or judge@scale where it ran several scales) -> (task, set, image index) -> raw score.
    Single mode: the image's own score. Pair mode: its share of wins (ties count half) over every
    comparison it was in; None if any of them failed. A jury judge's records (`mjbench.jury`) carry its
    set-level score per image, and read as single mode. `judges`: only these judges' records (records of
    `judge:aspect` count as the judge's); None: every record."""
    if judges is not None:
        records = [r for r in records if _judge_of(r.judge) in judges]
    scales: dict[str, set[str]] = {}
    for r in records:
        scales.setdefault(r.judge, set()).add(r.scale)
    single: dict[str, dict[tuple[str, str, int], float | None]] = {}
    wins: dict[str, dict[tuple[str, str, int], list[float | None]]] = {}
    for r in records:
        member = r.judge if len(scales[r.judge]) == 1 else f"{r.judge}@{r.scale}"
        set_id, pair = r.item_id.rsplit("/", 1)
        i, j = (int(x) for x in pair.split("-"))
        keys = ((r.task, set_id, i), (r.task, set_id, j))
        if r.order is None:  # single mode: one rating per image, shared by every pair it is in
            for key, score in zip(keys, (r.score_0, r.score_1), strict=True):
                single.setdefault(member, {})[key] = score
            continue
        outcome = {"0": (1.0, 0.0), "1": (0.0, 1.0), "tie": (0.5, 0.5)}.get(r.pred or "") \
            if r.status == "ok" else None
        for key, k in zip(keys, (0, 1), strict=True):
            wins.setdefault(member, {}).setdefault(key, []).append(None if outcome is None else outcome[k])
    for member, per_image in wins.items():
        single[member] = {key: None if any(w is None for w in ws) else sum(ws) / len(ws)  # type: ignore[misc]
                          for key, ws in per_image.items()}
    return single


# ----------------------------------------------------------------------------------------------------
# pairs


def _policy_pairs(order: list[int], policy: str) -> list[tuple[int, int]]:
    """(chosen, rejected) positions from images ranked best first."""
    if len(order) < 2:
        return []
    if policy == "best-vs-worst":
        return [(order[0], order[-1])]
    if policy == "best-vs-each":
        return [(order[0], k) for k in order[1:]]
    return [(order[a], order[b]) for a in range(len(order)) for b in range(a + 1, len(order))]


def select_pairs(records: list[Record], items_by_task: dict[str, list[Any]], spec: LabelSpec,
                 ) -> tuple[list[dict[str, Any]], dict[str, int], list[str]]:
    """Rows of the export, drop counts by reason, and the members (judges) in order."""
    raw = _member_scores(records, _asked_judges(spec))
    members = sorted(raw)
    params = {m: zscore_params([v for v in raw[m].values() if v is not None]) for m in members}
    rows: list[dict[str, Any]] = []
    dropped = dict.fromkeys(DROP_REASONS, 0)
    for s in _sets(items_by_task).values():
        n = max(s.images) + 1
        keys = [(s.task, s.set_id, k) for k in range(n)]
        own = {m: [raw[m].get(key) for key in keys] for m in members}
        ballots = {m: [zscore(v, params[m]) for v in own[m]] for m in members} if spec.jury == "mean" else own
        scores = jury_scores(ballots, n, spec.jury)
        hashes = [s.images[k].hash for k in range(n)]
        ranked = [k for k in range(n) if scores[k] is not None]
        # best first; equal scores in an order fixed by the seed and the images, never by the file order
        ranked.sort(key=lambda k: (-scores[k], content_key("tie-break", spec.seed, s.set_id, hashes[k])))  # type: ignore[operator]
        for c, r in _policy_pairs(ranked, spec.policy):
            agree, voters = agreement(own, c, r)
            margin = scores[c] - scores[r]  # type: ignore[operator]
            if any(own[m][c] is None or own[m][r] is None for m in members):
                reason = "judge_invalid"
            elif margin <= 0:
                reason = "tie"
            elif margin < spec.min_margin:
                reason = "min_margin"
            elif (agree or 0.0) < spec.min_agreement:
                reason = "min_agreement"
            elif spec.min_chosen_score is not None and scores[c] < spec.min_chosen_score:  # type: ignore[operator]
                reason = "min_chosen_score"
            else:
                reason = None
            if reason:
                dropped[reason] += 1
                continue
            row: dict[str, Any] = {
                "prompt": s.prompt, "chosen": s.images[c], "rejected": s.images[r],
                "chosen_hash": hashes[c], "rejected_hash": hashes[r],
                "chosen_score": scores[c], "rejected_score": scores[r], "margin": margin,
                "agreement": agree, "n_voters": voters, "task": s.task, "set_id": s.set_id,
                "group_id": s.group_id, "chosen_index": c, "rejected_index": r,
            }
            for m in members:
                row[f"chosen_score__{_column(m)}"] = own[m][c]
                row[f"rejected_score__{_column(m)}"] = own[m][r]
            rows.append(row)
    return rows, dropped, members


def _column(member: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", member)


# ----------------------------------------------------------------------------------------------------
# export


def _reference(ref: Any, folder: Path) -> str:
    """A path or URL for an image; bytes without either are written to images/<hash>.<format>."""
    if ref.url:
        return ref.url
    if ref.path is not None:
        return str(Path(ref.path).resolve())
    fmt, _ = ref.header()
    name = f"images/{ref.hash}.{(fmt or 'png').lower()}"
    (folder / "images").mkdir(exist_ok=True)
    (folder / name).write_bytes(ref.read_bytes())
    return name


def write_preferences(folder: Path, records: list[Record], items_by_task: dict[str, list[Any]],
                      run_info: dict[str, Any], spec: LabelSpec,
                      accuracy: dict[str, dict[str, float]] | None) -> dict[str, Any]:
    import pandas as pd

    from mjbench.report.preferences import write_preference_reports

    write_records(records, folder / "records.jsonl")
    rows, dropped, members = select_pairs(records, items_by_task, spec)
    identities = run_info["judge_identities"]  # the hashes that key each judge's answers in the store
    refs: dict[str, Any] = {}  # image hash -> ImageRef: the report's gallery reads its pixels
    for row in rows:
        refs[row["chosen_hash"]], refs[row["rejected_hash"]] = row["chosen"], row["rejected"]
        row["chosen"] = _reference(row["chosen"], folder)
        row["rejected"] = _reference(row["rejected"], folder)
        row["images"] = [row["chosen"], row["rejected"]]
        row.update(judges=members, judge_identities=[identities[_judge_of(m)] for m in members],
                   jury=spec.jury, policy=spec.policy, revision=run_info.get("git_revision") or "unknown")
        if accuracy is not None:
            row["judge_accuracy"] = json.dumps(accuracy, sort_keys=True)
    frame = pd.DataFrame(rows)
    if frame.empty:  # an empty export keeps its columns (every judge's too), so that loaders see the schema
        frame = pd.DataFrame(columns=[
            "prompt", "chosen", "rejected", "images", "chosen_hash", "rejected_hash", "chosen_score",
            "rejected_score", "margin", "agreement", "n_voters", "task", "set_id", "group_id", "chosen_index",
            "rejected_index", *(f"{side}_score__{_column(m)}" for m in members for side in ("chosen", "rejected")),
            "judges", "judge_identities", "jury", "policy", "revision",
            *(["judge_accuracy"] if accuracy is not None else [])])
    frame.to_parquet(folder / "preferences.parquet", index=False)
    frame.to_json(folder / "preferences.jsonl", orient="records", lines=True, force_ascii=False)
    n_sets = len(_sets(items_by_task))
    info = {"jury": spec.jury, "policy": spec.policy, "min_margin": spec.min_margin,
            "min_agreement": spec.min_agreement, "min_chosen_score": spec.min_chosen_score,
            "judges": members, "sets": n_sets, "kept": len(rows), "dropped": dropped,
            "benchmark": str(spec.benchmark) if spec.benchmark else None, "judge_accuracy": accuracy}
    run_info["label"] = info
    # preferences.md and preferences.html, from one summary (mjbench.report.preferences)
    write_preference_reports(folder, frame, info, refs)
    return info


def _benchmark_accuracy(run_dir: Path, judges: Sequence[str]) -> dict[str, dict[str, float]]:
    """judge -> perspective -> acc_with_tie, from a `mjbench run` directory's leaderboard.json."""
    path = Path(run_dir) / "leaderboard.json"
    try:
        board = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--benchmark {run_dir}: cannot read {path} ({exc})") from None
    names = {Path(j).stem for j in judges}
    out: dict[str, dict[str, float]] = {}
    for row in board:
        if row.get("judge") not in names:
            continue
        per = {k.removesuffix("_acc_with_tie"): v for k, v in row.items()
               if k.endswith("_acc_with_tie") and isinstance(v, (int, float))}
        out.setdefault(row["judge"], {}).update(per)
    missing = sorted(names - set(out))
    if missing:
        raise ConfigError(f"--benchmark {run_dir}: no leaderboard row for judge(s) {', '.join(missing)}")
    return out
