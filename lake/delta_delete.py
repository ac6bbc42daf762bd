"""Delete rows from a Delta table and remove the data files that held them (vacuum), so removed
rows are gone from storage, not only from the table's latest version."""

from __future__ import annotations

from dataclasses import dataclass

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pyarrow import fs

from lake.engine import connect


@dataclass(frozen=True)
class DeltaRemoval:
    rows: int
    files: tuple[str, ...]  # data files the vacuum deleted (those of earlier versions too)


def count_rows(table_uri: str, predicate: str) -> int:
    try:
        dataset = DeltaTable(table_uri).to_pyarrow_dataset()
    except TableNotFoundError:
        return 0
    con = connect()
    con.register("t", dataset)
    return con.sql(f"SELECT count(*) FROM t WHERE {predicate}").fetchone()[0]


def delete_rows(table_uri: str, predicate: str, *, dry_run: bool = False) -> DeltaRemoval | None:
    """None if there is no such table. `predicate` is SQL both DataFusion (delta-rs) and DuckDB read.

    The vacuum (`vacuum`) keeps no history (retention 0 h, forced): erased rows must leave the storage, not
    wait out Delta's 7-day default. It runs in delta-rs's lite mode — only files a commit removed,
    never untracked files — so a writer's not-yet-committed files are safe; a reader still on an
    older snapshot may find its files gone and must re-read."""
    try:
        table = DeltaTable(table_uri)
    except TableNotFoundError:
        return None
    if dry_run:
        return DeltaRemoval(count_rows(table_uri, predicate), ())
    metrics = table.delete(predicate)
    return DeltaRemoval(int(metrics.get("num_deleted_rows") or 0), vacuum(table_uri))


def vacuum(table_uri: str) -> tuple[str, ...]:
    """Delete the data files only earlier versions hold; returns those that existed (delta-rs lists
    a file again on later runs while its tombstone stays in the log, by then deleted)."""
    table = DeltaTable(table_uri)
    candidates = table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=True)
    filesystem, base = fs.FileSystem.from_uri(table_uri)
    paths = [_inside(c, base) for c in candidates]
    present = [p for p, info in zip(paths, filesystem.get_file_info(paths)) if info.type == fs.FileType.File] if paths else []
    if present:
        table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    return tuple(sorted(present))


def _inside(listed: str, base: str) -> str:
    """A path vacuum listed (relative to the table, absolute, or a URI) as a filesystem path."""
    if "://" in listed:
        return fs.FileSystem.from_uri(listed)[1]
    return listed if listed.startswith("/") else f"{base.rstrip('/')}/{listed}"
