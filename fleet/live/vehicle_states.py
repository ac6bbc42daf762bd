"""What the fleet map calls each vehicle: in trip, parked, low battery or offline, from its last status.

One state per vehicle, the first rule that holds, in the order an operator has to act on them:

  offline      its newest event is older than offline_after_s (by the wall clock), or the alerts job
               marked it offline (the status table's `online` = 0, cleared by its next event)
  low_battery  battery_percent below low_battery_percent (the alerts job's threshold), whether riding
               or parked: the swap team needs it either way
  in_trip      in use
  parked       everything else

Pure functions over the plain rows `LocalVehicleStatusStore.status_rows(COLUMNS)` returns, so the map
classifies 50,000 vehicles in a few milliseconds without building an object per vehicle.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fleet.config import AlertSettings

OFFLINE: Final = "offline"
LOW_BATTERY: Final = "low_battery"
IN_TRIP: Final = "in_trip"
PARKED: Final = "parked"
STATES: Final = (IN_TRIP, PARKED, LOW_BATTERY, OFFLINE)  # the legend's order

# Read from the status table, in this order.
COLUMNS: Final = (
    "vehicle_id", "latitude", "longitude", "battery_percent", "in_use", "online", "last_seen_ms",
    "zone_id", "vehicle_type",
)
# Each vehicle on the map, in this order (rows, not objects: a third less JSON at 50,000 vehicles).
FIELDS: Final = ("vehicle_id", "lat", "lon", "state", "battery_percent", "last_seen_ms", "zone_id", "vehicle_type")


@dataclass(frozen=True)
class StateRules:
    low_battery_percent: float
    offline_after_s: float

    @staticmethod
    def of(alerts: AlertSettings) -> StateRules:
        """The alerts job's thresholds, so the map and the alerts agree on what is low and what is silent."""
        return StateRules(alerts.low_battery_percent, alerts.offline_after_s)


def state_of(battery_percent: float, in_use: Any, online: Any, last_seen_ms: int, *, offline_before_ms: int,
             low_battery_percent: float) -> str:
    """The state of one vehicle (see the module docstring); `offline_before_ms` = now - offline_after_s."""
    if not online or last_seen_ms < offline_before_ms:
        return OFFLINE
    if battery_percent < low_battery_percent:
        return LOW_BATTERY
    return IN_TRIP if in_use else PARKED


def classify(rows: Iterable[Sequence[Any]], now_ms: int, rules: StateRules) -> tuple[list[tuple], dict[str, int]]:
    """(one FIELDS row per vehicle, vehicles per state) for status rows in COLUMNS order."""
    offline_before_ms = now_ms - int(rules.offline_after_s * 1000)
    low = rules.low_battery_percent
    vehicles = [
        (vehicle_id, lat, lon,
         state_of(battery, in_use, online, seen, offline_before_ms=offline_before_ms, low_battery_percent=low),
         battery, seen, zone, vehicle_type)
        for vehicle_id, lat, lon, battery, in_use, online, seen, zone, vehicle_type in rows
    ]
    tally = Counter(vehicle[3] for vehicle in vehicles)
    return vehicles, {state: tally.get(state, 0) for state in STATES}
