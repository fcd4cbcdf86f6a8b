"""The result store: one SQLite file (WAL mode) of judge responses keyed by a content hash.

A key covers everything that determines an answer (judge identity, image hashes, prompt, scale,
perspective, shown order), so re-running a command reads finished requests instead of recomputing
them, and two runs that share a store share work. Responses are committed per batch as they arrive:
a crash or Ctrl-C loses at most the requests in flight, and a transaction is never half-written.
Only final answers are stored (ok, parse_error, refused); errors are recorded in the run's records
but asked again on the next run.

Stores merge (`ResultStore.absorb`): the shards of a sharded run each write their own store, and one
store takes in the others' rows in a single transaction. A key answered differently by two stores is a
conflict and nothing is merged; the same answer twice (equal but for `ANSWER_FREE_FIELDS`) is kept once.

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
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mjbench.errors import MjbenchError
from mjbench.responses import Response

FINAL_STATUSES = frozenset({"ok", "parse_error", "refused"})
#: how long a write waits for another process's transaction before giving up
BUSY_TIMEOUT_S = 60.0
#: response fields that say how an answer was obtained, not what it is: two stores whose rows for one key
#: differ only in these hold the same answer (the same request, timed or retried differently)
ANSWER_FREE_FIELDS = frozenset({"latency_s", "attempts"})
#: one stored row: key, judge name, payload (JSON of a Response), creation time
Row = tuple[str, str, str, float]


class StoreError(MjbenchError):
    """The result store cannot be opened, read or written. `exit_code`: 2 when nothing was judged (the
    default), 1 once the runner knows answers were stored before the failure."""

    exit_code = 2


def content_key(*parts: Any) -> str:
    """sha256 over a canonical JSON encoding of the parts."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def same_answer(payload_a: str, payload_b: str) -> bool:
    """Whether two stored payloads hold the same answer (equal but for `ANSWER_FREE_FIELDS`)."""
    if payload_a == payload_b:
        return True
    try:
        a, b = json.loads(payload_a), json.loads(payload_b)
    except ValueError:
        return False
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return ({k: v for k, v in a.items() if k not in ANSWER_FREE_FIELDS}
            == {k: v for k, v in b.items() if k not in ANSWER_FREE_FIELDS})


@dataclass
class AbsorbResult:
    """What `ResultStore.absorb` did: per source, rows added and rows already held with the same answer;
    the conflicting keys with the index of the source that disagreed (nothing is written when any)."""

    added: list[int] = field(default_factory=list)
    same: list[int] = field(default_factory=list)
    conflicts: list[tuple[str, int]] = field(default_factory=list)


class ResultStore:
    def __init__(self, path: Path | str, busy_timeout_s: float | None = None, readonly: bool = False):
        """`readonly`: open an existing store to read it (a shard's store being merged); it must exist and
        hold a responses table."""
        self.path = Path(path)
        self._lock = threading.Lock()
        timeout = BUSY_TIMEOUT_S if busy_timeout_s is None else busy_timeout_s
        if readonly:
            if not self.path.is_file():
                raise StoreError(f"store {self.path}: not found")
            try:
                self._conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout,
                                             check_same_thread=False, isolation_level=None)
                self._conn.execute("SELECT key, judge, payload, created FROM responses LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: cannot read it as an mjbench store ({exc})") from None
            return
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
        return {key: Response.from_dict(json.loads(payload)) for key, payload in self.payloads(keys).items()}

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction under the lock; the body ends it with COMMIT or ROLLBACK. SQLite may already
        have rolled back (a full disk does): ROLLBACK only while a transaction is still open, so its own error
        never hides the real cause, which is raised as a StoreError naming the store."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")  # takes the write lock now: waits on a busy store
                yield
            except BaseException as exc:
                if self._conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise StoreError(f"store {self.path}: cannot write ({exc})") from None
                raise

    def _write(self, statement: str, rows: list[tuple[Any, ...]], commit: bool = True) -> None:
        with self._transaction():
            self._conn.executemany(statement, rows)
            self._conn.execute("COMMIT" if commit else "ROLLBACK")

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

    def iter_rows(self, chunk: int = 1000) -> Iterator[list[Row]]:
        """Every stored row, `chunk` at a time, in key order (memory stays flat on a large store)."""
        last = ""
        while True:
            with self._lock:
                try:
                    rows = self._conn.execute(
                        "SELECT key, judge, payload, created FROM responses WHERE key > ? ORDER BY key LIMIT ?",
                        (last, chunk)).fetchall()
                except sqlite3.Error as exc:
                    raise StoreError(f"store {self.path}: cannot read ({exc})") from None
            if not rows:
                return
            yield rows
            last = rows[-1][0]

    def payloads(self, keys: Sequence[str]) -> dict[str, str]:
        """The stored payloads (JSON text) of those keys that are present."""
        with self._lock:
            try:
                return self._payloads(keys)
            except sqlite3.Error as exc:
                raise StoreError(f"store {self.path}: cannot read ({exc})") from None

    def _payloads(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            found.update(self._conn.execute(
                f"SELECT key, payload FROM responses WHERE key IN ({','.join('?' * len(chunk))})", chunk))
        return found

    def absorb(self, sources: Sequence[ResultStore]) -> AbsorbResult:
        """Take in every row of `sources`, in one transaction: a key this store (or an earlier source) does
        not hold is added; one it holds with the same answer is skipped; one it holds with another answer is
        a conflict. Any conflict rolls everything back: the store is left as it was."""
        result = AbsorbResult()
        with self._transaction():
            for index, source in enumerate(sources):
                added = same = 0
                for rows in source.iter_rows():
                    held = self._payloads([r[0] for r in rows])
                    new = [r for r in rows if r[0] not in held]
                    for key, _, payload, _ in rows:
                        if key not in held:
                            continue
                        if same_answer(held[key], payload):
                            same += 1
                        else:
                            result.conflicts.append((key, index))
                    self._conn.executemany("INSERT INTO responses VALUES (?, ?, ?, ?)", new)
                    added += len(new)
                result.added.append(added)
                result.same.append(same)
            self._conn.execute("ROLLBACK" if result.conflicts else "COMMIT")
        return result

    def count(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()
