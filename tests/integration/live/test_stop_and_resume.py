"""Ctrl-C stops everything `telemetry live` started (checked in /proc), keeps the data, and the next
start resumes where the first stopped — each job from the savepoint its stop took (its Kafka
offsets, which its consumer group also committed, and its state): every input event of the first
session reaches telemetry-enriched exactly once across the restart. Runs last in this package."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from confluent_kafka import TopicPartition

from connectors.kafka_clients import end_offsets, make_consumer
from connectors.kafka_offsets import committed_offsets
from fleet.live.processes import group_members

pytestmark = pytest.mark.integration


def _committed_past(bootstrap: str, group: str, topic: str, end: dict[int, int]) -> bool:
    committed = committed_offsets(bootstrap, group, topic)
    return all(committed.get(p, 0) >= high for p, high in end.items())


def _read(bootstrap: str, topic: str, end: dict[int, int]) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every committed record below `end`."""
    consumer = make_consumer(bootstrap, "test-live-resume-reader")
    records: list[tuple[int, int, bytes]] = []
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in end])
        todo = {p for p, high in end.items() if high > 0}
        while todo:
            for m in consumer.consume(5_000, timeout=2.0):
                if m.error() is None and m.offset() < end[m.partition()]:
                    records.append((m.partition(), m.offset(), m.value()))
            todo = {tp.partition for tp in consumer.position([TopicPartition(topic, p) for p in todo]) if tp.offset < end[tp.partition]}
    finally:
        consumer.close()
    return records


def _key(value: bytes) -> tuple[int, str] | None:
    try:
        event = orjson.loads(value)
        return event["vehicle_id"], event["timestamp"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def test_ctrl_c_stops_every_process_and_the_next_start_resumes_exactly_once(live_platform):
    config = live_platform.config
    status = live_platform.wait_steady()
    pids = {pid for p in status["processes"] for pid in (p["pid"], *group_members(p["pid"]))}
    assert len(pids) >= 6, status["processes"]  # sim, bridge, and each job's Python client + JVM

    assert live_platform.interrupt() == 0, live_platform.log_tail()
    log = live_platform.log.read_text()
    assert "no process left" in log and "LEFT RUNNING" not in log, live_platform.log_tail()
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1][:3]]
    assert alive == [], f"still running after Ctrl-C: {alive}"
    # It started the servers itself, so it stopped them; the data stayed.
    assert live_platform.cli_run("infra", "status").returncode == 3
    assert Path(config.stores.local_path).stat().st_size > 0
    trace = live_platform.cli_run("query", "status", "--vehicle", "10000")
    assert trace.returncode == 0 and "10000" in trace.stdout, trace.stdout + trace.stderr

    # What the first session left: the input's end and the pipeline's committed offsets.
    assert live_platform.cli_run("infra", "up", "kafka").returncode == 0
    bootstrap, topic = config.kafka.bootstrap_servers, config.kafka.topic("telemetry").name
    first_end = end_offsets(bootstrap, topic)
    # (The broker has just restarted: committed_offsets waits out its coordinator loading.)
    first_committed = committed_offsets(bootstrap, config.pipeline.group_id, topic)
    assert all(0 < first_committed.get(p, 0) <= first_end[p] for p in first_end), (first_committed, first_end)

    live_platform.start()
    live_platform.wait_for(
        lambda s: _committed_past(bootstrap, config.pipeline.group_id, topic, first_end),
        timeout_s=300, what="the pipeline past the first session's input",
    )

    log = live_platform.log.read_text()
    assert log.count("resumes from the savepoint of its last stop") == 2, live_platform.log_tail()

    # Expected, computed here from the input: each unique valid (vehicle, time) once. The bridge
    # sent only valid payloads to the topic; the pipeline's dedup state came back with the savepoint,
    # so an exact repeat on either side of the restart is still a repeat.
    expected: Counter = Counter()
    for key in {k for _, _, v in _read(bootstrap, topic, first_end) if (k := _key(v)) is not None}:
        expected[key] = 1
    enriched_topic = config.kafka.topic("enriched").name
    got = Counter(k for _, _, v in _read(bootstrap, enriched_topic, end_offsets(bootstrap, enriched_topic)) if (k := _key(v)) in expected)
    missing = [k for k in expected if got[k] < expected[k]]
    doubled = [k for k in expected if got[k] > expected[k]]
    assert not missing and not doubled, f"{len(missing)} input events missing, {len(doubled)} written more than once: {missing[:3]} {doubled[:3]}"
    assert sum(expected.values()) > 1_000
