import pytest

from udfs import alert_rules as rules
from udfs.alert_rules import AlertPolicy, VehicleAlertState, alert_id, on_event, on_silence

POLICY = AlertPolicy(low_battery_percent=15, battery_rearm_percent=20, offline_after_s=600)


def inside_box(lat, lon):
    """A 'service area': 50.0 <= lat <= 50.2 and 8.5 <= lon <= 8.8, boundary inside."""
    return 50.0 <= lat <= 50.2 and 8.5 <= lon <= 8.8


def event(t, percent=80, charging=False, lat=50.1, lon=8.68, vehicle_id=7):
    return {
        "vehicle_id": vehicle_id, "timestamp": "2025-01-15T14:32:18.123Z",
        "location": {"lat": lat, "lon": lon}, "battery": {"percent": percent, "charging": charging},
    }, t


def run(sequence, state=None):
    state = state or VehicleAlertState()
    raised = []
    for item in sequence:
        if item == "silence":
            state, alerts = on_silence(state, 7, POLICY)
        else:
            payload, t = item
            state, alerts = on_event(state, payload, t, inside_box, POLICY)
        raised += alerts
    return state, raised


def kinds(alerts):
    return [a["kind"] for a in alerts]


def test_low_battery_once_per_episode_despite_flapping():
    percents = [30, 16, 15, 14.9, 15, 14, 16, 19, 14, 13, 12]
    _, alerts = run([event(i * 1000, p) for i, p in enumerate(percents)])
    assert kinds(alerts) == ["low_battery"]
    assert alerts[0]["details"]["battery_percent"] == 14.9
    assert alerts[0]["message"] == "Vehicle 7 has 14.9% battery. Dispatch swap team."
    assert alerts[0]["subject"] == "Low Battery: Vehicle 7"


def test_rearmed_by_rising_above_hysteresis_then_second_episode():
    percents = [14, 18, 19.9, 20, 25, 14]
    _, alerts = run([event(i * 1000, p) for i, p in enumerate(percents)])
    assert kinds(alerts) == ["low_battery", "low_battery"]
    assert alerts[0]["alert_id"] != alerts[1]["alert_id"]
    assert alerts[1]["episode_start"] == "1970-01-01T00:00:05.000Z"


def test_charging_suppresses_and_rearms():
    sequence = [event(0, 10, charging=True), event(1000, 10, charging=False), event(2000, 11, charging=True), event(3000, 11)]
    _, alerts = run(sequence)
    assert kinds(alerts) == ["low_battery", "low_battery"]  # plugged in re-arms; unplugged at 11 % is a new episode


def test_geofence_exit_once_and_return_once():
    path = [(50.1, 8.68), (50.19, 8.79), (50.2, 8.8), (50.21, 8.8), (50.3, 8.9), (50.25, 8.85), (50.2, 8.8), (50.1, 8.7), (50.3, 8.7)]
    _, alerts = run([event(i * 1000, lat=la, lon=lo) for i, (la, lo) in enumerate(path)])
    assert kinds(alerts) == ["geofence_exit", "geofence_return", "geofence_exit"]
    exit_, back, again = alerts
    assert exit_["episode_start"] == back["episode_start"] == "1970-01-01T00:00:03.000Z"
    assert back["alert_id"] != exit_["alert_id"]
    assert exit_["severity"] == "critical" and back["severity"] == "info"
    assert exit_["location"] == {"lat": 50.21, "lon": 8.8}
    assert exit_["zone_id"] == "u0ym8h"  # geohash-6 of the exit position
    assert again["episode_start"] == "1970-01-01T00:00:08.000Z"


def test_first_event_outside_raises_exit():
    _, alerts = run([event(0, lat=48.0, lon=11.0)])
    assert kinds(alerts) == ["geofence_exit"]


def test_offline_once_then_back_online_once():
    state, alerts = run([event(1000), event(2000, lat=50.11), "silence", "silence", event(900_000), event(901_000), "silence"])
    assert kinds(alerts) == ["offline", "back_online", "offline"]
    offline, back, second = alerts
    assert offline["episode_start"] == "1970-01-01T00:00:02.000Z"
    assert offline["location"] == {"lat": 50.11, "lon": 8.68}
    assert offline["message"] == "Vehicle 7 hasn't reported telemetry for 10 minutes."
    assert back["episode_start"] == offline["episode_start"]
    assert second["episode_start"] == "1970-01-01T00:15:01.000Z"
    assert state.offline_since_ms == 901_000


def test_silence_before_any_event_raises_nothing():
    _, alerts = run(["silence"])
    assert alerts == []


def test_late_event_does_not_move_last_position_back():
    state, _ = run([event(5000, lat=50.15), event(3000, lat=50.05)])
    assert (state.last_event_ms, state.last_lat) == (5000, 50.15)


def test_state_round_trips_through_a_tuple():
    state, _ = run([event(0, 10), event(1000, lat=49.0)])
    assert VehicleAlertState.from_tuple(state.to_tuple()) == state
    assert VehicleAlertState.from_tuple(None) == VehicleAlertState()


def test_alert_ids_are_deterministic_and_distinct():
    assert alert_id(7, rules.OFFLINE, 1000) == alert_id(7, rules.OFFLINE, 1000)
    ids = {alert_id(v, k, t) for v in (7, 8) for k in (rules.OFFLINE, rules.LOW_BATTERY) for t in (1000, 2000)}
    assert len(ids) == 8


def test_policy_refuses_inverted_hysteresis():
    with pytest.raises(ValueError):
        AlertPolicy(low_battery_percent=20, battery_rearm_percent=15)
