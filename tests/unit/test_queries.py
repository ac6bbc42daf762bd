"""fleet/queries.py over a real SQLite store and alert log written here through the real classes;
every expected value is computed in the test from the points, alerts and records it wrote."""

from __future__ import annotations

import random
import sqlite3
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import geohash2
import orjson
import pytest

from connectors.alert_log import AlertLog
from connectors.hot_store import TelemetryPoint, latest_status
from connectors.hot_store_local import LocalHotStore
from connectors.vehicle_status_local import LocalVehicleStatusStore
from fleet.queries import (
    QueryNotSupported,
    UnknownVehicle,
    dlq_counts,
    recent_alerts,
    vehicle_status,
    vehicle_trace,
    zone_counts,
)
from udfs.alert_rules import make_alert
from udfs.dlq import dlq_record, encode_dlq_record
from udfs.telemetry_schema import Rejection, format_timestamp_ms

MINUTE_MS = 60_000
NOW_MS = int(time.time() * 1000)  # the store refuses points older than its retention, by the real clock


def fleet_points(vehicles: int = 6, per_vehicle: int = 40, seed: int = 3) -> list[TelemetryPoint]:
    """Points every 3 minutes over the last two hours, around Frankfurt, in a handful of zones."""
    rng = random.Random(seed)
    points = []
    for vehicle in range(1, vehicles + 1):
        for i in range(per_vehicle):
            lat, lon = 50.10 + rng.random() * 0.03, 8.66 + rng.random() * 0.04
            points.append(TelemetryPoint(
                vehicle_id=vehicle, time_ms=NOW_MS - 120 * MINUTE_MS + i * 3 * MINUTE_MS + vehicle, zone_id=geohash2.encode(lat, lon, 6),
                vehicle_type="scooter", latitude=lat, longitude=lon, battery_percent=50 + i % 40,
                speed_kmh=None if i % 7 == 0 else float(i),
            ))
    return points


@pytest.fixture
def stores(tmp_path: Path):
    path = str(tmp_path / "store.sqlite")
    hot, status = LocalHotStore(path), LocalVehicleStatusStore(path)
    points = fleet_points()
    assert hot.write(points).written == len(points)
    status.upsert(latest_status(points))
    yield hot, status, points
    hot.close()
    status.close()


def test_trace_is_the_vehicles_points_since_newest_first(stores):
    hot, status, points = stores
    since = NOW_MS - 60 * MINUTE_MS
    expected = sorted(((p.time_ms, p.latitude, p.longitude, p.speed_kmh) for p in points if p.vehicle_id == 4 and p.time_ms >= since), reverse=True)
    trace = vehicle_trace(hot, status, 4, since_ms=since)
    assert [(t.time_ms, t.latitude, t.longitude, t.speed_kmh) for t in trace] == expected
    assert len(expected) == 20  # one point every 3 minutes of the last hour
    assert [t.time_ms for t in vehicle_trace(hot, status, 4, since_ms=since, limit=3)] == [e[0] for e in expected[:3]]


def test_a_quiet_known_vehicle_has_an_empty_trace_and_an_unknown_one_is_an_error(stores):
    hot, status, _ = stores
    assert vehicle_trace(hot, status, 2, since_ms=NOW_MS + MINUTE_MS) == []
    with pytest.raises(UnknownVehicle, match="vehicle 77 is unknown"):
        vehicle_trace(hot, status, 77, since_ms=0)


def test_status_is_the_newest_point_of_the_vehicle(stores):
    _, status, points = stores
    newest = max((p for p in points if p.vehicle_id == 5), key=lambda p: p.time_ms)
    row = vehicle_status(status, 5)
    assert (row.last_seen_ms, row.latitude, row.longitude, row.zone_id, row.battery_percent) == (
        newest.time_ms, newest.latitude, newest.longitude, newest.zone_id, newest.battery_percent)
    with pytest.raises(UnknownVehicle):
        vehicle_status(status, 77)


def test_zone_counts_are_the_points_per_zone_in_the_window(stores):
    hot, _, points = stores
    since = NOW_MS - 45 * MINUTE_MS
    window = [p for p in points if p.time_ms >= since]
    events = Counter(p.zone_id for p in window)
    vehicles = {zone: len({p.vehicle_id for p in window if p.zone_id == zone}) for zone in events}
    first = {zone: min(p.time_ms for p in window if p.zone_id == zone) for zone in events}
    last = {zone: max(p.time_ms for p in window if p.zone_id == zone) for zone in events}
    ranked = sorted(events, key=lambda zone: (-events[zone], zone))

    tally = zone_counts(hot, since_ms=since, limit=3)
    assert [(z.zone_id, z.events, z.vehicles, z.first_ms, z.last_ms) for z in tally.zones] == [
        (zone, events[zone], vehicles[zone], first[zone], last[zone]) for zone in ranked[:3]]
    assert (tally.zone_total, tally.event_total) == (len(events), len(window))
    assert len(zone_counts(hot, since_ms=since, limit=None).zones) == len(events) > 3


def test_zone_counts_read_only_the_covering_index(stores):
    hot, _, _ = stores
    with closing(sqlite3.connect(hot.path)) as conn:
        plan = " ".join(row[3] for row in conn.execute(
            "EXPLAIN QUERY PLAN SELECT zone_id, count(*), count(DISTINCT vehicle_id), min(time_ms), max(time_ms) "
            "FROM telemetry WHERE time_ms >= ? GROUP BY zone_id", (0,)))
    assert "COVERING INDEX telemetry_by_time_zone" in plan


def test_a_file_from_before_the_zone_index_gets_it_on_open(tmp_path: Path):
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE telemetry (vehicle_id INTEGER NOT NULL, time_ms INTEGER NOT NULL, zone_id TEXT NOT NULL, "
                     "vehicle_type TEXT NOT NULL, latitude REAL NOT NULL, longitude REAL NOT NULL, battery_percent INTEGER NOT NULL, "
                     "speed_kmh REAL, heading REAL, altitude REAL, battery_voltage REAL, battery_temperature REAL, charging INTEGER, "
                     "in_use INTEGER, trip_id TEXT, odometer_km REAL, PRIMARY KEY (vehicle_id, time_ms)) WITHOUT ROWID")
        conn.execute("CREATE INDEX telemetry_by_time ON telemetry (time_ms)")
        conn.execute("INSERT INTO telemetry (vehicle_id, time_ms, zone_id, vehicle_type, latitude, longitude, battery_percent) "
                     "VALUES (1, ?, 'u0yjjd', 'scooter', 50.11, 8.68, 60)", (NOW_MS,))
        conn.commit()
    with LocalHotStore(str(path)) as store:
        assert [(z.zone_id, z.events) for z in store.zone_counts(NOW_MS - MINUTE_MS)] == [("u0yjjd", 1)]
    with closing(sqlite3.connect(path)) as conn:
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'telemetry'")}
    assert "telemetry_by_time_zone" in indexes and "telemetry_by_time" not in indexes


def test_zone_counts_need_a_backend_that_has_them():
    class TraceOnly:
        def trace(self, *args, **kwargs):
            return []

    with pytest.raises(QueryNotSupported, match="local hot store; this profile's is TraceOnly"):
        zone_counts(TraceOnly(), since_ms=0)


def alert(kind: str, vehicle: int, raised_ms: int, lat: float = 50.11, lon: float = 8.68) -> dict:
    made = make_alert(kind, vehicle, raised_ms - 5_000, event_time_ms=raised_ms - 1_000, lat=lat, lon=lon, subject=f"{kind} {vehicle}", message="m")
    return {**made, "paged": True, "ingested_at_ms": raised_ms - 900, "raised_at_ms": raised_ms}


@pytest.fixture
def alert_log(tmp_path: Path):
    kinds = ["low_battery", "geofence_exit", "offline", "geofence_return", "back_online"]
    alerts = [alert(kinds[i % len(kinds)], 1 + i % 4, NOW_MS - (90 - 2 * i) * MINUTE_MS) for i in range(45)]
    log = AlertLog(str(tmp_path / "alerts.log"))
    log.append_many(alerts[:30])
    with open(log.path, "ab") as handle:
        handle.write(b'{"alert_id": "torn\n')  # a line cut short by a crash
    log.append_many(alerts[30:])
    return log.path, alerts


def test_recent_alerts_filter_by_time_kind_and_vehicle_newest_first(alert_log):
    path, alerts = alert_log
    since = NOW_MS - 30 * MINUTE_MS
    expected = sorted((a for a in alerts if a["raised_at_ms"] >= since), key=lambda a: a["raised_at_ms"], reverse=True)
    selection = recent_alerts(path, since_ms=since, limit=None)
    assert [a["alert_id"] for a in selection.alerts] == [a["alert_id"] for a in expected]
    assert (selection.matched, selection.unreadable_lines) == (len(expected), 1)

    hour = sorted((a for a in alerts if a["raised_at_ms"] >= NOW_MS - 60 * MINUTE_MS), key=lambda a: a["raised_at_ms"], reverse=True)
    geofence = [a for a in hour if a["kind"] in ("geofence_exit", "geofence_return") and a["vehicle_id"] == 2]
    chosen = recent_alerts(path, since_ms=NOW_MS - 60 * MINUTE_MS, kinds=("geofence_exit", "geofence_return"), vehicle_id=2, limit=2)
    assert [a["alert_id"] for a in chosen.alerts] == [a["alert_id"] for a in geofence[:2]]
    assert chosen.matched == len(geofence) > 2


def test_an_alert_without_raised_at_is_placed_by_its_event_time(tmp_path: Path):
    log = AlertLog(str(tmp_path / "alerts.log"))
    old_style = make_alert("low_battery", 9, NOW_MS - 10 * MINUTE_MS, event_time_ms=NOW_MS - 10 * MINUTE_MS, lat=50.1, lon=8.6, subject="s", message="m")
    log.append_many([old_style])
    assert [a["vehicle_id"] for a in recent_alerts(log.path, since_ms=NOW_MS - 11 * MINUTE_MS).alerts] == [9]
    assert recent_alerts(log.path, since_ms=NOW_MS - 9 * MINUTE_MS).alerts == []


def test_a_missing_alert_log_has_no_alerts(tmp_path: Path):
    selection = recent_alerts(str(tmp_path / "none.log"), since_ms=0)
    assert (selection.alerts, selection.matched, selection.unreadable_lines) == ([], 0, 0)


def test_dlq_counts_by_stage_and_reason_with_their_time_span():
    made = []
    rng = random.Random(11)
    for _i in range(60):
        stage, reason = rng.choice([("mqtt-bridge", "bad_json"), ("mqtt-bridge", "iot_rule"), ("telemetry-pipeline", "out_of_range"),
                                    ("hot-store", "hot_store_rejected")])
        at = NOW_MS - rng.randrange(0, 3_600_000)
        made.append((stage, reason, at))
    values = [encode_dlq_record(dlq_record(b"{}", Rejection(reason, None, "d"), stage=stage, now_ms=at)) for stage, reason, at in made]
    values += [b"not json", orjson.dumps({"no": "reason"})]
    counts = Counter((stage, reason) for stage, reason, _ in made)
    expected = sorted(
        ((stage, reason, n, format_timestamp_ms(min(a for s, r, a in made if (s, r) == (stage, reason))),
          format_timestamp_ms(max(a for s, r, a in made if (s, r) == (stage, reason)))) for (stage, reason), n in counts.items()),
        key=lambda row: (-row[2], row[0], row[1]),
    )
    tally = dlq_counts(values)
    assert [(c.stage, c.reason, c.records, c.first_rejected_at, c.last_rejected_at) for c in tally.counts] == expected
    assert (tally.records, tally.unreadable) == (60, 2)
