"""MQTT output of the simulator: each event published QoS 1 to `telemetry/{vehicle_id}`, as a vehicle
would (seed section 6), open loop at a target rate, every PUBACK counted.

Connections: without credentials, the fleet shares `connections` clients (vehicle_id modulo the
count picks one, so a vehicle's events stay in order on one connection), logged in with `login` if
given. With `credentials`, a
callable vehicle_id → (username, password), every vehicle connects on its own with its own
credentials and client id `{client_id_prefix}-{vehicle_id}` — what per-vehicle ACLs need; one paho
network thread per connection, so meant for tests and up to a few hundred vehicles, not 50,000 (for
load, use shared connections or Kafka-direct). A vehicle whose connection is refused (bad
credentials) has its events counted as failed, with the reason, and sends nothing.

Items: a dict (JSON-encoded), bytes sent as they are (a `RawPayload`'s vehicle_id picks the topic;
plain bytes go to `{topic_prefix}/unknown`), or a (key, payload) pair (key = vehicle_id as bytes).

The report: sent (handed to paho), acknowledged (PUBACK received; for QoS 0, written to the
socket), failed (refused by paho, by the broker's PUBACK reason code under MQTT 5, connection
refused, or not acknowledged within `ack_timeout_s`), and the achieved rate.
"""

from __future__ import annotations

import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from device_sim.kafka_output import ProduceReport
from device_sim.pacing import OpenLoop
from udfs.telemetry_schema import encode

Credentials = Callable[[Any], "tuple[str, str | None] | None"]


@dataclass(frozen=True)
class PublishReport(ProduceReport):
    """ProduceReport's counts and rates, for MQTT publishes (seconds: first publish to last ack)."""

    connections: int = 0

    def summary(self, where: str) -> str:
        target = f" (target {self.target_rate:,.0f}/s)" if self.target_rate else ""
        return (
            f"{where}: published {self.sent:,} over {self.connections} connection(s), acknowledged {self.acknowledged:,}, "
            f"failed {self.failed:,} in {self.seconds:.2f}s; sent at {self.send_rate:,.0f}/s{target}, acknowledged {self.rate:,.0f}/s"
        )


def vehicle_and_payload(item: Any) -> tuple[Any, bytes]:
    """(vehicle_id or None, payload bytes) of an item (see the module docstring)."""
    if type(item) is tuple:
        key, payload = item
        if key is None:
            return None, payload
        text = key.decode() if isinstance(key, (bytes, bytearray)) else str(key)
        return (int(text) if text.isdigit() else text), payload
    if isinstance(item, dict):
        return item.get("vehicle_id"), encode(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        return getattr(item, "vehicle_id", None), bytes(item)
    raise TypeError(f"cannot publish a {type(item).__name__}: expected a dict, bytes or (key, payload)")


class _Tally:
    """Counts updated from paho's network threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acknowledged = 0
        self.failed = 0
        self.first_error: str | None = None

    def fail(self, count: int, error: str) -> None:
        with self.lock:
            self.failed += count
            self.first_error = self.first_error or error


class _Connection:
    def __init__(self, client: mqtt.Client, name: str):
        self.client = client
        self.name = name
        self.ready = threading.Event()
        self.refused: str | None = None
        self.published = 0


class MqttFleetPublisher:
    """The connections and counters of one run; `publish_events` is the one-call form."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        qos: int = 1,
        topic_prefix: str = "telemetry",
        credentials: Credentials | None = None,
        login: tuple[str, str | None] | None = None,
        connections: int = 4,
        client_id_prefix: str = "device-sim",
        protocol: str = "3.1.1",
        max_inflight: int = 1_000,
        keepalive_s: int = 60,
        connect_timeout_s: float = 10.0,
    ):
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if connections < 1:
            raise ValueError(f"connections must be >= 1, got {connections}")
        if protocol not in ("3.1.1", "5"):
            raise ValueError(f"protocol must be 3.1.1 or 5, got {protocol}")
        self.host, self.port, self.qos, self.topic_prefix = host, port, qos, topic_prefix
        self.credentials = credentials
        self.login = login
        self.shared = connections
        self.client_id_prefix = client_id_prefix
        self.protocol = protocol
        self.max_inflight = max_inflight
        self.keepalive_s = keepalive_s
        self.connect_timeout_s = connect_timeout_s
        self.tally = _Tally()
        self._connections: dict[Any, _Connection] = {}

    # -- connections ----------------------------------------------------------------------------

    def _slot(self, vehicle_id: Any) -> Any:
        if self.credentials is not None:
            return vehicle_id
        if isinstance(vehicle_id, int):
            return vehicle_id % self.shared
        return zlib.crc32(str(vehicle_id).encode()) % self.shared

    def _connect(self, slot: Any, vehicle_id: Any) -> _Connection:
        client_id = f"{self.client_id_prefix}-{vehicle_id}" if self.credentials is not None else f"{self.client_id_prefix}-{slot}"
        if self.protocol == "5":
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        else:
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=True)
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)  # unlimited: the run's open-loop rate is the sender's, not paho's
        connection = _Connection(client, client_id)
        tally = self.tally

        def on_connect(_client: Any, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any) -> None:
            if reason_code.is_failure:
                connection.refused = f"{client_id}: connection refused: {reason_code}"
            connection.ready.set()

        def on_publish(_client: Any, _userdata: Any, _mid: int, reason_code: Any, _properties: Any) -> None:
            if reason_code.is_failure:
                tally.fail(1, f"{client_id}: publish refused: {reason_code}")
            else:
                with tally.lock:
                    tally.acknowledged += 1

        client.on_connect = on_connect
        client.on_publish = on_publish
        login = self.credentials(vehicle_id) if self.credentials is not None else self.login
        if login is not None:
            client.username_pw_set(login[0], login[1])
        try:
            client.connect(self.host, self.port, keepalive=self.keepalive_s)
        except OSError as exc:
            connection.refused = f"{client_id}: cannot connect to {self.host}:{self.port}: {exc}"
            self._connections[slot] = connection
            return connection
        client.loop_start()
        if not connection.ready.wait(self.connect_timeout_s):
            connection.refused = f"{client_id}: no CONNACK within {self.connect_timeout_s}s"
        if connection.refused is not None:
            client.loop_stop()
            client.disconnect()
        self._connections[slot] = connection
        return connection

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, item: Any) -> bool:
        """Publish one item; False if it could not even be handed to a connection (counted as failed)."""
        vehicle_id, payload = vehicle_and_payload(item)
        slot = self._slot(vehicle_id)
        connection = self._connections.get(slot)
        if connection is None:
            connection = self._connect(slot, vehicle_id)
        if connection.refused is not None:
            self.tally.fail(1, connection.refused)
            return False
        topic = f"{self.topic_prefix}/{'unknown' if vehicle_id is None else vehicle_id}"
        info = connection.client.publish(topic, payload, qos=self.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.tally.fail(1, f"{connection.name}: publish failed: {mqtt.error_string(info.rc)}")
            return False
        connection.published += 1
        return True

    def wait_for_acks(self, expected: int, timeout_s: float) -> int:
        """Wait until acknowledged + failed reaches `expected` (the items offered to `publish`);
        returns how many are still open."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.tally.lock:
                open_ = expected - self.tally.acknowledged - self.tally.failed
            if open_ <= 0 or time.monotonic() >= deadline:
                return max(0, open_)
            time.sleep(0.01)

    def close(self) -> None:
        for connection in self._connections.values():
            if connection.refused is None:
                connection.client.disconnect()
                connection.client.loop_stop()
        self._connections.clear()

    @property
    def connection_count(self) -> int:
        return sum(1 for c in self._connections.values() if c.refused is None)


def publish_events(
    host: str,
    port: int,
    events: Iterable[Any],
    *,
    rate_per_s: float | None = None,
    qos: int = 1,
    topic_prefix: str = "telemetry",
    credentials: Credentials | None = None,
    login: tuple[str, str | None] | None = None,
    connections: int = 4,
    client_id_prefix: str = "device-sim",
    protocol: str = "3.1.1",
    max_inflight: int = 1_000,
    ack_timeout_s: float = 60.0,
    report_every_s: float | None = None,
    out: Callable[[str], None] | None = None,
    metrics: Any = None,
) -> PublishReport:
    """Publish every item to `{topic_prefix}/{vehicle_id}` and wait for every acknowledgement.

    `rate_per_s` paces open-loop against the wall clock; None publishes as fast as `events` comes.
    `credentials(vehicle_id) -> (username, password)` gives every vehicle a connection of its own;
    `login` = (username, password) is the shared connections' login. `metrics` (a
    device_sim.sim_metrics.SimMetrics) reads the counts as they change.
    """
    publisher = MqttFleetPublisher(
        host, port, qos=qos, topic_prefix=topic_prefix, credentials=credentials, login=login, connections=connections,
        client_id_prefix=client_id_prefix, protocol=protocol, max_inflight=max_inflight,
    )
    printer = out or (lambda line: print(line, file=sys.stderr, flush=True))
    pacer = OpenLoop(rate_per_s, report_every_s=report_every_s, label=f"mqtt://{host}:{port}: published", out=printer)
    sent = 0
    if metrics is not None:
        metrics.attach(published=lambda: sent, acknowledged=lambda: publisher.tally.acknowledged, failed=lambda: publisher.tally.failed)
    try:
        for item in events:
            publisher.publish(item)
            sent += 1
            if sent >= pacer.next_at:
                pacer.pace(sent)
        send_seconds = pacer.elapsed()
        remaining = publisher.wait_for_acks(sent, ack_timeout_s)  # the ones not handed over are failed already
    finally:
        connection_count = publisher.connection_count
        publisher.close()
    seconds = pacer.elapsed()
    tally = publisher.tally
    if remaining:
        tally.fail(remaining, f"{remaining} publishes not acknowledged within {ack_timeout_s}s")
    report = PublishReport(
        sent, tally.acknowledged, tally.failed, seconds, tally.first_error, pacer.rate_per_s, send_seconds, connection_count
    )
    if report_every_s:
        printer(report.summary(f"mqtt://{host}:{port}"))
    return report
