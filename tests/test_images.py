"""Decoding guards: the pixel limit (checked from the header, before decoding), broken files, decoding to size."""

from __future__ import annotations

import io
import time
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

from mjbench.errors import ConfigError, ItemError
from mjbench.images import DEFAULT_MAX_PIXELS, MAX_PIXELS_ENV, ImageRef, max_pixels


def encoded(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise(w: int, h: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.fixture(autouse=True)
def _no_limit_override(monkeypatch):
    monkeypatch.delenv(MAX_PIXELS_ENV, raising=False)


def test_huge_image_fails_fast_without_decoding(monkeypatch):
    """A solid 12000 x 12000 PNG (144 MP, 18 kB on disk; 432 MB once decoded as RGB): refused from its header.
    (Bilevel, since PIL writes that in 0.5 s where an RGB one takes 5 s; the header check is the same.)"""
    data = encoded(Image.new("1", (12000, 12000), 1))
    assert len(data) < 100_000

    def no_decoding(self, *a, **kw):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    ref = ImageRef(data=data, origin="huge.png")
    for call in (ref.load, lambda: ref.load(max_side=512), ref.header):
        start = time.perf_counter()
        with pytest.raises(ItemError) as info:
            call()
        assert time.perf_counter() - start < 1.0
        assert str(info.value) == (f"image huge.png is 12000x12000 (144.0 megapixels), above the limit of 40.0 "
                                   f"megapixels (set {MAX_PIXELS_ENV} to raise it)")


def test_limit_is_overridable_and_checked(monkeypatch):
    assert max_pixels() == DEFAULT_MAX_PIXELS == 40_000_000
    ref = ImageRef(data=encoded(Image.new("RGB", (30, 20))), origin="small.png")
    assert ref.load().size == (30, 20)
    monkeypatch.setenv(MAX_PIXELS_ENV, "599")
    with pytest.raises(ItemError, match=r"small.png is 30x20 \(0.0 megapixels\), above the limit"):
        ref.load()
    monkeypatch.setenv(MAX_PIXELS_ENV, "600")
    assert ref.load().size == (30, 20)
    for bad in ("lots", "0", "-5", "1.5e6"):
        monkeypatch.setenv(MAX_PIXELS_ENV, bad)
        with pytest.raises(ConfigError, match=f"{MAX_PIXELS_ENV}={bad!r}: expected a positive whole number"):
            max_pixels()


def test_pil_decompression_bomb_guard_is_an_item_error(monkeypatch):
    """PIL's hard limit still applies (as an ItemError naming the file); its warning is left to our limit."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    monkeypatch.setenv(MAX_PIXELS_ENV, "100000")
    with pytest.raises(ItemError, match="bomb.png refused as a decompression bomb"):
        ImageRef(data=encoded(Image.new("RGB", (50, 50))), origin="bomb.png").load()  # 2500 > 2 x 1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL would warn at 1500 > 1000 pixels
        assert ImageRef(data=encoded(Image.new("RGB", (50, 30)))).load().size == (50, 30)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_and_empty_files_name_the_file(fmt):
    data = encoded(noise(64, 48), fmt)
    with pytest.raises(ItemError, match=f"cannot decode image cut.{fmt}: image file is truncated"):
        ImageRef(data=data[: len(data) * 2 // 3], origin=f"cut.{fmt}").load()
    with pytest.raises(ItemError, match=f"cut.{fmt}"):
        ImageRef(data=data[: len(data) * 2 // 3], origin=f"cut.{fmt}").load(max_side=8)
    with pytest.raises(ItemError, match="empty.png: not a recognised image format"):
        ImageRef(data=b"", origin="empty.png").load()


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_load_to_size(mode):
    """max_side bounds the longest side, keeps the aspect ratio, and always gives RGB; an image already small
    enough is the full decode."""
    img = noise(400, 100).convert(mode)
    ref = ImageRef(data=encoded(img))
    full = ref.load()
    small = ref.load(max_side=40)
    assert small.size == (40, 10) and small.mode == "RGB"
    assert ref.load(max_side=400).tobytes() == full.tobytes()
    reference = full.copy()
    reference.thumbnail((40, 40), Image.Resampling.LANCZOS)
    diff = np.abs(np.asarray(small, dtype=float) - np.asarray(reference, dtype=float)).mean()
    assert diff < 3  # the same picture (palette and alpha images are converted first, as before)


def test_jpeg_is_decoded_in_draft_mode_when_a_size_is_asked(monkeypatch):
    """A 4000 x 3000 JPEG asked for at 256 px is decoded at a reduced DCT scale, not at full size."""
    from PIL import JpegImagePlugin

    ref = ImageRef(data=encoded(Image.new("RGB", (4000, 3000), "teal"), "JPEG"))
    draft = JpegImagePlugin.JpegImageFile.draft
    scales: list[tuple[int, int]] = []

    def spy(self, mode, size):
        result = draft(self, mode, size)
        scales.append(self.size)
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    out = ref.load(max_side=256)
    assert out.size == (256, 192) and out.mode == "RGB"
    assert scales and max(scales[-1]) <= 1000  # decoded at 1/4 scale or less, then resampled
