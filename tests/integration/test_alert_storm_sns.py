"""An alert storm through real Kafka and the moto server: 2,000 geofence exits in three zones
(1,500 · 495 · 5) with an unrelated low-battery alert in the middle. With 20 pages per zone and
window, SNS (read back through an SQS subscription) gets 20 + 20 + 5 exits, one summary for each
zone over the limit and the low-battery alert; fleet-alerts and the alert log get every alert,
the suppressed ones marked unpaged and pointing at their zone's summary. Expected figures are
computed here from the input, not by the guard."""

import time
import uuid
from collections import Counter
from dataclasses import replace

import pytest

from connectors.alert_log import read_alert_log
from connectors.kafka_topics import TopicSpec, admin_client, ensure_topics
from device_sim.kafka_output import produce_events
from fleet.config import load_config
from jobs.anomaly_detection import anomaly_config, build
from jobs.flink_env import create_env
from tests.integration.test_anomaly_kafka_sns import AlertReader
from tests.integration.test_moto_server import client
from udfs.telemetry_schema import format_timestamp_ms

pytestmark = [pytest.mark.integration, pytest.mark.job]

WINDOW_S = 10
PAGES = 20
# Three places outside the Frankfurt service area, each its own geohash-6 zone.
STORM = ((50.40, 9.10, 1_500), (50.30, 8.20, 495), (49.90, 8.70, 5))
SUMMARY_NAMESPACE = uuid.UUID("b1d3a7e4-52c6-4f0e-8f6b-3c9a1e7d2f40")


def event(vehicle_id, time_ms, lat, lon, percent=80):
    return {
        "vehicle_id": vehicle_id, "timestamp": format_timestamp_ms(time_ms),
        "location": {"lat": lat, "lon": lon}, "battery": {"percent": percent, "charging": False},
    }


def test_storm_of_2000_exits_pages_the_first_per_zone_one_summary_each_and_the_unrelated_alert(kafka_bootstrap, moto_endpoint, tmp_path):
    import geohash2

    suffix = uuid.uuid4().hex[:8]
    telemetry, alerts_topic, sns_topic = f"telemetry-{suffix}", f"alerts-{suffix}", f"fleet-alerts-{suffix}"
    ensure_topics(admin_client(kafka_bootstrap), [TopicSpec("t", telemetry, 2, 1, {}), TopicSpec("a", alerts_topic, 1, 1, {})])
    sns, sqs = client("sns", moto_endpoint), client("sqs", moto_endpoint)
    topic_arn = sns.create_topic(Name=sns_topic)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"ops-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})

    platform = load_config("local", {
        "infra.run_dir": str(tmp_path), "infra.kafka_port": kafka_bootstrap.rsplit(":", 1)[1],
        "infra.moto_port": moto_endpoint.rsplit(":", 1)[1],
        "flink.checkpoint_interval_ms": "500", "flink.restart_attempts": "0",
        "alerts.sns_topic": sns_topic, "alerts.storm_window_s": str(WINDOW_S), "alerts.storm_pages_per_window": str(PAGES),
    }, environ={})
    config = replace(anomaly_config(platform, start="earliest"), telemetry_topic=telemetry, alerts_topic=alerts_topic, group_id=f"alerts-{suffix}")

    # Every exit at the same event time, in the middle of the last whole window.
    window_ms = WINDOW_S * 1000
    window_start = (int(time.time() * 1000) // window_ms - 1) * window_ms
    storm_time = window_start + window_ms // 2
    events, zones, vehicle_id = [], {}, 30_000
    for lat, lon, count in STORM:
        zones[geohash2.encode(lat, lon, precision=6)] = count
        for _ in range(count):
            events.append(event(vehicle_id, storm_time, lat, lon))
            vehicle_id += 1
    assert len(zones) == 3 and len(events) == 2_000
    unrelated = event(777, int(time.time() * 1000), 50.1105, 8.6821, percent=7)
    events.insert(1_000, unrelated)

    reader = AlertReader(kafka_bootstrap, alerts_topic, sqs, queue_url)
    over = {zone: count for zone, count in zones.items() if count > PAGES}
    expected_pages = sum(min(count, PAGES) for count in zones.values()) + len(over) + 1
    expected_records = 2_000 + len(over) + 1
    try:
        env = create_env(platform.flink)
        build(env, config)
        job = env.execute_async("anomaly detection (storm)")
        try:
            produce_events(kafka_bootstrap, telemetry, events)
            reader.wait_for(
                lambda r: len({a["alert_id"] for a in r.kafka}) >= expected_records and len({a["alert_id"] for a in r.sns}) >= expected_pages,
                timeout_s=90,
            )
            reader.settle(2)
        finally:
            job.cancel().result()
    finally:
        reader.close()

    records = {a["alert_id"]: a for a in reader.kafka}  # at least once: a repeat shares its id
    pages = {a["alert_id"]: a for a in reader.sns}
    assert len(records) == expected_records and len(pages) == expected_pages

    exits = [a for a in records.values() if a["kind"] == "geofence_exit"]
    summaries = {a["zone_id"]: a for a in records.values() if a["kind"] == "alert_storm"}
    assert Counter(a["zone_id"] for a in exits) == Counter(zones)
    assert set(summaries) == set(over)
    for zone, count in zones.items():
        in_zone = [a for a in exits if a["zone_id"] == zone]
        paged = [a for a in in_zone if a["paged"]]
        assert len(paged) == min(count, PAGES)
        assert {a["alert_id"] for a in paged} == {a["alert_id"] for a in pages.values() if a["kind"] == "geofence_exit" and a["zone_id"] == zone}
        if zone in over:
            expected_id = str(uuid.uuid5(SUMMARY_NAMESPACE, f"geofence_exit/{zone}/{window_start}"))
            assert {a["summary_id"] for a in in_zone if not a["paged"]} == {expected_id}
            assert summaries[zone]["alert_id"] == expected_id and expected_id in pages
            assert (summaries[zone]["details"]["alerts"], summaries[zone]["details"]["suppressed"]) == (count, count - PAGES)

    [low] = [a for a in pages.values() if a["kind"] == "low_battery"]
    assert low["vehicle_id"] == 777 and low["paged"] is True and records[low["alert_id"]]["paged"] is True
    assert not any(a["paged"] is False for a in pages.values())

    logged = {a["alert_id"]: a for a in read_alert_log(config.alert_log)}
    assert logged.keys() == records.keys()
    assert sum(1 for a in logged.values() if not a["paged"]) == 2_000 - sum(min(c, PAGES) for c in zones.values())
