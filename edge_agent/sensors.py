"""Where the agent's readings come from, and the vehicle's mode derived from a reading.

A reading is one seed payload (section 6) without the transport fields the agent adds (`seq`,
`resent`): vehicle_id, timestamp, location, battery, motion, vehicle_status, diagnostics. On a
vehicle a `SensorSource` is `edge_agent.feed.SensorFeed`: the JSON lines the vehicle's sensor
daemon writes (it owns GPS, the battery management system and the controller). For demos and tests
the main distribution adds `device_sim.simulated_sensors.SimulatedSensorSource`, the simulator's
deterministic vehicle model for one vehicle.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SensorSource(Protocol):
    """One reading per call, in the seed payload shape minus transport fields.

    Timestamps must increase strictly from one reading to the next: the pipeline deduplicates on
    (vehicle_id, timestamp), so two readings in the same millisecond would lose one.
    """

    def read(self) -> dict[str, Any]: ...


class SensorUnavailable(Exception):
    """No reading can be taken now (none yet, or the newest is too old): an expected condition of a
    vehicle's sensors, which the agent counts and logs without a traceback, then tries again."""


class VehicleMode(enum.StrEnum):
    """What the vehicle is doing, which decides how often it reports (see `edge_agent.rate`)."""

    IN_TRIP = "in_trip"
    NORMAL = "normal"
    PARKED = "parked"


def vehicle_mode(reading: dict[str, Any]) -> VehicleMode:
    """The mode a reading shows.

    in_trip: the vehicle is rented (`vehicle_status.in_use`) or carries a trip_id.
    parked:  locked and standing still (no speed, or speed 0).
    normal:  anything else, e.g. unlocked but not in a trip, or a reading without status.
    """
    status = reading.get("vehicle_status") or {}
    if status.get("in_use") is True or status.get("trip_id"):
        return VehicleMode.IN_TRIP
    speed = (reading.get("motion") or {}).get("speed_kmh")
    if status.get("locked") is True and not speed:
        return VehicleMode.PARKED
    return VehicleMode.NORMAL
