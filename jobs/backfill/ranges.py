"""What a backfill replays: a time range or an offset range of `vehicle-telemetry`, resolved once to
exact half-open offset ranges [start, end) per partition.

Pure: the Kafka look-ups (log bounds, offsets for a time) are passed in as plain data, so every rule
here is tested without a broker. Record time is the Kafka record's timestamp, which producers here
leave to the client's clock at send time: the time the event was ingested, not its event time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from connectors.kafka_offsets import LogBounds
from udfs.telemetry_schema import format_timestamp_ms, parse_timestamp_ms


class BackfillError(ValueError):
    """A backfill that cannot run as asked: bad input, or a refusal with the reason."""


@dataclass(frozen=True)
class TimeRange:
    from_ms: int
    to_ms: int  # exclusive

    def describe(self) -> dict[str, str]:
        return {"from": format_timestamp_ms(self.from_ms), "to": format_timestamp_ms(self.to_ms)}


@dataclass(frozen=True)
class OffsetRange:
    start: Mapping[int, int]
    end: Mapping[int, int]  # exclusive

    def describe(self) -> dict[str, str]:
        return {"offsets_from": format_offsets(self.start), "offsets_to": format_offsets(self.end)}


RangeRequest = TimeRange | OffsetRange


@dataclass(frozen=True)
class PartitionRange:
    partition: int
    start: int
    end: int  # exclusive
    clamped: bool = False  # the start asked for was already deleted by retention

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class ResolvedRange:
    """Exact offsets per partition; partitions with nothing to read are kept, with size 0."""

    topic: str
    partitions: tuple[PartitionRange, ...]

    @property
    def records(self) -> int:
        return sum(p.size for p in self.partitions)

    @property
    def non_empty(self) -> tuple[PartitionRange, ...]:
        return tuple(p for p in self.partitions if p.size > 0)

    def start_offsets(self) -> dict[int, int]:
        return {p.partition: p.start for p in self.non_empty}

    def end_offsets(self) -> dict[int, int]:
        return {p.partition: p.end for p in self.non_empty}

    def as_json(self) -> dict[str, list[int]]:
        return {str(p.partition): [p.start, p.end] for p in self.partitions}

    def overlaps(self, other: Mapping[int, tuple[int, int]]) -> bool:
        """Whether any record of this range is also in `other` (partition → [start, end))."""
        for p in self.non_empty:
            start, end = other.get(p.partition, (0, 0))
            if start < end and p.start < end and start < p.end:
                return True
        return False


def format_offsets(offsets: Mapping[int, int]) -> str:
    return ",".join(f"{p}:{o}" for p, o in sorted(offsets.items()))


def parse_offsets(text: str, option: str) -> dict[int, int]:
    """'0:100,1:250' → {0: 100, 1: 250}; each partition once, offsets not negative."""
    result: dict[int, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        partition, sep, offset = item.partition(":")
        try:
            p, o = int(partition), int(offset)
        except ValueError:
            p = o = -1
        if not sep or p < 0 or o < 0:
            raise BackfillError(f"{option} {text!r}: expected partition:offset pairs such as 0:100,1:250")
        if p in result:
            raise BackfillError(f"{option} {text!r}: partition {p} is given twice")
        result[p] = o
    if not result:
        raise BackfillError(f"{option} {text!r}: give at least one partition:offset")
    return result


def _time(text: str, option: str) -> int:
    millis = parse_timestamp_ms(text)
    if millis is None:
        raise BackfillError(f"{option} {text!r}: expected ISO-8601 with a zone, e.g. 2025-01-15T14:00:00Z")
    return millis


def parse_request(
    *,
    time_from: str | None = None,
    time_to: str | None = None,
    offsets_from: str | None = None,
    offsets_to: str | None = None,
    now_ms: int,
) -> RangeRequest:
    """Either --from/--to or --offsets-from/--offsets-to, each pair complete, never both.

    Both ends are required: a range that ended "now" would resolve differently next time, and
    the same command must always mean the same run.
    """
    by_time = time_from is not None or time_to is not None
    by_offsets = offsets_from is not None or offsets_to is not None
    if by_time and by_offsets:
        raise BackfillError("give a time range (--from/--to) or an offset range (--offsets-from/--offsets-to), not both")
    if by_time:
        if time_from is None or time_to is None:
            raise BackfillError("a time range needs both --from and --to")
        start, end = _time(time_from, "--from"), _time(time_to, "--to")
        if end <= start:
            raise BackfillError(f"--to {time_to} must be after --from {time_from}")
        if end > now_ms:
            raise BackfillError(
                f"--to {time_to} is in the future: records for that time may still arrive, so the range "
                "would resolve differently next time; backfill only a range that has ended"
            )
        return TimeRange(start, end)
    if by_offsets:
        if offsets_from is None or offsets_to is None:
            raise BackfillError("an offset range needs both --offsets-from and --offsets-to")
        start, end = parse_offsets(offsets_from, "--offsets-from"), parse_offsets(offsets_to, "--offsets-to")
        if set(start) != set(end):
            raise BackfillError(
                f"--offsets-from names partitions {sorted(start)} but --offsets-to names {sorted(end)}: give both ends of each"
            )
        backwards = [p for p in sorted(start) if end[p] < start[p]]
        if backwards:
            raise BackfillError(
                "the end is before the start on partition(s) "
                + ", ".join(f"{p} ({start[p]} > {end[p]})" for p in backwards)
            )
        return OffsetRange(start, end)
    raise BackfillError("say what to replay: --from ISO --to ISO, or --offsets-from p:o,... --offsets-to p:o,...")


def resolve_time(
    topic: str,
    request: TimeRange,
    bounds: Mapping[int, LogBounds],
    first_at_from: Mapping[int, int | None],
    first_at_to: Mapping[int, int | None],
) -> ResolvedRange:
    """[first offset at/after from, first offset at/after to) per partition. A partition with no
    record at/after a time uses its end offset as read now; offsets stay inside the stored log."""
    ranges = []
    for partition in sorted(bounds):
        log = bounds[partition]
        start = _inside(first_at_from.get(partition), log)
        end = max(_inside(first_at_to.get(partition), log), start)
        ranges.append(PartitionRange(partition, start, end))
    return ResolvedRange(topic, tuple(ranges))


def _inside(offset: int | None, log: LogBounds) -> int:
    if offset is None:
        return log.end
    return min(max(offset, log.start), log.end)


def resolve_offsets(topic: str, request: OffsetRange, bounds: Mapping[int, LogBounds]) -> ResolvedRange:
    """The offsets as given, checked against the log: every partition must exist and no end may lie
    beyond the partition's end. A start that retention already deleted moves to the log start."""
    unknown = sorted(set(request.start) - set(bounds))
    if unknown:
        raise BackfillError(f"{topic} has no partition {', '.join(map(str, unknown))} (it has 0..{max(bounds)})")
    beyond = [p for p in sorted(request.end) if request.end[p] > bounds[p].end]
    if beyond:
        raise BackfillError(
            "offset beyond the end of the log on partition(s) "
            + ", ".join(f"{p} (asked {request.end[p]}, ends at {bounds[p].end})" for p in beyond)
        )
    ranges = []
    for partition in sorted(request.start):  # partitions not named are not part of the range at all
        log = bounds[partition]
        asked_start, asked_end = request.start[partition], request.end[partition]
        start, end = max(asked_start, log.start), max(asked_end, log.start)
        ranges.append(PartitionRange(partition, start, end, clamped=asked_start < log.start and asked_start < asked_end))
    return ResolvedRange(topic, tuple(ranges))


def format_resolved(resolved: ResolvedRange) -> list[str]:
    lines = []
    for p in resolved.partitions:
        if p.size == 0:
            lines.append(f"partition {p.partition:>3}: empty" + ("  (deleted by retention)" if p.clamped else ""))
            continue
        note = "  (the start asked for was deleted by retention: from the log start)" if p.clamped else ""
        lines.append(f"partition {p.partition:>3}: offsets {p.start}..{p.end} ({p.size} records){note}")
    lines.append(f"{resolved.records} records in {len(resolved.non_empty)} of {len(resolved.partitions)} partitions")
    return lines
