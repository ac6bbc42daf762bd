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


def read_index(ledger_uri: str) -> dict[tuple[str, int], BronzeFile]:
    """(path, size) → the file as it was read (rows, hours): what a listing need not read again."""
    try:
        table = DeltaTable(ledger_uri).to_pyarrow_table(columns=["path", "size", "rows", "first_hour_ms", "last_hour_ms"])
    except TableNotFoundError:
        return {}
    return {(row["path"], row["size"]): BronzeFile(**row) for row in table.to_pylist()}


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
