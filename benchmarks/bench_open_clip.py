"""Throughput of the open_clip adapter (images per second) at several batch sizes, with and without
prefetching, on synthetic images. Random weights (`pretrained: null`): no download, same compute as a
trained ViT-B-32.

    HF_HUB_OFFLINE=1 python benchmarks/bench_open_clip.py --threads 2 --batch-sizes 1 32

Each configuration gets a fresh judge (empty embedding caches), is warmed up on two other images, then
scores N images (N/2 prompts, each shared by two images, as in a pairwise task). Model loading is not timed.
"""

from __future__ import annotations

import argparse
import io
import platform
import time


def synthetic_images(n: int, size: int, fmt: str = "png", seed: int = 0) -> list[bytes]:
    """Encoded noise with a few rectangles: cheap to make, not trivially compressible."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(4):
            x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
            w, h = (int(v) for v in rng.integers(8, size // 2, 2))
            draw.rectangle([x0, y0, x0 + w, y0 + h], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        buf = io.BytesIO()
        img.save(buf, format=fmt.upper())
        out.append(buf.getvalue())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--format", default="png", choices=["png", "jpeg"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (CPU cores to use)")
    parser.add_argument("--prefetch-workers", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per configuration; the best is kept")
    args = parser.parse_args()

    import torch

    from mjbench.adapters.base import ScoreRequest, create_judge
    from mjbench.config import JudgeConfig
    from mjbench.images import ImageRef

    torch.set_num_threads(args.threads)
    data = synthetic_images(args.images + 2, args.size, args.format)
    warm, timed = data[:2], data[2:]

    def requests(blobs: list[bytes], tag: str) -> list[ScoreRequest]:
        return [
            ScoreRequest(image=ImageRef(data=b, origin=f"{tag}{i}"), prompt=f"prompt number {i // 2}",
                         scale="score", perspective="quality")
            for i, b in enumerate(blobs)
        ]

    print(f"# {args.model}, random weights, {args.images} {args.format} images of {args.size}px, device {args.device}, "
          f"{args.threads} torch threads, torch {torch.__version__}, {platform.processor() or platform.machine()}")
    print("| batch size | prefetch workers | seconds | images/s |")
    print("|---:|---:|---:|---:|")
    for batch_size in args.batch_sizes:
        for workers in sorted({args.prefetch_workers, 0}, reverse=True):
            best = float("inf")
            for _ in range(args.repeats):
                judge = create_judge(JudgeConfig(
                    name="bench", adapter="open_clip", device=args.device, batch_size=batch_size,
                    options={"model_name": args.model, "pretrained": None, "prefetch_workers": workers},
                ))
                judge.setup()
                judge.score(requests(warm, "warm"))
                start = time.perf_counter()
                out = judge.score(requests(timed, "img"))
                best = min(best, time.perf_counter() - start)
                assert all(r.status == "ok" for r in out), [r.error for r in out if r.error][:3]
                judge.close()
            print(f"| {batch_size} | {workers} | {best:.2f} | {args.images / best:.1f} |")


if __name__ == "__main__":
    main()
