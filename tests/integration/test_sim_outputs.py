"""The simulator's outputs against real servers: Kafka-direct and MQTT, every item counted end to end."""

import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt
import pytest

from connectors.kafka_clients import make_consumer
from device_sim.fleet_model import FleetSpec
from device_sim.kafka_output import produce_batches, produce_events
from device_sim.mqtt_output import publish_events
from device_sim.rate_fleet import RateModeFleet
from device_sim.report_rates import FIXED_1HZ
from device_sim.scenario import Scenario, ScenarioKnobs
from infra.mosquitto import MosquittoBroker
from infra.process import free_port
from udfs.telemetry_schema import Rejection, parse

pytestmark = pytest.mark.integration

START_AGO_MS = 600_000
KNOBS = ScenarioKnobs(
    duplicates=15, late=5, late_resends=5, late_after_s=5, out_of_order=6, malformed=6, schema_invalid=8,
    offline_vehicles=2, offline_s=8, geofence_exits=2, low_batteries=2, seed=2,
)


def scenario(vehicles=60, duration_s=20, knobs=KNOBS):
    start = (int(time.time()) * 1000) - START_AGO_MS  # recent: inside the schema's time window
    return Scenario(FleetSpec(vehicles=vehicles, seed=4, start_ms=start), knobs, duration_s=duration_s)


def read_all(bootstrap, topic, count, timeout_s=60):
    consumer = make_consumer(bootstrap, f"read-{topic}")
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            for message in consumer.consume(1_000, timeout=1):
                if message.error() is None:
                    records.append((message.key(), message.value()))
        # anything beyond `count` would be a bug: give it a moment to show up
        for message in consumer.consume(1_000, timeout=2):
            if message.error() is None:
                records.append((message.key(), message.value()))
    finally:
        consumer.close()
    return records


def downstream_counts(payloads):
    outcomes = [parse(p) for p in payloads]
    good = [o for o in outcomes if not isinstance(o, Rejection)]
    unique = {(e["vehicle_id"], e["timestamp"]) for e in good}
    return {
        "unique_valid": len(unique),
        "duplicates": len(good) - len(unique),
        "invalid_by_reason": dict(Counter(o.reason for o in outcomes if isinstance(o, Rejection))),
    }


def test_kafka_output_delivers_every_item_once_keyed_by_vehicle(kafka_bootstrap, fresh_topic):
    topic = fresh_topic(4)
    s = scenario()
    sent = list(s.stream_encoded())
    report = produce_events(kafka_bootstrap, topic, sent, rate_per_s=5_000)
    assert (report.sent, report.acknowledged, report.failed) == (len(sent), len(sent), 0)
    assert report.sent == s.report.items and s.report.shortfall() == {}
    assert 3_500 < report.send_rate < 6_500  # open loop at the target rate

    records = read_all(kafka_bootstrap, topic, len(sent))
    assert Counter(records) == Counter(sent)  # every item exactly once, with its key
    expected = s.report.expected()
    counts = downstream_counts([value for _, value in records])
    assert counts == {k: expected[k] for k in ("unique_valid", "duplicates", "invalid_by_reason")}


def test_kafka_output_takes_dicts_and_raw_bytes(kafka_bootstrap, fresh_topic):
    topic = fresh_topic(2)
    s = scenario(vehicles=20, duration_s=10, knobs=ScenarioKnobs(malformed=4, schema_invalid=4, duplicates=3))
    items = list(s.stream())
    report = produce_events(kafka_bootstrap, topic, items)
    assert (report.acknowledged, report.failed) == (len(items), 0)
    records = read_all(kafka_bootstrap, topic, len(items))
    assert len(records) == len(items)
    raw_keys = {r.vehicle_id for r in items if isinstance(r, bytes)}
    assert raw_keys and {int(k) for k, v in records if isinstance(parse(v), Rejection) and v[:1] != b"{"} <= raw_keys
    assert downstream_counts([v for _, v in records])["invalid_by_reason"] == s.report.expected()["invalid_by_reason"]


def test_kafka_batches_in_real_time(kafka_bootstrap, fresh_topic):
    topic = fresh_topic(4)
    fleet = RateModeFleet(FleetSpec(vehicles=2_000, seed=9), FIXED_1HZ)
    lines = []
    report = produce_batches(
        kafka_bootstrap, topic, fleet.encoded_batches(fleet.start_ms + 3_000, keys_only=True),
        report_every_s=1, out=lines.append,
    )
    assert (report.sent, report.acknowledged, report.failed) == (6_000, 6_000, 0)
    assert 2.5 < report.send_seconds < 4.0  # 3 s of event time, paced by the wall clock
    assert 1_500 < report.send_rate < 2_500
    assert lines and "acknowledged 6,000" in lines[-1]
    assert len(read_all(kafka_bootstrap, topic, 6_000)) == 6_000


@pytest.fixture
def mosquitto(tmp_path):
    broker = MosquittoBroker(tmp_path, "127.0.0.1", free_port())
    broker.up()
    try:
        yield broker.host, broker.port
    finally:
        broker.down()


class Subscriber:
    def __init__(self, host, port):
        self.received = []
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sim-subscriber", protocol=mqtt.MQTTv311)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        self.client.subscribe("telemetry/#", qos=1)
        assert subscribed.wait(10)

    def _on_message(self, _client, _userdata, message):
        with self.lock:
            self.received.append((message.topic, message.payload))

    def wait_for(self, count, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    break
            time.sleep(0.05)
        time.sleep(0.5)  # any extra delivery would show up now
        with self.lock:
            return list(self.received)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


def test_mqtt_output_publishes_qos1_per_vehicle_topic_everything_received_once(mosquitto):
    host, port = mosquitto
    s = scenario(vehicles=40, duration_s=15)
    sent = list(s.stream_encoded())
    subscriber = Subscriber(host, port)
    try:
        report = publish_events(host, port, sent, rate_per_s=2_000, connections=3)
        received = subscriber.wait_for(len(sent))
    finally:
        subscriber.close()
    assert (report.sent, report.acknowledged, report.failed) == (len(sent), len(sent), 0)
    assert report.connections == 3
    assert 1_500 < report.send_rate < 2_500
    assert Counter(received) == Counter((f"telemetry/{key.decode()}", payload) for key, payload in sent)
    expected = s.report.expected()
    assert downstream_counts([p for _, p in received]) == {k: expected[k] for k in ("unique_valid", "duplicates", "invalid_by_reason")}


def test_mqtt_per_vehicle_credentials_one_connection_each(mosquitto):
    host, port = mosquitto
    s = scenario(vehicles=8, duration_s=12, knobs=ScenarioKnobs(malformed=2, duplicates=2))  # > 10 s: all report
    items = list(s.stream())
    logins = []

    def credentials(vehicle_id):
        logins.append(vehicle_id)
        return f"vehicle-{vehicle_id}", f"secret-{vehicle_id}"

    subscriber = Subscriber(host, port)
    try:
        report = publish_events(host, port, items, credentials=credentials, protocol="5")
        received = subscriber.wait_for(len(items))
    finally:
        subscriber.close()
    assert (report.acknowledged, report.failed) == (len(items), 0)
    assert sorted(logins) == sorted(s.fleet.vehicle_ids) and report.connections == 8
    assert len(received) == len(items)


def test_mqtt_failures_are_counted_not_lost():
    dead_port = free_port()  # nothing listens here
    events = list(RateModeFleet(FleetSpec(vehicles=5, seed=1)).stream(3))
    report = publish_events("127.0.0.1", dead_port, events, connections=2)
    assert (report.sent, report.acknowledged, report.failed) == (len(events), 0, len(events))
    assert "cannot connect" in report.first_error
