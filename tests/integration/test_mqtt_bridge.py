"""The MQTT→Kafka bridge against a secured Mosquitto (per-vehicle users and ACL) and real Kafka.

Acceptance (issue D items 3 and 4):
(i)   vehicles' valid messages reach the telemetry topic keyed by vehicle id, each once, in order;
(ii)  a vehicle publishing as another is refused by the broker (PUBACK "Not authorized") and
      nothing of it reaches the bridge;
(iii) a payload whose vehicle_id differs from its topic, and rule/schema rejects, land in the DLQ
      with their reasons;
(iv)  with Kafka stopped, messages stay unacknowledged; once it is back every one arrives.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest

from connectors.kafka_clients import make_consumer
from infra.mosquitto import MosquittoBroker
from infra.mqtt_security import (
    BRIDGE_USERNAME,
    bridge_password,
    vehicle_password,
    write_security,
)
from infra.process import free_port
from ingest.bridge import MqttKafkaBridge
from ingest.rules import IOT_RULE, VEHICLE_ID_MISMATCH, check_message, iot_rule
from ingest.settings import BridgeConfig
from udfs.dlq import original_payload
from udfs.telemetry_schema import Rejection, ValidationPolicy, format_timestamp_ms

pytestmark = pytest.mark.integration

SECRET = "test-fleet-secret-" + "x" * 16
VEHICLES = range(1, 21)
_client_numbers = itertools.count()


@pytest.fixture(scope="module")
def secured_mqtt(tmp_path_factory: pytest.TempPathFactory):
    run_dir = tmp_path_factory.mktemp("secured-mqtt")
    security = write_security(run_dir / "mqtt-security", SECRET, VEHICLES)
    broker = MosquittoBroker(run_dir, "127.0.0.1", free_port(), security)
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


# --- helpers -----------------------------------------------------------------------------------


def await_condition(check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.05) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise AssertionError(f"not reached in {timeout_s}s: {what}")


def event(vehicle_id: int, seq: int, **changes) -> dict:
    now_ms = int(time.time() * 1000)
    body = {
        "vehicle_id": vehicle_id,
        "timestamp": format_timestamp_ms(now_ms - 60_000 + seq),
        "location": {"lat": 50.1105, "lon": 8.6821, "accuracy": 5.2},
        "battery": {"percent": 68, "charging": False},
        "motion": {"speed_kmh": 18.5, "heading": 245},
        "seq": seq,  # unknown fields pass through: lets the test check order
    }
    body.update(changes)
    return body


class Vehicle:
    """One vehicle's MQTT client, logged in as itself."""

    def __init__(self, broker: MosquittoBroker, vehicle_id: int, password: str | None = None, username: str | None = None):
        self.vehicle_id = vehicle_id
        self.connack: list = []
        self.puback: dict[int, object] = {}
        self.suback: list = []
        self.messages: list = []
        self._connected = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"vehicle-{vehicle_id}-{next(_client_numbers)}", protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(username or str(vehicle_id), password if password is not None else vehicle_password(SECRET, vehicle_id))
        self.client.max_inflight_messages_set(200)
        self.client.on_connect = lambda _c, _u, _f, rc, _p: (self.connack.append(rc), self._connected.set())
        self.client.on_publish = lambda _c, _u, mid, rc, _p: self.puback.__setitem__(mid, rc)
        self.client.on_subscribe = lambda _c, _u, _mid, rcs, _p: self.suback.extend(rcs)
        self.client.on_message = lambda _c, _u, message: self.messages.append(message.topic)
        self.client.connect(broker.host, broker.port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(10), "no CONNACK"

    @property
    def accepted(self) -> bool:
        return not self.connack[0].is_failure

    def publish(self, payload: bytes | dict, topic: str | None = None) -> int:
        raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        info = self.client.publish(topic or f"telemetry/{self.vehicle_id}", raw, qos=1)
        return info.mid

    def wait_acked(self, count: int, timeout_s: float = 15.0) -> None:
        await_condition(lambda: len(self.puback) >= count, timeout_s, f"vehicle {self.vehicle_id}: {count} PUBACKs")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0, settle_s: float = 1.0) -> list:
    """Every record of `topic` once `expected` arrived (then `settle_s` more, to catch extras)."""
    consumer = make_consumer(bootstrap, f"reader-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    records = []
    deadline = time.monotonic() + timeout_s
    settle_until = None
    try:
        while time.monotonic() < deadline:
            for message in consumer.consume(500, timeout=0.2):
                if message.error() is None:
                    records.append(message)
            if len(records) >= expected and settle_until is None:
                settle_until = time.monotonic() + settle_s
            if settle_until is not None and time.monotonic() >= settle_until:
                break
    finally:
        consumer.close()
    return records


def make_bridge(bootstrap: str, broker: MosquittoBroker, telemetry: str, dlq: str, **overrides) -> MqttKafkaBridge:
    config = BridgeConfig(
        bootstrap_servers=bootstrap, telemetry_topic=telemetry, dlq_topic=dlq,
        mqtt_host=broker.host, mqtt_port=broker.port,
        username=BRIDGE_USERNAME, password=bridge_password(SECRET),
        group=overrides.pop("group", f"g{uuid.uuid4().hex[:8]}"),
        client_id=overrides.pop("client_id", f"bridge-{uuid.uuid4().hex[:8]}"),
        **overrides,
    )
    bridge = MqttKafkaBridge(config)
    bridge.start()
    assert bridge.wait_connected(15), f"bridge did not connect: {bridge.stats()}"
    return bridge


# --- pure checks (the rule and the topic match) ----------------------------------------------------


def test_check_message_applies_rule_schema_and_topic():
    ok = orjson.dumps(event(7, 1))
    assert isinstance(check_message("telemetry/7", ok), dict)
    assert check_message("telemetry/8", ok).reason == VEHICLE_ID_MISMATCH
    assert check_message("telemetry/007", ok).reason == VEHICLE_ID_MISMATCH
    assert check_message("telemetry/7", b"{not json").reason == "bad_json"
    negative = check_message("telemetry/7", orjson.dumps(event(7, 1, battery={"percent": -5})))
    assert (negative.reason, negative.field) == (IOT_RULE, "battery.percent")
    no_lat = check_message("telemetry/7", orjson.dumps(event(7, 1, location={"lat": None, "lon": 8.6})))
    assert (no_lat.reason, no_lat.field) == (IOT_RULE, "location.lat")
    assert check_message("telemetry/7", orjson.dumps(event(7, 1, battery={"percent": 150}))).reason == "out_of_range"
    assert iot_rule({"battery": {"percent": "50"}, "location": {"lat": 1}}).reason == IOT_RULE
    assert iot_rule({"battery": {"percent": 0}, "location": {"lat": 0}}) is None
    assert isinstance(check_message("telemetry/7", orjson.dumps(event(7, 1, timestamp="yesterday"))), Rejection)


def test_check_message_enforces_the_schemas_size_limits():
    big = orjson.dumps(event(7, 1, notes="n" * 140_000))
    assert check_message("telemetry/7", big) == Rejection(
        "payload_too_large", None, f"payload is {len(big):,} bytes; the limit is 131,072"
    )
    deep = orjson.dumps(event(7, 1, extra={"a": {"b": {"c": {"d": {"e": {"f": {"g": {}}}}}}}}))
    assert check_message("telemetry/7", deep) == Rejection("over_limit", "extra.a.b.c.d.e.f.g", "nested 9 levels deep; the limit is 8")
    tight = ValidationPolicy(max_payload_bytes=100)
    assert check_message("telemetry/7", orjson.dumps(event(7, 1)), tight).reason == "payload_too_large"


# --- (i) -------------------------------------------------------------------------------------------


def test_valid_messages_arrive_keyed_once_and_in_order(kafka_bootstrap, fresh_topic, secured_mqtt):
    telemetry, dlq = fresh_topic(4), fresh_topic(1)
    bridge = make_bridge(kafka_bootstrap, secured_mqtt, telemetry, dlq)
    vehicles = [Vehicle(secured_mqtt, vid) for vid in (1, 2, 3, 4)]
    per_vehicle = 50
    try:
        for seq in range(per_vehicle):
            for vehicle in vehicles:
                vehicle.publish(event(vehicle.vehicle_id, seq))
        for vehicle in vehicles:
            vehicle.wait_acked(per_vehicle)
        total = per_vehicle * len(vehicles)
        await_condition(lambda: bridge.stats()["acked"] >= total, 30, "bridge acked everything")
        records = read_topic(kafka_bootstrap, telemetry, total)
    finally:
        for vehicle in vehicles:
            vehicle.close()
        stats = bridge.stop()

    assert len(records) == total, f"{len(records)} records for {total} messages"
    by_vehicle: dict[int, list[int]] = {}
    partition_of: dict[int, set[int]] = {}
    for record in records:
        body = orjson.loads(record.value())
        assert record.key() == str(body["vehicle_id"]).encode()
        by_vehicle.setdefault(body["vehicle_id"], []).append(body["seq"])
        partition_of.setdefault(body["vehicle_id"], set()).add(record.partition())
    assert {vid: seqs for vid, seqs in by_vehicle.items()} == {v.vehicle_id: list(range(per_vehicle)) for v in vehicles}
    assert all(len(parts) == 1 for parts in partition_of.values())
    assert read_topic(kafka_bootstrap, dlq, 0, timeout_s=1, settle_s=0.5) == []
    assert stats["forwarded"] == stats["acked"] == stats["received"] == total
    assert stats["in_flight"] == 0 and stats["rejected_total"] == 0


def test_two_bridges_in_a_group_split_the_load(kafka_bootstrap, fresh_topic, secured_mqtt):
    telemetry, dlq = fresh_topic(4), fresh_topic(1)
    group = f"g{uuid.uuid4().hex[:8]}"
    bridges = [make_bridge(kafka_bootstrap, secured_mqtt, telemetry, dlq, group=group) for _ in range(2)]
    vehicles = [Vehicle(secured_mqtt, vid) for vid in (5, 6)]
    total = 0
    try:
        for seq in range(60):
            for vehicle in vehicles:
                vehicle.publish(event(vehicle.vehicle_id, seq))
                total += 1
        for vehicle in vehicles:
            vehicle.wait_acked(60)
        await_condition(lambda: sum(b.stats()["acked"] for b in bridges) >= total, 30, "both bridges acked")
        records = read_topic(kafka_bootstrap, telemetry, total)
    finally:
        for vehicle in vehicles:
            vehicle.close()
        stats = [b.stop() for b in bridges]
    assert sorted((orjson.loads(r.value())["vehicle_id"], orjson.loads(r.value())["seq"]) for r in records) == sorted(
        (v.vehicle_id, s) for v in vehicles for s in range(60)
    )
    assert all(s["forwarded"] > 0 for s in stats), stats  # each bridge took a share
    assert sum(s["forwarded"] for s in stats) == total


# --- (ii) ------------------------------------------------------------------------------------------


def test_broker_refuses_a_vehicle_publishing_as_another(kafka_bootstrap, fresh_topic, secured_mqtt):
    telemetry, dlq = fresh_topic(1), fresh_topic(1)
    bridge = make_bridge(kafka_bootstrap, secured_mqtt, telemetry, dlq)
    spy = Vehicle(secured_mqtt, 9)  # a vehicle trying to read the others' telemetry
    vehicle_1 = Vehicle(secured_mqtt, 1)
    try:
        # Mosquitto 2.0 grants the SUBACK but delivers nothing the ACL does not let the user read.
        spy.client.subscribe("telemetry/#", qos=1)
        await_condition(lambda: spy.suback, 10, "SUBACK")
        spoof_mid = vehicle_1.publish(event(2, 0), topic="telemetry/2")
        vehicle_1.wait_acked(1)
        assert vehicle_1.puback[spoof_mid].value == 0x87 and vehicle_1.puback[spoof_mid].is_failure  # Not authorized
        # The broker keeps a client's order: once vehicle 1's next (legitimate) message reached
        # Kafka, the refused one would have reached the bridge before it.
        marker_mid = vehicle_1.publish(event(1, 1))
        vehicle_1.wait_acked(2)
        assert not vehicle_1.puback[marker_mid].is_failure
        await_condition(lambda: bridge.stats()["acked"] >= 1, 15, "marker bridged")
        records = read_topic(kafka_bootstrap, telemetry, 1)
    finally:
        vehicle_1.close()
        spy.close()
        stats = bridge.stop()
    assert [(r.key(), orjson.loads(r.value())["seq"]) for r in records] == [(b"1", 1)]
    assert stats["received"] == 1  # the spoofed message never left the broker
    assert spy.messages == []  # and a vehicle reads nothing, not even the legitimate message
    assert read_topic(kafka_bootstrap, dlq, 0, timeout_s=1, settle_s=0.5) == []


def test_broker_refuses_bad_credentials(secured_mqtt):
    wrong = Vehicle(secured_mqtt, 3, password="not-the-password")
    other = Vehicle(secured_mqtt, 3, password=vehicle_password(SECRET, 4))  # vehicle 4's password as vehicle 3
    unknown = Vehicle(secured_mqtt, 999, password=vehicle_password(SECRET, 999))  # not in the fleet file
    try:
        assert not wrong.accepted and not other.accepted and not unknown.accepted
    finally:
        for client in (wrong, other, unknown):
            client.client.loop_stop()


# --- (iii) -----------------------------------------------------------------------------------------


def test_mismatched_and_invalid_payloads_go_to_the_dlq(kafka_bootstrap, fresh_topic, secured_mqtt):
    telemetry, dlq = fresh_topic(2), fresh_topic(1)
    bridge = make_bridge(kafka_bootstrap, secured_mqtt, telemetry, dlq)
    vehicle = Vehicle(secured_mqtt, 3)
    cases = [
        (orjson.dumps(event(4, 0)), VEHICLE_ID_MISMATCH, "vehicle_id"),  # its own topic, another id
        (orjson.dumps(event(3, 1, battery={"percent": -1})), IOT_RULE, "battery.percent"),
        (orjson.dumps(event(3, 2, location={"lat": None, "lon": 8.68})), IOT_RULE, "location.lat"),
        (b"\xff\xfe not json", "bad_json", None),
        (orjson.dumps(event(3, 3, battery={"percent": 101})), "out_of_range", "battery.percent"),
        (orjson.dumps(event(3, 4, timestamp="2025-13-45T99:00:00Z")), "bad_timestamp", "timestamp"),
        (orjson.dumps({k: v for k, v in event(3, 5).items() if k != "vehicle_id"}), "missing_field", "vehicle_id"),
    ]
    try:
        for raw, _, _ in cases:
            vehicle.publish(raw)
        vehicle.publish(event(3, 6))  # and a valid one
        vehicle.wait_acked(len(cases) + 1)
        await_condition(lambda: bridge.stats()["acked"] >= len(cases) + 1, 15, "bridge acked all")
        dlq_records = read_topic(kafka_bootstrap, dlq, len(cases))
        good = read_topic(kafka_bootstrap, telemetry, 1)
    finally:
        vehicle.close()
        stats = bridge.stop()

    assert [orjson.loads(r.value())["seq"] for r in good] == [6]
    records = [orjson.loads(r.value()) for r in dlq_records]
    assert [(r["reason"], r["field"]) for r in records] == [(reason, field) for _, reason, field in cases]
    for (raw, _, _), record, message in zip(cases, records, dlq_records, strict=True):
        assert record["stage"] == "mqtt-bridge"
        assert record["source"] == {"mqtt_topic": "telemetry/3"}
        assert message.key() == b"3"
        assert original_payload(record) == raw
    assert stats["rejected"] == {VEHICLE_ID_MISMATCH: 1, IOT_RULE: 2, "bad_json": 1, "out_of_range": 1, "bad_timestamp": 1, "missing_field": 1}
    assert stats["forwarded"] == 1 and stats["acked"] == len(cases) + 1


def test_oversized_and_deeply_nested_payloads_go_to_the_dlq_and_the_bridge_goes_on(kafka_bootstrap, fresh_topic, secured_mqtt):
    telemetry, dlq = fresh_topic(1), fresh_topic(1)
    bridge = make_bridge(kafka_bootstrap, secured_mqtt, telemetry, dlq)
    vehicle = Vehicle(secured_mqtt, 3)
    huge = orjson.dumps(event(3, 0, notes="n" * 2_000_000))  # over the 1 MB a Kafka message may have
    deep = orjson.dumps(event(3, 1, extra=[[[[[[[[1]]]]]]]]))
    try:
        vehicle.publish(huge)
        vehicle.publish(deep)
        vehicle.publish(event(3, 2))
        vehicle.wait_acked(3)
        await_condition(lambda: bridge.stats()["acked"] >= 3, 15, "bridge acked all")
        records = [orjson.loads(r.value()) for r in read_topic(kafka_bootstrap, dlq, 2)]
        good = read_topic(kafka_bootstrap, telemetry, 1)
    finally:
        vehicle.close()
        stats = bridge.stop()

    assert [orjson.loads(r.value())["seq"] for r in good] == [2]
    assert [(r["reason"], r["field"]) for r in records] == [("payload_too_large", None), ("over_limit", "extra[0][0][0][0][0][0][0]")]
    assert records[0]["payload_truncated"] is True and records[0]["payload_bytes"] == len(huge)
    assert original_payload(records[1]) == deep
    assert stats["rejected"] == {"payload_too_large": 1, "over_limit": 1} and stats["forwarded"] == 1


# --- (iv) ------------------------------------------------------------------------------------------


@pytest.fixture
def private_kafka(tmp_path: Path):
    """A Kafka broker of this test's own, which it may stop and start again."""
    from connectors import jars
    from infra.kafka_broker import KafkaBroker

    jars.fetch()
    broker = KafkaBroker(tmp_path / "kafka-run", "127.0.0.1", free_port(), free_port(), heap="512m")
    broker.up()
    try:
        yield broker
    finally:
        broker.down()


def test_kafka_outage_loses_nothing(private_kafka, secured_mqtt):
    from connectors.kafka_topics import TopicSpec, admin_client, ensure_topics

    bootstrap = private_kafka.address
    telemetry, dlq = "outage-telemetry", "outage-dlq"
    ensure_topics(admin_client(bootstrap), [
        TopicSpec("telemetry", telemetry, 2, 1, {"compression.type": "lz4"}),
        TopicSpec("dlq", dlq, 1, 1, {}),
    ])
    # A short delivery timeout so that the outage also exercises the failure path: writes fail,
    # are never acked, and the broker resends them after the bridge's resync; messages arriving
    # after a failure are deferred (left unacked) so that nothing overtakes the failed ones.
    bridge = make_bridge(bootstrap, secured_mqtt, telemetry, dlq, delivery_timeout_ms=2_000, receive_maximum=400,
                         max_in_flight=400, resync_min_interval_s=0.5)
    vehicles = [Vehicle(secured_mqtt, vid) for vid in (11, 12, 13, 14)]
    sent: list[tuple[int, int]] = []
    try:
        for seq in range(10):
            for vehicle in vehicles:
                vehicle.publish(event(vehicle.vehicle_id, seq))
                sent.append((vehicle.vehicle_id, seq))
        await_condition(lambda: bridge.stats()["acked"] == len(sent), 20, "first batch bridged")

        private_kafka.down()
        before = bridge.stats()
        for seq in range(10, 50):  # a trickle for 4 s, longer than the delivery timeout
            for vehicle in vehicles:
                vehicle.publish(event(vehicle.vehicle_id, seq))
                sent.append((vehicle.vehicle_id, seq))
            time.sleep(0.1)
        for vehicle in vehicles:
            vehicle.wait_acked(50)  # Mosquitto has them all
        await_condition(lambda: bridge.stats()["resyncs"] > 0, 20, "a resync after failed writes")
        during = bridge.stats()
        # Nothing is acknowledged while Kafka is away.
        assert during["acked"] == before["acked"] == 40 and during["forwarded"] == before["forwarded"]
        assert during["delivery_failed"] > 0 and during["deferred"] > 0

        private_kafka.up()
        await_condition(lambda: bridge.stats()["acked"] >= len(sent), 60, "everything bridged after the outage")
        assert bridge.stats()["acked"] == len(sent)
        records = read_topic(bootstrap, telemetry, len(sent), timeout_s=30)
    finally:
        for vehicle in vehicles:
            vehicle.close()
        stats = bridge.stop()

    got = [(orjson.loads(r.value())["vehicle_id"], orjson.loads(r.value())["seq"]) for r in records]
    assert set(got) == set(sent), f"missing {sorted(set(sent) - set(got))[:10]}"  # none lost
    duplicates = len(got) - len(set(got))
    print(f"outage: {len(sent)} sent, {len(got)} records, {duplicates} duplicates; bridge {stats}")
    assert stats["in_flight"] == 0
    assert stats["delivery_failed"] > 0 and stats["resyncs"] > 0
    # Redelivered messages are not overtaken: each vehicle's first copies are in order.
    first_seen: dict[int, list[int]] = {}
    for vehicle_id, seq in dict.fromkeys(got):
        first_seen.setdefault(vehicle_id, []).append(seq)
    assert all(seqs == sorted(seqs) for seqs in first_seen.values()), first_seen


def test_bridge_holds_at_most_max_in_flight_and_a_restart_loses_nothing(kafka_bootstrap, fresh_topic, secured_mqtt):
    """Kafka unreachable from the start: the bridge reads only up to its cap and acks nothing; the
    broker keeps the rest. A new bridge process with the same client id then delivers them all."""
    telemetry, dlq = fresh_topic(2), fresh_topic(1)
    client_id, group = f"bridge-{uuid.uuid4().hex[:8]}", f"g{uuid.uuid4().hex[:8]}"
    unreachable = f"127.0.0.1:{free_port()}"
    stuck = make_bridge(unreachable, secured_mqtt, telemetry, dlq, client_id=client_id, group=group,
                        receive_maximum=10, max_in_flight=10)
    vehicle = Vehicle(secured_mqtt, 15)
    peak = 0
    try:
        for seq in range(60):
            vehicle.publish(event(15, seq))
        vehicle.wait_acked(60)
        await_condition(lambda: stuck.stats()["in_flight"] == 10, 10, "the bridge filled its cap")
        for _ in range(20):  # and stays there
            peak = max(peak, stuck.stats()["in_flight"])
            time.sleep(0.05)
        stuck_stats = stuck.stop(timeout_s=1)
        assert peak == 10 and stuck_stats["acked"] == 0 and stuck_stats["received"] <= 10 + 1

        restarted = make_bridge(kafka_bootstrap, secured_mqtt, telemetry, dlq, client_id=client_id, group=group)
        try:
            await_condition(lambda: restarted.stats()["acked"] >= 60, 30, "the restarted bridge delivered the backlog")
            records = read_topic(kafka_bootstrap, telemetry, 60)
        finally:
            restarted_stats = restarted.stop()
    finally:
        vehicle.close()
    assert [orjson.loads(r.value())["seq"] for r in records] == list(range(60))
    assert restarted_stats["acked"] == restarted_stats["forwarded"] == 60
