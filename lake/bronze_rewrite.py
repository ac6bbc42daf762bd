"""Remove rows from Bronze in place (retention, GDPR erasure): a file holding none of them stays
as it is, a file holding only them is deleted, any other is rewritten without them under the same
name (written hidden beside it, then moved over it), so the writer's part prefix still finds its
files and Silver's ledger sees a changed file (new size) and rebuilds the hours it holds."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from lake.bronze_index import BronzeFile, list_bronze


@dataclass(frozen=True)
class FileChange:
    path: str
    rows_removed: int
    deleted: bool  # False: rewritten without the rows


def null_safe(match: ds.Expression, *columns: str) -> ds.Expression:
    """`match`, false (not null) where any of `columns` is null: `~match` then keeps such rows
    (a filter drops rows its expression leaves null)."""
    for column in columns:
        match = match & ds.field(column).is_valid()
    return match


def remove_rows(bronze_uri: str, match: ds.Expression, *, may_hold=lambda f: True, dry_run: bool = False,
                known: dict | None = None) -> tuple[list[FileChange], list[str]]:
    """Remove the rows `match` (null-safe, see `null_safe`) selects from every Bronze file
    `may_hold(BronzeFile)` admits (a cheap footer test: hours); returns what changed. `known`:
    Silver's ledger index, so only the footers of files it has not read are opened. Also returns
    the files it could not read (named in the caller's audit row: not checked, not changed)."""
    filesystem, files = list_bronze(bronze_uri, known=known)
    changes, unreadable = [], [f.path for f in files if f.unreadable]
    for bronze_file in files:
        if bronze_file.unreadable or not may_hold(bronze_file):
            continue
        dataset = ds.dataset(bronze_file.path, filesystem=filesystem, format="parquet")
        matched = dataset.count_rows(filter=match)  # row groups whose statistics exclude it are skipped
        if matched == 0:
            continue
        changes.append(FileChange(bronze_file.path, matched, deleted=matched == bronze_file.rows))
        if dry_run:
            continue
        if matched == bronze_file.rows:
            filesystem.delete_file(bronze_file.path)
        else:
            _rewrite(bronze_file, dataset.to_table(filter=~match), filesystem)
    return changes, unreadable


def _rewrite(bronze_file: BronzeFile, kept, filesystem) -> None:
    folder, _, name = bronze_file.path.rpartition("/")
    hidden = f"{folder}/.{name}.rewrite-{uuid.uuid4().hex}"
    with filesystem.open_output_stream(hidden) as out:
        pq.write_table(kept, out, compression="snappy")
    filesystem.move(hidden, bronze_file.path)
