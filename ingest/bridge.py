"""MQTT → Kafka bridge: what replaces the seed's AWS IoT Core rule (seed section 7).

    telemetry/{vehicle_id} ──MQTT v5 QoS 1, $share/<group>/telemetry/+──► bridge ──► vehicle-telemetry
                                                                              └──► telemetry-dlq

For each message: decode; the seed's rule `battery.percent >= 0 AND location.lat IS NOT NULL`
(reason `iot_rule`); the full schema (`udfs.telemetry_schema`); and the topic's vehicle id must be
the payload's (reason `vehicle_id_mismatch`: the broker's ACL pins a vehicle to its own topic, this
pins the payload to the topic). Accepted payloads go to the telemetry topic unchanged, keyed by
the vehicle id; rejected ones become DLQ records (`udfs.dlq`, stage "mqtt-bridge"). The checks
are ingest/rules.py (pure functions), the settings ingest/settings.py; this module is the event loop.

**At least once, acknowledged after Kafka.** The subscription uses manual acknowledgement: a
message is PUBACKed only in the Kafka delivery callback, after the broker confirmed the write
(acks=all, idempotent producer), for telemetry and DLQ writes alike. A message whose write failed
is never acknowledged; MQTT lets the broker resend unacknowledged messages only on a new
connection, so the bridge then reconnects its persistent session ("resync") and the broker
redelivers them, in their original order. While Kafka is down nothing is acknowledged, so the
broker stops sending once its in-flight window (the Receive Maximum we announce) is full, and
the rest waits, queued, in Mosquitto.

**Threading.** One thread, the bridge's, owns both clients and does all the I/O: it select()s on
the MQTT socket and calls paho's loop_read/loop_write/loop_misc itself (paho's "external event
loop" mode, no paho thread), and it calls producer.poll(0) on every turn. So `on_message` (inside
loop_read) and the Kafka delivery callbacks (inside poll) run on the same thread, one after the
other, and the callback can call `client.ack()` directly: no lock, no queue of mids, no ack
racing a reconnect. Other threads only read counters (`stats()`) and set the stop flag. librdkafka's
own threads do the Kafka network I/O and never call back into Python except through poll().

**Which message an ack belongs to.** An MQTT packet id names one unacknowledged message for as
long as the session lives; the broker keeps the id across reconnects and sends the message again
with DUP set. The bridge keeps one entry per unacknowledged id: a redelivered message whose
write is still pending is not written twice (its pending delivery will ack it), one whose write
is confirmed is just acked. If the broker lost the session (CONNACK without session present) the
entries are dropped, so a late delivery callback never acks an id the broker has since reused.

**Order.** One bridge keeps each vehicle's order: the broker delivers a topic in order, one thread
produces in that order, and the idempotent producer keeps it per partition. After a failed write
the bridge writes nothing new (it leaves new messages unacknowledged: "deferred") until every
pending write has settled, then resyncs, so redelivered messages are not overtaken. Several
bridges in one share group split messages round-robin *per message* (Mosquitto has no per-topic
stickiness), so across bridges a vehicle's consecutive events can arrive out of order when one
bridge lags the other by more than the vehicle's send interval; every event carries its own
timestamp, and the pipeline's dedup keeps out-of-order events.

**A bounded bridge.** Mosquitto 2.0.11 (Debian 12) does not keep to the announced Receive Maximum
once acks flow: each PUBACK releases up to a whole window of queued messages (measured here; the
2.0.13 changelog lists "various fixes around inflight quota management", #2306). So the bridge
also caps what it holds itself (`max_in_flight`): at the cap it stops reading the socket until
acks free room, and the broker's sends back up in TCP and in Mosquitto's queue, not here. If that
lasts longer than the keepalive (Kafka down for minutes), paho drops the connection and the
bridge reconnects; the broker resends what is unacknowledged and writes still pending are not
repeated. Memory stays bounded whatever the broker version.

**Closing a connection** (resync, shutdown) is a half-close that reads until the broker closes
too: a close() with unread data would send a TCP RST, which can make the broker's kernel drop
acks Mosquitto had not read yet, and those messages would be written twice.
"""

from __future__ import annotations

import functools
import logging
import select
import socket
import threading
import time
from collections import Counter
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from connectors.kafka_clients import producer_config
from connectors.retry import exponential, retry_call
from ingest.rules import check_message, topic_vehicle_id
from ingest.settings import BridgeConfig
from udfs.dlq import dlq_record, encode_dlq_record
from udfs.telemetry_schema import DEFAULT_POLICY, Rejection, ValidationPolicy

log = logging.getLogger("ingest.bridge")

STAGE = "mqtt-bridge"


class BridgeError(RuntimeError):
    """The bridge cannot run: the broker refused its credentials or its subscription."""


class _NotSubscribed(Exception):
    """A connection attempt ended without a subscription (no CONNACK/SUBACK in time, or the
    connection closed first): tried again, like a refused TCP connection."""


_PENDING, _CONFIRMED = 0, 1


class _Entry:
    """One unacknowledged MQTT message whose Kafka write the bridge started."""

    __slots__ = ("mid", "qos", "reason", "state")

    def __init__(self, mid: int, qos: int, reason: str | None):
        self.mid, self.qos, self.reason, self.state = mid, qos, reason, _PENDING


class MqttKafkaBridge:
    """`start()` runs the bridge on a thread of its own, `run()` on the caller's; `stop()` ends either.

    Counters (all from the bridge's thread; `stats()` is safe from any thread):
    received: PUBLISH packets read (redeliveries and deferred ones included); forwarded / rejected
    [reason]: writes Kafka confirmed to the telemetry / DLQ topic; acked: PUBACKs sent;
    deferred: messages left unacknowledged, unwritten, for the broker to resend after the resync
    that follows a failed write; redelivered: resent copies of a message already being written;
    delivery_failed: Kafka writes that failed (never acked); in_flight: unacknowledged messages
    held now (never more than max_in_flight); resyncs, reconnects, sessions_lost.
    """

    def __init__(self, config: BridgeConfig, policy: ValidationPolicy = DEFAULT_POLICY):
        self.config = config
        self.policy = policy
        self._stop = threading.Event()
        self._connected_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stats_lock = threading.Lock()

        self._inflight: dict[int, _Entry] = {}
        self._connected = False
        self._subscribed = False
        self._unsubscribed = False
        self._deferring = False  # produce nothing new until a resync: keeps redelivered messages in order
        self._unacked_at_broker = 0  # deferred or failed since the last resync: the broker holds them
        self._last_resync = 0.0
        self._last_message_at = 0.0
        self._refused: str | None = None
        self._connect_called = False
        self._stop_timeout_s = 30.0
        self._producer_fatal = False

        self.received = 0
        self.forwarded = 0
        self.rejected: Counter[str] = Counter()
        self.acked = 0
        self.deferred = 0
        self.redelivered = 0
        self.delivery_failed = 0
        self.resyncs = 0
        self.reconnects = 0
        self.sessions_lost = 0
        self.last_error: str | None = None
        self._thread_cpu_s = 0.0

        self._producer = self._new_producer()
        self._client = self._new_client()

    # -- clients ---------------------------------------------------------------------------------

    def _new_producer(self):
        from confluent_kafka import Producer

        overrides = {
            "message.timeout.ms": self.config.delivery_timeout_ms,
            "client.id": self.config.client_id,
            "error_cb": self._on_kafka_error,
            **self.config.producer_overrides,
        }
        return Producer(producer_config(self.config.bootstrap_servers, **overrides))

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.config.client_id, protocol=mqtt.MQTTv5, manual_ack=True,
        )
        if self.config.username is not None:
            client.username_pw_set(self.config.username, self.config.password)
        if log.isEnabledFor(logging.DEBUG):  # paho logs every packet: only when asked to
            client.enable_logger(log)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_unsubscribe = self._on_unsubscribe
        client.on_message = self._on_message
        # We drive the socket ourselves (see the module doc): with these hooks set, paho queues
        # packets (acks included) for our loop_write() instead of writing from inside callbacks.
        client.on_socket_register_write = lambda *_: None
        client.on_socket_unregister_write = lambda *_: None
        client.on_socket_close = self._on_socket_close
        return client

    @staticmethod
    def _on_socket_close(_client, _userdata, sock) -> None:
        """Close gracefully: half-close, then read (and drop) until the broker closes too.

        A plain close() with unread bytes in the receive buffer sends a TCP RST, and the broker's
        kernel may then drop PUBACKs it received but Mosquitto had not read yet: those messages
        would be redelivered and written to Kafka twice (measured: ~100 duplicates in 50,000 with
        frequent resyncs). Whatever we drop here was never acknowledged, so it is resent.
        """
        try:
            sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline:
                readable, _, _ = select.select([sock], [], [], 0.1)
                if readable:
                    try:
                        if not sock.recv(1 << 16):
                            return
                    except BlockingIOError:
                        continue
        except OSError:
            return  # the connection is already gone

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        props.ReceiveMaximum = self.config.receive_maximum
        return props

    # -- paho callbacks (on the bridge thread, inside loop_read) ---------------------------------

    def _on_connect(self, client, _userdata, flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self._refused = f"broker refused the connection: {reason_code}"
            return
        self._connected = True
        if not flags.session_present and self._inflight:
            # The broker has no record of these messages any more (session expired or broker
            # restarted without persistence): their ids may be reused, so they must never be acked.
            self.sessions_lost += 1
            self._inflight.clear()
        if not flags.session_present:
            self._unacked_at_broker = 0
            self._deferring = False  # nothing left at the broker to resync for
        self._unsubscribed = False
        # Always (re)subscribe: a session kept at shutdown has no subscription any more. Retained
        # messages are never wanted: they would be written to Kafka again on every subscribe.
        options = mqtt.SubscribeOptions(qos=1, retainHandling=mqtt.SubscribeOptions.RETAIN_DO_NOT_SEND)
        client.subscribe(self.config.subscription, options=options)

    def _on_subscribe(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        if any(rc.is_failure for rc in reason_codes):
            self._refused = f"broker refused the subscription {self.config.subscription}: {reason_codes[0]}"
            return
        self._subscribed = True
        self._connected_event.set()

    def _on_unsubscribe(self, *_args) -> None:
        self._unsubscribed = True

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self._connected = False
        self._subscribed = False
        self._connected_event.clear()
        if reason_code is not None and getattr(reason_code, "is_failure", False):
            self.last_error = f"mqtt disconnected: {reason_code}"

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        self.received += 1
        self._last_message_at = time.monotonic()
        mid, qos = message.mid, message.qos
        if qos:
            entry = self._inflight.get(mid)
            if entry is not None:
                if message.dup:
                    # The broker resent a message we already hold (after a reconnect).
                    self.redelivered += 1
                    if entry.state == _CONFIRMED:
                        self._ack(entry)
                    return
                # A new message under an id we hold: the broker considers the old one acked
                # (its session was replaced). Forget the old entry; its callback will not ack.
                del self._inflight[mid]
            if self._deferring or len(self._inflight) >= self.config.max_in_flight:
                # Not acked, not written: the broker keeps it and resends it after the resync.
                # (The cap is kept by not reading when full; this is the safety net.)
                self.deferred += 1
                self._unacked_at_broker += 1
                self._deferring = True
                return
        topic = message.topic
        payload = message.payload
        result = check_message(topic, payload, self.policy)
        if isinstance(result, Rejection):
            record = dlq_record(payload, result, stage=STAGE, source={"mqtt_topic": topic})
            target, key, value, reason = self.config.dlq_topic, topic_vehicle_id(topic).encode(), encode_dlq_record(record), result.reason
        else:
            target, key, value, reason = self.config.telemetry_topic, str(result["vehicle_id"]).encode(), payload, None
        entry = _Entry(mid, qos, reason)
        if qos:
            self._inflight[mid] = entry
        self._produce(target, key, value, entry)

    # -- Kafka -----------------------------------------------------------------------------------

    def _produce(self, topic: str, key: bytes, value: bytes, entry: _Entry) -> None:
        callback = functools.partial(self._on_delivery, entry)
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=callback)
                return
            except BufferError:  # librdkafka's local queue is full: let deliveries drain it
                self._producer.poll(0.05)

    def _on_delivery(self, entry: _Entry, err, _msg) -> None:
        """Inside producer.poll()/flush(), on the bridge thread: ack only what Kafka confirmed."""
        current = self._inflight.get(entry.mid) is entry
        if err is not None:
            self.delivery_failed += 1
            self.last_error = f"kafka delivery failed: {err}"
            if current:
                del self._inflight[entry.mid]
                self._unacked_at_broker += 1
                self._deferring = True  # the broker resends it after a resync; nothing may overtake it
            return
        if entry.reason is None:
            self.forwarded += 1
        else:
            with self._stats_lock:
                self.rejected[entry.reason] += 1
        if entry.qos == 0 or not current:
            return
        if self._connected:
            self._ack(entry)
        else:
            entry.state = _CONFIRMED  # acked when the broker resends it on the next connection

    def _ack(self, entry: _Entry) -> None:
        self._client.ack(entry.mid, entry.qos)
        del self._inflight[entry.mid]
        self.acked += 1

    def _on_kafka_error(self, err) -> None:
        # Called from poll() too. Broker-down errors are transient: librdkafka keeps retrying
        # until message.timeout.ms, then the delivery callback reports the failure.
        self.last_error = f"kafka: {err}"
        if err.fatal():
            log.error("fatal Kafka producer error: %s", err)
            self._producer_fatal = True

    def _pending_writes(self) -> int:
        return sum(1 for e in self._inflight.values() if e.state == _PENDING)

    # -- the loop ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("bridge already started")
        self._thread = threading.Thread(target=self._run_captured, name="mqtt-bridge", daemon=True)
        self._thread.start()

    def _run_captured(self) -> None:
        try:
            self.run()
        except BridgeError as exc:
            self._error = exc
            log.error("bridge stopped: %s", exc)
        except BaseException as exc:  # reported through wait_connected()/stop()
            self._error = exc
            log.exception("bridge stopped with an error")

    def wait_connected(self, timeout_s: float = 15.0) -> bool:
        """True once connected and subscribed; raises the bridge's error if it failed."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._error is not None:
                raise self._error
            if self._connected_event.wait(0.05):
                return True
        return False

    def run(self) -> None:
        """Bridge until `stop()`/`request_stop()` (from another thread or a signal handler), then
        shut down cleanly. Raises BridgeError if the broker refuses the credentials or subscription."""
        cpu_start = time.thread_time()
        try:
            while not self._stop.is_set():
                if self._client.socket() is None:
                    self._connect_with_retry()
                    continue
                self._turn()
                self._maybe_resync()
            self._shutdown(self._stop_timeout_s)
        finally:
            self._thread_cpu_s = time.thread_time() - cpu_start
            # Counters stay readable; the clients are done. Writes still pending here (Kafka
            # unreachable until the stop timeout) were never acked: the broker keeps them.
            self._producer.poll(0)
            self._producer = None
            self._client = None

    def _turn(self) -> None:
        """One turn of the event loop: read what arrived, serve delivery callbacks, write acks."""
        client = self._client
        sock = client.socket()
        if sock is None:
            return
        # Holding max_in_flight unacknowledged messages: stop reading until acks free room. The
        # broker's sends then back up in TCP and in Mosquitto, not in this process.
        room = self.config.max_in_flight - len(self._inflight)
        want_write = client.want_write()
        busy = want_write or bool(self._inflight)
        readable, _, _ = select.select([sock] if room > 0 else [], [sock] if want_write else [], [], 0.002 if busy else 0.05)
        if readable:
            # One select, then as many packets as have arrived: paho reads one per loop_read().
            for _ in range(min(512, room)):
                before = self.received
                if client.loop_read() != mqtt.MQTT_ERR_SUCCESS or self.received == before or client.socket() is None:
                    break
                if len(self._inflight) >= self.config.max_in_flight:
                    break
            if self._refused:
                raise BridgeError(self._refused)
        if self._producer_fatal:
            self._replace_producer()
        self._producer.poll(0)  # delivery callbacks run here, and ack
        if client.socket() is not None and client.want_write():
            client.loop_write()
        if client.socket() is not None:
            client.loop_misc()  # keepalive

    def _replace_producer(self) -> None:
        """A fatal producer error (idempotence state lost) makes the producer unusable: fail what
        it holds (their messages stay unacknowledged; the resync brings them back) and start anew."""
        old, self._producer = self._producer, self._new_producer()
        self._producer_fatal = False
        old.purge(in_queue=True, in_flight=True)
        old.flush(5)  # serves the purged messages' callbacks: failures, so never acked

    def _maybe_resync(self) -> None:
        """After a failed write or a deferral: once no write is pending, reconnect the session so
        the broker resends what we left unacknowledged, in its original order."""
        if not self._deferring or not self._connected or self._pending_writes():
            return
        if time.monotonic() - self._last_resync < self.config.resync_min_interval_s:
            return
        self._flush_writes()
        self._last_resync = time.monotonic()
        self.resyncs += 1
        self._deferring = False
        self._unacked_at_broker = 0
        self._connected = False
        self._connected_event.clear()
        try:
            self._client.reconnect()  # closes the socket; the session (and its messages) stays
            self.reconnects += 1
            self._await_connack()
        except OSError as exc:
            self.last_error = f"mqtt reconnect failed: {exc}"

    def _flush_writes(self, timeout_s: float = 5.0) -> None:
        """Write out what paho has queued (acks): reconnect() would drop it."""
        client = self._client
        deadline = time.monotonic() + timeout_s
        while client.socket() is not None and client.want_write() and time.monotonic() < deadline:
            client.loop_write()
            if client.want_write() and client.socket() is not None:
                select.select([], [client.socket()], [], 0.05)

    def _await_connack(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self._subscribed and time.monotonic() < deadline and not self._stop.is_set():
            if self._client.socket() is None:
                return
            self._turn()

    def _connect_with_retry(self) -> None:
        """Connect and subscribe, backing off 0.2 s, 0.4 s, … up to reconnect_max_delay_s between
        tries, until subscribed or stopped (a stop cuts the wait short)."""
        retry_call(
            self._connect_once, retry_if=lambda error: isinstance(error, (OSError, _NotSubscribed)),
            wait=exponential(0.2, self.config.reconnect_max_delay_s), sleep=lambda s: self._stop.wait(s),
        )

    def _connect_once(self) -> None:
        if self._stop.is_set():
            return
        try:
            if not self._connect_called:
                self._connect_called = True
                self._client.connect(
                    self.config.mqtt_host, self.config.mqtt_port, keepalive=self.config.keepalive_s,
                    clean_start=False, properties=self._connect_properties(),
                )
            else:
                self._client.reconnect()
                self.reconnects += 1
            self._await_connack()
        except OSError as exc:
            self.last_error = f"mqtt connect to {self.config.mqtt_host}:{self.config.mqtt_port} failed: {exc}"
            raise
        if not self._subscribed:
            raise _NotSubscribed

    def _shutdown(self, timeout_s: float) -> None:
        """Unsubscribe (no new messages are routed to us), settle every pending write and ack it,
        then leave. The session is ended only if the broker holds nothing unacknowledged for us;
        otherwise it is kept, so those messages come back when this client id reconnects."""
        deadline = time.monotonic() + timeout_s
        client = self._client
        if self._connected:
            client.unsubscribe(self.config.subscription)
            while not self._unsubscribed and client.socket() is not None and time.monotonic() < deadline:
                self._turn()
        # Messages the broker sent before the UNSUBACK (or had queued for us) still arrive.
        while client.socket() is not None and time.monotonic() < deadline:
            self._turn()
            if not self._pending_writes() and time.monotonic() - self._last_message_at > 0.3:
                break
        self._producer.flush(max(0.0, deadline - time.monotonic()))  # callbacks ack what was confirmed
        if client.socket() is not None:
            self._flush_writes()
            props = Properties(PacketTypes.DISCONNECT)
            if not self._inflight and self._unacked_at_broker == 0 and not self._deferring:
                props.SessionExpiryInterval = 0  # nothing left for us at the broker: end the session
            client.disconnect(properties=props)
            self._flush_writes()
        self._connected = False
        self._connected_event.clear()

    def request_stop(self) -> None:
        """Ask the loop to shut down cleanly; returns at once (safe from signal handlers)."""
        self._stop.set()

    def stop(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Stop the loop and wait for the clean shutdown (settle pending writes, ack them) for at
        most `timeout_s`; returns the final stats."""
        self._stop_timeout_s = timeout_s
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s + 5)
        if self._error is not None and not isinstance(self._error, BridgeError):
            raise self._error
        return self.stats()

    @property
    def error(self) -> BaseException | None:
        return self._error

    def stats(self) -> dict[str, Any]:
        with self._stats_lock:
            rejected = dict(self.rejected)
        return {
            "received": self.received,
            "forwarded": self.forwarded,
            "rejected": rejected,
            "rejected_total": sum(rejected.values()),
            "acked": self.acked,
            "in_flight": len(self._inflight),
            "deferred": self.deferred,
            "redelivered": self.redelivered,
            "delivery_failed": self.delivery_failed,
            "resyncs": self.resyncs,
            "reconnects": self.reconnects,
            "sessions_lost": self.sessions_lost,
            "connected": self._connected,
            "last_error": self.last_error,
        }

    @property
    def thread_cpu_s(self) -> float:
        """CPU seconds of the bridge thread itself (known after run() returns)."""
        return self._thread_cpu_s


