"""A bounded read of a topic from a point in time, for queries (`telemetry query dlq`).

Bounded twice over: each partition is read from the first record whose Kafka timestamp is at or
after `since_ms` up to its end offset taken when the read starts, so a topic that keeps growing
(the pipeline writing while an operator looks) still gives an answer, and a stop when nothing
arrives for `idle_s`: a read_committed reader cannot pass an exactly-once producer's open
transaction, and what it has not committed is not there yet.

A broker that does not answer is BrokerUnreachable, raised within `connect_timeout_s`, with
librdkafka's own connection log silenced: the caller says it once, in one line.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from connectors.kafka_offsets import UnknownTopic, retry_settling

CONNECT_TIMEOUT_S = 5.0

# librdkafka logs every failed connection attempt to stderr by default; a query says it once.
_QUIET = logging.getLogger("fleet.kafka_time_reader.librdkafka")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False

class BrokerUnreachable(ConnectionError):
    """No broker at the bootstrap address answered in time."""


@dataclass(frozen=True)
class TopicRead:
    """What a bounded read found: the committed values, and where it read each partition from/to."""

    values: tuple[bytes, ...]
    start: dict[int, int]  # partition → first offset read (== end: nothing at or after the time)
    end: dict[int, int]  # partition → end offset taken at the start of the read
    complete: bool  # every partition reached its end offset (False: stopped by idle_s or the deadline)


def read_since(
    bootstrap_servers: str,
    topic: str,
    since_ms: int,
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    idle_s: float = 1.0,
    timeout_s: float = 60.0,
) -> TopicRead:
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers,
        "group.id": f"fleet-telemetry-query-{time.time_ns()}",  # never committed: reads leave no trace
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",  # an aborted transaction's records are not the topic's
        "logger": _QUIET,
        "socket.connection.setup.timeout.ms": int(connect_timeout_s * 1000),
    })
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=connect_timeout_s)
        except KafkaException as exc:
            raise BrokerUnreachable(
                f"no Kafka broker answers at {bootstrap_servers} ({exc.args[0].str()})"
            ) from None
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise UnknownTopic(topic)
        partitions = sorted(metadata.topics[topic].partitions)
        # A topic created a moment ago is in metadata before its partitions answer offset requests.
        end: dict[int, int] = {}
        for p in partitions:
            _low, end[p] = retry_settling(functools.partial(
                consumer.get_watermark_offsets, TopicPartition(topic, p), timeout=timeout_s, cached=False,
            ), timeout_s)
        asked = [TopicPartition(topic, p, since_ms) for p in partitions]
        found = retry_settling(lambda: consumer.offsets_for_times(asked, timeout=timeout_s), timeout_s)
        # -1: no record at or after the time, so nothing of that partition is read.
        start = {tp.partition: end[tp.partition] if tp.offset < 0 else tp.offset for tp in found}
        wanted = [p for p in partitions if start[p] < end[p]]
        values, complete = _consume(
            consumer, topic, wanted, start, end, idle_s=idle_s, deadline=time.monotonic() + timeout_s,
        )
        return TopicRead(tuple(values), start, end, complete)
    finally:
        consumer.close()


def _consume(
    consumer: Consumer, topic: str, partitions: list[int], start: dict[int, int], end: dict[int, int], *,
    idle_s: float, deadline: float,
) -> tuple[list[bytes], bool]:
    if not partitions:
        return [], True
    consumer.assign([TopicPartition(topic, p, start[p]) for p in partitions])
    values: list[bytes] = []
    open_partitions = set(partitions)
    idle_until = time.monotonic() + max(idle_s, 3.0)  # the first fetch takes a moment
    while open_partitions and time.monotonic() < min(idle_until, deadline):
        batch = consumer.consume(num_messages=10_000, timeout=0.3)
        for message in batch:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                continue
            offset, partition, value = message.offset(), message.partition(), message.value()
            # A consumed record has an offset and a partition; a tombstone has no value to report.
            if offset is None or partition is None or value is None:
                continue
            if offset < end[partition]:  # later records arrived after the read began
                values.append(value)
        if batch:
            idle_until = time.monotonic() + idle_s
        # The position passes commit markers only with the next fetch, so it is asked for, not
        # inferred from the last record's offset.
        for tp in consumer.position([TopicPartition(topic, p) for p in open_partitions]):
            if tp.offset >= end[tp.partition]:
                open_partitions.discard(tp.partition)
    return values, not open_partitions
