"""Bronze → Silver, by event hour: one hour's rows from every Bronze file that may hold it,
duplicates on (vehicle_id, timestamp) dropped (the earliest ingested copy stays), battery 0..100,
lat −90..90 and lon −180..180 checked, into a Delta table partitioned by date. A run replaces the
hours it builds (idempotent); rows failing a check go to a rejected table with the reason — none is
dropped unseen.

`ingestion_time` is when the platform ingested the event (its Kafka create time), not the run's
clock as in the seed's Glue job: a re-run then writes the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import pyarrow.dataset as ds
from deltalake import write_deltalake

from lake import ledger
from lake.engine import connect
from lake.bronze_index import HOUR_MS, BronzeFile, list_bronze

# Checks in order: a row is rejected with the first it fails (null fails).
CHECKS = (
    ("battery_out_of_range", "battery_percent BETWEEN 0 AND 100"),
    ("latitude_out_of_range", "latitude BETWEEN -90 AND 90"),
    ("longitude_out_of_range", "longitude BETWEEN -180 AND 180"),
)


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
    return datetime.fromtimestamp(hour_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H")


def _hour_predicate(hour_ms: int) -> str:
    moment = datetime.fromtimestamp(hour_ms / 1000, tz=timezone.utc)
    return f"date = '{moment:%Y-%m-%d}' AND hour = {moment.hour}"


def _valid_sql() -> str:
    return " AND ".join(f"coalesce({check}, false)" for _, check in CHECKS)


def _reason_sql() -> str:
    cases = " ".join(f"WHEN NOT coalesce({check}, false) THEN '{reason}'" for reason, check in CHECKS)
    return f"CASE {cases} END"


def build_hour(paths: LakePaths, hour_ms: int, files: list[BronzeFile], filesystem) -> HourResult:
    """Replace Silver's (and the rejected table's) rows of this event hour from these Bronze files."""
    holding = [f.path for f in files if hour_ms in f.hours()]
    if not holding:
        raise ValueError(f"no Bronze file holds hour {hour_label(hour_ms)}")
    con = connect()
    con.register("bronze", ds.dataset(holding, filesystem=filesystem, format="parquet"))
    con.execute(f"""
        CREATE TEMP VIEW hour_rows AS
        SELECT * FROM bronze
        WHERE event_time_ms >= {hour_ms} AND event_time_ms < {hour_ms + HOUR_MS}
    """)
    bronze_rows = con.sql("SELECT count(*) FROM hour_rows").fetchone()[0]
    extra = """,
            make_timestamptz(ingested_at_ms * 1000) AS ingestion_time,
            strftime(make_timestamptz(event_time_ms * 1000), '%Y-%m-%d') AS date,
            hour(make_timestamptz(event_time_ms * 1000))::INTEGER AS hour"""
    silver = con.sql(f"""
        SELECT * EXCLUDE (copy){extra} FROM (
            SELECT *, row_number() OVER (
                PARTITION BY vehicle_id, "timestamp" ORDER BY ingested_at_ms, event_time_ms) AS copy
            FROM hour_rows WHERE {_valid_sql()})
        WHERE copy = 1
        ORDER BY vehicle_id, event_time_ms
    """).fetch_arrow_table()
    rejected = con.sql(f"""
        SELECT *, {_reason_sql()} AS reason{extra}
        FROM hour_rows WHERE NOT ({_valid_sql()})
    """).fetch_arrow_table()
    predicate = _hour_predicate(hour_ms)
    write_deltalake(paths.silver, silver, mode="overwrite", predicate=predicate, partition_by=["date"])
    write_deltalake(paths.silver_rejected, rejected, mode="overwrite", predicate=predicate, partition_by=["date"])
    return HourResult(hour_ms, bronze_rows, silver.num_rows, bronze_rows - rejected.num_rows - silver.num_rows,
                      rejected.num_rows)


def pending_hours(paths: LakePaths) -> tuple[list[int], list[BronzeFile], list[BronzeFile], object]:
    """(hours to build, files not read yet, every file, filesystem): an hour is due when a file
    holding it has not been read (a late file re-opens an hour already built)."""
    filesystem, files = list_bronze(paths.bronze)
    seen = ledger.read_files(paths.ledger)
    new = [f for f in files if (f.path, f.size) not in seen]
    hours = sorted({hour for f in new for hour in f.hours()})
    return hours, new, files, filesystem


def update(paths: LakePaths, *, progress: Callable[[HourResult], None] = lambda _: None) -> list[HourResult]:
    """Build every hour a not-yet-read Bronze file holds, then record those files as read."""
    hours, new, files, filesystem = pending_hours(paths)
    results = []
    for hour_ms in hours:
        results.append(build_hour(paths, hour_ms, files, filesystem))
        progress(results[-1])
    ledger.record(paths.ledger, new)
    return results


def rebuild(paths: LakePaths, hour_ms: int) -> HourResult:
    """Re-run one hour from everything Bronze holds for it (e.g. after a backfill)."""
    filesystem, files = list_bronze(paths.bronze)
    return build_hour(paths, hour_ms - hour_ms % HOUR_MS, files, filesystem)
