"""One platform alert per incident, however many detector instances notice it."""

from udfs.input_clock import CURRENT, LAGGING, STALLED
from udfs.platform_alerts import INPUT_RESTORED, INPUT_STALLED, MonitorState, expire, on_report, status_report

T0 = 1_700_000_000_000


def run(reports):
    state, alerts = MonitorState(), []
    for report in reports:
        state, raised = on_report(state, report)
        alerts += raised
    return state, alerts


def test_two_instances_blind_then_current_raise_one_episode():
    state, alerts = run([
        status_report(0, CURRENT, T0, T0, T0),  # after a start: nothing to say
        status_report(0, STALLED, T0 + 60_000, T0, T0 + 60_000),
        status_report(1, STALLED, T0 + 61_000, T0, T0 + 61_000),
        status_report(0, STALLED, T0 + 90_000, T0, T0 + 60_000),  # still blind: a repeat
        status_report(0, CURRENT, T0 + 900_000, T0 + 900_000, T0 + 900_000),
        status_report(1, LAGGING, T0 + 901_000, T0 + 880_000, T0 + 901_000),  # catching up: still blind
        status_report(1, CURRENT, T0 + 905_000, T0 + 904_000, T0 + 905_000),
    ])
    assert [a["kind"] for a in alerts] == [INPUT_STALLED, INPUT_RESTORED]
    stalled, restored = alerts
    assert stalled["severity"] == "critical" and restored["severity"] == "info"
    assert stalled["episode_start"] == restored["episode_start"] == "2023-11-14T22:14:20.000Z"
    assert stalled["vehicle_id"] is None and stalled["alert_id"] != restored["alert_id"]
    assert set(stalled["details"]["subtasks"]) == {"0"}
    assert state == MonitorState()


def test_the_same_episode_replayed_has_the_same_ids():
    reports = [status_report(0, STALLED, T0, T0, T0), status_report(0, CURRENT, T0 + 5_000, T0, T0 + 5_000)]
    assert [a["alert_id"] for a in run(reports)[1]] == [a["alert_id"] for a in run(reports)[1]]


def test_an_instance_that_stops_reporting_while_blind_is_forgotten():
    state, alerts = run([status_report(3, STALLED, T0, T0, T0)])
    assert [a["kind"] for a in alerts] == [INPUT_STALLED]
    state, raised = expire(state, T0 + 100_000, expire_ms=180_000)
    assert raised == [] and state.blind
    state, raised = expire(state, T0 + 180_000, expire_ms=180_000)
    assert [a["kind"] for a in raised] == [INPUT_RESTORED] and state == MonitorState()


def test_state_survives_its_json_form():
    state, _ = run([status_report(2, LAGGING, T0, T0 - 90_000, T0)])
    assert MonitorState.from_json(state.to_json()) == state
