"""Sharded runs: what merging costs, and what N shard processes gain over one process.

- merge: S shard stores of R rows each (payloads the size of a VLM answer, about 1.5 kB), merged into a
  fresh store by `mjbench.shard.merge_stores` (one transaction, conflict check on every key). Rows/s.
- run: `mjbench run` on the synthetic suite (--limit L, judges sharpness and brisque) as one process, then
  as N shard processes started together (`--shard I/N`, as a launcher would) followed by `mjbench merge`.
  Judging wall time = slowest shard; the merge includes the records, metrics and reports.

Run: python benchmarks/bench_shard.py [--stores 8] [--rows 25000] [--limit 40] [--shards 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def bench_merge(work: Path, stores: int, rows: int) -> None:
    from mjbench.responses import Response
    from mjbench.shard import merge_stores
    from mjbench.store import ResultStore, content_key

    paths = []
    for s in range(stores):
        store = ResultStore(work / f"shard-{s}.sqlite")
        answer = Response(status="ok", score=7.0, raw_output="The image shows ... " * 70, latency_s=1.25,
                          input_tokens=900, output_tokens=350)
        for start in range(0, rows, 5000):
            store.put_many("vlm", [(content_key(s, i), answer) for i in range(start, min(start + 5000, rows))])
        store.close()
        paths.append(work / f"shard-{s}.sqlite")
    target = ResultStore(work / "merged.sqlite")
    t0 = time.perf_counter()
    summary = merge_stores(paths, target)
    seconds = time.perf_counter() - t0
    total = stores * rows
    size = sum(p.stat().st_size for p in paths) / 1e6
    print(f"merge: {stores} stores x {rows} rows ({size:.0f} MB) -> {summary.added} rows in {seconds:.2f} s, "
          f"{total / seconds:,.0f} rows/s")
    t0 = time.perf_counter()
    again = merge_stores(paths, target)  # every key already held: the conflict check on every row
    seconds = time.perf_counter() - t0
    print(f"merge again (all {again.same} rows already held, each compared): {seconds:.2f} s, "
          f"{total / seconds:,.0f} rows/s")
    target.close()


def mjbench(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mjbench.cli", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait(proc: subprocess.Popen) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"mjbench failed ({proc.returncode}): {err[-2000:]}")


def bench_run(work: Path, limit: int, shards: int) -> None:
    env = {**os.environ, "MJBENCH_CACHE_DIR": str(work / "cache")}
    common = ["--tasks", "synthetic", "--judges", "sharpness,brisque", "--limit", str(limit), "-q"]
    wait(mjbench("run", *common, "--out", str(work / "warm"), env=env))  # draws the synthetic images once

    t0 = time.perf_counter()
    wait(mjbench("run", *common, "--out", str(work / "one"), env=env))
    one = time.perf_counter() - t0
    info = json.loads((work / "one" / "run.json").read_text())
    judging = sum(t["judging_s"] for t in info["judge_timings"].values())
    print(f"run, 1 process: {one:.1f} s wall ({judging:.1f} s judging, {info['counts']['requests_computed']} "
          "requests)")

    t0 = time.perf_counter()
    procs = [mjbench("run", *common, "--out", str(work / "sharded"), "--shard", f"{i}/{shards}", env=env)
             for i in range(shards)]
    for p in procs:
        wait(p)
    sharded = time.perf_counter() - t0
    stores = sorted(str(p) for p in (work / "sharded").glob("shards/*/store.sqlite"))
    t0 = time.perf_counter()
    wait(mjbench("merge", *stores, *common, "--out", str(work / "sharded"), env=env))
    merged = time.perf_counter() - t0
    judged = [json.loads((work / "sharded" / "shards" / f"{i}-of-{shards}" / "run.json").read_text())
              for i in range(shards)]
    shard_judging = max(sum(t["judging_s"] for t in j["judge_timings"].values()) for j in judged)
    same = (work / "one" / "records.jsonl").read_bytes() == (work / "sharded" / "records.jsonl").read_bytes()
    print(f"run, {shards} shard processes: {sharded:.1f} s wall (slowest shard judging {shard_judging:.1f} s), "
          f"merge {merged:.1f} s; records identical to the single process: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", type=int, default=8)
    parser.add_argument("--rows", type=int, default=25000, help="rows per store")
    parser.add_argument("--limit", type=int, default=40, help="items per synthetic task")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--skip-run", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mjbench-bench-shard-"))
    bench_merge(work, args.stores, args.rows)
    if not args.skip_run:
        bench_run(work, args.limit, args.shards)


if __name__ == "__main__":
    main()
