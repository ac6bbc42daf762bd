"""The live fleet as simulator runs: one `telemetry sim run --output mqtt` per round of `round_s`.

A scenario plans its faults (low batteries, geofence exits, vehicles going offline, re-sends,
corrupt payloads) over its own duration, so an endless fleet is a sequence of rounds, each with
faults of its own and its own seed. A round's event time starts when the simulator has built its
fleet (no `--start-ms`): real-time pacing is anchored at the first event it sends, so a start time
taken before the process existed would make every event of the round that much late. The
profile's fault counts are per round and per 1,000 vehicles; never more vehicle faults than a
quarter of the fleet (each such fault takes a vehicle).
"""

from __future__ import annotations

from collections.abc import Sequence

from fleet.config import LiveSettings

_EVENT_FAULTS = {"duplicates": "duplicates_per_round", "malformed": "malformed_per_round",
                 "schema-invalid": "schema_invalid_per_round"}
_VEHICLE_FAULTS = {"low-batteries": "low_batteries_per_round", "geofence-exits": "geofence_exits_per_round",
                   "offline-vehicles": "offline_vehicles_per_round"}
_PER_VEHICLES = 1_000  # the profile's per-round counts are per this many vehicles


def fault_flags(live: LiveSettings, vehicles: int) -> list[str]:
    """The fault options of one round for a fleet of `vehicles`."""
    scale = vehicles / _PER_VEHICLES
    flags: list[str] = []
    for flag, key in _EVENT_FAULTS.items():
        count = getattr(live, key)
        if count > 0:
            flags += [f"--{flag}", str(max(1, round(count * scale)))]
    wanted = {flag: max(1, round(getattr(live, key) * scale)) if getattr(live, key) > 0 else 0 for flag, key in _VEHICLE_FAULTS.items()}
    room = vehicles // 4
    total = sum(wanted.values())
    if total > room:  # too small a fleet: shrink every kind alike
        wanted = {flag: count * room // total for flag, count in wanted.items()}
    for flag, count in wanted.items():
        if count > 0:
            flags += [f"--{flag}", str(count)]
    if wanted.get("offline-vehicles"):
        flags += ["--offline-s", f"{live.offline_s:g}"]
    return flags


def sim_argv(cli: Sequence[str], live: LiveSettings, *, vehicles: int, round_index: int, mqtt: str,
             metrics_host: str = "127.0.0.1") -> list[str]:
    """`telemetry … sim run` for round `round_index` (0, 1, …) of the live fleet."""
    return [
        *cli, "sim", "run", "--output", "mqtt", "--mqtt", mqtt,
        "--vehicles", str(vehicles), "--seed", str(live.seed + round_index), "--knob-seed", str(round_index + 1),
        "--duration-s", f"{live.round_s:g}",
        "--report-every-s", "30", "--metrics-port", str(live.sim_metrics_port), "--metrics-host", metrics_host,
        *fault_flags(live, vehicles),
    ]
