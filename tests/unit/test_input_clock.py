"""The input clock, on timelines written out by hand: what a person reading them expects a
vehicle's *seen* silence to be when the platform, not the vehicle, went quiet."""

import pytest

from udfs.input_clock import CURRENT, LAGGING, STALLED, InputClock, InputPolicy

S = 1000
POLICY = InputPolicy(stall_after_ms=60 * S, lag_limit_ms=30 * S)
T0 = 1_700_000_000_000


def clock_at(wall_ms: int) -> InputClock:
    return InputClock(POLICY, started_wall_ms=wall_ms)


def test_the_clock_runs_with_the_wall_between_records_but_stops_once_the_input_stalls():
    clock = clock_at(T0)
    clock.observe([T0 - 50], T0)  # one record, ingested 50 ms before it was read
    assert clock.status == CURRENT
    assert clock.now_ms(T0 + 10 * S) == T0 - 50 + 10 * S  # a quiet moment: still counting
    assert clock.tick(T0 + 59 * S) == CURRENT
    assert clock.tick(T0 + 60 * S) == STALLED
    # Ten minutes of nothing: the clock stopped a stall period after the last record.
    assert clock.now_ms(T0 + 600 * S) == T0 - 50 + 60 * S


def test_an_ingest_outage_is_left_out_of_every_silence_it_spans():
    clock = clock_at(T0)
    clock.observe([T0], T0)
    # Vehicle A last heard at T0 - 100 s; offline after 600 s of silence: due at T0 + 500 s.
    assert clock.due_ms(T0 - 100 * S, 600 * S) == T0 + 500 * S
    # The ingest path is down from T0 for 15 minutes; records come again at T0 + 900 s.
    clock.tick(T0 + 61 * S)
    clock.observe([T0 + 900 * S], T0 + 900 * S)
    assert clock.status == CURRENT
    # Seen: 100 s before the outage + the first 60 s of it (not yet known to be an outage).
    # A is due after 440 s more: at T0 + 900 + 440 s.
    assert clock.due_ms(T0 - 100 * S, 600 * S) == T0 + 1340 * S
    # Vehicle B heard after the outage: nothing to leave out.
    assert clock.due_ms(T0 + 901 * S, 600 * S) == T0 + 1501 * S


def test_a_backlog_read_late_is_counted_in_the_time_it_was_ingested():
    """The job was down 15 minutes while Kafka kept the input: no gap, the silence is all real."""
    clock = clock_at(T0 + 900 * S)  # restarted
    clock.learn(T0, [])  # from the shard's stored state
    assert clock.now_ms(T0 + 900 * S) == T0  # no running on across a restart
    clock.observe([T0 + 1 * S, T0 + 2 * S], T0 + 900 * S)
    assert clock.status == LAGGING  # read 898 s after ingest
    # The rest of the backlog in one batch, a record every 10 s up to 890 s: continuous, no gap.
    clock.observe([T0 + second * S for second in range(890, 2, -10)], T0 + 905 * S)
    assert clock.status == CURRENT  # 15 s behind: under the 30 s limit
    assert clock.gaps == []
    assert clock.due_ms(T0 - 100 * S, 600 * S) == T0 + 500 * S


def test_a_gap_inside_one_batch_is_found_and_only_that_gap():
    """Records at 0..30 s, then nothing until 200 s, read together: a gap from 90 s (a stall
    period after 30 s) to 200 s."""
    clock = clock_at(T0)
    clock.observe([T0], T0)
    clock.observe([T0 + 200 * S, *(T0 + s * S for s in range(10, 31, 10))], T0 + 200 * S)
    assert clock.gaps == [(T0 + 90 * S, 110 * S)]


def test_a_restart_without_input_stalls_from_the_restart():
    clock = clock_at(T0)
    clock.learn(T0 - 5 * S, [])
    assert clock.tick(T0 + 59 * S) == CURRENT
    assert clock.tick(T0 + 60 * S) == STALLED


def test_an_ingest_time_in_the_future_counts_as_now():
    clock = clock_at(T0)
    clock.observe([T0 + 3_600 * S], T0)
    assert clock.input_ms == T0


def test_gaps_no_pending_silence_can_span_are_forgotten():
    clock = clock_at(T0)
    clock.observe([T0], T0)
    clock.observe([T0 + 200 * S], T0 + 200 * S)  # a 140 s gap from T0 + 60 s
    assert clock.gaps == [(T0 + 60 * S, 140 * S)]
    for second in range(250, 701, 50):
        clock.observe([T0 + second * S], T0 + second * S)
    clock.prune(600 * S)
    assert clock.gaps == [(T0 + 60 * S, 140 * S)]  # a vehicle heard at T0 is due at T0 + 740 s: still pending
    clock.observe([T0 + 741 * S], T0 + 741 * S)
    clock.prune(600 * S)
    assert clock.gaps == []


def test_policy_refuses_non_positive_limits():
    with pytest.raises(ValueError):
        InputPolicy(stall_after_ms=0)
