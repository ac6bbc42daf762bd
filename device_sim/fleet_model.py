"""A deterministic fleet of simulated vehicles that emit the seed's telemetry payload.

Each vehicle moves on a random walk around the service-area centre: trips at scooter speeds with
heading changes and GPS noise, parked periods, battery drain while riding and slow recovery while
charging. Everything comes from one `random.Random(seed)`.

The same seed and start time give the same events. This is the foundation's fixed-interval
generator (one event per vehicle per tick), kept as it is for its users. The time-driven fleet, where
each vehicle reports at its mode's rate (5 Hz in a trip, 1 Hz normal, 0.1 Hz parked and charged), is
`device_sim.rate_fleet.RateModeFleet`; injected faults are `device_sim.scenario`'s; the outputs are
`device_sim.kafka_output` and `device_sim.mqtt_output`, the command line `device_sim.cli`.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from udfs.telemetry_schema import format_timestamp_ms

FRANKFURT = (50.1109, 8.6821)
_EARTH_M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True)
class FleetSpec:
    vehicles: int = 1_000
    seed: int = 42
    center: tuple[float, float] = FRANKFURT
    radius_km: float = 6.0
    first_vehicle_id: int = 10_000
    # Event time of the first tick. None: now, rounded down to the second (the hot store keeps only
    # the last 3 days, so live runs need live timestamps). Set it for reproducible output.
    start_ms: int | None = None
    interval_ms: int = 1_000


@dataclass
class _Vehicle:
    vehicle_id: int
    lat: float
    lon: float
    heading: float
    battery: float
    odometer_km: float
    last_maintenance_km: float
    in_trip: bool = False
    trip_id: str | None = None
    speed_kmh: float = 0.0
    charging: bool = False
    remaining_ticks: int = 0
    sequence: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Fleet:
    """`events(ticks)` yields each vehicle's event per tick, tick by tick, in timestamp order."""

    def __init__(self, spec: FleetSpec = FleetSpec()):
        self.spec = spec
        self._rng = random.Random(spec.seed)
        self._vehicles = [self._new_vehicle(spec.first_vehicle_id + i) for i in range(spec.vehicles)]
        self._tick = 0
        self._start_ms = spec.start_ms if spec.start_ms is not None else int(time.time()) * 1000

    @property
    def vehicle_ids(self) -> list[int]:
        return [v.vehicle_id for v in self._vehicles]

    def _new_vehicle(self, vehicle_id: int) -> _Vehicle:
        rng = self._rng
        distance_m = self.spec.radius_km * 1000 * math.sqrt(rng.random())
        bearing = rng.uniform(0, 2 * math.pi)
        lat, lon = self._offset(*self.spec.center, distance_m * math.cos(bearing), distance_m * math.sin(bearing))
        odometer = rng.uniform(100, 5_000)
        return _Vehicle(
            vehicle_id=vehicle_id, lat=lat, lon=lon, heading=rng.uniform(0, 360),
            battery=rng.uniform(20, 100), odometer_km=odometer,
            last_maintenance_km=max(0.0, odometer - rng.uniform(0, 500)),
            remaining_ticks=rng.randint(5, 120),
        )

    @staticmethod
    def _offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
        return (
            lat + north_m / _EARTH_M_PER_DEG_LAT,
            lon + east_m / (_EARTH_M_PER_DEG_LAT * math.cos(math.radians(lat))),
        )

    def _step(self, v: _Vehicle, dt_s: float) -> None:
        rng = self._rng
        v.remaining_ticks -= 1
        if v.remaining_ticks <= 0:  # switch between riding and parking
            v.in_trip = not v.in_trip and v.battery > 10
            v.trip_id = str(uuid.UUID(int=rng.getrandbits(128), version=4)) if v.in_trip else None
            v.remaining_ticks = rng.randint(60, 900) if v.in_trip else rng.randint(30, 1_800)
            v.charging = (not v.in_trip) and v.battery < 30 and rng.random() < 0.3
        if v.in_trip:
            v.speed_kmh = max(0.0, min(25.0, v.speed_kmh + rng.gauss(0.5, 2.0)))
            v.heading = (v.heading + rng.gauss(0, 12)) % 360
            step_m = v.speed_kmh / 3.6 * dt_s
            v.lat, v.lon = self._offset(
                v.lat, v.lon, step_m * math.cos(math.radians(v.heading)), step_m * math.sin(math.radians(v.heading))
            )
            v.odometer_km += step_m / 1000
            v.battery = max(0.0, v.battery - 0.004 * dt_s * (1 + v.speed_kmh / 25))
        else:
            v.speed_kmh = 0.0
            if v.charging:
                v.battery = min(100.0, v.battery + 0.02 * dt_s)
        v.sequence += 1

    def _payload(self, v: _Vehicle, timestamp_ms: int) -> dict[str, Any]:
        rng = self._rng
        noise_m = rng.gauss(0, 3.0)
        lat, lon = self._offset(v.lat, v.lon, noise_m, rng.gauss(0, 3.0))
        return {
            "vehicle_id": v.vehicle_id,
            "timestamp": format_timestamp_ms(timestamp_ms),
            "location": {
                "lat": round(lat, 6), "lon": round(lon, 6),
                "altitude": round(112.5 + rng.gauss(0, 2), 1), "accuracy": round(abs(noise_m) + 2.0, 1),
            },
            "battery": {
                "percent": int(round(v.battery)),
                "voltage": round(42.0 + 12.6 * v.battery / 100, 1),
                "current": round(-1.5 if v.charging else (3.5 * v.speed_kmh / 18 if v.in_trip else 0.1), 1),
                "temperature": round(24 + v.speed_kmh / 3 + rng.gauss(0, 0.5), 1),
                "charging": v.charging,
            },
            "motion": {
                "speed_kmh": round(v.speed_kmh, 1), "heading": int(v.heading) % 360,
                "acceleration": {
                    "x": round(rng.gauss(0, 0.3), 2), "y": round(rng.gauss(0, 0.3), 2), "z": round(9.8 + rng.gauss(0, 0.05), 2),
                },
            },
            "vehicle_status": {"locked": not v.in_trip, "in_use": v.in_trip, "trip_id": v.trip_id},
            "diagnostics": {
                "odometer_km": int(v.odometer_km), "error_codes": [], "last_maintenance_km": int(v.last_maintenance_km),
            },
        }

    def events(self, ticks: int) -> Iterator[dict[str, Any]]:
        """`ticks` rounds of one event per vehicle, `interval_ms` apart in event time."""
        dt_s = self.spec.interval_ms / 1000
        for _ in range(ticks):
            timestamp_ms = self._start_ms + self._tick * self.spec.interval_ms
            for vehicle in self._vehicles:
                self._step(vehicle, dt_s)
                yield self._payload(vehicle, timestamp_ms)
            self._tick += 1

    def take(self, count: int) -> Iterator[dict[str, Any]]:
        """Exactly `count` events (the last tick may be partial)."""
        ticks = -(-count // len(self._vehicles))
        for index, event in enumerate(self.events(ticks)):
            if index >= count:
                return
            yield event
