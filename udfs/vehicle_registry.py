"""Vehicle registry records: vehicle_id → vehicle_type, as the compacted `vehicle-registry` topic
(key = vehicle_id, value = JSON) or a JSON-lines file carries them."""

from __future__ import annotations

import orjson

# A vehicle type is a Timestream dimension and part of every enriched record: a short name, not a
# document (Timestream takes at most 2 KB per dimension, and a record over its limits is refused).
MAX_VEHICLE_TYPE_CHARS = 64


def parse_registry_record(raw: bytes | str) -> tuple[int, str] | None:
    """(vehicle_id, vehicle_type), or None for a record that is not one (it goes to the DLQ)."""
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict):
        return None
    vehicle_id, vehicle_type = record.get("vehicle_id"), record.get("vehicle_type")
    if type(vehicle_id) is not int or vehicle_id <= 0 or not isinstance(vehicle_type, str):
        return None
    if not 0 < len(vehicle_type) <= MAX_VEHICLE_TYPE_CHARS:
        return None
    return vehicle_id, vehicle_type


def load_registry_file(path: str) -> dict[int, str]:
    """A JSON-lines registry file → {vehicle_id: vehicle_type}; a bad line is a clear error."""
    registry: dict[int, str] = {}
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            parsed = parse_registry_record(line)
            if parsed is None:
                raise ValueError(f"{path}:{number}: not a registry record {{\"vehicle_id\": int, \"vehicle_type\": str}}")
            registry[parsed[0]] = parsed[1]
    return registry
