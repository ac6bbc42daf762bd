"""The fast validate/parse_timestamp_ms against the original implementation, payload by payload.

`udfs.telemetry_schema.validate` checks the all-valid case with straight-line code and leaves every
other payload to the rule-by-rule path, and `parse_timestamp_ms` computes the seed's timestamp form
arithmetically. Both must give exactly what the original gave: the same event object, or an equal
Rejection (reason, field and detail text), or the same exception. The original is copied below,
verbatim apart from the three public names (prefixed with `reference_`), and runs against the
module on generated payloads: valid ones (full and sparse), every field with every kind of wrong
value (bools for numbers, NaN, infinities, huge ints, subclasses, nested wrong types), missing and
null sections, extra fields, timestamps of every shape, several policies and clocks.
"""

from __future__ import annotations

import collections
import copy
import decimal
import math
import random
import re
import time
from datetime import UTC, datetime
from typing import Any, Final

import orjson
import pytest

from device_sim.fleet_model import Fleet, FleetSpec
from udfs import telemetry_schema as schema
from udfs.telemetry_schema import DEFAULT_POLICY, Rejection, ValidationPolicy

# ---------------------------------------------------------------------------------------------
# The original implementation (udfs/telemetry_schema.py before the fast paths), the reference.
# ---------------------------------------------------------------------------------------------

BAD_JSON: Final = "bad_json"
NOT_AN_OBJECT: Final = "not_an_object"
MISSING_FIELD: Final = "missing_field"
WRONG_TYPE: Final = "wrong_type"
OUT_OF_RANGE: Final = "out_of_range"
BAD_TIMESTAMP: Final = "bad_timestamp"
TIMESTAMP_IN_FUTURE: Final = "timestamp_in_future"
TIMESTAMP_TOO_OLD: Final = "timestamp_too_old"
MAX_VEHICLE_ID: Final = 2**63 - 1

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


def reference_parse_timestamp_ms(value: Any) -> int | None:
    """ISO-8601 string with a zone → epoch milliseconds, or None if it is not one."""
    if not isinstance(value, str) or _TIMESTAMP_RE.fullmatch(value) is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:  # e.g. month 13: the shape matched, the calendar did not
        return None
    return int(parsed.timestamp() * 1000)


def reference_format_timestamp_ms(epoch_ms: int) -> str:
    """Epoch milliseconds → the seed's form, '2025-01-15T14:32:18.123Z'."""
    seconds, millis = divmod(int(epoch_ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def reference_validate(
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
    ts_ms = reference_parse_timestamp_ms(event["timestamp"])
    if ts_ms is None:
        return Rejection(
            BAD_TIMESTAMP, "timestamp",
            f"timestamp {event['timestamp']!r} is not ISO-8601 with a zone, e.g. 2025-01-15T14:32:18.123Z",
        )
    if ts_ms < policy.earliest_timestamp_ms:
        return Rejection(TIMESTAMP_TOO_OLD, "timestamp", f"timestamp {event['timestamp']} is before {reference_format_timestamp_ms(policy.earliest_timestamp_ms)}")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if ts_ms > now + policy.max_future_skew_s * 1000:
        return Rejection(
            TIMESTAMP_IN_FUTURE, "timestamp",
            f"timestamp {event['timestamp']} is more than {policy.max_future_skew_s:g}s ahead of {reference_format_timestamp_ms(now)}",
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



def reference_decode(raw: bytes | bytearray | memoryview | str) -> dict[str, Any] | Rejection:
    """Bytes → JSON object, or a rejection. Does not validate content."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(BAD_JSON, None, f"not valid JSON: {exc}")
    if not isinstance(value, dict):
        return Rejection(NOT_AN_OBJECT, None, f"payload is a JSON {type(value).__name__}, not an object")
    return value


def reference_parse(
    raw: bytes | bytearray | memoryview | str, policy: ValidationPolicy = DEFAULT_POLICY, now_ms: int | None = None
) -> dict[str, Any] | Rejection:
    """decode + validate: the one call a consumer of raw payloads makes."""
    decoded = reference_decode(raw)
    if isinstance(decoded, Rejection):
        return decoded
    return reference_validate(decoded, policy, now_ms)


# ---------------------------------------------------------------------------------------------
# Payload generators
# ---------------------------------------------------------------------------------------------

NOW_MS = 1_736_953_200_000  # 2025-01-15T15:00:00Z
DELETE = object()  # a mutation value: remove the key


class StrSub(str):
    pass


class IntSub(int):
    pass


class FloatSub(float):
    pass


class DictSub(dict):
    pass


class ListSub(list):
    pass


def fleet_events(count: int, seed: int) -> list[dict]:
    fleet = Fleet(FleetSpec(vehicles=50, seed=seed, start_ms=NOW_MS - 3_600_000))
    return list(fleet.take(count))


BASES = fleet_events(40, 1) + fleet_events(40, 2)  # trip_id both null and a string among them

NUMBER_PATHS = [(section, name) for section, name, kind, *_ in _FIELDS if kind == _NUMBER] + [
    ("motion", "acceleration", axis) for axis in "xyz"
]
BOOL_PATHS = [(section, name) for section, name, kind, *_ in _FIELDS if kind == _BOOL]
SECTIONS = ["location", "battery", "motion", "vehicle_status", "diagnostics"]
OTHER_PATHS = [
    ("vehicle_id",), ("timestamp",), ("motion", "acceleration"), ("vehicle_status", "trip_id"),
    ("diagnostics", "error_codes"), ("diagnostics", "error_codes", 0),
]
ALL_PATHS = NUMBER_PATHS + BOOL_PATHS + [(s,) for s in SECTIONS] + OTHER_PATHS

GENERIC_VALUES = [
    DELETE, None, True, False, 0, 1, -1, 7, 0.0, -0.0, 0.5, -0.5, 1e-300, 5e-324,
    math.nan, -math.nan, math.inf, -math.inf, 2**63 - 1, 2**63, -(2**63), 10**30, 10**400, 1e308, -1e308,
    "1", "", "true", "2025-01-15T14:32:18.123Z", [], [1], ["E1"], ["E1", 2], {}, {"x": 1.0},
    IntSub(5), FloatSub(5.0), FloatSub(math.nan), StrSub("E1"), DictSub(), ListSub(["E1"]),
    decimal.Decimal("1.5"), b"bytes", (1, 2), 1 + 2j,
]

TIMESTAMPS = [
    "2025-01-15T14:32:18.123Z", "2025-01-15T14:59:59.999Z", "2025-01-15T00:00:00.000Z",
    "2025-01-15T14:32:18Z", "2025-01-15T14:32:18.1Z", "2025-01-15T14:32:18.123456Z",
    "2025-01-15T14:32:18.123456789Z", "2025-01-15T15:32:18.123+01:00", "2025-01-15T09:02:18.123-05:30",
    "2025-01-15T14:32:18.123+00:00", "2024-02-29T12:00:00.000Z", "2020-01-01T00:00:00.000Z",
    "2019-12-31T23:59:59.999Z", "1970-01-01T00:00:00.000Z", "1969-12-31T23:59:59.999Z",
    "0001-01-01T00:00:00.000Z", "9999-12-31T23:59:59.999Z", "2025-01-15T15:15:00.000Z",
    "2025-01-15T15:15:00.001Z", "2025-01-15T16:00:00.000Z",
    # the shape matches, the calendar does not
    "2025-02-29T12:00:00.000Z", "2025-13-01T00:00:00.000Z", "2025-00-10T00:00:00.000Z",
    "2025-01-32T00:00:00.000Z", "2025-01-00T00:00:00.000Z", "2025-04-31T00:00:00.000Z",
    "2025-01-15T24:00:00.000Z", "2025-01-15T23:60:00.000Z", "2025-01-15T23:59:60.000Z",
    "0000-01-01T00:00:00.000Z",
    # not the shape
    "2025-01-15t14:32:18.123Z", "2025-01-15T14:32:18.123z", "2025-01-15 14:32:18.123Z",
    "2025-01-15T14:32:18.123", "2025-01-15T14:32:18,123Z", "2025-01-15T14:32:18.1234567890Z",
    "2025-01-15T14:32:18.Z", "2025-1-15T14:32:18.123Z", " 2025-01-15T14:32:18.123Z",
    "2025-01-15T14:32:18.123Z ", "2025-01-15T14:32:18.123Z\n", "2025-01-15T14:32:18.12aZ",
    "2025-01-15T14:32:1a.123Z", "2025-01-15T14:32:18.123ZZ", "2025/01/15T14:32:18.123Z",
    "2025-01-15X14:32:18.123Z", "2025-01-15T14-32-18.123Z", "2025-01-15T14:32:18.123+0100",
    "\uff12\uff10\uff12\uff15-01-15T14:32:18.123Z", "2025-01-15T14:32:18.\u0661\u0662\u0663Z",
    "2025-01-15T14:32:\u0661\u0668.123Z", "", "yesterday", "2025-01-15",
    1_736_951_538_123, 1_736_951_538.123, None, DELETE, True, b"2025-01-15T14:32:18.123Z",
    StrSub("2025-01-15T14:32:18.123Z"), ["2025-01-15T14:32:18.123Z"],
]


def values_for(path: tuple) -> list:
    """Wrong and right values for one path: the generic ones plus the field's own boundaries."""
    out = list(GENERIC_VALUES)
    if path == ("timestamp",):
        return out + TIMESTAMPS
    rule = next(((low, high) for s, n, kind, low, high, _ in _FIELDS if (s, n) == path[:2] and kind == _NUMBER), None)
    if len(path) == 3 and path[1] == "acceleration":
        rule = (-1_000.0, 1_000.0)
    if rule is not None:
        low, high = rule
        out += [
            low, high, int(low), int(high), int(low) - 1, int(high) + 1, (low + high) / 2,
            math.nextafter(low, -math.inf), math.nextafter(high, math.inf),
            math.nextafter(low, math.inf), math.nextafter(high, -math.inf),
        ]
    if path[0] == "vehicle_id":
        out += [12345, 10_000, 2**62, IntSub(12345)]
    if path in [(s,) for s in SECTIONS]:
        out += ["section"]  # replaced by a dict subclass / defaultdict of the original body
    return out


def mutate(event: dict, path: tuple, value: Any) -> bool:
    """Set or delete `path` in `event`; False if a parent on the way is not a dict or list."""
    node: Any = event
    for part in path[:-1]:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
    leaf = path[-1]
    if isinstance(node, list) != isinstance(leaf, int):
        return False
    if isinstance(node, list):
        if value is DELETE:
            if leaf < len(node):
                del node[leaf]
            return True
        if leaf < len(node):
            node[leaf] = value
        else:
            node.append(value)
        return True
    if not isinstance(node, dict):
        return False
    if value is DELETE:
        node.pop(leaf, None)
    elif value == "section" and isinstance(node.get(leaf), dict):
        body = node[leaf]
        node[leaf] = DictSub(body) if len(path) % 2 else collections.defaultdict(lambda: 7.0, body)
    else:
        node[leaf] = value
    return True


def sparse_variants(event: dict, rng: random.Random) -> list[dict]:
    """Valid variants without some optional fields or sections (absent or null)."""
    optional = [(s, n) for s, n, *_, req in _FIELDS if not req] + [
        ("motion", "acceleration"), ("vehicle_status", "trip_id"), ("diagnostics", "error_codes"),
        ("motion", "acceleration", "x"), ("motion", "acceleration", "z"),
    ] + [(s,) for s in ("motion", "vehicle_status", "diagnostics")]
    out = []
    for path in optional:
        for value in (DELETE, None):
            variant = copy.deepcopy(event)
            mutate(variant, path, value)
            out.append(variant)
    for _ in range(10):
        variant = copy.deepcopy(event)
        for path in rng.sample(optional, rng.randint(2, 6)):
            mutate(variant, path, rng.choice((DELETE, None)))
        out.append(variant)
    return out


def with_extras(event: dict, rng: random.Random) -> dict:
    variant = copy.deepcopy(event)
    variant["firmware"] = "1.4.2"
    variant["extra"] = {"lat": "not checked", "nested": [math.nan]}
    for section in ("location", "battery", "motion", "vehicle_status", "diagnostics"):
        if isinstance(variant.get(section), dict) and rng.random() < 0.5:
            variant[section]["unknown_" + section] = rng.choice([math.nan, "x", None, [1], {"a": True}])
    if isinstance(variant.get("motion"), dict) and isinstance(variant["motion"].get("acceleration"), dict):
        variant["motion"]["acceleration"]["w"] = "ignored"
    return variant


POLICIES = [
    (DEFAULT_POLICY, NOW_MS),
    (ValidationPolicy(max_future_skew_s=0), NOW_MS),
    (ValidationPolicy(max_future_skew_s=60.5, earliest_timestamp_ms=NOW_MS - 3_600_000), NOW_MS - 3_600_000 - 60_000),
    (ValidationPolicy(max_future_skew_s=900.0, earliest_timestamp_ms=0), 1_736_951_538_123),
    (DEFAULT_POLICY, None),  # the wall clock: every generated event is long past
]


# ---------------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------------


def outcome(function, event, policy, now_ms):
    try:
        result = function(event, policy, now_ms)
    except Exception as exc:  # noqa: BLE001 - the original raises on e.g. a 400-digit int: the same must
        return ("raised", type(exc), str(exc))
    if result is event:
        return ("valid",)
    assert isinstance(result, Rejection), result
    return ("rejected", result.reason, result.field, result.detail)


def assert_same(event, policy=DEFAULT_POLICY, now_ms=NOW_MS):
    before = repr(event)
    expected = outcome(reference_validate, event, policy, now_ms)
    got = outcome(schema.validate, event, policy, now_ms)
    assert got == expected, (event, policy, now_ms)
    assert repr(event) == before, "validate changed the event"
    if type(event) is dict:
        # The fast checks say "valid" only when the original does, and for the payloads they are
        # there for they do say it (or the speed-up would silently be gone).
        complete, sparse = fast_shapes(event)
        for fast, meant_for in ((schema._valid_complete, complete), (schema._valid_sparse, sparse)):
            accepted = fast(event, policy, now_ms)
            assert not accepted or expected == ("valid",), (fast.__name__, event)
            assert accepted or not (meant_for and expected == ("valid",)), (fast.__name__, event)
    return expected


def fast_shapes(event: dict) -> tuple[bool, bool]:
    """(complete, sparse): whether `_valid_complete` / `_valid_sparse` should accept this payload
    if it is valid. Both want plain dicts, lists and strs; complete wants every field present."""
    present = {section: event.get(section) for section in SECTIONS}
    if any(body is not None and type(body) is not dict for body in present.values()):
        return False, False
    motion = present["motion"] or {}
    axes = motion.get("acceleration")
    trip_id = (present["vehicle_status"] or {}).get("trip_id")
    codes = (present["diagnostics"] or {}).get("error_codes")
    sparse = (
        (axes is None or type(axes) is dict)
        and (trip_id is None or type(trip_id) is str)
        and (codes is None or (type(codes) is list and all(type(code) is str for code in codes)))
    )
    complete = (
        sparse
        and all(body is not None for body in present.values())
        and all(present[s].get(n) is not None for s, n, *_ in _FIELDS)
        and axes is not None and all(axes.get(axis) is not None for axis in "xyz")
        and "trip_id" in present["vehicle_status"] and codes is not None
    )
    return complete, sparse


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_simulated_events_take_the_complete_fast_path():
    events = fleet_events(2_000, 11)
    for event in events:
        assert schema._valid_complete(event, DEFAULT_POLICY, NOW_MS)
        assert assert_same(event) == ("valid",)


def test_sparse_valid_events_take_the_sparse_fast_path():
    rng = random.Random(12)
    for base in BASES[:20]:
        for event in sparse_variants(base, rng):
            assert schema._valid_sparse(event, DEFAULT_POLICY, NOW_MS), event
            assert assert_same(event) == ("valid",)


@pytest.mark.parametrize("path", ALL_PATHS, ids=lambda p: ".".join(map(str, p)))
def test_every_path_with_every_kind_of_value(path):
    seen = collections.Counter()
    for base in (BASES[0], BASES[1], BASES[-1]):
        for value in values_for(path):
            event = copy.deepcopy(base)
            if mutate(event, path, value):
                seen[assert_same(event)[0:2]] += 1
    # Each path is accepted with some values and refused with others.
    assert ("valid",) in seen and any(kind[0] == "rejected" for kind in seen), seen


def test_every_reason_and_field_is_produced_identically():
    reasons = collections.Counter()
    fields = set()
    for path in ALL_PATHS:
        for value in values_for(path):
            event = copy.deepcopy(BASES[0])
            if mutate(event, path, value):
                result = assert_same(event)
                if result[0] == "rejected":
                    reasons[result[1]] += 1
                    fields.add(result[2])
    assert set(reasons) == {
        MISSING_FIELD, WRONG_TYPE, OUT_OF_RANGE, BAD_TIMESTAMP, TIMESTAMP_IN_FUTURE, TIMESTAMP_TOO_OLD
    }, reasons
    expected_fields = {"vehicle_id", "timestamp", *SECTIONS} | {f"{s}.{n}" for s, n, *_ in _FIELDS} | {
        "motion.acceleration", "motion.acceleration.x", "motion.acceleration.y", "motion.acceleration.z",
        "vehicle_status.trip_id", "diagnostics.error_codes",
    }
    assert fields == expected_fields, expected_fields ^ fields


@pytest.mark.parametrize("index", range(len(POLICIES)), ids=["default", "no-skew", "strict", "old-floor", "wall-clock"])
def test_random_combinations_of_mutations(index, monkeypatch):
    policy, now_ms = POLICIES[index]
    frozen = time.time()  # now_ms=None reads the wall clock, which the detail text quotes
    monkeypatch.setattr(time, "time", lambda: frozen)
    rng = random.Random(31 + index)
    pool = [(path, value) for path in ALL_PATHS for value in values_for(path)]
    sparse = [variant for base in BASES[::8] for variant in sparse_variants(base, rng)]
    kinds = collections.Counter()
    for index in range(6_000):
        event = copy.deepcopy(rng.choice(sparse) if rng.random() < 0.3 else BASES[index % len(BASES)])
        if rng.random() < 0.3:
            event = with_extras(event, rng)
        for path, value in rng.sample(pool, rng.choice((0, 1, 1, 2, 3))):
            mutate(event, path, value)
        kinds[assert_same(event, policy, now_ms)[0]] += 1
    assert kinds["valid"] > 300 and kinds["rejected"] > 2_000, kinds


def test_missing_and_null_sections_in_every_combination():
    for mask in range(1 << len(SECTIONS)):
        for replacement in (DELETE, None, [], "x"):
            event = copy.deepcopy(BASES[3])
            for bit, section in enumerate(SECTIONS):
                if mask >> bit & 1:
                    mutate(event, (section,), replacement)
            assert_same(event)


def test_timestamps_policies_and_clock_boundaries(monkeypatch):
    frozen = time.time()
    monkeypatch.setattr(time, "time", lambda: frozen)
    for value in TIMESTAMPS:
        for policy, now_ms in POLICIES:
            event = copy.deepcopy(BASES[0])
            mutate(event, ("timestamp",), value)
            assert_same(event, policy, now_ms)
    # Exactly at the floor, exactly at now + skew, and one millisecond beyond each.
    event_ms = 1_736_951_538_123
    text = reference_format_timestamp_ms(event_ms)
    for policy, now_ms in [
        (ValidationPolicy(earliest_timestamp_ms=event_ms), NOW_MS),
        (ValidationPolicy(earliest_timestamp_ms=event_ms + 1), NOW_MS),
        (ValidationPolicy(max_future_skew_s=0), event_ms),
        (ValidationPolicy(max_future_skew_s=0), event_ms - 1),
        (ValidationPolicy(max_future_skew_s=0.001), event_ms - 1),
        (ValidationPolicy(max_future_skew_s=0.0009), event_ms - 1),
        (ValidationPolicy(max_future_skew_s=900), event_ms - 900_000),
        (ValidationPolicy(max_future_skew_s=900), event_ms - 900_001),
    ]:
        event = copy.deepcopy(BASES[0])
        event["timestamp"] = text
        assert_same(event, policy, now_ms)


def test_events_that_are_not_plain_dicts_get_the_same_answers():
    for base in BASES[:5]:
        for wrap in (DictSub, collections.OrderedDict, lambda e: collections.defaultdict(lambda: 1.0, e)):
            assert_same(wrap(copy.deepcopy(base)))
            broken = copy.deepcopy(base)
            broken["location"]["lat"] = True
            assert_same(wrap(broken))
        for section in SECTIONS:
            event = copy.deepcopy(base)
            event[section] = collections.defaultdict(lambda: math.nan, event[section])
            assert_same(event)
            assert set(event[section]) == set(base[section]), "a defaultdict section was read by []"


def test_both_required_sections_missing_names_the_same_one():
    # The original walks a frozenset: which of the two comes first is the same in one process.
    event = copy.deepcopy(BASES[0])
    del event["location"], event["battery"]
    assert_same(event)


def test_fast_checks_agree_with_the_live_rules_table():
    # The fast checks spell out _FIELDS's bounds: against the module's own table (not the copy
    # above), so a bound changed in one place and not the other fails here.
    def same_as_rules(event):
        assert outcome(schema.validate, event, DEFAULT_POLICY, NOW_MS) == outcome(schema._validate_rules, event, DEFAULT_POLICY, NOW_MS), event

    for section, name, _path, kind, low, high, _required in schema._FIELD_RULES:
        if kind == schema._NUMBER:
            values = [low, high, math.nextafter(low, -math.inf), math.nextafter(high, math.inf), (low + high) / 2, int(low), int(high)]
        else:
            values = [True, False, 0, 1, "true"]
        for value in values + [DELETE, None]:
            for base in (BASES[0], sparse_variants(BASES[0], random.Random(1))[-1]):
                event = copy.deepcopy(base)
                if isinstance(event.get(section), dict):
                    mutate(event, (section, name), value)
                    same_as_rules(event)
    for axis in "xyz":
        for value in (-1_000.0, 1_000.0, -1_000.001, 1_000.001):
            event = copy.deepcopy(BASES[0])
            event["motion"]["acceleration"][axis] = value
            same_as_rules(event)
    for vehicle_id in (0, 1, schema.MAX_VEHICLE_ID, schema.MAX_VEHICLE_ID + 1):
        same_as_rules({**copy.deepcopy(BASES[0]), "vehicle_id": vehicle_id})


def test_parse_of_raw_payloads_equals_the_original():
    rng = random.Random(51)
    pool = [(path, value) for path in ALL_PATHS for value in values_for(path)]
    raws = [b"", b"{", b"[1]", b"null", b'"x"', b"{}", b'{"vehicle_id": 1}', b"\xff", "{}", bytearray(b"{}"), memoryview(b"[]")]
    for index in range(4_000):
        event = copy.deepcopy(BASES[index % len(BASES)])
        for path, value in rng.sample(pool, rng.choice((0, 0, 1, 2))):
            mutate(event, path, value)
        try:
            raws.append(orjson.dumps(event))
        except TypeError:  # NaN, 400-digit ints, subclasses: not JSON
            continue
    for raw in raws:
        expected = reference_parse(raw, DEFAULT_POLICY, NOW_MS)
        got = schema.parse(raw, DEFAULT_POLICY, NOW_MS)
        if isinstance(expected, Rejection):
            assert got == expected, raw
        else:
            assert not isinstance(got, Rejection) and got == expected, raw


# ---------------------------------------------------------------------------------------------
# parse_timestamp_ms
# ---------------------------------------------------------------------------------------------


def same_timestamp(value):
    expected = reference_parse_timestamp_ms(value)
    for _ in range(2):  # the first call may fill the memo tables, the second reads them
        got = schema.parse_timestamp_ms(value)
        assert got == expected and type(got) is type(expected), (value, got, expected)
    return expected


def seed_form(year, month, day, hour, minute, second, millis):
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def test_parse_timestamp_ms_on_listed_shapes():
    for value in TIMESTAMPS:
        same_timestamp(value)


def test_parse_timestamp_ms_on_random_seed_form_strings():
    rng = random.Random(21)
    valid = 0
    for _ in range(20_000):
        year = rng.choice([rng.randrange(0, 10_000), rng.randrange(1960, 2045), 2004, 2038, 2039, 1970, 1969])
        value = seed_form(
            year, rng.randrange(0, 14), rng.randrange(0, 33), rng.randrange(0, 26),
            rng.randrange(0, 62), rng.randrange(0, 62), rng.randrange(1000),
        )
        valid += same_timestamp(value) is not None
        same_timestamp(value[:-1] + "+00:00")
        same_timestamp(value.replace("T", " "))
    assert valid > 10_000


def test_parse_timestamp_ms_where_float_seconds_lose_a_millisecond():
    # datetime.timestamp() is a float: int(timestamp * 1000) is one below the exact millisecond
    # for some instants, e.g. near 2**30 s (2004-01-10) and 2**31 s (2038-01-19), and before 1970.
    inexact = 0
    for base_s in (2**30, 2**31, 2**40 // 1000, 2**41 // 1000, 2**39 // 1000, 0, -(2**30), 1_736_951_538):
        for offset in (-1, 0, 1):
            start = datetime.fromtimestamp(base_s + offset, tz=UTC)
            for millis in range(1000):
                value = start.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"
                result = same_timestamp(value)
                inexact += result != (base_s + offset) * 1000 + millis
    assert inexact > 0  # the cases exist, and the fast path reproduces them


def test_parse_timestamp_ms_every_second_of_a_day_and_every_day_of_years():
    for hour in range(24):
        for minute in range(60):
            same_timestamp(seed_form(2025, 3, 9, hour, minute, (hour * 7 + minute) % 60, minute * 13 % 1000))
    for year in (1900, 1999, 2000, 2024, 2025, 2100):
        for month in range(1, 13):
            for day in range(1, 32):
                same_timestamp(seed_form(year, month, day, 23, 59, 59, 999))


def test_parse_timestamp_ms_memo_tables_stay_bounded_and_correct():
    rng = random.Random(23)
    for _ in range(3 * schema._CACHE_LIMIT):
        same_timestamp(reference_format_timestamp_ms(rng.randrange(0, 4_000_000_000_000)))
    for table in (schema._SECOND_MS, schema._EXACT_DAY_S, schema._INEXACT_DAY_S):
        assert len(table) <= schema._CACHE_LIMIT


def test_format_timestamp_ms_is_unchanged():
    rng = random.Random(24)
    values = [rng.randrange(0, 253_402_300_800_000) for _ in range(3 * schema._CACHE_LIMIT)]
    values += [v + d for v in values[:500] for d in (0, 1, 999, 1000)]  # memo hits, the same second
    values += [0, 999, 1000, -1, -1000, -1001, -86_400_000 * 365 * 50, 1_736_951_538_123.9, True, 2**40]
    for millis in values:
        assert schema.format_timestamp_ms(millis) == reference_format_timestamp_ms(millis), millis
    assert len(schema._FORMATTED_S) <= schema._CACHE_LIMIT
    for bad in ("x", None, 10**30):
        with pytest.raises(Exception) as expected:
            reference_format_timestamp_ms(bad)
        with pytest.raises(expected.type):
            schema.format_timestamp_ms(bad)
