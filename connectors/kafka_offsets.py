"""Offset look-ups on a topic with confluent-kafka: where each partition's log starts and ends, which
offset a record time maps to, and what a consumer group has committed.

Plain data in and out, so the backfill's range logic (jobs/backfill/ranges.py) stays testable
without a broker. Nothing here joins a group or commits: the probes only read metadata.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from connectors.retry import retry_call

T = TypeVar("T")

# Errors a topic shows while its partitions' leadership settles (a topic created a moment ago).
_SETTLING = {
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.UNKNOWN_TOPIC_OR_PART,
}
# And a group's coordinator for a while after the broker (re)starts: it loads __consumer_offsets first.
_COORDINATOR_SETTLING = _SETTLING | {
    KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def retry_settling(call: Callable[[], T], timeout_s: float) -> T:
    """`call()`, again every 0.2 s while it fails with a settling error, for up to `timeout_s`."""
    return retry_call(call, retry_if=_settling, wait=0.2, deadline_s=timeout_s)


def _kafka_error_in(codes: set[int]) -> Callable[[BaseException], bool]:
    return lambda error: isinstance(error, KafkaException) and error.args[0].code() in codes


_settling = _kafka_error_in(_SETTLING)
_coordinator_settling = _kafka_error_in(_COORDINATOR_SETTLING)


class UnknownTopic(KeyError):
    """The topic does not exist on the broker (auto-creation is off, so a typo stays a typo)."""


@dataclass(frozen=True)
class LogBounds:
    """A partition's log: the first offset still stored and the next offset to be written."""

    start: int
    end: int


class OffsetProbe:
    """One metadata-only consumer for several look-ups; use as a context manager."""

    def __init__(self, bootstrap_servers: str, *, timeout_s: float = 30.0):
        self.timeout_s = timeout_s
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap_servers, "group.id": "fleet-telemetry-offsets-probe",
            "enable.auto.commit": False,
            # The log's real end, not the last stable offset: records of a transaction still open
            # belong to the range, and a read_committed job waits for it to finish.
            "isolation.level": "read_uncommitted",
        })

    def __enter__(self) -> OffsetProbe:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._consumer.close()

    def topic_exists(self, topic: str) -> bool:
        metadata = self._consumer.list_topics(topic, timeout=self.timeout_s)
        return topic in metadata.topics and metadata.topics[topic].error is None

    def partitions(self, topic: str) -> list[int]:
        metadata = self._consumer.list_topics(topic, timeout=self.timeout_s)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise UnknownTopic(topic)
        return sorted(metadata.topics[topic].partitions)

    def bounds(self, topic: str) -> dict[int, LogBounds]:
        """Log start and end of every partition of `topic`, as read now."""
        result = {}
        for partition in self.partitions(topic):
            low, high = self._retry(functools.partial(
                self._consumer.get_watermark_offsets, TopicPartition(topic, partition),
                timeout=self.timeout_s, cached=False,
            ))
            result[partition] = LogBounds(low, high)
        return result

    def offsets_at(self, topic: str, partitions: Iterable[int], timestamp_ms: int) -> dict[int, int | None]:
        """Per partition, the first offset whose record time is at or after `timestamp_ms`; None when
        no record is (the partition ends before that time)."""
        wanted = [TopicPartition(topic, p, timestamp_ms) for p in partitions]
        if not wanted:
            return {}
        found = self._retry(lambda: self._consumer.offsets_for_times(wanted, timeout=self.timeout_s))
        result: dict[int, int | None] = {}
        for tp in found:
            if tp.error is not None:
                raise KafkaException(tp.error)
            result[tp.partition] = tp.offset if tp.offset >= 0 else None
        return result

    def _retry(self, call: Callable[[], T]) -> T:
        return retry_settling(call, self.timeout_s)


def committed_offsets(
    bootstrap_servers: str, group_id: str, topic: str, *, timeout_s: float = 30.0,
) -> dict[int, int]:
    """What `group_id` has committed on each partition of `topic` (partitions without a commit are
    left out). Reading this commits nothing and does not join the group. Right after a broker
    start the coordinator is still loading: asked again every 0.2 s for up to `timeout_s`."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap_servers, "group.id": group_id, "enable.auto.commit": False,
    })
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s)
        if topic not in metadata.topics or metadata.topics[topic].error is not None:
            raise UnknownTopic(topic)
        asked = [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
        committed = retry_call(lambda: consumer.committed(asked, timeout=timeout_s), retry_if=_coordinator_settling,
                               wait=0.2, deadline_s=timeout_s)
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}
    finally:
        consumer.close()
