"""The simulated vehicle: its state (`SimVehicle`) and its physics (`VehiclePhysics`).

Trips at scooter speeds (random walk in speed and heading), parked periods, battery drain while
riding, charging, battery swaps (a low battery jumps to ~100 % while parked), GPS noise of σ 3 m
(clipped at 3σ). A step that would bring a vehicle's reported position (true ± noise) out of the
service region turns it round, and a battery never falls below 16 % on its own (trips end there and
start only at 25 %): low batteries and geofence exits are the ones a scenario injects (`drive_out`,
`drain`, scheduled by `device_sim.scenario`), which makes alerts countable downstream.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable
from typing import Final

from device_sim.fleet_model import FleetSpec
from device_sim.service_region import M_PER_DEG_LAT, ServiceRegion

GPS_SIGMA_M: Final = 3.0
NOISE_CLIP: Final = 3.0  # σ: reported positions are within ±9 m of the true one on each axis
NOISE_SIZE: Final = 65_521  # prime: the noise index cycles through every entry
NOISE_STRIDE: Final = 6  # draws per event
ACCEL_SIZE: Final = 4_096

NATURAL_BATTERY_FLOOR: Final = 16.0  # a trip ends here; only injected batteries go lower
TRIP_MIN_BATTERY: Final = 25.0
CHARGE_STEP_MS: Final = 50_000
NOT_STILL: Final = (-1,)  # SimVehicle.still of a vehicle with no cached payload


class SimVehicle:
    """One vehicle's state. `outside`: driven out of the area (kept out); `flat`: battery injected low."""

    __slots__ = (
        "index", "vehicle_id", "lat", "lon", "heading", "battery", "odometer_km", "last_maintenance_km",
        "in_trip", "trip_id", "speed_kmh", "charging", "change_at_ms", "phase_end_ms", "last_ms",
        "outside", "flat", "plans", "silent", "head", "key", "tail", "tail_state",
        "still",
    )

    def __init__(self, index: int, vehicle_id: int):
        self.index = index
        self.vehicle_id = vehicle_id
        self.in_trip = False
        self.trip_id: str | None = None
        self.speed_kmh = 0.0
        self.charging = False
        # The next discrete battery change while parked: a +1 % charging step, or a battery swap.
        self.change_at_ms: int | None = None
        self.outside = False
        self.flat = False
        self.plans: list[tuple[int, Callable[[SimVehicle, int], None]]] | None = None
        self.silent: list[list[int]] | None = None  # [from_ms, to_ms, suppressed] windows
        self.head = b'{"vehicle_id":%d,"timestamp":"' % vehicle_id
        self.key = b"%d" % vehicle_id
        self.tail = b""
        self.tail_state: tuple | None = None
        # The encoded path's cache for a vehicle whose event changes only by time and noise (parked,
        # nothing planned): (valid until ms, interval, mode, the constant parts of its payload).
        self.still: tuple = NOT_STILL


class VehiclePhysics:
    """The model's steps, mixed into `device_sim.rate_fleet.RateModeFleet`, whose constructor sets
    what they use: `spec`, `region`, `start_ms`, `_rng` (the one random source), `_noise` (Gaussian
    draws, `NOISE_STRIDE` per event from index `_k`), `_lon_m` (metres per degree of longitude) and
    `swaps`."""

    spec: FleetSpec
    region: ServiceRegion
    start_ms: int
    swaps: int
    _rng: random.Random
    _noise: list[float]
    _lon_m: float
    _k: int

    def _new_vehicle(self, index: int) -> SimVehicle:
        rng = self._rng
        v = SimVehicle(index, self.spec.first_vehicle_id + index)
        for _ in range(10_000):
            distance_m = self.spec.radius_km * 1000 * math.sqrt(rng.random())
            bearing = rng.uniform(0, 2 * math.pi)
            lat = self.spec.center[0] + distance_m * math.cos(bearing) / M_PER_DEG_LAT
            lon = self.spec.center[1] + distance_m * math.sin(bearing) / self._lon_m
            if self.region.state(lat, lon) == 1:
                break
        else:
            raise ValueError("no room for vehicles: the disc of radius_km around center misses the service area")
        v.lat, v.lon = lat, lon
        v.heading = rng.uniform(0, 360)
        v.odometer_km = rng.uniform(100, 5_000)
        v.last_maintenance_km = max(0.0, v.odometer_km - rng.uniform(0, 500))
        v.battery = rng.uniform(20, 100)
        # Start mid-phase: ~10 % of the fleet is in a trip at any time (trips 2-15 min, parking 10-150).
        if v.battery >= TRIP_MIN_BATTERY and rng.random() < 0.1:
            self._start_trip(v, self.start_ms, rng.randint(10_000, 900_000))
        else:
            self._park(v, self.start_ms, rng.randint(10_000, 9_000_000))
        return v

    def _start_trip(self, v: SimVehicle, ts: int, duration_ms: int) -> None:
        rng = self._rng
        v.in_trip = True
        v.last_ms = ts
        v.trip_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        v.speed_kmh = rng.uniform(8, 16)
        v.charging = False
        v.change_at_ms = None
        v.phase_end_ms = ts + duration_ms

    def _park(self, v: SimVehicle, ts: int, duration_ms: int) -> None:
        rng = self._rng
        v.in_trip = False
        v.trip_id = None
        v.speed_kmh = 0.0
        v.phase_end_ms = ts + duration_ms
        v.charging = False
        v.change_at_ms = None
        if v.battery < 35 and not v.flat:
            draw = rng.random()
            if draw < 0.3:  # on a charger: +1 % every 50 s (the BMS reports whole percents)
                v.charging = True
                v.change_at_ms = ts + CHARGE_STEP_MS
            elif draw < 0.6:  # operations swap the battery some time during the parked period
                v.change_at_ms = ts + rng.randint(0, duration_ms)

    def _advance(self, v: SimVehicle, ts: int) -> tuple:
        """Move the vehicle's model to `ts`; return its sample (lat, lon, altitude, accuracy, percent,
        voltage, current, temperature, charging, speed, heading, accel index)."""
        if v.plans is not None:
            while v.plans and v.plans[0][0] <= ts:
                _, action = v.plans.pop(0)
                action(v, ts)
            if not v.plans:
                v.plans = None
        if ts >= v.phase_end_ms:
            rng = self._rng
            if v.in_trip or v.battery < TRIP_MIN_BATTERY or v.flat:
                self._park(v, ts, rng.randint(600_000, 9_000_000))
            else:
                self._start_trip(v, ts, rng.randint(120_000, 900_000))
        # Only trips use dt, and a trip's every event comes through here (a parked vehicle's last_ms
        # may be stale: the encoded path does not keep it).
        dt = (ts - v.last_ms) / 1000.0
        v.last_ms = ts
        k = self._k
        self._k = k + NOISE_STRIDE if k < NOISE_SIZE - NOISE_STRIDE else (k + NOISE_STRIDE) % NOISE_SIZE
        noise = self._noise
        if v.in_trip:
            self._move(v, dt, noise[k + 4], noise[k + 5])
        elif v.change_at_ms is not None and ts >= v.change_at_ms:
            if v.charging:
                steps = 1 + (ts - v.change_at_ms) // CHARGE_STEP_MS
                v.battery = min(100.0, v.battery + steps)
                v.change_at_ms += steps * CHARGE_STEP_MS
                if v.battery >= 100.0:
                    v.charging = False
                    v.change_at_ms = None
            else:
                v.battery = 95.0 + 5.0 * self._rng.random()
                v.change_at_ms = None
                self.swaps += 1
        n_north = noise[k]
        battery = v.battery
        speed = v.speed_kmh
        return (
            v.lat + n_north * (GPS_SIGMA_M / M_PER_DEG_LAT),
            v.lon + noise[k + 1] * (GPS_SIGMA_M / self._lon_m),
            112.5 + 2.0 * noise[k + 2],
            abs(n_north) * GPS_SIGMA_M + 2.0,
            int(round(battery)),
            42.0 + 12.6 * battery / 100,
            -1.5 if v.charging else (3.5 * speed / 18 if v.in_trip else 0.1),
            24.0 + speed / 3 + 0.5 * noise[k + 3],
            v.charging,
            speed,
            int(v.heading) % 360,
            k % ACCEL_SIZE,
        )

    def _move(self, v: SimVehicle, dt: float, g_speed: float, g_heading: float) -> None:
        scale = math.sqrt(dt) if dt > 0 else 0.0
        v.speed_kmh = max(0.0, min(25.0, v.speed_kmh + (0.3 + 2.0 * g_speed) * scale))
        v.heading = (v.heading + 12.0 * g_heading * scale) % 360
        step_m = v.speed_kmh / 3.6 * dt
        rad = math.radians(v.heading)
        lat = v.lat + step_m * math.cos(rad) / M_PER_DEG_LAT
        lon = v.lon + step_m * math.sin(rad) / self._lon_m
        if self.region.state(lat, lon) != (-1 if v.outside else 1):
            v.heading = (v.heading + 180.0) % 360  # the edge of the area (or of the outside): turn round
            return
        v.lat, v.lon = lat, lon
        v.odometer_km += step_m / 1000
        v.battery = max(0.0, v.battery - 0.004 * dt * (1 + v.speed_kmh / 25))
        if v.battery < NATURAL_BATTERY_FLOOR and not v.flat:
            v.phase_end_ms = v.last_ms  # the rider ends the trip; the next event parks
            v.battery = NATURAL_BATTERY_FLOOR

    # -- injected changes (scheduled by device_sim.scenario through `plan`) ----------------------

    def drive_out(self, v: SimVehicle, ts: int) -> None:
        """The vehicle leaves the service area: it is placed 0.3-1.5 km beyond the area's bounding box,
        along its bearing from the centre, in a long trip heading away; from then on it stays outside."""
        rng = self._rng
        north = (v.lat - self.spec.center[0]) * M_PER_DEG_LAT
        east = (v.lon - self.spec.center[1]) * self._lon_m
        bearing = math.atan2(east, north) if (north or east) else rng.uniform(0, 2 * math.pi)
        min_lon, min_lat, max_lon, max_lat = self.region.bbox
        lat, lon = v.lat, v.lon
        while min_lat - self.region.dlat <= lat <= max_lat + self.region.dlat and min_lon - self.region.dlon <= lon <= max_lon + self.region.dlon:
            lat += 100.0 * math.cos(bearing) / M_PER_DEG_LAT
            lon += 100.0 * math.sin(bearing) / self._lon_m
        extra = rng.uniform(300, 1_500)
        v.lat = lat + extra * math.cos(bearing) / M_PER_DEG_LAT
        v.lon = lon + extra * math.sin(bearing) / self._lon_m
        assert self.region.state(v.lat, v.lon) == -1
        v.outside = True
        if not v.in_trip:
            self._start_trip(v, ts, 0)
        v.heading = math.degrees(bearing) % 360
        v.phase_end_ms = ts + rng.randint(600_000, 1_800_000)
        v.battery = max(v.battery, TRIP_MIN_BATTERY)

    def drain(self, v: SimVehicle, ts: int) -> None:
        """The battery drops below 15 % (a failing cell): 5-14 %, parked, no charging or swap."""
        v.battery = float(self._rng.randint(5, 14))
        v.flat = True
        if v.in_trip:
            self._park(v, ts, 3_600_000 * 24)
        v.charging = False
        v.change_at_ms = None
        v.phase_end_ms = ts + 3_600_000 * 24
