"""Scripted timelines of late, re-sent and reordered readings: exactly the alerts a person reading
the timeline expects. Each expectation is written by hand from the story in the test, as
(kind, episode start in minutes), not computed with the rules."""

from __future__ import annotations

from udfs.alert_rules import AlertPolicy, VehicleAlertState, is_late, on_event, on_silence

POLICY = AlertPolicy(low_battery_percent=15, battery_rearm_percent=20, offline_after_s=600)
T0 = 1_767_225_600_000  # 2026-01-01T00:00Z
INSIDE, OUTSIDE = (50.11, 8.68), (51.0, 9.9)


def reading(minute: float, percent: float = 80, charging: bool = False, where=INSIDE) -> tuple[int, dict]:
    return T0 + int(minute * 60_000), {
        "vehicle_id": 7, "location": {"lat": where[0], "lon": where[1]},
        "battery": {"percent": percent, "charging": charging},
    }


def play(*steps) -> list[tuple[str, float]]:
    """Feed readings in arrival order ("silence" = the offline timer fires); the alerts raised."""
    state, raised = VehicleAlertState(), []
    for step in steps:
        if step == "silence":
            state, alerts = on_silence(state, 7, POLICY)
        else:
            time_ms, event = step
            state, alerts = on_event(state, event, time_ms, lambda lat, lon: (lat, lon) == INSIDE, POLICY)
        raised += [(a["kind"], (int(a["episode_start"][14:16]) if a["episode_start"][11:13] == "00" else None)) for a in alerts]
    return raised


def test_an_old_low_reading_after_the_vehicle_was_charged_pages_nobody():
    # Charged and at 80–85 %; then the spool delivers a 10 % reading from minute 5.
    assert play(reading(10, 80), reading(20, 85, charging=True), reading(5, 10)) == []


def test_a_late_reading_neither_closes_nor_reopens_an_episode():
    # Low at minute 0 (page), charged at 10 (closed), a late 11 % from minute 5 (nothing),
    # low again at 20 (a new episode, a new page).
    assert play(reading(0, 12), reading(10, 90, charging=True), reading(5, 11), reading(20, 13)) == [
        ("low_battery", 0), ("low_battery", 20),
    ]


def test_an_old_position_outside_raises_no_exit_and_no_return():
    assert play(reading(0), reading(10), reading(5, where=OUTSIDE), reading(15)) == []


def test_a_real_exit_is_not_closed_by_an_older_position_inside():
    # Out at minute 20 (exit); a reordered reading from minute 15, still inside (nothing); back in at 30.
    assert play(reading(0), reading(20, where=OUTSIDE), reading(15), reading(30)) == [
        ("geofence_exit", 20), ("geofence_return", 20),
    ]


def test_an_exact_re_send_raises_nothing_new():
    assert play(reading(0, 12), reading(0, 12), reading(1, 12), reading(0, 12)) == [("low_battery", 0)]


def test_after_an_outage_the_spool_drains_behind_the_live_reading():
    # Last heard at minute 0; offline; the vehicle comes back charged (minute 30, live first), then
    # its spool delivers minutes 1–3 at 10 %: back online once, no low-battery page for the past.
    assert play(reading(0), "silence", reading(30, 60, charging=True), reading(1, 10), reading(2, 10), reading(3, 10)) == [
        ("offline", 0), ("back_online", 0),
    ]


def test_a_late_reading_still_ends_an_offline_episode():
    # The first thing heard after the outage is an old reading: the vehicle is talking again.
    assert play(reading(10), "silence", reading(5)) == [("offline", 10), ("back_online", 10)]


def test_out_of_order_within_a_trip_keeps_the_newest_position_for_offline():
    # Minutes 0, 2, 1: offline counts from the newest reading (2), not the last to arrive (1).
    assert play(reading(0), reading(2), reading(1), "silence") == [("offline", 2)]


def test_is_late_is_strictly_older_than_the_newest():
    state, _ = on_event(VehicleAlertState(), reading(5)[1], reading(5)[0], lambda *_: True, POLICY)
    assert is_late(state, reading(4)[0]) and not is_late(state, reading(5)[0]) and not is_late(state, reading(6)[0])
    assert not is_late(VehicleAlertState(), 0)
