"""Enrichment (the seed's Lambda 9.1: zone_id and vehicle_type) and the flat Bronze row.

Pure functions over the validated event dict: the pipeline job, the backfill and the batch layers
share them, and unit tests run them without Flink.
"""

from __future__ import annotations

from typing import Any, Final, Mapping

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

    The seed's consumers read the nested payload; enrichment adds top-level fields only.
    """
    location = event["location"]
    enriched = dict(event)
    enriched["zone_id"] = geohash_zone(location["lat"], location["lon"])
    enriched["vehicle_type"] = vehicle_type
    enriched["ingested_at_ms"] = ingested_at_ms
    return enriched


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


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def bronze_values(enriched: dict[str, Any], event_time_ms: int) -> tuple:
    """Values in BRONZE_COLUMNS order; absent optional fields are nulls."""
    location = enriched["location"]
    battery = enriched["battery"]
    motion = enriched.get("motion") or {}
    acceleration = motion.get("acceleration") or {}
    status = enriched.get("vehicle_status") or {}
    diagnostics = enriched.get("diagnostics") or {}
    error_codes = diagnostics.get("error_codes")
    return (
        enriched["vehicle_id"],
        enriched["timestamp"],
        event_time_ms,
        float(location["lat"]),
        float(location["lon"]),
        _float(location.get("altitude")),
        _float(location.get("accuracy")),
        float(battery["percent"]),
        _float(battery.get("voltage")),
        _float(battery.get("current")),
        _float(battery.get("temperature")),
        battery.get("charging"),
        _float(motion.get("speed_kmh")),
        _float(motion.get("heading")),
        _float(acceleration.get("x")),
        _float(acceleration.get("y")),
        _float(acceleration.get("z")),
        status.get("locked"),
        status.get("in_use"),
        status.get("trip_id"),
        _float(diagnostics.get("odometer_km")),
        None if error_codes is None else orjson.dumps(error_codes).decode(),
        _float(diagnostics.get("last_maintenance_km")),
        enriched["zone_id"],
        enriched["vehicle_type"],
        enriched["ingested_at_ms"],
    )
