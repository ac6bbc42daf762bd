"""Deterministic defects for simulated payloads: the bad input a real fleet sends now and then.

Each defect produces a payload the schema must refuse, with the reason it must give, so tests and
the demo can check that every bad payload is accounted for: schema-invalid JSON (DEFECTS) and raw
bytes that are not JSON at all (MALFORMED, sent as a `RawPayload`). Duplicates, late and
out-of-order events, offline vehicles, geofence exits and low batteries are `device_sim.scenario`'s.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any

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


class RawPayload(bytes):
    """Payload bytes to send exactly as they are (outputs do not JSON-encode them), e.g. a malformed
    payload. `vehicle_id` is the vehicle that sent them — the Kafka key and the MQTT topic — or None.

    A `bytes` subclass: anything that takes bytes takes it; equality is the bytes' equality.
    """

    vehicle_id: int | None

    def __new__(cls, data: bytes, vehicle_id: int | None = None) -> RawPayload:
        payload = super().__new__(cls, data)
        payload.vehicle_id = vehicle_id
        return payload

    def __repr__(self) -> str:
        return f"RawPayload({bytes(self)!r}, vehicle_id={self.vehicle_id})"


def _truncated(payload: bytes, _vehicle_id: int, _rng: random.Random) -> bytes:
    return payload[: max(1, len(payload) // 2)]  # a frame cut off mid-object


def _binary(_payload: bytes, _vehicle_id: int, rng: random.Random) -> bytes:
    return b"\xff\xfe" + bytes(rng.getrandbits(8) for _ in range(46))  # never UTF-8, never JSON


def _text(_payload: bytes, vehicle_id: int, _rng: random.Random) -> bytes:
    return b"ERR GPS NOFIX vehicle=%d" % vehicle_id  # a firmware debug line on the telemetry topic


# name → maker(valid payload bytes, vehicle_id, rng) of raw bytes that are not JSON; the schema's
# reason for every one of them is BAD_JSON.
MALFORMED: dict[str, Callable[[bytes, int, random.Random], bytes]] = {
    "truncated": _truncated,
    "binary": _binary,
    "text": _text,
}


def malformed_payload(kind: str, payload: bytes, vehicle_id: int, rng: random.Random) -> RawPayload:
    """Raw bytes of `kind` (see MALFORMED) in place of `payload`, sent by `vehicle_id`."""
    return RawPayload(MALFORMED[kind](payload, vehicle_id, rng), vehicle_id)


def schema_defect(event: dict[str, Any], kind: str) -> tuple[dict[str, Any], str]:
    """A copy of `event` with defect `kind` (see DEFECTS) and the reason the schema must give."""
    mutate, reason = DEFECTS[kind]
    event = copy.deepcopy(event)
    mutate(event)
    return event, reason
