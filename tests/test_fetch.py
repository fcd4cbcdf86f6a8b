"""Images given as URLs: fetched with a bounded, retried client into a content-addressed cache, against a
local HTTP server on 127.0.0.1 (a 200, a 404, a 500-then-200, a slow one past the time-out, an oversized one)
that each test starts and stops."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from mjbench.config import load_task_file
from mjbench.errors import ItemError
from mjbench.fetch import cached, fetch_url, is_url
from mjbench.images import ImageRef
from mjbench.sources import load_task


def png(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (6, 5), color).save(buf, format="PNG")
    return buf.getvalue()


RED, BLUE = png((255, 0, 0)), png((0, 0, 255))


class ImageServer:
    """GET-only server on 127.0.0.1, a free port: /red.png, /blue.png and /same-as-red.png (200), /missing.png
    (404), /flaky.png (500 on the first request, then 200), /slow.png (answers after `slow_s`), /big.png (a
    large body). Counts requests per path; stopped on exit."""

    def __init__(self, slow_s: float = 1.0):
        self.hits: Counter[str] = Counter()
        self.slow_s = slow_s
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path
                server.hits[path] += 1
                if path == "/missing.png":
                    return self._send(404, b"not here")
                if path == "/flaky.png" and server.hits[path] == 1:
                    return self._send(500, b"try again")
                if path == "/slow.png":
                    time.sleep(server.slow_s)
                body = {"/red.png": RED, "/same-as-red.png": RED, "/blue.png": BLUE, "/flaky.png": BLUE,
                        "/slow.png": BLUE, "/big.png": b"x" * 200_000}.get(path)
                if body is None:
                    return self._send(404, b"unknown")
                self._send(200, body)

            def _send(self, status: int, body: bytes) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (time-out test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> ImageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    with ImageServer(slow_s=1.0) as s:
        yield s


def test_is_url() -> None:
    assert is_url("https://x.org/a.png") and is_url(" HTTP://x/a.png")
    assert not is_url("images/a.png") and not is_url("/abs/http://x") and not is_url(None) and not is_url(b"http://")


def test_fetch_caches_by_content_and_reuses_it(tmp_path: Path, server: ImageServer) -> None:
    cache = tmp_path / "cache"
    assert fetch_url(f"{server.url}/red.png", cache_dir=cache) == RED
    assert fetch_url(f"{server.url}/red.png", cache_dir=cache) == RED  # from the cache: no second request
    assert server.hits["/red.png"] == 1
    digest = hashlib.sha256(RED).hexdigest()
    blob = cache / "urls" / "blobs" / digest[:2] / digest
    assert blob.read_bytes() == RED
    # another URL with the same bytes shares the blob; only its index entry is new
    assert fetch_url(f"{server.url}/same-as-red.png", cache_dir=cache) == RED
    assert [p.name for p in (cache / "urls" / "blobs").rglob("*") if p.is_file()] == [digest]
    assert len([p for p in (cache / "urls" / "index").rglob("*") if p.is_file()]) == 2
    # a damaged blob is fetched again, never returned
    blob.write_bytes(b"garbage")
    assert fetch_url(f"{server.url}/red.png", cache_dir=cache) == RED and server.hits["/red.png"] == 2


def test_fetch_failures_name_the_url(tmp_path: Path, server: ImageServer) -> None:
    cache = tmp_path / "cache"
    url = f"{server.url}/missing.png"
    with pytest.raises(ItemError, match=rf"^cannot fetch image URL {url}: HTTP 404 Not Found$"):
        fetch_url(url, cache_dir=cache, backoff_s=0.01)
    assert server.hits["/missing.png"] == 1  # a 404 is final: not retried
    # 500 then 200: retried once, then cached
    assert fetch_url(f"{server.url}/flaky.png", cache_dir=cache, backoff_s=0.01) == BLUE
    assert server.hits["/flaky.png"] == 2
    # past the time-out on every attempt
    url = f"{server.url}/slow.png"
    start = time.monotonic()
    with pytest.raises(ItemError, match=rf"^cannot fetch image URL {url}: timed out after 0.2s \(2 attempts\)$"):
        fetch_url(url, cache_dir=cache, timeout_s=0.2, attempts=2, backoff_s=0.01)
    assert time.monotonic() - start < 0.9 * 2 and server.hits["/slow.png"] == 2
    # the size cap
    url = f"{server.url}/big.png"
    with pytest.raises(ItemError, match=rf"^image URL {url} is 200000 bytes, larger than the limit of 1000$"):
        fetch_url(url, cache_dir=cache, max_bytes=1000)
    assert cached(url, cache) is None and cached(f"{server.url}/missing.png", cache) is None  # failures not cached
    # nothing listening at all
    with pytest.raises(ItemError, match=r"^cannot fetch image URL http://127\.0\.0\.1:9/x\.png: .*\(2 attempts\)$"):
        fetch_url("http://127.0.0.1:9/x.png", cache_dir=cache, attempts=2, backoff_s=0.01, timeout_s=1)


def test_url_cells_are_urls_not_paths(tmp_path: Path, server: ImageServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL in a table is fetched (through $MJBENCH_CACHE_DIR/urls/), never resolved against the data folder
    nor refused as a path outside it; the URL stays on the image, and in every message about it."""
    monkeypatch.setenv("MJBENCH_CACHE_DIR", str(tmp_path / "cache"))
    rows = [{"prompt": "a", "image0": f"{server.url}/red.png", "image1": {"bytes": None, "path": f"{server.url}/blue.png"},
             "label": 0},
            {"prompt": "b", "image0": f"{server.url}/missing.png", "image1": f"{server.url}/blue.png", "label": 1}]
    (tmp_path / "d.jsonl").write_text("\n".join(map(json.dumps, rows)))
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"name": "t", "perspective": "alignment",
                                                     "source": {"type": "table", "path": "d.jsonl"}}))
    result = load_task(load_task_file(tmp_path / "t.yaml"))
    assert result.problems == [] and len(result.items) == 2  # nothing fetched at load time
    assert sum(server.hits.values()) == 0
    first, second = result.items
    assert first.image0.url == f"{server.url}/red.png" and first.image1.url == f"{server.url}/blue.png"
    assert f"{server.url}/red.png" in first.image0.origin
    assert first.image0.load().getpixel((0, 0)) == (255, 0, 0)
    assert first.image1.load().getpixel((0, 0)) == (0, 0, 255)
    assert list((tmp_path / "cache" / "urls" / "blobs").rglob("*"))
    with pytest.raises(ItemError, match="HTTP 404"):
        second.image0.hash  # noqa: B018
    ref = ImageRef.from_cell(f"{server.url}/red.png", base_dir=tmp_path)
    assert ref.path is None and ref.url == f"{server.url}/red.png" and ref.read_bytes() == RED


def test_urls_are_kept_in_the_records(tmp_path: Path, server: ImageServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A judged URL image names its address in the record (image0_url / image1_url), error or not."""
    from mjbench.records import read_records
    from mjbench.runner import RunSpec, run_benchmark

    monkeypatch.setenv("MJBENCH_CACHE_DIR", str(tmp_path / "cache"))
    rows = [{"prompt": "a", "image0": f"{server.url}/red.png", "image1": f"{server.url}/blue.png", "label": 0},
            {"prompt": "b", "image0": f"{server.url}/missing.png", "image1": f"{server.url}/blue.png", "label": 1}]
    (tmp_path / "d.jsonl").write_text("\n".join(map(json.dumps, rows)))
    (tmp_path / "t.yaml").write_text(yaml.safe_dump({"name": "t", "perspective": "alignment",
                                                     "source": {"type": "table", "path": "d.jsonl"}}))
    result = run_benchmark(RunSpec(tasks=[str(tmp_path / "t.yaml")], judges=["random"], out=tmp_path / "out",
                                   quiet=True))
    records = read_records([result.out_dir / "records.jsonl"]).sort_values("item_id")
    assert list(records["image0_url"]) == [f"{server.url}/red.png", f"{server.url}/missing.png"]
    assert list(records["image1_url"]) == [f"{server.url}/blue.png"] * 2
    assert list(records["status"]) == ["ok", "error"]
