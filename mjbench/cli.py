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


def _user_errors(fn: F) -> F:
    """Print MjbenchError as one `error:` line and exit 2, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except MjbenchError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _split(values: list[str] | None) -> list[str] | None:
    """Accept repeated options and comma-separated lists alike."""
    if not values:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _setup_logging(quiet: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(show_time=False, show_path=False, markup=False)], force=True)


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
) -> None:
    """Run judges over tasks and write a run directory. With no arguments: the embedded synthetic suite
    with the offline judges, on the CPU. Re-running the same command resumes from the store."""
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
        records_format=records_format, device=device, quiet=quiet,
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
    if result.judge_failures:
        for name, why in result.judge_failures.items():
            typer.secho(f"judge {name} failed: {why}", err=True, fg="red")
        raise typer.Exit(1)


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
) -> None:
    """Recompute every table from records files, whoever produced them."""
    from mjbench.metrics import compute_metrics
    from mjbench.records import read_records
    from mjbench.report import write_run_outputs
    from mjbench.runner import write_json

    frame = read_records(records)
    metrics = compute_metrics(frame, tie_threshold=tie_threshold, bias_normalization=bias_normalization)
    out.mkdir(parents=True, exist_ok=True)
    info = {"command": "aggregate", "records": [str(p) for p in records], "tie_threshold": tie_threshold,
            "bias_normalization": bias_normalization, "counts": {"records": len(frame)}}
    write_run_outputs(out, frame, metrics, info)
    write_json(out / "run.json", info)
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
