"""End-to-end `mjbench run` throughput with the open_clip adapter against the model's own encode speed.

Both sides work on the same images: >= 256 synthetic quality pairs (512+ distinct 256 px PNGs, one prompt
each). The judge is open_clip ViT-B-32 with random weights (no download), batch 32, on the CPU.

- model only: images already decoded and preprocessed into tensors; time `encode_image` over batches of
  32 plus `encode_text` over the prompts. This is the ceiling: no decoding, hashing, storing or records.
- mjbench run: `run_benchmark` from a fresh store: plan, hash, decode, preprocess (overlapped with the
  model), encode, score, store, records, metrics. Throughput = images / judging time (model set-up is
  reported apart), and also images / the whole wall time of the run.

Run: python benchmarks/bench_run_open_clip.py [--pairs 258] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=258, help="pairs (rounded up to 3 subcategories)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import torch

    work = Path(tempfile.mkdtemp(prefix="mjbench-bench-"))
    os.environ.setdefault("MJBENCH_CACHE_DIR", str(work / "cache"))
    per_sub = -(-args.pairs // 3)
    (work / "tasks").mkdir()
    (work / "judges").mkdir()
    (work / "tasks" / "bench.yaml").write_text(
        "name: bench-quality\nperspective: quality\n"
        f"source: {{type: synthetic, per_subcategory: {per_sub}, seed: 0}}\n")
    (work / "judges" / "clip.yaml").write_text(
        f"name: clip-random\nadapter: open_clip\nfamily: score\nbatch_size: {args.batch_size}\n"
        f"device: {args.device}\noptions: {{model_name: {args.model}, pretrained: null}}\n")

    from mjbench.catalog import Catalog
    from mjbench.runner import RunSpec, run_benchmark
    from mjbench.sources import load_task

    items = load_task(Catalog([work]).task("bench-quality")).items  # generates the images once, untimed
    images = [ref for item in items for ref in item.images]
    prompts = sorted({item.prompt for item in items})
    print(f"{len(items)} pairs, {len(images)} images, {len(prompts)} distinct prompts, "
          f"torch threads {torch.get_num_threads()}, device {args.device}")

    # -- model only -------------------------------------------------------------------------------
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(args.model, pretrained=None)
    model.eval().to(args.device)
    tokenizer = open_clip.get_tokenizer(args.model)
    tensors = torch.stack([preprocess(ref.load()) for ref in images])
    tokens = tokenizer(prompts)
    with torch.inference_mode():
        model.encode_image(tensors[: args.batch_size].to(args.device))  # warm-up
        start = time.perf_counter()
        for i in range(0, len(tensors), args.batch_size):
            model.encode_image(tensors[i : i + args.batch_size].to(args.device))
        for i in range(0, len(tokens), args.batch_size):
            model.encode_text(tokens[i : i + args.batch_size].to(args.device))
        model_s = time.perf_counter() - start
    del model
    model_ips = len(images) / model_s
    print(f"model only:   {model_s:7.2f} s  {model_ips:7.1f} images/s")

    # -- mjbench run ------------------------------------------------------------------------------
    start = time.perf_counter()
    result = run_benchmark(RunSpec(tasks=["bench-quality"], judges=["clip-random"], out=work / "run",
                                   include_paths=[work], quiet=True))
    wall = time.perf_counter() - start
    timing = result.timings["clip-random"]
    run_ips = timing["requests"] / timing["judging_s"]
    print(f"mjbench run:  {timing['judging_s']:7.2f} s  {run_ips:7.1f} images/s judging "
          f"({timing['requests']} requests; model set-up {timing['setup_s']:.2f} s; "
          f"whole run {wall:.2f} s = {timing['requests'] / wall:.1f} images/s)")
    print(f"ratio (judging / model only): {run_ips / model_ips:.0%}")


if __name__ == "__main__":
    main()
