"""`mjbench report RUN_DIR`: write a run directory's tables and pages again from what it holds.

run.json names the records file and the settings the metrics were computed with (`tie_threshold`,
`bias_normalization`, `bias_average`, `calibrate_on`); its `tasks` configs let the failure gallery find the items' images again (each task
is re-loaded, lazily, only when the gallery shows one of its items; a task that cannot be loaded shows
"image unavailable" and the reason is logged). Outputs are swapped in under the run directory's lock, all
at once, like a run's.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench.errors import DataError, MjbenchError
from mjbench.report.gallery import DEFAULT_GALLERY_MAX

if TYPE_CHECKING:
    from mjbench.images import ImageRef

log = logging.getLogger(__name__)


class TaskImages:
    """(task, item_id) -> the item's images, from the run's task configs (run.json `tasks`), loaded on first
    use with the run's `limit` and `seed`. `task_paths` ({task: YAML path}, where run.json has it) lets
    relative paths in a task's source resolve as they did in the run."""

    def __init__(self, run_info: dict[str, Any]):
        tasks = run_info.get("tasks")
        self.configs: dict[str, Any] = tasks if isinstance(tasks, dict) else {}
        paths = run_info.get("task_paths")
        self.paths: dict[str, Any] = paths if isinstance(paths, dict) else {}
        self.limit = run_info.get("limit")
        self.seed = int(run_info.get("seed") or 0)
        self.items: dict[str, dict[str, tuple[ImageRef, ...]]] = {}

    def __call__(self, task: str, item_id: str) -> tuple[ImageRef, ...] | None:
        if task not in self.items:
            self.items[task] = self._load(task)
        return self.items[task].get(item_id)

    def _load(self, task: str) -> dict[str, tuple[ImageRef, ...]]:
        from mjbench.config import TaskConfig
        from mjbench.sources import load_task

        cfg = self.configs.get(task)
        if not isinstance(cfg, dict):
            return {}
        try:
            config = TaskConfig.model_validate(cfg)
            if self.paths.get(task):
                config = config.model_copy(update={"path": Path(self.paths[task])})
            loaded = load_task(config, limit=self.limit, seed=self.seed)
        except (MjbenchError, ValueError, OSError) as exc:  # ValueError: pydantic's ValidationError
            log.warning("task %s: images unavailable for the failure gallery: %s", task, exc)
            return {}
        return {it.item_id: tuple(it.images) for it in loaded.items}


def _records_paths(run_dir: Path, info: dict[str, Any]) -> list[Path]:
    """The records file(s) run.json names: a run's own file, or the files an aggregate read."""
    named = info.get("records")
    names = [named] if isinstance(named, str) else named if isinstance(named, list) else []
    if not names:
        raise DataError(f"{run_dir / 'run.json'}: records: no records file named")
    paths = []
    for name in map(str, names):
        p = Path(name)
        paths.append(p if p.is_absolute() or not (run_dir / p).exists() else run_dir / p)
    return paths


def rebuild(run_dir: Path, gallery_max: int | None = None) -> list[Path]:
    """Recompute the metrics from the records that run.json names (with its tie threshold, bias
    normalisation and seed) and write every table and page again (not the records, not run.json); the
    gallery cap is `gallery_max`, else run.json's, else DEFAULT_GALLERY_MAX. Returns the paths written."""
    from mjbench.metrics import compute_metrics, run_metric_options
    from mjbench.records import read_records
    from mjbench.report import REPORT_OUTPUTS, write_run_outputs
    from mjbench.rundir import RunDirectory

    run_json = run_dir / "run.json"
    if not run_json.is_file():
        raise DataError(f"{run_json}: not found; {run_dir} is not a run directory (no run.json)")
    try:
        info = json.loads(run_json.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{run_json}: cannot read it: {exc}") from None
    if not isinstance(info, dict):
        raise DataError(f"{run_json}: expected a JSON object")
    frame = read_records(_records_paths(run_dir, info))
    metrics = compute_metrics(frame, **run_metric_options(info))
    if gallery_max is None:
        gallery_max = int(info.get("gallery_max") or DEFAULT_GALLERY_MAX)
    images = TaskImages(info)
    written: list[Path] = []

    def write(folder: Path) -> None:
        paths = write_run_outputs(folder, frame, metrics, info, images=images, gallery_max=gallery_max)
        written.extend(run_dir / p.relative_to(folder) for p in paths)

    with RunDirectory(run_dir, "report") as rd:
        rd.publish(write, judged=False, owned=REPORT_OUTPUTS)
    return written
