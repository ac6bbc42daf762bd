"""The vehicle's sensors as the agent sees them: JSON lines written by the vehicle's sensor daemon.

On a vehicle one process owns the hardware (GPS on a serial port, the battery management system and
the controller on CAN) and writes the vehicle's current state, one JSON object per line, to a FIFO,
a file it appends to, or the agent's stdin (`edge-agent --sensor-feed PATH|-`). The agent samples
the newest state at the rate of the vehicle's mode (`edge_agent.rate`):

- Sampling, not queueing: the rate is the agent's, so a daemon that writes faster than the agent
  reads builds no backlog, and a reading is never older than the daemon's last line. A state that
  did not change (a parked vehicle) is reported again at the next interval, as the seed wants.
- Staleness is an error: when the newest line is older than `max_age_s`, `read()` raises
  `SensorUnavailable` (the daemon died or hangs) rather than report an old position as current.
  So the daemon writes at least every `max_age_s`, also when nothing changed.
- The agent sets `vehicle_id` (its own) and `timestamp` (the moment of sampling, strictly
  increasing as the pipeline's dedup on (vehicle_id, timestamp) needs, also for a repeated state).
  A line may carry `vehicle_id` only if it is this vehicle's, and never `timestamp`, `seq` or
  `resent`: such a line is refused, counted and logged, and the previous state stays current.
- Everything else of the line goes out as it is (location, battery, motion, vehicle_status,
  diagnostics: the seed payload's sections); the pipeline validates it. Lines that are not a JSON
  object, hold NaN/Infinity, or are longer than `MAX_LINE_BYTES` are refused the same way.

A regular file is followed as it grows (like `tail -f`); a FIFO whose writer went away is read on
when a writer opens it again. A reader thread does the blocking reads, so `read()` never waits.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Final

from edge_agent.sensors import SensorUnavailable
from edge_agent.wire import format_timestamp_ms

log = logging.getLogger("edge_agent.feed")

MAX_LINE_BYTES: Final = 65_536  # a seed payload is ~450 bytes; the MQTT broker takes at most 128 KB
AGENT_FIELDS: Final = ("timestamp", "seq", "resent")  # set by the agent, never by the feed
_POLL_S: Final = 0.05  # at the end of the input: how soon to look again


class FeedLineRefused(ValueError):
    """A line of the feed that is not a state this vehicle can report; `reason` says why."""


def parse_line(line: bytes, vehicle_id: int) -> dict[str, Any]:
    """One line of the feed → the state's fields (without vehicle_id), or FeedLineRefused."""
    try:
        state = json.loads(line, parse_constant=_refuse_constant)
    except FeedLineRefused:
        raise
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        raise FeedLineRefused(f"not JSON: {exc}") from None
    if not isinstance(state, dict):
        raise FeedLineRefused(f"a JSON {type(state).__name__}, not an object")
    agent_fields = [name for name in AGENT_FIELDS if name in state]
    if agent_fields:
        raise FeedLineRefused(f"carries {', '.join(agent_fields)}, which the agent sets")
    if "vehicle_id" in state:
        if state["vehicle_id"] != vehicle_id or type(state["vehicle_id"]) is not int:
            raise FeedLineRefused(f"vehicle_id {state['vehicle_id']!r} is not this vehicle's ({vehicle_id})")
        del state["vehicle_id"]
    return state


def _refuse_constant(name: str) -> None:
    raise FeedLineRefused(f"holds {name}, which is not JSON")


class SensorFeed:
    """A `SensorSource` over the sensor daemon's JSON lines at `path` ('-': stdin). See the module."""

    def __init__(
        self,
        path: str | Path,
        vehicle_id: int,
        *,
        max_age_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        stdin: BinaryIO | None = None,
    ):
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self.path = str(path)
        self.name = "stdin" if self.path == "-" else self.path
        self.vehicle_id = vehicle_id
        self.max_age_s = max_age_s
        self._monotonic = monotonic
        self._wall_clock_ms = wall_clock_ms
        self._stdin = stdin
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None
        self._state_at = 0.0  # monotonic time the newest state arrived
        self._last_timestamp_ms = 0
        self._failure: str | None = None  # why the feed cannot be read at all (cannot open it)
        self.lines = 0  # lines taken as the new state
        self.refused = 0
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._follow, name=f"sensor-feed-{vehicle_id}", daemon=True)
        self._reader.start()

    def read(self) -> dict[str, Any]:
        with self._lock:
            state, state_at, failure = self._state, self._state_at, self._failure
        if state is None:
            raise SensorUnavailable(failure or f"no reading from the sensor feed {self.name} yet")
        age = self._monotonic() - state_at
        if age > self.max_age_s:
            raise SensorUnavailable(
                f"the newest line of the sensor feed {self.name} is {age:.1f}s old (the limit is {self.max_age_s:g}s): "
                "is the sensor daemon running?"
            )
        timestamp_ms = max(self._wall_clock_ms(), self._last_timestamp_ms + 1)
        self._last_timestamp_ms = timestamp_ms
        return {"vehicle_id": self.vehicle_id, "timestamp": format_timestamp_ms(timestamp_ms), **state}

    def close(self) -> None:
        """Stop following the feed (a reader blocked on an idle FIFO or stdin ends with the process)."""
        self._closed.set()

    # --- the reader thread -------------------------------------------------------------------

    def _follow(self) -> None:
        try:
            # Opening a FIFO blocks until the daemon opens it for writing: one more reason for a thread.
            stream = (self._stdin or sys.stdin.buffer) if self.path == "-" else open(self.path, "rb")
        except OSError as exc:
            with self._lock:
                self._failure = f"cannot open the sensor feed {self.name}: {exc}"
            log.error("%s", self._failure)
            return
        with stream:
            pending, too_long = b"", False
            while not self._closed.is_set():
                chunk = stream.readline(MAX_LINE_BYTES + 1)
                if not chunk:  # the end for now: a file not yet appended to, a FIFO without a writer
                    self._closed.wait(_POLL_S)
                    continue
                if too_long:  # the rest of a line already refused
                    too_long = not chunk.endswith(b"\n")
                    continue
                pending += chunk
                if len(pending) > MAX_LINE_BYTES:
                    self._refuse(f"longer than {MAX_LINE_BYTES:,} bytes")
                    pending, too_long = b"", not pending.endswith(b"\n")
                    continue
                if not pending.endswith(b"\n"):  # a line the daemon is still writing
                    continue
                line, pending = pending, b""
                if line.strip():
                    self._take(line)

    def _take(self, line: bytes) -> None:
        try:
            state = parse_line(line, self.vehicle_id)
        except FeedLineRefused as exc:
            self._refuse(str(exc))
            return
        with self._lock:
            self._state, self._state_at = state, self._monotonic()
        self.lines += 1

    def _refuse(self, reason: str) -> None:
        self.refused += 1
        if self.refused == 1 or self.refused % 100 == 0:  # the first, then every 100th: no log flood
            log.warning("sensor feed %s: line refused (%d so far): %s", self.name, self.refused, reason)
