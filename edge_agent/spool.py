"""Store-and-forward spool: every reading waits here, on disk, until the broker acknowledged it.

Why SQLite (one file, `spool.sqlite`, in the spool folder) rather than append-only segment files:

- Messages leave in acknowledgement order, one by one, and the oldest are evicted when the spool is
  full, while new ones are appended: with segment files that needs an acknowledged-up-to pointer,
  a dropped-up-to pointer, segment rotation and compaction, each a crash-consistency problem of its
  own. Here each of those is one transaction (`INSERT`, `DELETE ... WHERE id = ?`, a range
  `DELETE`), and a crash at any instant leaves either the state before or the state after.
- The counters that must survive a restart (messages dropped, the last sequence number) change in
  the same transaction as the rows they count, so they can never disagree with the spool.
- It is in Python's standard library and on every Raspberry Pi / Jetson image; at the seed's rates
  (at most 5 messages/s per vehicle) its per-transaction cost is irrelevant.

Journal mode WAL. By default `synchronous=NORMAL`: a crash of the agent loses nothing; a power
cut may lose the last moments of commits but never corrupts the file. `durable=True` syncs every
commit (`synchronous=FULL`), at the price of flash wear. The file is opened in exclusive locking
mode: a second agent on the same spool fails at start instead of interleaving sequence numbers.

Ordering: rows get an AUTOINCREMENT id, never reused, so id order is the order readings were taken,
across restarts too. The bound (messages and/or bytes of payload) is enforced on every append:
the oldest rows go first, each one counted in a persisted `dropped` counter. Rows the caller says
are in flight (`keep_upto_id`: published, acknowledgement pending, so probably already at the
broker) are not evicted.

A replayed message carries `"resent": true` in its payload: rows appended while the broker was
unreachable, rows marked with `mark_resent` (the connection was lost before they were acknowledged)
and every row found when the spool is opened (left by the previous run: maybe never sent, maybe
sent but not acknowledged).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edge_agent.wire import encode

SPOOL_FILE = "spool.sqlite"
_SCHEMA_VERSION = 1


class SpoolError(RuntimeError):
    """The spool cannot be opened (in use by another agent, unreadable, or another format)."""


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    id: int
    seq: int
    payload: bytes  # what goes on the wire: the stored reading, plus "resent": true when resent
    resent: bool


class Spool:
    """Bounded, ordered, persistent queue of encoded readings. Not thread-safe: one user at a time."""

    def __init__(self, folder: Path, *, max_messages: int = 100_000, max_bytes: int = 64 * 2**20, durable: bool = False):
        if max_messages < 0 or max_bytes < 0 or (max_messages == 0 and max_bytes == 0):
            raise ValueError("the spool needs a bound: max_messages and/or max_bytes > 0 (0 = no limit on that one)")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / SPOOL_FILE
        self._db: sqlite3.Connection | None = None
        try:
            # check_same_thread=False: the agent is built in one thread and may run in another.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0.1)
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self._init_schema()
            # Rows left by the previous run: not acknowledged, maybe already delivered once.
            self._db.execute("UPDATE message SET resent = 1 WHERE resent = 0")
            self._count, self._bytes, last_id = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0), COALESCE(MAX(id), 0) FROM message"
            ).fetchone()
            self._dropped_total = self._counter("dropped")
            self._last_seq = self._counter("last_seq")
        except (sqlite3.Error, SpoolError) as exc:
            if self._db is not None:
                self._db.close()
            if isinstance(exc, SpoolError):
                raise
            if "locked" in str(exc):
                raise SpoolError(f"spool {self.path} is in use by another agent") from exc
            raise SpoolError(f"spool {self.path} cannot be opened: {exc}") from exc
        self._last_id = last_id
        self.high_water_messages = self._count  # most messages held at once since opened
        self.high_water_bytes = self._bytes

    def _init_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise SpoolError(f"spool {self.path} has format {version}, this agent reads {_SCHEMA_VERSION}")
        self._db.executescript(
            f"""
            BEGIN;
            CREATE TABLE IF NOT EXISTS message (
                id     INTEGER PRIMARY KEY AUTOINCREMENT,
                seq    INTEGER NOT NULL,
                body   BLOB    NOT NULL,
                resent INTEGER NOT NULL DEFAULT 0
            );
            CREATE TABLE IF NOT EXISTS counter (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT OR IGNORE INTO counter (name, value) VALUES ('dropped', 0), ('last_seq', 0);
            PRAGMA user_version = {_SCHEMA_VERSION};
            COMMIT;
            """
        )

    def _counter(self, name: str) -> int:
        return self._db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()[0]

    # --- what is in it ---------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    @property
    def bytes(self) -> int:
        """Payload bytes held (the file adds SQLite's page overhead; freed pages are reused)."""
        return self._bytes

    @property
    def dropped_total(self) -> int:
        """Messages evicted because the spool was full, since the spool was created (persisted)."""
        return self._dropped_total

    @property
    def last_seq(self) -> int:
        """The highest sequence number ever appended (persisted; 0 for a new spool)."""
        return self._last_seq

    @property
    def last_id(self) -> int:
        """The id of the newest row ever appended (0 for a new spool)."""
        return self._last_id

    # --- changing it -----------------------------------------------------------------------

    def append(self, seq: int, body: bytes, *, resent: bool = False, keep_upto_id: int = 0) -> int:
        """Store one encoded reading; evict the oldest rows (id > keep_upto_id) while over the bound.

        Returns how many rows were evicted (the new row itself only if it alone exceeds max_bytes).
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            row_id = db.execute(
                "INSERT INTO message (seq, body, resent) VALUES (?, ?, ?)", (seq, body, int(resent))
            ).lastrowid
            count, size = self._count + 1, self._bytes + len(body)
            evicted = 0
            if self._over(count, size):
                cursor = db.execute("SELECT id, LENGTH(body) FROM message WHERE id > ? ORDER BY id", (keep_upto_id,))
                last_evicted = None
                for old_id, old_size in cursor:
                    if not self._over(count, size):
                        break
                    last_evicted = old_id
                    count, size, evicted = count - 1, size - old_size, evicted + 1
                cursor.close()
                if last_evicted is not None:
                    db.execute("DELETE FROM message WHERE id > ? AND id <= ?", (keep_upto_id, last_evicted))
                    db.execute("UPDATE counter SET value = value + ? WHERE name = 'dropped'", (evicted,))
            if seq > self._last_seq:
                db.execute("UPDATE counter SET value = ? WHERE name = 'last_seq'", (seq,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._count, self._bytes = count, size
        self._dropped_total += evicted
        self._last_seq = max(self._last_seq, seq)
        self._last_id = row_id
        self.high_water_messages = max(self.high_water_messages, count)
        self.high_water_bytes = max(self.high_water_bytes, size)
        return evicted

    def _over(self, count: int, size: int) -> bool:
        return (self.max_messages > 0 and count > self.max_messages) or (self.max_bytes > 0 and size > self.max_bytes)

    def read(self, after_id: int = 0, limit: int = 100) -> list[SpooledMessage]:
        """The oldest `limit` rows with id > after_id, in order, ready to publish."""
        rows = self._db.execute(
            "SELECT id, seq, body, resent FROM message WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
        ).fetchall()
        return [SpooledMessage(row_id, seq, _wire_payload(body, bool(resent)), bool(resent)) for row_id, seq, body, resent in rows]

    def delete(self, ids: Iterable[int]) -> int:
        """Remove acknowledged rows (ids already gone, e.g. evicted, are ignored). Returns rows removed."""
        ids = list(ids)
        if not ids:
            return 0
        db = self._db
        removed = removed_bytes = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            for row_id in ids:
                row = db.execute("DELETE FROM message WHERE id = ? RETURNING LENGTH(body)", (row_id,)).fetchone()
                if row is not None:
                    removed, removed_bytes = removed + 1, removed_bytes + row[0]
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self._count -= removed
        self._bytes -= removed_bytes
        return removed

    def mark_resent(self, ids: Iterable[int] | None = None) -> int:
        """Flag rows (all of them when `ids` is None) whose next publish is a re-send: they wait for a
        reconnect. Returns how many rows were newly flagged."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if ids is None:
                flagged = db.execute("UPDATE message SET resent = 1 WHERE resent = 0").rowcount
            else:
                flagged = 0
                for row_id in ids:
                    flagged += db.execute("UPDATE message SET resent = 1 WHERE id = ? AND resent = 0", (row_id,)).rowcount
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return flagged

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wire_payload(body: bytes, resent: bool) -> bytes:
    if not resent:
        return body
    event = json.loads(body)
    event["resent"] = True
    return encode(event)
