"""The simulator's vehicle model as one edge agent's sensors (`edge-agent` without `--sensor-feed`).

It lives in the main distribution, beside the model it drives: the edge agent's own distribution
(fleet-edge-agent) runs on vehicles, reads a real sensor feed and carries no simulator.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from device_sim.fleet_model import Fleet, FleetSpec
from edge_agent.wire import format_timestamp_ms


class SimulatedSensorSource:
    """device_sim's vehicle model as this vehicle's sensors (an `edge_agent.sensors.SensorSource`).

    The model advances in fixed ticks of `tick_ms` of vehicle time (200 ms, the fastest reporting
    interval); each read advances it by the ticks that elapsed since the previous read (at least
    one, at most `max_catch_up_ticks`), so trips and parked periods last as long as the model says
    whatever the reporting rate. `time_scale` > 1 runs the vehicle faster than real time (demos and
    tests, together with the agent's `speedup`). The reading's timestamp is the wall clock at
    reading time, never earlier than the previous one + 1 ms.
    """

    def __init__(
        self,
        vehicle_id: int,
        *,
        seed: int = 42,
        tick_ms: int = 200,
        time_scale: float = 1.0,
        max_catch_up_ticks: int = 3_000,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ):
        if tick_ms <= 0 or time_scale <= 0 or max_catch_up_ticks < 1:
            raise ValueError("tick_ms, time_scale and max_catch_up_ticks must be positive")
        self.vehicle_id = vehicle_id
        self._fleet = Fleet(FleetSpec(vehicles=1, first_vehicle_id=vehicle_id, seed=seed, interval_ms=tick_ms, start_ms=0))
        self._ticks: Iterator[dict[str, Any]] = self._fleet.events(2**62)
        self._tick_s = tick_ms / 1000
        self._time_scale = time_scale
        self._max_catch_up = max_catch_up_ticks
        self._monotonic = monotonic
        self._wall_clock_ms = wall_clock_ms
        self._vehicle_time_s: float | None = None
        self._last_timestamp_ms = 0

    def read(self) -> dict[str, Any]:
        now_s = self._monotonic() * self._time_scale
        if self._vehicle_time_s is None:
            ticks = 1
            self._vehicle_time_s = now_s
        else:
            ticks = max(1, int((now_s - self._vehicle_time_s) / self._tick_s))
            if ticks > self._max_catch_up:  # e.g. the process was suspended: don't replay hours
                ticks = self._max_catch_up
                self._vehicle_time_s = now_s
            else:
                self._vehicle_time_s += ticks * self._tick_s
        for _ in range(ticks):
            reading = next(self._ticks)
        timestamp_ms = max(self._wall_clock_ms(), self._last_timestamp_ms + 1)
        self._last_timestamp_ms = timestamp_ms
        reading["timestamp"] = format_timestamp_ms(timestamp_ms)
        return reading
