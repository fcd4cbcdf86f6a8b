"""Sharded runs: which requests a shard judges, and merging the shards' stores into one.

`mjbench run --shard I/N` plans the whole run as usual, then judges only the requests whose cache key
falls in shard I (the key is a sha256, so `int(key) mod N` splits evenly and the same way in every
process), into its own store. N processes started by any launcher (torchrun, `accelerate launch`, a SLURM
job array, a shell loop) share nothing but the file system. `mjbench merge` takes the shards' stores into
the run's store and writes the run directory through the same code as `run`, so the records and metrics
of a sharded run are those of the unsharded one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mjbench.errors import ConfigError, MjbenchError
from mjbench.store import ResultStore, StoreError

#: launcher environments read by `--shard auto`, first match wins: (index variable, count variable, launcher)
LAUNCHER_ENV = (
    ("RANK", "WORLD_SIZE", "torchrun / accelerate launch"),
    ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM job array"),
    ("SLURM_PROCID", "SLURM_NTASKS", "srun"),
)
#: at most this many conflicting keys are looked up in every store to name the stores that disagree
_CONFLICTS_NAMED = 1000


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count). `local_rank`: the process's GPU on its machine where
    the launcher says so (torchrun's LOCAL_RANK), so N processes on one machine do not share GPU 0."""

    index: int
    count: int
    local_rank: int | None = None

    @property
    def label(self) -> str:
        """The shard's folder name under `<out>/shards/`, e.g. `0-of-4`."""
        return f"{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        """Whether this shard judges the request with this cache key (a sha256 hex digest)."""
        return int(key[:16], 16) % self.count == self.index

    def device_for(self, device: str) -> str:
        """A judge's device in this process: `cuda` or `auto` become `cuda:<local rank>` where the launcher
        gave a local rank and CUDA is present (modulo the visible GPUs); anything else is kept."""
        if self.local_rank is None or device not in ("cuda", "auto"):
            return device
        try:
            import torch
        except ImportError:
            return device
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return f"cuda:{self.local_rank % n}" if n else device


def _int(env: Mapping[str, str], name: str) -> int:
    raw = env.get(name, "")
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"--shard auto: {name}={raw!r} is not a whole number") from None


def parse_shard(text: str, env: Mapping[str, str] | None = None) -> Shard:
    """`I/N` (0-based I), or `auto`: the launcher's environment (see LAUNCHER_ENV). A SLURM array that
    starts above 0 (`--array=1-8`) is counted from SLURM_ARRAY_TASK_MIN."""
    env = os.environ if env is None else env
    text = text.strip()
    if text == "auto":
        for index_var, count_var, launcher in LAUNCHER_ENV:
            if index_var in env and count_var in env:
                index, count = _int(env, index_var), _int(env, count_var)
                if index_var == "SLURM_ARRAY_TASK_ID" and "SLURM_ARRAY_TASK_MIN" in env:
                    index -= _int(env, "SLURM_ARRAY_TASK_MIN")
                local = _int(env, "LOCAL_RANK") if index_var == "RANK" and "LOCAL_RANK" in env else None
                if not 0 <= index < count:
                    raise ConfigError(f"--shard auto: {launcher} gives shard {index} of {count} "
                                      f"({index_var}, {count_var}); an array with steps is not supported, "
                                      "pass --shard I/N")
                return Shard(index, count, local)
        names = ", ".join(f"{i}/{c}" for i, c, _ in LAUNCHER_ENV)
        raise ConfigError(f"--shard auto: no launcher environment found (looked for {names}); pass --shard I/N")
    match = re.fullmatch(r"(\d+)\s*/\s*(\d+)", text)
    if not match:
        raise ConfigError(f"--shard must be I/N (e.g. 0/4, counted from 0) or auto, not {text!r}")
    index, count = int(match[1]), int(match[2])
    if count < 1 or index >= count:
        raise ConfigError(f"--shard {text}: I must be in 0..N-1 and N at least 1")
    return Shard(index, count)


def check_shard_runs(stores: Sequence[Path], requested: dict[str, object]) -> None:
    """Refuse to merge a shard's store into another run: a store written by `run --shard` has its shard's
    run.json beside it, whose tasks, judges, scales, limit and seed must be the merge's."""
    import json

    from mjbench.rundir import IDENTITY_KEYS, requested_of

    wanted = {k: requested.get(k) for k in IDENTITY_KEYS}
    for store in stores:
        info_path = Path(store).parent / "run.json"
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a shard's folder (e.g. a --store elsewhere): nothing to check against
        if not isinstance(info, dict) or not info.get("shard"):
            continue
        theirs = requested_of(info)
        if theirs != wanted:
            diff = ", ".join(f"{k} {theirs.get(k)!r} (merge: {wanted.get(k)!r})" for k in IDENTITY_KEYS
                             if theirs.get(k) != wanted.get(k))
            raise ConfigError(f"merge: {store} was written by shard {info['shard']} of another run: {diff}; "
                              "give merge the options the shards ran with")


class MergeConflict(MjbenchError):
    """Two stores hold different answers to the same request: nothing was merged."""

    exit_code = 2


@dataclass
class MergeSummary:
    added: int
    same: int
    stores: list[Path]


def merge_stores(sources: Sequence[Path], target: ResultStore) -> MergeSummary:
    """Take every answer of `sources` into `target`, all or nothing. A source that is the target itself is
    skipped. Different answers to one key (in two sources, or in a source and the target) raise
    MergeConflict naming how many keys and which stores; nothing is written then."""
    if not sources:
        raise ConfigError("merge: name at least one store")
    paths = [Path(p) for p in sources if not (target.path.exists() and Path(p).exists()
                                              and os.path.samefile(p, target.path))]
    opened: list[ResultStore] = []
    try:
        for p in dict.fromkeys(paths):  # a store named twice is read once
            opened.append(ResultStore(p, readonly=True))
        result = target.absorb(opened)
        if result.conflicts:
            raise MergeConflict(_conflict_message(result.conflicts, opened, target))
    finally:
        for s in opened:
            s.close()
    return MergeSummary(sum(result.added), sum(result.same), [s.path for s in opened])


def _conflict_message(conflicts: list[tuple[str, int]], sources: list[ResultStore], target: ResultStore) -> str:
    """One line: how many keys disagree, and the stores holding their differing answers (the target's own
    rows, and every source holding one of the first conflicting keys)."""
    keys = sorted({k for k, _ in conflicts})
    named = keys[:_CONFLICTS_NAMED]
    involved: list[Path] = []
    try:
        for store in [target, *sources]:
            if store.payloads(named):
                involved.append(store.path)
    except StoreError:
        involved = [target.path, *(s.path for s in sources)]
    stores = ", ".join(str(p) for p in involved)
    return (f"merge: {len(keys)} request key(s) have different answers in the stores {stores} (e.g. key "
            f"{keys[0][:16]}...); nothing was merged. Shards of one run answer disjoint keys: these stores "
            "come from different judge versions or a non-deterministic judge; merge only the stores of one run")
