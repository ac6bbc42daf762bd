"""The agent loop: read the sensors at the mode's rate, spool every reading, publish it with MQTT QoS 1
to telemetry/{vehicle_id}, and delete it from the spool only when the broker acknowledged it.

One thread does everything (readings, spool, paho's network loop via `client.loop()`), so paho's
callbacks run inside that thread and need no locks. Only the blocking TCP/TLS connect runs in a
short-lived helper thread, so readings keep being taken (and spooled) while a connection attempt
hangs on a bad network.

Each reading, in order:

1. it gets the next sequence number `seq` (the spool persists the highest one, in the same
   transaction as the row: monotonic across restarts, never reused);
2. it is appended to the spool (the outbox) — flagged `resent` when the broker is known to be
   unreachable (an attempt failed or the connection was lost, and no reconnect yet);
3. while connected, the spool is published oldest first, at most `max_inflight` unacknowledged:
   a backlog left by an outage drains before newer readings, so order per vehicle is kept;
4. paho's `on_publish` reports the PUBACK for a message id (`MQTTMessageInfo.mid`); the row mapped to
   that id is deleted. Nothing else deletes a row, except eviction of the oldest when the spool is
   full (counted).

When the connection drops (or an attempt fails), every row still in the spool — unacknowledged
or not yet published — is flagged `resent` and goes out, oldest first, after the reconnect; the paho
client is discarded so it cannot re-send anything a second time. So `"resent": true` means: this
message waited in the spool for a reconnect (or a restart) instead of going out on the connection
that was up when it was read.
 A message whose PUBACK was lost in the outage can thus arrive twice (at-least-once,
both copies with the same vehicle_id and timestamp, the later one flagged): the pipeline's dedup
drops the repeat.

Reconnects back off exponentially with jitter up to a cap (`edge_agent.backoff`). `stop()` (or
SIGTERM/SIGINT in the CLI) takes no more readings, waits up to `flush_timeout_s` for in-flight
acknowledgements, disconnects and leaves everything else in the spool for the next start.
"""

from __future__ import annotations

import enum
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from edge_agent import mqtt_client
from edge_agent.backoff import reconnect_delay_s
from edge_agent.config import AgentConfig
from edge_agent.rate import reading_interval_s
from edge_agent.sensors import SensorSource, SensorUnavailable, vehicle_mode
from edge_agent.spool import Spool
from edge_agent.wire import encode

log = logging.getLogger("edge_agent")

_MAX_WAIT_S = 0.1  # longest the loop blocks: how quickly stop() and a finished connect are noticed


@dataclass
class AgentStats:
    """Counters of this run (the spool's dropped_total spans every run)."""

    readings: int = 0
    published: int = 0  # acknowledged by the broker
    spooled: int = 0  # messages that waited in the spool for a reconnect (flagged resent)
    resent: int = 0  # acknowledged messages that carried resent=true
    dropped: int = 0  # evicted from the full spool during this run
    rejected: int = 0  # refused by the broker (MQTT 5 PUBACK reason >= 0x80), removed from the spool
    sensor_errors: int = 0  # sensor reads that raised (no reading, no seq used)
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    last_seq: int = 0
    left_in_spool: int = 0  # set at shutdown
    dropped_total: int = 0  # set at shutdown

    def summary(self, vehicle_id: int) -> str:
        return (
            f"edge-agent vehicle {vehicle_id}: readings {self.readings}, published {self.published}, "
            f"spooled {self.spooled}, resent {self.resent}, dropped {self.dropped}, rejected {self.rejected}, "
            f"left in spool {self.left_in_spool}, last seq {self.last_seq} "
            f"(dropped since the spool was created: {self.dropped_total})"
        )


class LinkState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"  # TCP/TLS connect running in the helper thread
    AWAIT_CONNACK = "await_connack"
    CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class _InFlight:
    row_id: int
    seq: int
    resent: bool


class EdgeAgent:
    """One vehicle's agent. `run()` blocks until stopped; `stop()`/`finish()` may be called from any thread."""

    def __init__(
        self,
        config: AgentConfig,
        sensor: SensorSource,
        *,
        client_factory: Callable[[AgentConfig], mqtt.Client] | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.sensor = sensor
        self.spool = Spool(
            config.spool_dir,
            max_messages=config.max_spool_messages,
            max_bytes=config.max_spool_bytes,
            durable=config.spool_durable,
        )
        self.stats = AgentStats(last_seq=self.spool.last_seq)
        if client_factory is None:
            tls = mqtt_client.tls_context(config) if config.tls_enabled else None
            client_factory = lambda cfg: mqtt_client.make_client(cfg, tls)  # noqa: E731
        self._client_factory = client_factory
        self._rng = rng or random.Random()
        self._clock = monotonic

        self.state = LinkState.DISCONNECTED
        self._client: mqtt.Client | None = None
        self._connector: threading.Thread | None = None
        self._connect_error: BaseException | None = None
        self._connack_deadline = 0.0
        self._next_connect_at = 0.0
        self._failures = 0  # consecutive failed attempts (drives the backoff)
        self._offline = False  # an attempt failed / the connection was lost, and no CONNACK since
        self._lost_reason: str | None = None  # set by callbacks, handled by the loop

        self._inflight: dict[int, _InFlight] = {}  # paho mid → spool row
        self._sent_upto = 0  # highest spool row id published on the current connection
        self._acked: list[int] = []  # row ids acknowledged, deleted after each network pass

        self._next_reading_at = 0.0
        self._sensor_errors_in_a_row = 0
        self._wake = threading.Event()
        self._stop_requested = threading.Event()
        self._finish_requested = threading.Event()
        self._finish_timeout_s: float | None = None
        self._finish_deadline: float | None = None
        self.running = threading.Event()  # set while run() is inside its loop

    # --- control, from any thread -------------------------------------------------------------

    def stop(self) -> None:
        """Take no more readings, wait up to flush_timeout_s for in-flight acks, leave the rest spooled."""
        self._stop_requested.set()
        self._wake.set()

    def finish(self, timeout_s: float | None = None) -> None:
        """Take no more readings, deliver the whole spool (or give up after timeout_s), then stop."""
        self._finish_timeout_s = timeout_s
        self._finish_requested.set()
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self.state is LinkState.CONNECTED

    # --- the loop -------------------------------------------------------------------------------

    def run(self) -> AgentStats:
        start = self._clock()
        end = start + self.config.duration_s if self.config.duration_s is not None else None
        self._next_reading_at = start
        self.running.set()
        try:
            while not self._stop_requested.is_set():
                now = self._clock()
                if end is not None and now >= end:
                    break
                if self._finish_requested.is_set():
                    if self._finish_deadline is None:
                        timeout = self._finish_timeout_s
                        self._finish_deadline = now + timeout if timeout is not None else float("inf")
                        log.info("finishing: no more readings; %d messages in the spool to deliver", len(self.spool))
                    if (not self.spool and not self._inflight) or now >= self._finish_deadline:
                        break
                elif now >= self._next_reading_at:
                    self.take_reading(now)
                    if self.config.max_readings is not None and self.stats.readings >= self.config.max_readings:
                        self.finish()
                self._tend_connection(self._clock())
                if self.state is LinkState.CONNECTED:
                    self._publish_from_spool()
                self._wait()
        finally:
            self._shutdown()
            self.running.clear()
        return self.stats

    def take_reading(self, now: float | None = None) -> dict[str, Any] | None:
        """Read the sensors, number the reading and spool it; schedule the next one by the mode's rate.

        A sensor failure is logged and counted, and the next reading comes at the normal rate: the
        agent never stops reporting because one read went wrong. Returns the message, or None.
        """
        now = self._clock() if now is None else now
        try:
            reading = self.sensor.read()
        except Exception as exc:
            self.stats.sensor_errors += 1
            self._sensor_errors_in_a_row += 1
            if not isinstance(exc, SensorUnavailable):
                log.exception("sensor read failed (%d so far)", self.stats.sensor_errors)
            elif self._sensor_errors_in_a_row % 60 == 1:  # expected (no feed yet, a stale one): the first, then every 60th
                log.warning("no sensor reading (%d so far): %s", self.stats.sensor_errors, exc)
            self._next_reading_at = now + 1.0 / self.config.rates.normal_hz / self.config.speedup
            return None
        self._sensor_errors_in_a_row = 0
        seq = self.stats.last_seq + 1
        message = {**reading, "seq": seq}
        evicted = self.spool.append(seq, encode(message), resent=self._offline, keep_upto_id=self._sent_upto)
        self.stats.last_seq = seq
        self.stats.readings += 1
        if self._offline:
            self.stats.spooled += 1
        if evicted:
            before, self.stats.dropped = self.stats.dropped, self.stats.dropped + evicted
            if before == 0 or before // 1000 != self.stats.dropped // 1000:  # the first drop, then every 1000
                log.warning("spool full (%d messages, %d bytes): dropping the oldest, %d so far in this run",
                            len(self.spool), self.spool.bytes, self.stats.dropped)
        battery = (reading.get("battery") or {}).get("percent")
        interval = reading_interval_s(vehicle_mode(reading), battery, self.config.rates) / self.config.speedup
        self._next_reading_at = max(self._next_reading_at + interval, now)
        return message

    def _wait(self) -> None:
        """Block until the next thing to do (at most _MAX_WAIT_S), running paho's network loop when connected."""
        now = self._clock()
        timeout = _MAX_WAIT_S
        if not self._finish_requested.is_set():
            timeout = min(timeout, self._next_reading_at - now)
        if self.state is LinkState.DISCONNECTED:
            timeout = min(timeout, self._next_connect_at - now)
        timeout = max(0.0, timeout)
        client = self._client
        if client is not None and self.state in (LinkState.AWAIT_CONNACK, LinkState.CONNECTED):
            rc = client.loop(timeout)
            if rc != mqtt.MQTT_ERR_SUCCESS and self._lost_reason is None:
                self._lost_reason = mqtt.error_string(rc)
            self._flush_acks()
        else:
            self._wake.wait(timeout)
            self._wake.clear()

    # --- connection -----------------------------------------------------------------------------

    def _tend_connection(self, now: float) -> None:
        if self._lost_reason is not None:
            reason, self._lost_reason = self._lost_reason, None
            self._disconnected(now, reason)
        if self.state is LinkState.DISCONNECTED:
            if now >= self._next_connect_at and not self._finish_deadline_passed(now):
                self._start_connect(now)
        elif self.state is LinkState.CONNECTING:
            if not self._connector.is_alive():
                self._connector = None
                if self._connect_error is not None:
                    self._disconnected(now, f"{type(self._connect_error).__name__}: {self._connect_error}")
                else:
                    self.state = LinkState.AWAIT_CONNACK
                    self._connack_deadline = now + self.config.connect_timeout_s
        elif self.state is LinkState.AWAIT_CONNACK and now >= self._connack_deadline:
            self._disconnected(now, f"no CONNACK within {self.config.connect_timeout_s:g}s")

    def _finish_deadline_passed(self, now: float) -> bool:
        return self._finish_deadline is not None and now >= self._finish_deadline

    def _start_connect(self, now: float) -> None:
        client = self._client_factory(self.config)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        self._connect_error = None
        self.state = LinkState.CONNECTING

        def attempt() -> None:
            try:
                mqtt_client.connect(client, self.config)
            except Exception as exc:  # noqa: BLE001 - any failure to connect means "retry later"
                self._connect_error = exc
            finally:
                self._wake.set()

        self._connector = threading.Thread(target=attempt, name=f"edge-agent-connect-{self.config.vehicle_id}", daemon=True)
        self._connector.start()

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any) -> None:
        if client is not self._client:
            return
        if reason_code.is_failure:
            self._lost_reason = f"connection refused: {reason_code}"
            return
        self.state = LinkState.CONNECTED
        self._failures = 0
        self._offline = False
        self._sent_upto = 0
        self.stats.connects += 1
        log.info(
            "connected to %s:%d as %s; %d messages in the spool",
            self.config.broker_host, self.config.broker_port, self.config.mqtt_client_id, len(self.spool),
        )

    def _on_disconnect(self, client: mqtt.Client, _userdata: Any, _flags: Any, reason_code: Any, _properties: Any) -> None:
        if client is self._client and self._lost_reason is None:
            self._lost_reason = f"disconnected: {reason_code}"

    def _disconnected(self, now: float, reason: str) -> None:
        """The connection (or the attempt) ended: keep every row, flag it resent, back off, retry."""
        was_connected = self.state is LinkState.CONNECTED
        self._flush_acks()
        unacknowledged = len(self._inflight)
        self._inflight.clear()
        self.stats.spooled += self.spool.mark_resent()
        self._offline = True
        self._sent_upto = 0
        self._discard_client()
        self.state = LinkState.DISCONNECTED
        self._failures += 1
        delay = reconnect_delay_s(self._failures, self.config.reconnect_min_s, self.config.reconnect_max_s, self._rng)
        self._next_connect_at = now + delay
        if was_connected:
            self.stats.disconnects += 1
            log.warning("connection lost (%s); %d unacknowledged, %d in the spool; reconnect in %.2fs",
                        reason, unacknowledged, len(self.spool), delay)
        else:
            self.stats.connect_failures += 1
            log.warning("cannot connect to %s:%d (%s); attempt %d, next in %.2fs",
                        self.config.broker_host, self.config.broker_port, reason, self._failures, delay)

    def _discard_client(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        if self._connector is not None:  # a connect still running: let it finish in the background
            self._connector = None
            return
        try:
            client.disconnect()
        except Exception:  # noqa: BLE001 - the socket may already be gone
            pass
        sock = client.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # --- publishing -----------------------------------------------------------------------------

    def _publish_from_spool(self) -> None:
        window = self.config.max_inflight - len(self._inflight)
        if window <= 0 or self._sent_upto >= self.spool.last_id:
            return
        client = self._client
        for message in self.spool.read(after_id=self._sent_upto, limit=window):
            info = client.publish(self.config.topic, message.payload, qos=1)
            self._inflight[info.mid] = _InFlight(message.id, message.seq, message.resent)
            self._sent_upto = message.id
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                self._lost_reason = f"publish failed: {mqtt.error_string(info.rc)}"
                return

    def _on_publish(self, client: mqtt.Client, _userdata: Any, mid: int, reason_code: Any, _properties: Any) -> None:
        if client is not self._client:
            return
        entry = self._inflight.pop(mid, None)
        if entry is None:  # not ours (cannot happen for QoS 1 in this single thread); it stays spooled
            log.warning("acknowledgement for unknown message id %d", mid)
            return
        if reason_code.is_failure:
            # The broker refused it (e.g. not authorised for the topic): sending it again would be
            # refused again and block every later message. Counted and logged, never silent.
            self.stats.rejected += 1
            log.error("broker refused seq %d: %s", entry.seq, reason_code)
        else:
            self.stats.published += 1
            if entry.resent:
                self.stats.resent += 1
        self._acked.append(entry.row_id)

    def _flush_acks(self) -> None:
        if self._acked:
            self.spool.delete(self._acked)
            self._acked.clear()

    # --- shutdown -------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        deadline = self._clock() + self.config.flush_timeout_s
        try:
            client = self._client
            while (
                self.state is LinkState.CONNECTED and self._inflight and self._lost_reason is None
                and self._clock() < deadline and client is not None
            ):
                rc = client.loop(max(0.0, min(_MAX_WAIT_S, deadline - self._clock())))
                self._flush_acks()
                if rc != mqtt.MQTT_ERR_SUCCESS:
                    break
            if self._inflight:
                # Flagged again by the next Spool() anyway; flagging now keeps the file truthful.
                log.warning("%d messages unacknowledged at shutdown: they stay in the spool", len(self._inflight))
                self.spool.mark_resent(entry.row_id for entry in self._inflight.values())
                self._inflight.clear()
            if self._connector is not None:  # a connect in progress: give it the rest of the flush time
                self._connector.join(timeout=max(0.0, deadline - self._clock()))
                if not self._connector.is_alive():
                    self._connector = None
            self._discard_client()
            self.state = LinkState.DISCONNECTED
        finally:
            self._flush_acks()
            self.stats.left_in_spool = len(self.spool)
            self.stats.dropped_total = self.spool.dropped_total
            self.spool.close()
            log.debug(self.stats.summary(self.config.vehicle_id))
