"""Alert rules (the seed's anomaly-detection Lambda, 9.2), made stateful: once per episode.

Pure functions over a small per-vehicle state; the Flink job keeps the state in keyed state and
calls `on_event` for every event and `on_silence` when the offline timer fires.

  low battery   percent < threshold and not charging → one alert; re-armed only when the vehicle
                charges or climbs to the re-arm level (hysteresis: no flapping at 14/15/14 %)
  geofence      leaving the service area → one alert; coming back → one `geofence_return` event
  offline       no event for `offline_after_s` → one alert; the next event → one `back_online`

Every alert has a deterministic id (vehicle, kind, episode start), so each sink can drop re-sends
of the same alert after a replay.

Event time, not arrival order, decides: battery and geofence episodes open and close only on a
reading at least as new as the newest one seen (`is_late` tells the others apart). A late reading
— the edge agent's spool drained after an outage, a reordering MQTT subscription — describes a past
that newer readings have already replaced, so it neither pages nor closes anything, even if it
*would* have opened an episode back then (a low battery an hour ago, since charged, needs no swap
team now); the job counts it (`late_readings`). It does end an offline episode: the vehicle is
talking again, whatever its reading's age.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from edge_agent.wire import format_timestamp_ms
from udfs.geohash import zone_id as zone_of

LOW_BATTERY: Final = "low_battery"
GEOFENCE_EXIT: Final = "geofence_exit"
GEOFENCE_RETURN: Final = "geofence_return"
OFFLINE: Final = "offline"
BACK_ONLINE: Final = "back_online"

SEVERITY: Final = {
    LOW_BATTERY: "warning",
    GEOFENCE_EXIT: "critical",
    GEOFENCE_RETURN: "info",
    OFFLINE: "warning",
    BACK_ONLINE: "info",
}

_ALERT_NAMESPACE: Final = uuid.UUID("6f3c8a52-3b9e-4f57-9a57-2f1f7a0c1e11")


@dataclass(frozen=True)
class AlertPolicy:
    low_battery_percent: float = 15.0
    battery_rearm_percent: float = 20.0
    offline_after_s: float = 600.0

    def __post_init__(self) -> None:
        if self.battery_rearm_percent < self.low_battery_percent:
            raise ValueError("battery_rearm_percent must be >= low_battery_percent (hysteresis)")
        if self.offline_after_s <= 0:
            raise ValueError("offline_after_s must be > 0")


# VehicleAlertState's fields in order: the four episode/event times (ms), then last lat and lon.
AlertStateTuple = tuple[int | None, int | None, int | None, int | None, float | None, float | None]


@dataclass(frozen=True)
class VehicleAlertState:
    """What one vehicle's rules remember. Episode starts are event times in ms, None when closed."""

    battery_episode_ms: int | None = None
    outside_since_ms: int | None = None
    offline_since_ms: int | None = None
    last_event_ms: int | None = None
    last_lat: float | None = None
    last_lon: float | None = None

    def to_tuple(self) -> AlertStateTuple:
        return (
            self.battery_episode_ms, self.outside_since_ms, self.offline_since_ms,
            self.last_event_ms, self.last_lat, self.last_lon,
        )

    @staticmethod
    def from_tuple(values: AlertStateTuple | list[Any] | None) -> VehicleAlertState:
        """The state from `to_tuple()`'s tuple, or from the list that JSON made of it."""
        return VehicleAlertState(*values) if values else VehicleAlertState()


def alert_id(vehicle_id: int, kind: str, episode_start_ms: int) -> str:
    """Same vehicle, kind and episode → same id, whichever process raises it, however often."""
    return str(uuid.uuid5(_ALERT_NAMESPACE, f"{vehicle_id}/{kind}/{episode_start_ms}"))


def make_alert(
    kind: str,
    vehicle_id: int,
    episode_start_ms: int,
    *,
    event_time_ms: int,
    lat: float | None,
    lon: float | None,
    subject: str,
    message: str,
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "alert_id": alert_id(vehicle_id, kind, episode_start_ms),
        "kind": kind,
        "severity": SEVERITY[kind],
        "vehicle_id": vehicle_id,
        "episode_start": format_timestamp_ms(episode_start_ms),
        "event_time": format_timestamp_ms(event_time_ms),
        "location": {"lat": lat, "lon": lon},
        "zone_id": zone_of(lat, lon) if lat is not None and lon is not None else None,
        "subject": subject,
        "message": message,
        "details": details or {},
    }


def is_late(state: VehicleAlertState, event_time_ms: int) -> bool:
    """Older than the newest reading this vehicle's rules have seen."""
    return state.last_event_ms is not None and event_time_ms < state.last_event_ms


def on_event(
    state: VehicleAlertState,
    event: dict[str, Any],
    event_time_ms: int,
    inside_service_area: Callable[[float, float], bool],
    policy: AlertPolicy,
) -> tuple[VehicleAlertState, list[dict[str, Any]]]:
    """Apply one validated event; return the new state and the alerts it raises (often none)."""
    vehicle_id = event["vehicle_id"]
    lat, lon = event["location"]["lat"], event["location"]["lon"]
    alerts: list[dict[str, Any]] = []
    where = {"event_time_ms": event_time_ms, "lat": lat, "lon": lon}

    offline_since = state.offline_since_ms
    if offline_since is not None:
        alerts.append(make_alert(
            BACK_ONLINE, vehicle_id, offline_since, **where,
            subject=f"Vehicle Back Online: {vehicle_id}",
            message=f"Vehicle {vehicle_id} reports telemetry again after being offline since {format_timestamp_ms(offline_since)}.",
        ))
        offline_since = None

    if is_late(state, event_time_ms):
        return replace(state, offline_since_ms=offline_since), alerts

    battery = event["battery"]
    percent, charging = battery["percent"], bool(battery.get("charging"))
    battery_episode = state.battery_episode_ms
    if battery_episode is None:
        if percent < policy.low_battery_percent and not charging:
            battery_episode = event_time_ms
            alerts.append(make_alert(
                LOW_BATTERY, vehicle_id, battery_episode, **where,
                subject=f"Low Battery: Vehicle {vehicle_id}",
                message=f"Vehicle {vehicle_id} has {percent:g}% battery. Dispatch swap team.",
                details={"battery_percent": percent},
            ))
    elif charging or percent >= policy.battery_rearm_percent:
        battery_episode = None

    outside_since = state.outside_since_ms
    inside = inside_service_area(lat, lon)
    if not inside and outside_since is None:
        outside_since = event_time_ms
        alerts.append(make_alert(
            GEOFENCE_EXIT, vehicle_id, outside_since, **where,
            subject=f"Geofence Violation: Vehicle {vehicle_id}",
            message=f"Vehicle {vehicle_id} is outside operational area. Location: {lat}, {lon}",
        ))
    elif inside and outside_since is not None:
        alerts.append(make_alert(
            GEOFENCE_RETURN, vehicle_id, outside_since, **where,
            subject=f"Geofence Return: Vehicle {vehicle_id}",
            message=f"Vehicle {vehicle_id} is back inside the operational area. Location: {lat}, {lon}",
        ))
        outside_since = None

    new_state = VehicleAlertState(
        battery_episode_ms=battery_episode,
        outside_since_ms=outside_since,
        offline_since_ms=offline_since,
        last_event_ms=event_time_ms,
        last_lat=lat,
        last_lon=lon,
    )
    return new_state, alerts


def on_silence(state: VehicleAlertState, vehicle_id: int, policy: AlertPolicy) -> tuple[VehicleAlertState, list[dict[str, Any]]]:
    """The offline timer fired: raise `offline` once; the episode starts at the last event's time."""
    if state.offline_since_ms is not None or state.last_event_ms is None:
        return state, []
    since = state.last_event_ms
    minutes = policy.offline_after_s / 60
    alert = make_alert(
        OFFLINE, vehicle_id, since, event_time_ms=since, lat=state.last_lat, lon=state.last_lon,
        subject=f"Vehicle Offline: {vehicle_id}",
        message=f"Vehicle {vehicle_id} hasn't reported telemetry for {minutes:g} minutes.",
        details={"last_seen": format_timestamp_ms(since)},
    )
    return replace(state, offline_since_ms=since), [alert]
