"""10,000 seed-format events through the real broker come back complete, per vehicle on one
partition and in the order they were produced."""

from collections import defaultdict

import orjson
import pytest

from connectors.kafka_clients import make_consumer
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import produce_events
from udfs.telemetry_schema import parse_timestamp_ms

pytestmark = pytest.mark.integration

EVENTS = 10_000


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list:
    import time

    consumer = make_consumer(bootstrap, f"roundtrip-{topic}")
    consumer.subscribe([topic])
    messages = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=5_000, timeout=1.0):
                assert message.error() is None, message.error()
                messages.append(message)
        # Anything beyond `expected` would be a duplicate: give it a moment to show up.
        for message in consumer.consume(num_messages=1_000, timeout=2.0):
            messages.append(message)
    finally:
        consumer.close()
    return messages


def test_events_come_back_complete_per_vehicle_partition_and_in_order(kafka_bootstrap, fresh_topic):
    topic = fresh_topic(partitions=6)
    produced = list(Fleet(FleetSpec(vehicles=100, seed=21)).take(EVENTS))
    report = produce_events(kafka_bootstrap, topic, produced)
    assert (report.sent, report.acknowledged, report.failed) == (EVENTS, EVENTS, 0)

    messages = consume_all(kafka_bootstrap, topic, EVENTS)
    assert len(messages) == EVENTS

    received = [orjson.loads(m.value()) for m in messages]
    assert sorted(map(orjson.dumps, received)) == sorted(map(orjson.dumps, produced))

    partitions_of = defaultdict(set)
    order_of = defaultdict(list)
    for message, event in zip(messages, received):
        assert message.key() == str(event["vehicle_id"]).encode()
        partitions_of[event["vehicle_id"]].add(message.partition())
        order_of[event["vehicle_id"]].append(parse_timestamp_ms(event["timestamp"]))
    assert all(len(p) == 1 for p in partitions_of.values())
    assert len({p for ps in partitions_of.values() for p in ps}) > 1  # keys really spread over partitions

    produced_order = defaultdict(list)
    for event in produced:
        produced_order[event["vehicle_id"]].append(parse_timestamp_ms(event["timestamp"]))
    assert order_of == produced_order
