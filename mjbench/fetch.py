"""Images given as `http(s)://` URLs: fetched once, with a bounded client, into a content-addressed cache.

Published preference data (GenAI-Arena votes, Pick-a-Pic links, your own exports) often names images by URL.
`fetch_url` reads one such image:

- from the cache when this URL was fetched before: `$MJBENCH_CACHE_DIR/urls/` (default `~/.cache/mjbench/urls/`)
  holds each image once under the sha256 of its bytes (`blobs/ab/abcd...`) and, per URL, a small index file
  naming that hash (`index/12/1234...`, keyed by the sha256 of the URL), so two URLs serving the same bytes
  share one file and a run re-reads nothing over the network;
- else over HTTP with httpx: a per-attempt time limit (connect, read and the whole body), a size cap checked
  against `Content-Length` and while streaming, and a few retries with exponential backoff on time-outs,
  connection errors, 429 and 5xx. Other answers (404, 403, ...) are final at once.

Every failure is an ItemError naming the URL and why (`HTTP 404`, `timed out after 30s (3 attempts)`,
`larger than 50 MB`), so the item gets an `error` record and the rest of the run goes on. Cache files are
written atomically (temporary file, then rename), so concurrent runs and interrupted downloads never leave a
half-written image behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from mjbench.errors import ItemError

#: seconds one attempt may take (connect, first byte and the whole body)
DEFAULT_TIMEOUT_S = 30.0
#: attempts per URL (the first one included)
DEFAULT_ATTEMPTS = 3
#: first backoff pause in seconds; doubles after each failed attempt
DEFAULT_BACKOFF_S = 1.0
#: the largest image body accepted (an image of 40 megapixels is well below this as PNG or JPEG)
DEFAULT_MAX_BYTES = 50_000_000
#: retried statuses: rate limits and server errors; anything else is the URL's final answer
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_url(value: object) -> bool:
    """True for text that names an http(s) URL (not a local path)."""
    return isinstance(value, str) and value.strip().lower().startswith(("http://", "https://"))


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`, else `$MJBENCH_CACHE_DIR`, else `~/.cache/mjbench`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("MJBENCH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mjbench"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _index_path(root: Path, url: str) -> Path:
    key = _sha(url.encode("utf-8"))
    return root / "urls" / "index" / key[:2] / key


def _blob_path(root: Path, digest: str) -> Path:
    return root / "urls" / "blobs" / digest[:2] / digest


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached(url: str, cache_dir: str | Path | None = None) -> bytes | None:
    """The cached bytes of `url`, or None when it was never fetched (or its blob went missing)."""
    root = cache_root(cache_dir)
    try:
        digest = _index_path(root, url).read_text(encoding="ascii").strip()
        data = _blob_path(root, digest).read_bytes()
    except (OSError, UnicodeDecodeError):
        return None
    return data if _sha(data) == digest else None  # a damaged blob is fetched again


def fetch_url(
    url: str,
    *,
    cache_dir: str | Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    attempts: int = DEFAULT_ATTEMPTS,
    backoff_s: float = DEFAULT_BACKOFF_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """The bytes at `url`, from the cache or fetched (then cached); ItemError naming the URL otherwise."""
    data = cached(url, cache_dir)
    if data is not None:
        return data
    data = _download(url, timeout_s, max(1, attempts), backoff_s, max_bytes)
    root = cache_root(cache_dir)
    digest = _sha(data)
    try:
        blob = _blob_path(root, digest)
        if not blob.is_file():
            _write_atomic(blob, data)
        _write_atomic(_index_path(root, url), digest.encode("ascii"))
    except OSError:
        pass  # an unwritable cache costs a re-fetch next time, never the image
    return data


class _Retry(Exception):
    """A failed attempt worth repeating (time-out, connection error, 429, 5xx)."""


def _download(url: str, timeout_s: float, attempts: int, backoff_s: float, max_bytes: int) -> bytes:
    import httpx

    last = ""
    with httpx.Client(timeout=httpx.Timeout(timeout_s), follow_redirects=True) as client:
        for attempt in range(attempts):
            if attempt:
                time.sleep(backoff_s * 2 ** (attempt - 1))
            try:
                return _attempt(client, url, timeout_s, max_bytes)
            except _Retry as exc:
                last = str(exc)
            except httpx.TimeoutException:
                last = f"timed out after {timeout_s:g}s"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            except httpx.HTTPError as exc:  # a bad URL, too many redirects: final
                raise ItemError(f"cannot fetch image URL {url}: {exc}") from None
    raise ItemError(f"cannot fetch image URL {url}: {last} ({attempts} attempts)")


def _attempt(client: object, url: str, timeout_s: float, max_bytes: int) -> bytes:
    deadline = time.monotonic() + timeout_s
    with client.stream("GET", url) as response:  # type: ignore[attr-defined]
        status = response.status_code
        if status in _RETRY_STATUS:
            raise _Retry(f"HTTP {status} {response.reason_phrase}".rstrip())
        if status >= 400:
            raise ItemError(f"cannot fetch image URL {url}: HTTP {status} {response.reason_phrase}".rstrip())
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise ItemError(f"image URL {url} is {int(declared)} bytes, larger than the limit of {max_bytes}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ItemError(f"image URL {url} is larger than the limit of {max_bytes} bytes")
            if time.monotonic() > deadline:  # httpx's time-outs are per read: a trickle would never end
                raise _Retry(f"timed out after {timeout_s:g}s")
            chunks.append(chunk)
    return b"".join(chunks)
