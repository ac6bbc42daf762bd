"""The alert fan-out on the MiniCluster, bounded and unpaced: a storm of geofence exits in one zone
is paged 20 times plus one summary, the rest recorded unpaged; an unrelated alert is paged; the
summary and the last flush come out only because the input ended (END_OF_INPUT), since the storm's
event time is mid-window and the input is over long before the window would close."""

import uuid
from collections import Counter
from dataclasses import replace

import orjson
import pytest
from pyflink.common import Types

from connectors.alert_log import read_alert_log
from fleet.config import load_config
from jobs.anomaly_detection import anomaly_config, build
from jobs.flink_env import create_env

pytestmark = pytest.mark.job

STORM_VEHICLES = range(20_000, 20_060)  # 60 exits: 20 paged, 40 not
OUTSIDE = (50.40, 9.10)  # outside the Frankfurt service area; its zone is computed with geohash2
INSIDE = (50.1105, 8.6821)
EVENT_TIME = "2026-11-30T10:15:30.000Z"  # in the window [10:15:00, 10:16:00)
WINDOW_START_MS = 1796033700000  # 2026-11-30T10:15:00Z
SUMMARY_NAMESPACE = uuid.UUID("b1d3a7e4-52c6-4f0e-8f6b-3c9a1e7d2f40")


def event(vehicle_id, lat, lon, percent=80):
    return orjson.dumps({
        "vehicle_id": vehicle_id, "timestamp": EVENT_TIME,
        "location": {"lat": lat, "lon": lon}, "battery": {"percent": percent, "charging": False},
    }).decode()


def test_storm_of_exits_pages_twenty_and_one_summary_and_flushes_at_end_of_input(tmp_path):
    import geohash2  # the independent reference the project's geohash is checked against

    zone = geohash2.encode(*OUTSIDE, precision=6)
    platform = load_config("local", {
        "infra.run_dir": str(tmp_path), "flink.restart_attempts": "0",
        "alerts.storm_window_s": "60", "alerts.storm_pages_per_window": "20", "alerts.publish_shards": "3",
    }, environ={})
    config = replace(anomaly_config(platform), outputs=frozenset({"log"}))
    env = create_env(platform.flink)
    payloads = [event(v, *OUTSIDE) for v in STORM_VEHICLES] + [event(555, *INSIDE, percent=9)]
    raw = env.from_collection(payloads, type_info=Types.STRING())
    out = [orjson.loads(a) for a in build(env, config, raw=raw).execute_and_collect()]

    exits = [a for a in out if a["kind"] == "geofence_exit"]
    assert len(exits) == 60 and {a["zone_id"] for a in exits} == {zone}
    assert Counter(a["paged"] for a in exits) == Counter({True: 20, False: 40})
    expected_summary = str(uuid.uuid5(SUMMARY_NAMESPACE, f"geofence_exit/{zone}/{WINDOW_START_MS}"))
    assert {a.get("summary_id") for a in exits if not a["paged"]} == {expected_summary}
    assert all("summary_id" not in a for a in exits if a["paged"])

    [summary] = [a for a in out if a["kind"] == "alert_storm"]
    assert summary["alert_id"] == expected_summary and summary["paged"] is True
    assert summary["details"] == {
        "storm_kind": "geofence_exit", "alerts": 60, "paged": 20, "suppressed": 40,
        "window_start": "2026-11-30T10:15:00.000Z", "window_end": "2026-11-30T10:16:00.000Z",
        "window_s": 60.0, "pages_per_window": 20,
    }
    assert summary["message"].startswith(f"60 geofence_exit alerts in zone {zone} in the last 60 s")

    [low] = [a for a in out if a["kind"] == "low_battery"]
    assert low["vehicle_id"] == 555 and low["paged"] is True
    assert len(out) == 62

    logged = read_alert_log(config.alert_log)
    assert sorted(a["alert_id"] for a in logged) == sorted(a["alert_id"] for a in out)
    assert sum(1 for a in logged if a.get("paged") is False) == 40


def test_plan_has_the_fanout_operators_with_uids_and_no_notifier(tmp_path):
    platform = load_config("local", {"infra.run_dir": str(tmp_path)}, environ={})
    env = create_env(platform.flink)
    build(env, replace(anomaly_config(platform), outputs=frozenset({"log", "kafka"})),
          raw=env.from_collection(["{}"], type_info=Types.STRING()))
    graph = env._generate_stream_graph(clear_transformations=False)
    uids = {node.getTransformationUID() for node in graph.getStreamNodes().toArray()} - {None}
    assert {"alert-detector", "alert-storm-guard", "alert-publisher", "alerts-sink"} <= uids
    assert "alert-notifier" not in uids
    plan = env.get_execution_plan()
    assert "alert storm guard" in plan and "publish sns, log, status" in plan
