"""The result store: one SQLite file (WAL mode) of judge responses keyed by a content hash.

A key covers everything that determines an answer (judge identity, image hashes, prompt, scale,
perspective, shown order), so re-running a command reads finished requests instead of recomputing
them, and two runs that share a store share work. Responses are committed per batch as they arrive:
a crash or Ctrl-C loses at most the requests in flight, and a transaction is never half-written.
Only final answers are stored (ok, parse_error, refused); errors are recorded in the run's records
but asked again on the next run.

A busy store (another process writing) is waited on, up to `BUSY_TIMEOUT_S`, with SQLite's own backoff.
Anything else that stops a read or a write raises `StoreError`: one line naming the store and SQLite's
own cause ("database or disk is full", "attempt to write a readonly database"), so the runner can stop
asking a judge whose answers could not be kept.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mjbench.errors import MjbenchError
from mjbench.responses import Response

FINAL_STATUSES = frozenset({"ok", "parse_error", "refused"})
#: how long a write waits for another process's transaction before giving up
BUSY_TIMEOUT_S = 60.0


class StoreError(MjbenchError):
    """The result store cannot be opened, read or written. `exit_code`: 2 when nothing was judged (the
    default), 1 once the runner knows answers were stored before the failure."""

    exit_code = 2


def content_key(*parts: Any) -> str:
    """sha256 over a canonical JSON encoding of the parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResultStore:
    def __init__(self, path: Path | str, busy_timeout_s: float | None = None):
        self.path = Path(path)
        self._lock = threading.Lock()
        timeout = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False,
                                         isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"store {self.path}: cannot open ({exc})") from None
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS responses ("
                " key TEXT PRIMARY KEY, judge TEXT NOT NULL, payload TEXT NOT NULL, created REAL NOT NULL)"
            )
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"store {self.path}: cannot open ({exc})") from None

    def get_many(self, keys: Sequence[str]) -> dict[str, Response]:
        found: dict[str, Response] = {}
        with self._lock:
            try:
                for start in range(0, len(keys), 500):
                    chunk = list(keys[start : start + 500])
                    marks = ",".join("?" * len(chunk))
                    rows = self._conn.execute(
                        f"SELECT key, payload FROM responses WHERE key IN ({marks})", chunk
                    ).fetchall()
                    for key, payload in rows:
                        found[key] = Response.from_dict(json.loads(payload))
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: cannot read ({exc})") from None
        return found

    def _write(self, statement: str, rows: list[tuple[Any, ...]], commit: bool = True) -> None:
        """One write transaction. SQLite may already have rolled back (a full disk does): ROLLBACK only
        while a transaction is still open, so its own error never hides the real cause."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")  # takes the write lock now: waits on a busy store
                self._conn.executemany(statement, rows)
                self._conn.execute("COMMIT" if commit else "ROLLBACK")
            except BaseException as exc:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"store {self.path}: cannot write ({exc})") from None
                raise

    def check_writable(self) -> None:
        """Raise StoreError now if answers could not be stored, before any request is paid for."""
        self._write("DELETE FROM responses WHERE key = ?", [("",)], commit=False)

    def put_many(self, judge: str, items: Iterable[tuple[str, Response]]) -> int:
        """Store final responses in one transaction; returns how many were written."""
        rows = [
            (key, judge, json.dumps(resp.to_dict(), ensure_ascii=False), time.time())
            for key, resp in items
            if resp.status in FINAL_STATUSES
        ]
        if rows:
            self._write("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", rows)
        return len(rows)

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()
