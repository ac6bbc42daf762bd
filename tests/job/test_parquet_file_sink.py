"""A PyFlink job writes Parquet through FileSink's bulk format (Maven-fetched flink-parquet + Hadoop
client) and pyarrow reads back exactly what went in."""

import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyflink.common import Row, Types

from connectors.parquet_sink import ParquetSchema, parquet_file_sink
from jobs.flink_env import create_env

pytestmark = pytest.mark.job

SCHEMA = ParquetSchema((
    ("vehicle_id", "bigint"), ("timestamp", "string"), ("latitude", "double"), ("longitude", "double"),
    ("battery_percent", "int"), ("charging", "boolean"), ("zone_id", "string"),
))


def expected_rows(count: int) -> list[dict]:
    return [
        {
            "vehicle_id": 10_000 + i % 37,
            "timestamp": f"2025-01-15T14:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
            "latitude": 50.1 + i * 1e-5,
            "longitude": 8.68 - i * 1e-5,
            "battery_percent": i % 101,
            "charging": i % 3 == 0,
            "zone_id": None if i % 11 == 0 else f"u0yj{i % 7}",  # nulls survive too
        }
        for i in range(count)
    ]


def test_parquet_written_by_flink_reads_back_exactly(tmp_path: Path, platform_config):
    rows = expected_rows(3_000)
    env = create_env(platform_config.flink)
    names = SCHEMA.names
    (
        env.from_collection([tuple(r[n] for n in names) for r in rows], type_info=Types.TUPLE(
            [Types.LONG(), Types.STRING(), Types.DOUBLE(), Types.DOUBLE(), Types.INT(), Types.BOOLEAN(), Types.STRING()]
        ))
        .map(lambda t: Row(*t), output_type=SCHEMA.type_info()).name("to row").uid("to-row")
        .sink_to(parquet_file_sink((tmp_path / "bronze").as_uri(), SCHEMA, part_prefix="bronze"))
        .name("parquet sink").uid("parquet-sink")
    )
    env.execute("parquet round trip")

    files = sorted((tmp_path / "bronze").rglob("*.parquet"))
    assert files, "no committed Parquet file"
    assert not [p for p in (tmp_path / "bronze").rglob("*") if p.is_file() and p.name.startswith(".")], "in-progress files left"
    for file in files:
        relative = file.relative_to(tmp_path / "bronze").as_posix()
        assert re.fullmatch(r"year=\d{4}/month=\d{2}/day=\d{2}/hour=\d{2}/bronze-.*\.parquet", relative), relative
        assert pq.ParquetFile(file).metadata.row_group(0).column(0).compression == "SNAPPY"

    table = pq.ParquetFile(files[0]).schema_arrow
    assert table.names == names
    read = [row for file in files for row in pq.read_table(file).to_pylist()]
    key = lambda r: (r["vehicle_id"], r["timestamp"])  # noqa: E731
    assert sorted(read, key=key) == sorted(rows, key=key)


EVENT_SCHEMA = ParquetSchema((("vehicle_id", "bigint"), ("event_time_ms", "bigint"), ("note", "string")))
HOUR_MS = 3_600_000
NO_TIME = -(2**63)


def event_hour_folder(event_time_ms: int | None) -> str:
    """The folder a row belongs in, computed here with datetime (not by the code under test)."""
    if event_time_ms is None:
        return "event_time=unknown"
    t = datetime.fromtimestamp(event_time_ms / 1000, tz=UTC)
    return f"year={t.year:04d}/month={t.month:02d}/day={t.day:02d}/hour={t.hour:02d}"


def test_event_time_partitions_put_each_row_in_its_own_event_hour(tmp_path: Path, platform_config):
    now_ms = int(time.time() * 1000)
    starts = [
        now_ms - 6 * HOUR_MS,  # a Kafka replay / late spool drain: hours older than processing time
        now_ms - 3 * 24 * HOUR_MS,  # days back
        int(datetime(2024, 12, 31, 23, 0, tzinfo=UTC).timestamp() * 1000),  # across year, month, day
        int(datetime(2025, 1, 15, 14, 0, tzinfo=UTC).timestamp() * 1000),
        int(datetime(2025, 1, 15, 14, 59, 59, tzinfo=UTC).timestamp() * 1000) + 999,  # last ms of an hour
        int(datetime(2025, 1, 15, 15, 0, tzinfo=UTC).timestamp() * 1000),  # first ms of the next
        int(datetime(2024, 2, 29, 7, 30, tzinfo=UTC).timestamp() * 1000),  # leap day
    ]
    rows = []
    for i in range(1_400):  # interleaved, so many hour buckets are open at once
        base = starts[i % len(starts)]
        rows.append({"vehicle_id": 20_000 + i, "event_time_ms": base + (i // len(starts)) * 37_000 % (2 * HOUR_MS), "note": f"r{i}"})
    rows.append({"vehicle_id": 99_999, "event_time_ms": None, "note": "no event time"})  # must not crash the job

    env = create_env(platform_config.flink)
    (
        # from_collection cannot hold a null LONG: the null comes from the map
        env.from_collection([(r["vehicle_id"], NO_TIME if r["event_time_ms"] is None else r["event_time_ms"], r["note"]) for r in rows],
                            type_info=Types.TUPLE([Types.LONG(), Types.LONG(), Types.STRING()]))
        .map(lambda t: Row(t[0], None if t[1] == NO_TIME else t[1], t[2]), output_type=EVENT_SCHEMA.type_info())
        .name("to row").uid("to-row")
        .sink_to(parquet_file_sink((tmp_path / "bronze").as_uri(), EVENT_SCHEMA, part_prefix="bronze",
                                   partition_by_event_time="event_time_ms"))
        .name("parquet sink").uid("parquet-sink")
    )
    env.execute("event-time partitions")

    base = tmp_path / "bronze"
    assert not [p for p in base.rglob("*") if p.is_file() and p.name.startswith(".")], "in-progress files left"
    found: dict[str, list[dict]] = {}
    for file in sorted(base.rglob("*.parquet")):
        folder = file.parent.relative_to(base).as_posix()
        assert file.name.startswith("bronze-"), file.name  # the prefix backfill finds its files by
        found.setdefault(folder, []).extend(pq.read_table(file).to_pylist())
    expected: dict[str, list[dict]] = {}
    for row in rows:
        expected.setdefault(event_hour_folder(row["event_time_ms"]), []).append(row)
    key = lambda r: r["vehicle_id"]  # noqa: E731
    assert sorted(found) == sorted(expected)
    assert {f: sorted(rs, key=key) for f, rs in found.items()} == {f: sorted(rs, key=key) for f, rs in expected.items()}
    replay_folder = event_hour_folder(now_ms - 6 * HOUR_MS)
    assert replay_folder != event_hour_folder(int(time.time() * 1000)) and replay_folder in found


def test_event_hour_bucket_ids_agree_with_datetime(platform_config):
    create_env(platform_config.flink)  # puts the fleet-flink jar on the gateway's classpath
    from pyflink.java_gateway import get_gateway

    assigner = get_gateway().jvm.io.github.fleettelemetry.flink.EventTimeHourBucketAssigner
    probes = [0, -1, 1, HOUR_MS - 1, HOUR_MS, -HOUR_MS - 1, 951_782_400_000, 253_402_300_799_999, -62_135_596_800_000]
    probes += [(i * 7_919_777_333) % 253_402_300_800_000 for i in range(500)]
    for ms in probes:
        assert assigner.hourBucket(ms) == event_hour_folder(ms), ms
