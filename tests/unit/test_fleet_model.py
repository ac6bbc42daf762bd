import math
from collections import Counter

from device_sim.defects import DEFECTS, with_defects
from device_sim.fleet_model import FRANKFURT, Fleet, FleetSpec
from udfs.telemetry_schema import Rejection, parse_timestamp_ms, validate

START = 1_736_951_538_123  # 2025-01-15T14:32:18.123Z, the seed's sample time


def test_same_seed_same_events_other_seed_other_events():
    first = list(Fleet(FleetSpec(vehicles=50, seed=11, start_ms=START)).take(500))
    again = list(Fleet(FleetSpec(vehicles=50, seed=11, start_ms=START)).take(500))
    other = list(Fleet(FleetSpec(vehicles=50, seed=12, start_ms=START)).take(500))
    assert first == again
    assert first != other


def test_default_start_is_now_so_the_hot_store_keeps_the_events():
    import time

    first = next(Fleet(FleetSpec(vehicles=1)).events(1))
    assert abs(parse_timestamp_ms(first["timestamp"]) - time.time() * 1000) < 5_000


def test_each_vehicle_reports_once_per_tick_in_time_order():
    spec = FleetSpec(vehicles=20, seed=5, interval_ms=1_000)
    events = list(Fleet(spec).take(200))
    per_vehicle = Counter(e["vehicle_id"] for e in events)
    assert set(per_vehicle.values()) == {10}
    times = [parse_timestamp_ms(e["timestamp"]) for e in events]
    assert times == sorted(times)
    first = [parse_timestamp_ms(e["timestamp"]) for e in events if e["vehicle_id"] == spec.first_vehicle_id]
    assert [b - a for a, b in zip(first, first[1:])] == [1_000] * 9


def test_vehicles_stay_near_the_service_area():
    events = list(Fleet(FleetSpec(vehicles=100, seed=9, radius_km=5)).take(20_000))
    for event in events:
        lat, lon = event["location"]["lat"], event["location"]["lon"]
        north_km = (lat - FRANKFURT[0]) * 111.32
        east_km = (lon - FRANKFURT[1]) * 111.32 * math.cos(math.radians(FRANKFURT[0]))
        assert math.hypot(north_km, east_km) < 12


def test_defects_are_exact_in_count_and_reason():
    events = list(with_defects(Fleet(FleetSpec(vehicles=30)).take(1_000), 1_000, 40, seed=1))
    reasons = Counter(
        r.reason for r in (validate(e, now_ms=2_000_000_000_000) for e in events) if isinstance(r, Rejection)
    )
    assert sum(reasons.values()) == 40
    assert set(reasons) == {reason for _, reason in DEFECTS.values()}
