"""The MQTT→Kafka bridge's Prometheus metrics and health endpoint: `telemetry bridge --metrics-port N`.

    GET /metrics   the bridge's counters, read from `bridge.stats()` when scraped (no second set of
                   counters to keep in step; stats() is safe from any thread)
    GET /healthz   200 {"ok": true, …} while the MQTT connection is up and Kafka writes flow;
                   503 {"ok": false, "reason": …, "detail": …} otherwise

Series (prometheus_client adds `_total` to counters):

    bridge_received_total              PUBLISH packets read (redeliveries and deferred ones included)
    bridge_forwarded_total             telemetry writes Kafka confirmed
    bridge_rejected_total{reason}      DLQ writes Kafka confirmed, by reason (iot_rule,
                                       vehicle_id_mismatch, and the schema's reasons)
    bridge_acked_total                 PUBACKs sent (only after Kafka confirmed the write)
    bridge_deferred_total              messages left unacknowledged for the broker to resend
    bridge_redelivered_total           resent copies of a message already being written
    bridge_delivery_failed_total       Kafka writes that failed (never acknowledged)
    bridge_resyncs_total, bridge_reconnects_total, bridge_sessions_lost_total
    bridge_in_flight                   gauge: messages held unacknowledged now
    bridge_connected                   gauge: 1 while connected and subscribed to the broker
    bridge_healthy                     gauge: 1 when /healthz would answer 200

**Health.** Unhealthy when the MQTT connection is down (`mqtt_disconnected`); when the newest
Kafka delivery failure is more recent than the newest confirmed write (`kafka_delivery_failing`);
or when messages are held unacknowledged but no write has been confirmed for `stall_s`
(`kafka_writes_stalled`: Kafka unreachable, before librdkafka's delivery timeout turns the writes
into failures). An idle bridge (nothing held) with a connection is healthy. "Most recent" is known
to the sampling interval: a sampler thread reads stats() every `sample_every_s`, and every request
samples too.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from ingest.http_reply import send_body

Stats = Callable[[], dict[str, Any]]

MQTT_DISCONNECTED = "mqtt_disconnected"
KAFKA_DELIVERY_FAILING = "kafka_delivery_failing"
KAFKA_WRITES_STALLED = "kafka_writes_stalled"

_COUNTERS = (  # stats() key → help text; the series is bridge_<key>_total
    ("received", "MQTT PUBLISH packets read (redeliveries and deferred ones included)"),
    ("forwarded", "telemetry writes Kafka confirmed"),
    ("acked", "MQTT PUBACKs sent, each after Kafka confirmed the write"),
    ("deferred", "messages left unacknowledged for the broker to resend after a resync"),
    ("redelivered", "resent copies of a message whose write was already under way"),
    ("delivery_failed", "Kafka writes that failed (their messages are never acknowledged)"),
    ("resyncs", "session reconnects after a failed write or a deferral"),
    ("reconnects", "MQTT reconnects (resyncs included)"),
    ("sessions_lost", "reconnects that found the broker without our session"),
)


class BridgeCollector:
    """A prometheus_client collector that reads the bridge's stats() at scrape time."""

    def __init__(self, stats: Stats, health: BridgeHealth | None = None, reasons: tuple[str, ...] = ()):
        self.stats = stats
        self.health = health
        self.reasons = reasons  # always exported (0 until seen), so rate() has a series from the start

    def collect(self) -> Iterator[Any]:
        stats = self.stats()
        for key, help_text in _COUNTERS:
            yield CounterMetricFamily(f"bridge_{key}", help_text, value=stats[key])
        rejected = CounterMetricFamily("bridge_rejected", "DLQ writes Kafka confirmed, by rejection reason", labels=["reason"])
        for reason, count in sorted({**dict.fromkeys(self.reasons, 0), **stats["rejected"]}.items()):
            rejected.add_metric([reason], count)
        yield rejected
        yield GaugeMetricFamily("bridge_in_flight", "MQTT messages held unacknowledged now", value=stats["in_flight"])
        yield GaugeMetricFamily("bridge_connected", "1 while connected and subscribed to the MQTT broker", value=1 if stats["connected"] else 0)
        if self.health is not None:
            yield GaugeMetricFamily("bridge_healthy", "1 when /healthz answers 200", value=1 if self.health.check(stats).ok else 0)


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str | None
    detail: str
    facts: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"ok": self.ok, **({"reason": self.reason} if self.reason else {}), "detail": self.detail, **self.facts}


class BridgeHealth:
    """Judges health from successive stats() samples (see the module doc)."""

    def __init__(self, stats: Stats, *, stall_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.stats = stats
        self.stall_s = stall_s
        self.clock = clock
        self._lock = threading.Lock()
        self._written: int | None = None
        self._written_at: float | None = None  # when the confirmed-write count was last seen to change
        self._failed: int | None = None
        self._failed_at: float | None = None
        self._held_since: float | None = None  # first sample of the current stretch with messages held and no new write

    def observe(self, stats: dict[str, Any] | None = None) -> dict[str, Any]:
        stats = self.stats() if stats is None else stats
        now = self.clock()
        written = stats["forwarded"] + stats["rejected_total"]
        with self._lock:
            # What changed since the last sample happened now; before the first one, also "now"
            # (so writes and failures both seen at the first sample tie, which reads as healthy).
            if written != (self._written or 0):
                self._written_at = now
            if stats["delivery_failed"] != (self._failed or 0):
                self._failed_at = now
            if stats["in_flight"] == 0 or (self._written is not None and written != self._written):
                self._held_since = None
            elif self._held_since is None:
                self._held_since = now
            self._written, self._failed = written, stats["delivery_failed"]
        return stats

    def check(self, stats: dict[str, Any] | None = None) -> Health:
        stats = self.observe(stats)
        now = self.clock()
        with self._lock:
            written_at, failed_at, held_since = self._written_at, self._failed_at, self._held_since
        facts = {
            "connected": stats["connected"], "in_flight": stats["in_flight"], "forwarded": stats["forwarded"],
            "rejected": stats["rejected_total"], "delivery_failed": stats["delivery_failed"],
            "last_write_s_ago": None if written_at is None else round(now - written_at, 1),
            "last_error": stats["last_error"],
        }
        if not stats["connected"]:
            return Health(False, MQTT_DISCONNECTED, f"not connected to the MQTT broker (last error: {stats['last_error']})", facts)
        if failed_at is not None and (written_at is None or failed_at > written_at):
            return Health(False, KAFKA_DELIVERY_FAILING, f"Kafka writes fail and none succeeded since (last error: {stats['last_error']})", facts)
        if held_since is not None and now - held_since >= self.stall_s:
            return Health(False, KAFKA_WRITES_STALLED,
                          f"{stats['in_flight']} messages held and no Kafka write confirmed for {now - held_since:.0f} s", facts)
        return Health(True, None, "connected; Kafka writes flowing" if stats["in_flight"] or written_at else "connected; idle", facts)


class BridgeMetricsServer:
    """/metrics and /healthz on host:port, in threads of their own; `close()` stops them."""

    def __init__(self, stats: Stats, host: str, port: int, *, reasons: tuple[str, ...] = (), stall_s: float = 10.0,
                 sample_every_s: float = 1.0):
        self.health = BridgeHealth(stats, stall_s=stall_s)
        self.registry = CollectorRegistry()
        self.registry.register(BridgeCollector(stats, self.health, reasons))
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self._done = threading.Event()
        self._threads = [
            threading.Thread(target=self._server.serve_forever, name="bridge-metrics-http", daemon=True),
            threading.Thread(target=self._sample, args=(sample_every_s,), name="bridge-health-sampler", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def _sample(self, every_s: float) -> None:
        while not self._done.wait(every_s):
            try:
                self.health.observe()
            except Exception:  # noqa: BLE001 - a failed sample is retried on the next tick
                pass

    def close(self) -> None:
        self._done.set()
        self._server.shutdown()
        self._server.server_close()


def _handler(server: BridgeMetricsServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                send_body(self, 200, CONTENT_TYPE_LATEST, generate_latest(server.registry))
            elif path == "/healthz":
                health = server.health.check()
                send_body(self, 200 if health.ok else 503, "application/json", json.dumps(health.body()).encode())
            else:
                send_body(self, 404, "text/plain; charset=utf-8", b"/metrics or /healthz\n")

        def log_message(self, *_args: Any) -> None:  # Prometheus scrapes every few seconds: no access log
            pass

    return Handler


def serve_bridge_metrics(bridge: Any, host: str, port: int, **options: Any) -> BridgeMetricsServer:
    """Serve a MqttKafkaBridge's metrics and health on host:port."""
    from ingest.rules import BRIDGE_REASONS

    return BridgeMetricsServer(bridge.stats, host, port, reasons=BRIDGE_REASONS, **options)
