"""A simulated vehicle's sample → the seed payload: a dict (`render_dict`) or its JSON bytes from a
byte template (`render_bytes`, the load-test path; both decode to equal events).

The templates follow orjson's field order, floats as %.Nf (which decode to the same floats as
round(x, N)). A vehicle standing still changes only by time and noise between events, so the
encoded path caches the constant parts of its payload (`_cache_still`, `SimVehicle.still`) and
renders it from `STILL_TEMPLATE` and the per-noise-index tables `_build_still_tables` makes.
"""

from __future__ import annotations

import time
from typing import Any, Final

import orjson

from device_sim.vehicle_physics import GPS_SIGMA_M, NOISE_SIZE, SimVehicle

# The encoded fast path: a vehicle standing still, its constant parts cached (see SimVehicle.still).
STILL_TEMPLATE: Final = b'%s%s.%03dZ","location":{"lat":%.6f,"lon":%.6f,%s%s%s%s%s%s'

# The encoded path's template for a vehicle in a trip (altitude and accuracy pre-rendered, as above).
TRIP_TEMPLATE: Final = (
    b'%s%s.%03dZ","location":{"lat":%.6f,"lon":%.6f,%s'
    b'"percent":%d,"voltage":%.1f,"current":%.1f,"temperature":%.1f,"charging":false},'
    b'"motion":{"speed_kmh":%.1f,"heading":%d,"acceleration":%s},%s'
)

# The event template of the encoded path: orjson's field order, floats as %.Nf (which decode to the
# same floats as round(x, N)).
EVENT_TEMPLATE: Final = (
    b'%s%s.%03dZ","location":{"lat":%.6f,"lon":%.6f,"altitude":%.1f,"accuracy":%.1f},'
    b'"battery":{"percent":%d,"voltage":%.1f,"current":%.1f,"temperature":%.1f,"charging":%s},'
    b'"motion":{"speed_kmh":%.1f,"heading":%d,"acceleration":%s},%s'
)


class PayloadRenderer:
    """Rendering, mixed into `device_sim.rate_fleet.RateModeFleet` (which sets `_noise`, `_accel`,
    `_accel_bytes` and the still tables)."""

    _noise: list[float]
    _accel: list[tuple[float, float, float]]
    _accel_bytes: list[bytes]
    _still_location: list[bytes] | None
    _still_temperature: list[bytes]
    _ts_second: int
    _ts_prefix: bytes

    def _build_still_tables(self) -> None:
        noise = self._noise
        self._still_location = [
            b'"altitude":%.1f,"accuracy":%.1f},"battery":{' % (112.5 + 2.0 * noise[k + 2], abs(noise[k]) * GPS_SIGMA_M + 2.0)
            for k in range(NOISE_SIZE)
        ]
        # 24 + speed / 3 + noise, with speed 0.0 (the same float sum as in `_advance`)
        self._still_temperature = [b"%.1f" % (24.0 + 0.0 / 3 + 0.5 * noise[k + 3]) for k in range(NOISE_SIZE)]

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
        return EVENT_TEMPLATE % (
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
