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

The pieces, one module each: `device_sim.report_rates` (the interval per mode), `vehicle_physics`
(the vehicle's state and its steps: trips, parking, battery, GPS noise, the injected `drive_out` and
`drain`), `service_region` (the area vehicles stay in: by default the Frankfurt area of
`udfs.geofence`), `payload_render` (sample → dict or bytes). This module is the fleet and its
schedule, with the encoded path's inlined common cases.

`stream()` yields dicts (the seed payload); `stream_encoded()` yields (key, payload bytes) from the
same model and noise, rendered by a byte template instead of dict + JSON encoder — the load-test
path (the two decode to equal events); `encoded_batches()` is the same per millisecond, for outputs
that pace by event time (`device_sim.kafka_output.produce_batches`). `events(ticks)` of
`device_sim.fleet_model.Fleet` remains the fixed-interval generator.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from device_sim.fleet_model import FRANKFURT, FleetSpec
from device_sim.payload_render import STILL_TEMPLATE, TRIP_TEMPLATE, PayloadRenderer
from device_sim.report_rates import IN_TRIP, NORMAL, PARKED, SEED_RATES, RateModes
from device_sim.service_region import DEFAULT_AREA, M_PER_DEG_LAT, ServiceRegion
from device_sim.vehicle_physics import (
    ACCEL_SIZE,
    GPS_SIGMA_M,
    NOISE_CLIP,
    NOISE_SIZE,
    NOISE_STRIDE,
    NOT_STILL,
    SimVehicle,
    VehiclePhysics,
)
from udfs.geofence import DEFAULT_SERVICE_AREA, load_service_area


class RateModeFleet(VehiclePhysics, PayloadRenderer):
    """`stream(duration_s)` / `stream(until_ms=…)`: every vehicle at its mode's rate, in event-time order.

    Successive calls continue where the previous one stopped. `area`: a `ServiceArea`, None for the
    disc of `spec.radius_km` around `spec.center`; by default the Frankfurt service area when the
    spec is centred on Frankfurt, else the disc.
    """

    def __init__(self, spec: FleetSpec = FleetSpec(), modes: RateModes = SEED_RATES, *, area: Any = DEFAULT_AREA):
        if spec.vehicles < 1:
            raise ValueError(f"vehicles must be >= 1, got {spec.vehicles}")
        self.spec = spec
        self.modes = modes
        # The rate rule per case, computed once: a standing vehicle's by its whole battery percent
        # (0..100, what `_advance` samples), a moving one's whatever the battery.
        trip_mode = modes.mode(True, 100)
        self._in_trip_rate = (modes.interval_ms(trip_mode), trip_mode)
        self._standing_rates = [(modes.interval_ms(m), m) for m in (modes.mode(False, p) for p in range(101))]
        if area is DEFAULT_AREA:
            area = load_service_area(DEFAULT_SERVICE_AREA) if spec.center == FRANKFURT else None
        self._lon_m = M_PER_DEG_LAT * math.cos(math.radians(spec.center[0]))
        self.region = ServiceRegion(area, spec.center, spec.radius_km, self._lon_m)
        self._rng = random.Random(spec.seed)
        rng = self._rng
        self._noise = [max(-NOISE_CLIP, min(NOISE_CLIP, rng.gauss(0.0, 1.0))) for _ in range(NOISE_SIZE + NOISE_STRIDE)]
        self._accel = [(round(rng.gauss(0, 0.3), 2), round(rng.gauss(0, 0.3), 2), round(9.8 + rng.gauss(0, 0.05), 2)) for _ in range(ACCEL_SIZE)]
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
        vehicle.still = NOT_STILL

    def silence(self, vehicle: SimVehicle, from_ms: int, to_ms: int) -> list[int]:
        """The vehicle emits nothing in [from_ms, to_ms) (its model keeps running). Returns the window
        as a list [from_ms, to_ms, suppressed events], updated as the stream runs."""
        window = [from_ms, to_ms, 0]
        vehicle.still = NOT_STILL
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
        lat_scale, lon_scale = GPS_SIGMA_M / M_PER_DEG_LAT, GPS_SIGMA_M / self._lon_m
        template, trip_template = STILL_TEMPLATE, TRIP_TEMPLATE
        move, tail, trip_ms = self._move, self._tail, self._in_trip_rate[0]
        wrap = NOISE_SIZE - NOISE_STRIDE
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
                    k = k + NOISE_STRIDE if k < wrap else (k + NOISE_STRIDE) % NOISE_SIZE
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
                        locations[n], mid1, temperatures[n], mid2, accels[n % ACCEL_SIZE], end,
                    )))
                    continue
                if v.in_trip and ts < v.phase_end_ms and v.plans is None and v.silent is None:
                    # riding on: `_advance` (a trip step) + `render_bytes`, inlined
                    dt = (ts - v.last_ms) / 1000.0
                    v.last_ms = ts
                    n = k
                    k = k + NOISE_STRIDE if k < wrap else (k + NOISE_STRIDE) % NOISE_SIZE
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
                        24.0 + speed / 3 + 0.5 * noise[n + 3], speed, int(v.heading) % 360, accels[n % ACCEL_SIZE], tail(v),
                    )))
                    continue
                v.still = NOT_STILL
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

    @staticmethod
    def _silenced(v: SimVehicle, ts: int) -> bool:
        for window in v.silent:
            if window[0] <= ts < window[1]:
                window[2] += 1
                return True
        return False
