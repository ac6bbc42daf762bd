"""The compacted `vehicle-registry` topic: publish registry records, read a snapshot of it.

The pipeline takes registry updates as broadcast state, and on start also reads the topic up to its
end, so the first telemetry after a cold start is not enriched as 'unknown' merely because the
registry stream had not caught up yet.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from confluent_kafka import KafkaError, Message, TopicPartition

from connectors.kafka_clients import end_offsets, make_consumer, make_producer
from udfs.vehicle_registry import parse_registry_record


def publish_registry(bootstrap_servers: str, topic: str, records: Iterable[dict[str, Any]]) -> int:
    """Key = vehicle_id, so compaction keeps the latest type per vehicle. Returns records acknowledged."""
    producer = make_producer(bootstrap_servers)
    acknowledged = 0
    first_error: str | None = None

    def on_delivery(error: KafkaError | None, _message: Message) -> None:
        nonlocal acknowledged, first_error
        if error is None:
            acknowledged += 1
        else:
            first_error = first_error or str(error)

    sent = 0
    for record in records:
        producer.produce(topic, orjson.dumps(record), str(record["vehicle_id"]).encode(), on_delivery=on_delivery)
        sent += 1
        if sent % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)
    if acknowledged != sent:
        raise RuntimeError(f"registry: {acknowledged} of {sent} records acknowledged: {first_error}")
    return sent


def read_registry_snapshot(bootstrap_servers: str, topic: str, timeout_s: float = 60.0) -> dict[int, str]:
    """Everything on the topic now, latest record per vehicle winning. Invalid records are skipped
    here: the pipeline's registry stream sends them to the DLQ."""
    ends = {p: o for p, o in end_offsets(bootstrap_servers, topic).items() if o > 0}
    registry: dict[int, str] = {}
    if not ends:
        return registry
    consumer = make_consumer(bootstrap_servers, f"registry-snapshot-{time.time_ns()}")
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        remaining = dict(ends)
        deadline = time.monotonic() + timeout_s
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"registry snapshot of {topic} incomplete after {timeout_s}s: {remaining}")
            for message in consumer.consume(num_messages=10_000, timeout=0.5):
                if message.error() is not None:
                    continue
                value, partition, offset = message.value(), message.partition(), message.offset()
                if partition is None or offset is None:  # a message without an error has both
                    continue
                # A tombstone (no value) is no record, as parse_registry_record says of any non-JSON.
                parsed = parse_registry_record(value) if value is not None else None
                if parsed is not None:
                    registry[parsed[0]] = parsed[1]
                if offset + 1 >= remaining.get(partition, 0):
                    remaining.pop(partition, None)
    finally:
        consumer.close()
    return registry
