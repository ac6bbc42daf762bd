"""The harness's fail-once fault and its expectations, without servers."""

from collections import Counter

import pytest

from device_sim.fleet_model import FleetSpec
from device_sim.report_rates import RateModes
from device_sim.scenario import Scenario, ScenarioKnobs
from fleet.harness.expectations import expect
from fleet.harness.runner import SinkTally, tally
from udfs.alert_rules import AlertPolicy
from udfs.fault_injection import FailOnce, InjectedFailure
from udfs.geofence import DEFAULT_SERVICE_AREA, load_service_area


def test_fail_once_fires_on_its_record_only_and_only_once(tmp_path):
    fault = FailOnce.parse("10007@1767225600000", str(tmp_path), "pipeline")
    fault.check(10007, 1767225600001)
    fault.check(10008, 1767225600000)
    assert not fault.fired
    with pytest.raises(InjectedFailure, match="10007"):
        fault.check(10007, 1767225600000)
    assert fault.fired
    fault.check(10007, 1767225600000)  # the replay after the restart passes


def test_each_job_stage_fails_once_on_its_own(tmp_path):
    pipeline = FailOnce.parse("5@10", str(tmp_path), "pipeline")
    alerts = FailOnce.parse("5@10", str(tmp_path), "alerts")
    with pytest.raises(InjectedFailure):
        pipeline.check(5, 10)
    with pytest.raises(InjectedFailure):
        alerts.check(5, 10)


@pytest.mark.parametrize("text", ["x", "5", "5@", "@10", "0@10", "5@-1", "a@b"])
def test_bad_fault_spec_is_a_clear_error(text, tmp_path):
    with pytest.raises(ValueError, match="vehicle_id>@<event_time_ms"):
        FailOnce.parse(text, str(tmp_path), "pipeline")


def test_no_fault_when_empty(tmp_path):
    assert FailOnce.parse("  ", str(tmp_path), "pipeline") is None


def test_tally_counts_lost_duplicated_and_unexpected():
    expected = frozenset({(1, 10), (1, 20), (2, 10)})
    got = Counter({(1, 10): 1, (1, 20): 3, (9, 9): 1})
    assert tally(expected, got) == SinkTally(records=5, lost=1, duplicated=2, unexpected=1)
    assert tally(Counter({("r", b"x"): 2}), Counter({("r", b"x"): 1})) == SinkTally(1, 1, 0, 0)


def test_expectation_from_a_scenario_counts_what_the_simulator_reports():
    knobs = ScenarioKnobs(duplicates=10, malformed=3, schema_invalid=4, offline_vehicles=1, offline_s=40.0,
                          geofence_exits=1, low_batteries=1, seed=3)
    scenario = Scenario(FleetSpec(vehicles=12, seed=3), knobs, duration_s=60.0, modes=RateModes(parked_ms=2_000))
    timed = list(scenario.timed())
    policy = AlertPolicy(15.0, 20.0, offline_after_s=25.0)
    expectation = expect(timed, policy, load_service_area(DEFAULT_SERVICE_AREA).contains)
    report = scenario.report.expected()
    assert expectation.sent == report["items"] == len(timed)
    assert len(expectation.unique_valid) == report["unique_valid"]
    assert sum(expectation.rejects.values()) == report["invalid"]
    # The silent vehicle goes offline once and comes back once; the other two faults alert once.
    assert expectation.alerts_by_kind["offline"] == expectation.alerts_by_kind["back_online"] == 1
    assert expectation.alerts_by_kind["geofence_exit"] >= 1 and expectation.alerts_by_kind["low_battery"] >= 1
    assert expectation.ambiguous_gaps == 0


def _event(vehicle_id: int, second: int) -> dict:
    from udfs.telemetry_schema import format_timestamp_ms

    return {"vehicle_id": vehicle_id, "timestamp": format_timestamp_ms(T0_MS + second * 1000),
            "location": {"lat": 50.1105, "lon": 8.6821}, "battery": {"percent": 80, "charging": False}}


T0_MS = 1_796_000_000_000


def test_expectation_leaves_an_ingest_outage_out_of_every_silence():
    """Two vehicles report every second; nothing is sent from 10 s to 30 s (stall period 5 s, so
    15 s of it are blind); vehicle 2 never comes back; the input ends at 42 s. Offline after 12 s.
    Vehicle 1: 20 s between sends, 5 s of them seen: no alert. Vehicle 2: 32 s to the end, 17 s seen
    (over 12 + the 3 s band): offline, and no back_online."""
    timed = [(T0_MS + s * 1000, _event(v, s)) for s in range(43) if not 10 < s < 30 for v in (1, 2) if v == 1 or s <= 10]
    policy = AlertPolicy(15.0, 20.0, offline_after_s=12.0)
    expectation = expect(timed, policy, load_service_area(DEFAULT_SERVICE_AREA).contains, stall_after_ms=5_000)
    assert expectation.blind_ms == ((T0_MS + 15_000, T0_MS + 30_000),)
    assert expectation.alerts_by_kind == {"offline": 1}
    assert expectation.ambiguous_gaps == 0
    # Without the stall period every silence counts: both vehicles go offline, 1 comes back.
    assert expect(timed, policy, load_service_area(DEFAULT_SERVICE_AREA).contains).alerts_by_kind == {"back_online": 1, "offline": 2}
