"""The live fleet's rounds: fault counts scaled to the fleet, never more vehicle faults than it can take."""

from __future__ import annotations

from dataclasses import replace

from fleet.config import load_config
from fleet.live.fleet_rounds import fault_flags, sim_argv


def _flags(flags: list[str]) -> dict[str, str]:
    return dict(zip(flags[::2], flags[1::2]))


def test_a_thousand_vehicles_get_the_profile_counts():
    live = load_config("local").live
    got = _flags(fault_flags(live, 1000))
    assert got == {"--duplicates": str(live.duplicates_per_round), "--malformed": str(live.malformed_per_round),
                   "--schema-invalid": str(live.schema_invalid_per_round), "--low-batteries": str(live.low_batteries_per_round),
                   "--geofence-exits": str(live.geofence_exits_per_round), "--offline-vehicles": str(live.offline_vehicles_per_round),
                   "--offline-s": f"{live.offline_s:g}"}


def test_a_smaller_fleet_gets_proportionally_fewer_and_at_most_a_quarter_of_its_vehicles():
    live = replace(load_config("local").live, low_batteries_per_round=60, geofence_exits_per_round=30,
                   offline_vehicles_per_round=10, duplicates_per_round=1000)
    half = _flags(fault_flags(live, 500))
    assert half["--duplicates"] == "500" and half["--low-batteries"] == "30" and half["--offline-vehicles"] == "5"
    tiny = _flags(fault_flags(live, 20))  # wanted 1 + 1 + 1 (at least one each) fits in 20 // 4 = 5
    assert (tiny["--low-batteries"], tiny["--geofence-exits"], tiny["--offline-vehicles"]) == ("1", "1", "1")
    crowded = replace(live, low_batteries_per_round=2000, geofence_exits_per_round=2000, offline_vehicles_per_round=0)
    got = _flags(fault_flags(crowded, 100))
    assert int(got["--low-batteries"]) + int(got["--geofence-exits"]) <= 25 and "--offline-vehicles" not in got


def test_each_round_has_its_own_seed_and_starts_when_the_simulator_does():
    live = load_config("local").live
    argv = sim_argv(["telemetry"], live, vehicles=300, round_index=2, mqtt="127.0.0.1:1883")
    opts = _flags(argv[3:])
    assert argv[:3] == ["telemetry", "sim", "run"]
    assert opts["--seed"] == str(live.seed + 2) and opts["--knob-seed"] == "3"
    assert "--start-ms" not in opts and opts["--duration-s"] == f"{live.round_s:g}"
    assert opts["--output"] == "mqtt" and opts["--mqtt"] == "127.0.0.1:1883" and opts["--metrics-port"] == str(live.sim_metrics_port)
