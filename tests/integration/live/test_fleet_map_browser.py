"""The fleet map of a running `telemetry live`, in headless Chromium: the page shows the vehicles the
status table holds, in the states the test works out itself from that table, and an alert a vehicle
raises over MQTT reaches the page's feed within seconds. It saves a screenshot of the page."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from connectors.alert_log import read_alert_log
from device_sim.fleet_model import Fleet, FleetSpec
from tests.integration.live.browser import headless_chromium
from udfs.alert_rules import alert_id
from udfs.telemetry_schema import Rejection, encode, format_timestamp_ms, parse

pytestmark = pytest.mark.integration

PAGE_LOAD_S = 60.0
ALERT_WITHIN_S = 15.0  # MQTT → bridge → Kafka → alerts job → alert log → the page's next 2 s poll
REPO = Path(__file__).parents[3]

# Everything the test reads from the page, in one script: the page cannot redraw half-way through it.
_PAGE = """
const body = document.body.dataset;
return {
  updated: Number(body.updated || 0), nowMs: Number(body.nowMs || 0), error: body.error || "",
  refreshMs: Number(body.refreshMs || 0),
  points: Array.from(document.querySelectorAll("#vehicles circle.vehicle"), c => [Number(c.dataset.vehicleId), c.dataset.state]),
  legend: Object.fromEntries(Array.from(document.querySelectorAll("#legend li"), li => [li.dataset.state, Number(li.dataset.count)])),
  zones: Array.from(document.querySelectorAll("#zones polygon"), p => p.dataset.zoneId),
  areas: document.querySelectorAll("#area path").length,
  series: document.getElementById("throughput-chart").dataset.series || "",
};
"""
_ALERT_ROW = """
const row = document.querySelector(`#alerts tbody tr[data-vehicle-id="${arguments[0]}"][data-kind="low_battery"]`);
return row && {alertId: row.dataset.alertId, cells: Array.from(row.cells, c => c.textContent)};
"""


def _status_rows(path: str) -> dict[int, tuple]:
    """The status table read with sqlite3 itself, not through the store or the map."""
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        rows = conn.execute(
            "SELECT vehicle_id, last_seen_ms, battery_percent, in_use, online, latitude, longitude, zone_id FROM vehicle_status"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def _expected_state(row: tuple, now_ms: int, low_battery_percent: float, offline_after_s: float) -> str:
    """docs/fleet-map.md's rule, written out again here."""
    last_seen_ms, battery, in_use, online = row[:4]
    if not online or now_ms - last_seen_ms > offline_after_s * 1000:
        return "offline"
    if battery < low_battery_percent:
        return "low_battery"
    return "in_trip" if in_use else "parked"


def _poll(check: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout_s:.0f} s")
        time.sleep(interval_s)


def _low_battery_payload(vehicle_id: int, timestamp_ms: int, lat: float, lon: float) -> dict[str, Any]:
    """A parked vehicle's event in device_sim's format, on 5 %, not charging."""
    payload = next(Fleet(FleetSpec(vehicles=1, first_vehicle_id=vehicle_id, start_ms=timestamp_ms)).take(1))
    payload["timestamp"] = format_timestamp_ms(timestamp_ms)
    payload["location"].update(lat=lat, lon=lon)
    payload["battery"].update(percent=5, charging=False)
    payload["motion"]["speed_kmh"] = 0.0
    payload["vehicle_status"] = {"locked": True, "in_use": False, "trip_id": None}
    return payload


def _publish(host: str, port: int, vehicle_id: int, payload: bytes) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fleet-map-test-{vehicle_id}")
    client.connect(host, port)
    client.loop_start()
    try:
        info = client.publish(f"telemetry/{vehicle_id}", payload, qos=1)
        info.wait_for_publish(timeout=10)
        assert info.is_published(), "no PUBACK from Mosquitto within 10 s"
    finally:
        client.disconnect()
        client.loop_stop()


def test_the_map_shows_the_fleet_and_an_alert_within_seconds(live_platform):
    config = live_platform.config
    run_dir = config.infra.run_dir
    rules = (config.alerts.low_battery_percent, config.alerts.offline_after_s)
    figures: dict[str, Any] = {}

    with headless_chromium(log_path=str(run_dir / "chromedriver.log")) as browser:
        browser.get(live_platform.map_url)
        _poll(lambda: browser.execute_script(_PAGE)["points"], timeout_s=PAGE_LOAD_S, what="vehicle points on the page")

        # Bracket the page between two reads of the table. A refresh that *ends* after the first
        # read may have fetched before it; the one after that started after it (the page polls
        # with setTimeout, one refresh at a time), so the second refresh after `read_at` is inside.
        before = _status_rows(config.stores.local_path)
        read_at = time.time() * 1000
        first = _poll(lambda: (p := browser.execute_script(_PAGE))["updated"] > read_at and p, timeout_s=30, what="a refresh")
        page = _poll(lambda: (p := browser.execute_script(_PAGE))["updated"] > first["updated"] and p, timeout_s=30,
                     what="a second refresh")
        after = _status_rows(config.stores.local_path)

        assert page["error"] == "", page["error"]
        shown = dict(page["points"])
        # The count, with the tolerance of the bracket: vehicles are only ever added to the table
        # (a vehicle appears with its first event), so the page holds every vehicle of the first
        # read and none that the second read lacks. In a steady fleet both reads hold all of them.
        assert len(shown) == len(page["points"]), "one point per vehicle"
        assert set(before) <= set(shown) <= set(after), (len(before), len(shown), len(after))
        assert len(before) <= len(shown) <= len(after) and len(shown) > 0
        # The states: a vehicle whose row did not change between the reads must be in exactly the
        # state its row gives; one that sent events meanwhile in the state of either version.
        unchanged = [v for v in shown if before.get(v) == after[v]]
        for v, state in shown.items():
            allowed = {_expected_state(after[v], page["nowMs"], *rules)}
            if v not in unchanged and v in before:
                allowed.add(_expected_state(before[v], page["nowMs"], *rules))
            assert state in allowed, (v, state, before.get(v), after[v], page["nowMs"])
        assert page["legend"] == {s: Counter(shown.values())[s] for s in ("in_trip", "parked", "low_battery", "offline")}
        expected_counts = Counter(_expected_state(row, page["nowMs"], *rules) for row in after.values())
        changed = len(after) - len(unchanged)
        for state, count in page["legend"].items():  # each changed vehicle can move one count by one
            assert abs(count - expected_counts[state]) <= changed, (state, count, expected_counts, changed)
        # The map itself: the service area, and a zone drawn under every vehicle.
        assert page["areas"] == 1
        assert {row[6] for row in after.values()} <= set(page["zones"])
        assert page["series"], "the throughput chart has the collector's series"
        figures.update(vehicles=len(shown), unchanged_rows=len(unchanged), legend=page["legend"], page_refresh_ms=page["refreshMs"])

        # A parked vehicle with no alert so far drops to 5 %: it publishes that itself, over MQTT.
        # Above 80 % a parked vehicle sends every 10 s (device_sim's seed rates), so the simulator's
        # next event for it, which ends the episode, comes well after ours.
        alerted = {a.get("vehicle_id") for a in read_alert_log(config.alerts.alert_log)}
        now_ms = int(time.time() * 1000)
        candidates = sorted(
            (v for v, row in after.items()
             if row[3] and not row[2] and row[1] >= 30 and row[0] <= now_ms - 1_000 and v not in alerted),
            key=lambda v: (after[v][1] <= 80, v),
        )
        assert candidates, "no parked, charged vehicle without an alert to use"
        vehicle = candidates[0]
        last_seen_ms, _, _, _, lat, lon, _ = after[vehicle]
        timestamp_ms = max(now_ms, last_seen_ms + 1)  # newer than its last event: not a late reading
        raw = encode(_low_battery_payload(vehicle, timestamp_ms, lat, lon))
        assert not isinstance(parse(raw), Rejection), parse(raw)
        want_id = alert_id(vehicle, "low_battery", timestamp_ms)

        started = time.monotonic()
        _publish(config.infra.host, config.infra.mqtt_port, vehicle, raw)
        in_log: list[float] = []

        def on_page() -> dict | None:
            if not in_log and any(a.get("alert_id") == want_id for a in read_alert_log(config.alerts.alert_log)):
                in_log.append(time.monotonic() - started)
            return browser.execute_script(_ALERT_ROW, vehicle)

        row = _poll(on_page, timeout_s=ALERT_WITHIN_S, what=f"low_battery alert row for vehicle {vehicle} on the page")
        seconds = time.monotonic() - started
        assert row["alertId"] == want_id, row
        assert row["cells"][1:3] == ["low battery", str(vehicle)], row["cells"]
        figures.update(alert_vehicle=vehicle, alert_to_page_s=round(seconds, 2),
                       alert_to_log_s=round(in_log[0], 2) if in_log else None)

        screenshot = run_dir / "fleet-map.png"
        assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 10_000
    if os.environ.get("FLEET_MAP_SCREENSHOT"):  # for the docs only: CI leaves the tree clean
        (REPO / "docs" / "images").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, REPO / "docs" / "images" / "fleet-map.png")
    (run_dir / "fleet-map-browser.json").write_text(json.dumps(figures, indent=2))
    print(f"\nfleet map: {figures['vehicles']} vehicles ({figures['legend']}), page refresh {figures['page_refresh_ms']} ms; "
          f"low_battery alert of vehicle {vehicle} in the alert log {figures['alert_to_log_s']} s and on the page "
          f"{figures['alert_to_page_s']} s after its MQTT publish; screenshot {screenshot}")
