"""Deterministic defects for simulated payloads: the bad input a real fleet sends now and then.

Each defect produces a payload the schema must refuse, with the reason it must give, so tests and
the demo can check that every bad payload is accounted for. Issue D adds duplicates, late and
out-of-order events on top.
"""

from __future__ import annotations

import copy
import random
from typing import Any, Callable, Iterable, Iterator

from udfs import telemetry_schema as schema


def _battery_over_100(event: dict[str, Any]) -> None:
    event["battery"]["percent"] = 150


def _no_latitude(event: dict[str, Any]) -> None:
    del event["location"]["lat"]


def _naive_timestamp(event: dict[str, Any]) -> None:
    event["timestamp"] = event["timestamp"].rstrip("Z")


def _vehicle_id_as_text(event: dict[str, Any]) -> None:
    event["vehicle_id"] = f"scooter-{event['vehicle_id']}"


# name → (mutation, the rejection reason the schema must give)
DEFECTS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "battery_over_100": (_battery_over_100, schema.OUT_OF_RANGE),
    "no_latitude": (_no_latitude, schema.MISSING_FIELD),
    "naive_timestamp": (_naive_timestamp, schema.BAD_TIMESTAMP),
    "vehicle_id_as_text": (_vehicle_id_as_text, schema.WRONG_TYPE),
}


def with_defects(events: Iterable[dict[str, Any]], total: int, count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Corrupt exactly `count` of the first `total` events, cycling through DEFECTS."""
    if not 0 <= count <= total:
        raise ValueError(f"defects must be between 0 and the number of events ({total}), got {count}")
    chosen = set(random.Random(seed).sample(range(total), count))
    kinds = list(DEFECTS.values())
    made = 0
    for index, event in enumerate(events):
        if index in chosen:
            event = copy.deepcopy(event)
            kinds[made % len(kinds)][0](event)
            made += 1
        yield event


def with_resends(events: Iterable[dict[str, Any]], count: int, seed: int = 11) -> Iterator[dict[str, Any]]:
    """The events, then `count` of them again: an edge agent re-sending its spool after an outage."""
    events = list(events)
    if not 0 <= count <= len(events):
        raise ValueError(f"re-sends must be between 0 and the number of events ({len(events)}), got {count}")
    yield from events
    for index in sorted(random.Random(seed).sample(range(len(events)), count)):
        yield copy.deepcopy(events[index])
