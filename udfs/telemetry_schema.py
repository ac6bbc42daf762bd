"""The one telemetry schema: decode, validate and encode the seed's payload (seed section 6).

Every component uses this module: the MQTT bridge, the simulator, both Flink jobs and the batch
layers. It is pure (no pyflink import) and errors are values: `parse()` returns either the event
(a plain dict, as the JSON had it) or a `Rejection` naming the reason and the field, so a caller
routes it to the DLQ instead of crashing or dropping it.

Required: what the pipeline cannot work without (vehicle_id, timestamp, location.lat/lon,
battery.percent). Every other section of the seed payload is optional, but type- and range-checked
when present: a present-but-wrong value is a rejection, never silently passed on.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import orjson

# Reasons are stable identifiers: DLQ consumers and dashboards group by them.
BAD_JSON: Final = "bad_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_FIELD: Final = "missing_field"
WRONG_TYPE: Final = "wrong_type"
OUT_OF_RANGE: Final = "out_of_range"
BAD_TIMESTAMP: Final = "bad_timestamp"
TIMESTAMP_IN_FUTURE: Final = "timestamp_in_future"
TIMESTAMP_TOO_OLD: Final = "timestamp_too_old"

REASONS: Final = (
    BAD_JSON, NOT_AN_OBJECT, MISSING_FIELD, WRONG_TYPE, OUT_OF_RANGE,
    BAD_TIMESTAMP, TIMESTAMP_IN_FUTURE, TIMESTAMP_TOO_OLD,
)

MAX_VEHICLE_ID: Final = 2**63 - 1  # fits Kafka keys, Parquet int64 and Timestream dimensions alike


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload was refused. `field` is a dotted path into the payload, or None."""

    reason: str
    field: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """Limits that depend on deployment rather than on the schema.

    Only the future bound uses the wall clock: replays and backfills carry old events, so "too old"
    is an absolute floor, never relative to now.
    """

    max_future_skew_s: float = 900.0
    earliest_timestamp_ms: int = 1_577_836_800_000  # 2020-01-01T00:00:00Z


DEFAULT_POLICY: Final = ValidationPolicy()

# Strict ISO-8601 with a zone: date-only or naive timestamps are ambiguous across a fleet.
_TIMESTAMP_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})"
)

_NUMBER = "number"
_INTEGER = "integer"
_BOOL = "bool"

# (section, field, kind, minimum, maximum, required). Ranges are physical plausibility for a
# scooter/e-bike, wide enough never to reject a real reading.
_FIELDS: Final = (
    ("location", "lat", _NUMBER, -90.0, 90.0, True),
    ("location", "lon", _NUMBER, -180.0, 180.0, True),
    ("location", "altitude", _NUMBER, -500.0, 9_000.0, False),
    ("location", "accuracy", _NUMBER, 0.0, 100_000.0, False),
    ("battery", "percent", _NUMBER, 0.0, 100.0, True),
    ("battery", "voltage", _NUMBER, 0.0, 1_000.0, False),
    ("battery", "current", _NUMBER, -1_000.0, 1_000.0, False),
    ("battery", "temperature", _NUMBER, -60.0, 150.0, False),
    ("battery", "charging", _BOOL, None, None, False),
    ("motion", "speed_kmh", _NUMBER, 0.0, 200.0, False),
    ("motion", "heading", _NUMBER, 0.0, 360.0, False),
    ("vehicle_status", "locked", _BOOL, None, None, False),
    ("vehicle_status", "in_use", _BOOL, None, None, False),
    ("diagnostics", "odometer_km", _NUMBER, 0.0, 10_000_000.0, False),
    ("diagnostics", "last_maintenance_km", _NUMBER, 0.0, 10_000_000.0, False),
)
_REQUIRED_SECTIONS: Final = frozenset(s for s, _, _, _, _, req in _FIELDS if req)
_OPTIONAL_SECTIONS: Final = ("motion", "vehicle_status", "diagnostics")


def decode(raw: bytes | bytearray | memoryview | str) -> dict[str, Any] | Rejection:
    """Bytes → JSON object, or a rejection. Does not validate content."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(BAD_JSON, None, f"not valid JSON: {exc}")
    if not isinstance(value, dict):
        return Rejection(NOT_AN_OBJECT, None, f"payload is a JSON {type(value).__name__}, not an object")
    return value


def parse_timestamp_ms(value: Any) -> int | None:
    """ISO-8601 string with a zone → epoch milliseconds, or None if it is not one."""
    if not isinstance(value, str) or _TIMESTAMP_RE.fullmatch(value) is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13: the shape matched, the calendar did not
        return None
    return int(parsed.timestamp() * 1000)


def format_timestamp_ms(epoch_ms: int) -> str:
    """Epoch milliseconds → the seed's form, '2025-01-15T14:32:18.123Z'."""
    seconds, millis = divmod(int(epoch_ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def validate(
    event: dict[str, Any], policy: ValidationPolicy = DEFAULT_POLICY, now_ms: int | None = None
) -> dict[str, Any] | Rejection:
    """Check a decoded payload against the schema; return it unchanged or the first rejection."""
    vehicle_id = event.get("vehicle_id")
    if vehicle_id is None:
        return Rejection(MISSING_FIELD, "vehicle_id", "vehicle_id is required")
    if type(vehicle_id) is not int:
        return Rejection(WRONG_TYPE, "vehicle_id", f"vehicle_id must be an integer, got {_type_name(vehicle_id)}")
    if not 0 < vehicle_id <= MAX_VEHICLE_ID:
        return Rejection(OUT_OF_RANGE, "vehicle_id", f"vehicle_id {vehicle_id} is not in 1..2^63-1")

    if "timestamp" not in event or event["timestamp"] is None:
        return Rejection(MISSING_FIELD, "timestamp", "timestamp is required")
    ts_ms = parse_timestamp_ms(event["timestamp"])
    if ts_ms is None:
        return Rejection(
            BAD_TIMESTAMP, "timestamp",
            f"timestamp {event['timestamp']!r} is not ISO-8601 with a zone, e.g. 2025-01-15T14:32:18.123Z",
        )
    if ts_ms < policy.earliest_timestamp_ms:
        return Rejection(TIMESTAMP_TOO_OLD, "timestamp", f"timestamp {event['timestamp']} is before {format_timestamp_ms(policy.earliest_timestamp_ms)}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ts_ms > now + policy.max_future_skew_s * 1000:
        return Rejection(
            TIMESTAMP_IN_FUTURE, "timestamp",
            f"timestamp {event['timestamp']} is more than {policy.max_future_skew_s:g}s ahead of {format_timestamp_ms(now)}",
        )

    for section in _REQUIRED_SECTIONS:
        if section not in event or event[section] is None:
            return Rejection(MISSING_FIELD, section, f"{section} is required")
    for section in (*_REQUIRED_SECTIONS, *_OPTIONAL_SECTIONS):
        body = event.get(section)
        if body is not None and not isinstance(body, dict):
            return Rejection(WRONG_TYPE, section, f"{section} must be an object, got {_type_name(body)}")

    for section, name, kind, low, high, required in _FIELDS:
        body = event.get(section)
        value = None if body is None else body.get(name)
        path = f"{section}.{name}"
        if value is None:
            if required:
                return Rejection(MISSING_FIELD, path, f"{path} is required")
            continue
        problem = _check_value(path, value, kind, low, high)
        if problem is not None:
            return problem

    return _check_structured_fields(event) or event


def _check_value(path: str, value: Any, kind: str, low: float | None, high: float | None) -> Rejection | None:
    if kind == _BOOL:
        if type(value) is not bool:
            return Rejection(WRONG_TYPE, path, f"{path} must be true or false, got {_type_name(value)}")
        return None
    # bool is an int subclass in Python; a JSON true is never a number here.
    if type(value) not in (int, float):
        return Rejection(WRONG_TYPE, path, f"{path} must be a number, got {_type_name(value)}")
    if not math.isfinite(value):
        return Rejection(OUT_OF_RANGE, path, f"{path} must be finite, got {value}")
    if not low <= value <= high:
        return Rejection(OUT_OF_RANGE, path, f"{path}={value} is outside {low:g}..{high:g}")
    return None


def _check_structured_fields(event: dict[str, Any]) -> Rejection | None:
    motion = event.get("motion") or {}
    acceleration = motion.get("acceleration")
    if acceleration is not None:
        if not isinstance(acceleration, dict):
            return Rejection(WRONG_TYPE, "motion.acceleration", "motion.acceleration must be an object of x, y, z")
        for axis in ("x", "y", "z"):
            value = acceleration.get(axis)
            if value is not None:
                problem = _check_value(f"motion.acceleration.{axis}", value, _NUMBER, -1_000.0, 1_000.0)
                if problem is not None:
                    return problem

    trip_id = (event.get("vehicle_status") or {}).get("trip_id")
    if trip_id is not None and not isinstance(trip_id, str):
        return Rejection(WRONG_TYPE, "vehicle_status.trip_id", f"vehicle_status.trip_id must be a string or null, got {_type_name(trip_id)}")

    error_codes = (event.get("diagnostics") or {}).get("error_codes")
    if error_codes is not None and (
        not isinstance(error_codes, list) or not all(isinstance(code, str) for code in error_codes)
    ):
        return Rejection(WRONG_TYPE, "diagnostics.error_codes", "diagnostics.error_codes must be a list of strings")
    return None


def parse(
    raw: bytes | bytearray | memoryview | str, policy: ValidationPolicy = DEFAULT_POLICY, now_ms: int | None = None
) -> dict[str, Any] | Rejection:
    """decode + validate: the one call a consumer of raw payloads makes."""
    decoded = decode(raw)
    if isinstance(decoded, Rejection):
        return decoded
    return validate(decoded, policy, now_ms)


def encode(event: dict[str, Any]) -> bytes:
    """Event → compact JSON bytes (keys in the order the event has them)."""
    return orjson.dumps(event)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__

