"""The storm guard over plain data: expectations written out by hand (window starts, counts, the
uuid5 of the summary id) rather than taken from the code under test."""

import uuid

import pytest

from udfs.alert_storm import (
    STORM_SUMMARY,
    GuardState,
    StormPolicy,
    alert_time_ms,
    due_summaries,
    mark,
    on_alert,
    split_key,
    storm_key,
    summary_id,
)

POLICY = StormPolicy(window_s=60, pages_per_window=20)
KEY = "geofence_exit/u0yhuh"
# 2025-01-15T14:32:00Z is a multiple of 60 s: the window [14:32:00, 14:33:00).
WINDOW = 1736951520000
NOW = 1736951600000


def feed(count, *, key=KEY, time_ms=WINDOW + 5_000, now_ms=NOW, state=None, policy=POLICY):
    state = state or GuardState()
    decisions = []
    for _ in range(count):
        state, decision = on_alert(state, key, time_ms, now_ms, policy)
        decisions.append(decision)
    return state, decisions


def test_first_pages_then_suppressed_and_pointing_at_one_summary():
    state, decisions = feed(50)
    assert [d.paged for d in decisions] == [True] * 20 + [False] * 30
    expected_id = str(uuid.uuid5(uuid.UUID("b1d3a7e4-52c6-4f0e-8f6b-3c9a1e7d2f40"), "geofence_exit/u0yhuh/1736951520000"))
    assert {d.summary_id for d in decisions[20:]} == {expected_id}
    assert all(d.summary_id is None for d in decisions[:20])
    # Only the first suppressed alert arms the timer: at the window's end, 55 s after its event time.
    assert [d.close_at_ms for d in decisions if d.close_at_ms is not None] == [NOW + 55_000]


def test_one_summary_when_the_window_closes_with_the_counts():
    state, _ = feed(50)
    state, early = due_summaries(state, KEY, NOW + 54_999, POLICY)
    assert early == []
    state, summaries = due_summaries(state, KEY, NOW + 55_000, POLICY)
    assert len(summaries) == 1
    summary = summaries[0]
    assert summary["kind"] == STORM_SUMMARY and summary["severity"] == "critical" and summary["paged"] is True
    assert summary["alert_id"] == summary_id("geofence_exit", "u0yhuh", WINDOW)
    assert summary["message"].startswith("50 geofence_exit alerts in zone u0yhuh in the last 60 s: 20 paged, 30 not paged")
    assert summary["details"]["alerts"] == 50 and summary["details"]["suppressed"] == 30
    assert summary["details"]["window_start"] == "2025-01-15T14:32:00.000Z"
    assert summary["details"]["window_end"] == "2025-01-15T14:33:00.000Z"
    # Once per key and window: not again, not even after more late alerts of that window.
    state, again = due_summaries(state, KEY, NOW + 120_000, POLICY)
    assert again == []
    state, late = feed(3, state=state, now_ms=NOW + 121_000)
    assert [d.paged for d in late] == [False] * 3 and all(d.close_at_ms is None for d in late)
    assert due_summaries(state, KEY, NOW + 999_000, POLICY, all_open=True)[1] == []


def test_at_or_under_the_limit_no_summary():
    state, decisions = feed(20)
    assert all(d.paged for d in decisions)
    assert due_summaries(state, KEY, NOW + 10**9, POLICY, all_open=True)[1] == []


def test_keys_and_windows_are_counted_apart():
    state, a = feed(25)
    _, b = feed(25, key="geofence_exit/u0yhuk")  # keyed state in the job: each key has its own
    assert sum(d.paged for d in a) == 20 and sum(d.paged for d in b) == 20
    # The next window of the same key starts again at 20 pages.
    state, c = feed(25, time_ms=WINDOW + 60_000, now_ms=NOW + 60_000, state=state)
    assert sum(d.paged for d in c) == 20
    assert {d.summary_id for d in c if not d.paged} == {summary_id("geofence_exit", "u0yhuh", WINDOW + 60_000)}


def test_replay_in_another_window_of_processing_time_gives_the_same_summary_id():
    _, live = feed(21, now_ms=NOW)
    _, replay = feed(21, now_ms=NOW + 3_600_000)  # an hour later, same events
    assert live[-1].summary_id == replay[-1].summary_id


def test_end_of_input_summarises_every_open_window():
    state, _ = feed(21)
    state, _ = feed(22, time_ms=WINDOW + 61_000, state=state)
    state, summaries = due_summaries(state, KEY, NOW, POLICY, all_open=True)
    assert [(s["details"]["window_start"], s["details"]["alerts"]) for s in summaries] == [
        ("2025-01-15T14:32:00.000Z", 21), ("2025-01-15T14:33:00.000Z", 22),
    ]


def test_old_alert_replayed_fast_is_summarised_at_most_one_window_later():
    # Event time an hour behind processing time: the close delay is what remains of its window.
    _, decisions = feed(21, time_ms=WINDOW + 59_000)
    assert decisions[-1].close_at_ms == NOW + 1_000
    _, decisions = feed(21, time_ms=WINDOW)
    assert decisions[-1].close_at_ms == NOW + 60_000


def test_state_round_trips_and_stays_bounded():
    state = GuardState()
    for minute in range(30):
        state, _ = feed(5, time_ms=WINDOW + minute * 60_000, state=state)
    assert GuardState.decode(state.encode()) == state
    assert [w.start_ms for w in state.windows] == [WINDOW + m * 60_000 for m in (27, 28, 29)]
    assert GuardState.decode(None) == GuardState() == GuardState.decode("")


def test_a_window_owing_its_summary_is_never_pruned():
    state, _ = feed(21)
    for minute in range(1, 10):
        state, _ = feed(1, time_ms=WINDOW + minute * 60_000, state=state)
    assert state.windows[0].start_ms == WINDOW and state.windows[0].suppressed == 1


def test_zero_pages_per_window_pages_only_summaries():
    state, decisions = feed(3, policy=StormPolicy(60, 0))
    assert [d.paged for d in decisions] == [False] * 3


def test_keys_times_and_marks():
    assert storm_key({"kind": "offline", "zone_id": "u0yjjd"}) == "offline/u0yjjd"
    assert storm_key({"kind": "offline", "zone_id": None}) == "offline/-"
    assert split_key("offline/-") == ("offline", None) and split_key("geofence_exit/u0yhuh") == ("geofence_exit", "u0yhuh")
    assert alert_time_ms({"event_time": "2025-01-15T14:32:05.000Z", "raised_at_ms": 1}) == WINDOW + 5_000
    assert alert_time_ms({"event_time": None, "raised_at_ms": 1234}) == 1234
    _, decisions = feed(21)
    assert mark({}, decisions[0]) == {"paged": True}
    assert mark({}, decisions[-1]) == {"paged": False, "summary_id": decisions[-1].summary_id}


def test_summary_without_zone():
    state, _ = feed(2, key="offline/-", policy=StormPolicy(60, 1))
    _, [summary] = due_summaries(state, "offline/-", NOW, StormPolicy(60, 1), all_open=True)
    assert summary["zone_id"] is None and summary["message"].startswith("2 offline alerts without a zone in the last 60 s")


@pytest.mark.parametrize("window_s, pages", [(0, 20), (0.5, 20), (60, -1)])
def test_policy_rejects_nonsense(window_s, pages):
    with pytest.raises(ValueError):
        StormPolicy(window_s, pages)
