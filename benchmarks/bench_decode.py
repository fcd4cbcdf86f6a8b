"""Decoding that keeps up: `mjbench run` with open_clip on real photos, against the model's own speed.

Cases (each on real MJ-Bench quality pairs from `/work/shared/data/mjbench-quality`, or `--data DIR`):
- `photos-1024`: the 1024x1024 JPEGs as they are;
- `photos-1920x1080`: the first pairs upscaled to 1920x1080 JPEG (quality 90) in a temporary folder, the
  size of many camera and web images, where full decoding costs most.

Paths, run back to back in one process so their ratio holds on a busy machine (median of `--repeats`):
- model only: the images decoded and preprocessed into tensors beforehand (untimed); timed: `encode_image`
  over batches plus `encode_text` over the prompts. The ceiling.
- mjbench run: `run_benchmark` from a fresh run directory and store; throughput = requests / judging time
  (the runner's `judge_timings`; model set-up is not in it). Large JPEGs decoded in draft mode and
  reduced (`decode_at_least`), in the prefetch pool.
- mjbench run, full decode: the same with the decode bound switched off (every pixel decoded, as before).
- one-pair loop: what research scripts do: per pair, decode both images in full, preprocess, encode the
  two and the prompt, one model call per pair, no prefetching.

Run: python benchmarks/bench_decode.py [--pairs 100] [--large-pairs 40] [--repeats 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mjbench-quality"
SUBSETS = [("human/captions_human.json", "human/examples_human"),
           ("objects_indoor/captions_objects.json", "objects_indoor/examples_objects_indoor")]


def real_pairs(root: Path, n: int) -> list[dict[str, str]]:
    """Up to `n` pairs, alternating faces and objects: {caption, image0, image1} with absolute paths."""
    lists = []
    for captions, folder in SUBSETS:
        rows = json.loads((root / captions).read_text())
        lists.append([{"caption": r["caption"], "image0": str(root / folder / r["image_0"]),
                       "image1": str(root / folder / r["image_1"])} for r in rows])
    mixed = [row for group in zip(*lists, strict=False) for row in group]
    return mixed[:n]


def upscaled(pairs: list[dict[str, str]], folder: Path, size: tuple[int, int]) -> list[dict[str, str]]:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, row in enumerate(pairs):
        new = {"caption": row["caption"]}
        for key in ("image0", "image1"):
            path = folder / f"{i}-{key}.jpg"
            Image.open(row[key]).convert("RGB").resize(size, Image.Resampling.BICUBIC).save(path, quality=90)
            new[key] = str(path)
        out.append(new)
    return out


def write_case(work: Path, name: str, pairs: list[dict[str, str]]) -> None:
    rows = [{**p, "label": 0} for p in pairs]
    (work / f"{name}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (work / "tasks" / f"{name}.yaml").write_text(
        f"name: {name}\nperspective: quality\nsource: {{type: table, path: ../{name}.jsonl, allow_outside_paths: true}}\n"
        "columns: {prompt: caption}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--pairs", type=int, default=100, help="real 1024 px pairs (200 in the folder)")
    parser.add_argument("--large-pairs", type=int, default=40, help="pairs upscaled to 1920x1080 (0: skip)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--skip-full-decode", action="store_true", help="leave out the bound-off row")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"real photos not found at {args.data} (pass --data DIR)")

    import open_clip
    import torch

    from mjbench.adapters.open_clip_scorer import OpenClipScorer
    from mjbench.catalog import Catalog
    from mjbench.runner import RunSpec, run_benchmark
    from mjbench.sources import load_task

    work = Path(tempfile.mkdtemp(prefix="mjbench-decode-"))
    os.environ.setdefault("MJBENCH_CACHE_DIR", str(work / "cache"))
    (work / "tasks").mkdir()
    (work / "judges").mkdir()
    (work / "judges" / "clip.yaml").write_text(
        f"name: clip-random\nadapter: open_clip\nfamily: score\nbatch_size: {args.batch_size}\n"
        f"device: {args.device}\noptions: {{model_name: {args.model}, pretrained: null}}\n")
    pairs = real_pairs(args.data, args.pairs)
    cases = ["photos-1024"]
    write_case(work, "photos-1024", pairs)
    if args.large_pairs:
        write_case(work, "photos-1920x1080", upscaled(pairs[: args.large_pairs], work / "large", (1920, 1080)))
        cases.append("photos-1920x1080")

    model, _, preprocess = open_clip.create_model_and_transforms(args.model, pretrained=None)
    model.eval().to(args.device)
    tokenizer = open_clip.get_tokenizer(args.model)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores, "
          f"device {args.device}, {args.model} random weights, batch {args.batch_size}, load {os.getloadavg()}")

    def model_only(tensors: torch.Tensor, tokens: torch.Tensor) -> float:
        with torch.inference_mode():
            model.encode_image(tensors[:2].to(args.device))  # warm-up
            start = time.perf_counter()
            for i in range(0, len(tensors), args.batch_size):
                model.encode_image(tensors[i : i + args.batch_size].to(args.device))
            for i in range(0, len(tokens), args.batch_size):
                model.encode_text(tokens[i : i + args.batch_size].to(args.device))
            return len(tensors) / (time.perf_counter() - start)

    def one_pair_loop(items) -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            for item in items:
                x = torch.stack([preprocess(ref.load()) for ref in item.images]).to(args.device)
                img = model.encode_image(x, normalize=True)
                txt = model.encode_text(tokenizer([item.prompt]).to(args.device), normalize=True)
                (img @ txt.T).tolist()
        return 2 * len(items) / (time.perf_counter() - start)

    def mjbench_run(case: str, tag: str) -> float:
        out = work / "runs" / f"{case}-{tag}-{time.perf_counter_ns()}"
        result = run_benchmark(RunSpec(tasks=[case], judges=["clip-random"], out=out, include_paths=[work],
                                       quiet=True))
        timing = result.timings["clip-random"]
        return timing["requests"] / timing["judging_s"]

    bound = OpenClipScorer._decode_min_side
    rows = []
    for case in cases:
        loaded = load_task(Catalog([work]).task(case))
        if loaded.problems or not loaded.items:
            raise SystemExit(f"{case}: {loaded.problems[:1] or 'no items'}")
        items = loaded.items
        refs = [ref for item in items for ref in item.images]
        prompts = sorted({item.prompt for item in items})
        tensors = torch.stack([preprocess(ref.load()) for ref in refs])
        tokens = tokenizer(prompts)
        for ref in refs:
            ref.release()
        runs: dict[str, list[float]] = {"model only": [], "mjbench run": [], "mjbench run, full decode": [],
                                        "one-pair loop": []}
        for r in range(args.repeats):
            load = os.getloadavg()[0]
            runs["model only"].append(model_only(tensors, tokens))
            runs["mjbench run"].append(mjbench_run(case, "bounded"))
            if not args.skip_full_decode:
                OpenClipScorer._decode_min_side = lambda self: None  # type: ignore[method-assign]
                try:
                    runs["mjbench run, full decode"].append(mjbench_run(case, "full"))
                finally:
                    OpenClipScorer._decode_min_side = bound  # type: ignore[method-assign]
            runs["one-pair loop"].append(one_pair_loop(items))
            print(f"{case} repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items() if v)
                  + f" images/s (1-min load before {load:.2f})", flush=True)
        med = {k: statistics.median(v) for k, v in runs.items() if v}
        rows.append((case, len(refs), med))

    print(f"\nmedian of {args.repeats} runs, images/s (load after: {os.getloadavg()})")
    print("| case | images | model only | mjbench run | run / model | full decode | one-pair loop | run / loop |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for case, n, med in rows:
        full = f"{med['mjbench run, full decode']:.1f}" if "mjbench run, full decode" in med else "-"
        print(f"| {case} | {n} | {med['model only']:.1f} | {med['mjbench run']:.1f} | "
              f"{med['mjbench run'] / med['model only']:.0%} | {full} | {med['one-pair loop']:.1f} | "
              f"{med['mjbench run'] / med['one-pair loop']:.1f}x |")


if __name__ == "__main__":
    main()
