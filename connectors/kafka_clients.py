"""Plain (non-Flink) Kafka clients: the settings every Python producer and reader here shares.

confluent-kafka (librdkafka) rather than kafka-python: idempotent and transactional producers,
read_committed consumers, and the Java clients' murmur2 partitioner, so a vehicle's events land on
the same partition whether a Python bridge or a Java/Flink producer wrote them.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from confluent_kafka import Consumer, Producer


def producer_config(bootstrap_servers: str, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap_servers,
        # Exactly-once per partition from the producer's side: no duplicates on retry, order kept.
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "lz4",
        "partitioner": "murmur2_random",  # same key → same partition as Java's default partitioner
        "linger.ms": 5,
        "batch.num.messages": 10_000,
        "queue.buffering.max.messages": 1_000_000,
        **overrides,
    }


def consumer_config(bootstrap_servers: str, group_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        # Only what exactly-once producers committed; aborted transactions are never seen.
        "isolation.level": "read_committed",
        **overrides,
    }


def make_producer(bootstrap_servers: str, **overrides: Any) -> Producer:
    return Producer(producer_config(bootstrap_servers, **overrides))


def make_consumer(bootstrap_servers: str, group_id: str, **overrides: Any) -> Consumer:
    return Consumer(consumer_config(bootstrap_servers, group_id, **overrides))


def end_offsets(bootstrap_servers: str, topic: str, timeout_s: float = 30.0) -> dict[int, int]:
    """High watermark (next offset to be written) of every partition of `topic`.

    Retries while leadership settles: a topic created a moment ago is in metadata before its
    partitions answer offset requests.
    """
    from confluent_kafka import TopicPartition

    from connectors.kafka_offsets import retry_settling

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "fleet-telemetry-offsets-probe", "enable.auto.commit": False})
    deadline = time.monotonic() + timeout_s
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise KeyError(f"topic {topic!r} does not exist on {bootstrap_servers}")
        result = {}
        for partition in metadata.topics[topic].partitions:
            watermarks = functools.partial(
                consumer.get_watermark_offsets, TopicPartition(topic, partition), timeout=timeout_s
            )
            _low, high = retry_settling(watermarks, timeout_s=max(0.0, deadline - time.monotonic()))
            result[partition] = high
        return result
    finally:
        consumer.close()


def read_values(
    bootstrap_servers: str, topic: str, start: dict[int, int] | None = None, *, idle_s: float = 1.0, timeout_s: float = 120.0
) -> list[bytes]:
    """Committed values of `topic` from `start` (default: the beginning) up to now, as any
    read_committed consumer sees them. Stops when every partition has reached the end offsets
    taken at the start, or nothing arrived for `idle_s` (an exactly-once producer's open
    transaction holds the read position back: what it has not committed is not there yet)."""
    from confluent_kafka import TopicPartition

    end = end_offsets(bootstrap_servers, topic)
    consumer = make_consumer(bootstrap_servers, f"fleet-telemetry-reader-{time.time_ns()}")
    values: list[bytes] = []
    try:
        consumer.assign([TopicPartition(topic, p, (start or {}).get(p, 0)) for p in end])
        deadline = time.monotonic() + timeout_s
        idle_until = time.monotonic() + max(idle_s, 3.0)  # the first fetch takes a moment
        todo = {p for p, high in end.items() if (start or {}).get(p, 0) < high}
        while todo and time.monotonic() < min(idle_until, deadline):
            batch = [m for m in consumer.consume(num_messages=10_000, timeout=0.3) if m.error() is None]
            if batch:
                # Only up to the end offsets taken at the start: a topic still written to (a live
                # platform) would otherwise keep the read going, and past "now". A message without
                # an error has its partition and offset; a tombstone (no value) is not a value.
                for m in batch:
                    value, partition, offset = m.value(), m.partition(), m.offset()
                    if value is not None and partition is not None and offset is not None and offset < end[partition]:
                        values.append(value)
                idle_until = time.monotonic() + idle_s
            todo = {tp.partition for tp in consumer.position([TopicPartition(topic, p) for p in todo]) if tp.offset < end[tp.partition]}
    finally:
        consumer.close()
    return values
