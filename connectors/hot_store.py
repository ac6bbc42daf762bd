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

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from connectors.erasure_subject import ErasureSubject
from udfs.telemetry_schema import parse_timestamp_ms

RETENTION_HOURS_DEFAULT = 72
# Why a backend refuses a point (WriteResult.rejected): every backend refuses the same points.
REJECT_OLDER_THAN_RETENTION = "older_than_retention"
REJECT_INVALID_POSITION = "invalid_position"

_HOUR_MS = 3_600_000


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
class ZoneCount:
    """Points of one zone (the geohash-6 zone_id stored with each point) in a time window."""

    zone_id: str
    events: int
    vehicles: int  # distinct vehicles among them
    first_ms: int
    last_ms: int


@dataclass(frozen=True, slots=True)
class RejectedPoint:
    point: TelemetryPoint
    reason: str


@dataclass(frozen=True)
class WriteResult:
    written: int
    rejected: tuple[RejectedPoint, ...] = field(default=())


@dataclass(frozen=True)
class StatusWrite:
    changed: int
    refused: tuple[tuple[VehicleStatus, str], ...] = field(default=())  # (status, the store's reason)


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
    allow_outside_eu: bool = False  # EU data residency: a region outside the EU only when set
    timestream_database: str = "mobility"  # the hot store on Timestream: its database
    timestream_table: str = "telemetry"  # and its table
    dynamodb_table: str = "vehicle-status"  # the vehicle status table on DynamoDB


class HotStore(Protocol):
    def write(self, points: Sequence[TelemetryPoint]) -> WriteResult: ...

    def trace(self, vehicle_id: int, since_ms: int, until_ms: int | None = None, limit: int | None = None) -> list[TracePoint]: ...

    def enforce_retention(self, now_ms: int) -> int:
        """Delete what is older than the retention; return how many points went."""
        ...

    def erase(self, subject: ErasureSubject) -> int | None:
        """Delete the subject's points (GDPR); how many went, or None if the backend cannot delete
        points and they only age out (`ages_out_after_hours`)."""
        ...

    def close(self) -> None: ...


class VehicleStatusStore(Protocol):
    def upsert(self, statuses: Sequence[VehicleStatus]) -> int:
        """Apply newest-event-wins; return how many rows changed."""
        ...

    def write_statuses(self, statuses: Sequence[VehicleStatus]) -> StatusWrite:
        """`upsert`, also returning the statuses the store permanently refuses (with its reason)
        instead of raising for them; transient failures still raise."""
        ...

    def mark_offline(self, vehicle_id: int, last_seen_ms: int) -> bool:
        """Set online=false if no event newer than `last_seen_ms` is stored; True if it changed.
        (Online again comes with the vehicle's next event, through upsert.)"""
        ...

    def mark_offline_many(self, offline: Sequence[tuple[int, int]]) -> int:
        """mark_offline for each (vehicle_id, last_seen_ms), in one batch where the backend has one;
        returns how many changed."""
        ...

    def get(self, vehicle_id: int) -> VehicleStatus | None: ...

    def erase(self, subject: ErasureSubject) -> int:
        """Delete the status row if its newest event is the subject's (GDPR); how many went. The
        vehicle's next event writes a fresh row."""
        ...

    def close(self) -> None: ...


def wants_points(limit: int | None) -> bool:
    """The trace() limit every backend accepts: None (all) or >= 0; False when 0 asks for nothing."""
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    return limit != 0


def point_from_enriched(enriched: dict[str, Any], time_ms: int | None = None) -> TelemetryPoint:
    """An enriched event (udfs.enrich) as a hot-store point; `time_ms` if the caller parsed it."""
    location, battery = enriched["location"], enriched["battery"]
    motion = enriched.get("motion") or {}
    status = enriched.get("vehicle_status") or {}
    diagnostics = enriched.get("diagnostics") or {}
    if time_ms is None:
        time_ms = parse_timestamp_ms(enriched["timestamp"])
        if time_ms is None:  # enriched events passed validation: their timestamps parse
            raise ValueError(f"vehicle {enriched['vehicle_id']}: timestamp {enriched['timestamp']!r} does not parse")
    return TelemetryPoint(
        vehicle_id=enriched["vehicle_id"],
        time_ms=time_ms,
        zone_id=enriched["zone_id"],
        vehicle_type=enriched["vehicle_type"],
        latitude=float(location["lat"]),
        longitude=float(location["lon"]),
        battery_percent=int(round(battery["percent"])),
        speed_kmh=motion.get("speed_kmh"),
        heading=motion.get("heading"),
        altitude=location.get("altitude"),
        battery_voltage=battery.get("voltage"),
        battery_temperature=battery.get("temperature"),
        charging=battery.get("charging"),
        in_use=status.get("in_use"),
        trip_id=status.get("trip_id"),
        odometer_km=diagnostics.get("odometer_km"),
    )


def latest_status(points: list[TelemetryPoint]) -> list[VehicleStatus]:
    """The newest point per vehicle, as a status row (the store applies newest-wins across batches)."""
    newest: dict[int, TelemetryPoint] = {}
    for point in points:
        held = newest.get(point.vehicle_id)
        if held is None or point.time_ms > held.time_ms:
            newest[point.vehicle_id] = point
    return [
        VehicleStatus(
            vehicle_id=p.vehicle_id, last_seen_ms=p.time_ms, latitude=p.latitude, longitude=p.longitude,
            zone_id=p.zone_id, vehicle_type=p.vehicle_type, battery_percent=p.battery_percent,
            charging=p.charging, in_use=p.in_use, trip_id=p.trip_id, speed_kmh=p.speed_kmh,
        )
        for p in newest.values()
    ]


def partition_points(
    points: Sequence[TelemetryPoint], now_ms: int, retention_hours: int
) -> tuple[list[TelemetryPoint], list[RejectedPoint]]:
    """Split points into those a hot store can take and those it refuses (with the reason).

    Every backend calls this, so all refuse the same points for the same reason.
    """
    cutoff_ms = now_ms - retention_hours * _HOUR_MS
    accepted: list[TelemetryPoint] = []
    rejected: list[RejectedPoint] = []
    for point in points:
        reason = _reject_reason(point, cutoff_ms)
        if reason is None:
            accepted.append(point)
        else:
            rejected.append(RejectedPoint(point, reason))
    return accepted, rejected


def _reject_reason(point: TelemetryPoint, cutoff_ms: int) -> str | None:
    if point.time_ms < cutoff_ms:
        return REJECT_OLDER_THAN_RETENTION
    # A NaN position would violate NOT NULL here (SQLite stores NaN as NULL) and fail the whole
    # batch; refuse the one point instead.
    if not (math.isfinite(point.latitude) and math.isfinite(point.longitude)):
        return REJECT_INVALID_POSITION
    return None


def newest_per_vehicle(statuses: Iterable[VehicleStatus]) -> list[VehicleStatus]:
    """The newest status of each vehicle, in first-seen order (every status backend reduces a batch
    with this first).

    On equal last_seen_ms the first one stays, as the store would keep it if they came one by one.
    Reducing first makes the changed-row count mean "vehicles changed" in every backend.
    """
    newest: dict[int, VehicleStatus] = {}
    for status in statuses:
        current = newest.get(status.vehicle_id)
        if current is None or status.last_seen_ms > current.last_seen_ms:
            newest[status.vehicle_id] = status
    return list(newest.values())


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
