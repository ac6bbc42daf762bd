"""`telemetry query trace|status|alerts|zones` through fleet.cli.app.main: the table and the --json
document, against a store and an alert log this test wrote; expectations computed here."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from connectors.alert_log import AlertLog
from connectors.hot_store import TelemetryPoint, latest_status
from connectors.hot_store_local import LocalHotStore
from connectors.vehicle_status_local import LocalVehicleStatusStore
from fleet.cli.app import main
from udfs.alert_rules import make_alert
from udfs.telemetry_schema import format_timestamp_ms

MINUTE_MS = 60_000
NOW_MS = int(time.time() * 1000)


@pytest.fixture(autouse=True)
def _now() -> None:
    """The wall clock at each test, not at import: the queries' "last hour" is the wall clock's, and
    a whole suite runs for longer than that before it reaches these tests."""
    global NOW_MS
    NOW_MS = int(time.time() * 1000)
ZONES = ("u0yjjd", "u0yjje", "u0yjjf")


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """Points of vehicles 1..3 every 5 minutes for two hours (none near an hour ago), alerts in the log."""
    for name in [key for key in os.environ if key.startswith("TELEMETRY__")]:
        monkeypatch.delenv(name)  # a developer's settings must not reach the profile
    store_path, log_path = tmp_path / "store.sqlite", tmp_path / "alerts.log"
    points = [
        TelemetryPoint(vehicle_id=v, time_ms=NOW_MS - 118 * MINUTE_MS + i * 5 * MINUTE_MS, zone_id=ZONES[(i + v) % 3 if v < 3 else 0],
                       vehicle_type="scooter", latitude=50.1 + i / 1000, longitude=8.6 + v / 100, battery_percent=60,
                       speed_kmh=None if i == 23 else 10.0 + i)
        for v in (1, 2, 3) for i in range(24)
    ]
    with LocalHotStore(str(store_path)) as hot, LocalVehicleStatusStore(str(store_path)) as status:
        assert hot.write(points).written == len(points)
        status.upsert(latest_status(points))
    alerts = [
        {**make_alert(kind, vehicle, NOW_MS - minutes * MINUTE_MS, event_time_ms=NOW_MS - minutes * MINUTE_MS, lat=50.1, lon=8.6,
                      subject=f"{kind} of {vehicle}", message="m"), "paged": paged, "raised_at_ms": NOW_MS - minutes * MINUTE_MS + 1000}
        for kind, vehicle, minutes, paged in [
            ("low_battery", 1, 100, True), ("geofence_exit", 2, 50, True), ("offline", 3, 40, False),
            ("geofence_return", 2, 20, True), ("low_battery", 2, 10, True),
        ]
    ]
    AlertLog(str(log_path)).append_many(alerts)
    settings = [f"infra.run_dir={tmp_path}", f"stores.local_path={store_path}", f"alerts.alert_log={log_path}"]

    def telemetry(*argv: str) -> tuple[int, str, str]:
        code = main([*(a for s in settings for a in ("--set", s)), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return telemetry, points, alerts


def test_trace_table_is_the_last_hour_newest_first(run):
    telemetry, points, _ = run
    code, out, _ = telemetry("query", "trace", "--vehicle", "2")
    mine = sorted((p for p in points if p.vehicle_id == 2 and p.time_ms >= NOW_MS - 60 * MINUTE_MS), key=lambda p: -p.time_ms)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["time", "latitude", "longitude", "speed_kmh"]
    rows = [line.split() for line in lines[1:-1]]
    assert [r[:3] for r in rows] == [[format_timestamp_ms(p.time_ms), f"{p.latitude:.6f}", f"{p.longitude:.6f}"] for p in mine]
    assert rows[0] == [format_timestamp_ms(mine[0].time_ms), f"{mine[0].latitude:.6f}", f"{mine[0].longitude:.6f}"]  # no speed
    assert rows[1][3] == f"{mine[1].speed_kmh:.1f}"
    assert lines[-1].startswith(f"({len(mine)} points of vehicle 2 since ") and len(mine) == 12


def test_trace_json_with_since_and_limit(run):
    telemetry, points, _ = run
    since = format_timestamp_ms(NOW_MS - 30 * MINUTE_MS)
    code, out, _ = telemetry("query", "trace", "--vehicle", "1", "--since", since, "--limit", "4", "--json")
    mine = sorted((p for p in points if p.vehicle_id == 1 and p.time_ms >= NOW_MS - 30 * MINUTE_MS), key=lambda p: -p.time_ms)[:4]
    document = json.loads(out)
    assert code == 0 and document["since"] == since and document["vehicle_id"] == 1
    assert document["points"] == [
        {"time": format_timestamp_ms(p.time_ms), "time_ms": p.time_ms, "latitude": p.latitude, "longitude": p.longitude, "speed_kmh": p.speed_kmh}
        for p in mine
    ]


@pytest.mark.parametrize("argv", [
    ("query", "trace", "--vehicle", "42"), ("query", "status", "--vehicle", "42"), ("query", "alerts", "--vehicle", "42"),
])
def test_an_unknown_vehicle_is_a_clear_error(run, argv):
    telemetry, _, _ = run
    code, out, err = telemetry(*argv)
    assert code == 1 and out == ""
    assert err == f"telemetry query {argv[1]}: vehicle 42 is unknown: the vehicle status table has no row for it\n"


def test_status_table_and_json(run):
    telemetry, points, _ = run
    newest = max((p for p in points if p.vehicle_id == 3), key=lambda p: p.time_ms)
    code, out, _ = telemetry("query", "status", "--vehicle", "3")
    fields = {line[:16].strip(): line[17:] for line in out.splitlines()}
    assert code == 0
    assert fields["vehicle_id"] == "3" and fields["zone_id"] == newest.zone_id and fields["online"] == "True"
    assert fields["last_seen_ms"].startswith(format_timestamp_ms(newest.time_ms) + " (")
    code, out, _ = telemetry("query", "status", "--vehicle", "3", "--json")
    document = json.loads(out)
    assert document["last_seen_ms"] == newest.time_ms and document["last_seen"] == format_timestamp_ms(newest.time_ms)
    assert (document["latitude"], document["longitude"], document["speed_kmh"]) == (newest.latitude, newest.longitude, newest.speed_kmh)


def test_alerts_table_newest_first_and_json_by_kind(run):
    telemetry, _, alerts = run
    code, out, _ = telemetry("query", "alerts")
    in_hour = sorted((a for a in alerts if a["raised_at_ms"] >= NOW_MS - 60 * MINUTE_MS), key=lambda a: -a["raised_at_ms"])
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["raised", "kind", "severity", "vehicle", "zone_id", "paged", "subject"]
    assert [line.split()[:6] for line in lines[1:-1]] == [
        [format_timestamp_ms(a["raised_at_ms"]), a["kind"], a["severity"], str(a["vehicle_id"]), a["zone_id"], "yes" if a["paged"] else "no"]
        for a in in_hour
    ]
    assert lines[-1].startswith(f"({len(in_hour)} of {len(in_hour)} alerts raised since ") and len(in_hour) == 4

    code, out, _ = telemetry("query", "alerts", "--kind", "geofence", "--since", "2h", "--json")
    geofence = sorted((a for a in alerts if a["kind"].startswith("geofence")), key=lambda a: -a["raised_at_ms"])
    document = json.loads(out)
    assert code == 0 and document["kinds"] == ["geofence_exit", "geofence_return"]
    assert document["alerts"] == geofence and document["matched"] == 2


def test_alerts_of_a_known_vehicle_without_any(run):
    telemetry, _, _ = run
    code, out, _ = telemetry("query", "alerts", "--vehicle", "3", "--kind", "low_battery", "--json")
    assert code == 0 and json.loads(out)["alerts"] == []


def test_zones_table_and_json(run):
    telemetry, points, _ = run
    window = [p for p in points if p.time_ms >= NOW_MS - 60 * MINUTE_MS]
    counts = {zone: sum(p.zone_id == zone for p in window) for zone in ZONES}
    ranked = sorted(counts, key=lambda zone: (-counts[zone], zone))
    code, out, _ = telemetry("query", "zones", "--limit", "2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["zone_id", "events", "vehicles", "first", "last"]
    assert [line.split()[:3] for line in lines[1:-1]] == [
        [zone, str(counts[zone]), str(len({p.vehicle_id for p in window if p.zone_id == zone}))] for zone in ranked[:2]]
    assert lines[-1].startswith(f"(2 of 3 zones, {len(window)} events since ")

    code, out, _ = telemetry("query", "zones", "--json")
    document = json.loads(out)
    assert [(z["zone_id"], z["events"]) for z in document["zones"]] == [(zone, counts[zone]) for zone in ranked]
    first = min(p.time_ms for p in window if p.zone_id == ranked[0])
    assert document["zones"][0]["first"] == format_timestamp_ms(first) and document["events_total"] == len(window)


def test_a_bad_since_is_a_usage_error(run, capsys):
    telemetry, _, _ = run
    with pytest.raises(SystemExit) as exit_info:
        telemetry("query", "zones", "--since", "yesterday")
    assert exit_info.value.code == 2
    assert "'yesterday': a duration like 1h, 30m, 2d, or ISO-8601" in capsys.readouterr().err
