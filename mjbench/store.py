"""The result store: one SQLite file (WAL mode) of judge responses keyed by a content hash.

A key covers everything that determines an answer (judge identity, image hashes, prompt, scale,
perspective, shown order), so re-running a command reads finished requests instead of recomputing
them, and two runs that share a store share work. Responses are committed per batch as they arrive:
a crash or Ctrl-C loses at most the requests in flight, and a transaction is never half-written.
Only final answers are stored (ok, parse_error, refused); errors are recorded in the run's records
but asked again on the next run.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mjbench.responses import Response

FINAL_STATUSES = frozenset({"ok", "parse_error", "refused"})


def content_key(*parts: Any) -> str:
    """sha256 over a canonical JSON encoding of the parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResultStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses ("
            " key TEXT PRIMARY KEY, judge TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get_many(self, keys: Sequence[str]) -> dict[str, Response]:
        found: dict[str, Response] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, payload FROM responses WHERE key IN ({marks})", chunk
                ).fetchall()
                for key, payload in rows:
                    found[key] = Response.from_dict(json.loads(payload))
        return found

    def put_many(self, judge: str, items: Iterable[tuple[str, Response]]) -> int:
        """Store final responses in one transaction; returns how many were written."""
        rows = [
            (key, judge, json.dumps(resp.to_dict(), ensure_ascii=False), time.time())
            for key, resp in items
            if resp.status in FINAL_STATUSES
        ]
        if not rows:
            return 0
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return len(rows)

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
