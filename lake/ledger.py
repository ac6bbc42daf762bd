"""The record of which Bronze files Silver has read: a small Delta table beside the lake's tables,
appended after the Silver hours a file feeds are written (a crash between the two re-reads the file
next run, which replaces those hours again: harmless)."""

from __future__ import annotations

import time

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from lake.bronze_index import BronzeFile

LEDGER_SCHEMA = pa.schema([
    ("path", pa.string()),
    ("size", pa.int64()),
    ("rows", pa.int64()),
    ("first_hour_ms", pa.int64()),
    ("last_hour_ms", pa.int64()),
    ("read_at_ms", pa.int64()),
])


def read_files(ledger_uri: str) -> set[tuple[str, int]]:
    """(path, size) of every Bronze file already read; a file rewritten in place counts as new."""
    try:
        table = DeltaTable(ledger_uri).to_pyarrow_table(columns=["path", "size"])
    except TableNotFoundError:
        return set()
    return set(zip(table.column("path").to_pylist(), table.column("size").to_pylist()))


def record(ledger_uri: str, files: list[BronzeFile], *, now_ms: int | None = None) -> None:
    if not files:
        return
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    rows = pa.table({
        "path": [f.path for f in files],
        "size": [f.size for f in files],
        "rows": [f.rows for f in files],
        "first_hour_ms": [f.first_hour_ms for f in files],
        "last_hour_ms": [f.last_hour_ms for f in files],
        "read_at_ms": [now_ms] * len(files),
    }, schema=LEDGER_SCHEMA)
    write_deltalake(ledger_uri, rows, mode="append")
