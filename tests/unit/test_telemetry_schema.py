import copy
import math

import orjson
import pytest

from device_sim.fleet_model import Fleet, FleetSpec
from udfs import telemetry_schema as schema
from udfs.telemetry_schema import (
    Rejection,
    ValidationPolicy,
    decode,
    encode,
    parse,
    parse_timestamp_ms,
    validate,
)

NOW_MS = parse_timestamp_ms("2025-01-15T15:00:00.000Z")

SEED_PAYLOAD = {
    "vehicle_id": 12345,
    "timestamp": "2025-01-15T14:32:18.123Z",
    "location": {"lat": 50.1105, "lon": 8.6821, "altitude": 112.5, "accuracy": 5.2},
    "battery": {"percent": 68, "voltage": 48.2, "current": 3.5, "temperature": 32.1, "charging": False},
    "motion": {"speed_kmh": 18.5, "heading": 245, "acceleration": {"x": 0.2, "y": -0.1, "z": 9.8}},
    "vehicle_status": {"locked": False, "in_use": True, "trip_id": "a1b2c3d4-e5f6-7890-abcd-ef1234567890"},
    "diagnostics": {"odometer_km": 2458, "error_codes": [], "last_maintenance_km": 2100},
}


def seed(**changes):
    """The seed payload with dotted-path changes; a value of ... deletes the field."""
    event = copy.deepcopy(SEED_PAYLOAD)
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = event
        for part in parents:
            node = node[part]
        if value is ...:
            del node[leaf]
        else:
            node[leaf] = value
    return event


def check(event):
    return validate(event, now_ms=NOW_MS)


def test_seed_payload_is_valid_and_returned_unchanged():
    event = seed()
    assert check(event) is event
    assert event == SEED_PAYLOAD


def test_parse_of_seed_bytes_round_trips_through_encode():
    raw = encode(SEED_PAYLOAD)
    assert parse(raw, now_ms=NOW_MS) == SEED_PAYLOAD
    assert orjson.loads(raw) == SEED_PAYLOAD


@pytest.mark.parametrize(
    "raw, reason",
    [
        (b"{not json", schema.BAD_JSON),
        (b"", schema.BAD_JSON),
        (b"\xff\xfe\x00", schema.BAD_JSON),
        (b'{"lat": NaN}', schema.BAD_JSON),
        (b"[1, 2]", schema.NOT_AN_OBJECT),
        (b'"text"', schema.NOT_AN_OBJECT),
        (b"null", schema.NOT_AN_OBJECT),
    ],
)
def test_undecodable_payloads_are_rejected_with_reason(raw, reason):
    result = decode(raw)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.detail


@pytest.mark.parametrize(
    "changes, reason, field",
    [
        ({"vehicle_id": ...}, schema.MISSING_FIELD, "vehicle_id"),
        ({"vehicle_id": "12345"}, schema.WRONG_TYPE, "vehicle_id"),
        ({"vehicle_id": 12345.0}, schema.WRONG_TYPE, "vehicle_id"),
        ({"vehicle_id": True}, schema.WRONG_TYPE, "vehicle_id"),
        ({"vehicle_id": 0}, schema.OUT_OF_RANGE, "vehicle_id"),
        ({"vehicle_id": -4}, schema.OUT_OF_RANGE, "vehicle_id"),
        ({"vehicle_id": 2**63}, schema.OUT_OF_RANGE, "vehicle_id"),
        ({"timestamp": ...}, schema.MISSING_FIELD, "timestamp"),
        ({"timestamp": None}, schema.MISSING_FIELD, "timestamp"),
        ({"timestamp": 1736951538123}, schema.BAD_TIMESTAMP, "timestamp"),
        ({"timestamp": "2025-01-15T14:32:18.123"}, schema.BAD_TIMESTAMP, "timestamp"),
        ({"timestamp": "2025-01-15"}, schema.BAD_TIMESTAMP, "timestamp"),
        ({"timestamp": "2025-13-15T14:32:18Z"}, schema.BAD_TIMESTAMP, "timestamp"),
        ({"timestamp": "yesterday"}, schema.BAD_TIMESTAMP, "timestamp"),
        ({"timestamp": "2025-01-15T16:00:00.000Z"}, schema.TIMESTAMP_IN_FUTURE, "timestamp"),
        ({"timestamp": "2019-12-31T23:59:59Z"}, schema.TIMESTAMP_TOO_OLD, "timestamp"),
        ({"location": ...}, schema.MISSING_FIELD, "location"),
        ({"location": [50.1, 8.6]}, schema.WRONG_TYPE, "location"),
        ({"location__lat": ...}, schema.MISSING_FIELD, "location.lat"),
        ({"location__lat": None}, schema.MISSING_FIELD, "location.lat"),
        ({"location__lat": "50.1"}, schema.WRONG_TYPE, "location.lat"),
        ({"location__lat": 90.0001}, schema.OUT_OF_RANGE, "location.lat"),
        ({"location__lat": -90.5}, schema.OUT_OF_RANGE, "location.lat"),
        ({"location__lon": 180.01}, schema.OUT_OF_RANGE, "location.lon"),
        ({"location__lon": -181}, schema.OUT_OF_RANGE, "location.lon"),
        ({"location__accuracy": -1}, schema.OUT_OF_RANGE, "location.accuracy"),
        ({"battery": ...}, schema.MISSING_FIELD, "battery"),
        ({"battery__percent": ...}, schema.MISSING_FIELD, "battery.percent"),
        ({"battery__percent": -1}, schema.OUT_OF_RANGE, "battery.percent"),
        ({"battery__percent": 100.5}, schema.OUT_OF_RANGE, "battery.percent"),
        ({"battery__percent": True}, schema.WRONG_TYPE, "battery.percent"),
        ({"battery__charging": "no"}, schema.WRONG_TYPE, "battery.charging"),
        ({"battery__charging": 0}, schema.WRONG_TYPE, "battery.charging"),
        ({"motion": "fast"}, schema.WRONG_TYPE, "motion"),
        ({"motion__speed_kmh": -3}, schema.OUT_OF_RANGE, "motion.speed_kmh"),
        ({"motion__heading": 361}, schema.OUT_OF_RANGE, "motion.heading"),
        ({"motion__acceleration": [0, 0, 9.8]}, schema.WRONG_TYPE, "motion.acceleration"),
        ({"motion__acceleration__z": "9.8"}, schema.WRONG_TYPE, "motion.acceleration.z"),
        ({"vehicle_status__locked": "yes"}, schema.WRONG_TYPE, "vehicle_status.locked"),
        ({"vehicle_status__trip_id": 42}, schema.WRONG_TYPE, "vehicle_status.trip_id"),
        ({"diagnostics__odometer_km": -5}, schema.OUT_OF_RANGE, "diagnostics.odometer_km"),
        ({"diagnostics__error_codes": "E42"}, schema.WRONG_TYPE, "diagnostics.error_codes"),
        ({"diagnostics__error_codes": [42]}, schema.WRONG_TYPE, "diagnostics.error_codes"),
    ],
)
def test_invalid_payloads_name_reason_and_field(changes, reason, field):
    result = check(seed(**changes))
    assert isinstance(result, Rejection), f"{changes} was accepted"
    assert (result.reason, result.field) == (reason, field)
    assert field in result.detail


def test_infinite_number_is_out_of_range():
    # JSON cannot carry Infinity, but a caller handing us a dict can.
    result = check(seed(location__lon=math.inf))
    assert isinstance(result, Rejection) and result.reason == schema.OUT_OF_RANGE


@pytest.mark.parametrize(
    "changes",
    [
        {"motion": ...},
        {"vehicle_status": ...},
        {"diagnostics": ...},
        {"motion": None},
        {"location__altitude": ...},
        {"battery__charging": ...},
        {"vehicle_status__trip_id": None},
        {"diagnostics__error_codes": ["E12", "W3"]},
        {"location__lat": 90},
        {"location__lat": -90},
        {"location__lon": 180},
        {"battery__percent": 0},
        {"battery__percent": 100},
        {"battery__percent": 14.5},
        {"motion__heading": 360},
        {"timestamp": "2025-01-15T15:32:18+01:00"},
        {"timestamp": "2025-01-15T14:32:18Z"},
        {"timestamp": "2025-01-15T14:32:18.123456789Z"},
        {"firmware": "1.4.2"},
    ],
)
def test_boundaries_optional_sections_and_extra_fields_are_accepted(changes):
    event = seed(**changes)
    assert check(event) is event


def test_future_skew_is_configurable():
    event = seed(timestamp="2025-01-15T15:10:00.000Z")  # 10 minutes ahead of NOW
    assert validate(event, now_ms=NOW_MS) is event
    strict = ValidationPolicy(max_future_skew_s=60)
    assert validate(event, strict, now_ms=NOW_MS).reason == schema.TIMESTAMP_IN_FUTURE


def test_old_events_stay_valid_for_replays():
    event = seed(timestamp="2021-06-01T00:00:00Z")
    assert validate(event, now_ms=parse_timestamp_ms("2026-11-27T00:00:00Z")) is event


def test_timestamp_parsing_is_exact():
    assert parse_timestamp_ms("2025-01-15T14:32:18.123Z") == 1_736_951_538_123
    assert parse_timestamp_ms("2025-01-15T15:32:18.123+01:00") == 1_736_951_538_123
    assert schema.format_timestamp_ms(1_736_951_538_123) == "2025-01-15T14:32:18.123Z"
    assert parse_timestamp_ms(None) is None


def test_every_simulated_event_is_valid():
    fleet = Fleet(FleetSpec(vehicles=200, seed=3, start_ms=NOW_MS - 3_600_000))
    events = list(fleet.take(5_000))
    rejections = [r for r in (validate(e, now_ms=NOW_MS + 10**8) for e in events) if isinstance(r, Rejection)]
    assert rejections == []
    assert len(events) == 5_000
