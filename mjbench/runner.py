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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench import __version__
from mjbench.adapters.base import Judge, PairRequest, Response, ScoreRequest, create_judge
from mjbench.catalog import Catalog
from mjbench.config import JudgeConfig, TaskConfig
from mjbench.errors import ConfigError, ItemError, MjbenchError
from mjbench.items import BiasItem, PairItem
from mjbench.metrics import derive_pred
from mjbench.records import Record, write_records
from mjbench.store import ResultStore, content_key

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger("mjbench")

DEFAULT_TASKS = ("synthetic",)
DEFAULT_JUDGES = ("random", "sharpness", "brisque")
DEFAULT_RUN_NAME = "default"
#: worst status wins when two requests make one record
_STATUS_RANK = {"ok": 0, "parse_error": 1, "refused": 2, "error": 3}


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
    bias_normalization: str = "minmax"
    records_format: str = "jsonl"
    device: str | None = None
    quiet: bool = False

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
    """One future record: the item, its scale and order, and the units that answer it."""

    item: PairItem | BiasItem
    scale: str
    order: str | None
    keys: tuple[str, ...]
    pre_error: str | None = None  # e.g. an unreadable image: no request could be made


# ----------------------------------------------------------------------------------------------------
# planning


def _image_hash(ref: Any) -> str:
    h = ref.hash
    ref.release()  # path-backed bytes are read again only if a request needs them
    return h


def _orders(orders: Sequence[str], item: PairItem, seed: int) -> list[str]:
    """The image orders to ask for an item; `random` draws one per item from the seed and the item id."""
    if list(orders) != ["random"]:
        return list(orders)
    draw = int(content_key("order", seed, item.task, item.item_id)[:8], 16)
    return ["01" if draw % 2 == 0 else "10"]


def _plan_judge(
    judge: Judge, judge_id: str, items_by_task: dict[str, list[PairItem | BiasItem]], scales: Sequence[str],
    seed: int = 0,
) -> tuple[dict[str, _Unit], list[_Planned]]:
    cfg = judge.config
    keyed_by_item = judge.capabilities.keyed_by_item
    single_ok = "single" in judge.capabilities.modes
    units: dict[str, _Unit] = {}
    planned: list[_Planned] = []
    skipped_single = 0

    def score_key(item: PairItem | BiasItem, idx: int | None, image_hash: str, scale: str) -> str:
        extra = (item.task, item.item_id, idx) if keyed_by_item else ()
        return content_key(judge_id, "single", image_hash, item.prompt, scale, item.perspective, *extra)

    for task_items in items_by_task.values():
        for item in task_items:
            for scale in scales:
                try:
                    hashes = [_image_hash(ref) for ref in item.images]
                except ItemError as exc:
                    planned.append(_Planned(item, scale, None, (), pre_error=f"item {item.item_id}: {exc}"))
                    continue
                if isinstance(item, BiasItem) or cfg.mode == "single":
                    if not single_ok:  # a pair-only judge cannot rate single images: no bias rows
                        skipped_single += 1
                        continue
                    keys = []
                    for idx, (ref, h) in enumerate(zip(item.images, hashes, strict=True)):
                        image_index = None if isinstance(item, BiasItem) else idx
                        key = score_key(item, image_index, h, scale)
                        units.setdefault(key, _Unit(key, ScoreRequest(
                            image=ref, prompt=item.prompt, scale=scale, perspective=item.perspective,
                            task=item.task, item_id=item.item_id, image_index=image_index)))
                        keys.append(key)
                    planned.append(_Planned(item, scale, None, tuple(keys)))
                    continue
                for order in _orders(cfg.orders, item, seed):
                    shown = (0, 1) if order == "01" else (1, 0)
                    extra = (item.task, item.item_id) if keyed_by_item else ()
                    key = content_key(judge_id, "pair", hashes[shown[0]], hashes[shown[1]], item.prompt,
                                      scale, item.perspective, *extra)
                    units.setdefault(key, _Unit(key, PairRequest(
                        images=(item.images[shown[0]], item.images[shown[1]]), prompt=item.prompt,
                        scale=scale, perspective=item.perspective, order=order, task=item.task,
                        item_id=item.item_id)))
                    planned.append(_Planned(item, scale, order, (key,)))
    if skipped_single:
        log.warning("judge %s compares pairs only: %d single-image (bias) requests skipped, no bias metrics",
                    cfg.name, skipped_single)
    return units, planned


# ----------------------------------------------------------------------------------------------------
# records


def _sum(values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _record(judge_name: str, p: _Planned, units: dict[str, _Unit], threshold: float) -> Record:
    item = p.item
    base: dict[str, Any] = dict(
        judge=judge_name, task=item.task, perspective=item.perspective, subcategory=item.subcategory,
        item_id=item.item_id, scale=p.scale, prompt=item.prompt, order=p.order,
        label=item.label if isinstance(item, PairItem) else None,
    )
    if isinstance(item, BiasItem):
        base.update(group=item.group, demographic=item.demographic, axes=list(item.axes))
    if p.pre_error is not None:
        return Record(**base, score_0=None, score_1=None, pred=None, status="error", error=p.pre_error)
    responses = [units[k].response or Response.failure("no answer (interrupted)") for k in p.keys]
    status = max((r.status for r in responses), key=_STATUS_RANK.__getitem__)
    errors = [r.error for r in responses if r.error]
    raws = [r.raw_output for r in responses]
    common = dict(
        status=status,
        error="; ".join(errors) if errors else None,
        attempts=_sum([r.attempts for r in responses]),
        latency_s=_sum([r.latency_s for r in responses]),
        input_tokens=_sum([r.input_tokens for r in responses]),
        output_tokens=_sum([r.output_tokens for r in responses]),
        cost_usd=_sum([r.cost_usd for r in responses]),
    )
    if isinstance(item, BiasItem):
        r = responses[0]
        return Record(**base, **common, score_0=r.score if r.status == "ok" else None, score_1=None,
                      pred=None, raw_output=raws[0])
    if p.order is None:  # single mode: two ratings compared with the threshold
        s0, s1 = (r.score if r.status == "ok" else None for r in responses)
        raw = None if all(x is None for x in raws) else f"[image0] {raws[0] or ''}\n[image1] {raws[1] or ''}"
        pred = derive_pred(s0, s1, threshold) if status == "ok" else None
        return Record(**base, **common, score_0=s0, score_1=s1, pred=pred, raw_output=raw)
    r = responses[0]  # pair mode: map the shown order back to the item's images
    flip = p.order == "10"
    shown_scores = r.scores or (None, None)
    s0, s1 = (shown_scores[1], shown_scores[0]) if flip else shown_scores
    pred = None
    if r.status == "ok":
        if r.verdict is not None:
            pred = {"0": "1", "1": "0", "tie": "tie"}[r.verdict] if flip else r.verdict
        else:
            pred = derive_pred(s0, s1, threshold)
    return Record(**base, **common, score_0=s0, score_1=s1, pred=pred, raw_output=raws[0])


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
             progress: _Progress) -> None:
    """Ask the judge for every pending unit, storing final answers as they arrive."""
    if not pending:
        return
    advance = progress.track(f"{judge_name}", len(pending))
    singles = [u for u in pending if isinstance(u.request, ScoreRequest)]
    pairs = [u for u in pending if isinstance(u.request, PairRequest)]

    def deliver(units: list[_Unit], answered: list[tuple[int, Response]]) -> None:
        batch = []
        for idx, resp in answered:
            units[idx].response = resp
            batch.append((units[idx].key, resp))
        store.put_many(judge_name, batch)
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
                batches = judge.iter_score(requests) if kind == "score" else judge.iter_compare(requests)
                for answered in batches:
                    deliver(units, answered)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # an adapter bug or a fatal model error: record it, keep the run going
            message = f"judge {judge_name} failed: {type(exc).__name__}: {exc}"
            log.error(message)
            missing = [(i, Response.failure(message)) for i, u in enumerate(units) if u.response is None]
            if missing:
                deliver(units, missing)


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


def run_benchmark(spec: RunSpec) -> RunResult:
    """Run judges over tasks; write the run directory; return records and metrics."""
    from mjbench.metrics import compute_metrics
    from mjbench.records import records_frame
    from mjbench.report import write_run_outputs
    from mjbench.sources import load_task

    started = time.time()
    catalog = Catalog(spec.include_paths)
    tasks: list[TaskConfig] = catalog.expand_tasks(spec.tasks)
    judge_cfgs: list[JudgeConfig] = [catalog.judge(j) for j in spec.judges]
    if spec.device:
        judge_cfgs = [c.model_copy(update={"device": spec.device}) for c in judge_cfgs]
    if spec.scales is not None:
        from mjbench.scales import get_scale

        for s in spec.scales:
            get_scale(s)
    scales = {c.name: _judge_scales(c, spec.scales) for c in judge_cfgs}
    if not any(scales.values()):
        raise ConfigError(f"no judge runs at scale(s) {', '.join(spec.scales or [])}")

    out_dir = spec.resolved_out()
    out_dir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    items_by_task: dict[str, list[PairItem | BiasItem]] = {}
    for task in tasks:
        loaded = load_task(task, limit=spec.limit, seed=spec.seed)
        items_by_task[task.name] = loaded.items
        problems.extend(f"task {task.name}: {p}" for p in loaded.problems)
    for p in problems[:10]:
        log.warning(p)
    if len(problems) > 10:
        log.warning("... and %d more item problems (see run.json)", len(problems) - 10)

    store = ResultStore(spec.store or out_dir / "store.sqlite")
    records: list[Record] = []
    judge_failures: dict[str, str] = {}
    timings: dict[str, dict[str, float]] = {}  # per judge: model set-up and judging wall time
    computed = reused = 0
    try:
        with _Progress(spec.quiet) as progress:
            for cfg in judge_cfgs:
                if not scales[cfg.name]:
                    log.warning("judge %s: none of its scales (%s) was asked for; skipped",
                                cfg.name, ", ".join(cfg.scales))
                    continue
                try:
                    judge = create_judge(cfg)
                except MjbenchError as exc:
                    judge_failures[cfg.name] = str(exc)
                    log.error("judge %s skipped: %s", cfg.name, exc)
                    continue
                judge_id = content_key(judge.identity())
                units, planned = _plan_judge(judge, judge_id, items_by_task, scales[cfg.name], spec.seed)
                stored = store.get_many(list(units))
                for key, resp in stored.items():
                    units[key].response = resp
                pending = [u for u in units.values() if u.response is None]
                reused += len(stored)
                if pending:
                    reason = type(judge).check_available(cfg)
                    t0 = time.perf_counter()
                    try:
                        if reason:
                            raise MjbenchError(reason)
                        judge.setup()
                    except MjbenchError as exc:
                        judge_failures[cfg.name] = str(exc)
                        log.error("judge %s cannot run: %s", cfg.name, exc)
                        for u in pending:
                            u.response = Response.failure(f"judge {cfg.name} cannot run: {exc}")
                    else:
                        t1 = time.perf_counter()
                        try:
                            _execute(judge, pending, store, cfg.name, progress)
                        finally:
                            judge.close()
                        computed += len(pending)
                        timings[cfg.name] = {"setup_s": round(t1 - t0, 3),
                                             "judging_s": round(time.perf_counter() - t1, 3),
                                             "requests": len(pending)}
                threshold = cfg.tie_threshold if spec.tie_threshold is None else spec.tie_threshold
                records.extend(_record(cfg.name, p, units, threshold) for p in planned)
    finally:
        store.close()

    records_path = out_dir / f"records.{spec.records_format}"
    write_records(records, records_path)
    from mjbench.records import read_records

    frame = read_records([records_path]) if records else records_frame([])
    metrics = compute_metrics(frame, tie_threshold=spec.tie_threshold or 0.0,
                              bias_normalization=spec.bias_normalization)
    run_info = {
        "command": "run",
        "tasks": {t.name: t.model_dump(mode="json") for t in tasks},
        "judges": {c.name: c.model_dump(mode="json") for c in judge_cfgs},
        "requested": {"tasks": list(spec.tasks), "judges": list(spec.judges),
                      "scales": list(spec.scales) if spec.scales else None},
        "seed": spec.seed, "limit": spec.limit, "tie_threshold": spec.tie_threshold,
        "bias_normalization": spec.bias_normalization,
        "records": records_path.name, "store": str(spec.store or "store.sqlite"),
        "versions": _versions(), "git_revision": _git_revision(),
        "counts": {"items": sum(map(len, items_by_task.values())), "records": len(records),
                   "requests_computed": computed, "requests_reused": reused},
        "item_problems": problems, "judge_failures": judge_failures,
        "judge_timings": timings,
        "wall_time_s": round(time.time() - started, 2),
    }
    write_run_outputs(out_dir, frame, metrics, run_info)
    write_json(out_dir / "run.json", run_info)
    return RunResult(out_dir, frame, metrics, problems, judge_failures, computed, reused, timings)
