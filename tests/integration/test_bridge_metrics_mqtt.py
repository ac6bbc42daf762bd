"""A real bridge (Mosquitto → Kafka) serving /metrics and /healthz: the counters equal the messages
the test published, by outcome; /healthz is 200 while it bridges, 503 with the reason when Kafka
is unreachable (held messages, then failed writes) and after the bridge disconnects."""

from __future__ import annotations

import json
import time
import uuid

import orjson
import paho.mqtt.client as mqtt
import pytest

from connectors.kafka_clients import end_offsets
from infra.process import free_port
from ingest.bridge import MqttKafkaBridge
from ingest.metrics import (
    KAFKA_DELIVERY_FAILING,
    KAFKA_WRITES_STALLED,
    MQTT_DISCONNECTED,
    serve_bridge_metrics,
)
from ingest.rules import IOT_RULE, VEHICLE_ID_MISMATCH
from ingest.settings import BridgeConfig
from tests.metrics_text import get, poll, scrape, value
from udfs.telemetry_schema import format_timestamp_ms

pytestmark = pytest.mark.integration


def event(vehicle_id: int, seq: int, **changes) -> dict:
    body = {
        "vehicle_id": vehicle_id,
        "timestamp": format_timestamp_ms(int(time.time() * 1000) - 60_000 + seq),
        "location": {"lat": 50.1105, "lon": 8.6821, "accuracy": 5.2},
        "battery": {"percent": 68, "charging": False},
        "motion": {"speed_kmh": 18.5, "heading": 245},
    }
    body.update(changes)
    return body


def publish_all(host: str, port: int, messages: list[tuple[str, bytes]]) -> None:
    """QoS 1, each PUBACKed by the broker (so it is queued for the bridge's session)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"metrics-test-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5)
    client.connect(host, port)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def healthz(port: int) -> tuple[int, dict]:
    status, _, body = get(f"http://127.0.0.1:{port}/healthz")
    return status, json.loads(body)


def start_bridge(mqtt_address, bootstrap: str, telemetry: str, dlq: str, **options) -> MqttKafkaBridge:
    host, port = mqtt_address
    bridge = MqttKafkaBridge(BridgeConfig(
        bootstrap_servers=bootstrap, telemetry_topic=telemetry, dlq_topic=dlq, mqtt_host=host, mqtt_port=port,
        group=f"metrics-{uuid.uuid4().hex[:8]}", client_id=f"metrics-bridge-{uuid.uuid4().hex[:8]}", **options,
    ))
    bridge.start()
    assert bridge.wait_connected(15)
    return bridge


def test_counters_equal_what_was_published_and_healthz_follows_the_connection(mqtt_address, kafka_bootstrap, fresh_topic):
    telemetry, dlq = fresh_topic(2), fresh_topic(1)
    bridge = start_bridge(mqtt_address, kafka_bootstrap, telemetry, dlq)
    server = serve_bridge_metrics(bridge, "127.0.0.1", free_port())
    try:
        valid = [(f"telemetry/{v}", orjson.dumps(event(v, i))) for v in (101, 102, 103) for i in range(4)]
        no_battery = [(f"telemetry/{v}", orjson.dumps(event(v, 50, battery={"percent": -1, "charging": False}))) for v in (101, 102)]
        other_vehicle = [("telemetry/104", orjson.dumps(event(105, 60)))]
        publish_all(*mqtt_address, valid + no_battery + other_vehicle)
        total = len(valid) + len(no_battery) + len(other_vehicle)

        samples = poll(lambda: scrape(server.port), lambda s: value(s, "bridge_acked_total") == total,
                       timeout_s=30, what=f"{total} messages acknowledged")
        assert value(samples, "bridge_received_total") == total
        assert value(samples, "bridge_forwarded_total") == len(valid) == sum(end_offsets(kafka_bootstrap, telemetry).values())
        assert value(samples, "bridge_rejected_total", reason=IOT_RULE) == len(no_battery)
        assert value(samples, "bridge_rejected_total", reason=VEHICLE_ID_MISMATCH) == len(other_vehicle)
        assert len(no_battery) + len(other_vehicle) == sum(end_offsets(kafka_bootstrap, dlq).values())
        assert value(samples, "bridge_in_flight") == 0
        assert value(samples, "bridge_delivery_failed_total") == 0
        assert value(samples, "bridge_connected") == 1 and value(samples, "bridge_healthy") == 1
        status, health = healthz(server.port)
        assert status == 200 and health["ok"] and health["forwarded"] == len(valid) and health["rejected"] == 3

        bridge.stop()
        status, health = healthz(server.port)
        assert status == 503 and health["reason"] == MQTT_DISCONNECTED
    finally:
        server.close()
        bridge.stop()


def test_healthz_says_kafka_is_stalled_then_failing(mqtt_address, kafka_bootstrap, fresh_topic):
    """Kafka unreachable (nothing listens on its port): the message is held, then its write fails."""
    telemetry, dlq = fresh_topic(1), fresh_topic(1)
    dead_kafka = f"127.0.0.1:{free_port()}"
    bridge = start_bridge(mqtt_address, dead_kafka, telemetry, dlq, delivery_timeout_ms=4_000)
    server = serve_bridge_metrics(bridge, "127.0.0.1", free_port(), stall_s=1.0, sample_every_s=0.1)
    try:
        assert healthz(server.port)[0] == 200  # connected, idle
        publish_all(*mqtt_address, [("telemetry/201", orjson.dumps(event(201, 1)))])
        status, health = poll(lambda: healthz(server.port), lambda r: r[1].get("reason") == KAFKA_WRITES_STALLED,
                              timeout_s=10, what="healthz: kafka_writes_stalled", interval_s=0.1)
        assert status == 503 and health["in_flight"] == 1 and health["forwarded"] == 0
        status, health = poll(lambda: healthz(server.port), lambda r: r[1].get("reason") == KAFKA_DELIVERY_FAILING,
                              timeout_s=20, what="healthz: kafka_delivery_failing", interval_s=0.2)
        assert status == 503 and health["delivery_failed"] >= 1
        samples = scrape(server.port)
        assert value(samples, "bridge_delivery_failed_total") >= 1 and value(samples, "bridge_forwarded_total") == 0
        assert value(samples, "bridge_acked_total") == 0 and value(samples, "bridge_healthy") == 0
    finally:
        server.close()
        bridge.stop(timeout_s=5)
