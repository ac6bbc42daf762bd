"""Read back a benchmark's output topic: how many records, when the first and the last one was
written, and (optionally) how many distinct events they hold.

Times are the records' Kafka timestamps. The benchmark creates its output topics with
`message.timestamp.type=LogAppendTime`, so the broker stamps each record when it is appended
whatever the writer put there (a Flink sink may carry the input's timestamp over): first-to-last is
then the drain time as the broker saw it. Read read_committed, as any downstream consumer would, up
to the end offsets at the time of the call (the writer has finished by then).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition

from connectors.kafka_clients import end_offsets, make_consumer

# What every benchmark output topic is created with (see the module docstring).
OUTPUT_TOPIC_CONFIGS = {"message.timestamp.type": "LogAppendTime", "compression.type": "lz4", "cleanup.policy": "delete",
                        "retention.ms": str(24 * 3600 * 1000)}


@dataclass(frozen=True)
class TopicContents:
    topic: str
    records: int
    distinct: int | None  # distinct identities (see read_topic's `identity`), None when not asked
    first_ms: int | None
    last_ms: int | None
    log_append_time: bool  # every record carried a broker-assigned timestamp

    @property
    def span_s(self) -> float:
        return (self.last_ms - self.first_ms) / 1000 if self.first_ms is not None and self.last_ms is not None else 0.0

    @property
    def rate(self) -> float | None:
        """Records per second from the first record to the last (None for fewer than two)."""
        return self.records / self.span_s if self.records > 1 and self.span_s > 0 else None


def read_topic(bootstrap: str, topic: str, *, identity: Callable[[bytes, bytes | None], Hashable] | None = None,
               keep: Callable[[bytes, bytes | None, int], None] | None = None, timeout_s: float = 300.0) -> TopicContents:
    """Every committed record of `topic`. `identity(value, key)` names the event a record carries
    (counted distinct); `keep(value, key, timestamp_ms)` sees each record (e.g. to pick some out)."""
    end = end_offsets(bootstrap, topic)
    consumer = make_consumer(bootstrap, f"bench-reader-{time.time_ns()}", **{"fetch.max.bytes": 64 * 1024 * 1024})
    records, first, last, append_time = 0, None, None, True
    seen: set[Hashable] | None = set() if identity is not None else None
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in end])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batch = consumer.consume(num_messages=10_000, timeout=0.5)
            for message in batch:
                if message.error() is not None:
                    continue
                kind, stamp = message.timestamp()
                append_time = append_time and kind == TIMESTAMP_LOG_APPEND_TIME
                records += 1
                first = stamp if first is None or stamp < first else first
                last = stamp if last is None or stamp > last else last
                if seen is not None:
                    seen.add(identity(message.value(), message.key()))
                if keep is not None:
                    keep(message.value(), message.key(), stamp)
            # Transaction markers take offsets too: the position, not the record count, says "done".
            if not batch and all(tp.offset >= end[tp.partition] or (tp.offset < 0 and end[tp.partition] == 0)
                                 for tp in consumer.position(consumer.assignment())):
                break
    finally:
        consumer.close()
    return TopicContents(topic, records, len(seen) if seen is not None else None, first, last, append_time and records > 0)


def event_identity(value: bytes, _key: bytes | None) -> tuple:
    """(vehicle_id, timestamp) of an enriched event: the identity dedup works on."""
    import orjson

    event = orjson.loads(value)
    return event.get("vehicle_id"), event.get("timestamp")
