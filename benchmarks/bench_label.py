"""Labelling throughput: `mjbench label` against `mjbench run` for the same judge on the same images.

Real MJ-Bench quality photos (`/work/shared/data/mjbench-quality`, 1024x1024 JPEGs, faces and indoor objects
alternating, or `--data DIR`): the first `--pairs` pairs, so 2 x pairs distinct images, judged by one
single-mode offline judge (`--judge`, default sharpness) three ways, each from a fresh run directory and
store (nothing reused):

- run: the pairs as a labelled pairwise task (`run_benchmark`): each image scored once, then records, metrics,
  leaderboard and reports;
- label, sets of 2: the same pairs as unlabelled two-image candidate sets (`run_label`, jury mean,
  best-vs-worst): each image scored once, then the preference export and its reports (md, html);
- label, sets of 4: the same images regrouped into sets of four (6 candidate pairs per set instead of 1): the
  judge still scores each image once; the extra pairs cost planning and export time only.

Images/s = distinct images / seconds, for the judging (the runner's `judge_timings`, model set-up excluded)
and for the whole command (planning, hashing, judging, outputs). The target: label as fast as run, i.e. no
extra cost per candidate. The cases run back to back in one process, in rotating order, and the median of
`--repeats` is shown, so that their ratios hold on a shared machine; the photos are read once beforehand so
every case finds them in the page cache.

Run: python benchmarks/bench_label.py [--pairs 100] [--judge sharpness] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench_decode import DATA, real_pairs  # the same real MJ-Bench quality pairs as the decoding benchmark


def write_tasks(work: Path, pairs: list[dict[str, str]]) -> dict[str, Path]:
    """The pair task and the two candidate tasks, all over the same distinct images."""
    paths = {}
    rows = [{**p, "label": 0} for p in pairs]
    (work / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (work / "pairs.yaml").write_text("name: pairs\nperspective: quality\ncolumns: {prompt: caption}\n"
                                     "source: {type: table, path: pairs.jsonl, allow_outside_paths: true}\n")
    paths["run"] = work / "pairs.yaml"
    images = [p[k] for p in pairs for k in ("image0", "image1")]
    for size in (2, 4):
        sets = [{"prompt": pairs[i // 2]["caption"], "images": images[i: i + size]}
                for i in range(0, len(images) - size + 1, size)]
        (work / f"sets{size}.jsonl").write_text("".join(json.dumps(s) + "\n" for s in sets))
        (work / f"sets{size}.yaml").write_text(
            f"name: sets{size}\nkind: candidates\nperspective: quality\n"
            f"source: {{type: table, path: sets{size}.jsonl, allow_outside_paths: true}}\n")
        paths[f"label, sets of {size}"] = work / f"sets{size}.yaml"
    return paths


def one(case: str, task: Path, judge: str, out: Path) -> tuple[float, float, int, int]:
    """(whole-command seconds, judging seconds, requests computed, requests reused) of one fresh run."""
    from mjbench.label import LabelSpec, run_label
    from mjbench.runner import RunSpec, run_benchmark

    start = time.perf_counter()
    if case == "run":
        result = run_benchmark(RunSpec(tasks=[str(task)], judges=[judge], out=out, quiet=True))
    else:
        result = run_label(LabelSpec(tasks=[str(task)], judges=[judge], out=out, quiet=True))
    wall = time.perf_counter() - start
    info = json.loads((out / "run.json").read_text())
    return wall, info["judge_timings"][judge]["judging_s"], result.computed, result.reused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pairs", type=int, default=100, help="real pairs (200 in the folder); 2x distinct images")
    parser.add_argument("--judge", default="sharpness", help="a single-mode offline judge (sharpness, brisque)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"real photos not found at {args.data} (pass --data DIR)")

    work = Path(tempfile.mkdtemp(prefix="mjbench-bench-label-"))
    os.environ.setdefault("MJBENCH_CACHE_DIR", str(work / "cache"))
    pairs = real_pairs(args.data, args.pairs)
    tasks = write_tasks(work, pairs)
    n_images = 2 * len(pairs)
    for p in pairs:  # every case finds the photos in the page cache
        Path(p["image0"]).read_bytes()
        Path(p["image1"]).read_bytes()
    print(f"{n_images} distinct images ({len(pairs)} pairs), judge {args.judge}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")
    cases = list(tasks)
    results: dict[str, list[tuple[float, float]]] = {c: [] for c in cases}
    for rep in range(args.repeats):
        for k in range(len(cases)):
            case = cases[(k + rep) % len(cases)]  # rotating order: no case always runs first
            wall, judging, computed, reused = one(case, tasks[case], args.judge, work / f"{rep}-{k}")
            if computed != n_images or reused:
                raise SystemExit(f"{case}: computed {computed}, reused {reused}; expected {n_images} and 0")
            results[case].append((wall, judging))
            print(f"  repeat {rep + 1}, {case}: judging {judging:.2f} s ({n_images / judging:.1f} images/s), "
                  f"whole command {wall:.2f} s ({n_images / wall:.1f} images/s)")
    print(f"\nmedian of {args.repeats}, {n_images} images, load now {os.getloadavg()[0]:.1f}:\n")
    print("| path | requests | judging s | judging images/s | whole command s | whole command images/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for case in cases:
        wall = statistics.median(w for w, _ in results[case])
        judging = statistics.median(j for _, j in results[case])
        print(f"| {case} | {n_images} | {judging:.2f} | {n_images / judging:.1f} | {wall:.2f} | "
              f"{n_images / wall:.1f} |")
    base = statistics.median(j for _, j in results["run"])
    base_wall = statistics.median(w for w, _ in results["run"])
    for case in cases[1:]:
        j = statistics.median(x for _, x in results[case])
        w = statistics.median(x for x, _ in results[case])
        print(f"{case}: judging throughput {100 * base / j:.0f} % of run's, whole command {100 * base_wall / w:.0f} %")


if __name__ == "__main__":
    main()
