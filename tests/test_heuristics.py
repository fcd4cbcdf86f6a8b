"""The offline judges: random (chance baseline), sharpness (variance of the Laplacian) and brisque."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from mjbench.adapters.base import ScoreRequest, create_judge
from mjbench.config import JudgeConfig
from mjbench.images import ImageRef

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHOTOS = [
    DATA / "mjbench-quality" / "human" / "examples_human" / "human_0.jpg",
    DATA / "mjbench-quality" / "objects_indoor" / "examples_objects_indoor" / "furniture_0.jpg",
]


def judge(adapter: str, **options):
    return create_judge(JudgeConfig(name=f"test-{adapter}", adapter=adapter, options=options, batch_size=4))


def req(ref: ImageRef, prompt: str = "a photo") -> ScoreRequest:
    return ScoreRequest(image=ref, prompt=prompt, scale="score", perspective="quality")


def png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def sharp_and_blurred() -> list[tuple[ImageRef, ImageRef]]:
    """Real MJ-Bench photos and a Gaussian-blurred copy of each."""
    from PIL import Image, ImageFilter

    if not all(p.is_file() for p in PHOTOS):
        pytest.skip(f"real images not found under {DATA} (a checkout without ../shared/data)")
    pairs = []
    for path in PHOTOS:
        with Image.open(path) as im:
            blurred = im.convert("RGB").filter(ImageFilter.GaussianBlur(radius=2))
        pairs.append((ImageRef(path=path), ImageRef(data=png(blurred), origin=f"blurred {path.name}")))
    return pairs


@pytest.mark.parametrize("adapter", ["sharpness", "brisque"])
def test_sharp_photo_scores_above_its_blurred_copy(adapter, sharp_and_blurred):
    pytest.importorskip("scipy")
    if adapter == "brisque":
        for module in ("brisque", "cv2", "skimage"):
            pytest.importorskip(module)
    j = judge(adapter)
    requests = [req(ref) for pair in sharp_and_blurred for ref in pair]
    out = j.score(requests)
    assert [r.status for r in out] == ["ok"] * len(requests), [r.error for r in out]
    got = [r.score for r in out]
    for sharp, blurred in zip(got[0::2], got[1::2], strict=True):
        assert sharp > blurred
    if adapter == "brisque":
        assert all(-150 < s < 50 for s in got)  # minus BRISQUE, which is mostly 0-100 (lower = better)


def test_sharpness_is_the_variance_of_the_4_neighbour_laplacian():
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    grey = np.asarray(img.convert("L"), dtype=np.float64)
    p = np.pad(grey, 1, mode="symmetric")  # scipy's "reflect" repeats the edge pixel
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * grey
    out = judge("sharpness").score([req(ImageRef(data=png(img), origin="noise.png"))])
    assert out[0].score == pytest.approx(lap.var(), rel=1e-9)
    flat = judge("sharpness").score([req(ImageRef(data=png(Image.new("RGB", (16, 16), "grey")), origin="f"))])
    assert flat[0].score == 0.0


def test_sharpness_reports_broken_images_and_ignores_prompts(tmp_path):
    from PIL import Image

    good = ImageRef(data=png(Image.new("RGB", (16, 16), "white")), origin="white.png")
    out = judge("sharpness").score([
        req(good, "one"), req(ImageRef(data=b"garbage", origin="broken.png")),
        req(ImageRef(path=tmp_path / "missing.png")), req(good, "two"),
    ])
    assert [r.status for r in out] == ["ok", "error", "error", "ok"]
    assert "broken.png" in out[1].error and "missing.png" in out[2].error
    assert out[0].score == out[3].score


def tiny(i: int) -> ImageRef:
    """A distinct, decodable 2x2 PNG per i."""
    from PIL import Image

    return ImageRef(data=png(Image.new("RGB", (2, 2), (i % 256, i // 256 % 256, i // 65536))), origin=f"{i}.png")


def test_random_is_deterministic_order_free_and_seeded():
    refs = [tiny(i) for i in range(20)]
    requests = [req(r, f"prompt {i % 3}") for i, r in enumerate(refs)]
    first = [r.score for r in judge("random", seed=7).score(requests)]
    again = [r.score for r in judge("random", seed=7).score(requests[::-1])][::-1]
    assert first == again
    assert all(0 <= s < 1 for s in first)
    assert [r.score for r in judge("random", seed=8).score(requests)] != first
    other_prompt = judge("random", seed=7).score([req(refs[0], "something else")])[0].score
    assert other_prompt != first[0]


def test_random_is_right_about_half_the_time():
    j = judge("random", seed=0)
    n = 2000
    s0 = [r.score for r in j.score([req(tiny(i), f"p{i}") for i in range(n)])]
    s1 = [r.score for r in j.score([req(tiny(n + i), f"p{i}") for i in range(n)])]
    wins = sum(a > b for a, b in zip(s0, s1, strict=True)) / n
    assert 0.45 < wins < 0.55


def test_random_reports_unreadable_files(tmp_path):
    out = judge("random").score([req(ImageRef(path=tmp_path / "nowhere.png"))])
    assert out[0].status == "error" and "nowhere.png" in out[0].error


def test_random_decodes_what_it_rates(tmp_path):
    """A truncated or empty file is an error naming it, never a chance rating (it hashes fine)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    noise = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    whole = png(noise)
    buf = io.BytesIO()
    noise.save(buf, format="JPEG")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    refs = [ImageRef(data=whole[: len(whole) // 2], origin="truncated.png"), ImageRef(path=empty),
            ImageRef(data=buf.getvalue()[:-200], origin="truncated.jpg"), ImageRef(data=whole, origin="whole.png")]
    out = judge("random").score([req(r) for r in refs])
    assert [r.status for r in out] == ["error", "error", "error", "ok"], [r.error for r in out]
    for r, name in zip(out, ["truncated.png", "empty.png", "truncated.jpg"], strict=False):
        assert name in r.error


@pytest.mark.parametrize("adapter", ["sharpness", "brisque"])
def test_heavy_scorers_work_on_a_bounded_copy_of_huge_images(adapter, monkeypatch):
    """Above HEAVY_MAX_SIDE the score is that of the downscaled copy; at or below it, of the image itself.
    (The bound is lowered to 128 px here so that the test needs no multi-megapixel PNG.)"""
    pytest.importorskip("scipy")
    if adapter == "brisque":
        for module in ("brisque", "cv2", "skimage"):
            pytest.importorskip(module)
    from PIL import Image

    from mjbench.adapters import heuristics

    assert heuristics.HEAVY_MAX_SIDE == 2048
    monkeypatch.setattr(heuristics, "HEAVY_MAX_SIDE", 128)
    bounded = heuristics.bounded
    rng = np.random.default_rng(2)
    small = Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8))
    big = small.resize((192, 144), Image.Resampling.BICUBIC)
    assert bounded(small) is small and bounded(big).size == (128, 96)
    j = judge(adapter)
    got = j.score([req(ImageRef(data=png(big), origin="big.png")),
                   req(ImageRef(data=png(bounded(big)), origin="bounded.png"))])
    assert [r.status for r in got] == ["ok", "ok"]
    assert got[0].score == pytest.approx(got[1].score, rel=1e-9)
