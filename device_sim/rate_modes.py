"""A time-driven fleet: every vehicle reports at the rate of its mode (seed section 6, "Message Rate").

- in a trip: every 200 ms (5 Hz, real-time tracking);
- normal: every second (1 Hz) — a parked vehicle with the battery at 80 % or less is "normal": it is
  the one operations may need to find and charge;
- parked with the battery above 80 %: every 10 s (0.1 Hz, power saving).

The mode is the one the event shows (`vehicle_status.in_use`, `battery.percent`) by the edge agent's
rule (`edge_agent.rate.rate_mode`, the one statement of it; `RateModes` converts its rates to
intervals in ms): the interval after an event is the interval of that event's mode.

`RateModeFleet.stream(duration_s)` yields the events of all vehicles in event-time order: a timing
wheel (one bucket of vehicles per due millisecond) hands out the vehicles that are due, each one's
model advances by the time since its previous event, the event is rendered and the vehicle goes
into the bucket of its next event. Within a millisecond, vehicles come in the order they were
scheduled. Everything comes from one `random.Random(seed)` and a table of Gaussian noise drawn from
it once, so the same seed (and start time) gives the same stream, event for event.

The vehicle model: trips at scooter speeds (random walk in speed and heading), parked periods,
battery drain while riding, charging, battery swaps (a low battery jumps to ~100 % while parked),
GPS noise of σ 3 m (clipped at 3σ). Vehicles live inside the service area (by default the Frankfurt
area of `udfs.geofence`) and never leave it on their own: a step that would bring a vehicle's
reported position (true position ± noise) outside turns it around. Nor does a battery fall below
16 % on its own (trips end there, and only start at 25 %). So every geofence exit and every low
battery in a stream is one the scenario injected (`device_sim.scenario`), which makes alerts
countable downstream.

`stream()` yields dicts (the seed payload); `stream_encoded()` yields (key, payload bytes) from the
same model and noise, rendered by a byte template instead of dict + JSON encoder — the load-test
path (the two decode to equal events); `encoded_batches()` is the same per millisecond, for outputs
that pace by event time (`device_sim.kafka_output.produce_batches`). `events(ticks)` of `device_sim.fleet_model.Fleet` remains the
fixed-interval generator.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Final, Iterator

import orjson

from device_sim.fleet_model import FRANKFURT, FleetSpec
from edge_agent.rate import SEED_RATES as SEED_POLICY
from edge_agent.rate import RatePolicy, rate_mode
from edge_agent.sensors import VehicleMode
from udfs.geofence import DEFAULT_SERVICE_AREA, ServiceArea, load_service_area

IN_TRIP: Final = VehicleMode.IN_TRIP.value  # plain strings: mode_counts' keys, CLI and bench output
NORMAL: Final = VehicleMode.NORMAL.value
PARKED: Final = VehicleMode.PARKED.value
MODES: Final = (IN_TRIP, NORMAL, PARKED)

_M_PER_DEG_LAT: Final = 111_320.0
GPS_SIGMA_M: Final = 3.0
_NOISE_CLIP: Final = 3.0  # σ: reported positions are within ±9 m of the true one on each axis
_MARGIN_M: Final = 12.0  # true positions keep this far from the area's boundary (> 9 m + rounding)
_NOISE_SIZE: Final = 65_521  # prime: the noise index cycles through every entry
_NOISE_STRIDE: Final = 6  # draws per event
_ACCEL_SIZE: Final = 4_096

NATURAL_BATTERY_FLOOR: Final = 16.0  # a trip ends here; only injected batteries go lower
TRIP_MIN_BATTERY: Final = 25.0
_CHARGE_STEP_MS: Final = 50_000
_NOT_STILL: Final = (-1,)


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


# --- geometry -------------------------------------------------------------------------------------

_DEFAULT_AREA: Any = object()  # sentinel: the Frankfurt area when the spec is centred on Frankfurt


class _Region:
    """Where vehicles may be: "safely inside" means the square of ±`_MARGIN_M` around the point is in
    the area, so any reported position (true ± 9 m) is too; "safely outside" the same for outside.

    A service area is pre-cut into cells: a cell whose margin-grown square is entirely in (or out of)
    the area answers without a point-in-polygon test (no ring vertex in it and its four corners agree
    — edges are straight, so nothing can cut through it unnoticed, short of a sliver narrower than the
    cell, which a service area does not have). Mixed cells test the point's square the same way.
    Without a service area, the region is the disc of `radius_km` around `center`.
    """

    _CELL_M = 250.0

    def __init__(self, area: ServiceArea | None, center: tuple[float, float], radius_km: float, lon_m: float):
        self.area = area
        self.center = center
        self.radius_m = radius_km * 1000
        self.dlat = _MARGIN_M / _M_PER_DEG_LAT
        self.dlon = _MARGIN_M / lon_m
        self.lon_m = lon_m
        if area is None:
            self.bbox = (
                center[1] - self.radius_m / lon_m, center[0] - self.radius_m / _M_PER_DEG_LAT,
                center[1] + self.radius_m / lon_m, center[0] + self.radius_m / _M_PER_DEG_LAT,
            )
            return
        self.vertices = [(lat, lon) for p in area.polygons for ring in (p.exterior, *p.holes) for lon, lat in ring]
        boxes = [p.bbox for p in area.polygons]
        self.bbox = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        self.cell_lat = self._CELL_M / _M_PER_DEG_LAT
        self.cell_lon = self._CELL_M / lon_m
        self.rows = int((self.bbox[3] - self.bbox[1]) / self.cell_lat) + 1
        self.cols = int((self.bbox[2] - self.bbox[0]) / self.cell_lon) + 1
        self.cells: list[int] = []  # 1 inside, -1 outside, 0 mixed
        for row in range(self.rows):
            for col in range(self.cols):
                lat0 = self.bbox[1] + row * self.cell_lat
                lon0 = self.bbox[0] + col * self.cell_lon
                self.cells.append(self._square_state(lat0 - self.dlat, lon0 - self.dlon, lat0 + self.cell_lat + self.dlat, lon0 + self.cell_lon + self.dlon))
        min_lon, min_lat, max_lon, max_lat = self.bbox
        self._grid = (
            min_lat - self.dlat, min_lon - self.dlon, max_lat + self.dlat, max_lon + self.dlon,
            min_lat, min_lon, self.cell_lat, self.cell_lon, self.rows, self.cols, self.cells,
        )

    def _square_state(self, lat0: float, lon0: float, lat1: float, lon1: float) -> int:
        if any(lat0 <= la <= lat1 and lon0 <= lo <= lon1 for la, lo in self.vertices):
            return 0
        corners = {self.area.contains(la, lo) for la in (lat0, lat1) for lo in (lon0, lon1)}
        return 0 if len(corners) == 2 else (1 if corners.pop() else -1)

    def state(self, lat: float, lon: float) -> int:
        """1 safely inside, -1 safely outside, 0 near the boundary."""
        if self.area is None:
            north = (lat - self.center[0]) * _M_PER_DEG_LAT
            east = (lon - self.center[1]) * self.lon_m
            distance = math.hypot(north, east)
            return 1 if distance <= self.radius_m - 1.5 * _MARGIN_M else -1 if distance >= self.radius_m + 1.5 * _MARGIN_M else 0
        lo_lat, lo_lon, hi_lat, hi_lon, min_lat, min_lon, cell_lat, cell_lon, rows, cols, cells = self._grid
        if not (lo_lat < lat < hi_lat and lo_lon < lon < hi_lon):
            return -1
        row = int((lat - min_lat) / cell_lat)
        col = int((lon - min_lon) / cell_lon)
        if 0 <= row < rows and 0 <= col < cols:
            cell = cells[row * cols + col]
            if cell:
                return cell
        return self._square_state(lat - self.dlat, lon - self.dlon, lat + self.dlat, lon + self.dlon)

    def contains(self, lat: float, lon: float) -> bool:
        if self.area is None:
            return math.hypot((lat - self.center[0]) * _M_PER_DEG_LAT, (lon - self.center[1]) * self.lon_m) <= self.radius_m
        return self.area.contains(lat, lon)


# --- vehicles -------------------------------------------------------------------------------------


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
        self.still: tuple = _NOT_STILL


# The encoded fast path: a vehicle standing still, its constant parts cached (see SimVehicle.still).
_STILL_TEMPLATE: Final = b'%s%s.%03dZ","location":{"lat":%.6f,"lon":%.6f,%s%s%s%s%s%s'

# The encoded path's template for a vehicle in a trip (altitude and accuracy pre-rendered, as above).
_TRIP_TEMPLATE: Final = (
    b'%s%s.%03dZ","location":{"lat":%.6f,"lon":%.6f,%s'
    b'"percent":%d,"voltage":%.1f,"current":%.1f,"temperature":%.1f,"charging":false},'
    b'"motion":{"speed_kmh":%.1f,"heading":%d,"acceleration":%s},%s'
)

# The event template of the encoded path: orjson's field order, floats as %.Nf (which decode to the
# same floats as round(x, N)).
_TEMPLATE: Final = (
    b'%s%s.%03dZ","location":{"lat":%.6f,"lon":%.6f,"altitude":%.1f,"accuracy":%.1f},'
    b'"battery":{"percent":%d,"voltage":%.1f,"current":%.1f,"temperature":%.1f,"charging":%s},'
    b'"motion":{"speed_kmh":%.1f,"heading":%d,"acceleration":%s},%s'
)


class RateModeFleet:
    """`stream(duration_s)` / `stream(until_ms=…)`: every vehicle at its mode's rate, in event-time order.

    Successive calls continue where the previous one stopped. `area`: a `ServiceArea`, None for the
    disc of `spec.radius_km` around `spec.center`; by default the Frankfurt service area when the
    spec is centred on Frankfurt, else the disc.
    """

    def __init__(self, spec: FleetSpec = FleetSpec(), modes: RateModes = SEED_RATES, *, area: Any = _DEFAULT_AREA):
        if spec.vehicles < 1:
            raise ValueError(f"vehicles must be >= 1, got {spec.vehicles}")
        self.spec = spec
        self.modes = modes
        # The rate rule per case, computed once: a standing vehicle's by its whole battery percent
        # (0..100, what `_advance` samples), a moving one's whatever the battery.
        trip_mode = modes.mode(True, 100)
        self._in_trip_rate = (modes.interval_ms(trip_mode), trip_mode)
        self._standing_rates = [(modes.interval_ms(m), m) for m in (modes.mode(False, p) for p in range(101))]
        if area is _DEFAULT_AREA:
            area = load_service_area(DEFAULT_SERVICE_AREA) if spec.center == FRANKFURT else None
        self._lon_m = _M_PER_DEG_LAT * math.cos(math.radians(spec.center[0]))
        self.region = _Region(area, spec.center, spec.radius_km, self._lon_m)
        self._rng = random.Random(spec.seed)
        rng = self._rng
        self._noise = [max(-_NOISE_CLIP, min(_NOISE_CLIP, rng.gauss(0.0, 1.0))) for _ in range(_NOISE_SIZE + _NOISE_STRIDE)]
        self._accel = [(round(rng.gauss(0, 0.3), 2), round(rng.gauss(0, 0.3), 2), round(9.8 + rng.gauss(0, 0.05), 2)) for _ in range(_ACCEL_SIZE)]
        self._accel_bytes = [b'{"x":%.2f,"y":%.2f,"z":%.2f}' % a for a in self._accel]
        self._k = 0
        self._still_location: list[bytes] | None = None  # built on first use of the encoded path
        self._still_temperature: list[bytes] = []
        self.start_ms = spec.start_ms if spec.start_ms is not None else int(time.time()) * 1000
        self._now_ms = self.start_ms
        self._vehicles = [self._new_vehicle(i) for i in range(spec.vehicles)]
        self._wheel: dict[int, list[int]] = {}
        self._times: list[int] = []
        # Each vehicle's first event: a random phase within its first interval (a smooth load).
        for v in self._vehicles:
            interval, _ = self._interval_and_mode(v, int(round(v.battery)))
            self._schedule(self.start_ms + rng.randrange(interval), v.index)
            v.last_ms = self.start_ms
        self._ts_second = -1
        self._ts_prefix = b""
        self.swaps = 0
        self.mode_counts = {IN_TRIP: 0, NORMAL: 0, PARKED: 0}

    # -- public ---------------------------------------------------------------------------------

    @property
    def vehicle_ids(self) -> list[int]:
        return [v.vehicle_id for v in self._vehicles]

    @property
    def vehicles(self) -> list[SimVehicle]:
        return self._vehicles

    @property
    def now_ms(self) -> int:
        """Event time up to which the fleet has been streamed (exclusive)."""
        return self._now_ms

    def vehicle(self, vehicle_id: int) -> SimVehicle:
        return self._vehicles[vehicle_id - self.spec.first_vehicle_id]

    def stream(self, duration_s: float | None = None, *, until_ms: int | None = None) -> Iterator[dict[str, Any]]:
        """Every event with a timestamp before `until_ms` (or `now_ms` + `duration_s`), in time order."""
        render = self.render_dict
        for v, ts, sample in self.due(self._until(duration_s, until_ms)):
            yield render(v, ts, sample)

    def stream_encoded(self, duration_s: float | None = None, *, until_ms: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """The same events as `stream()` as (key = vehicle_id, JSON payload) bytes, at a fraction of the CPU.

        Generated a millisecond at a time: a consumer that stops mid-way loses the rest of that
        millisecond's events (`stream()` loses none)."""
        batches = self.encoded_batches(self._until(duration_s, until_ms), keys_only=True)
        return itertools.chain.from_iterable(batch for _ts, batch in batches)

    def plan(self, vehicle: SimVehicle, at_ms: int, action: Callable[[SimVehicle, int], None]) -> None:
        """Run `action(vehicle, ts)` at the vehicle's first event at or after `at_ms`, before it is rendered."""
        vehicle.plans = sorted((vehicle.plans or []) + [(at_ms, action)], key=lambda p: p[0])
        vehicle.still = _NOT_STILL

    def silence(self, vehicle: SimVehicle, from_ms: int, to_ms: int) -> list[int]:
        """The vehicle emits nothing in [from_ms, to_ms) (its model keeps running). Returns the window
        as a list [from_ms, to_ms, suppressed events], updated as the stream runs."""
        window = [from_ms, to_ms, 0]
        vehicle.still = _NOT_STILL
        vehicle.silent = (vehicle.silent or []) + [window]
        return window

    # -- the schedule ---------------------------------------------------------------------------
    #
    # A timing wheel: `_wheel` maps an event time (ms) to the vehicles due then, in the order they
    # were scheduled; `_times` is a heap of the wheel's times. Per event that is a list append (to
    # the bucket of ts + interval, usually the same as the previous vehicle's) instead of a heap
    # operation; the order is deterministic: by time, then by when the vehicle was scheduled.

    def _until(self, duration_s: float | None, until_ms: int | None) -> int:
        if (duration_s is None) == (until_ms is None):
            raise ValueError("give exactly one of duration_s and until_ms")
        return until_ms if until_ms is not None else self._now_ms + int(round(duration_s * 1000))

    def _schedule(self, at_ms: int, index: int) -> None:
        bucket = self._wheel.get(at_ms)
        if bucket is None:
            self._wheel[at_ms] = [index]
            heapq.heappush(self._times, at_ms)
        else:
            bucket.append(index)

    def _interval_and_mode(self, v: SimVehicle, percent: int) -> tuple[int, str]:
        """(interval, mode) after an event: `modes.mode` looked up, not called (it runs per event)."""
        return self._in_trip_rate if v.in_trip else self._standing_rates[percent]

    def due(self, until_ms: int) -> Iterator[tuple[SimVehicle, int, tuple]]:
        """(vehicle, timestamp, sample) for every event before `until_ms`, in time order; the model is
        advanced to the timestamp and `sample` holds the values to render (see `render_dict`)."""
        times, wheel, vehicles = self._times, self._wheel, self._vehicles
        counts, advance, schedule, interval_and_mode = self.mode_counts, self._advance, self._schedule, self._interval_and_mode
        while times and times[0] < until_ms:
            ts = heapq.heappop(times)
            bucket = wheel.pop(ts)
            for position, index in enumerate(bucket):
                v = vehicles[index]
                sample = advance(v, ts)
                interval, mode = interval_and_mode(v, sample[4])
                schedule(ts + interval, index)
                if v.silent is not None and self._silenced(v, ts):
                    continue
                counts[mode] += 1
                try:
                    yield v, ts, sample
                except GeneratorExit:  # closed mid-bucket: the rest stay due at ts
                    if position + 1 < len(bucket):
                        wheel[ts] = bucket[position + 1 :]
                        heapq.heappush(times, ts)
                    raise
        self._now_ms = max(self._now_ms, until_ms)

    def encoded_batches(self, until_ms: int, *, keys_only: bool = False) -> Iterator[tuple[int, list[tuple[Any, bytes]]]]:
        """(timestamp, [(vehicle or key, payload), …]) per millisecond with events before `until_ms`:
        `due()` + `render_bytes()`, with the common case — a vehicle standing still, whose event differs
        from its previous one only in time and noise — inlined and rendered from cached parts."""
        if self._still_location is None:
            self._build_still_tables()
        times, wheel, vehicles = self._times, self._wheel, self._vehicles
        counts = self.mode_counts
        advance, render, still, interval_and_mode = self._advance, self.render_bytes, self._cache_still, self._interval_and_mode
        noise, locations, temperatures, accels = self._noise, self._still_location, self._still_temperature, self._accel_bytes
        lat_scale, lon_scale = GPS_SIGMA_M / _M_PER_DEG_LAT, GPS_SIGMA_M / self._lon_m
        template, trip_template = _STILL_TEMPLATE, _TRIP_TEMPLATE
        move, tail, trip_ms = self._move, self._tail, self._in_trip_rate[0]
        wrap = _NOISE_SIZE - _NOISE_STRIDE
        heappop, heappush = heapq.heappop, heapq.heappush
        while times and times[0] < until_ms:
            ts = heappop(times)
            bucket = wheel.pop(ts)
            prefix = self._timestamp_prefix(ts // 1000)
            millis = ts % 1000
            k = self._k  # the noise index: a local here, written back around `_advance` and at the end
            out = []
            last_at, last_bucket = -1, None  # still vehicles of a bucket mostly go on to the same one
            for index in bucket:
                v = vehicles[index]
                parts = v.still
                if ts < parts[0]:  # standing still: what `_advance` + `render_bytes` would do
                    _, interval, mode, head, lat, lon, mid1, mid2, end = parts
                    n = k
                    k = k + _NOISE_STRIDE if k < wrap else (k + _NOISE_STRIDE) % _NOISE_SIZE
                    at = ts + interval
                    if at != last_at:
                        last_bucket = wheel.get(at)
                        if last_bucket is None:
                            last_bucket = wheel[at] = []
                            heappush(times, at)
                        last_at = at
                    last_bucket.append(index)
                    counts[mode] += 1
                    out.append((v.key if keys_only else v, template % (
                        head, prefix, millis, lat + noise[n] * lat_scale, lon + noise[n + 1] * lon_scale,
                        locations[n], mid1, temperatures[n], mid2, accels[n % _ACCEL_SIZE], end,
                    )))
                    continue
                if v.in_trip and ts < v.phase_end_ms and v.plans is None and v.silent is None:
                    # riding on: `_advance` (a trip step) + `render_bytes`, inlined
                    dt = (ts - v.last_ms) / 1000.0
                    v.last_ms = ts
                    n = k
                    k = k + _NOISE_STRIDE if k < wrap else (k + _NOISE_STRIDE) % _NOISE_SIZE
                    move(v, dt, noise[n + 4], noise[n + 5])
                    speed, battery = v.speed_kmh, v.battery
                    n_north = noise[n]
                    at = ts + trip_ms
                    if at != last_at:
                        last_bucket = wheel.get(at)
                        if last_bucket is None:
                            last_bucket = wheel[at] = []
                            heappush(times, at)
                        last_at = at
                    last_bucket.append(index)
                    counts[IN_TRIP] += 1
                    out.append((v.key if keys_only else v, trip_template % (
                        v.head, prefix, millis, v.lat + n_north * lat_scale, v.lon + noise[n + 1] * lon_scale,
                        locations[n], int(round(battery)), 42.0 + 12.6 * battery / 100, 3.5 * speed / 18,
                        24.0 + speed / 3 + 0.5 * noise[n + 3], speed, int(v.heading) % 360, accels[n % _ACCEL_SIZE], tail(v),
                    )))
                    continue
                v.still = _NOT_STILL
                self._k = k
                sample = advance(v, ts)
                k = self._k
                interval, mode = interval_and_mode(v, sample[4])
                at = ts + interval
                if at != last_at:
                    last_bucket = wheel.get(at)
                    if last_bucket is None:
                        last_bucket = wheel[at] = []
                        heappush(times, at)
                    last_at = at
                last_bucket.append(index)
                if v.silent is not None and self._silenced(v, ts):
                    continue
                counts[mode] += 1
                payload = render(v, ts, sample)
                if not (v.in_trip or v.plans is not None or v.silent is not None):
                    still(v, sample, interval, mode)
                out.append((v.key if keys_only else v, payload))
            self._k = k
            if out:
                yield ts, out
        self._now_ms = max(self._now_ms, until_ms)

    def _build_still_tables(self) -> None:
        noise = self._noise
        self._still_location = [
            b'"altitude":%.1f,"accuracy":%.1f},"battery":{' % (112.5 + 2.0 * noise[k + 2], abs(noise[k]) * GPS_SIGMA_M + 2.0)
            for k in range(_NOISE_SIZE)
        ]
        # 24 + speed / 3 + noise, with speed 0.0 (the same float sum as in `_advance`)
        self._still_temperature = [b"%.1f" % (24.0 + 0.0 / 3 + 0.5 * noise[k + 3]) for k in range(_NOISE_SIZE)]

    def _cache_still(self, v: SimVehicle, s: tuple, interval: int, mode: str) -> None:
        """Cache the constant parts of a still vehicle's payload (as `render_bytes` writes them)."""
        v.still = (
            v.phase_end_ms if v.change_at_ms is None else min(v.phase_end_ms, v.change_at_ms),
            interval,
            mode,
            v.head,
            v.lat,
            v.lon,
            b'"percent":%d,"voltage":%.1f,"current":%.1f,"temperature":' % (s[4], s[5], s[6]),
            b',"charging":%s},"motion":{"speed_kmh":%.1f,"heading":%d,"acceleration":' % (b"true" if s[8] else b"false", s[9], s[10]),
            b"}," + self._tail(v),
        )

    @staticmethod
    def _silenced(v: SimVehicle, ts: int) -> bool:
        for window in v.silent:
            if window[0] <= ts < window[1]:
                window[2] += 1
                return True
        return False

    # -- the model ------------------------------------------------------------------------------

    def _new_vehicle(self, index: int) -> SimVehicle:
        rng = self._rng
        v = SimVehicle(index, self.spec.first_vehicle_id + index)
        for _ in range(10_000):
            distance_m = self.spec.radius_km * 1000 * math.sqrt(rng.random())
            bearing = rng.uniform(0, 2 * math.pi)
            lat = self.spec.center[0] + distance_m * math.cos(bearing) / _M_PER_DEG_LAT
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
                v.change_at_ms = ts + _CHARGE_STEP_MS
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
        self._k = k + _NOISE_STRIDE if k < _NOISE_SIZE - _NOISE_STRIDE else (k + _NOISE_STRIDE) % _NOISE_SIZE
        noise = self._noise
        if v.in_trip:
            self._move(v, dt, noise[k + 4], noise[k + 5])
        elif v.change_at_ms is not None and ts >= v.change_at_ms:
            if v.charging:
                steps = 1 + (ts - v.change_at_ms) // _CHARGE_STEP_MS
                v.battery = min(100.0, v.battery + steps)
                v.change_at_ms += steps * _CHARGE_STEP_MS
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
            v.lat + n_north * (GPS_SIGMA_M / _M_PER_DEG_LAT),
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
            k % _ACCEL_SIZE,
        )

    def _move(self, v: SimVehicle, dt: float, g_speed: float, g_heading: float) -> None:
        scale = math.sqrt(dt) if dt > 0 else 0.0
        v.speed_kmh = max(0.0, min(25.0, v.speed_kmh + (0.3 + 2.0 * g_speed) * scale))
        v.heading = (v.heading + 12.0 * g_heading * scale) % 360
        step_m = v.speed_kmh / 3.6 * dt
        rad = math.radians(v.heading)
        lat = v.lat + step_m * math.cos(rad) / _M_PER_DEG_LAT
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
        north = (v.lat - self.spec.center[0]) * _M_PER_DEG_LAT
        east = (v.lon - self.spec.center[1]) * self._lon_m
        bearing = math.atan2(east, north) if (north or east) else rng.uniform(0, 2 * math.pi)
        min_lon, min_lat, max_lon, max_lat = self.region.bbox
        lat, lon = v.lat, v.lon
        while min_lat - self.region.dlat <= lat <= max_lat + self.region.dlat and min_lon - self.region.dlon <= lon <= max_lon + self.region.dlon:
            lat += 100.0 * math.cos(bearing) / _M_PER_DEG_LAT
            lon += 100.0 * math.sin(bearing) / self._lon_m
        extra = rng.uniform(300, 1_500)
        v.lat = lat + extra * math.cos(bearing) / _M_PER_DEG_LAT
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

    # -- rendering ------------------------------------------------------------------------------

    def _timestamp_prefix(self, second: int) -> bytes:
        if second != self._ts_second:
            self._ts_second = second
            self._ts_prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)).encode()
        return self._ts_prefix

    def _tail(self, v: SimVehicle) -> bytes:
        state = (v.trip_id, v.in_trip, int(v.odometer_km), int(v.last_maintenance_km))
        if state != v.tail_state:
            v.tail_state = state
            v.tail = orjson.dumps({"vehicle_status": self._status(v), "diagnostics": self._diagnostics(v)})[1:]
        return v.tail

    @staticmethod
    def _status(v: SimVehicle) -> dict[str, Any]:
        return {"locked": not v.in_trip, "in_use": v.in_trip, "trip_id": v.trip_id}

    @staticmethod
    def _diagnostics(v: SimVehicle) -> dict[str, Any]:
        return {"odometer_km": int(v.odometer_km), "error_codes": [], "last_maintenance_km": int(v.last_maintenance_km)}

    def render_bytes(self, v: SimVehicle, ts: int, s: tuple) -> bytes:
        second, millis = divmod(ts, 1000)
        return _TEMPLATE % (
            v.head, self._timestamp_prefix(second), millis, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7],
            b"true" if s[8] else b"false", s[9], s[10], self._accel_bytes[s[11]], self._tail(v),
        )

    def render_dict(self, v: SimVehicle, ts: int, s: tuple) -> dict[str, Any]:
        second, millis = divmod(ts, 1000)
        x, y, z = self._accel[s[11]]
        return {
            "vehicle_id": v.vehicle_id,
            "timestamp": f"{self._timestamp_prefix(second).decode()}.{millis:03d}Z",
            "location": {"lat": round(s[0], 6), "lon": round(s[1], 6), "altitude": round(s[2], 1), "accuracy": round(s[3], 1)},
            "battery": {
                "percent": s[4], "voltage": round(s[5], 1), "current": round(s[6], 1),
                "temperature": round(s[7], 1), "charging": s[8],
            },
            "motion": {"speed_kmh": round(s[9], 1), "heading": s[10], "acceleration": {"x": x, "y": y, "z": z}},
            "vehicle_status": self._status(v),
            "diagnostics": self._diagnostics(v),
        }
