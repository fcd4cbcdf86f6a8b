"""The runner: plans judge x task x scale x order, reads finished work from the store, asks the judges
for the rest (batched for local models, concurrent for APIs), and turns responses into records.

Judging and meta-evaluation stay separate: this module never computes accuracy itself beyond mapping a
judge's answer back to the item (`pred`); metrics come from `mjbench.metrics` over the records.
"""

from __future__ import annotations

import logging
import platform
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench import __version__
from mjbench.adapters.base import ADAPTERS, Judge, PairRequest, Response, ScoreRequest, create_judge
from mjbench.catalog import Catalog
from mjbench.config import JudgeConfig, TaskConfig
from mjbench.errors import ConfigError, ItemError, MjbenchError
from mjbench.items import BiasItem, CaptionPairItem, GroupItem, Item, PairItem
from mjbench.metrics import derive_pred
from mjbench.records import Record, write_records
from mjbench.redact import redact, redact_response, register_secret_env
from mjbench.rundir import OUTPUT_NAMES, RunDirectory
from mjbench.shard import Shard, check_shard_runs, merge_stores
from mjbench.store import ResultStore, StoreError, content_key

if TYPE_CHECKING:
    import pandas as pd

    from mjbench.engines import LocalEngine

log = logging.getLogger("mjbench")

DEFAULT_TASKS = ("synthetic",)
DEFAULT_JUDGES = ("random", "sharpness", "brisque")
DEFAULT_RUN_NAME = "default"
#: worst status wins when two requests make one record
_STATUS_RANK = {"ok": 0, "parse_error": 1, "refused": 2, "error": 3}
#: failure reasons are shortened to this many characters in summaries
_REASON_CHARS = 160


@dataclass
class RunSpec:
    tasks: Sequence[str] = DEFAULT_TASKS
    judges: Sequence[str] = DEFAULT_JUDGES
    scales: Sequence[str] | None = None
    out: Path | None = None
    limit: int | None = None
    seed: int = 0
    include_paths: Sequence[Path | str] = ()
    store: Path | None = None  # default: <out>/store.sqlite
    tie_threshold: float | None = None  # overrides each judge's own
    bias_normalization: str = "minmax"  # minmax, scale or none (mjbench.metrics)
    bias_average: str = "items"  # per axis over items, or over groups as MJ-Bench's tables
    #: task -> the task whose items fit its tie epsilon ("*": every task); default: its own items
    calibrate_on: dict[str, str] = field(default_factory=dict)
    records_format: str = "jsonl"
    device: str | None = None
    quiet: bool = False
    force: bool = False  # replace the outputs of a different run in `out`
    gallery_max: int = 12  # failure gallery: items per judge, scale and subcategory
    #: read hub repositories from local snapshots at `<hub_mirror>/<owner>/<name>/` instead of the hub
    hub_mirror: Path | None = None
    #: judge only the requests of this shard, into `<out>/shards/I-of-N/` (its store and run.json)
    shard: Shard | None = None
    #: merge these stores into the run's store and write the outputs from it; nothing is judged
    merge_from: Sequence[Path] = ()
    engine: str = "local"  # where local-model judges run: local or ray (mjbench.engines)
    #: ask judges whose prompt uses the perspective (VLMs) once per aspect (mjbench.prompts.aspects());
    #: their records are named `judge:aspect`. Other judges give their one score.
    aspects: Sequence[str] = ()
    ndcg_k: int = 10  # groups of candidates: the k of ndcg_at_k (mjbench.groups)
    ray_actors: int | None = None  # cap on the Ray actor pool (default: one per GPU, or per CPU)
    #: another command's outputs from the same judging (`mjbench label`): write_outputs(folder, records,
    #: items_by_task, run_info) replaces the benchmark's records, metrics and reports, owning output_names
    command: str = "run"
    write_outputs: Callable[..., None] | None = None
    output_names: Sequence[str] = OUTPUT_NAMES

    def requested(self) -> dict[str, Any]:
        """What identifies the run a run directory holds (run.json "requested")."""
        requested = {"tasks": list(self.tasks), "judges": list(self.judges),
                     "scales": list(self.scales) if self.scales else None, "limit": self.limit, "seed": self.seed}
        return requested | ({"aspects": list(self.aspects)} if self.aspects else {})

    def resolved_out(self) -> Path:
        if self.out is not None:
            return Path(self.out)
        if tuple(self.tasks) == DEFAULT_TASKS and tuple(self.judges) == DEFAULT_JUDGES:
            return Path("results") / DEFAULT_RUN_NAME
        stem = "_".join(Path(n).stem for n in [*self.tasks, *self.judges])
        stem = re.sub(r"[^A-Za-z0-9._+-]+", "-", stem)[:60]
        return Path("results") / f"{stem}-{content_key(list(self.tasks), list(self.judges))[:8]}"


@dataclass
class RunResult:
    out_dir: Path
    records: pd.DataFrame
    metrics: Any  # mjbench.metrics.MetricsResult
    problems: list[str] = field(default_factory=list)
    judge_failures: dict[str, str] = field(default_factory=dict)
    #: per judge with failed requests: {"requests": n failed, "of": n planned, "reasons": {reason: count}}
    failures: dict[str, dict[str, Any]] = field(default_factory=dict)
    computed: int = 0
    reused: int = 0
    timings: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class _Unit:
    """One request to a judge; many records may share it."""

    key: str
    request: ScoreRequest | PairRequest
    response: Response | None = None


@dataclass
class _Planned:
    """One future record: the item, its scale and order, and the units that answer it. Group items plan one
    record per candidate (`candidate`: its index); in pair mode `sides` says, per unit, where the candidate
    was shown (0 = first, 1 = second)."""

    item: Item
    scale: str
    order: str | None
    keys: tuple[str, ...]
    pre_error: str | None = None  # e.g. an unreadable image: no request could be made
    aspect: str | None = None
    candidate: int | None = None
    sides: tuple[int, ...] = ()


# ----------------------------------------------------------------------------------------------------
# planning


def _image_hash(ref: Any) -> str:
    h = ref.hash
    ref.release()  # path-backed bytes are read again only if a request needs them
    return h


def _orders(orders: Sequence[str], item: Item, seed: int, *salt: Any) -> list[str]:
    """The image orders to ask for an item (or one pair of a group's candidates, named by `salt`); `random`
    draws one order per item from the seed and the item id."""
    if list(orders) != ["random"]:
        return list(orders)
    draw = int(content_key("order", seed, item.task, item.item_id, *salt)[:8], 16)
    return ["01" if draw % 2 == 0 else "10"]


def _plan_judge(
    judge: Judge, judge_id: str, items_by_task: dict[str, list[Item]], scales: Sequence[str],
    seed: int = 0, task_labels: dict[str, tuple[str, ...]] | None = None, aspects: Sequence[str] = (),
    task_aspects: dict[str, tuple[str, ...]] | None = None,
) -> tuple[dict[str, _Unit], list[_Planned]]:
    """Units keyed by what determines the answer: the perspective only for judges whose request text
    depends on it (scorers rate an (image, prompt) once for all perspectives), and for pairs the shown
    order, so that two byte-identical images still get one answer per order.

    Item shapes: a pair of images (two ratings, or one comparison per order); a caption pair (one image,
    two texts: the same, with the texts rated or compared for the image); a group of N candidates (each
    rated once in single mode, so a group costs N requests; in pair mode every pair, in the judge's orders,
    and a candidate's score is its share of wins); a bias item (one rating). `aspects` (judges whose prompt
    uses the perspective only): every request is asked once per aspect, and the records carry the judge's
    name as `judge:aspect`; without them, a task's own `aspects` (`task_aspects`) apply to its items."""
    cfg = judge.config
    # a judge that never looks at pixels (precomputed) is keyed by task + item id (+ image index or order):
    # its items' images are never read, so missing image files and URLs are fine for it
    needs_pixels = judge.capabilities.needs_pixels
    keyed_by_item = judge.capabilities.keyed_by_item or not needs_pixels
    uses_perspective = judge.capabilities.uses_perspective

    def aspects_of(task: str) -> tuple[str | None, ...]:
        wanted = tuple(aspects) or (task_aspects or {}).get(task, ())
        return wanted if wanted and uses_perspective else (None,)

    def perspective_of(item: Item) -> str | None:
        return item.perspective if uses_perspective else None

    single_ok = "single" in judge.capabilities.modes
    units: dict[str, _Unit] = {}
    planned: list[_Planned] = []
    skipped_single = 0

    def rate(item: Item, idx: int | None, ref: Any, image_hash: str | None, scale: str, aspect: str | None,
             text: str | None = None) -> str:
        """The key of one rating: the image for the item's prompt, or a text rated for the image."""
        rated = item.prompt if text is None else text
        extra = (item.task, item.item_id, idx) if keyed_by_item else ()
        # VLM judges word a text rating differently (caption templates): only they carry the mark
        marks = (("text",) if text is not None and uses_perspective else ()) + (("aspect", aspect) if aspect else ())
        key = content_key(judge_id, "single", image_hash, rated, scale, perspective_of(item), *extra, *marks)
        units.setdefault(key, _Unit(key, ScoreRequest(
            image=ref, prompt=rated, scale=scale, perspective=item.perspective, task=item.task,
            item_id=item.item_id, image_index=idx, rates="image" if text is None else "text", aspect=aspect)))
        return key

    def compare(item: Item, order: str, refs: tuple[Any, Any], hashes: tuple[str | None, str | None], scale: str,
                aspect: str | None, texts: tuple[str, str] | None = None, where: tuple[Any, ...] = ()) -> str:
        """The key of one comparison, in the shown order (`where`: which of a group's pairs, for keyed judges)."""
        labels = (task_labels or {}).get(item.task)
        # four-class tasks ask a different question: only they carry their labels in the key
        asked = ("labels", *labels) if labels and "both_bad" in labels else ()
        extra = (item.task, item.item_id, *where) if keyed_by_item else ()
        marks = (("texts", *texts) if texts else ()) + (("aspect", aspect) if aspect else ())
        key = content_key(judge_id, "pair", order, hashes[0], hashes[1], item.prompt, scale, perspective_of(item),
                          *extra, *asked, *marks)
        units.setdefault(key, _Unit(key, PairRequest(
            images=refs, prompt=item.prompt, scale=scale, perspective=item.perspective, order=order,
            task=item.task, item_id=item.item_id, labels=labels, texts=texts, aspect=aspect)))
        return key

    def plan_two(item: PairItem | CaptionPairItem, hashes: list[str | None], scale: str, aspect: str | None) -> None:
        texts = item.texts if isinstance(item, CaptionPairItem) else None
        refs = (item.image, item.image) if texts else item.images
        hs = (hashes[0], hashes[0]) if texts else (hashes[0], hashes[1])
        if cfg.mode == "single":
            keys = tuple(rate(item, i, refs[i], hs[i], scale, aspect, texts[i] if texts else None) for i in (0, 1))
            planned.append(_Planned(item, scale, None, keys, aspect=aspect))
            return
        for order in _orders(cfg.orders, item, seed):
            a, b = (0, 1) if order == "01" else (1, 0)
            key = compare(item, order, (refs[a], refs[b]), (hs[a], hs[b]), scale, aspect,
                          (texts[a], texts[b]) if texts else None)
            planned.append(_Planned(item, scale, order, (key,), aspect=aspect))

    def plan_group(item: GroupItem, hashes: list[str | None], scale: str, aspect: str | None) -> None:
        texts = item.candidate_texts
        n = len(item.candidates)
        ref_of = (lambda i: item.image) if texts is not None else (lambda i: item.candidates[i])
        hash_of = (lambda i: hashes[0]) if texts is not None else (lambda i: hashes[i])
        if cfg.mode == "single":  # scores suffice: each candidate rated once
            for i in range(n):
                key = rate(item, i, ref_of(i), hash_of(i), scale, aspect, texts[i] if texts is not None else None)
                planned.append(_Planned(item, scale, None, (key,), aspect=aspect, candidate=i))
            return
        seen: list[list[tuple[str, int]]] = [[] for _ in range(n)]  # per candidate: (unit key, shown side)
        for i in range(n):
            for j in range(i + 1, n):
                for order in _orders(cfg.orders, item, seed, i, j):
                    a, b = (i, j) if order == "01" else (j, i)
                    key = compare(item, order, (ref_of(a), ref_of(b)), (hash_of(a), hash_of(b)), scale, aspect,
                                  (texts[a], texts[b]) if texts is not None else None, where=(a, b))
                    seen[a].append((key, 0))
                    seen[b].append((key, 1))
        for i in range(n):
            planned.append(_Planned(item, scale, None, tuple(k for k, _ in seen[i]), aspect=aspect, candidate=i,
                                    sides=tuple(side for _, side in seen[i])))

    for task_items in items_by_task.values():
        for item in task_items:
            for scale in scales:
                try:
                    hashes = [_image_hash(ref) if needs_pixels else None for ref in item.images]
                except ItemError as exc:
                    why = f"item {item.item_id}: {exc}"
                    rows = range(len(item.candidates)) if isinstance(item, GroupItem) else [None]
                    planned.extend(_Planned(item, scale, None, (), pre_error=why, candidate=i) for i in rows)
                    continue
                for aspect in aspects_of(item.task):
                    if isinstance(item, BiasItem):
                        if not single_ok:  # a pair-only judge cannot rate single images: no bias rows
                            skipped_single += 1
                            continue
                        planned.append(_Planned(item, scale, None, (rate(item, None, item.image, hashes[0], scale,
                                                                          aspect),), aspect=aspect))
                    elif isinstance(item, GroupItem):
                        plan_group(item, hashes, scale, aspect)
                    else:
                        plan_two(item, hashes, scale, aspect)
    if skipped_single:
        log.warning("judge %s compares pairs only: %d single-image (bias) requests skipped, no bias metrics",
                    cfg.name, skipped_single)
    text_rated = sum(1 for u in units.values() if isinstance(u.request, ScoreRequest) and u.request.rates == "text")
    if text_rated and getattr(judge, "text_mode", None) == "none":
        log.warning("judge %s rates images without reading any text: its %d ratings of texts (captions) give every "
                    "text of an image the same score, so its caption pairs are ties and its text groups constant",
                    cfg.name, text_rated)
    return units, planned


# ----------------------------------------------------------------------------------------------------
# records


def _sum(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _record(judge_name: str, p: _Planned, units: dict[str, _Unit], threshold: float) -> Record:
    item = p.item
    base: dict[str, Any] = dict(
        judge=judge_name if p.aspect is None else f"{judge_name}:{p.aspect}", task=item.task,
        perspective=item.perspective, subcategory=item.subcategory, item_id=item.item_id, scale=p.scale,
        prompt=item.prompt, order=p.order,
        label=item.label if isinstance(item, PairItem | CaptionPairItem) else None,
    )
    if isinstance(item, PairItem | CaptionPairItem):  # graded and soft gold labels travel with the records
        base.update(label_strength=item.label_strength, label_prob=item.label_prob)
    if isinstance(item, CaptionPairItem):
        base.update(text0=item.text0, text1=item.text1)
    if isinstance(item, GroupItem):
        return _group_record(base, p, units, threshold)
    base.update({f"image{i}_url": ref.url for i, ref in enumerate(item.images)})  # where a URL image came from
    if isinstance(item, BiasItem):
        base.update(group=item.group, demographic=item.demographic, axes=list(item.axes))
    if p.pre_error is not None:
        return Record(**base, score_0=None, score_1=None, pred=None, status="error", error=p.pre_error)
    responses = [units[k].response or Response.failure("no answer (interrupted)") for k in p.keys]
    status, common = _combined(responses)
    raws = [r.raw_output for r in responses]
    if isinstance(item, BiasItem):
        r = responses[0]
        return Record(**base, **common, score_0=r.score if r.status == "ok" else None, score_1=None,
                      pred=None, raw_output=raws[0])
    if p.order is None:  # single mode: two ratings compared with the threshold
        s0, s1 = (r.score if r.status == "ok" else None for r in responses)
        names = ("text0", "text1") if isinstance(item, CaptionPairItem) else ("image0", "image1")
        raw = None if all(x is None for x in raws) else f"[{names[0]}] {raws[0] or ''}\n[{names[1]}] {raws[1] or ''}"
        pred = derive_pred(s0, s1, threshold) if status == "ok" else None
        return Record(**base, **common, score_0=s0, score_1=s1, pred=pred, raw_output=raw)
    r = responses[0]  # pair mode: map the shown order back to the item's images
    s0, s1, pred = _shown_back(r, p.order == "10", threshold)
    return Record(**base, **common, score_0=s0, score_1=s1, pred=pred, raw_output=raws[0])


def _combined(responses: list[Response]) -> tuple[str, dict[str, Any]]:
    """The worst status of the responses behind one record, and their summed usage."""
    status = max((r.status for r in responses), key=_STATUS_RANK.__getitem__)
    errors = [r.error for r in responses if r.error]
    return status, dict(
        status=status,
        error="; ".join(errors) if errors else None,
        attempts=_sum([r.attempts for r in responses]),
        latency_s=_sum([r.latency_s for r in responses]),
        input_tokens=_sum([r.input_tokens for r in responses]),
        output_tokens=_sum([r.output_tokens for r in responses]),
        cost_usd=_sum([r.cost_usd for r in responses]),
    )


def _shown_back(r: Response, flip: bool, threshold: float) -> tuple[Any, Any, str | None]:
    """A comparison's scores and verdict mapped from the shown order back to the item's (0, 1)."""
    shown_scores = r.scores or (None, None)
    s0, s1 = (shown_scores[1], shown_scores[0]) if flip else shown_scores
    pred = None
    if r.status == "ok":
        if r.verdict is not None:
            pred = {"0": "1", "1": "0"}.get(r.verdict, r.verdict) if flip else r.verdict  # tie, both_bad stay
        else:
            pred = derive_pred(s0, s1, threshold)
    return s0, s1, pred


def _group_record(base: dict[str, Any], p: _Planned, units: dict[str, _Unit], threshold: float) -> Record:
    """One row per candidate of a group: its score in `score_0` (single mode: its rating; pair mode: its share
    of wins over every comparison it was in, a tie counting half, and no score if any comparison failed) and
    the group's gold for it."""
    item = p.item
    assert isinstance(item, GroupItem) and p.candidate is not None
    i = p.candidate
    ref = item.image if item.candidate_texts is not None else item.candidates[i]
    base.update(
        candidate=item.candidate_ids[i], image0_url=getattr(ref, "url", None),
        text0=item.candidate_texts[i] if item.candidate_texts is not None else None,
        gold_score=item.gold_scores[i] if item.gold_scores is not None else None,
        gold_rank=item.gold_ranks[i] if item.gold_ranks is not None else None,
        gold_best=(i in item.gold_best) if item.gold_best is not None else None,
    )
    if p.pre_error is not None:
        return Record(**base, score_0=None, score_1=None, pred=None, status="error", error=p.pre_error)
    responses = [units[k].response or Response.failure("no answer (interrupted)") for k in p.keys]
    status, common = _combined(responses)
    if not p.sides:  # single mode
        r = responses[0]
        return Record(**base, **common, score_0=r.score if r.status == "ok" else None, score_1=None, pred=None,
                      raw_output=r.raw_output)
    score = None
    if status == "ok":
        won = 0.0
        for r, side in zip(responses, p.sides, strict=True):
            _, _, verdict = _shown_back(r, False, threshold)
            won += 1.0 if verdict == str(side) else 0.0 if verdict in ("0", "1") else 0.5
        score = won / len(responses)
    return Record(**base, **common, score_0=score, score_1=None, pred=None)


# ----------------------------------------------------------------------------------------------------
# execution


class _Progress:
    """A rich progress bar with rate, ETA and failures so far; silent in quiet mode."""

    def __init__(self, quiet: bool):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.quiet = quiet
        self.bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), TextColumn("{task.fields[failed]} failed"),
            disable=quiet, transient=False,
        )

    def __enter__(self) -> _Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def track(self, description: str, total: int) -> Callable[[int, int], None]:
        task = self.bar.add_task(description, total=total, rate="", failed=0)
        start, done, failed = time.monotonic(), [0], [0]

        def advance(n: int, n_failed: int) -> None:
            done[0] += n
            failed[0] += n_failed
            rate = done[0] / max(time.monotonic() - start, 1e-9)
            self.bar.update(task, advance=n, rate=f"{rate:.1f}/s", failed=failed[0])

        return advance


def _execute(judge: Judge, pending: list[_Unit], store: ResultStore, judge_name: str,
             progress: _Progress, engine: LocalEngine) -> None:
    """Ask the judge for every pending unit, storing final answers as they arrive. A store that cannot
    keep an answer (StoreError) stops the judge at once: no further request is sent."""
    if not pending:
        return
    advance = progress.track(f"{judge_name}", len(pending))
    singles = [u for u in pending if isinstance(u.request, ScoreRequest)]
    pairs = [u for u in pending if isinstance(u.request, PairRequest)]

    def deliver(units: list[_Unit], answered: list[tuple[int, Response]]) -> None:
        batch = [(units[idx].key, redact_response(resp)) for idx, resp in answered]
        store.put_many(judge_name, batch)  # stored first: a unit with a response is a kept answer
        for (idx, _), (_, resp) in zip(answered, batch, strict=True):
            units[idx].response = resp
        advance(len(answered), sum(1 for _, r in answered if r.status != "ok"))

    for units, kind in ((singles, "score"), (pairs, "compare")):
        if not units:
            continue
        requests = [u.request for u in units]
        try:
            if judge.capabilities.concurrent:
                from mjbench.policy import run_requests_sync

                call = judge.ascore if kind == "score" else judge.acompare
                run_requests_sync(call, requests, judge.config,
                                  lambda i, r, units=units: deliver(units, [(i, r)]))
            else:
                for answered in engine.batches(judge, requests, kind):  # type: ignore[arg-type]
                    deliver(units, answered)
        except (KeyboardInterrupt, SystemExit, StoreError):
            raise
        except Exception as exc:  # an adapter bug or a fatal model error: record it, keep the run going
            message = redact(f"judge {judge_name} failed: {type(exc).__name__}: {exc}")
            log.error(message)
            missing = [(i, Response.failure(message)) for i, u in enumerate(units) if u.response is None]
            if missing:
                deliver(units, missing)


def _reuse(judge: Judge, units: dict[str, _Unit], store: ResultStore, judge_name: str) -> int:
    """Fill units from the store, each answer brought up to date by `judge.refresh` (e.g. re-parsed by a
    newer parser); answers that changed are stored again. Nothing is asked of the judge."""
    stored = store.get_many(list(units))
    changed = []
    for key, old in stored.items():
        new = redact_response(judge.refresh(units[key].request, old))
        units[key].response = new
        if new != old:
            changed.append((key, new))
    if changed:
        store.put_many(judge_name, changed)
        log.info("judge %s: %d stored answers refreshed without asking the judge", judge_name, len(changed))
    return len(stored)


def _short(reason: str) -> str:
    line = " ".join(reason.split())
    return line if len(line) <= _REASON_CHARS else line[: _REASON_CHARS - 3] + "..."


def _judge_failures(units: dict[str, _Unit], planned: list[_Planned]) -> dict[str, Any] | None:
    """How many of a judge's requests ended in `error`, and the distinct reasons with their counts."""
    reasons: Counter[str] = Counter()
    for u in units.values():
        resp = u.response or Response.failure("no answer (interrupted)")
        if resp.status == "error":
            reasons[_short(resp.error or "unknown error")] += 1
    for p in planned:
        if p.pre_error is not None:
            reasons[_short(p.pre_error)] += 1
    if not reasons:
        return None
    n_pre = sum(1 for p in planned if p.pre_error is not None)
    return {"requests": sum(reasons.values()), "of": len(units) + n_pre, "reasons": dict(reasons.most_common())}


def _register_secrets(cfg: JudgeConfig) -> None:
    """Every environment variable that may hold this judge's key: its values are masked in every message."""
    register_secret_env(cfg.api_key_env)
    try:
        cls = ADAPTERS.get(cfg.adapter)
    except MjbenchError:
        return
    env = getattr(cls, "key_env", None)
    register_secret_env(env(cfg) if callable(env) else env)
    register_secret_env(getattr(cls, "default_key_env", None))


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file, then rename)."""
    import json
    import os

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _versions() -> dict[str, str]:
    out = {"mjbench": __version__, "python": platform.python_version()}
    for dist in ("numpy", "pandas", "pyarrow", "pillow", "pydantic", "torch", "torchvision",
                 "open_clip_torch", "transformers", "datasets", "httpx", "brisque"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _judge_scales(cfg: JudgeConfig, wanted: Sequence[str] | None) -> list[str]:
    from mjbench.scales import get_scale

    for s in cfg.scales:
        get_scale(s)  # unknown scale names in a judge YAML fail early, with suggestions
    return [s for s in cfg.scales if wanted is None or s in wanted]


def _task_counts(loaded: Any) -> dict[str, Any]:
    """Items loaded and dropped for one task, with the reasons for dropping. A source that lists its
    problems without counting them (`dropped` empty, e.g. a plugin) still shows how many it dropped."""
    why = dict(loaded.dropped) or ({"item problems": len(loaded.problems)} if loaded.problems else {})
    return {"loaded": len(loaded.items), "dropped": sum(why.values()), "why": why}


def run_benchmark(spec: RunSpec) -> RunResult:
    """Run judges over tasks; write the run directory; return records and metrics.

    Everything a user can get wrong (names, options, scales, limit) is checked before the run directory is
    touched. The run directory is locked for the whole run, and its outputs are replaced only once the new
    ones are complete. A store that cannot be written stops judging (StoreError)."""
    from mjbench.metrics import compute_metrics
    from mjbench.records import read_records, records_frame
    from mjbench.report import write_run_outputs
    from mjbench.sources import load_task

    started = time.time()
    if spec.limit is not None and spec.limit < 1:
        raise ConfigError(f"--limit must be a positive number of items per task, not {spec.limit}")
    catalog = Catalog(spec.include_paths)
    tasks: list[TaskConfig] = catalog.expand_tasks(spec.tasks)
    unlabelled = [t.name for t in tasks if t.kind == "candidates" and spec.command != "label"]
    if unlabelled:  # no gold label: a benchmark of them would report nothing but "left out"
        raise ConfigError(f"task {unlabelled[0]} holds unlabelled candidates (kind: candidates): "
                          "label them with `mjbench label`, or benchmark a task with gold labels")
    unknown = sorted(set(spec.calibrate_on.values()) - {t.name for t in tasks})
    if unknown:
        raise ConfigError(f"--calibrate-on: task {unknown[0]!r} is not among the run's tasks; add it to --tasks")
    from mjbench.prompts import check_aspect

    for aspect in spec.aspects:
        check_aspect(aspect)
    for task in tasks:  # a task's default aspects (checked here: the prompt files are above the config layer)
        for aspect in task.aspects:
            try:
                check_aspect(aspect)
            except ConfigError as exc:
                raise ConfigError(f"{task.path or task.name}: aspects: {exc}") from None
    from mjbench.jury import add_jury_records, expand_members, is_jury

    judge_cfgs: list[JudgeConfig] = [catalog.judge(j) for j in expand_members(spec.judges, catalog)]
    if spec.device:
        judge_cfgs = [c.model_copy(update={"device": spec.device}) for c in judge_cfgs]
    if spec.shard is not None:  # torchrun: one GPU per process on a machine
        judge_cfgs = [c.model_copy(update={"device": spec.shard.device_for(c.device)}) for c in judge_cfgs]
    if spec.shard is not None and spec.merge_from:
        raise ConfigError("a shard judges, a merge reads the shards' stores: not both at once")
    from mjbench.engines import get_engine

    engine = get_engine(spec.engine, spec.ray_actors)
    if spec.scales is not None:
        from mjbench.scales import get_scale

        for s in spec.scales:
            get_scale(s)
    scales = {c.name: _judge_scales(c, spec.scales) for c in judge_cfgs}
    if not any(scales.values()):
        raise ConfigError(f"no judge runs at scale(s) {', '.join(spec.scales or [])}")
    for cfg in judge_cfgs:
        _register_secrets(cfg)
    judges = {c.name: create_judge(c) for c in judge_cfgs if scales[c.name]}  # bad options fail here

    out_dir = spec.resolved_out()
    if spec.shard is not None:  # each shard its own run directory (lock, store, run.json) under --out
        out_dir = out_dir / "shards" / spec.shard.label
    if spec.merge_from:
        check_shard_runs(spec.merge_from, spec.requested())
    with RunDirectory(out_dir, spec.command) as run_dir:
        run_dir.check_replaces(spec.requested(), spec.force)
        problems: list[str] = []
        items_by_task: dict[str, list[Item]] = {}
        task_counts: dict[str, dict[str, Any]] = {}
        for task in tasks:
            loaded = load_task(task, limit=spec.limit, seed=spec.seed, hub_mirror=spec.hub_mirror)
            items_by_task[task.name] = loaded.items
            task_counts[task.name] = _task_counts(loaded)
            problems.extend(f"task {task.name}: {p}" for p in loaded.problems)
        for p in problems[:10]:
            log.warning(p)
        if len(problems) > 10:
            log.warning("... and %d more item problems (see run.json)", len(problems) - 10)

        store = ResultStore(spec.store or out_dir / "store.sqlite")
        merged: dict[str, Any] | None = None
        if spec.merge_from:
            try:
                summary = merge_stores(spec.merge_from, store)
            except BaseException:
                store.close()
                raise
            merged = {"stores": [str(p) for p in summary.stores], "added": summary.added, "same": summary.same}
        records: list[Record] = []
        judge_failures: dict[str, str] = {}
        failures: dict[str, dict[str, Any]] = {}
        timings: dict[str, dict[str, float]] = {}  # per judge: model set-up and judging wall time
        computed = reused = 0
        answered: list[_Unit] = []  # every unit sent to a judge in this run
        identities: dict[str, str] = {}  # judge -> the hash of its identity, which keys its answers in the store
        try:
            with _Progress(spec.quiet) as progress:
                for cfg in judge_cfgs:
                    if is_jury(cfg):  # never asked: its records are derived from its members' below
                        continue
                    judge = judges.get(cfg.name)
                    if judge is None:
                        log.warning("judge %s: none of its scales (%s) was asked for; skipped",
                                    cfg.name, ", ".join(cfg.scales))
                        continue
                    judge_id = identities[cfg.name] = content_key(judge.identity())
                    units, planned = _plan_judge(judge, judge_id, items_by_task, scales[cfg.name], spec.seed,
                                                 {t.name: tuple(t.labels) for t in tasks if t.labels}, spec.aspects,
                                                 {t.name: tuple(t.aspects) for t in tasks if t.aspects})
                    if spec.shard is not None:  # its own requests only; records are the merge's
                        units = {k: u for k, u in units.items() if spec.shard.owns(k)}
                        planned = []
                    reused += _reuse(judge, units, store, cfg.name)
                    pending = [u for u in units.values() if u.response is None]
                    if pending and spec.merge_from:  # a merge never judges: the shards did, or must
                        for u in pending:
                            u.response = Response.failure(
                                "no answer in the merged stores (a shard missing or incomplete): re-run that "
                                "shard and merge again, or run without --shard on this --out to judge the rest")
                    elif pending:
                        reason = type(judge).check_available(cfg)
                        t0 = time.perf_counter()
                        try:
                            if reason:
                                raise MjbenchError(reason)
                            store.check_writable()
                            engine.setup(judge)
                        except StoreError:
                            raise
                        except Exception as exc:  # a missing key or package, a model that will not load
                            why = redact(str(exc) if isinstance(exc, MjbenchError)
                                         else f"{type(exc).__name__}: {exc}")
                            judge_failures[cfg.name] = why
                            log.error("judge %s cannot run: %s", cfg.name, why)
                            for u in pending:
                                u.response = Response.failure(f"judge {cfg.name} cannot run: {why}")
                        else:
                            t1 = time.perf_counter()
                            answered.extend(pending)
                            try:
                                _execute(judge, pending, store, cfg.name, progress, engine)
                            finally:
                                judge.close()
                            computed += len(pending)
                            timings[cfg.name] = {"setup_s": round(t1 - t0, 3),
                                                 "judging_s": round(time.perf_counter() - t1, 3),
                                                 "requests": len(pending)}
                    failed = _judge_failures(units, planned)
                    if failed:
                        failures[cfg.name] = failed
                    threshold = cfg.tie_threshold if spec.tie_threshold is None else spec.tie_threshold
                    records.extend(_record(cfg.name, p, units, threshold) for p in planned)
        except StoreError as exc:
            kept = sum(1 for u in answered if u.response is not None and u.response.status != "error")
            exc.exit_code = 1 if kept else 2
            exc.args = (f"{exc}; judging stopped, no further request was sent; {kept} answers from this run "
                        "are kept in the store: fix the store and re-run the same command to resume",)
            raise
        finally:
            store.close()
        if judge_failures and not computed and not reused:
            raise ConfigError("no judge could run, nothing was judged: " + "; ".join(
                f"judge {name}: {why}" for name, why in judge_failures.items()))
        for cfg in judge_cfgs:  # a jury's identity holds its members' (mjbench.adapters.jury)
            if is_jury(cfg) and cfg.name in judges:
                judges[cfg.name].catalog = catalog  # type: ignore[attr-defined]
                identities[cfg.name] = content_key(judges[cfg.name].identity())
        records = add_jury_records([c for c in judge_cfgs if c.name in judges], records,
                                   tie_threshold=spec.tie_threshold,
                                   set_tasks={t.name for t in tasks if t.kind == "candidates"})

        run_info = {
            "command": spec.command,
            "tasks": {t.name: t.model_dump(mode="json") for t in tasks},
            "judges": {c.name: c.model_dump(mode="json") for c in judge_cfgs},
            "judge_identities": identities,
            "requested": spec.requested(),
            "seed": spec.seed, "limit": spec.limit, "tie_threshold": spec.tie_threshold,
            "bias_normalization": spec.bias_normalization, "bias_average": spec.bias_average,
            "calibrate_on": dict(spec.calibrate_on), "ndcg_k": spec.ndcg_k,
            "hub_mirror": str(spec.hub_mirror) if spec.hub_mirror else None,
            "records": None if spec.shard else f"records.{spec.records_format}",
            "store": str(spec.store or "store.sqlite"),
            "engine": spec.engine, "shard": str(spec.shard) if spec.shard else None, "merged_from": merged,
            "versions": _versions(), "git_revision": _git_revision(),
            "counts": {"items": sum(map(len, items_by_task.values())), "records": len(records),
                       "requests_computed": computed, "requests_reused": reused},
            "task_counts": task_counts,
            "item_problems": problems, "judge_failures": judge_failures, "failures": failures,
            "judge_timings": timings,
            "gallery_max": spec.gallery_max,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "task_paths": {t.name: str(t.path) for t in tasks if t.path},
            "wall_time_s": round(time.time() - started, 2),
        }
        result: dict[str, Any] = {}

        def write(folder: Path) -> None:
            if spec.write_outputs is not None:  # e.g. `mjbench label`: preference data, not metrics
                spec.write_outputs(folder, records, items_by_task, run_info)
                write_json(folder / "run.json", run_info)
                result.update(frame=records_frame([r.model_dump() for r in records]), metrics=None)
                return
            if spec.shard is not None:  # a shard's answers are in its store; `mjbench merge` writes outputs
                frame = records_frame([])
                result.update(frame=frame, metrics=compute_metrics(frame))
                write_json(folder / "run.json", run_info)
                return
            records_path = folder / run_info["records"]
            write_records(records, records_path)
            frame = read_records([records_path]) if records else records_frame([])
            metrics = compute_metrics(frame, tie_threshold=spec.tie_threshold or 0.0,
                                      bias_normalization=spec.bias_normalization, seed=spec.seed,
                                      bias_average=spec.bias_average, calibrate_on=spec.calibrate_on,
                                      ndcg_k=spec.ndcg_k)
            run_info["intervals"] = metrics.interval_info
            images = {(t, it.item_id): it.images for t, items in items_by_task.items() for it in items}
            write_run_outputs(folder, frame, metrics, run_info,
                              images=lambda task, item_id: images.get((task, item_id)),
                              gallery_max=spec.gallery_max)
            write_json(folder / "run.json", run_info)
            result.update(frame=frame, metrics=metrics)

        owned = ("run.json",) if spec.shard else tuple(spec.output_names)
        run_dir.publish(write, judged=computed > 0, owned=owned)
    return RunResult(out_dir, result["frame"], result["metrics"], problems, judge_failures, failures, computed,
                     reused, timings)
