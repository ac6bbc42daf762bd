"""KafkaSource for PyFlink jobs, and the start/stop positions that live jobs and backfills choose.

Positions are written as text so the CLI and config can carry them:
  committed             the group's committed offsets; earliest where it has none (live default)
  earliest | latest
  timestamp=<ISO-8601>  the first offset at or after that time, per partition (backfill by time)
  offsets=<p>:<o>,...   explicit per-partition offsets (backfill by offset; the demo's "this run")
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from pyflink.common.serialization import ByteArraySchema
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaSource,
    KafkaTopicPartition,
)

from udfs.telemetry_schema import parse_timestamp_ms


class PositionError(ValueError):
    """A start or stop position that cannot be understood."""


@dataclass(frozen=True)
class OffsetPosition:
    kind: str  # committed | earliest | latest | timestamp | offsets
    timestamp_ms: int | None = None
    offsets: Mapping[int, int] | None = None

    @staticmethod
    def parse(text: str) -> OffsetPosition:
        text = text.strip()
        if text in ("committed", "earliest", "latest"):
            return OffsetPosition(text)
        kind, _, value = text.partition("=")
        if kind == "timestamp":
            millis = parse_timestamp_ms(value)
            if millis is None:
                raise PositionError(f"timestamp={value!r}: expected ISO-8601 with a zone, e.g. 2025-01-15T14:00:00Z")
            return OffsetPosition("timestamp", timestamp_ms=millis)
        if kind == "offsets":
            try:
                pairs = dict(
                    (int(p), int(o)) for p, o in (item.split(":") for item in value.split(",") if item)
                )
            except ValueError:
                raise PositionError(f"offsets={value!r}: expected partition:offset pairs, e.g. 0:100,1:250") from None
            if not pairs or any(p < 0 or o < 0 for p, o in pairs.items()):
                raise PositionError(f"offsets={value!r}: need at least one non-negative partition:offset")
            return OffsetPosition("offsets", offsets=pairs)
        raise PositionError(f"position {text!r}: committed, earliest, latest, timestamp=<ISO>, or offsets=<p:o,...>")

    def initializer(self, topic: str) -> KafkaOffsetsInitializer:
        if self.kind == "committed":
            return KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
        if self.kind == "earliest":
            return KafkaOffsetsInitializer.earliest()
        if self.kind == "latest":
            return KafkaOffsetsInitializer.latest()
        if self.kind == "timestamp":
            if self.timestamp_ms is None:
                raise PositionError("position 'timestamp' without a time")
            return KafkaOffsetsInitializer.timestamp(self.timestamp_ms)
        if self.offsets is None:
            raise PositionError(f"position {self.kind!r} without offsets")
        return KafkaOffsetsInitializer.offsets({KafkaTopicPartition(topic, p): o for p, o in self.offsets.items()})


def raw_bytes_source(
    bootstrap_servers: str,
    topic: str,
    group_id: str,
    *,
    start: OffsetPosition,
    stop: OffsetPosition | None = None,
    properties: Mapping[str, str] | None = None,
    commit_offsets: bool = True,
    partitions: Collection[tuple[str, int]] | None = None,
) -> KafkaSource:
    """Values as raw bytes: parsing belongs to the job (udfs), so a bad payload reaches the DLQ intact.

    With `stop` the source is bounded (backfill, smoke runs); without it the job runs forever.
    `partitions` (topic, partition) replaces subscribing to every partition of `topic`; with
    `offsets=` positions, a partition they do not name starts and stops at the group's committed
    offset, else the earliest (so for a group that never commits, its range is empty).
    """
    builder = KafkaSource.builder().set_bootstrap_servers(bootstrap_servers)
    if partitions is None:
        builder = builder.set_topics(topic)
    else:
        builder = builder.set_partitions({KafkaTopicPartition(t, p) for t, p in partitions})
    builder = (
        builder
        .set_group_id(group_id)
        .set_starting_offsets(start.initializer(topic))
        .set_value_only_deserializer(ByteArraySchema())
        .set_property("isolation.level", "read_committed")
        # Offsets are committed on checkpoint completion, for monitoring lag; recovery uses state.
        # A backfill turns this off: its group must not look like a consumer of the topic.
        .set_property("commit.offsets.on.checkpoint", "true" if commit_offsets else "false")
        .set_property("client.id.prefix", group_id)
    )
    if stop is not None:
        if stop.kind == "committed":
            raise PositionError("a stop position cannot be 'committed'")
        builder = builder.set_bounded(stop.initializer(topic))
    for key, value in (properties or {}).items():
        builder = builder.set_property(key, value)
    return builder.build()
