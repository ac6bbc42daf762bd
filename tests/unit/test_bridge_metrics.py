"""The bridge's /metrics and /healthz (ingest/metrics.py) over HTTP on a free port, fed
by a stand-in for `MqttKafkaBridge.stats()` whose counts the test sets, and its health rules on a
clock the test moves. The real bridge behind it: tests/integration/test_bridge_metrics_mqtt.py."""

from __future__ import annotations

import json

import pytest

from infra.process import free_port
from ingest.metrics import (
    KAFKA_DELIVERY_FAILING,
    KAFKA_WRITES_STALLED,
    MQTT_DISCONNECTED,
    BridgeHealth,
    BridgeMetricsServer,
)
from tests.metrics_text import get, scrape, value


class FakeBridge:
    """stats() shaped as MqttKafkaBridge's; the test changes the numbers."""

    def __init__(self) -> None:
        self.numbers = dict(received=0, forwarded=0, acked=0, in_flight=0, deferred=0, redelivered=0,
                            delivery_failed=0, resyncs=0, reconnects=0, sessions_lost=0)
        self.rejected: dict[str, int] = {}
        self.connected = True
        self.last_error: str | None = None

    def stats(self) -> dict:
        return {**self.numbers, "rejected": dict(self.rejected), "rejected_total": sum(self.rejected.values()),
                "connected": self.connected, "last_error": self.last_error}

    def deliver(self, forwarded: int = 0, **rejected: int) -> None:
        """Messages received, written and acknowledged, as the bridge counts them."""
        count = forwarded + sum(rejected.values())
        self.numbers["received"] += count
        self.numbers["forwarded"] += forwarded
        self.numbers["acked"] += count
        for reason, n in rejected.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def served():
    bridge = FakeBridge()
    server = BridgeMetricsServer(bridge.stats, "127.0.0.1", free_port(), reasons=("iot_rule", "vehicle_id_mismatch"), sample_every_s=0.05)
    yield bridge, server
    server.close()


def test_metrics_are_the_bridge_counters_at_scrape_time(served):
    bridge, server = served
    before = scrape(server.port)
    assert value(before, "bridge_received_total") == 0
    assert value(before, "bridge_rejected_total", reason="iot_rule") == 0  # known reasons exist before any is seen

    bridge.deliver(forwarded=7, iot_rule=2, vehicle_id_mismatch=1, bad_json=3)
    bridge.numbers.update(in_flight=4, deferred=5, redelivered=6, delivery_failed=1, resyncs=2, reconnects=3, sessions_lost=1)
    bridge.numbers["received"] += 4 + 5  # held now, and deferred
    after = scrape(server.port)
    assert value(after, "bridge_received_total") == 7 + 2 + 1 + 3 + 4 + 5
    assert value(after, "bridge_forwarded_total") == 7
    assert value(after, "bridge_acked_total") == 7 + 2 + 1 + 3
    assert {s.labels["reason"]: s.value for s in after if s.name == "bridge_rejected_total"} == {
        "iot_rule": 2, "vehicle_id_mismatch": 1, "bad_json": 3}
    assert value(after, "bridge_in_flight") == 4
    for name, expected in [("deferred", 5), ("redelivered", 6), ("delivery_failed", 1), ("resyncs", 2), ("reconnects", 3), ("sessions_lost", 1)]:
        assert value(after, f"bridge_{name}_total") == expected, name
    assert value(after, "bridge_connected") == 1

    bridge.connected = False
    down = scrape(server.port)
    assert value(down, "bridge_connected") == 0 and value(down, "bridge_healthy") == 0


def test_healthz_answers_200_with_json_while_connected_and_503_with_the_reason(served):
    bridge, server = served
    bridge.deliver(forwarded=3)
    status, content_type, body = get(f"http://127.0.0.1:{server.port}/healthz")
    assert (status, content_type) == (200, "application/json")
    health = json.loads(body)
    assert health["ok"] is True and health["forwarded"] == 3 and health["connected"] is True

    bridge.connected, bridge.last_error = False, "mqtt disconnected: Server unavailable"
    status, _, body = get(f"http://127.0.0.1:{server.port}/healthz")
    health = json.loads(body)
    assert status == 503 and health["ok"] is False and health["reason"] == MQTT_DISCONNECTED
    assert "Server unavailable" in health["detail"]
    assert get(f"http://127.0.0.1:{server.port}/other")[0] == 404


def test_health_rules_on_a_clock():
    bridge, clock = FakeBridge(), Clock()
    health = BridgeHealth(bridge.stats, stall_s=10.0, clock=clock)
    assert health.check().ok  # connected, idle

    bridge.deliver(forwarded=5)
    assert health.check().ok
    # Messages held and nothing written: healthy until stall_s has passed, then stalled.
    bridge.numbers.update(in_flight=3, received=bridge.numbers["received"] + 3)
    clock.now += 1
    assert health.check().ok
    clock.now += 9.5
    assert health.check().ok  # held for 9.5 s
    clock.now += 1
    stalled = health.check()
    assert not stalled.ok and stalled.reason == KAFKA_WRITES_STALLED and "3 messages held" in stalled.detail

    # librdkafka gives up: the writes fail. Failing until a write succeeds again.
    bridge.numbers.update(delivery_failed=3, in_flight=0)
    bridge.last_error = "kafka delivery failed: Local: Message timed out"
    clock.now += 1
    failing = health.check()
    assert not failing.ok and failing.reason == KAFKA_DELIVERY_FAILING and "timed out" in failing.detail
    clock.now += 60
    assert health.check().reason == KAFKA_DELIVERY_FAILING  # still no write since
    bridge.deliver(forwarded=3)  # the broker resent them after the resync; Kafka is back
    clock.now += 1
    assert health.check().ok

    # A write that keeps the count moving while messages are held is not a stall.
    for _ in range(30):
        bridge.numbers["in_flight"] = 50
        bridge.deliver(forwarded=1)
        clock.now += 1
        assert health.check().ok


def test_writes_and_failures_before_the_first_look_tie_and_read_as_healthy():
    bridge, clock = FakeBridge(), Clock()
    bridge.deliver(forwarded=10)
    bridge.numbers["delivery_failed"] = 2
    health = BridgeHealth(bridge.stats, clock=clock)
    assert health.check().ok
    bridge.numbers["delivery_failed"] = 3
    clock.now += 1
    assert health.check().reason == KAFKA_DELIVERY_FAILING
