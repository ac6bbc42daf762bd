"""Enrichment (the seed's Lambda 9.1: zone_id and vehicle_type) and the flat Bronze row.

Pure functions over the validated event dict: the pipeline job, the backfill and the batch layers
share them, and unit tests run them without Flink.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from udfs.geohash import zone_id as geohash_zone

UNKNOWN_VEHICLE_TYPE: Final = "unknown"


def vehicle_type_of(vehicle_id: int, *registries: Mapping[int, str]) -> str:
    """The first registry that knows the vehicle wins; unknown vehicles are 'unknown', never dropped."""
    for registry in registries:
        found = registry.get(vehicle_id)
        if found:
            return found
    return UNKNOWN_VEHICLE_TYPE


def enrich(event: dict[str, Any], vehicle_type: str, ingested_at_ms: int) -> dict[str, Any]:
    """The event as received plus zone_id, vehicle_type and when it entered Kafka.

    The seed's consumers read the nested payload; enrichment adds top-level fields only. The
    event itself is not changed (a shallow copy); `enrich_in_place` is the same without the copy.
    """
    location = event["location"]
    return {
        **event,
        "zone_id": geohash_zone(location["lat"], location["lon"]),
        "vehicle_type": vehicle_type,
        "ingested_at_ms": ingested_at_ms,
    }


def enrich_in_place(event: dict[str, Any], vehicle_type: str, ingested_at_ms: int) -> dict[str, Any]:
    """`enrich` for a caller that owns the event (e.g. one it has just decoded): adds the same
    fields to `event` itself, in the same order, and returns it. Equal to `enrich(event, ...)`."""
    location = event["location"]
    event["zone_id"] = geohash_zone(location["lat"], location["lon"])
    event["vehicle_type"] = vehicle_type
    event["ingested_at_ms"] = ingested_at_ms
    return event


# Bronze: the seed payload flattened, plus enrichment and times. (name, Parquet kind) in file order.
BRONZE_COLUMNS: Final = (
    ("vehicle_id", "bigint"),
    ("timestamp", "string"),
    ("event_time_ms", "bigint"),
    ("latitude", "double"),
    ("longitude", "double"),
    ("altitude", "double"),
    ("accuracy", "double"),
    ("battery_percent", "double"),
    ("battery_voltage", "double"),
    ("battery_current", "double"),
    ("battery_temperature", "double"),
    ("battery_charging", "boolean"),
    ("speed_kmh", "double"),
    ("heading", "double"),
    ("acceleration_x", "double"),
    ("acceleration_y", "double"),
    ("acceleration_z", "double"),
    ("locked", "boolean"),
    ("in_use", "boolean"),
    ("trip_id", "string"),
    ("odometer_km", "double"),
    ("error_codes", "string"),  # JSON array text: Flink's Parquet row writer has no list type here
    ("last_maintenance_km", "double"),
    ("zone_id", "string"),
    ("vehicle_type", "string"),
    ("ingested_at_ms", "bigint"),
)

# One Bronze row: the Python values of BRONZE_COLUMNS, in that order (None is a null).
BronzeRow = tuple[
    int, str, int,  # vehicle_id, timestamp, event_time_ms
    float, float, float | None, float | None,  # latitude, longitude, altitude, accuracy
    float, float | None, float | None, float | None, bool | None,  # battery_*
    float | None, float | None, float | None, float | None, float | None,  # speed_kmh, heading, acceleration_*
    bool | None, bool | None, str | None,  # locked, in_use, trip_id
    float | None, str | None, float | None,  # odometer_km, error_codes, last_maintenance_km
    str, str, int,  # zone_id, vehicle_type, ingested_at_ms
]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def bronze_values(enriched: dict[str, Any], event_time_ms: int) -> BronzeRow:
    """Values in BRONZE_COLUMNS order; absent optional fields are nulls."""
    # The usual event has every section and field: read them with [] (no .get calls), plain dicts
    # only. Anything absent, or another shape, is `_bronze_values_sparse`'s (the original code).
    if type(enriched) is dict:
        try:
            location = enriched["location"]
            battery = enriched["battery"]
            motion = enriched["motion"]
            status = enriched["vehicle_status"]
            diagnostics = enriched["diagnostics"]
            if (
                type(location) is dict and type(battery) is dict and type(motion) is dict
                and type(status) is dict and type(diagnostics) is dict
            ):
                acceleration = motion["acceleration"]
                error_codes = diagnostics["error_codes"]
                if type(acceleration) is dict:
                    return (
                        enriched["vehicle_id"],
                        enriched["timestamp"],
                        event_time_ms,
                        v if type(v := location["lat"]) is float else float(v),
                        v if type(v := location["lon"]) is float else float(v),
                        v if type(v := location["altitude"]) is float else None if v is None else float(v),
                        v if type(v := location["accuracy"]) is float else None if v is None else float(v),
                        v if type(v := battery["percent"]) is float else float(v),
                        v if type(v := battery["voltage"]) is float else None if v is None else float(v),
                        v if type(v := battery["current"]) is float else None if v is None else float(v),
                        v if type(v := battery["temperature"]) is float else None if v is None else float(v),
                        battery["charging"],
                        v if type(v := motion["speed_kmh"]) is float else None if v is None else float(v),
                        v if type(v := motion["heading"]) is float else None if v is None else float(v),
                        v if type(v := acceleration["x"]) is float else None if v is None else float(v),
                        v if type(v := acceleration["y"]) is float else None if v is None else float(v),
                        v if type(v := acceleration["z"]) is float else None if v is None else float(v),
                        status["locked"],
                        status["in_use"],
                        status["trip_id"],
                        v if type(v := diagnostics["odometer_km"]) is float else None if v is None else float(v),
                        "[]" if type(error_codes) is list and not error_codes else (
                            None if error_codes is None else orjson.dumps(error_codes).decode()
                        ),
                        v if type(v := diagnostics["last_maintenance_km"]) is float else None if v is None else float(v),
                        enriched["zone_id"],
                        enriched["vehicle_type"],
                        enriched["ingested_at_ms"],
                    )
        except KeyError:  # something optional is absent
            pass
    return _bronze_values_sparse(enriched, event_time_ms)


def _bronze_values_sparse(enriched: dict[str, Any], event_time_ms: int) -> BronzeRow:
    """bronze_values for any shape: optional sections and fields may be absent or null."""
    location = enriched["location"]
    battery = enriched["battery"]
    motion = enriched.get("motion") or {}
    acceleration = motion.get("acceleration") or {}
    status = enriched.get("vehicle_status") or {}
    diagnostics = enriched.get("diagnostics") or {}
    error_codes = diagnostics.get("error_codes")
    # `v if type(v := x) is float else None if v is None else float(v)` is `_float(x)` (float()
    # of a float is that float itself) without calls; values are read in the original's order.
    return (
        enriched["vehicle_id"],
        enriched["timestamp"],
        event_time_ms,
        v if type(v := location["lat"]) is float else float(v),
        v if type(v := location["lon"]) is float else float(v),
        v if type(v := location.get("altitude")) is float else None if v is None else float(v),
        v if type(v := location.get("accuracy")) is float else None if v is None else float(v),
        v if type(v := battery["percent"]) is float else float(v),
        v if type(v := battery.get("voltage")) is float else None if v is None else float(v),
        v if type(v := battery.get("current")) is float else None if v is None else float(v),
        v if type(v := battery.get("temperature")) is float else None if v is None else float(v),
        battery.get("charging"),
        v if type(v := motion.get("speed_kmh")) is float else None if v is None else float(v),
        v if type(v := motion.get("heading")) is float else None if v is None else float(v),
        v if type(v := acceleration.get("x")) is float else None if v is None else float(v),
        v if type(v := acceleration.get("y")) is float else None if v is None else float(v),
        v if type(v := acceleration.get("z")) is float else None if v is None else float(v),
        status.get("locked"),
        status.get("in_use"),
        status.get("trip_id"),
        v if type(v := diagnostics.get("odometer_km")) is float else None if v is None else float(v),
        # orjson.dumps([]) is b"[]": the usual empty list needs no encoder call.
        "[]" if type(error_codes) is list and not error_codes else (
            None if error_codes is None else orjson.dumps(error_codes).decode()
        ),
        v if type(v := diagnostics.get("last_maintenance_km")) is float else None if v is None else float(v),
        enriched["zone_id"],
        enriched["vehicle_type"],
        enriched["ingested_at_ms"],
    )
