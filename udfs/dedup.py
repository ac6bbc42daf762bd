"""Per-vehicle duplicate detection with a bounded memory: the last N event times of each vehicle.

A duplicate is an exact repeat of (vehicle_id, timestamp): MQTT QoS 1 redelivery, a bridge
redelivering after a Kafka outage, or the edge agent re-sending the messages that were in flight
when its connection dropped. What each vehicle keeps is the sorted set of its `capacity` newest
distinct event times, packed as int64s (8 bytes each), so state grows with the fleet, not with time.

How long a repeat is recognised is counted in events, not minutes: a repeat is dropped as long as
fewer than `capacity` newer distinct events of that vehicle arrived since the original. That covers
the edge agent's re-sends after an outage of any length (no newer event can overtake them: the agent
drains its spool in order before sending new readings). At capacity 128 it is ~25 s of a 5 Hz
trip, ~2 min at 1 Hz, ~20 min parked at 0.1 Hz.

Events older than everything kept, when the set is full, cannot be judged and are KEPT (counted as
`beyond_horizon`): losing a real event is worse than a rare late duplicate, which every store
absorbs (hot store and Bronze→Silver are keyed by (vehicle_id, timestamp)). Out-of-order events
that are not repeats are always kept.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from enum import IntEnum
from typing import Final

DEFAULT_CAPACITY: Final = 128


class Verdict(IntEnum):
    NEW = 0
    DUPLICATE = 1
    BEYOND_HORIZON = 2  # older than every kept time with the set full: kept, not judged


def unpack(packed: bytes | None) -> array[int]:
    times = array("q")
    if packed:
        times.frombytes(packed)
    return times


def pack(times: array[int]) -> bytes:
    return times.tobytes()


def observe(times: array[int], event_time_ms: int, capacity: int = DEFAULT_CAPACITY) -> Verdict:
    """Judge one event time against `times` (sorted ascending) and remember it if new. In place."""
    count = len(times)
    if count == 0 or event_time_ms > times[-1]:  # the common case: in order
        times.append(event_time_ms)
        if count + 1 > capacity:
            del times[0]
        return Verdict.NEW
    at = bisect_left(times, event_time_ms)
    if at < count and times[at] == event_time_ms:
        return Verdict.DUPLICATE
    if at == 0 and count >= capacity:
        return Verdict.BEYOND_HORIZON
    times.insert(at, event_time_ms)
    if count + 1 > capacity:
        del times[0]
    return Verdict.NEW


def remember(recent: bytes | None, event_time_ms: int, capacity: int = DEFAULT_CAPACITY) -> tuple[bool, bytes | None]:
    """One event against a packed state: (is_duplicate, the new packed state or None if unchanged).

    For callers that keep the state as bytes (a Kafka Streams-like store); the Flink job keeps the
    unpacked arrays of a whole batch and writes them back once.
    """
    times = unpack(recent)
    verdict = observe(times, event_time_ms, capacity)
    if verdict is Verdict.NEW:
        return False, pack(times)
    return verdict is Verdict.DUPLICATE, None
