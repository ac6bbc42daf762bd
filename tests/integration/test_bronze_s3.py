"""Bronze on s3:// through Flink's S3 filesystem plugin (flink-s3-fs-hadoop, fetched by Maven into
the `flink-plugins` jar profile), against a real moto server: the pipeline's Parquet sink writes
rows whose event times span hours, and pyarrow's own S3 client reads back exactly those rows, each
in the folder of its event hour."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime

import boto3
import pyarrow.parquet as pq
import pytest
from pyarrow import fs
from pyflink.common import Row, Types

from connectors.parquet_sink import parquet_file_sink, sink_in_own_chain
from infra.moto_server import FAKE_CREDENTIALS
from jobs.flink_env import create_env
from jobs.pipeline_functions import BRONZE_SCHEMA

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def bronze_row(i: int, event_time_ms: int) -> dict:
    """A Bronze row of literal values, every column set (strings sometimes null)."""
    values = {}
    for n, (name, kind) in enumerate(BRONZE_SCHEMA.columns):
        if name == "event_time_ms":
            values[name] = event_time_ms
        elif name == "timestamp":
            values[name] = datetime.fromtimestamp(event_time_ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        elif kind == "bigint":
            values[name] = 10_000 + i if name == "vehicle_id" else event_time_ms + 120 + i % 50
        elif kind == "double":
            values[name] = round(i * 0.25 + n, 3)
        elif kind == "boolean":
            values[name] = (i + n) % 2 == 0
        else:
            values[name] = None if (i + n) % 9 == 0 else f"{name}-{i % 13}"
    return values


def event_hour_folder(event_time_ms: int) -> str:
    t = datetime.fromtimestamp(event_time_ms / 1000, tz=UTC)
    return f"year={t.year:04d}/month={t.month:02d}/day={t.day:02d}/hour={t.hour:02d}"


def test_bronze_parquet_on_s3_reads_back_exactly_in_event_hour_folders(private_moto, platform_config):
    moto_endpoint = private_moto.endpoint
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3", endpoint_url=moto_endpoint, region_name="eu-central-1",
        aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})

    now_ms = int(time.time() * 1000)
    starts = [now_ms - 5 * HOUR_MS, now_ms - 26 * HOUR_MS, now_ms]  # a replay, yesterday, now
    rows = [bronze_row(i, starts[i % 3] + i * 1_000) for i in range(600)]

    env = create_env(replace(platform_config.flink, s3_endpoint=moto_endpoint))
    names = BRONZE_SCHEMA.names
    values = [tuple(r[n] for n in names) for r in rows]  # 26 columns: more than a Flink tuple holds
    source = env.from_collection(list(range(len(values))), type_info=Types.INT()).map(
        lambda i: Row(*values[i]), output_type=BRONZE_SCHEMA.type_info(),
    ).name("to bronze row").uid("to-bronze-row")
    sink = parquet_file_sink(f"s3://{bucket}/bronze", BRONZE_SCHEMA, part_prefix="bronze", partition_by_event_time="event_time_ms")
    sink_in_own_chain(source, sink).name("bronze parquet sink").uid("bronze-sink")
    env.execute("bronze to s3")

    s3 = fs.S3FileSystem(
        endpoint_override=moto_endpoint, scheme="http", region="eu-central-1",
        access_key=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"], secret_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    infos = [i for i in s3.get_file_info(fs.FileSelector(f"{bucket}/bronze", recursive=True)) if i.type == fs.FileType.File]
    assert infos, "nothing written to S3"
    assert not [i.path for i in infos if i.base_name.startswith(".")], "in-progress objects left"
    found: dict[str, list[dict]] = {}
    for info in infos:
        folder = info.path.removeprefix(f"{bucket}/bronze/").rsplit("/", 1)[0]
        assert info.base_name.startswith("bronze-") and info.base_name.endswith(".parquet"), info.path
        table = pq.read_table(info.path, filesystem=s3)
        assert table.schema.names == names
        found.setdefault(folder, []).extend(table.to_pylist())
    expected: dict[str, list[dict]] = {}
    for row in rows:
        expected.setdefault(event_hour_folder(row["event_time_ms"]), []).append(row)
    key = lambda r: r["vehicle_id"]  # noqa: E731
    assert {f: sorted(rs, key=key) for f, rs in found.items()} == {f: sorted(rs, key=key) for f, rs in expected.items()}


def test_s3_settings_follow_the_endpoint_setting():
    from jobs.flink_env import s3_settings

    assert s3_settings("", environ={"AWS_ACCESS_KEY_ID": "AKIA"}) == {}  # AWS: its own chain and endpoint
    assert s3_settings("http://127.0.0.1:5000", environ={}) == {
        "s3.endpoint": "http://127.0.0.1:5000", "s3.path.style.access": "true", "s3.endpoint.region": "us-east-1",
        "s3.access-key": "testing", "s3.secret-key": "testing",
    }
    given = s3_settings("http://minio:9000", environ={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1"})
    assert (given["s3.access-key"], given["s3.secret-key"], given["s3.endpoint.region"]) == ("k", "s", "eu-west-1")
