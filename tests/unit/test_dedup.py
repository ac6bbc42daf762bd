"""Bounded per-vehicle dedup: checked against a plain model (a sorted list of the newest distinct
times, trimmed to capacity) on random streams with repeats, out-of-order and very late events."""

import random

from udfs.dedup import Verdict, observe, pack, remember, unpack


def model(stream, capacity):
    kept: list[int] = []
    verdicts = []
    for t in stream:
        if t in kept:
            verdicts.append(Verdict.DUPLICATE)
        elif len(kept) >= capacity and t < min(kept):
            verdicts.append(Verdict.BEYOND_HORIZON)
        else:
            kept = sorted(kept + [t])[-capacity:]
            verdicts.append(Verdict.NEW)
    return verdicts, kept


def test_matches_the_model_on_random_streams():
    rng = random.Random(7)
    for capacity in (1, 2, 5, 16, 128):
        for _ in range(30):
            base = [1_700_000_000_000 + 200 * i for i in range(300)]
            stream = []
            for i, t in enumerate(base):
                stream.append(t)
                roll = rng.random()
                if roll < 0.15:
                    stream.append(rng.choice(base[max(0, i - 40): i + 1]))  # a re-send, maybe late
                elif roll < 0.2:
                    stream.append(t - rng.randint(1, 199))  # out of order, never seen
            times = unpack(None)
            got = [observe(times, t, capacity) for t in stream]
            want, kept = model(stream, capacity)
            assert got == want
            assert list(times) == kept


def test_in_order_repeat_and_out_of_order():
    times = unpack(None)
    assert observe(times, 1000) is Verdict.NEW
    assert observe(times, 3000) is Verdict.NEW
    assert observe(times, 1000) is Verdict.DUPLICATE
    assert observe(times, 2000) is Verdict.NEW  # late, but never seen: kept
    assert list(times) == [1000, 2000, 3000]


def test_recognised_for_capacity_newer_events_then_beyond_horizon():
    times = unpack(None)
    for t in range(10):
        observe(times, t, capacity=4)
    assert list(times) == [6, 7, 8, 9]
    assert observe(times, 6, capacity=4) is Verdict.DUPLICATE
    assert observe(times, 5, capacity=4) is Verdict.BEYOND_HORIZON  # cannot tell: kept by the caller
    assert list(times) == [6, 7, 8, 9]


def test_packed_round_trip_and_remember():
    duplicate, state = remember(None, 5)
    assert not duplicate and unpack(state).tolist() == [5]
    duplicate, unchanged = remember(state, 5)
    assert duplicate and unchanged is None
    duplicate, state2 = remember(state, 9)
    assert not duplicate and unpack(state2).tolist() == [5, 9]
    assert len(pack(unpack(state2))) == 16  # 8 bytes per kept time
