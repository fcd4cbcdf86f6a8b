"""Image references that decode lazily and carry a content hash.

An item never holds pixels: it holds an `ImageRef` (a file path, encoded bytes, or both, as in a
datasets `{bytes, path}` cell, or an http(s) URL fetched on first use through `mjbench.fetch`). The hash
of the encoded bytes keys the result store and lets the runner rate an image once however many items or
judges share it.

Decoding is guarded: an image larger than `max_pixels()` (width x height read from the file's header,
before any pixel is decoded; default `DEFAULT_MAX_PIXELS`, overridable with the environment variable
`MJBENCH_MAX_PIXELS`) is an ItemError naming the file and its size, and so is anything PIL refuses as a
decompression bomb. A file that is truncated or corrupt anywhere is an ItemError too: images are always
decoded in full, never trusted from their header. PIL's decompression-bomb warning (above 89 megapixels) is
left to this limit; PIL's hard limit (about 179 megapixels) still applies on top and is an ItemError too.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import threading
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench.errors import ConfigError, ItemError
from mjbench.fetch import fetch_url, is_url

if TYPE_CHECKING:
    from PIL import Image

#: the largest image decoded, in pixels (width x height): 40 megapixels holds an 8K frame (7680 x 4320 = 33 MP)
#: and a 6000 x 6000 scan; decoding it as RGB takes 120 MB. A 144-megapixel PNG took 10.6 GB and 172 s in
#: BRISQUE before this guard.
DEFAULT_MAX_PIXELS = 40_000_000
MAX_PIXELS_ENV = "MJBENCH_MAX_PIXELS"

#: `warnings.catch_warnings` swaps a process-wide filter list; opening files one at a time keeps prefetch
#: threads from restoring each other's filters. Opening reads only the header, so this costs little.
_OPEN_LOCK = threading.Lock()


def max_pixels() -> int:
    """The pixel limit in force: `MJBENCH_MAX_PIXELS` if set (a positive integer), else DEFAULT_MAX_PIXELS."""
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise ConfigError(f"{MAX_PIXELS_ENV}={raw!r}: expected a positive whole number of pixels, e.g. 40000000")
    return value


def _megapixels(n: int) -> str:
    return f"{n / 1e6:.1f} megapixels"


class ImageRef:
    """A lazily read, lazily decoded image. Errors name the file (or the origin) that was wrong."""

    __slots__ = ("path", "_data", "_hash", "origin", "_loader", "url")

    def __init__(
        self,
        path: str | Path | None = None,
        data: bytes | None = None,
        origin: str | None = None,
        loader: Callable[[], bytes] | None = None,
    ):
        if path is None and data is None and loader is None:
            raise ValueError("an ImageRef needs a path, bytes or a loader")
        # a path is only kept where the bytes are to be read from it; with bytes it is just the origin
        self.path = Path(path) if path is not None and data is None else None
        self._data = data
        self._hash: str | None = None
        #: reads the encoded bytes on demand (a dataset cell), so a large dataset is never held in memory
        self._loader = loader
        self.origin = origin or (str(path) if path is not None else "<bytes>")
        #: the http(s) address of an image fetched on demand (see `from_url`), else None
        self.url: str | None = None

    @classmethod
    def from_cell(cls, cell: Any, base_dir: Path | None = None, origin: str | None = None) -> ImageRef:
        """Build from a dataset cell: a `{bytes, path}` dict, raw bytes, a path string, an http(s) URL, or a PIL
        image. A URL is read as a URL, never as a path relative to `base_dir`."""
        if isinstance(cell, ImageRef):
            return cell
        if isinstance(cell, dict):
            data, path = cell.get("bytes"), cell.get("path")
            if data is not None:
                return cls(path=path, data=bytes(data), origin=origin or path)
            if path:
                return cls.from_cell(path, base_dir, origin)
            raise ItemError(f"{origin or 'image cell'}: the image cell has neither bytes nor a path")
        if isinstance(cell, (bytes, bytearray, memoryview)):
            return cls(data=bytes(cell), origin=origin)
        if is_url(cell):
            return cls.from_url(str(cell).strip(), origin)
        if isinstance(cell, (str, Path)):
            p = Path(cell)
            if base_dir is not None and not p.is_absolute():
                p = base_dir / p
            return cls(path=p, origin=origin or str(p))
        if hasattr(cell, "save") and hasattr(cell, "mode"):  # a PIL image (datasets decodes to these)
            buf = io.BytesIO()
            cell.save(buf, format="PNG")
            return cls(data=buf.getvalue(), origin=origin)
        raise ItemError(f"{origin or 'image cell'}: cannot use a {type(cell).__name__} as an image")

    @classmethod
    def from_url(cls, url: str, origin: str | None = None) -> ImageRef:
        """An image named by an http(s) URL: fetched when first read, through the URL cache
        (`mjbench.fetch`). `url` keeps the address; the origin (default: the URL) names it in messages."""
        ref = cls(loader=partial(fetch_url, url), origin=origin or url)
        ref.url = url
        return ref

    def read_bytes(self) -> bytes:
        if self._data is None and self._loader is not None:
            try:
                self._data = self._loader()
            except ItemError:
                raise
            except Exception as exc:  # a dataset reader may raise anything; name the image
                raise ItemError(f"cannot read image {self.origin}: {exc}") from None
        if self._data is None:
            assert self.path is not None
            try:
                self._data = self.path.read_bytes()
            except FileNotFoundError:
                raise ItemError(f"image file not found: {self.path}") from None
            except OSError as exc:
                raise ItemError(f"cannot read image file {self.path}: {exc.strerror or exc}") from None
        return self._data

    @property
    def hash(self) -> str:
        """sha256 of the encoded bytes (hex): identical files share one cache entry."""
        if self._hash is None:
            self._hash = hashlib.sha256(self.read_bytes()).hexdigest()
        return self._hash

    def header(self) -> tuple[str | None, tuple[int, int]]:
        """(format, (width, height)) from the file's header, without decoding pixels; ItemError if unreadable
        or above the pixel limit."""
        with self._open() as im:
            return im.format, im.size

    def load(self, max_side: int | None = None, min_side: int | None = None) -> Image.Image:
        """Decode the whole file to an RGB PIL image; a corrupt, truncated or oversized file raises ItemError
        naming it. Decoded no larger than needed:
        - `max_side`: no longer than that on the longest side: JPEG draft mode (DCT scaling) and
          `Image.reduce` before the final LANCZOS resampling (PIL's `thumbnail`, reducing gap 2), and before
          the conversion to RGB (for an API judge's upload size);
        - `min_side`: the shortest side reduced towards it but never below it, by draft mode and then
          `Image.reduce` by a whole factor, nothing resampled (for a model whose own resize makes the last
          step: an image whose shortest side is below 2 x `min_side` comes back exactly as a full decode)."""
        from PIL import Image

        try:
            with self._open() as im:
                if max_side and max(im.size) > max_side and im.mode in ("RGB", "L"):
                    im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)  # draft + reduce + resample
                    return im.convert("RGB")
                w, h = im.size
                if min_side and im.format == "JPEG" and min(w, h) >= 2 * min_side:
                    s = min_side / min(w, h)
                    im.draft(None, (math.ceil(w * s), math.ceil(h * s)))  # the smallest DCT scale >= that size
                im.load()
                rgb = im.convert("RGB")
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ItemError(f"cannot decode image {self.origin}: {exc}") from None
        if min_side and min(rgb.size) // min_side >= 2:
            rgb = rgb.reduce(min(rgb.size) // min_side)
        if max_side and max(rgb.size) > max_side:  # palette, alpha, CMYK...: resampled after conversion
            rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
        return rgb

    def _open(self) -> Image.Image:
        """PIL's lazy image (header read, pixels not decoded), checked against the pixel limit."""
        from PIL import Image, UnidentifiedImageError

        data = self.read_bytes()
        limit = max_pixels()
        try:
            with _OPEN_LOCK, warnings.catch_warnings():
                # PIL warns above Image.MAX_IMAGE_PIXELS (89 MP); the limit below decides instead, with a message
                # naming the file. PIL's own hard limit (twice that) still applies and becomes an ItemError.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise ItemError(f"cannot decode image {self.origin}: not a recognised image format") from None
        except Image.DecompressionBombError as exc:
            raise ItemError(f"image {self.origin} refused as a decompression bomb: {exc}") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ItemError(f"cannot decode image {self.origin}: {exc}") from None
        w, h = im.size
        if w * h > limit:
            im.close()
            raise ItemError(
                f"image {self.origin} is {w}x{h} ({_megapixels(w * h)}), above the limit of {_megapixels(limit)} "
                f"(set {MAX_PIXELS_ENV} to raise it)"
            )
        return im

    def release(self) -> None:
        """Forget the cached bytes of an image that can read them again (keeps memory flat on large tasks)."""
        if (self.path is not None or self._loader is not None) and self._hash is not None:
            self._data = None

    def __repr__(self) -> str:
        return f"ImageRef({self.origin!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageRef) and self.hash == other.hash

    def __hash__(self) -> int:
        return hash(self.hash)
