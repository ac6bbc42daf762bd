"""Scenario faults: each one injects exactly what the report says, and downstream can count it."""

from collections import Counter, defaultdict

import orjson
import pytest

from device_sim.defects import DEFECTS, MALFORMED, RawPayload
from device_sim.fleet_model import FleetSpec
from device_sim.scenario import Scenario, ScenarioKnobs
from udfs import telemetry_schema as schema
from udfs.geofence import DEFAULT_SERVICE_AREA, load_service_area
from udfs.telemetry_schema import Rejection, decode, parse, parse_timestamp_ms, validate

START = 1_736_951_538_000
NOW = START + 3_600_000
AREA = load_service_area(DEFAULT_SERVICE_AREA)
ALL = ScenarioKnobs(
    duplicates=12, late=7, late_resends=6, late_after_s=20, out_of_order=9, malformed=6, schema_invalid=8,
    offline_vehicles=3, offline_s=25, geofence_exits=3, low_batteries=4, seed=5,
)


def scenario(knobs=ALL, vehicles=120, duration_s=60, seed=3):
    return Scenario(FleetSpec(vehicles=vehicles, seed=seed, start_ms=START), knobs, duration_s=duration_s)


def timed(knobs=ALL, **kw):
    s = scenario(knobs, **kw)
    return s, list(s.timed())


def is_valid(item):
    return isinstance(item, dict) and not isinstance(validate(item, now_ms=NOW), Rejection)


def valid(items):
    return [item for _, item in items if is_valid(item)]


def ts(event):
    return parse_timestamp_ms(event["timestamp"])


def test_all_knobs_inject_exactly_what_they_report():
    s, items = timed()
    report = s.report
    assert report.shortfall() == {}
    assert report.injected() == {
        "duplicates": 12, "late": 7, "late_resends": 6, "out_of_order": 9, "malformed": 6, "schema_invalid": 8,
        "offline_vehicles": 3, "geofence_exits": 3, "low_batteries": 4,
    }
    assert report.items == len(items)
    late_ms = 20_000

    # duplicates: the same event twice in a row, sent at its own time
    adjacent = sum(1 for (t1, a), (t2, b) in zip(items, items[1:]) if is_valid(a) and a == b and t1 == t2 == ts(a))
    assert adjacent == report.duplicates

    # late re-sends and late events: sent exactly late_after_s after their event time
    events = valid(items)
    occurrences = Counter((e["vehicle_id"], e["timestamp"]) for e in events)
    late_sent = [(t, e) for t, e in items if is_valid(e) and t - ts(e) == late_ms]
    late_copies = [e for _, e in late_sent if occurrences[(e["vehicle_id"], e["timestamp"])] == 2]
    late_unique = [e for _, e in late_sent if occurrences[(e["vehicle_id"], e["timestamp"])] == 1]
    assert len(late_copies) == report.late_resends and len(late_unique) == report.late
    assert sum(n - 1 for n in occurrences.values()) == report.duplicates + report.late_resends

    # out of order: sent after a newer event of the same vehicle (right after it), not late
    newest = {}
    behind = 0
    for t, e in items:
        if not is_valid(e):
            continue
        if t - ts(e) != late_ms and ts(e) < newest.get(e["vehicle_id"], -1):
            assert 0 < t - ts(e) <= 10_000
            behind += 1
        newest[e["vehicle_id"]] = max(newest.get(e["vehicle_id"], -1), ts(e))
    assert behind == report.out_of_order

    # malformed: raw bytes, never JSON, from a known vehicle, every kind in turn
    raw = [item for _, item in items if isinstance(item, RawPayload)]
    assert len(raw) == sum(report.malformed.values()) == 6
    assert all(isinstance(decode(r), Rejection) and decode(r).reason == schema.BAD_JSON for r in raw)
    assert all(r.vehicle_id in s.fleet.vehicle_ids for r in raw)
    assert report.malformed == Counter({kind: 2 for kind in MALFORMED})

    # schema-invalid: JSON the schema rejects, with the reason DEFECTS names
    reasons = Counter(
        r.reason for _, item in items if isinstance(item, dict) for r in [validate(item, now_ms=NOW)] if isinstance(r, Rejection)
    )
    assert reasons == Counter({DEFECTS[k][1]: n for k, n in report.schema_invalid.items()})
    assert sum(reasons.values()) == 8

    # what a deduplicating, validating downstream counts
    expected = report.expected()
    assert expected["unique_valid"] == len(occurrences) == report.events
    assert expected["duplicates"] == len(events) - len(occurrences)
    assert expected["invalid"] == len(raw) + sum(reasons.values())
    assert expected["items"] == len(items)


def test_offline_vehicles_send_nothing_for_their_period():
    s, items = timed()
    events = valid(items)
    assert len(s.report.offline) == 3
    for period in s.report.offline:
        own = sorted(ts(e) for e in events if e["vehicle_id"] == period.vehicle_id)
        assert not [t for t in own if period.from_ms <= t < period.to_ms]
        assert period.suppressed >= 2  # 25 s at 200 ms to 10 s intervals
        before = [t for t in own if t < period.from_ms]
        after = [t for t in own if t >= period.to_ms]
        if before and after:
            assert after[0] - before[-1] >= 25_000


def test_geofence_exits_are_the_only_events_outside_and_stay_outside():
    s, items = timed()
    exits = dict(s.report.geofence_exits)
    outside = defaultdict(list)
    for event in valid(items):
        inside = AREA.contains(event["location"]["lat"], event["location"]["lon"])
        if not inside:
            outside[event["vehicle_id"]].append(event)
        elif event["vehicle_id"] in exits:
            assert ts(event) < exits[event["vehicle_id"]], "back inside after the exit"
    assert set(outside) == set(exits) and len(exits) == 3
    for vehicle_id, first_ms in exits.items():
        assert min(ts(e) for e in outside[vehicle_id]) >= first_ms


def test_low_batteries_are_the_only_ones_below_15_and_stay_there():
    s, items = timed()
    lows = {v: at for v, at, _ in s.report.low_batteries}
    assert all(p < 15 for _, _, p in s.report.low_batteries)
    below = defaultdict(list)
    for event in valid(items):
        if event["battery"]["percent"] < 15:
            below[event["vehicle_id"]].append(ts(event))
        elif event["vehicle_id"] in lows:
            assert ts(event) < lows[event["vehicle_id"]]
    assert set(below) == set(lows) and len(lows) == 4


@pytest.mark.parametrize(
    "knob, count",
    [("duplicates", 5), ("late", 4), ("late_resends", 4), ("out_of_order", 5), ("malformed", 3),
     ("schema_invalid", 4), ("offline_vehicles", 2), ("geofence_exits", 2), ("low_batteries", 2)],
)
def test_each_knob_alone(knob, count):
    knobs = ScenarioKnobs(**{knob: count}, late_after_s=10, offline_s=15)
    s, items = timed(knobs, vehicles=40, duration_s=40)
    injected = s.report.injected()
    assert injected.pop(knob) == count
    assert set(injected.values()) == {0}
    expected = s.report.expected()
    payloads = [orjson.dumps(item) if isinstance(item, dict) else bytes(item) for _, item in items]
    outcomes = [parse(p, now_ms=NOW) for p in payloads]
    good = [o for o in outcomes if not isinstance(o, Rejection)]
    assert len({(e["vehicle_id"], e["timestamp"]) for e in good}) == expected["unique_valid"]
    assert len(good) - expected["unique_valid"] == expected["duplicates"]
    assert Counter(o.reason for o in outcomes if isinstance(o, Rejection)) == Counter(expected["invalid_by_reason"])


def test_same_seed_and_knobs_same_stream_and_encoded_agrees():
    _, first = timed()
    _, again = timed()
    assert first == again
    _, other = timed(ScenarioKnobs(**{**ALL.__dict__, "seed": 6}))
    assert other != first
    s = scenario()
    encoded = list(s.timed(encoded=True))
    assert len(encoded) == len(first)
    for (t1, item), (t2, (key, payload)) in zip(first, encoded):
        assert t1 == t2
        if isinstance(item, RawPayload):
            assert isinstance(decode(payload), Rejection)
            assert key == str(item.vehicle_id).encode()
        else:
            assert orjson.loads(payload) == item


def test_short_runs_report_the_shortfall_and_bad_knobs_are_refused():
    s, items = timed(ScenarioKnobs(out_of_order=5), vehicles=10, duration_s=5)
    assert s.report.shortfall() == {"out_of_order": 5}
    assert s.report.items == len(items)
    with pytest.raises(ValueError):
        scenario(ScenarioKnobs(offline_vehicles=5, geofence_exits=5, low_batteries=5), vehicles=10)
    with pytest.raises(ValueError):
        ScenarioKnobs(duplicates=-1)
    s = scenario()
    list(s.stream())
    with pytest.raises(RuntimeError):
        list(s.stream())


def test_outputs_key_every_kind_of_item_by_vehicle():
    from device_sim.kafka_output import key_and_payload
    from device_sim.mqtt_output import vehicle_and_payload

    event = {"vehicle_id": 10042, "timestamp": "2025-01-15T14:32:18.123Z"}
    raw = RawPayload(b"\xff\xfegarbage", 10043)
    assert key_and_payload(event) == (b"10042", orjson.dumps(event))
    assert key_and_payload(raw) == (b"10043", b"\xff\xfegarbage")
    assert key_and_payload(b"plain") == (None, b"plain")
    assert key_and_payload((b"7", b"{}")) == (b"7", b"{}")
    assert vehicle_and_payload(event) == (10042, orjson.dumps(event))
    assert vehicle_and_payload(raw) == (10043, b"\xff\xfegarbage")
    assert vehicle_and_payload((b"7", b"{}")) == (7, b"{}")
    assert vehicle_and_payload(b"plain") == (None, b"plain")
    with pytest.raises(TypeError):
        key_and_payload(42)


def test_cli_runs_a_scenario_and_reports_what_downstream_must_count(tmp_path):
    from device_sim.cli import main

    out = tmp_path / "report.json"
    status = main([
        "--vehicles", "30", "--duration-s", "20", "--start-ms", str(START), "--output", "null", "--as-fast-as-possible",
        "--duplicates", "4", "--malformed", "2", "--schema-invalid", "3", "--geofence-exits", "1", "--low-batteries", "1",
        "--offline-vehicles", "1", "--offline-s", "5", "--late", "2", "--late-after-s", "4", "--report-every-s", "0",
        "--report-json", str(out),
    ])
    assert status == 0
    report = orjson.loads(out.read_bytes())["scenario"]
    assert report["injected"] == {
        "duplicates": 4, "late": 2, "late_resends": 0, "out_of_order": 0, "malformed": 2, "schema_invalid": 3,
        "offline_vehicles": 1, "geofence_exits": 1, "low_batteries": 1,
    }
    assert report["expected"]["items"] == report["expected"]["unique_valid"] + 4 + 5
    assert report["shortfall"] == {}
