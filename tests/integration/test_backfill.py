"""Backfill through the real broker: a time range that covers exactly the first of two batches lands
in every sink with exact counts; the same command again runs nothing; --rerun into store,bronze
leaves the same rows; --rerun into Kafka and an overlapping replay into the same topic are refused;
the live group's committed offsets never move. An offset range with an empty partition reads only
what it names, and keeps a re-send whose original lies before the range (state starts empty)."""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connectors.hot_store_local import LocalHotStore
from connectors.kafka_clients import make_consumer, make_producer
from connectors.kafka_offsets import committed_offsets
from connectors.vehicle_registry_topic import publish_registry
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import key_and_payload
from device_sim.registry import registry_records
from fleet.cli import app as cli
from jobs.backfill import job as backfill
from udfs.telemetry_schema import format_timestamp_ms

pytestmark = [pytest.mark.integration, pytest.mark.job]

LIVE_GROUP = "telemetry-pipeline"  # the local profile's pipeline.group_id
COORDINATOR_SETTLING = {
    KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
}
INVALID = [b"{broken", b'{"vehicle_id": 5}', b"[]", b'{"vehicle_id": 10001, "timestamp": "2025-13-40T00:00:00Z"}']


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch):
    """The CLI reads TELEMETRY__* variables; a developer's must not point the test elsewhere."""
    for name in [n for n in os.environ if n.startswith("TELEMETRY__")]:
        monkeypatch.delenv(name)


def produce(bootstrap, topic, items, timestamp_ms=None, *, producer=None, partition=None):
    """Send (payload dict or raw bytes) with the given Kafka record times; returns each record's
    (partition, offset) in send order."""
    producer = producer or make_producer(bootstrap)
    placed = [None] * len(items)
    timestamp_ms = timestamp_ms or [0] * len(items)  # 0: the client's clock
    where = {} if partition is None else {"partition": partition}

    def delivered(index):
        def report(error, message):
            assert error is None, error
            placed[index] = (message.partition(), message.offset())
        return report

    for index, (item, stamp) in enumerate(zip(items, timestamp_ms, strict=True)):
        key, payload = key_and_payload(item) if isinstance(item, dict) else (b"10001", item)
        producer.produce(topic, payload, key, timestamp=stamp, on_delivery=delivered(index), **where)
    assert producer.flush(30) == 0
    return placed


def read_committed(bootstrap, topic):
    """Every committed record of `topic`, read to the end of each partition (read_committed)."""
    consumer = make_consumer(bootstrap, f"verify-{time.time_ns()}", **{"enable.partition.eof": True})
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = sorted(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    values, at_end = [], set()
    deadline = time.monotonic() + 30
    try:
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, f"{topic}: partitions {sorted(set(partitions) - at_end)} never reached their end"
            for message in consumer.consume(num_messages=1000, timeout=0.5):
                if message.error() is None:
                    values.append(message.value())
                elif message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
    finally:
        consumer.close()
    return values


def commit_live_offsets(bootstrap, topic, offsets):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": LIVE_GROUP, "enable.auto.commit": False})
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
                return
            except KafkaException as exc:  # the group coordinator of a broker just started is still loading
                if exc.args[0].code() not in COORDINATOR_SETTLING or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        consumer.close()


def key(event):
    return (event["vehicle_id"], event["timestamp"])


class Sinks:
    """The test's own topics, lake and hot store, and the --set overrides that point a run at them."""

    def __init__(self, fresh_topic, kafka_bootstrap, platform_config, tmp_path):
        self.bootstrap = kafka_bootstrap
        self.telemetry = fresh_topic(3, prefix="telemetry")
        self.enriched = fresh_topic(3, prefix="enriched")
        self.dlq = fresh_topic(1, prefix="dlq")
        self.registry = fresh_topic(1, prefix="registry")
        self.run_dir = tmp_path / "run"
        self.bronze = tmp_path / "bronze"
        self.hot_store = tmp_path / "hot_store.sqlite"
        self.overrides = [
            f"infra.run_dir={self.run_dir}", f"infra.kafka_port={platform_config.infra.kafka_port}",
            "flink.checkpoint_interval_ms=500", "flink.restart_attempts=0",
            f"topics.telemetry.name={self.telemetry}", f"topics.dlq.name={self.dlq}",
            f"topics.registry.name={self.registry}", f"pipeline.bronze_path={self.bronze}",
            f"stores.local_path={self.hot_store}",
        ]

    def cli(self, *args):
        return cli.main([*(item for o in self.overrides for item in ("--set", o)), "backfill", *args])

    def manifests(self):
        return [json.loads(p.read_text()) for p in sorted((self.run_dir / "backfill").glob("*/manifest.json"))]

    def enriched_keys(self):
        return sorted(key(orjson.loads(v)) for v in read_committed(self.bootstrap, self.enriched))

    def dlq_reasons(self):
        return sorted(orjson.loads(v)["reason"] for v in read_committed(self.bootstrap, self.dlq))

    def bronze_files(self):
        return sorted(p for p in self.bronze.rglob("*.parquet") if not p.name.startswith("."))

    def bronze_keys(self):
        return sorted(
            (r["vehicle_id"], r["timestamp"]) for f in self.bronze_files()
            for r in pq.read_table(f, columns=["vehicle_id", "timestamp"]).to_pylist()
        )

    def hot_store_points(self):
        with LocalHotStore(str(self.hot_store)) as store:
            return store.count()


@pytest.fixture
def sinks(fresh_topic, kafka_bootstrap, platform_config, tmp_path):
    made = Sinks(fresh_topic, kafka_bootstrap, platform_config, tmp_path)
    fleet_ids = Fleet(FleetSpec(vehicles=12, seed=5)).vehicle_ids
    publish_registry(kafka_bootstrap, made.registry, registry_records(fleet_ids[:8]))
    return made


def two_batches(sinks):
    """Batch 1 (record times base..) and batch 2 (record times from `boundary` on), each with
    re-sends and invalid payloads; batch 2 also re-sends events of batch 1."""
    events = list(Fleet(FleetSpec(vehicles=12, seed=5)).take(240))
    first, second = events[:120], events[120:]
    batch1 = first + [copy.deepcopy(e) for e in first[::8]] + INVALID[:3]  # 15 re-sends
    batch2 = second + [copy.deepcopy(e) for e in second[::11]] + [copy.deepcopy(e) for e in first[1::7]] + INVALID[3:]
    base = int(time.time() * 1000) - 30 * 60_000
    boundary = base + 10 * 60_000
    placed1 = produce(sinks.bootstrap, sinks.telemetry, batch1, [base + i for i in range(len(batch1))])
    placed2 = produce(sinks.bootstrap, sinks.telemetry, batch2, [boundary + i for i in range(len(batch2))])
    return first, (batch1, placed1), (batch2, placed2), base, boundary


def test_time_range_backfill_is_exact_and_replaying_it_changes_nothing(sinks, capsys):
    first, _, _, base, boundary = two_batches(sinks)
    live = {0: 3, 1: 5, 2: 7}
    commit_live_offsets(sinks.bootstrap, sinks.telemetry, live)
    span = ["--from", format_timestamp_ms(base), "--to", format_timestamp_ms(boundary), "--enriched-topic", sinks.enriched]
    expected = sorted(key(e) for e in first)

    assert sinks.cli(*span, "--dry-run") == 0
    dry = capsys.readouterr().out
    assert "dry run" in dry and "new run" in dry and "138 records" in dry  # 120 + 15 re-sends + 3 invalid
    assert not sinks.manifests()

    assert sinks.cli(*span) == 0
    assert "complete in" in capsys.readouterr().out
    [manifest] = sinks.manifests()
    run_id = manifest["run_id"]
    assert manifest["state"] == "complete" and len(manifest["attempts"]) == 1
    assert manifest["counts"] == {"enriched": 120, "bronze": 120, "store": 120, "dlq": 3}
    assert manifest["details"]["duplicates_dropped"] == 15
    assert sinks.enriched_keys() == expected
    assert sinks.bronze_keys() == expected
    assert all(f.name.startswith(f"backfill-{run_id}-") for f in sinks.bronze_files())
    assert sinks.hot_store_points() == 120
    assert sinks.dlq_reasons() == sorted(["bad_json", "missing_field", "not_an_object"])
    assert not Path(manifest["checkpoint_dir"].removeprefix("file://")).exists()

    # The same command again: nothing runs, the recorded counts are shown, the sinks are as they were.
    assert sinks.cli(*span) == 0
    again = capsys.readouterr().out
    assert "already complete" in again and run_id in again
    assert sinks.manifests() == [manifest]
    assert sinks.enriched_keys() == expected and len(sinks.dlq_reasons()) == 3

    # --rerun into the idempotent sinks: this run's Bronze files are replaced, the store upserted.
    old_files = sinks.bronze_files()
    assert sinks.cli(*span, "--rerun", "--sinks", "store,bronze") == 0
    capsys.readouterr()
    [rerun] = sinks.manifests()
    assert rerun["run_id"] == run_id and rerun["state"] == "complete"
    assert [a["purpose"] for a in rerun["attempts"]] == ["first", "rerun"]
    assert rerun["counts"] == manifest["counts"]
    assert not any(f.exists() for f in old_files)
    assert sinks.bronze_keys() == expected
    assert sinks.hot_store_points() == 120
    assert sinks.enriched_keys() == expected and len(sinks.dlq_reasons()) == 3

    # Refused, with the reason, before anything runs.
    assert sinks.cli(*span, "--rerun", "--sinks", "enriched") == 2
    assert "append-only" in capsys.readouterr().err
    wider = ["--from", format_timestamp_ms(base), "--to", format_timestamp_ms(boundary + 60_000), "--enriched-topic", sinks.enriched]
    assert sinks.cli(*wider, "--sinks", "enriched") == 2
    assert f"already written to the same place by run {run_id} (enriched → {sinks.enriched})" in capsys.readouterr().err
    assert len(sinks.manifests()) == 1

    assert committed_offsets(sinks.bootstrap, LIVE_GROUP, sinks.telemetry) == live
    assert committed_offsets(sinks.bootstrap, f"backfill-{run_id}", sinks.telemetry) == {}


def test_offset_range_resumes_after_a_crash_and_reads_only_what_it_names(sinks, capsys):
    """The first attempt is held at an open transaction on the topic (read_committed waits there),
    so it is certainly still running when it is killed after a checkpoint; the same command then
    resumes from that checkpoint once the transaction has committed, and finishes."""
    first, (_, placed1), (batch2, placed2), _, _ = two_batches(sinks)
    held = list(Fleet(FleetSpec(vehicles=12, seed=5)).take(264))[240:]
    transaction = make_producer(sinks.bootstrap, **{"transactional.id": f"held-{sinks.telemetry}"})
    transaction.init_transactions(30)
    transaction.begin_transaction()
    placed_held = produce(sinks.bootstrap, sinks.telemetry, held, producer=transaction, partition=0)

    placed = placed1 + placed2 + placed_held
    ends = {p: max(o for q, o in placed if q == p) + 1 for p in range(3)}
    starts = {p: min(o for q, o in placed2 if q == p) for p in range(3)}
    empty = 2  # named with start == end: nothing of it is read
    in_range = [item for item, (p, _) in zip(batch2 + held, placed2 + placed_held, strict=True) if p != empty]
    valid = [e for e in in_range if isinstance(e, dict)]
    expected = sorted({key(e) for e in valid})
    assert {key(e) for e in first} & set(expected)  # re-sends whose originals lie before the range: kept

    offsets_from = ",".join(f"{p}:{ends[p] if p == empty else starts[p]}" for p in range(3))
    offsets_to = ",".join(f"{p}:{ends[p]}" for p in range(3))
    args = [item for o in sinks.overrides for item in ("--set", o)]
    span = ["--offsets-from", offsets_from, "--offsets-to", offsets_to, "--enriched-topic", sinks.enriched]

    log = sinks.run_dir.parent / "first-attempt.log"
    with log.open("wb") as output:
        crashed = subprocess.Popen(
            [sys.executable, "-m", "fleet.cli", *args, "backfill", *span],
            cwd=Path(__file__).resolve().parents[2], stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 180
        while not list(sinks.run_dir.glob("backfill/*/checkpoints/*/chk-*/_metadata")):
            assert crashed.poll() is None, f"the first attempt ended before it was held:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the first attempt completed no checkpoint"
            time.sleep(0.2)
    finally:
        if crashed.poll() is None:
            os.killpg(crashed.pid, signal.SIGKILL)  # the client and its MiniCluster JVM, as a crash would
        crashed.wait()
    transaction.commit_transaction(30)
    [interrupted] = sinks.manifests()
    assert interrupted["state"] == "running"

    code = backfill.main(["--", "--profile", "local", *args, *span])  # the `flink run -py` entry point
    out = capsys.readouterr().out
    assert code == 0
    assert "resume from" in out and f"partition   {empty}: empty" in out

    [manifest] = sinks.manifests()
    invalid = len(in_range) - len(valid)
    assert [a["action"] for a in manifest["attempts"]] == ["first", "resume"]
    assert manifest["resolved"][str(empty)] == [ends[empty], ends[empty]]
    assert manifest["counts"] == {"enriched": len(expected), "bronze": len(expected), "store": len(expected), "dlq": invalid}
    assert sinks.enriched_keys() == expected
    assert sinks.bronze_keys() == expected
    assert sinks.hot_store_points() == len(expected)
    assert len(sinks.dlq_reasons()) == invalid
