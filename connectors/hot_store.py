"""The hot store (seed section 10: 3 days of telemetry for time-series queries) and the vehicle
status table (the seed's DynamoDB last-known state), as small interfaces with pluggable backends.

Jobs and the CLI only see these types. Backends:
  local       embedded SQLite file, no server (the default for local runs and tests)
  timestream  Amazon Timestream for LiveAnalytics via boto3 (hot store)
  dynamodb    Amazon DynamoDB via boto3 (vehicle status)
An InfluxDB backend can follow without touching the jobs (Timestream for LiveAnalytics takes no
new customers since 2025-06-20).

Contract every backend keeps:
  * writes are idempotent: writing the same point (vehicle_id, time_ms) twice leaves one point;
  * vehicle status is newest-event-wins: an older event never overwrites a newer one;
  * a point the backend refuses is returned with a reason, never dropped silently;
  * trace() returns newest first, like the seed's example query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

RETENTION_HOURS_DEFAULT = 72


@dataclass(frozen=True, slots=True)
class TelemetryPoint:
    """One row of the seed's Timestream table: dimensions, time, measures."""

    vehicle_id: int
    time_ms: int
    zone_id: str
    vehicle_type: str
    latitude: float
    longitude: float
    battery_percent: int
    speed_kmh: float | None = None
    heading: float | None = None
    altitude: float | None = None
    battery_voltage: float | None = None
    battery_temperature: float | None = None
    charging: bool | None = None
    in_use: bool | None = None
    trip_id: str | None = None
    odometer_km: float | None = None


@dataclass(frozen=True, slots=True)
class TracePoint:
    """What the seed's example query selects: time, latitude, longitude, speed_kmh."""

    time_ms: int
    latitude: float
    longitude: float
    speed_kmh: float | None


@dataclass(frozen=True, slots=True)
class RejectedPoint:
    point: TelemetryPoint
    reason: str


@dataclass(frozen=True)
class WriteResult:
    written: int
    rejected: tuple[RejectedPoint, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class VehicleStatus:
    """Last known state of one vehicle; `last_seen_ms` is the event time of the newest event."""

    vehicle_id: int
    last_seen_ms: int
    latitude: float
    longitude: float
    zone_id: str
    vehicle_type: str
    battery_percent: int
    charging: bool | None = None
    in_use: bool | None = None
    trip_id: str | None = None
    speed_kmh: float | None = None
    online: bool = True


@dataclass(frozen=True)
class StoreConfig:
    """Where the hot store and the status table live. One object for both; each picks its part."""

    hot_store_backend: str = "local"  # local | timestream
    status_backend: str = "local"  # local | dynamodb
    local_path: str = ""  # SQLite file for the local backends
    retention_hours: int = RETENTION_HOURS_DEFAULT
    region: str = "eu-central-1"
    endpoint_url: str | None = None  # moto server locally, None for real AWS
    timestream_database: str = "mobility"
    timestream_table: str = "telemetry"
    dynamodb_table: str = "vehicle-status"


class HotStore(Protocol):
    def write(self, points: Sequence[TelemetryPoint]) -> WriteResult: ...

    def trace(self, vehicle_id: int, since_ms: int, until_ms: int | None = None, limit: int | None = None) -> list[TracePoint]: ...

    def enforce_retention(self, now_ms: int) -> int:
        """Delete what is older than the retention; return how many points went."""
        ...

    def close(self) -> None: ...


class VehicleStatusStore(Protocol):
    def upsert(self, statuses: Sequence[VehicleStatus]) -> int:
        """Apply newest-event-wins; return how many rows changed."""
        ...

    def get(self, vehicle_id: int) -> VehicleStatus | None: ...

    def close(self) -> None: ...


def open_hot_store(config: StoreConfig) -> HotStore:
    if config.hot_store_backend == "local":
        from connectors.hot_store_local import LocalHotStore

        return LocalHotStore(config.local_path, retention_hours=config.retention_hours)
    if config.hot_store_backend == "timestream":
        from connectors.hot_store_timestream import TimestreamHotStore

        return TimestreamHotStore(config)
    raise ValueError(f"hot store backend {config.hot_store_backend!r}: local or timestream")


def open_status_store(config: StoreConfig) -> VehicleStatusStore:
    if config.status_backend == "local":
        from connectors.vehicle_status_local import LocalVehicleStatusStore

        return LocalVehicleStatusStore(config.local_path)
    if config.status_backend == "dynamodb":
        from connectors.vehicle_status_dynamodb import DynamoDbVehicleStatusStore

        return DynamoDbVehicleStatusStore(config)
    raise ValueError(f"vehicle status backend {config.status_backend!r}: local or dynamodb")
