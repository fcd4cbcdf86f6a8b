"""Image references that decode lazily and carry a content hash.

An item never holds pixels: it holds an `ImageRef` (a file path, encoded bytes, or both, as in a
datasets `{bytes, path}` cell). The hash of the encoded bytes keys the result store and lets the
runner rate an image once however many items or judges share it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mjbench.errors import ItemError

if TYPE_CHECKING:
    from PIL import Image


class ImageRef:
    """A lazily read, lazily decoded image. Errors name the file (or the origin) that was wrong."""

    __slots__ = ("path", "_data", "_hash", "origin", "_loader")

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

    @classmethod
    def from_cell(cls, cell: Any, base_dir: Path | None = None, origin: str | None = None) -> ImageRef:
        """Build from a dataset cell: a `{bytes, path}` dict, raw bytes, a path string, or a PIL image."""
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

    def load(self) -> Image.Image:
        """Decode to an RGB PIL image; a corrupt file raises ItemError naming it."""
        from PIL import Image, UnidentifiedImageError

        data = self.read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as im:
                im.load()
                return im.convert("RGB")
        except UnidentifiedImageError:
            raise ItemError(f"cannot decode image {self.origin}: not a recognised image format") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise ItemError(f"cannot decode image {self.origin}: {exc}") from None

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
