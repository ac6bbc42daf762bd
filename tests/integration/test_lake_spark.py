"""Apache Spark + Delta Lake read the Silver, rejected and Gold tables delta-rs wrote, and get the
same rows: every column, types mapped as a reader expects, the latest snapshot of a table that has
been partly overwritten (remove actions). One Spark session reads all three (lake.spark_check; its
side venv and the Delta jars are fetched once, from PyPI and Maven Central)."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lake import gold, silver
from lake.bronze_index import HOUR_MS
from lake.spark_check import read_with_spark, spark_report
from tests.unit.test_lake_silver import HOUR0, _row, _write, lake_paths

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]  # a cold cache installs Spark first

DAY_MS = 24 * HOUR_MS


def _bronze_rows(rng: random.Random, vehicles, start_ms: int, count: int, step_ms: int) -> list[dict]:
    rows = []
    for vehicle in vehicles:
        for i in range(count):
            event = start_ms + i * step_ms + vehicle
            row = _row(rng, vehicle, event, event + 40)
            if i % 3:  # columns _row leaves null, set on some rows: nulls and values mix in one column
                row.update(altitude=rng.uniform(20, 80), heading=rng.uniform(0, 360), locked=i % 2 == 0,
                           battery_charging=False, odometer_km=rng.uniform(0, 900), error_codes="E1,E7" if i % 7 == 0 else "")
            rows.append(row)
    return rows


def _instant_types(schema: pa.Schema) -> dict[str, pa.DataType]:
    """Column → type, with the differences that are encodings, not meaning: string flavours are
    strings, and a UTC-adjusted timestamp is an instant whatever its unit or zone name."""
    out = {}
    for field in schema:
        kind = field.type
        if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
            kind = pa.string()
        elif pa.types.is_timestamp(kind) and kind.tz is not None:
            kind = pa.timestamp("us", "UTC")
        out[field.name] = kind
    return out


def _rows(table: pa.Table, columns: list[str], types: dict[str, pa.DataType]) -> Counter:
    table = table.select(columns).cast(pa.schema([(name, types[name]) for name in columns]))
    return Counter(tuple(row[name] for name in columns) for row in table.to_pylist())


def _files_on_disk(uri: str) -> set[str]:
    return {str(p) for p in Path(uri).rglob("*.parquet")}


def test_spark_reads_silver_rejected_and_gold_as_delta_rs_does(tmp_path):
    lake = lake_paths(tmp_path)
    gold_uri = str(tmp_path / "gold")
    bronze = tmp_path / "bronze"
    rng = random.Random(23)
    hour0 = _bronze_rows(rng, range(1, 6), HOUR0, 120, 30_000)
    hour1 = _bronze_rows(rng, range(1, 6), HOUR0 + HOUR_MS, 120, 30_000)
    resent = [dict(r, ingested_at_ms=r["ingested_at_ms"] + 9_000) for r in hour0[::5]]
    bad = [dict(hour1[1], timestamp="bad-battery", battery_percent=-3.0), dict(hour1[2], timestamp="bad-lon", longitude=181.0)]
    next_day = _bronze_rows(rng, (1, 2), HOUR0 + DAY_MS, 20, 60_000)
    _write(bronze / "hour=00", "part-0.parquet", hour0)
    _write(bronze / "hour=01", "part-1.parquet", hour1 + resent + bad)
    _write(bronze / "hour=24", "part-24.parquet", next_day)
    silver.update(lake)
    for date in ("2026-01-01", "2026-01-02"):
        gold.build_day(lake.silver, gold_uri, date)
    # A late file for hour 0: Silver's hour 0 and Gold's first date are overwritten (remove actions).
    late = _bronze_rows(rng, (42,), HOUR0, 10, 1_000)
    _write(bronze / "hour=03", "part-late.parquet", late)
    assert [r.hour_ms for r in silver.update(lake)] == [HOUR0]
    gold.build_day(lake.silver, gold_uri, "2026-01-01")

    tables = {"silver": lake.silver, "silver_rejected": lake.silver_rejected, "gold": gold_uri}
    for uri in (lake.silver, gold_uri):  # files a reader must skip: it has to follow the log, not list files
        assert _files_on_disk(uri) > set(DeltaTable(uri).file_uris())
    got = read_with_spark(tables, tmp_path / "spark")
    report = spark_report(tmp_path / "spark")
    assert report["spark_version"].startswith("3.5.") and report["delta_spark_version"].startswith("3.3.")

    for name, uri in tables.items():
        table = DeltaTable(uri)
        expected = table.to_pyarrow_table()
        seen = report["tables"][name]
        assert seen["version"] == table.version(), f"{name}: Spark read another snapshot"
        protocol = table.protocol()
        assert (seen["min_reader_version"], seen["min_writer_version"]) == (protocol.min_reader_version, protocol.min_writer_version)
        assert seen["partition_columns"] == ["date"]
        types = _instant_types(expected.schema)
        assert _instant_types(got[name].schema) == types, f"{name}: columns or types differ"
        columns = expected.column_names
        assert got[name].num_rows == expected.num_rows > 0
        assert _rows(got[name], columns, types) == _rows(expected, columns, types), f"{name}: rows differ"

    # How Spark itself types the columns a reader queries by.
    silver_schema, gold_schema = report["tables"]["silver"]["schema"], report["tables"]["gold"]["schema"]
    assert (silver_schema["ingestion_time"], silver_schema["date"], silver_schema["hour"], silver_schema["vehicle_id"]) == (
        "timestamp", "string", "int", "bigint")
    assert (gold_schema["avg_battery_percent"], gold_schema["readings"]) == ("double", "bigint")
    # Independent of both readers: the late vehicle's 10 readings are in the snapshot Spark read.
    assert sum(1 for v in got["silver"].column("vehicle_id").to_pylist() if v == 42) == len(late)
    gold_42 = [r for r in got["gold"].to_pylist() if r["vehicle_id"] == 42]
    assert [(r["date"], r["hour"], r["readings"]) for r in gold_42] == [("2026-01-01", 0, len(late))]
    assert sorted(got["silver_rejected"].column("reason").to_pylist()) == ["battery_out_of_range", "longitude_out_of_range"]
    assert sorted({d for d in got["gold"].column("date").to_pylist()}) == ["2026-01-01", "2026-01-02"]
