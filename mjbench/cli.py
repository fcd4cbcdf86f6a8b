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
    bias_normalization: Annotated[str, typer.Option(help="minmax (MJ-Bench) or scale (the scale's bounds).")] = "minmax",
    records_format: Annotated[str, typer.Option(help="jsonl or parquet.")] = "jsonl",
    device: Annotated[str | None, typer.Option(help="Override every judge's device (cpu, cuda, mps).")] = None,
    include_path: IncludeOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; warnings and summary only.")] = False,
    force: ForceOpt = False,
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
    if bias_normalization not in ("minmax", "scale"):
        raise MjbenchError(f"--bias-normalization must be minmax or scale, not {bias_normalization!r}")
    if records_format not in ("jsonl", "parquet"):
        raise MjbenchError(f"--records-format must be jsonl or parquet, not {records_format!r}")
    spec = RunSpec(
        tasks=_split(tasks) or DEFAULT_TASKS, judges=_split(judges) or DEFAULT_JUDGES,
        scales=_split(scales), out=out, limit=limit, seed=seed, include_paths=include_path or [],
        store=store, tie_threshold=tie_threshold, bias_normalization=bias_normalization,
        records_format=records_format, device=device, quiet=quiet, force=force,
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
def aggregate(
    records: Annotated[list[Path], typer.Argument(help="Records files (JSONL, Parquet or CSV).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for metrics, leaderboard and reports.")],
    tie_threshold: Annotated[float, typer.Option(help="Score gap counted as a tie where pred is empty.")] = 0.0,
    bias_normalization: Annotated[str, typer.Option(help="minmax or scale.")] = "minmax",
    force: ForceOpt = False,
) -> None:
    """Recompute every table from records files, whoever produced them. Refuses to write into the run
    directory of a `mjbench run` unless --force; the tables are swapped in only once all are written."""
    from mjbench.metrics import compute_metrics
    from mjbench.records import read_records
    from mjbench.report import write_run_outputs
    from mjbench.rundir import AGGREGATE_OUTPUTS, RunDirectory
    from mjbench.runner import write_json

    frame = read_records(records)
    metrics = compute_metrics(frame, tie_threshold=tie_threshold, bias_normalization=bias_normalization)
    info = {"command": "aggregate", "records": [str(p) for p in records], "tie_threshold": tie_threshold,
            "bias_normalization": bias_normalization, "counts": {"records": len(frame)}}

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
def tasks_list(include_path: IncludeOpt = None) -> None:
    """Tasks and suites: name, perspective, subcategories, item count where cheap, source."""
    from rich.console import Console
    from rich.table import Table

    from mjbench.config import SuiteConfig
    from mjbench.sources import SOURCES

    catalog = _catalog(include_path)
    table = Table("name", "perspective", "subcategories", "items", "source")
    for name in sorted(catalog.tasks):
        cfg = catalog.tasks[name]
        if isinstance(cfg, SuiteConfig):
            table.add_row(name, "suite", ", ".join(cfg.tasks), "", "")
            continue
        count: int | None = None
        try:
            count = SOURCES.get(cfg.source["type"])(cfg).count()
        except MjbenchError:
            count = None
        table.add_row(name, cfg.perspective, ", ".join(cfg.subcategories) or "(from data)",
                      "" if count is None else str(count), _describe_source(cfg.source))
    Console(width=200).print(table)
    _print_problems(catalog)


def _describe_source(source: dict[str, Any]) -> str:
    detail = source.get("repo") or source.get("path") or ""
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
        table.add_row(name, cfg.adapter, cfg.family, cfg.mode, ", ".join(cfg.scales),
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
