"""The anomaly job on the MiniCluster with short timeouts from config and a paced in-memory input
(processing-time timers only fire while the input is open): one offline and one back_online for a
vehicle that goes silent, nothing for one that keeps reporting, one low-battery alert per episode,
one geofence exit and one return."""

import time
from collections import Counter
from dataclasses import replace

import orjson
import pytest
from pyflink.common import Types, WatermarkStrategy
from pyflink.datastream.connectors.number_seq import NumberSequenceSource

from connectors.alert_log import read_alert_log
from fleet.config import load_config
from jobs.anomaly_detection import anomaly_config, build
from jobs.flink_env import create_env
from udfs.telemetry_schema import format_timestamp_ms

pytestmark = pytest.mark.job

VEHICLES = (501, 502, 503, 504)
TICKS = 80
TICK_S = 0.05
INSIDE = (50.1105, 8.6821)  # the seed's sample point, in the default Frankfurt service area
OUTSIDE = (50.40, 9.10)


def battery_of_503(tick):
    """Drains through 15 % with flapping, charges at tick 50, unplugged at 12 % at tick 60."""
    if tick < 50:
        return max(10, 30 - tick // 2) if tick < 30 else (14, 15, 16, 14, 13)[tick % 5], False
    return (12, tick < 60)


def payload(index):
    """One event of the scenario for sequence number `index`, or None when that vehicle is silent."""
    tick, vehicle = divmod(index, len(VEHICLES))
    vehicle_id = VEHICLES[vehicle]
    if vehicle == 0:
        time.sleep(TICK_S)  # pace the input: one tick of the fleet per TICK_S of wall time
    if vehicle_id == 502 and 20 <= tick < 60:
        return None
    percent, charging = battery_of_503(tick) if vehicle_id == 503 else (80, False)
    lat, lon = OUTSIDE if vehicle_id == 504 and 30 <= tick < 50 else INSIDE
    return orjson.dumps({
        "vehicle_id": vehicle_id,
        "timestamp": format_timestamp_ms(int(time.time() * 1000)),
        "location": {"lat": lat, "lon": lon},
        "battery": {"percent": percent, "charging": charging},
    }).decode()


def test_alerts_once_per_episode_with_offline_timers(tmp_path):
    platform = load_config("local", {
        "infra.run_dir": str(tmp_path), "flink.restart_attempts": "0",
        "alerts.offline_after_s": "0.8", "alerts.offline_timer_granularity_ms": "100",
        "alerts.input_stall_after_s": "0.4",  # the input never pauses: a tick is 50 ms
    }, environ={})
    config = replace(anomaly_config(platform), outputs=frozenset({"log"}))
    env = create_env(platform.flink)
    sequence = env.from_source(NumberSequenceSource(0, TICKS * len(VEHICLES) - 1), WatermarkStrategy.no_watermarks(), "paced scenario")
    raw = sequence.flat_map(lambda i: [p] if (p := payload(i)) is not None else [], output_type=Types.STRING())
    alerts = [orjson.loads(a) for a in build(env, config, raw=raw).execute_and_collect()]

    by_vehicle = Counter((a["vehicle_id"], a["kind"]) for a in alerts)
    assert by_vehicle == Counter({
        (502, "offline"): 1, (502, "back_online"): 1,
        (503, "low_battery"): 2,
        (504, "geofence_exit"): 1, (504, "geofence_return"): 1,
    }), alerts
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    offline = next(a for a in alerts if a["kind"] == "offline")
    back = next(a for a in alerts if a["kind"] == "back_online")
    assert offline["episode_start"] == back["episode_start"] and offline["alert_id"] != back["alert_id"]
    assert offline["location"] == {"lat": INSIDE[0], "lon": INSIDE[1]} and offline["zone_id"] == "u0yjjd"
    low = [a for a in alerts if a["kind"] == "low_battery"]
    assert [a["details"]["battery_percent"] for a in low] == [14, 12]
    assert all(a["raised_at_ms"] >= a["ingested_at_ms"] for a in alerts if a["ingested_at_ms"] is not None)

    logged = read_alert_log(config.alert_log)
    assert sorted(a["alert_id"] for a in logged) == sorted(a["alert_id"] for a in alerts)


def test_payloads_over_the_schemas_limits_raise_no_alert_and_the_job_goes_on(tmp_path):
    platform = load_config("local", {"infra.run_dir": str(tmp_path), "flink.restart_attempts": "0"}, environ={})
    config = replace(anomaly_config(platform), outputs=frozenset({"log"}))
    env = create_env(platform.flink)

    def low_battery(vehicle_id, **extra):
        return orjson.dumps({
            "vehicle_id": vehicle_id, "timestamp": format_timestamp_ms(int(time.time() * 1000)),
            "location": {"lat": INSIDE[0], "lon": INSIDE[1]}, "battery": {"percent": 5, "charging": False}, **extra,
        }).decode()

    stream = [
        low_battery(602, notes="n" * 140_000),  # over max_payload_bytes
        low_battery(603, extra={"a": {"b": {"c": {"d": {"e": {"f": {"g": {}}}}}}}}),  # 9 levels deep
        low_battery(604, trip="t" * 2_000),  # a string over max_string_chars
        low_battery(601),  # the only one within the limits
    ]
    alerts = [orjson.loads(a) for a in build(env, config, raw=env.from_collection(stream, type_info=Types.STRING())).execute_and_collect()]
    assert {(a["vehicle_id"], a["kind"]) for a in alerts if a["kind"] == "low_battery"} == {(601, "low_battery")}


OUTAGE_AT, OUTAGE_S, OUTAGE_TICKS = 20, 2.5, 60


def outage_payload(index):
    """701-703 report every tick; before tick 20 the whole input stops for 2.5 s (the ingest path
    down), longer than the offline timeout (1.2 s); 702 never comes back."""
    tick, vehicle = divmod(index, 3)
    vehicle_id = 701 + vehicle
    if vehicle == 0:
        time.sleep(OUTAGE_S if tick == OUTAGE_AT else TICK_S)
    if vehicle_id == 702 and tick >= OUTAGE_AT:
        return None
    return orjson.dumps({
        "vehicle_id": vehicle_id, "timestamp": format_timestamp_ms(int(time.time() * 1000)),
        "location": {"lat": INSIDE[0], "lon": INSIDE[1]}, "battery": {"percent": 80, "charging": False},
    }).decode()


def test_an_ingest_outage_longer_than_the_offline_timeout_pages_once_for_the_platform(tmp_path):
    """Seen silence: 701 and 703 lose 2.5 s to the outage, of which only the first 0.4 s (the stall
    period) counts: no offline. 702 is silent from the outage on: 0.4 s + the 3 s after it > 1.2 s."""
    platform = load_config("local", {
        "infra.run_dir": str(tmp_path), "flink.restart_attempts": "0",
        "alerts.offline_after_s": "1.2", "alerts.offline_timer_granularity_ms": "100", "alerts.input_stall_after_s": "0.4",
    }, environ={})
    config = replace(anomaly_config(platform), outputs=frozenset({"log"}))
    env = create_env(platform.flink)
    sequence = env.from_source(NumberSequenceSource(0, OUTAGE_TICKS * 3 - 1), WatermarkStrategy.no_watermarks(), "paced outage")
    raw = sequence.flat_map(lambda i: [p] if (p := outage_payload(i)) is not None else [], output_type=Types.STRING())
    alerts = [orjson.loads(a) for a in build(env, config, raw=raw).execute_and_collect()]

    assert Counter((a["vehicle_id"], a["kind"]) for a in alerts) == Counter({
        (702, "offline"): 1, (None, "input_stalled"): 1, (None, "input_restored"): 1,
    }), alerts
    stalled = next(a for a in alerts if a["kind"] == "input_stalled")
    restored = next(a for a in alerts if a["kind"] == "input_restored")
    offline = next(a for a in alerts if a["kind"] == "offline")
    assert stalled["episode_start"] == restored["episode_start"]
    assert stalled["raised_at_ms"] < restored["raised_at_ms"] <= offline["raised_at_ms"]
