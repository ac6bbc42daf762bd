"""SQLite plumbing shared by the local backends: the hot store (hot_store_local) and the vehicle
status table (vehicle_status_local), which keep their tables in the same file.

It holds SqliteDatabase (one connection, opened by path, with the table schema applied) and
StoreClosedError. They live here, not in either store, so both open the file with the same
connection discipline, which is what makes sharing it safe:

Several Flink subtasks in one process may each open a store on the same file and write from their
own threads, and another process (a CLI query) may read at the same time. WAL mode lets readers
run beside the one writer; busy_timeout makes writers queue instead of failing; write transactions
start with BEGIN IMMEDIATE so they take the write lock up front (a deferred transaction that
upgrades from read to write can get SQLITE_BUSY without waiting). One SqliteDatabase shares one
connection between threads, guarded by a lock.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from connectors.retry import retry_call

# What SQLite raises for a row it will never take (a value it cannot bind, a constraint): not
# OperationalError, which is the database's state (locked, full disk) and may pass.
REFUSED_ROW = (sqlite3.IntegrityError, sqlite3.DataError, sqlite3.InterfaceError, sqlite3.ProgrammingError, OverflowError)

BUSY_TIMEOUT_MS = 30_000


class StoreClosedError(RuntimeError):
    pass


class SqliteDatabase:
    """One SQLite connection in WAL mode, safe to share between threads of one process."""

    def __init__(self, path: str, schema: Sequence[str], *, busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.path = _checked_path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = _connect(self.path, busy_timeout_ms)
        try:
            with self.transaction() as conn:
                for statement in schema:
                    conn.execute(statement)
        except BaseException:
            self.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all of it or none of it is visible to readers."""
        with self._lock:
            conn = self._open_connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def write_rows(self, sql: str, rows: Sequence[Sequence[Any]]) -> tuple[int, list[tuple[int, str]]]:
        """`sql` for every row in one transaction; returns (rows changed, [(index, why) of the rows
        SQLite refuses]). A refusal is about the row (a value SQLite cannot bind, a constraint), so
        retrying cannot help: the batch is redone row by row and the rest commits. Anything else
        ("database is locked", a full disk) is raised, for the job to retry."""
        try:
            with self.transaction() as conn:
                before = conn.total_changes
                conn.executemany(sql, rows)
                return conn.total_changes - before, []
        except REFUSED_ROW:
            pass
        refused: list[tuple[int, str]] = []
        with self.transaction() as conn:
            before = conn.total_changes
            for index, row in enumerate(rows):
                try:
                    conn.execute(sql, row)  # a failed statement rolls back itself, not the transaction
                except REFUSED_ROW as error:
                    refused.append((index, f"{type(error).__name__}: {error}"))
            return conn.total_changes - before, refused

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._open_connection().execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _open_connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreClosedError(f"the store on {self.path} is closed")
        return self._conn


def _checked_path(path: str) -> str:
    if not path or not str(path).strip():
        raise ValueError(
            "the local store needs a SQLite file path (StoreConfig.local_path is empty); "
            "set it, e.g. --set store.local_path=var/hot_store.sqlite"
        )
    if str(path) != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
    return str(path)


def _connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    # isolation_level=None: the module's implicit transactions are off; we BEGIN/COMMIT ourselves.
    conn = sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = _enable_wal(conn, time.monotonic() + busy_timeout_ms / 1000)
        if path != ":memory:" and mode != "wal":
            raise sqlite3.OperationalError(f"{path}: could not switch to WAL mode (got {mode!r})")
        # NORMAL is durable against process crashes in WAL mode; a power loss may drop the last
        # commits, which the Flink job replays from its checkpoint (writes are idempotent).
        conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, deadline: float) -> str:
    # Switching a new file to WAL can fail with "database is locked" without consulting the busy
    # handler when several subtasks open the same fresh file at once: wait our turn by hand.
    return retry_call(
        lambda: str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower(),
        retry_if=lambda error: isinstance(error, sqlite3.OperationalError) and "locked" in str(error),
        wait=0.01,
        deadline_s=max(0.0, deadline - time.monotonic()),
    )
