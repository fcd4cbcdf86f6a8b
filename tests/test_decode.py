"""Decoding that keeps up with the model: `decode_at_least` (JPEG draft mode and `Image.reduce`, never below
the side the model needs), the prefetch pool sized to the cores, and a bounded window of prepared images."""

from __future__ import annotations

import io
import threading
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mjbench.adapters import _scoring
from mjbench.adapters._scoring import PrefetchScorer, decode_at_least, default_prefetch_workers
from mjbench.adapters.base import ScoreRequest
from mjbench.config import JudgeConfig
from mjbench.errors import ItemError
from mjbench.images import ImageRef


def photo(size: tuple[int, int], fmt: str = "JPEG", seed: int = 0) -> ImageRef:
    """A smooth gradient with some noise: compresses like a photo, so draft decoding is realistic."""
    w, h = size
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, w)[None, :, None]
    y = np.linspace(0, 255, h)[:, None, None]
    pixels = np.clip(x * 0.6 + y * 0.4 * np.array([1.0, 0.5, 0.2]) + rng.normal(0, 8, (h, w, 3)), 0, 255)
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return ImageRef(data=buf.getvalue(), origin=f"photo-{w}x{h}.{fmt.lower()}")


# -- decode_at_least ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(1920, 1080), (1024, 1024), (1080, 1920), (4000, 600)])
def test_large_jpeg_is_decoded_smaller_but_never_below_the_bound(size):
    ref = photo(size)
    img = decode_at_least(ref, 224)
    assert img.mode == "RGB"
    assert 224 <= min(img.size) < 2 * 224, img.size  # draft (1/2, 1/4, 1/8) then reduce: within 2x of the bound
    w, h = size
    assert abs(img.size[0] / img.size[1] - w / h) < 0.02  # aspect ratio kept
    # close to the full decode shrunk the same way (draft mode is a DCT-domain downscale, not a crop)
    full = np.asarray(ref.load().resize(img.size, Image.Resampling.BOX), dtype=np.float32)
    assert np.abs(np.asarray(img, dtype=np.float32) - full).mean() < 4.0


def test_draft_mode_is_what_decodes_the_jpeg(monkeypatch):
    """The JPEG decoder is asked for the reduced size (DCT scaling), not decoded in full and shrunk after."""
    from PIL import JpegImagePlugin

    calls: list[Any] = []
    real = JpegImagePlugin.JpegImageFile.draft
    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft",
                        lambda self, mode, size: (calls.append(size), real(self, mode, size))[1])
    img = decode_at_least(photo((1920, 1080)), 224)
    assert calls == [(399, 224)] and img.size == (480, 270)  # 1/4 scale: the smallest >= 399x224


@pytest.mark.parametrize(("size", "fmt"), [((300, 200), "JPEG"), ((447, 900), "JPEG"), ((640, 440), "PNG"),
                                           ((100, 80), "JPEG")])
def test_images_below_twice_the_bound_decode_exactly_as_load(size, fmt):
    ref = photo(size, fmt)
    img = decode_at_least(ref, 224)
    assert img.size == size
    assert np.array_equal(np.asarray(img), np.asarray(ref.load()))


def test_large_png_is_reduced_by_a_whole_factor():
    ref = photo((1000, 700), "PNG")
    img = decode_at_least(ref, 224)
    assert img.size == (334, 234)  # reduce(3): ceil(1000/3) x ceil(700/3)
    assert np.array_equal(np.asarray(img), np.asarray(ref.load().reduce(3)))


def test_decode_errors_name_the_image(monkeypatch):
    data = photo((640, 480)).read_bytes()
    broken = ImageRef(data=data[: len(data) // 2], origin="half.jpg")
    with pytest.raises(ItemError, match="cannot decode image half.jpg"):
        decode_at_least(broken, 32)
    with pytest.raises(ItemError, match="not a recognised image format"):
        decode_at_least(ImageRef(data=b"not an image", origin="junk.bin"), 32)
    monkeypatch.setenv("MJBENCH_MAX_PIXELS", "1000")
    with pytest.raises(ItemError, match=r"photo-640x480.jpeg is 640x480 .*above the limit"):
        decode_at_least(photo((640, 480)), 32)


# -- the pipeline: the bound it asks for, the pool, the window -----------------------------------------
class Recorder(PrefetchScorer):
    """A scorer without a model: records what reaches each hook and how many prepared images are alive."""

    text_mode = "none"

    def __init__(self, config: JudgeConfig, min_side: int | None = None, encode_s: float = 0.0):
        super().__init__(config)
        self.min_side, self.encode_s = min_side, encode_s
        self.sizes: list[tuple[int, int]] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()
        self.alive = self.most_alive = 0

    def _decode_min_side(self) -> int | None:
        return self.min_side

    def _preprocess(self, image: Image.Image) -> Any:
        with self.lock:
            self.sizes.append(image.size)
            self.threads.add(threading.current_thread().name)
            self.alive += 1
            self.most_alive = max(self.most_alive, self.alive)
        time.sleep(0.002)
        return image.size

    def _encode_images(self, prepared: list[Any], prompts: list[str]) -> list[Any]:
        time.sleep(self.encode_s)
        with self.lock:
            self.alive -= len(prepared)
        return [float(w) for w, _ in prepared]


def config(**kw) -> JudgeConfig:
    return JudgeConfig(name="recorder", adapter="sharpness", **kw)


def requests(refs: list[ImageRef]) -> list[ScoreRequest]:
    return [ScoreRequest(image=r, prompt="p", scale="score", perspective="quality") for r in refs]


def test_scorer_decodes_with_its_declared_bound(monkeypatch):
    seen: list[int] = []
    real = _scoring.decode_at_least
    monkeypatch.setattr(_scoring, "decode_at_least", lambda ref, side: (seen.append(side), real(ref, side))[1])
    j = Recorder(config(batch_size=2), min_side=100)
    out = j.score(requests([photo((800, 600), seed=1), photo((160, 120), seed=2)]))
    assert [r.status for r in out] == ["ok", "ok"]
    assert seen == [100, 100]
    assert sorted(j.sizes) == [(160, 120), (200, 150)]  # 800x600 drafted to 1/4; the small one untouched


def test_scorer_without_a_bound_decodes_every_pixel(monkeypatch):
    monkeypatch.setattr(_scoring, "decode_at_least", lambda *a: pytest.fail("no bound was declared"))
    j = Recorder(config(batch_size=2))
    j.score(requests([photo((800, 600))]))
    assert j.sizes == [(800, 600)]


def test_prefetch_pool_is_sized_to_the_cores_by_default(monkeypatch):
    monkeypatch.setattr(_scoring.os, "cpu_count", lambda: 3)
    assert default_prefetch_workers() == 3
    made: list[int] = []
    real = _scoring.ThreadPoolExecutor

    def pool(max_workers, **kw):
        made.append(max_workers)
        return real(max_workers=max_workers, **kw)

    monkeypatch.setattr(_scoring, "ThreadPoolExecutor", pool)
    refs = [photo((40, 30), seed=s) for s in range(4)]
    Recorder(config(batch_size=2)).score(requests(refs))
    Recorder(config(batch_size=2, options={"prefetch_workers": 5})).score(requests(refs))
    Recorder(config(batch_size=2, options={"prefetch_workers": 0})).score(requests(refs))  # inline: no pool
    assert made == [3, 5]
    monkeypatch.setattr(_scoring.os, "cpu_count", lambda: None)
    assert default_prefetch_workers() == 1


def test_prepared_images_never_exceed_two_batches():
    """However fast the decoding threads and however slow the model (or the consumer), at most the batch being
    encoded and the next one are held."""
    refs = [photo((48, 32), seed=s) for s in range(30)]
    j = Recorder(config(batch_size=3, options={"prefetch_workers": 8}), encode_s=0.02)
    seen = 0
    for batch in j.iter_score(requests(refs)):
        time.sleep(0.02)  # a slow consumer (the store) must not let decoding run further ahead
        seen += len(batch)
    assert seen == 30 and len(j.sizes) == 30
    assert 3 < j.most_alive <= 2 * 3  # the next batch was decoded ahead (overlap), and no more than that


# -- benchmarks/gpu_check.sh: what can be checked without a GPU ---------------------------------------
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def _gpu_check(tmp_path, *args: str, path: str | None = None):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHON": sys.executable, "MJBENCH_GPU_CHECK_TIMEOUT": "280"}
    if path is not None:
        env["PATH"] = path
    return subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_gpu_check_without_a_gpu_says_so_and_fails(tmp_path):
    import shutil

    fake_bin = tmp_path / "bin"  # a PATH with the tools the script needs but no nvidia-smi
    fake_bin.mkdir()
    for tool in ("bash", "dirname", "mkdir", "tee", "grep", "timeout"):
        found = shutil.which(tool)
        if found:
            (fake_bin / tool).symlink_to(found)
    res = _gpu_check(tmp_path, str(tmp_path / "figures"), path=str(fake_bin))
    assert res.returncode == 2, res.stdout + res.stderr
    assert "no NVIDIA GPU found" in res.stderr and "--dry-run" in res.stderr


def test_gpu_check_dry_run_measures_every_part_on_the_cpu(tmp_path):
    """The same code paths as on a GPU (open_clip model only and `mjbench run`, hf_vlm generation against
    batch size), with tiny models; the figures land in the given folder."""
    pytest.importorskip("open_clip")
    pytest.importorskip("transformers")
    pytest.importorskip("torchvision")
    import json

    out = tmp_path / "figures"
    res = _gpu_check(tmp_path, "--dry-run", str(out))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    figures = json.loads((out / "gpu_figures.json").read_text())
    assert figures["meta"]["tiny"] is True
    clip = figures["open_clip"]
    assert {(r["case"], r["batch"]) for r in clip} == {(c, b) for c in ("512px", "960x540") for b in (2, 4)}
    assert all(r["model_ips"] > 0 and r["run_ips"] > 0 for r in clip)
    vlm = figures["hf_vlm"]
    assert [r["batch"] for r in vlm] == [1, 2]
    assert all(r["tokens_per_s"] > 0 and r["requests"] >= 4 for r in vlm)
    assert all(r["tokens_per_s"] * r["seconds"] == pytest.approx(r["requests"] * r["new_tokens"]) for r in vlm)
    assert "| mjb-tiny-clip | 512px | 2 |" in (out / "gpu_figures.md").read_text()
    assert (out / "gpu_check.log").is_file()
