"""What every lake step uses: the DuckDB connection (UTC, so dates and hours are the events' own),
and a writer of one partition's Parquet file committed to a Delta table by delta-rs.

Why not `deltalake.write_deltalake`: on an hour of Silver (4.2M rows × 28 columns) its writer took
~6 CPU s whatever the codec, pyarrow's ~2 (`telemetry bench lake`). So pyarrow writes the file
into the table's folder and delta-rs commits it: the add action carries the partition values and
the statistics delta-rs's own writer records (numRecords, min/max, nullCount, read from the file's
footer), so delta-rs, Spark and DuckDB prune files on them as before."""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions
from pyarrow import fs

# Parquet encodings per column, measured on simulator data (CPU s to write 4.5M values / MB):
# time columns DELTA_BINARY_PACKED (event_time_ms 0.05 s / 0.9 MB; dictionary 0.26 s / 16.5 MB),
# coordinates plain (0.05-0.07 s / 35 MB; dictionary 0.23-0.29 s / 13-23 MB, a fallback after the
# dictionary page fills; BYTE_STREAM_SPLIT 0.05 s / 24 MB, but Spark 3.5's reader refuses it), the
# event's text time plain (0.21 s / 17 MB; DELTA_BYTE_ARRAY 0.41 s / 3 MB). Everything else has
# few distinct values an hour: dictionary.
_DELTA_COLUMNS = ("event_time_ms", "ingested_at_ms", "ingestion_time")
_PLAIN_COLUMNS = ("timestamp", "latitude", "longitude")


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


def _filesystem(table_uri: str) -> tuple[fs.FileSystem, str]:
    if "://" not in table_uri:
        return fs.LocalFileSystem(), os.path.abspath(table_uri)
    return fs.FileSystem.from_uri(table_uri)


def _plain_type(field: pa.Field) -> pa.Field:
    return pa.field(field.name, field.type.value_type) if pa.types.is_dictionary(field.type) else field


def _write_options(schema: pa.Schema) -> dict:
    names = set(schema.names)
    encodings = {n: "DELTA_BINARY_PACKED" for n in _DELTA_COLUMNS if n in names}
    plain = set(encodings) | {n for n in _PLAIN_COLUMNS if n in names}
    return {"use_dictionary": [n for n in schema.names if n not in plain], "column_encoding": encodings or None,
            "compression": "snappy", "store_schema": False, "write_statistics": True}


def _stat(value, field: pa.Field, upper: bool):
    kind = field.type
    if pa.types.is_timestamp(kind):  # raw micros → the ISO text delta-rs writes (millis, Z)
        millis = math.ceil(value / 1000) if upper else math.floor(value / 1000)
        return datetime.fromtimestamp(millis / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.decode() if isinstance(value, bytes) else value


def _stats(metadata: pq.FileMetaData, schema: pa.Schema) -> str:
    minimum, maximum, nulls = {}, {}, {}
    for index, field in enumerate(schema):
        groups = [metadata.row_group(g).column(index).statistics for g in range(metadata.num_row_groups)]
        if any(s is None for s in groups):
            continue
        nulls[field.name] = sum(s.null_count for s in groups)
        ranged = [s for s in groups if s.has_min_max]
        if not ranged or len(ranged) < sum(1 for g in range(metadata.num_row_groups)
                                           if metadata.row_group(g).num_rows > metadata.row_group(g).column(index).statistics.null_count):
            continue  # a row group with values but no min/max: no range for the file
        raw = pa.types.is_timestamp(field.type)
        low = min(s.min_raw if raw else s.min for s in ranged)
        high = max(s.max_raw if raw else s.max for s in ranged)
        low, high = _stat(low, field, False), _stat(high, field, True)
        if low is not None and high is not None:
            minimum[field.name], maximum[field.name] = low, high
    return json.dumps({"numRecords": metadata.num_rows, "minValues": minimum, "maxValues": maximum, "nullCount": nulls})


def replace_partition_slice(table_uri: str, partition: tuple[str, str], column: tuple[str, int],
                            parts: pa.Table | Iterable[pa.Table], *, append: bool = False) -> int:
    """Make `parts` the table's rows where partition column = value and `column` = number (e.g.
    date = '2026-01-01' AND hour = 3), in one commit: a file per non-empty part in, the slice's
    previous files out. A part has every column but the partition one, which goes in the table's
    schema just before `column`; parts may come one at a time (an hour built in vehicle slices) and
    must share a schema. `append`: the slice's files stay, the parts are added to them. Returns the
    rows written."""
    part_name, part_value = partition
    name, number = column
    filesystem, root = _filesystem(table_uri)
    try:
        table = DeltaTable(table_uri)
    except TableNotFoundError:
        table = None
    removes = [] if table is None or append else _slice_files(table, part_name, part_value, name, number)
    now_ms = int(time.time() * 1000)
    adds, file_schema, written = [], None, 0
    for rows in [parts] if isinstance(parts, pa.Table) else parts:
        if file_schema is None:
            file_schema = pa.schema([_plain_type(f) for f in rows.schema])
            if table is not None:  # before a file is written
                _same_columns(table, file_schema.insert(file_schema.get_field_index(name), pa.field(part_name, pa.string())))
        if not rows.num_rows:
            continue
        relative = f"{part_name}={part_value}/part-{number:05d}-{uuid.uuid4()}.snappy.parquet"
        path = f"{root}/{relative}"
        filesystem.create_dir(f"{root}/{part_name}={part_value}", recursive=True)
        # Dictionary columns are written as such (no re-encoding); without the Arrow schema in the
        # footer, readers see plain strings.
        with pq.ParquetWriter(path, rows.schema, filesystem=filesystem, **_write_options(rows.schema)) as writer:
            writer.write_table(rows)
        metadata = pq.ParquetFile(path, filesystem=filesystem).metadata
        adds.append(AddAction(relative, filesystem.get_file_info(path).size, {part_name: part_value}, now_ms, True,
                              _stats(metadata, file_schema)))
        written += rows.num_rows
    if file_schema is None:
        raise ValueError("replace_partition_slice: no part given (an empty table still says the schema)")
    table_schema = file_schema.insert(file_schema.get_field_index(name), pa.field(part_name, pa.string()))
    try:
        if table is None:
            create_table_with_add_actions(table_uri, DeltaSchema.from_arrow(table_schema), adds, mode="error", partition_by=[part_name])
        else:
            removals = [RemoveAction(path, True, now_ms, size, {part_name: part_value}) for path, size in removes]
            table.create_write_transaction(adds + removals, mode="append", schema=table_schema, partition_by=[part_name])
    except Exception:
        # Not in the log, so no vacuum would ever find them (a commit lost to a concurrent one, say):
        # they must not stay in the table's folder holding rows nobody sees (or an erasure missed).
        for add in adds:
            filesystem.delete_file(f"{root}/{add.path}")
        raise
    return written


def _same_columns(table: DeltaTable, schema: pa.Schema) -> None:
    """delta-rs commits files with other columns than the table's without a word (measured: the
    table's schema stays as it was, the new column is invisible to every reader); refuse instead."""
    have = [field.name for field in table.schema().fields]
    if sorted(have) != sorted(schema.names):
        raise ValueError(f"{table.table_uri}: the rows' columns differ from the table's (new: {sorted(set(schema.names) - set(have))}, "
                         f"missing: {sorted(set(have) - set(schema.names))}); a schema change needs a migration of the table first")


def _slice_files(table: DeltaTable, part_name: str, part_value: str, name: str, number: int) -> list[tuple[str, int]]:
    """(path, size) of the files holding only the slice; a file holding it and other rows too (e.g.
    merged by a compaction) is first rewritten by delta-rs without the slice."""
    def files():
        actions = pa.table(table.get_add_actions(flatten=True))
        keys = actions.schema.names
        found = []
        for row in actions.to_pylist():
            if row.get(f"partition.{part_name}") != part_value:
                continue
            low, high = (row.get(f"min.{name}") if f"min.{name}" in keys else None,
                         row.get(f"max.{name}") if f"max.{name}" in keys else None)
            found.append((row["path"], row["size_bytes"], low, high))
        return found

    current = files()
    if any(low is None or high is None or (low <= number <= high and low != high) for _, _, low, high in current):
        table.delete(f"{part_name} = '{part_value}' AND {name} = {number}")
        current = files()
    return [(path, size) for path, size, low, high in current if low == high == number]
