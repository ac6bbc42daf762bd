import geohash2
import pytest

from connectors.hot_store import latest_status, point_from_enriched
from udfs.enrich import BRONZE_COLUMNS, bronze_values, enrich, vehicle_type_of
from udfs.telemetry_schema import parse_timestamp_ms
from udfs.vehicle_registry import load_registry_file, parse_registry_record
from tests.unit.test_telemetry_schema import SEED_PAYLOAD, seed


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
