"""How often the vehicle reports, by mode (seed section 6, "Message Rate"). Pure.

- in a trip: 5 msg/s (real-time tracking of a moving, rented vehicle);
- normally: 1 msg/s;
- parked with the battery above 80 %: 1 msg per 10 s (power saving). A parked vehicle with a lower
  battery keeps the normal rate: it is the one operations may need to find and charge.

This is the one statement of that rule: the simulator's `device_sim.report_rates` schedules
its vehicles with `rate_mode` and a `RatePolicy` too, converting the rates to its milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.sensors import VehicleMode


@dataclass(frozen=True, slots=True)
class RatePolicy:
    in_trip_hz: float = 5.0
    normal_hz: float = 1.0
    parked_hz: float = 0.1
    parked_battery_above: float = 80.0  # parked_hz applies only above this battery percent

    def __post_init__(self) -> None:
        for name in ("in_trip_hz", "normal_hz", "parked_hz"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    def rate_hz(self, mode: VehicleMode) -> float:
        """Readings per second at the rate of `mode` (a mode `rate_mode` returned)."""
        if mode is VehicleMode.IN_TRIP:
            return self.in_trip_hz
        return self.parked_hz if mode is VehicleMode.PARKED else self.normal_hz


SEED_RATES = RatePolicy()


def rate_mode(mode: VehicleMode, battery_percent: float | None, policy: RatePolicy = SEED_RATES) -> VehicleMode:
    """The mode whose rate applies to a vehicle in `mode` with `battery_percent` (None: unknown):
    its own, except that a parked vehicle saves power only with the battery above the threshold."""
    if mode is VehicleMode.PARKED and not (battery_percent is not None and battery_percent > policy.parked_battery_above):
        return VehicleMode.NORMAL
    return mode


def reading_rate_hz(mode: VehicleMode, battery_percent: float | None, policy: RatePolicy = SEED_RATES) -> float:
    """Readings per second for a vehicle in `mode` with `battery_percent` (None: unknown)."""
    return policy.rate_hz(rate_mode(mode, battery_percent, policy))


def reading_interval_s(mode: VehicleMode, battery_percent: float | None, policy: RatePolicy = SEED_RATES) -> float:
    """Seconds until the next reading: 1 / `reading_rate_hz`."""
    return 1.0 / reading_rate_hz(mode, battery_percent, policy)
