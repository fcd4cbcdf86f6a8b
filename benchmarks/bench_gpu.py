"""GPU figures in one unattended run (driven by `benchmarks/gpu_check.sh`; under 5 minutes on one GPU).

1. open_clip ViT-B-32 and ViT-H-14, random weights, bfloat16, batch 64 and 128: model-only images/s (images
   decoded and preprocessed into tensors beforehand) against `mjbench run` images/s (the runner's judging
   time: hashing, decoding in draft mode in the prefetch pool, preprocessing, encoding, storing), on
   photo-like 1024 px and 1920x1080 JPEGs made here.
2. The `hf_vlm` adapter's generation throughput on a randomly initialised 7B-class Qwen2-VL (the
   Qwen2-VL-7B shapes, built in GPU memory: nothing is downloaded) versus batch size: requests/s and
   generated tokens/s, every request generating exactly `--new-tokens` tokens.

`--tiny` runs the same code paths on the CPU with tiny models and a few images, in seconds (what the tests
run). Figures go to `<out>/gpu_figures.json` and `<out>/gpu_figures.md`; each part is written as soon as it
is done, so a run cut short still leaves what it measured. Exit 2 without a GPU (unless `--tiny`).

Run: python benchmarks/bench_gpu.py --out DIR [--tiny] [--parts clip,vlm]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                "<|video_pad|>"]

#: Qwen2-VL-7B-Instruct's shapes (config.json of the hub model): about 8.3 billion parameters
QWEN2_VL_7B = {
    "text": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                 num_key_value_heads=4, max_position_embeddings=32768, vocab_size=152064,
                 rope_parameters={"rope_type": "default", "mrope_section": [16, 24, 24], "rope_theta": 1000000.0}),
    "vision": dict(depth=32, embed_dim=1280, hidden_size=3584, num_heads=16, mlp_ratio=4, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2),
}
QWEN2_VL_TINY = {
    "text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                 max_position_embeddings=2048, vocab_size=1024,
                 rope_parameters={"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}),
    "vision": dict(depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=14,
                   spatial_merge_size=2, temporal_patch_size=2),
}


class Figures:
    """Collects results and rewrites the JSON and Markdown files after every part."""

    def __init__(self, out: Path, meta: dict[str, Any]):
        self.out, self.meta, self.clip, self.vlm = out, meta, [], []
        out.mkdir(parents=True, exist_ok=True)

    def save(self) -> None:
        data = {"meta": self.meta, "open_clip": self.clip, "hf_vlm": self.vlm}
        (self.out / "gpu_figures.json").write_text(json.dumps(data, indent=1))
        lines = [f"# GPU figures ({self.meta['device']})", "", f"{json.dumps(self.meta)}", "",
                 "| model | images | batch | model only images/s | mjbench run images/s | run / model |",
                 "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {r['model']} | {r['case']} | {r['batch']} | {r['model_ips']:.1f} | {r['run_ips']:.1f} | "
                  f"{r['run_ips'] / r['model_ips']:.0%} |" for r in self.clip]
        lines += ["", "| VLM | batch | requests | seconds | requests/s | generated tokens/s |",
                  "|---|---:|---:|---:|---:|---:|"]
        lines += [f"| {r['model']} | {r['batch']} | {r['requests']} | {r['seconds']:.2f} | {r['requests_per_s']:.2f} | "
                  f"{r['tokens_per_s']:.0f} |" for r in self.vlm]
        (self.out / "gpu_figures.md").write_text("\n".join(lines) + "\n")


def photo_jpegs(folder: Path, n: int, size: tuple[int, int], seed: int) -> list[Path]:
    """Smooth, photo-like JPEGs (upsampled colour noise plus grain): they compress and decode like photos."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    paths = []
    for i in range(n):
        base = Image.fromarray(rng.integers(0, 256, (h // 96 + 2, w // 96 + 2, 3), dtype=np.uint8))
        img = np.asarray(base.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
        path = folder / f"{i}.jpg"
        Image.fromarray(img).save(path, quality=90)
        paths.append(path)
    return paths


# -- part 1: open_clip, model only against mjbench run ------------------------------------------------------
def clip_part(args: argparse.Namespace, work: Path, figures: Figures) -> None:
    import open_clip
    import torch

    from mjbench.catalog import Catalog
    from mjbench.runner import RunSpec, run_benchmark
    from mjbench.sources import load_task

    device = "cpu" if args.tiny else "cuda"
    dtype = torch.float32 if args.tiny else torch.bfloat16
    (work / "tasks").mkdir(exist_ok=True)
    (work / "judges").mkdir(exist_ok=True)
    cases = {"1024px": (1024, 1024), "1920x1080": (1920, 1080)}
    if args.tiny:  # the same paths (a JPEG drafted to 1/4 for the 64 px tiny model), fewer pixels
        cases = {"512px": (512, 512), "960x540": (960, 540)}
    for case, size in cases.items():
        paths = photo_jpegs(work / case, 2 * args.pairs, size, seed=len(case))
        rows = [{"prompt": f"a photo number {i}", "image0": str(paths[2 * i]), "image1": str(paths[2 * i + 1]),
                 "label": 0} for i in range(args.pairs)]
        (work / f"{case}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        (work / "tasks" / f"{case}.yaml").write_text(
            f"name: photos-{case}\nperspective: quality\nsource: {{type: table, path: ../{case}.jsonl}}\n")

    for model_name in args.clip_models:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=None, device=device,
                                                                     precision="fp32" if args.tiny else "bf16")
        model.eval()
        tokenizer = open_clip.get_tokenizer(model_name)
        for case in cases:
            items = load_task(Catalog([work]).task(f"photos-{case}")).items
            refs = [ref for item in items for ref in item.images]
            tensors = torch.stack([preprocess(ref.load()) for ref in refs]).pin_memory() if device == "cuda" else \
                torch.stack([preprocess(ref.load()) for ref in refs])
            tokens = tokenizer(sorted({item.prompt for item in items}))
            for ref in refs:
                ref.release()
            for batch in args.batch_sizes:
                with torch.inference_mode():
                    model.encode_image(tensors[:batch].to(device, dtype))  # warm-up (kernels, allocator)
                    sync(device)
                    start = time.perf_counter()
                    for i in range(0, len(tensors), batch):
                        model.encode_image(tensors[i : i + batch].to(device, dtype, non_blocking=True))
                    for i in range(0, len(tokens), batch):
                        model.encode_text(tokens[i : i + batch].to(device))
                    sync(device)
                    model_ips = len(tensors) / (time.perf_counter() - start)
                name = f"clip-{model_name.lower()}-{batch}"
                (work / "judges" / f"{name}.yaml").write_text(
                    f"name: {name}\nadapter: open_clip\nbatch_size: {batch}\ndevice: {device}\n"
                    f"dtype: {'float32' if args.tiny else 'bfloat16'}\n"
                    f"options: {{model_name: {model_name}, pretrained: null}}\n")
                result = run_benchmark(RunSpec(tasks=[f"photos-{case}"], judges=[name], include_paths=[work],
                                               out=work / "runs" / f"{name}-{case}", quiet=True))
                timing = result.timings[name]
                run_ips = timing["requests"] / timing["judging_s"]
                figures.clip.append({"model": model_name, "case": case, "batch": batch, "images": len(refs),
                                     "model_ips": model_ips, "run_ips": run_ips, "setup_s": timing["setup_s"]})
                print(f"{model_name} {case} batch {batch}: model only {model_ips:.1f}, mjbench run {run_ips:.1f} "
                      f"images/s ({run_ips / model_ips:.0%})", flush=True)
                figures.save()
        del model
        if device == "cuda":
            torch.cuda.empty_cache()


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# -- part 2: hf_vlm generation throughput against batch size -------------------------------------------------
def qwen2_vl_in_memory(shapes: dict[str, dict[str, Any]], device: str, dtype: Any) -> tuple[Any, Any]:
    """A randomly initialised Qwen2-VL of the given shapes, built on `device`, and a processor with a small
    byte-level tokenizer (ids it does not know decode to nothing: the text is noise anyway)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(["RATING: 7", "The image shows a cat."],
                            trainers.BpeTrainer(vocab_size=300, special_tokens=QWEN_SPECIAL,
                                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                              "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"})
    kw = dict(size={"shortest_edge": 56 * 56, "longest_edge": 448 * 448}, patch_size=14, merge_size=2,
              temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**kw), tokenizer=tok,
                                 video_processor=Qwen2VLVideoProcessor(**kw), chat_template=QWEN_TEMPLATE)
    v = tok.get_vocab()
    cfg = Qwen2VLConfig(
        text_config={**shapes["text"], "bos_token_id": v["<|im_start|>"], "eos_token_id": v["<|im_end|>"],
                     "pad_token_id": v["<|endoftext|>"]},
        vision_config=shapes["vision"], image_token_id=v["<|image_pad|>"], video_token_id=v["<|video_pad|>"],
        vision_start_token_id=v["<|vision_start|>"], vision_end_token_id=v["<|vision_end|>"])
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2VLForConditionalGeneration._from_config(cfg, dtype=dtype)
    return model.eval(), processor


def vlm_part(args: argparse.Namespace, figures: Figures) -> None:
    import torch
    from PIL import Image

    from mjbench.adapters.base import ScoreRequest, create_judge
    from mjbench.config import JudgeConfig
    from mjbench.images import ImageRef

    device = "cpu" if args.tiny else "cuda"
    dtype = torch.float32 if args.tiny else torch.bfloat16
    label = "qwen2-vl tiny" if args.tiny else "qwen2-vl 7B shapes"
    t0 = time.perf_counter()
    model, processor = qwen2_vl_in_memory(QWEN2_VL_TINY if args.tiny else QWEN2_VL_7B, device, dtype)
    params = sum(p.numel() for p in model.parameters())
    print(f"{label}: {params / 1e9:.2f} B parameters, built in {time.perf_counter() - t0:.1f} s", flush=True)
    side = 112 if args.tiny else 448  # 448: 1024 patches, 256 visual tokens per image after the 2x2 merge
    images = []
    for i in range(8):
        buf = io.BytesIO()
        Image.effect_noise((side, side), 40 + i).convert("RGB").save(buf, "JPEG", quality=90)
        images.append(ImageRef(data=buf.getvalue(), origin=f"noise-{i}.jpg"))
    for batch in args.vlm_batch_sizes:
        config = JudgeConfig(name="qwen2-vl-random", adapter="hf_vlm", model="in-memory", device=device,
                             batch_size=batch, scales=["1-10"], options={"max_new_tokens": args.new_tokens},
                             generation={"min_new_tokens": args.new_tokens})  # a fixed length: fair tokens/s
        judge = create_judge(config)
        judge.model, judge.processor = model, processor  # what `setup` loads, built in memory instead
        processor.tokenizer.padding_side = "left"
        n = max(2 * batch, 4)
        requests = [ScoreRequest(image=images[i % len(images)], prompt=f"a noisy picture, number {i}",
                                 scale="1-10", perspective="quality") for i in range(n)]
        list(judge.iter_score(requests[:batch]))  # warm-up at this batch size
        sync(device)
        start = time.perf_counter()
        out = [r for chunk in judge.iter_score(requests) for _, r in chunk]
        sync(device)
        seconds = time.perf_counter() - start
        tokens = sum(r.output_tokens or 0 for r in out)
        failed = [r.error for r in out if r.status == "error"]
        if failed:
            raise SystemExit(f"hf_vlm batch {batch}: {len(failed)} requests failed: {failed[0]}")
        figures.vlm.append({"model": label, "batch": batch, "requests": n, "seconds": seconds,
                            "requests_per_s": n / seconds, "tokens_per_s": tokens / seconds,
                            "new_tokens": args.new_tokens, "input_tokens": out[0].input_tokens})
        print(f"{label} batch {batch}: {n / seconds:.2f} requests/s, {tokens / seconds:.0f} generated tokens/s "
              f"({out[0].input_tokens} input tokens per request)", flush=True)
        figures.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="tiny models on the CPU: the same paths, in seconds")
    parser.add_argument("--parts", default="clip,vlm")
    parser.add_argument("--pairs", type=int, default=None, help="pairs per image case (default 256; tiny 3)")
    args = parser.parse_args()
    args.pairs = args.pairs or (2 if args.tiny else 256)
    args.clip_models = ["mjb-tiny-clip"] if args.tiny else ["ViT-B-32", "ViT-H-14"]
    args.batch_sizes = [2, 4] if args.tiny else [64, 128]
    args.vlm_batch_sizes = [1, 2] if args.tiny else [1, 8, 32, 64]
    args.new_tokens = 4 if args.tiny else 64
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(var, "1")

    import torch

    if not args.tiny and not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU visible to torch (torch.cuda.is_available() is False); "
              "use --tiny for the CPU dry run", file=sys.stderr)
        raise SystemExit(2)
    work = Path(tempfile.mkdtemp(prefix="mjbench-gpu-"))
    os.environ.setdefault("MJBENCH_CACHE_DIR", str(work / "cache"))
    if args.tiny:
        import open_clip

        cfg = {"embed_dim": 32, "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
        (work / "mjb-tiny-clip.json").write_text(json.dumps(cfg))
        open_clip.add_model_config(work / "mjb-tiny-clip.json")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.tiny else "cpu (tiny)"
    figures = Figures(args.out, {"device": device, "torch": torch.__version__, "cpu_count": os.cpu_count(),
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S"), "tiny": args.tiny})
    figures.save()
    parts = set(args.parts.split(","))
    start = time.perf_counter()
    if "clip" in parts:
        clip_part(args, work, figures)
    if "vlm" in parts:
        vlm_part(args, figures)
    figures.meta["total_s"] = round(time.perf_counter() - start, 1)
    figures.save()
    print((args.out / "gpu_figures.md").read_text())


if __name__ == "__main__":
    main()
