"""How often a simulated vehicle reports, by mode: the edge agent's rate rule in ms of event time.

The rule itself (seed section 6, "Message Rate": 5 Hz in a trip, 1 Hz normally, 0.1 Hz parked with
the battery above 80 %) is stated once, in `edge_agent.rate`; `RateModes` converts a `RatePolicy`'s
rates to the intervals the simulator schedules (`device_sim.rate_fleet`), and `FIXED_1HZ` is the
seed's sizing case (every vehicle once a second), not a rule of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from edge_agent.rate import SEED_RATES as SEED_POLICY
from edge_agent.rate import RatePolicy, rate_mode
from edge_agent.sensors import VehicleMode

IN_TRIP: Final = VehicleMode.IN_TRIP.value  # plain strings: mode_counts' keys, CLI and bench output
NORMAL: Final = VehicleMode.NORMAL.value
PARKED: Final = VehicleMode.PARKED.value
MODES: Final = (IN_TRIP, NORMAL, PARKED)


def _interval_ms(hz: float) -> int:
    return round(1000 / hz)


@dataclass(frozen=True)
class RateModes:
    """The reporting interval per mode, in ms of event time: the edge agent's `RatePolicy` (by default
    the seed's) as the simulator schedules it. The mode rule itself is `edge_agent.rate.rate_mode`."""

    in_trip_ms: int = _interval_ms(SEED_POLICY.in_trip_hz)
    normal_ms: int = _interval_ms(SEED_POLICY.normal_hz)
    parked_ms: int = _interval_ms(SEED_POLICY.parked_hz)
    parked_battery_above: float = SEED_POLICY.parked_battery_above  # parked_ms only above this battery %

    def __post_init__(self) -> None:
        for name in ("in_trip_ms", "normal_ms", "parked_ms"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")

    @classmethod
    def from_policy(cls, policy: RatePolicy) -> RateModes:
        return cls(
            _interval_ms(policy.in_trip_hz), _interval_ms(policy.normal_hz), _interval_ms(policy.parked_hz),
            policy.parked_battery_above,
        )

    @property
    def policy(self) -> RatePolicy:
        return RatePolicy(1000 / self.in_trip_ms, 1000 / self.normal_ms, 1000 / self.parked_ms, self.parked_battery_above)

    def mode(self, in_trip: bool, battery_percent: float) -> str:
        """A simulated vehicle is in a trip or parked (locked, standing); the rule says which rate applies."""
        shown = VehicleMode.IN_TRIP if in_trip else VehicleMode.PARKED
        return rate_mode(shown, battery_percent, self.policy).value

    def interval_ms(self, mode: str) -> int:
        return self.in_trip_ms if mode == IN_TRIP else self.parked_ms if mode == PARKED else self.normal_ms


SEED_RATES: Final = RateModes.from_policy(SEED_POLICY)
FIXED_1HZ: Final = RateModes(1_000, 1_000, 1_000)  # every vehicle at 1 Hz: the seed's 50K events/s sizing


def event_mode(event: dict[str, Any], modes: RateModes = SEED_RATES) -> str:
    """The mode an event shows: in a trip (`vehicle_status.in_use`), else parked/normal by battery."""
    in_use = bool((event.get("vehicle_status") or {}).get("in_use"))
    return modes.mode(in_use, (event.get("battery") or {}).get("percent", 0))
