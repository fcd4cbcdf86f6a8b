"""Finds task, suite and judge YAML files: the packaged ones, `--include-path` folders and plugins.

Search order (a later definition of the same name replaces an earlier one, so a user can override a
shipped judge): packaged configs, plugin entry points (group `mjbench.configs`, each naming a folder
or a callable returning one), folders in `MJBENCH_INCLUDE_PATH`, then `--include-path` folders.
Each folder may hold `tasks/` and `judges/` subfolders.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from mjbench.config import JudgeConfig, SuiteConfig, TaskConfig, load_judge_file, load_task_file
from mjbench.errors import ConfigError, MjbenchError, UnknownNameError

CONFIG_ENTRY_POINT_GROUP = "mjbench.configs"


def packaged_config_root() -> Path:
    """The folder holding `tasks/` and `judges/`: the repository root in a source checkout,
    `mjbench/_configs` in an installed wheel."""
    pkg = Path(__file__).resolve().parent
    installed = pkg / "_configs"
    if installed.is_dir():
        return installed
    return pkg.parent


def _plugin_roots() -> list[Path]:
    roots = []
    for ep in entry_points(group=CONFIG_ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            roots.append(Path(obj() if callable(obj) else obj))
        except Exception as exc:  # a broken plugin must not take the catalog down
            raise ConfigError(f"plugin entry point {ep.name!r} ({ep.value}) failed to load: {exc}") from None
    return roots


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


@dataclass
class Catalog:
    include_paths: Sequence[Path | str] = ()
    tasks: dict[str, TaskConfig | SuiteConfig] = field(default_factory=dict, init=False)
    judges: dict[str, JudgeConfig] = field(default_factory=dict, init=False)
    #: files that failed to parse: shown by `list`, raised by anything that needs them
    problems: list[ConfigError] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        env = [p for p in os.environ.get("MJBENCH_INCLUDE_PATH", "").split(os.pathsep) if p]
        roots = [packaged_config_root(), *_plugin_roots(), *map(Path, env), *map(Path, self.include_paths)]
        for root in roots:
            if not root.exists():
                raise ConfigError(f"include path does not exist: {root}")
            self._scan(root)

    def _scan(self, root: Path) -> None:
        for path in _yaml_files(root / "tasks"):
            try:
                cfg = load_task_file(path)
            except ConfigError as exc:
                self.problems.append(exc)
                continue
            self.tasks[cfg.name] = cfg
        for path in _yaml_files(root / "judges"):
            try:
                jcfg = load_judge_file(path)
            except ConfigError as exc:
                self.problems.append(exc)
                continue
            self.judges[jcfg.name] = jcfg

    # -- lookups ---------------------------------------------------------------------------------
    def task(self, name: str) -> TaskConfig | SuiteConfig:
        path = Path(name)
        if path.suffix in (".yaml", ".yml"):
            if not path.is_file():
                raise ConfigError(f"task file not found: {path}")
            cfg = load_task_file(path)
            self.tasks.setdefault(cfg.name, cfg)
            return cfg
        if name not in self.tasks:
            self._raise_unknown("task or suite", name, self.tasks)
        return self.tasks[name]

    def judge(self, name: str) -> JudgeConfig:
        """A judge by name, or a judge YAML given by path (one file registers a new judge)."""
        path = Path(name)
        if path.suffix in (".yaml", ".yml"):
            if not path.is_file():
                raise ConfigError(f"judge file not found: {path}")
            cfg = load_judge_file(path)
            self.judges.setdefault(cfg.name, cfg)
            return cfg
        if name not in self.judges:
            self._raise_unknown("judge", name, self.judges)
        return self.judges[name]

    def _raise_unknown(self, kind: str, name: str, known: Iterable[str]) -> None:
        # a malformed file that might have defined the name explains more than "unknown"
        for problem in self.problems:
            if name in str(problem).split(":")[0]:
                raise problem
        raise UnknownNameError(kind, name, known)

    def expand_tasks(self, names: Sequence[str]) -> list[TaskConfig]:
        """Resolve task and suite names to tasks, in order, without duplicates."""
        out: dict[str, TaskConfig] = {}

        def visit(name: str, stack: tuple[str, ...]) -> None:
            if name in stack:
                raise ConfigError(f"suite cycle: {' -> '.join(stack + (name,))}")
            cfg = self.task(name)
            if isinstance(cfg, SuiteConfig):
                for sub in cfg.tasks:
                    try:
                        visit(sub, stack + (name,))
                    except UnknownNameError as exc:
                        raise MjbenchError(f"{cfg.path}: tasks: {exc}") from None
            else:
                out.setdefault(cfg.name, cfg)

        for n in names:
            visit(n, ())
        return list(out.values())
