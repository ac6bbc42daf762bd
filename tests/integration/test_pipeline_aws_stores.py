"""The pipeline writing its hot store to Timestream and its vehicle status to DynamoDB (the
production backends) through boto3 inside the Flink job, against the moto server."""

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from pyflink.common import Types

from connectors.hot_store import open_status_store
from device_sim.fleet_model import Fleet, FleetSpec
from fleet.config import load_config
from jobs.flink_env import create_env
from jobs.telemetry_pipeline import build, pipeline_config
from tests.integration.test_moto_server import client
from udfs.telemetry_schema import parse_timestamp_ms

pytestmark = [pytest.mark.integration, pytest.mark.job]


def test_timestream_and_dynamodb_backends_inside_the_job(moto_endpoint, tmp_path):
    port = moto_endpoint.rsplit(":", 1)[1]
    settings = {
        "infra.run_dir": str(tmp_path), "infra.moto_port": port,
        "stores.hot_store_backend": "timestream", "stores.status_backend": "dynamodb",
        "stores.timestream_database": "mobility_it", "stores.dynamodb_table": "vehicle-status-it",
        "flink.checkpoint_interval_ms": "500", "flink.restart_attempts": "0",
    }
    telemetry = Path(sys.executable).parent / "telemetry"
    init = subprocess.run([str(telemetry), *(a for k, v in settings.items() for a in ("--set", f"{k}={v}")), "stores", "init"],
                          capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    assert "timestream mobility_it.telemetry: ready" in init.stdout and "dynamodb vehicle-status-it: ready" in init.stdout

    platform = load_config("local", settings, environ={})
    config = replace(pipeline_config(platform, start="earliest", stop="latest"), sinks=frozenset({"store"}))
    events = list(Fleet(FleetSpec(vehicles=12, seed=4)).take(240))
    env = create_env(platform.flink)
    streams = build(
        env, config,
        raw=env.from_collection([orjson.dumps(e).decode() for e in events + events[:40]], type_info=Types.STRING()),
        registry_raw=env.from_collection(['{"vehicle_id": 10003, "vehicle_type": "e-bike"}'], type_info=Types.STRING()),
    )
    assert list(streams.dlq.execute_and_collect()) == []

    # moto keeps every WriteRecords record (40 re-sends were deduplicated before the writer).
    import urllib.request

    with urllib.request.urlopen(f"{moto_endpoint}/moto-api/data.json", timeout=10) as response:
        dump = orjson.loads(response.read())
    [table] = [t for t in dump["timestreamwrite"]["TimestreamTable"] if (t["db_name"], t["name"]) == ("mobility_it", "telemetry")]
    written = table["records"]
    assert len(written) == 240
    assert sorted((int(r["Time"]), next(d["Value"] for d in r["Dimensions"] if d["Name"] == "vehicle_id")) for r in written) == sorted(
        (parse_timestamp_ms(e["timestamp"]), str(e["vehicle_id"])) for e in events
    )

    status = open_status_store(platform.stores)
    try:
        for vehicle_id in {e["vehicle_id"] for e in events}:
            newest = max(parse_timestamp_ms(e["timestamp"]) for e in events if e["vehicle_id"] == vehicle_id)
            assert status.get(vehicle_id).last_seen_ms == newest
        assert status.get(10003).vehicle_type == "e-bike"
    finally:
        status.close()
    items = client("dynamodb", moto_endpoint).scan(TableName="vehicle-status-it")["Items"]
    assert len(items) == 12

