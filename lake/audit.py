"""The audit log of removals: one row per layer a retention run or an erasure touched, what it
removed (rows, files) and where, in a Delta table beside the lake's (appends work the same on a
local disk and on S3). It names the erasure's subject (trip or vehicle) and never its data."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

AUDIT_SCHEMA = pa.schema([
    ("run_id", pa.string()),
    ("at_ms", pa.int64()),
    ("action", pa.string()),  # retention | erasure
    ("subject", pa.string()),  # the erasure's subject (JSON) or the retention's cutoff
    ("layer", pa.string()),  # hot_store, vehicle_status, bronze, silver, silver_rejected, gold, ledger
    ("location", pa.string()),  # the table or folder
    ("rows", pa.int64()),  # null: the layer cannot delete rows itself (see note)
    ("files", pa.int64()),  # data files deleted or rewritten
    ("note", pa.string()),
    ("file_list", pa.string()),  # JSON array of the files deleted or rewritten
])


@dataclass(frozen=True)
class Removal:
    layer: str
    location: str
    rows: int | None
    files: tuple[str, ...] = field(default=())
    note: str = ""


def new_run_id() -> str:
    return uuid.uuid4().hex


def record(audit_uri: str, *, run_id: str, at_ms: int, action: str, subject: str, removals: list[Removal]) -> None:
    if not removals:
        return
    rows = [{
        "run_id": run_id, "at_ms": at_ms, "action": action, "subject": subject, "layer": r.layer,
        "location": r.location, "rows": r.rows, "files": len(r.files), "note": r.note, "file_list": json.dumps(list(r.files)),
    } for r in removals]
    write_deltalake(audit_uri, pa.Table.from_pylist(rows, schema=AUDIT_SCHEMA), mode="append")


def read(audit_uri: str) -> list[dict]:
    """Every audit row, oldest first."""
    try:
        table = DeltaTable(audit_uri).to_pyarrow_table()
    except TableNotFoundError:
        return []
    return sorted(table.to_pylist(), key=lambda row: (row["at_ms"], row["run_id"], row["layer"]))
