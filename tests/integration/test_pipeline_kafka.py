"""The pipeline through the real broker: valid events, duplicates (immediate and late re-sends) and
malformed records in → exactly the unique valid events in `telemetry-enriched` (read_committed), in
committed Bronze Parquet files and in the hot store; the DLQ count exact; the trace query right.

The enriched topic takes records of at most 6,000 bytes (max.message.bytes), less than the profile
says, as a broker configured apart from it would: one valid 7 KB event would fail the exactly-once
sink after every restart. It goes to the DLQ with the topic's limit; its other sinks keep it."""

import copy
import random
import time
import uuid
from dataclasses import replace

import orjson
import pyarrow.parquet as pq
import pytest

from connectors.hot_store import open_hot_store, open_status_store
from connectors.kafka_clients import make_consumer, make_producer
from connectors.kafka_topics import TopicSpec, admin_client, ensure_topics
from connectors.vehicle_registry_topic import publish_registry
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import produce_events
from device_sim.registry import registry_records
from fleet.config import load_config
from jobs.flink_env import create_env
from jobs.telemetry_pipeline import build, pipeline_config
from udfs.telemetry_schema import parse_timestamp_ms

pytestmark = [pytest.mark.integration, pytest.mark.job]

ENRICHED_LIMIT = {"max.message.bytes": "6000"}
MALFORMED = [b"{broken", b"\xff\xfe\xfd", b'{"vehicle_id": 5}', b"[]", b'{"vehicle_id": 10001, "timestamp": "2025-13-40T00:00:00Z"}']


def read_topic(bootstrap, topic, *, settle_s=3.0, timeout_s=60.0):
    consumer = make_consumer(bootstrap, f"verify-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    messages, last_new = [], time.monotonic()
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and time.monotonic() - last_new < settle_s:
            batch = [m for m in consumer.consume(num_messages=5_000, timeout=0.5) if m.error() is None]
            if batch:
                messages += batch
                last_new = time.monotonic()
    finally:
        consumer.close()
    return messages


@pytest.fixture
def topics(kafka_bootstrap):
    suffix = uuid.uuid4().hex[:8]
    names = {role: f"{role}-{suffix}" for role in ("telemetry", "enriched", "dlq", "registry")}
    specs = [TopicSpec(role, name, 1 if role in ("dlq", "registry") else 3, 1, ENRICHED_LIMIT if role == "enriched" else {})
             for role, name in names.items()]
    ensure_topics(admin_client(kafka_bootstrap), specs)
    return names


def test_exactly_the_unique_valid_events_reach_every_sink(kafka_bootstrap, topics, platform_config, tmp_path):
    rng = random.Random(12)
    fleet = Fleet(FleetSpec(vehicles=30, seed=12))
    valid = list(fleet.take(600))
    big = valid[77] = {**valid[77], "notes": {f"n{i}": "x" * 1000 for i in range(7)}}  # 7 KB, within the schema's limits
    registered = fleet.vehicle_ids[:20]
    types = {r["vehicle_id"]: r["vehicle_type"] for r in registry_records(registered)}
    publish_registry(kafka_bootstrap, topics["registry"], registry_records(registered))

    duplicates = [copy.deepcopy(e) for e in rng.sample(valid, 80)]
    assert produce_events(kafka_bootstrap, topics["telemetry"], valid + duplicates[:40]).failed == 0
    producer = make_producer(kafka_bootstrap)
    for payload in MALFORMED:
        producer.produce(topics["telemetry"], payload)
    assert producer.flush(30) == 0
    assert produce_events(kafka_bootstrap, topics["telemetry"], duplicates[40:]).failed == 0  # late re-sends

    platform = load_config("local", {
        "infra.run_dir": str(tmp_path), "infra.kafka_port": str(platform_config.infra.kafka_port),
        "flink.checkpoint_interval_ms": "500", "flink.restart_attempts": "0",
    }, environ={})
    config = replace(
        pipeline_config(platform, start="earliest", stop="latest"),
        telemetry_topic=topics["telemetry"], enriched_topic=topics["enriched"], dlq_topic=topics["dlq"],
        registry_topic=topics["registry"], group_id=f"pipeline-{topics['telemetry']}",
        transactional_id_prefix=f"tx-{topics['telemetry']}",
    )
    env = create_env(platform.flink)
    build(env, config)
    env.execute("pipeline integration")

    key = lambda e: (e["vehicle_id"], e["timestamp"])  # noqa: E731
    expected = sorted(key(e) for e in valid)

    enriched = read_topic(kafka_bootstrap, topics["enriched"])
    events = [orjson.loads(m.value()) for m in enriched]
    assert sorted(key(e) for e in events) == sorted(key(e) for e in valid if e is not big)  # no loss, no duplicate
    for message, event in zip(enriched, events):
        assert message.key() == str(event["vehicle_id"]).encode()
        assert event["vehicle_type"] == types.get(event["vehicle_id"], "unknown")
    partitions = {}
    for message, event in zip(enriched, events):
        partitions.setdefault(event["vehicle_id"], set()).add(message.partition())
    assert all(len(p) == 1 for p in partitions.values())

    bronze_root = tmp_path / "lake" / "bronze" / "telemetry"
    files = sorted(bronze_root.rglob("*.parquet"))
    assert files and not [p for p in bronze_root.rglob(".*") if p.is_file()]
    rows = [row for f in files for row in pq.read_table(f, columns=["vehicle_id", "timestamp", "zone_id", "vehicle_type"]).to_pylist()]
    assert sorted((r["vehicle_id"], r["timestamp"]) for r in rows) == expected

    dlq = [orjson.loads(m.value()) for m in read_topic(kafka_bootstrap, topics["dlq"])]
    [refused] = [r for r in dlq if r["stage"] == "enriched-sink"]
    assert refused["reason"] == "enriched_too_large" and "up to 6000 (max.message.bytes)" in refused["detail"]
    assert key(orjson.loads(refused["payload"])) == key(big)
    assert sorted(r["reason"] for r in dlq if r is not refused) == sorted(["bad_json", "bad_json", "missing_field", "not_an_object", "bad_timestamp"])

    hot = open_hot_store(config.stores)
    status = open_status_store(config.stores)
    try:
        vehicle = fleet.vehicle_ids[3]
        mine = sorted((e for e in valid if e["vehicle_id"] == vehicle), key=lambda e: e["timestamp"], reverse=True)
        trace = hot.trace(vehicle, since_ms=0)
        assert [p.time_ms for p in trace] == [parse_timestamp_ms(e["timestamp"]) for e in mine]
        assert [(p.latitude, p.longitude) for p in trace] == [(e["location"]["lat"], e["location"]["lon"]) for e in mine]
        assert sum(len(hot.trace(v, since_ms=0)) for v in fleet.vehicle_ids) == len(valid)
        assert status.get(vehicle).last_seen_ms == parse_timestamp_ms(mine[0]["timestamp"])
    finally:
        hot.close()
        status.close()

