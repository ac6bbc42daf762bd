"""A PyFlink job writes Parquet through FileSink's bulk format (Maven-fetched flink-parquet + Hadoop
client) and pyarrow reads back exactly what went in."""

import re
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
