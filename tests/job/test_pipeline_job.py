"""The telemetry pipeline on the MiniCluster with in-memory input: duplicates removed (also minutes
late and out of order), rejects routed with reasons, enrichment correct, Bronze rows and the hot
store complete, and the plan has the named operators."""

import copy
import json
import random
from dataclasses import replace

import geohash2
import orjson
import pytest
from pyflink.common import Types

from connectors.hot_store import open_hot_store, open_status_store
from device_sim.fleet_model import Fleet, FleetSpec
from fleet.config import load_config
from jobs.flink_env import create_env
from jobs.telemetry_pipeline import build, pipeline_config
from udfs.enrich import BRONZE_COLUMNS
from udfs.telemetry_schema import parse_timestamp_ms

pytestmark = pytest.mark.job


def scenario(seed=5):
    """Valid events, exact re-sends (some at the end, as after an outage), shuffled order, bad input."""
    rng = random.Random(seed)
    valid = list(Fleet(FleetSpec(vehicles=20, seed=seed)).take(400))
    resent = [copy.deepcopy(e) for e in rng.sample(valid, 60)]
    stream = [orjson.dumps(e).decode() for e in valid + resent[:30]]
    rng.shuffle(stream)  # out of order within each vehicle, too
    stream += [orjson.dumps(e).decode() for e in resent[30:]]  # late re-sends
    bad = {
        "{not json": "bad_json",
        "[1, 2, 3]": "not_an_object",
        orjson.dumps({**valid[0], "battery": {"percent": 180}}).decode(): "out_of_range",
        orjson.dumps({k: v for k, v in valid[1].items() if k != "location"}).decode(): "missing_field",
        orjson.dumps({**valid[2], "timestamp": "2025-01-15 14:00"}).decode(): "bad_timestamp",
        orjson.dumps({**valid[3], "vehicle_id": "abc"}).decode(): "wrong_type",
    }
    for text in bad:
        stream.insert(rng.randrange(len(stream)), text)
    return valid, stream, bad


@pytest.fixture
def job_config(tmp_path, platform_config):
    registry_file = tmp_path / "registry.jsonl"
    registry_file.write_text("".join(json.dumps({"vehicle_id": 10_000 + i, "vehicle_type": "e-bike" if i % 2 else "scooter"}) + "\n" for i in range(15)))
    platform = load_config("local", {
        "infra.run_dir": str(tmp_path), "flink.checkpoint_interval_ms": "500", "flink.restart_attempts": "0",
        "pipeline.registry_file": str(registry_file), "pipeline.batch_window_ms": "50",
    }, environ={})
    return platform, replace(pipeline_config(platform, start="earliest", stop="latest"), sinks=frozenset({"store"}))


def run_pipeline(platform, config, stream, registry=()):
    env = create_env(platform.flink)
    raw = env.from_collection(stream, type_info=Types.STRING())
    registry_raw = env.from_collection(list(registry) or ['{"vehicle_id": 1, "vehicle_type": "test"}'], type_info=Types.STRING())
    streams = build(env, config, raw=raw, registry_raw=registry_raw, collect_bronze=True)
    tagged = (
        streams.enriched.map(lambda r: "E" + r[0] + "\t" + r[1], output_type=Types.STRING())
        .union(streams.dlq.map(lambda d: "D" + d, output_type=Types.STRING()))
        .union(streams.bronze.map(lambda r: "B" + orjson.dumps(list(r)).decode(), output_type=Types.STRING()))
    )
    out = list(tagged.execute_and_collect())
    enriched = [(t[1:].split("\t", 1)[0], orjson.loads(t.split("\t", 1)[1])) for t in out if t[0] == "E"]
    dlq = [orjson.loads(t[1:]) for t in out if t[0] == "D"]
    bronze = [dict(zip([c for c, _ in BRONZE_COLUMNS], orjson.loads(t[1:]))) for t in out if t[0] == "B"]
    return enriched, dlq, bronze


def test_dedup_rejects_enrichment_bronze_and_hot_store(job_config):
    platform, config = job_config
    valid, stream, bad = scenario()
    enriched, dlq, bronze = run_pipeline(platform, config, stream, registry=["not a record"])

    key = lambda e: (e["vehicle_id"], e["timestamp"])  # noqa: E731
    assert len(enriched) == len(valid)
    assert sorted(key(e) for _, e in enriched) == sorted(key(e) for e in valid)

    by_key = {key(e): e for e in valid}
    for kafka_key, event in enriched:
        assert kafka_key == str(event["vehicle_id"])
        original = by_key[key(event)]
        assert {k: event[k] for k in original} == original  # the payload itself is untouched
        assert event["zone_id"] == geohash2.encode(original["location"]["lat"], original["location"]["lon"], 6)
        index = event["vehicle_id"] - 10_000
        assert event["vehicle_type"] == (("e-bike" if index % 2 else "scooter") if index < 15 else "unknown")
        assert isinstance(event["ingested_at_ms"], int)

    reasons = sorted(d["reason"] for d in dlq)
    assert reasons == sorted(list(bad.values()) + ["bad_registry_record"])
    for record in dlq:
        assert record["stage"] == "telemetry-pipeline" and record["payload"] and record["detail"]

    assert len(bronze) == len(valid)
    assert sorted((r["vehicle_id"], r["timestamp"]) for r in bronze) == sorted(key(e) for e in valid)
    sample = next(r for r in bronze if (r["vehicle_id"], r["timestamp"]) == key(valid[7]))
    assert sample["event_time_ms"] == parse_timestamp_ms(valid[7]["timestamp"])
    assert sample["latitude"] == valid[7]["location"]["lat"] and sample["speed_kmh"] == valid[7]["motion"]["speed_kmh"]

    hot = open_hot_store(config.stores)
    status = open_status_store(config.stores)
    try:
        for vehicle_id in {e["vehicle_id"] for e in valid}:
            expected = sorted((parse_timestamp_ms(e["timestamp"]) for e in valid if e["vehicle_id"] == vehicle_id), reverse=True)
            trace = hot.trace(vehicle_id, since_ms=0)
            assert [p.time_ms for p in trace] == expected
            assert status.get(vehicle_id).last_seen_ms == expected[0]
    finally:
        hot.close()
        status.close()


def python_operators(env):
    """(name, operator class) of every operator that runs Python, from the Java stream graph."""
    graph = env._j_stream_execution_environment.getStreamGraph(False)
    found = []
    for node in graph.getStreamNodes().toArray():
        factory = node.getOperatorFactory()
        if factory is None:
            continue
        operator = factory.getStreamOperatorClass(node.getClass().getClassLoader()).getName()
        if ".python." in operator:
            found.append((node.getOperatorName(), operator.rsplit(".", 1)[1]))
    return sorted(found)


def test_plan_has_every_named_operator_and_sink_and_one_python_hop(job_config):
    platform, config = job_config
    env = create_env(platform.flink)
    build(env, replace(config, sinks=frozenset({"enriched", "bronze", "store", "dlq"})))
    contents = " | ".join(node["contents"] for node in json.loads(env.get_execution_plan())["nodes"])
    for name in (
        "vehicle-telemetry source", "vehicle-registry source", "parse registry", "parse, dedup, enrich, store",
        "WindowAggregate", "bronze parquet sink", "dlq sink", "telemetry_enriched",
    ):
        assert name in contents, contents
    # An event enters Python once, in a batch: no AddKey, no side-output maps, no second keyed
    # hop. The registry parser sees only registry records.
    assert python_operators(env) == [
        ("parse registry", "EmbeddedPythonProcessOperator"),
        ("parse, dedup, enrich, store", "EmbeddedPythonKeyedCoProcessOperator"),
    ]


def test_duplicates_minutes_apart_are_dropped_within_the_ttl(job_config):
    platform, config = job_config
    valid = list(Fleet(FleetSpec(vehicles=3, seed=9)).take(30))
    # A vehicle that was offline re-sends its spool: the same events again, after newer ones.
    stream = [orjson.dumps(e).decode() for e in valid] + [orjson.dumps(e).decode() for e in valid[:12]]
    enriched, dlq, _ = run_pipeline(platform, replace(config, sinks=frozenset()), stream)
    assert len(enriched) == 30 and dlq == []


def test_rejects_without_a_dlq_sink_do_not_stop_the_job(job_config):
    """A side output nobody consumes fails PyFlink on its first record: with the DLQ sink off
    (`--sinks enriched`), rejects and bad registry records must still find a consumer."""
    platform, config = job_config
    valid = list(Fleet(FleetSpec(vehicles=2, seed=4)).take(6))
    stream = ["{not json"] + [orjson.dumps(e).decode() for e in valid]
    env = create_env(platform.flink)
    raw = env.from_collection(stream, type_info=Types.STRING())
    registry_raw = env.from_collection(["not a record"], type_info=Types.STRING())
    streams = build(env, replace(config, sinks=frozenset()), raw=raw, registry_raw=registry_raw)
    enriched = [orjson.loads(r[1]) for r in streams.enriched.execute_and_collect()]
    assert sorted((e["vehicle_id"], e["timestamp"]) for e in enriched) == sorted((e["vehicle_id"], e["timestamp"]) for e in valid)


def task_chains(env) -> list[str]:
    """The job graph's vertices: each is one chain of operators, run by one task thread."""
    graph = env._j_stream_execution_environment.getStreamGraph(False).getJobGraph()
    return [vertex.getName() for vertex in graph.getVerticesSortedTopologicallyFromSources().toArray()]


def test_bronze_is_written_in_a_task_of_its_own_and_records_are_not_copied(job_config):
    """The Parquet encoding must not run in the Python operator's thread (the job's busiest), and
    chained operators hand records on without a Kryo deep copy."""
    platform, config = job_config
    env = create_env(platform.flink)
    build(env, replace(config, sinks=frozenset({"enriched", "bronze", "store", "dlq"})))
    chains = task_chains(env)
    python_chain = [c for c in chains if "parse, dedup, enrich, store" in c]
    bronze_chain = [c for c in chains if "bronze parquet sink" in c]
    assert len(python_chain) == 1 and len(bronze_chain) == 1, chains
    assert "bronze parquet sink" not in python_chain[0]
    assert "telemetry_enriched" in python_chain[0]  # the Kafka sink stays chained: it only hands bytes on
    assert env._j_stream_execution_environment.getConfig().isObjectReuseEnabled()


def test_the_exactly_once_sinks_get_the_profiles_transaction_timeout():
    # production.toml's value (checked against its restart strategy when loaded), not the default.
    assert pipeline_config(load_config("production")).transaction_timeout_ms == 900_000
    assert pipeline_config(load_config("local", {"kafka.transaction_timeout_ms": 700_000})).transaction_timeout_ms == 700_000


def test_payloads_over_the_schemas_limits_go_to_the_dlq_with_reasons(job_config):
    platform, config = job_config
    valid = list(Fleet(FleetSpec(vehicles=2, seed=5)).take(4))
    big = {**valid[0], "notes": "n" * 140_000}
    deep = {**valid[1], "x": [[[[[[[[1]]]]]]]]}
    long_trip = {**valid[2], "vehicle_status": {"trip_id": "t" * 1_025}}
    stream = [orjson.dumps(e).decode() for e in (big, deep, long_trip, valid[3])]
    enriched, dlq, _ = run_pipeline(platform, replace(config, sinks=frozenset()), stream)

    assert [(e["vehicle_id"], e["timestamp"]) for _, e in enriched] == [(valid[3]["vehicle_id"], valid[3]["timestamp"])]
    by_reason = sorted((d["reason"], d["field"]) for d in dlq if d["reason"] != "bad_registry_record")
    assert by_reason == [
        ("over_limit", "vehicle_status.trip_id"), ("over_limit", "x[0][0][0][0][0][0][0]"), ("payload_too_large", None),
    ]


def test_events_at_every_schema_limit_are_written_to_bronze_parquet_unchanged(job_config, tmp_path):
    """Bronze refuses nothing the schema lets through: every value has a column type that holds it.
    Events at the limits (1,024-character strings of 4-byte characters, the bounds of every range,
    256 error codes, 8 levels deep) go through the real Parquet sink and read back as sent."""
    import pyarrow.parquet as pq

    platform, config = job_config
    base = list(Fleet(FleetSpec(vehicles=3, seed=9)).take(3))
    edge = [
        {**base[0], "vehicle_id": 2**63 - 1, "location": {"lat": -90.0, "lon": 180.0, "altitude": -500.0, "accuracy": 100_000.0},
         "battery": {"percent": 0, "charging": True}, "vehicle_status": {"trip_id": "🛴" * 1_024, "locked": False, "in_use": True}},
        {**base[1], "vehicle_id": 1, "location": {"lat": 90.0, "lon": -180.0}, "battery": {"percent": 100},
         "diagnostics": {"error_codes": [f"E{i:03d}" for i in range(256)], "odometer_km": 10_000_000.0},
         "extra": {"a": {"b": {"c": {"d": {"e": {"f": {"g": "deepest"}}}}}}}},
    ]
    bronze_root = tmp_path / "edge-bronze"
    edge_config = replace(config, sinks=frozenset({"bronze"}), bronze_path=bronze_root.as_uri())
    env = create_env(platform.flink)
    build(env, edge_config, raw=env.from_collection([orjson.dumps(e).decode() for e in edge], type_info=Types.STRING()),
          registry_raw=env.from_collection([], type_info=Types.STRING()))
    env.execute("events at the schema's limits to Bronze")

    rows = {r["vehicle_id"]: r for f in sorted(bronze_root.rglob("*.parquet")) for r in pq.read_table(f).to_pylist()}
    assert set(rows) == {2**63 - 1, 1}
    first, second = rows[2**63 - 1], rows[1]
    assert (first["latitude"], first["longitude"], first["altitude"], first["accuracy"], first["battery_percent"]) == (-90.0, 180.0, -500.0, 100_000.0, 0.0)
    assert first["trip_id"] == "🛴" * 1_024 and first["battery_charging"] is True and first["in_use"] is True
    assert (second["latitude"], second["longitude"], second["battery_percent"]) == (90.0, -180.0, 100.0)
    assert second["odometer_km"] == 10_000_000.0
    assert json.loads(second["error_codes"]) == [f"E{i:03d}" for i in range(256)]


def test_a_point_the_hot_store_refuses_goes_to_the_dlq_and_its_other_sinks_keep_it(job_config):
    """A replayed event four days old is valid (the schema keeps old events for replays) but past
    the hot store's 3-day window: the store refuses it, the DLQ gets it with the store's reason,
    enriched and Bronze keep it, and the rest of the batch is stored."""
    from udfs.telemetry_schema import format_timestamp_ms

    platform, config = job_config
    fresh = list(Fleet(FleetSpec(vehicles=3, seed=11)).take(9))
    old = {**fresh[0], "timestamp": format_timestamp_ms(parse_timestamp_ms(fresh[0]["timestamp"]) - 4 * 86_400_000)}
    enriched, dlq, bronze = run_pipeline(platform, config, [orjson.dumps(e).decode() for e in (*fresh, old)])

    key = lambda e: (e["vehicle_id"], e["timestamp"])  # noqa: E731
    [refused] = [d for d in dlq if d["stage"] == "hot-store"]
    assert (refused["reason"], refused["detail"]) == ("hot_store_rejected", "older_than_retention")
    assert key(orjson.loads(refused["payload"])) == key(old)
    assert sorted(key(e) for _, e in enriched) == sorted(key(e) for e in (*fresh, old))
    assert len(bronze) == 10
    hot = open_hot_store(config.stores)
    try:
        stored = {(v, p.time_ms) for v in {e["vehicle_id"] for e in fresh} for p in hot.trace(v, since_ms=0)}
    finally:
        hot.close()
    assert stored == {(e["vehicle_id"], parse_timestamp_ms(e["timestamp"])) for e in fresh}
