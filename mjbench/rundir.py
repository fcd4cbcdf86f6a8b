"""One writer per run directory, and outputs that appear all at once.

`RunDirectory(path, command)` used as a context manager creates the folder, takes an exclusive lock on it
(`filelock`, released by the OS if the process dies, even on kill -9) and writes a small holder file (PID,
command, since when) so a second process that finds the lock taken can say who holds it. While locked:

- `check_replaces(...)` refuses to overwrite a `run.json` of a different run unless forced;
- `publish(write)` has `write(folder)` produce every output into a fresh staging folder inside the run
  directory, and only when it returned moves each entry into place with `os.replace`. A failure while
  writing leaves the run directory exactly as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from mjbench.errors import MjbenchError
from mjbench.redact import redact

LOCK_NAME = ".mjbench.lock"
HOLDER_NAME = ".mjbench.lock.json"
STAGING_PREFIX = ".staging-"
#: every name a run or an aggregate writes; a publish replaces these and removes the ones it did not write
OUTPUT_NAMES = ("records.jsonl", "records.parquet", "records.csv", "metrics.csv", "comparisons.csv",
                "leaderboard.md", "leaderboard.csv", "leaderboard.json", "leaderboard.tex", "reports", "run.json")
#: aggregate reads records, possibly from this very folder: it never replaces or removes them
AGGREGATE_OUTPUTS = tuple(n for n in OUTPUT_NAMES if not n.startswith("records."))
#: the keys of run.json's "requested" that decide whether a run directory holds the same run
IDENTITY_KEYS = ("tasks", "judges", "scales", "limit", "seed")


class RunDirError(MjbenchError):
    """The run directory cannot be used (taken by another process, holds another run, not writable)."""

    exit_code = 2


class OutputError(MjbenchError):
    """Judging finished but the outputs could not be written; the answers are in the store."""

    def __init__(self, message: str, judged: bool):
        super().__init__(message)
        self.exit_code = 1 if judged else 2


def _describe(requested: dict[str, Any]) -> str:
    parts = [f"tasks {', '.join(requested.get('tasks') or [])}",
             f"judges {', '.join(requested.get('judges') or [])}"]
    if requested.get("scales"):
        parts.append(f"scales {', '.join(requested['scales'])}")
    parts.append(f"limit {requested.get('limit')}, seed {requested.get('seed')}")
    return "; ".join(parts)


def requested_of(info: dict[str, Any]) -> dict[str, Any]:
    """The identity of the run recorded in a run.json (older files kept seed and limit at the top level)."""
    req = dict(info.get("requested") or {})
    for key in ("limit", "seed"):
        req.setdefault(key, info.get(key))
    return {k: req.get(k) for k in IDENTITY_KEYS}


class RunDirectory:
    def __init__(self, path: Path | str, command: str):
        self.path = Path(path)
        self.command = command
        self._lock: FileLock | None = None

    # -- lock ----------------------------------------------------------------------------------------
    def __enter__(self) -> RunDirectory:
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"--out {self.path}: exists and is not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            lock = FileLock(self.path / LOCK_NAME, timeout=0)
            lock.acquire()
        except Timeout:
            raise RunDirError(f"--out {self.path} is in use by {self._holder()}; wait for it to finish or "
                              "choose another --out") from None
        except OSError as exc:
            raise RunDirError(f"--out {self.path}: cannot write there ({exc.strerror or exc})") from None
        self._lock = lock
        try:
            holder = {"pid": os.getpid(), "command": redact(" ".join(sys.argv)),
                      "since": time.strftime("%Y-%m-%d %H:%M:%S %z")}
            (self.path / HOLDER_NAME).write_text(json.dumps(holder) + "\n", encoding="utf-8")
            for stale in self.path.glob(STAGING_PREFIX + "*"):  # left by a process killed while publishing
                shutil.rmtree(stale, ignore_errors=True)
        except OSError as exc:
            self.__exit__()
            raise RunDirError(f"--out {self.path}: cannot write there ({exc.strerror or exc})") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock is None:
            return
        (self.path / HOLDER_NAME).unlink(missing_ok=True)
        self._lock.release()
        self._lock = None

    def _holder(self) -> str:
        try:
            h = json.loads((self.path / HOLDER_NAME).read_text(encoding="utf-8"))
            return f"PID {h['pid']} ({h['command']}) since {h['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another mjbench process (holder not yet recorded)"

    # -- what is there -------------------------------------------------------------------------------
    def existing_info(self) -> dict[str, Any] | None:
        path = self.path / "run.json"
        if not path.is_file():
            return None
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunDirError(f"{path}: cannot read ({exc}); choose another --out or pass --force") from None
        return info if isinstance(info, dict) else {}

    def check_replaces(self, requested: dict[str, Any] | None, force: bool) -> None:
        """Refuse to replace the outputs of a different run (or of a `run` from `aggregate`) unless forced.
        `requested` is this run's identity; None for `aggregate`."""
        info = self.existing_info()
        if force or info is None:
            return
        old_command = info.get("command")
        if requested is None:
            if old_command == "run":
                raise RunDirError(f"--out {self.path} holds a run of {_describe(requested_of(info))}; "
                                  "aggregate would replace its outputs; choose another --out or pass --force")
            return
        if old_command != self.command:
            raise RunDirError(f"--out {self.path} holds the outputs of `mjbench {old_command}`; choose another "
                              "--out or pass --force to replace them")
        old = requested_of(info)
        if old != {k: requested.get(k) for k in IDENTITY_KEYS}:
            raise RunDirError(f"--out {self.path} holds a run of {_describe(old)}; this run asks for "
                              f"{_describe(requested)}; choose another --out or pass --force to replace it")

    # -- publishing ----------------------------------------------------------------------------------
    def publish(self, write: Callable[[Path], None], judged: bool, owned: Sequence[str] = OUTPUT_NAMES) -> None:
        """`write(staging)` writes every output; then they replace the old ones (run.json last), and the
        `owned` names it did not write are removed, so no output of an earlier run is left beside them."""
        assert self._lock is not None, "publish needs the lock"
        try:
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.path))
        except OSError as exc:
            raise OutputError(f"--out {self.path}: cannot write outputs ({exc.strerror or exc})", judged) from None
        try:
            try:
                write(staging)
            except OSError as exc:
                raise OutputError(f"--out {self.path}: cannot write outputs ({exc}); the judges' answers are "
                                  "kept in the store: re-run the same command to write them", judged) from None
            produced = {p.name for p in staging.iterdir()}
            trash = staging / ".old"
            trash.mkdir()
            for name in sorted(owned, key=lambda n: n == "run.json"):
                target = self.path / name
                if target.is_dir() and not target.is_symlink():
                    os.replace(target, trash / name)  # a folder cannot replace a non-empty folder
                if name in produced:
                    os.replace(staging / name, target)
                elif target.exists() or target.is_symlink():
                    target.unlink()
        finally:
            shutil.rmtree(staging, ignore_errors=True)
