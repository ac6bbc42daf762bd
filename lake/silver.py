"""Bronze → Silver, by event hour: one hour's rows from every Bronze file that may hold it,
duplicates on (vehicle_id, timestamp) dropped (the earliest ingested copy stays), battery 0..100,
lat −90..90 and lon −180..180 checked, into a Delta table partitioned by date. A run replaces the
hours it builds (idempotent); rows failing a check go to a rejected table with the reason — none is
dropped unseen.

`ingestion_time` is when the platform ingested the event (its Kafka create time), not the run's
clock as in the seed's Glue job: a re-run then writes the same rows.

How an hour is built (`telemetry bench lake` measures it):
- Arrow reads each Bronze file that may hold the hour once, low-cardinality strings kept
  dictionary-encoded; a file whose footer puts it wholly inside the hour is not filtered. The
  checks are vectorised masks over that one read: valid and rejected rows come from it.
- Duplicates: every copy of a (vehicle_id, timestamp) has the same event_time_ms (Bronze's
  event_time_ms is a function of its timestamp text: `udfs.telemetry_schema.parse_timestamp_ms`),
  so a row whose (vehicle_id, event_time_ms) is unique among the hour's valid rows is unique on
  (vehicle_id, timestamp) too, and is kept. The converse does not hold (the schema takes any
  ISO-8601 form: '…T10:00:00Z' and '…T12:00:00+02:00' are one instant, two texts), so only the
  rows sharing (vehicle_id, event_time_ms) go through the exact rule — per (vehicle_id, timestamp)
  the lowest (ingested_at_ms, event_time_ms), then Bronze order. The shared ones are found with one
  integer key, time-major: Bronze files are in event-time order, so its (stable) sort is nearly free.
- date and hour are the hour's constants; ingestion_time is a cast of ingested_at_ms. Rows keep
  Bronze's order (event time within a file): no sort.
- pyarrow writes the hour's Parquet file into the table's date folder (`lake.engine`: per-column
  encodings chosen by measurement) and delta-rs commits it in one transaction with the removal of
  the hour's previous files — an add action with partition values and statistics from the file's
  footer, as delta-rs's own writer records them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lake import ledger
from lake.bronze_index import HOUR_MS, BronzeFile, list_bronze
from lake.engine import connect, replace_partition_slice

# Checks in order, bounds inclusive: a row is rejected with the first it fails (null fails).
_RULES = (
    ("battery_out_of_range", "battery_percent", 0, 100),
    ("latitude_out_of_range", "latitude", -90, 90),
    ("longitude_out_of_range", "longitude", -180, 180),
)
# The same checks as SQL (the benchmark's plain peer runs them so).
CHECKS = tuple((reason, f"{column} BETWEEN {low} AND {high}") for reason, column, low, high in _RULES)
# Strings with few distinct values an hour: read as dictionaries (no per-row string copies).
_DICTIONARY_STRINGS = ("trip_id", "error_codes", "zone_id", "vehicle_type")


@dataclass(frozen=True)
class LakePaths:
    bronze: str
    silver: str
    silver_rejected: str
    ledger: str


@dataclass(frozen=True)
class HourResult:
    hour_ms: int
    bronze_rows: int  # rows of this hour in Bronze, duplicates included
    silver_rows: int
    duplicates: int
    rejected: int


def hour_label(hour_ms: int) -> str:
    return datetime.fromtimestamp(hour_ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H")


def _read_hour(holding: list[BronzeFile], hour_ms: int, filesystem) -> pa.Table:
    """Every row of the hour from these files, in their order (files by path, rows as written)."""
    parts = []
    for file in holding:
        with filesystem.open_input_file(file.path) as handle:
            names = pq.ParquetFile(handle).schema_arrow.names
            handle.seek(0)
            table = pq.read_table(handle, read_dictionary=[n for n in _DICTIONARY_STRINGS if n in names])
        if not (file.first_hour_ms == file.last_hour_ms == hour_ms):  # straddles the hour: filter
            times = table.column("event_time_ms")
            table = table.filter(pc.and_(pc.greater_equal(times, hour_ms), pc.less(times, hour_ms + HOUR_MS)))
        parts.append(table)
    table = pa.concat_tables(parts, promote_options="permissive")
    return table.unify_dictionaries()


def _inside(table: pa.Table, column: str, low: float, high: float) -> pa.ChunkedArray:
    values = table.column(column)
    return pc.fill_null(pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high)), False)


def _valid_mask(table: pa.Table) -> np.ndarray:
    valid = np.ones(table.num_rows, dtype=bool)
    for _, column, low, high in _RULES:
        valid &= _inside(table, column, low, high).to_numpy(zero_copy_only=False)
    return valid


def _reasons(table: pa.Table) -> pa.Array:
    """The first check each row fails (rows that fail none get null)."""
    reasons = pa.nulls(table.num_rows, pa.string())
    for reason, column, low, high in reversed(_RULES):
        reasons = pc.if_else(_inside(table, column, low, high), reasons, pa.scalar(reason))
    return reasons


def _first_copies(table: pa.Table, hour_ms: int, valid: np.ndarray) -> np.ndarray:
    """Which rows to keep: of the valid ones, one per (vehicle_id, timestamp), the earliest ingested."""
    rows = np.flatnonzero(valid)
    vehicles, times = table.column("vehicle_id"), table.column("event_time_ms")
    shared = np.zeros(len(rows), dtype=bool)
    if len(rows) and vehicles.null_count == 0:
        vehicle = vehicles.to_numpy()[rows]
        offset = times.to_numpy()[rows] - hour_ms  # 0 ≤ offset < HOUR_MS: the rows are the hour's
        low, high = int(vehicle.min()), int(vehicle.max())
        if (high - low + 1) * HOUR_MS < 2**62:
            key = offset * (high - low + 1) + (vehicle - low)
        else:  # ids too far apart for one int64 key: number the vehicles first
            codes = pc.dictionary_encode(vehicles).combine_chunks().indices.to_numpy()[rows].astype(np.int64)
            key = offset * (int(codes.max()) + 1) + codes
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        same = ordered[1:] == ordered[:-1]
        shared[order[1:][same]] = True
        shared[order[:-1][same]] = True
    elif len(rows):
        shared[:] = True  # a null vehicle_id: let the exact rule sort it out
    keep = valid.copy()
    candidates = rows[shared]
    keep[candidates] = False
    if len(candidates):
        subset = pa.table({
            "vehicle_id": _take(vehicles, candidates), "timestamp": _take(table.column("timestamp"), candidates),
            "ingested_at_ms": _take(table.column("ingested_at_ms"), candidates), "event_time_ms": _take(times, candidates),
            "position": candidates,
        })
        con = connect()
        con.execute("SET threads = 1")  # a few thousand rows: threads cost more than they bring
        con.register("candidates", subset)
        first = con.sql("""
            SELECT position FROM candidates
            QUALIFY row_number() OVER (PARTITION BY vehicle_id, "timestamp"
                                       ORDER BY ingested_at_ms, event_time_ms, position) = 1
        """).fetchnumpy()["position"]
        keep[first] = True
    return keep


def _one_copy(bad: pa.Table) -> pa.Table:
    """Rejected rows once each: the same Bronze row read twice (a compaction's merged file beside
    its inputs until they go) is one row (same vehicle, timestamp and ingest time)."""
    keys = zip(*(bad.column(c).to_pylist() for c in ("vehicle_id", "timestamp", "ingested_at_ms")))
    first: dict[tuple, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    return bad if len(first) == bad.num_rows else bad.take(pa.array(sorted(first.values())))


def _take(column: pa.ChunkedArray, positions: np.ndarray) -> pa.Array:
    """column[positions] for sorted positions, chunk by chunk (a take on the whole chunked array
    first joins its chunks: a copy of the column)."""
    bounds = np.cumsum([0] + [len(chunk) for chunk in column.chunks])
    cuts = np.searchsorted(positions, bounds)
    parts = [chunk.take(pa.array(positions[cuts[i]:cuts[i + 1]] - bounds[i]))
             for i, chunk in enumerate(column.chunks) if cuts[i + 1] > cuts[i]]
    return pa.concat_arrays(parts) if parts else pa.array([], column.type)


def _with_hour_columns(table: pa.Table, hour_ms: int) -> pa.Table:
    """+ ingestion_time and hour (date is the partition: in the path, not in the file)."""
    moment = datetime.fromtimestamp(hour_ms / 1000, tz=UTC)
    ingested = pc.multiply(table.column("ingested_at_ms"), 1000).cast(pa.timestamp("us", tz="UTC"))
    return (table.append_column("ingestion_time", ingested)
            .append_column("hour", pa.array(np.full(table.num_rows, moment.hour, np.int32))))


# An hour is built in vehicle slices above this many rows: Arrow holds a slice whole, and the seed's
# 50K vehicles make 180M rows an hour. Measured on the bench's 4.9M-row hour: peak RSS 2.08 GB whole,
# 0.69 GB in 1M-row slices, the same CPU (6.6-6.9 s either way); a slice is also one Silver file.
MAX_SLICE_ROWS = 4_000_000


def _hour_schema(holding: list[BronzeFile], filesystem) -> pa.Schema:
    """Every holding file's columns (a later Bronze schema may add some), strings that `_read_hour`
    reads as dictionaries typed so."""
    schemas = []
    for file in holding:
        with filesystem.open_input_file(file.path) as handle:
            schemas.append(pq.ParquetFile(handle).schema_arrow)
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    return pa.schema([pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in _DICTIONARY_STRINGS else f
                      for f in schema])


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.equals(schema):
        return table
    return pa.table([table.column(f.name).cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
                     for f in schema], schema=schema)


def _hour_slices(holding: list[BronzeFile], hour_ms: int, filesystem, max_rows: int) -> Iterator[pa.Table]:
    """The hour's rows, whole or, above `max_rows`, in slices by vehicle_id modulo the slice count
    (dedup is per vehicle, so a slice is built alone). Slicing reads each file once, sorts its rows
    by slice and spills them to an uncompressed Arrow stream per slice, read back memory-mapped."""
    estimate = sum(f.rows for f in holding)  # the files' rows: at least the hour's
    if estimate <= max_rows:
        yield _read_hour(holding, hour_ms, filesystem)
        return
    count = -(-estimate // max_rows)
    schema = _hour_schema(holding, filesystem)
    with tempfile.TemporaryDirectory(prefix="silver-slices-") as spill:
        paths = [os.path.join(spill, f"slice-{i}.arrows") for i in range(count)]
        writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}
        try:
            for file in holding:
                table = _conform(_read_hour([file], hour_ms, filesystem), schema)
                slot = pc.fill_null(table.column("vehicle_id"), 0).to_numpy() % count
                order = np.argsort(slot, kind="stable")
                table, cuts = table.take(pa.array(order)), np.searchsorted(slot[order], np.arange(count + 1))
                for i in range(count):
                    if cuts[i + 1] > cuts[i]:
                        if i not in writers:
                            writers[i] = pa.ipc.new_stream(paths[i], schema)
                        writers[i].write_table(table.slice(cuts[i], cuts[i + 1] - cuts[i]))
        finally:
            for writer in writers.values():
                writer.close()
        for i in range(count):
            if i in writers:
                with pa.memory_map(paths[i]) as source:
                    yield pa.ipc.open_stream(source).read_all().unify_dictionaries()
            else:
                yield schema.empty_table()


def _date_hour(hour_ms: int) -> tuple[str, int]:
    moment = datetime.fromtimestamp(hour_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d"), moment.hour


def _split(hour_rows: pa.Table, hour_ms: int) -> tuple[pa.Table, pa.Table]:
    """(Silver's rows: valid, one copy each; rejected rows, once each, with their reason)."""
    valid = _valid_mask(hour_rows)
    keep = _first_copies(hour_rows, hour_ms, valid)
    bad = _one_copy(hour_rows.filter(pa.array(~valid)))
    return (hour_rows.filter(pa.array(keep)) if not keep.all() else hour_rows), bad.append_column("reason", _reasons(bad))


def build_hour(paths: LakePaths, hour_ms: int, files: list[BronzeFile], filesystem, *,
               max_slice_rows: int = MAX_SLICE_ROWS) -> HourResult:
    """Replace Silver's (and the rejected table's) rows of this event hour from these Bronze files."""
    holding = [f for f in files if hour_ms in f.hours()]
    if not holding:
        raise ValueError(f"no Bronze file holds hour {hour_label(hour_ms)}")
    bronze_rows, rejected_parts = [], []

    def silver_parts() -> Iterator[pa.Table]:
        for hour_rows in _hour_slices(holding, hour_ms, filesystem, max_slice_rows):
            bronze_rows.append(hour_rows.num_rows)
            kept, bad = _split(hour_rows, hour_ms)
            rejected_parts.append(_with_hour_columns(bad, hour_ms))
            yield _with_hour_columns(kept, hour_ms)

    date, hour = _date_hour(hour_ms)
    silver_rows = replace_partition_slice(paths.silver, ("date", date), ("hour", hour), silver_parts())
    rejected = pa.concat_tables(rejected_parts).unify_dictionaries()
    replace_partition_slice(paths.silver_rejected, ("date", date), ("hour", hour), rejected)
    total = sum(bronze_rows)
    return HourResult(hour_ms, total, silver_rows, total - rejected.num_rows - silver_rows, rejected.num_rows)


def _existing_keys(table_uri: str, date: str, hour: int, vehicles: pa.Array, columns: list[str]) -> set[tuple]:
    """Keys (`columns`) of the table's rows of this hour for these vehicles."""
    try:
        dataset = DeltaTable(table_uri).to_pyarrow_dataset()
    except TableNotFoundError:
        return set()
    found = dataset.to_table(columns=columns, filter=(ds.field("date") == date) & (ds.field("hour") == hour)
                             & ds.field("vehicle_id").isin(vehicles))
    return set(zip(*(found.column(c).to_pylist() for c in columns)))


def _not_in(table: pa.Table, keys: set[tuple], columns: list[str]) -> pa.Table:
    if not keys or not table.num_rows:
        return table
    fresh = [key not in keys for key in zip(*(table.column(c).to_pylist() for c in columns))]
    return table.filter(pa.array(fresh))


def append_hour(paths: LakePaths, hour_ms: int, new: list[BronzeFile], filesystem) -> HourResult:
    """Add the rows of these (late) files to an hour Bronze no longer holds whole (its other files
    expired): the hour cannot be rebuilt from Bronze without losing the rows Silver keeps longer,
    so the new rows go in beside them — deduplicated among themselves and against Silver's rows
    of the hour (an existing row was ingested earlier: it stays), rejected rows likewise."""
    holding = [f for f in new if hour_ms in f.hours()]
    date, hour = _date_hour(hour_ms)
    hour_rows = _read_hour(holding, hour_ms, filesystem)
    kept, bad = _split(hour_rows, hour_ms)
    vehicles = pc.unique(hour_rows.column("vehicle_id"))
    key, reject_key = ["vehicle_id", "timestamp"], ["vehicle_id", "timestamp", "ingested_at_ms"]
    fresh = _not_in(kept, _existing_keys(paths.silver, date, hour, vehicles, key), key)
    rejected = _with_hour_columns(_not_in(bad, _existing_keys(paths.silver_rejected, date, hour, vehicles, reject_key), reject_key), hour_ms)
    silver_rows = replace_partition_slice(paths.silver, ("date", date), ("hour", hour), _with_hour_columns(fresh, hour_ms), append=True)
    replace_partition_slice(paths.silver_rejected, ("date", date), ("hour", hour), rejected, append=True)
    return HourResult(hour_ms, hour_rows.num_rows, silver_rows, hour_rows.num_rows - silver_rows - rejected.num_rows, rejected.num_rows)


def pending_hours(paths: LakePaths) -> tuple[list[int], list[BronzeFile], list[BronzeFile], object]:
    """(hours to build, files not read yet, every file, filesystem): an hour is due when a file
    holding it has not been read (a late file re-opens an hour already built)."""
    seen = ledger.read_index(paths.ledger)
    filesystem, files = list_bronze(paths.bronze, known=seen)
    new = [f for f in files if (f.path, f.size) not in seen]
    hours = sorted({hour for f in new for hour in f.hours()})
    return hours, new, files, filesystem


def update(paths: LakePaths, *, complete_from_ms: int | None = None, pending=None,
           progress: Callable[[HourResult], None] = lambda _: None) -> list[HourResult]:
    """Build every hour a not-yet-read Bronze file holds, then record those files as read. Hours
    before `complete_from_ms` (Bronze's retention cutoff: older hours are no longer whole in
    Bronze) get the new files' rows added (`append_hour`) instead of being rebuilt. `pending`: what
    `pending_hours` returned just before, so the listing (and its footer reads) is not done twice."""
    hours, new, files, filesystem = pending or pending_hours(paths)
    results = []
    for hour_ms in hours:
        if complete_from_ms is not None and hour_ms < complete_from_ms:
            results.append(append_hour(paths, hour_ms, new, filesystem))
        else:
            results.append(build_hour(paths, hour_ms, files, filesystem))
        progress(results[-1])
    ledger.record(paths.ledger, [f for f in new if f.unreadable is None])  # a broken file is retried next run
    return results


def rebuild(paths: LakePaths, hour_ms: int, *, complete_from_ms: int | None = None) -> HourResult:
    """Re-run one hour from everything Bronze holds for it (e.g. after a backfill). An hour before
    `complete_from_ms` is refused: Bronze no longer holds all of it."""
    hour_ms -= hour_ms % HOUR_MS
    if complete_from_ms is not None and hour_ms < complete_from_ms:
        raise ValueError(f"hour {hour_label(hour_ms)} is older than Bronze's retention: Bronze no longer holds all of it, "
                         "and a rebuild would drop the rows only Silver still keeps")
    filesystem, files = list_bronze(paths.bronze, known=ledger.read_index(paths.ledger))
    return build_hour(paths, hour_ms, files, filesystem)
