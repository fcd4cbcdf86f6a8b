"""Wall time of API judging vs. requests in flight: pair requests through `mjbench.policy.run_requests_sync`
and the OpenAIJudge against the local stub server (tests/stub_server.py) answering after a fixed delay.

    /work/venv/bin/python benchmarks/bench_api.py            # 200 requests, 200 ms each, 1 and 32 in flight
    /work/venv/bin/python benchmarks/bench_api.py --n 50 --concurrency 1 8 32
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from stub_server import StubServer, answer  # noqa: E402

from mjbench.adapters.api import OpenAIJudge  # noqa: E402
from mjbench.adapters.base import PairRequest, Response  # noqa: E402
from mjbench.config import JudgeConfig  # noqa: E402
from mjbench.images import ImageRef  # noqa: E402
from mjbench.policy import run_requests_sync  # noqa: E402


def noise_png(seed: int, side: int) -> ImageRef:
    """A photo-sized PNG (noise does not compress, like a real photo)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return ImageRef(data=buf.getvalue(), origin=f"noise{seed}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="pair requests per run")
    ap.add_argument("--delay", type=float, default=0.2, help="seconds the stub takes per answer")
    ap.add_argument("--side", type=int, default=512, help="image side in pixels")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = ap.parse_args()

    images = [noise_png(s, args.side) for s in range(8)]
    requests = [PairRequest(images=(images[i % 8], images[(i + 3) % 8]), prompt=f"caption {i}", scale="1-10",
                            perspective="alignment") for i in range(args.n)]

    def responder(req):
        return answer(req, "Image A is sharper.\nRATING A: 8\nRATING B: 4\nBETTER: A", delay_s=args.delay)

    print(f"{args.n} pair requests, stub answers in {args.delay * 1000:.0f} ms, images {args.side}x{args.side} PNG "
          f"({len(images[0].read_bytes()) / 1e6:.2f} MB each)")
    print("| in flight | wall s | requests/s | ideal s | max in flight seen | ok |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k in args.concurrency:
        with StubServer(responder) as stub:
            cfg = JudgeConfig(name="bench", adapter="openai", model="stub", base_url=stub.url + "/v1",
                              mode="pair", scales=["1-10"], max_concurrency=k, timeout_s=60)
            judge = OpenAIJudge(cfg)
            results: dict[int, Response] = {}
            t0 = time.perf_counter()
            run_requests_sync(judge.acompare, requests, cfg, results.__setitem__)
            wall = time.perf_counter() - t0
            ok = sum(r.status == "ok" for r in results.values())
            ideal = -(-args.n // k) * args.delay
            print(f"| {k} | {wall:.2f} | {args.n / wall:.1f} | {ideal:.2f} | {stub.max_in_flight} | {ok}/{args.n} |")


if __name__ == "__main__":
    main()
