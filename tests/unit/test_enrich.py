import collections

import geohash2
import pytest

from connectors.hot_store import latest_status, point_from_enriched
from tests.unit.test_telemetry_schema import SEED_PAYLOAD, seed
from udfs.enrich import BRONZE_COLUMNS, bronze_values, enrich, vehicle_type_of
from udfs.telemetry_schema import parse_timestamp_ms
from udfs.vehicle_registry import load_registry_file, parse_registry_record


def test_enrich_adds_zone_type_and_ingest_time_and_keeps_the_payload():
    enriched = enrich(seed(), "scooter", 1_736_951_538_500)
    assert {k: enriched[k] for k in SEED_PAYLOAD} == SEED_PAYLOAD
    assert enriched["zone_id"] == geohash2.encode(50.1105, 8.6821, 6) == "u0yjjd"
    assert enriched["vehicle_type"] == "scooter"
    assert enriched["ingested_at_ms"] == 1_736_951_538_500
    assert set(enriched) - set(SEED_PAYLOAD) == {"zone_id", "vehicle_type", "ingested_at_ms"}


def test_registry_lookup_order_and_unknown():
    live, at_start = {1: "e-bike"}, {1: "scooter", 2: "scooter"}
    assert vehicle_type_of(1, live, at_start) == "e-bike"
    assert vehicle_type_of(2, live, at_start) == "scooter"
    assert vehicle_type_of(3, live, at_start) == "unknown"


def test_bronze_row_is_flat_and_complete():
    enriched = enrich(seed(), "scooter", 5)
    values = bronze_values(enriched, parse_timestamp_ms(enriched["timestamp"]))
    row = dict(zip([name for name, _ in BRONZE_COLUMNS], values))
    assert len(values) == len(BRONZE_COLUMNS)
    assert row["vehicle_id"] == 12345 and row["event_time_ms"] == 1_736_951_538_123
    assert (row["latitude"], row["longitude"], row["battery_percent"], row["speed_kmh"]) == (50.1105, 8.6821, 68.0, 18.5)
    assert (row["acceleration_z"], row["locked"], row["in_use"]) == (9.8, False, True)
    assert row["trip_id"] == "a1b2c3d4-e5f6-7890-abcd-ef1234567890"
    assert row["error_codes"] == "[]" and row["zone_id"] == "u0yjjd" and row["ingested_at_ms"] == 5


def test_bronze_row_has_nulls_for_absent_optional_sections():
    minimal = {"vehicle_id": 1, "timestamp": "2025-01-15T14:32:18.123Z", "location": {"lat": 50.0, "lon": 8.0}, "battery": {"percent": 50}}
    row = dict(zip([n for n, _ in BRONZE_COLUMNS], bronze_values(enrich(minimal, "unknown", 0), 1)))
    assert row["speed_kmh"] is None and row["trip_id"] is None and row["error_codes"] is None and row["battery_charging"] is None


def test_hot_store_point_and_status_from_enriched():
    enriched = enrich(seed(), "scooter", 0)
    point = point_from_enriched(enriched)
    assert (point.vehicle_id, point.time_ms, point.zone_id, point.battery_percent) == (12345, 1_736_951_538_123, "u0yjjd", 68)
    newer = point_from_enriched(enrich(seed(timestamp="2025-01-15T14:32:19.123Z", battery__percent=67), "scooter", 0))
    [status] = latest_status([newer, point])
    assert status.last_seen_ms == newer.time_ms and status.battery_percent == 67 and status.online


@pytest.mark.parametrize(
    "raw, parsed",
    [
        (b'{"vehicle_id": 7, "vehicle_type": "e-bike"}', (7, "e-bike")),
        (b'{"vehicle_id": "7", "vehicle_type": "e-bike"}', None),
        (b'{"vehicle_id": 0, "vehicle_type": "e-bike"}', None),
        (b'{"vehicle_id": 7, "vehicle_type": ""}', None),
        (b"[7]", None),
        (b"nope", None),
    ],
)
def test_registry_records(raw, parsed):
    assert parse_registry_record(raw) == parsed


def test_registry_file_errors_name_the_line(tmp_path):
    path = tmp_path / "registry.jsonl"
    path.write_text('{"vehicle_id": 1, "vehicle_type": "scooter"}\n\n{"vehicle_id": 2}\n')
    with pytest.raises(ValueError, match="registry.jsonl:3"):
        load_registry_file(str(path))
    path.write_text('{"vehicle_id": 1, "vehicle_type": "scooter"}\n{"vehicle_id": 1, "vehicle_type": "e-bike"}\n')
    assert load_registry_file(str(path)) == {1: "e-bike"}


# The original bronze_values (before the inlined float conversions), the reference for the new one.
def _reference_float(value):
    return None if value is None else float(value)


def reference_bronze_values(enriched, event_time_ms):
    import orjson

    location = enriched["location"]
    battery = enriched["battery"]
    motion = enriched.get("motion") or {}
    acceleration = motion.get("acceleration") or {}
    status = enriched.get("vehicle_status") or {}
    diagnostics = enriched.get("diagnostics") or {}
    error_codes = diagnostics.get("error_codes")
    return (
        enriched["vehicle_id"], enriched["timestamp"], event_time_ms,
        float(location["lat"]), float(location["lon"]),
        _reference_float(location.get("altitude")), _reference_float(location.get("accuracy")),
        float(battery["percent"]), _reference_float(battery.get("voltage")), _reference_float(battery.get("current")),
        _reference_float(battery.get("temperature")), battery.get("charging"),
        _reference_float(motion.get("speed_kmh")), _reference_float(motion.get("heading")),
        _reference_float(acceleration.get("x")), _reference_float(acceleration.get("y")), _reference_float(acceleration.get("z")),
        status.get("locked"), status.get("in_use"), status.get("trip_id"),
        _reference_float(diagnostics.get("odometer_km")),
        None if error_codes is None else orjson.dumps(error_codes).decode(),
        _reference_float(diagnostics.get("last_maintenance_km")),
        enriched["zone_id"], enriched["vehicle_type"], enriched["ingested_at_ms"],
    )


def _outcome(function, *args):
    try:
        return ("ok", function(*args))
    except Exception as exc:  # noqa: BLE001 - the outcome under test is whatever it raises
        return ("raised", type(exc), str(exc))


def _same_values(a, b):
    """Equal outcomes, element types included (1 == 1.0 == True would hide a change)."""
    if a[0] != "ok" or b[0] != "ok":
        return a == b
    return [(type(x), repr(x)) for x in a[1]] == [(type(x), repr(x)) for x in b[1]]


def _bronze_cases():
    import copy
    import math
    import random

    from device_sim.fleet_model import Fleet, FleetSpec

    rng = random.Random(41)
    events = list(Fleet(FleetSpec(vehicles=100, seed=4, start_ms=1_736_951_538_000)).take(400))
    events.append(seed())
    optional = [
        ("location", "altitude"), ("location", "accuracy"), ("battery", "voltage"), ("battery", "current"),
        ("battery", "temperature"), ("battery", "charging"), ("motion", "speed_kmh"), ("motion", "heading"),
        ("motion", "acceleration"), ("vehicle_status", "locked"), ("vehicle_status", "in_use"),
        ("vehicle_status", "trip_id"), ("diagnostics", "odometer_km"), ("diagnostics", "error_codes"),
        ("diagnostics", "last_maintenance_km"),
    ]
    odd_values = [None, 0, 1, -0.0, 2**60 + 1, 10**400, True, False, math.nan, math.inf, "7.5", "x", [], ["E1", "W2"], {}]
    cases = []
    for event in events:
        cases.append(event)
        for _ in range(3):
            variant = copy.deepcopy(event)
            for section, name in rng.sample(optional, rng.randint(1, 5)):
                if rng.random() < 0.5:
                    variant[section].pop(name, None)
                else:
                    variant[section][name] = rng.choice(odd_values)
            if rng.random() < 0.2:
                variant[rng.choice(["motion", "vehicle_status", "diagnostics"])] = rng.choice([None, {}])
            if rng.random() < 0.1:
                variant["location"]["lat"] = rng.choice([50, True, "50.1", None])
            if rng.random() < 0.1:
                del variant[rng.choice(["motion", "vehicle_status", "diagnostics"])]
            if rng.random() < 0.05 and isinstance(variant.get("motion"), dict):
                variant["motion"]["acceleration"] = rng.choice([None, [], {"x": 1}, collections.defaultdict(float)])
            if rng.random() < 0.1:
                section = rng.choice(["location", "battery", "motion", "vehicle_status", "diagnostics"])
                body = variant.get(section) or {}
                variant[section] = rng.choice([
                    [], ["x"], "x", None, {}, collections.OrderedDict(body), collections.defaultdict(lambda: 1.5, body),
                ])
            cases.append(variant)
    return cases


def _wrapped(enriched):
    """The enriched event as it is, and as dict subclasses (which only `.get` may read)."""
    yield enriched
    yield collections.OrderedDict(enriched)
    yield collections.defaultdict(lambda: "default", enriched)


def test_bronze_values_equal_the_original_on_many_events():
    from udfs.enrich import enrich_in_place

    for event in _bronze_cases():
        try:
            enriched = enrich(event, "scooter", 99)
        except Exception:  # noqa: BLE001 - cases enrich refuses are not Bronze rows
            continue
        event_time_ms = 1_736_951_538_123
        for shape in _wrapped(enriched):
            before = repr(shape)
            assert _same_values(_outcome(bronze_values, shape, event_time_ms), _outcome(reference_bronze_values, shape, event_time_ms)), shape
            assert repr(shape) == before
        assert enrich_in_place(dict(event), "scooter", 99) == enriched


def test_enrich_in_place_adds_the_same_fields_in_the_same_order_to_the_event_itself():
    import copy

    from udfs.enrich import enrich_in_place

    for changes in ({}, {"zone_id": "stale"}, {"vehicle_type": "old", "firmware": "1.2"}):
        original = seed()
        original.update(changes)
        copied = enrich(copy.deepcopy(original), "e-bike", 7)
        event = copy.deepcopy(original)
        result = enrich_in_place(event, "e-bike", 7)
        assert result is event
        assert list(result.items()) == list(copied.items())
        assert list(copied) == list(original) + [k for k in ("zone_id", "vehicle_type", "ingested_at_ms") if k not in original]


def test_enrich_copies_and_leaves_the_event_alone():
    import copy

    event = seed()
    before = copy.deepcopy(event)
    enriched = enrich(event, "scooter", 1)
    assert enriched is not event and event == before and list(event) == list(before)
    assert enriched["location"] is event["location"]  # a shallow copy, as before
