"""The time-driven fleet: rate modes, event-time order, determinism, the encoded path, the area."""

from collections import defaultdict

import orjson
import pytest

from device_sim.fleet_model import FleetSpec
from device_sim.rate_fleet import RateModeFleet
from device_sim.report_rates import FIXED_1HZ, IN_TRIP, NORMAL, PARKED, SEED_RATES, RateModes, event_mode
from udfs.geofence import DEFAULT_SERVICE_AREA, load_service_area
from udfs.telemetry_schema import Rejection, parse_timestamp_ms, validate

START = 1_736_951_538_000  # 2025-01-15T14:32:18Z
AREA = load_service_area(DEFAULT_SERVICE_AREA)


def fleet(vehicles=100, seed=7, modes=SEED_RATES, **spec):
    return RateModeFleet(FleetSpec(vehicles=vehicles, seed=seed, start_ms=START, **spec), modes)


def ts(event):
    return parse_timestamp_ms(event["timestamp"])


def test_same_seed_same_stream_other_seed_other_stream():
    first = list(fleet(seed=11).stream(60))
    assert first == list(fleet(seed=11).stream(60))
    assert first != list(fleet(seed=12).stream(60))
    encoded = list(fleet(seed=11).stream_encoded(60))
    assert encoded == list(fleet(seed=11).stream_encoded(60))
    assert encoded != list(fleet(seed=12).stream_encoded(60))


@pytest.mark.parametrize("modes", [SEED_RATES, FIXED_1HZ], ids=["seed", "1hz"])
def test_encoded_path_is_the_same_events_as_dicts(modes):
    events = list(fleet(vehicles=150, seed=3, modes=modes).stream(200))
    pairs = list(fleet(vehicles=150, seed=3, modes=modes).stream_encoded(200))
    assert len(events) == len(pairs) > 0
    assert [orjson.loads(payload) for _, payload in pairs] == events
    assert [key for key, _ in pairs] == [str(e["vehicle_id"]).encode() for e in events]
    assert {event_mode(e) for e in events} == {IN_TRIP, NORMAL, PARKED}


def test_events_are_valid_and_in_event_time_order_from_the_start():
    events = list(fleet(vehicles=200).stream(120))
    times = [ts(e) for e in events]
    assert times == sorted(times)
    assert START <= times[0] and times[-1] < START + 120_000
    rejected = [r for r in (validate(e, now_ms=START + 3_600_000) for e in events) if isinstance(r, Rejection)]
    assert rejected == []
    assert {e["vehicle_id"] for e in events} == set(range(10_000, 10_200))


def test_each_vehicle_reports_at_the_rate_of_its_mode():
    """The interval after an event is its mode's: 200 ms in a trip, 1 s normal, 10 s parked above 80 %."""
    events = list(fleet(vehicles=150, seed=5).stream(400))
    by_vehicle = defaultdict(list)
    for event in events:
        by_vehicle[event["vehicle_id"]].append(event)
    seen = defaultdict(int)
    expected = {IN_TRIP: 200, NORMAL: 1_000, PARKED: 10_000}
    for timeline in by_vehicle.values():
        for before, after in zip(timeline, timeline[1:]):
            mode = event_mode(before)
            assert ts(after) - ts(before) == expected[mode], (before, after)
            seen[mode] += 1
    assert all(seen[mode] > 100 for mode in expected), seen
    # the seed's average: about 1 event per vehicle per second
    assert 0.8 < len(events) / 150 / 400 < 1.5


def test_mode_follows_the_seed_rules():
    assert SEED_RATES.mode(True, 95) == IN_TRIP
    assert SEED_RATES.mode(False, 81) == PARKED
    assert SEED_RATES.mode(False, 80) == NORMAL
    assert [SEED_RATES.interval_ms(m) for m in (IN_TRIP, NORMAL, PARKED)] == [200, 1_000, 10_000]
    with pytest.raises(ValueError):
        RateModes(in_trip_ms=0)


def test_fixed_1hz_every_vehicle_once_per_second():
    events = list(fleet(vehicles=250, modes=FIXED_1HZ).stream(10))
    assert len(events) == 2_500
    per_second = defaultdict(set)
    for event in events:
        per_second[(ts(event) - START) // 1_000].add(event["vehicle_id"])
    assert all(len(ids) == 250 for ids in per_second.values()) and len(per_second) == 10


def test_successive_streams_continue_where_the_last_stopped():
    whole = list(fleet().stream(40))
    parts = fleet()
    assert list(parts.stream(15)) + list(parts.stream(until_ms=START + 40_000)) == whole
    assert parts.now_ms == START + 40_000
    with pytest.raises(ValueError):
        list(parts.stream())


def test_closing_a_stream_mid_way_loses_no_event():
    whole = [(e["vehicle_id"], e["timestamp"]) for e in fleet().stream(20)]
    parts = fleet()
    head = []
    stream = parts.stream(until_ms=START + 20_000)
    for event in stream:
        head.append((event["vehicle_id"], event["timestamp"]))
        if len(head) == 700:
            break
    stream.close()
    rest = [(e["vehicle_id"], e["timestamp"]) for e in parts.stream(until_ms=START + 20_000)]
    assert head + rest == whole


def test_vehicles_stay_in_the_service_area_and_batteries_above_15_without_faults():
    f = fleet(vehicles=150, seed=21)
    events = [orjson.loads(p) for _, p in f.stream_encoded(600)]
    outside = [e for e in events if not AREA.contains(e["location"]["lat"], e["location"]["lon"])]
    assert outside == []
    assert min(e["battery"]["percent"] for e in events) >= 16
    moving = [e for e in events if e["motion"]["speed_kmh"] > 0]
    assert moving and max(e["motion"]["speed_kmh"] for e in moving) <= 25


def test_trips_move_at_scooter_speed_with_gps_noise():
    events = list(fleet(vehicles=100, seed=4).stream(120))
    trips = defaultdict(list)
    for event in events:
        if event["vehicle_status"]["in_use"]:
            trips[event["vehicle_status"]["trip_id"]].append(event)
    assert trips
    for timeline in trips.values():
        headings = {e["motion"]["heading"] for e in timeline}
        assert len(timeline) < 10 or len(headings) > 1
    parked = [e for e in events if not e["vehicle_status"]["in_use"]]
    by_vehicle = defaultdict(set)
    for event in parked:
        by_vehicle[event["vehicle_id"]].add((event["location"]["lat"], event["location"]["lon"]))
    assert any(len(points) > 1 for points in by_vehicle.values())  # a parked vehicle's GPS jitters


def test_low_batteries_get_charged_or_swapped():
    f = fleet(vehicles=1_000, seed=8, modes=FIXED_1HZ)
    last = {}
    jumps = charges = 0
    for v, _t, sample in f.due(START + 900_000):
        percent = sample[4]
        previous = last.get(v.vehicle_id)
        if previous is not None and not v.in_trip:
            if percent - previous >= 50:
                jumps += 1
            elif percent - previous == 1 and sample[8]:
                charges += 1
        last[v.vehicle_id] = percent
    assert f.swaps > 0 and jumps == f.swaps
    assert charges > 0


def test_other_centre_uses_a_disc():
    berlin = RateModeFleet(FleetSpec(vehicles=50, seed=1, start_ms=START, center=(52.52, 13.405), radius_km=3))
    events = list(berlin.stream(60))
    assert all(abs(e["location"]["lat"] - 52.52) < 0.05 and abs(e["location"]["lon"] - 13.405) < 0.08 for e in events)
