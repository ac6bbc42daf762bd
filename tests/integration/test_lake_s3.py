"""The lake on S3 (moto's server): `telemetry lake …` with Bronze and the Delta tables on s3://,
the profile's [aws] endpoint and region reaching pyarrow and delta-rs through the environment."""

from __future__ import annotations

import io
import os
import random
import uuid

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from pyarrow import fs

from fleet.cli.app import main
from lake.storage import s3_environment
from tests.unit import lake_expected
from tests.unit.test_lake_silver import HOUR0, SCHEMA, _row

pytestmark = pytest.mark.integration


@pytest.fixture()
def clean_environment():
    saved = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        del os.environ[key]
    yield
    os.environ.clear()
    os.environ.update(saved)


def test_lake_commands_on_s3(private_moto, tmp_path, clean_environment, capsys):
    moto_endpoint = private_moto.endpoint
    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-central-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
    rng = random.Random(21)
    rows = [dict(_row(rng, v, HOUR0 + i * 3000, HOUR0 + i * 3000 + 20), trip_id=f"trip-{v}") for v in (1, 2, 3) for i in range(300)]
    for part in range(3):  # three small files in one event hour, as the sink commits them
        body = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows[part::3], schema=SCHEMA), body)
        s3.put_object(Bucket=bucket, Key=f"bronze/year=2026/month=01/day=01/hour=00/telemetry-{uuid.uuid4()}-{part}.parquet",
                      Body=body.getvalue())
    cli = ["--set", f"infra.run_dir={tmp_path}", "--set", f"infra.moto_port={private_moto.port}",
           "--set", f"pipeline.bronze_path=s3://{bucket}/bronze", "--set", f"lake.base_path=s3://{bucket}/lake"]

    assert main([*cli, "lake", "compact", "--older-than-min", "0"]) == 0
    assert "merged 3 files into 1" in capsys.readouterr().out
    assert main([*cli, "lake", "silver"]) == 0 and main([*cli, "lake", "gold"]) == 0
    capsys.readouterr()
    assert os.environ["AWS_ENDPOINT_URL"] == moto_endpoint and os.environ["AWS_REGION"] == "eu-central-1"
    silver = DeltaTable(f"s3://{bucket}/lake/silver/telemetry").to_pyarrow_table().to_pylist()
    expected = lake_expected.silver_rows(rows)
    assert sorted((r["vehicle_id"], r["timestamp"]) for r in silver) == sorted(expected)
    gold = {(r["date"], r["hour"], r["vehicle_id"]): r for r in DeltaTable(f"s3://{bucket}/lake/gold/vehicle_hourly").to_pyarrow_table().to_pylist()}
    lake_expected.assert_gold_equals(gold, lake_expected.gold_rows(list(expected.values())))

    assert main([*cli, "lake", "erase", "--trip", "trip-2", "--lake-only"]) == 0
    capsys.readouterr()
    s3fs = fs.S3FileSystem(endpoint_override=moto_endpoint, scheme="http", access_key="testing", secret_key="testing", region="eu-central-1")
    bronze = [r for info in s3fs.get_file_info(fs.FileSelector(f"{bucket}/bronze", recursive=True))
              if info.type == fs.FileType.File for r in pq.read_table(info.path, filesystem=s3fs).to_pylist()]
    assert sorted(r["timestamp"] for r in bronze) == sorted(r["timestamp"] for r in rows if r["trip_id"] != "trip-2")
    left = DeltaTable(f"s3://{bucket}/lake/silver/telemetry").to_pyarrow_table(columns=["trip_id"]).column("trip_id").to_pylist()
    assert "trip-2" not in left and len(left) == 600
    assert main([*cli, "lake", "audit"]) == 0 and "trip-2" in capsys.readouterr().out


def test_the_s3_environment_keeps_the_lake_in_the_eu():
    assert s3_environment("eu-west-1", None) == {"AWS_REGION": "eu-west-1"}
    local = s3_environment("eu-central-1", "http://127.0.0.1:5000")
    assert local["AWS_ALLOW_HTTP"] == "true" and local["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    with pytest.raises(ValueError, match="us-east-1"):
        s3_environment("us-east-1", None)
