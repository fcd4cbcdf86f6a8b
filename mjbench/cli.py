"""The `mjbench` command line. Heavy modules are imported inside commands so `--help` starts fast."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from mjbench.errors import MjbenchError

app = typer.Typer(help="Benchmark multimodal judges on pairwise text-to-image preference items.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
tasks_app = typer.Typer(help="List and inspect tasks and suites.", no_args_is_help=True)
judges_app = typer.Typer(help="List and inspect judges.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(judges_app, name="judges")

F = TypeVar("F", bound=Callable[..., Any])

IncludeOpt = Annotated[list[Path] | None, typer.Option(
    "--include-path", "-I", help="Folder with extra tasks/ and judges/ YAML (repeatable).")]
ForceOpt = Annotated[bool, typer.Option(
    "--force", help="Replace the outputs of a different run (or of a `run`, for aggregate) in --out.")]
HubMirrorOpt = Annotated[Path | None, typer.Option(
    "--hub-mirror", envvar="MJBENCH_HUB_MIRROR", help="Read hub datasets from local snapshots at DIR/<owner>/<name>/ "
    "(as `hf download <owner>/<name> --repo-type dataset --local-dir DIR/<owner>/<name>` writes them).")]

BiasNormOpt = Annotated[str, typer.Option(help=(
    "Bias scores: minmax (per judge, task and scale, as MJ-Bench), scale (the scale's bounds) or none (raw "
    "scores, as some of MJ-Bench's published tables)."))]
BiasAverageOpt = Annotated[str, typer.Option(help=(
    "Bias per axis: the mean over items (each image counts once) or over groups (each occupation counts once, "
    "as MJ-Bench's published tables)."))]
CalibrateOpt = Annotated[list[str] | None, typer.Option(help=(
    "Fit the tie epsilon of acc_tie_calibrated on another task's items: TASK=DEV (repeatable) or DEV for every "
    "task (default: each task's own items, with a warning that the number is optimistic)."))]
AspectsOpt = Annotated[list[str] | None, typer.Option(help=(
    "Ask VLM judges once per aspect (prompt_following, aesthetic, fidelity, harmlessness; comma-separated), "
    "each with its own criteria; their records are named JUDGE:ASPECT. Scorers give their one score."))]
NdcgOpt = Annotated[int, typer.Option(min=1, help=(
    "Groups of candidates: the k of ndcg_at_k (capped at each group's size)."))]
BIAS_NORMALIZATIONS = ("minmax", "scale", "none")
BIAS_AVERAGES = ("items", "groups")

#: set by the global --debug option: errors are raised with their traceback instead of one line
_DEBUG = {"on": False}


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")]
          = False) -> None:
    _DEBUG["on"] = debug


def _fail(message: str, code: int) -> typer.Exit:
    from mjbench.redact import redact

    typer.secho(f"error: {redact(message)}", err=True, fg="red")
    return typer.Exit(code)


def _user_errors(fn: F) -> F:
    """Print MjbenchError (exit 2, or the error's own `exit_code`) and file-system errors (exit 2) as one
    `error:` line instead of a traceback; `mjbench --debug ...` shows the traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (MjbenchError, OSError) as exc:
            if _DEBUG["on"]:
                raise
            raise _fail(str(exc), getattr(exc, "exit_code", 2)) from None

    return wrapper  # type: ignore[return-value]


def _split(values: list[str] | None) -> list[str] | None:
    """Accept repeated options and comma-separated lists alike."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _bias_options(normalization: str, average: str) -> None:
    if normalization not in BIAS_NORMALIZATIONS:
        raise MjbenchError(f"--bias-normalization must be minmax, scale or none, not {normalization!r}")
    if average not in BIAS_AVERAGES:
        raise MjbenchError(f"--bias-average must be items or groups, not {average!r}")


def _calibration(values: list[str] | None) -> dict[str, str]:
    """--calibrate-on values as {task: dev task}; a bare DEV applies to every task ("*")."""
    out: dict[str, str] = {}
    for value in _split(values) or []:
        task, _, dev = value.rpartition("=")
        if not dev.strip() or (value.count("=") and not task.strip()):
            raise MjbenchError(f"--calibrate-on: expected TASK=DEV or DEV, got {value!r}")
        out[task.strip() or "*"] = dev.strip()
    return out


def _setup_logging(quiet: bool) -> None:
    from rich.logging import RichHandler

    from mjbench.redact import RedactingFilter

    handler = RichHandler(show_time=False, show_path=False, markup=False)
    handler.addFilter(RedactingFilter())  # API keys never reach the terminal or a captured log
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        handlers=[handler], force=True)


@app.command()
@_user_errors
def run(
    tasks: Annotated[list[str] | None, typer.Option("--tasks", "-t", help="Tasks or suites (name or YAML path).")] = None,
    judges: Annotated[list[str] | None, typer.Option("--judges", "-j", help="Judges (name or YAML path).")] = None,
    scales: Annotated[list[str] | None, typer.Option("--scales", "-s", help="Only these feedback scales.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default results/<name>).")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many items per task (seeded sample).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for sampling and order randomisation.")] = 0,
    store: Annotated[Path | None, typer.Option(help="Result store to share across runs (SQLite).")] = None,
    tie_threshold: Annotated[float | None, typer.Option(help="Score gap counted as a tie (overrides judges).")] = None,
    bias_normalization: BiasNormOpt = "minmax",
    bias_average: BiasAverageOpt = "items",
    calibrate_on: CalibrateOpt = None,
    records_format: Annotated[str, typer.Option(help="jsonl or parquet.")] = "jsonl",
    device: Annotated[str | None, typer.Option(help="Override every judge's device (cpu, cuda, mps).")] = None,
    include_path: IncludeOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; warnings and summary only.")] = False,
    force: ForceOpt = False,
    hub_mirror: HubMirrorOpt = None,
    shard: Annotated[str | None, typer.Option(help=(
        "Judge only shard I of N (I/N, counted from 0) of the planned requests, split by a hash of their "
        "cache key, into <out>/shards/I-of-N/ (its own store and run.json; no records or metrics): start N "
        "processes with any launcher, then `mjbench merge`. `auto` reads RANK/WORLD_SIZE (torchrun, "
        "accelerate launch), SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT or SLURM_PROCID/SLURM_NTASKS."))] = None,
    engine: Annotated[str, typer.Option(help=(
        "Where local-model judges run: local (this process) or ray (a Ray Data actor pool, one model per "
        "actor, on the cluster in RAY_ADDRESS or a local Ray); API judges always run here, concurrently."))]
    = "local",
    ray_actors: Annotated[int | None, typer.Option(help=(
        "--engine ray: at most this many actors (models) per judge (default: one per GPU of the cluster, "
        "or one per CPU for judges off the GPU)."))] = None,
    gallery_max: Annotated[int, typer.Option(min=0, help=(
        "Failure gallery in the HTML reports: at most this many items per judge, scale and subcategory."))] = 12,
    aspects: AspectsOpt = None,
    ndcg_k: NdcgOpt = 10,
) -> None:
    """Run judges over tasks and write a run directory. With no arguments: the embedded synthetic suite
    with the offline judges, on the CPU. Re-running the same command resumes from the store: finished
    answers are read back, only the missing or failed requests are asked.

    Exit codes: 0 = every planned request has a final answer (ok, parse_error or refused); 1 = the run
    finished but is incomplete (some requests ended in error, a judge could not start, or the store or
    the outputs could not be written after judging): the last lines say which judges, how many and why,
    and re-running the same command retries exactly those; 2 = usage or configuration error, nothing
    judged (also: --out in use by another run, or holding a different run without --force).
    """
    from mjbench.runner import DEFAULT_JUDGES, DEFAULT_TASKS, RunSpec, run_benchmark

    _setup_logging(quiet)
    _bias_options(bias_normalization, bias_average)
    if records_format not in ("jsonl", "parquet"):
        raise MjbenchError(f"--records-format must be jsonl or parquet, not {records_format!r}")
    from mjbench.shard import parse_shard

    spec = RunSpec(
        tasks=_split(tasks) or DEFAULT_TASKS, judges=_split(judges) or DEFAULT_JUDGES,
        scales=_split(scales), out=out, limit=limit, seed=seed, include_paths=include_path or [],
        store=store, tie_threshold=tie_threshold, bias_normalization=bias_normalization,
        bias_average=bias_average, calibrate_on=_calibration(calibrate_on),
        records_format=records_format, device=device, quiet=quiet, force=force, hub_mirror=hub_mirror,
        shard=parse_shard(shard) if shard else None, engine=engine, ray_actors=ray_actors,
        gallery_max=gallery_max, aspects=tuple(_split(aspects) or ()), ndcg_k=ndcg_k,
    )
    try:
        result = run_benchmark(spec)
    except KeyboardInterrupt:
        typer.secho("interrupted: finished requests are kept in the store; run the same command to resume",
                    err=True, fg="yellow")
        raise typer.Exit(130) from None
    _summary(result.out_dir, result.metrics)
    typer.echo(f"requests computed: {result.computed}, reused from the store: {result.reused}; "
               f"{len(result.records)} records; {len(result.problems)} item problems")
    if spec.shard is not None:
        typer.echo(f"shard {spec.shard}: answers in {spec.store or result.out_dir / 'store.sqlite'}; once every "
                   "shard is done: mjbench merge <the shards' stores> with this command's other options")
    if result.judge_failures or result.failures:
        _failure_summary(result.judge_failures, result.failures)
        raise typer.Exit(1)


@app.command()
@_user_errors
def merge(
    stores: Annotated[list[Path], typer.Argument(help="The shards' stores, e.g. results/x/shards/*/store.sqlite.")],
    tasks: Annotated[list[str] | None, typer.Option("--tasks", "-t", help="Tasks or suites, as the shards ran.")] = None,
    judges: Annotated[list[str] | None, typer.Option("--judges", "-j", help="Judges, as the shards ran.")] = None,
    scales: Annotated[list[str] | None, typer.Option("--scales", "-s", help="Scales, as the shards ran.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run directory (default results/<name>).")] = None,
    limit: Annotated[int | None, typer.Option(help="As the shards ran.")] = None,
    seed: Annotated[int, typer.Option(help="As the shards ran.")] = 0,
    store: Annotated[Path | None, typer.Option(help="The run's store the shards are merged into "
                                                    "(default <out>/store.sqlite).")] = None,
    tie_threshold: Annotated[float | None, typer.Option(help="Score gap counted as a tie (overrides judges).")] = None,
    bias_normalization: BiasNormOpt = "minmax",
    bias_average: BiasAverageOpt = "items",
    calibrate_on: CalibrateOpt = None,
    records_format: Annotated[str, typer.Option(help="jsonl or parquet.")] = "jsonl",
    include_path: IncludeOpt = None,
    hub_mirror: HubMirrorOpt = None,
    gallery_max: Annotated[int, typer.Option(min=0, help=(
        "Failure gallery in the HTML reports: at most this many items per judge, scale and subcategory."))] = 12,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and summary only.")] = False,
    force: ForceOpt = False,
    ndcg_k: NdcgOpt = 10,
) -> None:
    """Merge the stores of a sharded run (`run --shard I/N`) into the run's store and write its run directory
    (records, metrics, leaderboards, reports) through the same code as `run`: give it the options the shards
    ran with. Nothing is judged. Two stores with different answers to one request: one error line, nothing
    merged. Requests no store answered become `error` records (exit 1): re-run that shard and merge again,
    or run the same `run` command without --shard on this --out to judge just those.

    Exit codes as for run: 0 = complete; 1 = some requests unanswered; 2 = usage error or conflicting stores.
    """
    from mjbench.runner import DEFAULT_JUDGES, DEFAULT_TASKS, RunSpec, run_benchmark

    _setup_logging(quiet)
    _bias_options(bias_normalization, bias_average)
    if records_format not in ("jsonl", "parquet"):
        raise MjbenchError(f"--records-format must be jsonl or parquet, not {records_format!r}")
    spec = RunSpec(
        tasks=_split(tasks) or DEFAULT_TASKS, judges=_split(judges) or DEFAULT_JUDGES,
        scales=_split(scales), out=out, limit=limit, seed=seed, include_paths=include_path or [],
        store=store, tie_threshold=tie_threshold, bias_normalization=bias_normalization,
        bias_average=bias_average, calibrate_on=_calibration(calibrate_on),
        records_format=records_format, quiet=True, force=force, merge_from=stores, hub_mirror=hub_mirror,
        gallery_max=gallery_max, ndcg_k=ndcg_k,
    )
    result = run_benchmark(spec)
    _summary(result.out_dir, result.metrics)
    merged = len(stores)
    typer.echo(f"merged {merged} store(s): {result.reused} requests answered; {len(result.records)} records")
    if result.judge_failures or result.failures:
        _failure_summary(result.judge_failures, result.failures)
        raise typer.Exit(1)


@app.command()
@_user_errors
def label(
    tasks: Annotated[list[str], typer.Option("--tasks", "-t", help="Candidate tasks (`kind: candidates`).")],
    judges: Annotated[list[str], typer.Option("--judges", "-j", help="Judges of the jury (name or YAML path).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (preferences.parquet, .jsonl, .md, .html).")],
    jury: Annotated[str, typer.Option(help="mean (of per-judge z-scores), vote (majority) or borda.")] = "mean",
    policy: Annotated[str, typer.Option(help="best-vs-worst, best-vs-each or all-pairs.")] = "best-vs-worst",
    min_margin: Annotated[float, typer.Option(help="Keep pairs whose jury-score margin is at least this.")] = 0.0,
    min_agreement: Annotated[float, typer.Option(help="Keep pairs where at least this share of judges agree.")] = 0.0,
    min_chosen_score: Annotated[float | None, typer.Option(help="Keep pairs whose chosen jury score is at least "
                                                                "this.")] = None,
    benchmark: Annotated[Path | None, typer.Option(help="A `mjbench run` directory: record the judges' measured "
                                                        "accuracy per perspective in the export.")] = None,
    scales: Annotated[list[str] | None, typer.Option("--scales", "-s", help="Only these feedback scales.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for tie-breaks and order randomisation.")] = 0,
    store: Annotated[Path | None, typer.Option(help="Result store to share with runs (SQLite).")] = None,
    device: Annotated[str | None, typer.Option(help="Override every judge's device (cpu, cuda, mps).")] = None,
    include_path: IncludeOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    force: ForceOpt = False,
    hub_mirror: HubMirrorOpt = None,
    aspects: AspectsOpt = None,
) -> None:
    """Label unlabelled candidate sets with judges (and a jury) and export preference pairs for DPO.

    Judging goes through the same runner, store and resume as `run`. Exit codes as for run."""
    from mjbench.label import LabelSpec, run_label

    _setup_logging(quiet)
    spec = LabelSpec(
        tasks=_split(tasks) or [], judges=_split(judges) or [], out=out, jury=jury, policy=policy,
        min_margin=min_margin, min_agreement=min_agreement, min_chosen_score=min_chosen_score, seed=seed,
        scales=_split(scales), benchmark=benchmark, include_paths=include_path or [], store=store, device=device,
        quiet=quiet, force=force, hub_mirror=hub_mirror, aspects=tuple(_split(aspects) or ()))
    result = run_label(spec)
    dropped = ", ".join(f"{k} {v}" for k, v in result.dropped.items() if v) or "none"
    typer.echo(f"{result.kept} preference pairs in {result.out_dir / 'preferences.parquet'}; dropped: {dropped}")
    typer.echo(f"requests computed: {result.computed}, reused from the store: {result.reused}")
    if result.judge_failures or result.failures:
        _failure_summary(result.judge_failures, result.failures)
        raise typer.Exit(1)


def _failure_summary(judge_failures: dict[str, str], failures: dict[str, dict[str, Any]]) -> None:
    """The last lines of an incomplete run: per judge, how many requests failed and the distinct reasons."""
    from mjbench.redact import redact

    total = sum(f["requests"] for f in failures.values())
    typer.secho(f"incomplete: {total} request(s) ended in error", err=True, fg="red")
    for name, why in judge_failures.items():
        typer.secho(redact(f"  judge {name} could not start: {why}"), err=True, fg="red")
    for name, f in failures.items():
        typer.secho(f"  judge {name}: {f['requests']} of {f['of']} request(s) failed", err=True, fg="red")
        reasons = list(f["reasons"].items())
        for reason, n in reasons[:3]:
            typer.secho(redact(f"    {n} x {reason}"), err=True, fg="red")
        if len(reasons) > 3:
            typer.secho(f"    ... and {len(reasons) - 3} other reasons (see run.json, \"failures\")", err=True,
                        fg="red")
    typer.secho("re-run the same command to retry exactly those; finished answers are read from the store",
                err=True, fg="yellow")


def _summary(out_dir: Path, metrics: Any) -> None:
    for w in metrics.warnings:
        typer.secho(f"warning: {w}", err=True, fg="yellow")
    board = out_dir / "leaderboard.md"
    if board.exists():
        typer.echo(board.read_text(encoding="utf-8"))
    typer.echo(f"run directory: {out_dir}")


@app.command()
@_user_errors
def compare(
    runs: Annotated[list[Path], typer.Argument(help="Two or more run directories or records files.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for comparisons.csv and comparisons.md.")],
    tie_threshold: Annotated[float, typer.Option(help="Score gap counted as a tie where pred is empty.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Seed of the cluster bootstrap.")] = 0,
) -> None:
    """Paired comparison of the judges of several runs on their common items (task, item_id, scale);
    a judge name found in several runs is labelled RUN:judge."""
    from mjbench.compare import compare_runs

    md = compare_runs(runs, out, tie_threshold=tie_threshold, seed=seed)
    typer.echo(md.read_text(encoding="utf-8"))
    typer.echo(f"written: {md} and {md.with_suffix('.csv')}")


@app.command()
@_user_errors
def export(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (mjbench run or aggregate).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the export into.")],
    format: Annotated[str, typer.Option("--format", help="eee: Every Eval Ever, schema 0.3.")] = "eee",
    organization: Annotated[str, typer.Option(help="Who ran the evaluation (source_organization_name).")] = "mjbench",
    collection: Annotated[str, typer.Option(help="Benchmark folder under data/.")] = "mjbench",
) -> None:
    """Export a run directory to another result format (Every Eval Ever 0.3: one aggregate JSON per judge
    plus its per-sample JSONL)."""
    from mjbench.export import export_eee

    if format != "eee":
        raise MjbenchError(f"--format: expected 'eee', got {format!r}")
    for path in export_eee(run_dir, out, collection=collection, organization=organization):
        typer.echo(path)


@app.command()
@_user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (run.json and its records).")],
    gallery_max: Annotated[int | None, typer.Option(min=0, help=(
        "Failure gallery: items per judge, scale and subcategory (default: the run's, else 12)."))] = None,
) -> None:
    """Write the tables, leaderboards and HTML reports of a run directory again from its records, without
    asking any judge (images for the failure gallery are re-read from the run's tasks)."""
    from mjbench.report import rebuild_reports

    written = rebuild_reports(run_dir, gallery_max)
    typer.echo(f"{len(written)} files written; open {run_dir / 'reports' / 'index.html'}")


@app.command()
@_user_errors
def aggregate(
    records: Annotated[list[Path], typer.Argument(help="Records files (JSONL, Parquet or CSV).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for metrics, leaderboard and reports.")],
    tie_threshold: Annotated[float, typer.Option(help="Score gap counted as a tie where pred is empty.")] = 0.0,
    bias_normalization: BiasNormOpt = "minmax",
    bias_average: BiasAverageOpt = "items",
    calibrate_on: CalibrateOpt = None,
    force: ForceOpt = False,
    ndcg_k: NdcgOpt = 10,
) -> None:
    """Recompute every table from records files, whoever produced them. Refuses to write into the run
    directory of a `mjbench run` unless --force; the tables are swapped in only once all are written."""
    from mjbench.metrics import compute_metrics
    from mjbench.records import read_records
    from mjbench.report import write_run_outputs
    from mjbench.rundir import AGGREGATE_OUTPUTS, RunDirectory
    from mjbench.runner import write_json

    _bias_options(bias_normalization, bias_average)
    calibration = _calibration(calibrate_on)
    frame = read_records(records)
    metrics = compute_metrics(frame, tie_threshold=tie_threshold, bias_normalization=bias_normalization,
                              bias_average=bias_average, calibrate_on=calibration, ndcg_k=ndcg_k)
    info = {"command": "aggregate", "records": [str(p) for p in records], "tie_threshold": tie_threshold,
            "bias_normalization": bias_normalization, "bias_average": bias_average,
            "calibrate_on": calibration, "ndcg_k": ndcg_k, "counts": {"records": len(frame)},
            "intervals": metrics.interval_info}

    def write(folder: Path) -> None:
        write_run_outputs(folder, frame, metrics, info)
        write_json(folder / "run.json", info)

    with RunDirectory(out, "aggregate") as run_dir:
        run_dir.check_replaces(None, force)
        run_dir.publish(write, judged=False, owned=AGGREGATE_OUTPUTS)
    _summary(out, metrics)


def _catalog(include_path: list[Path] | None) -> Any:
    from mjbench.catalog import Catalog

    return Catalog(include_path or [])


def _print_problems(catalog: Any) -> None:
    for problem in catalog.problems:
        typer.secho(f"error: {problem}", err=True, fg="red")


@tasks_app.command("list")
@_user_errors
def tasks_list(include_path: IncludeOpt = None, hub_mirror: HubMirrorOpt = None) -> None:
    """Tasks and suites: name, perspective, subcategories, item count where cheap (hub tasks: from a mirror),
    source."""
    from rich.console import Console
    from rich.table import Table

    from mjbench.config import SuiteConfig
    from mjbench.sources import make_source

    catalog = _catalog(include_path)
    table = Table("name", "perspective", "subcategories", "items", "source")
    for name in sorted(catalog.tasks):
        cfg = catalog.tasks[name]
        if isinstance(cfg, SuiteConfig):
            table.add_row(name, "suite", ", ".join(cfg.tasks), "", "")
            continue
        count: int | None = None
        try:
            count = make_source(cfg, hub_mirror).count()
        except MjbenchError:
            count = None
        table.add_row(name, cfg.perspective, ", ".join(cfg.subcategories) or "(from data)",
                      "" if count is None else str(count), _describe_source(cfg.source))
    Console(width=200).print(table)
    _print_problems(catalog)


def _describe_source(source: dict[str, Any]) -> str:
    detail = source.get("repo") or source.get("path") or source.get("root") or ""
    return f"{source['type']}: {detail}" if detail else source["type"]


@tasks_app.command("show")
@_user_errors
def tasks_show(name: str, include_path: IncludeOpt = None) -> None:
    """The resolved configuration of a task or suite."""
    _show(_catalog(include_path).task(name))


@judges_app.command("list")
@_user_errors
def judges_list(include_path: IncludeOpt = None) -> None:
    """Judges: name, adapter, family, mode, scales, needs network/GPU, available here or why not."""
    from rich.console import Console
    from rich.table import Table

    from mjbench.adapters.base import ADAPTERS

    catalog = _catalog(include_path)
    table = Table("name", "adapter", "family", "mode", "scales", "network", "gpu", "available here")
    for name in sorted(catalog.judges):
        cfg = catalog.judges[name]
        try:
            cls = ADAPTERS.get(cfg.adapter)
            caps = cls.capabilities
            why = cls.check_available(cfg)
            network = caps.needs_network if cfg.needs_network is None else cfg.needs_network
            gpu = caps.needs_gpu if cfg.needs_gpu is None else cfg.needs_gpu
        except MjbenchError as exc:
            why, network, gpu = str(exc), cfg.needs_network, cfg.needs_gpu
        mode = cfg.mode
        if cfg.adapter == "jury":  # derived from its members' answers, never asked itself
            mode = f"{cfg.options.get('method', '?')} of {', '.join(map(str, cfg.options.get('members', [])))}"
        table.add_row(name, cfg.adapter, cfg.family, mode, ", ".join(cfg.scales),
                      "yes" if network else "no", "yes" if gpu else "no", "yes" if not why else f"no: {why}")
    Console(width=220).print(table)
    _print_problems(catalog)


@judges_app.command("show")
@_user_errors
def judges_show(name: str, include_path: IncludeOpt = None) -> None:
    """The resolved configuration of a judge (a name or a YAML path)."""
    _show(_catalog(include_path).judge(name))


def _show(cfg: Any) -> None:
    """A config as YAML, headed by the file it came from."""
    import yaml

    typer.echo(f"# {cfg.path}")
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True))


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
