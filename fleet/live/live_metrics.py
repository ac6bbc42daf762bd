"""`telemetry live`'s own /metrics: the figures of its status (per-stage totals, lag, latency,
Bronze), read from the collector's latest snapshot at scrape time, so Prometheus and the terminal
never disagree."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class LiveStatusCollector:
    def __init__(self, collector: Any):
        self.collector = collector

    def collect(self) -> Iterator[Any]:
        snapshot = self.collector.snapshot()
        if not snapshot.get("stages"):
            return
        events = CounterMetricFamily("live_stage_events", "events through each stage this session", labels=["stage"])
        rates = GaugeMetricFamily("live_stage_rate_events_per_second", "events/s of each stage (5 s window)", labels=["stage"])
        for stage in snapshot["stages"]:
            if stage["total"] is not None:
                events.add_metric([stage["key"]], stage["total"])
            if stage["rate"] is not None:
                rates.add_metric([stage["key"]], stage["rate"])
        yield events
        yield rates
        lag = GaugeMetricFamily("live_consumer_lag_events", "records of the input topic a job has not committed past", labels=["group"])
        for job in snapshot["lag"].values():
            if job["events"] is not None:
                lag.add_metric([job["group"]], job["events"])
        yield lag
        latency = GaugeMetricFamily("live_latency_ms", "latency percentiles over the last 30 s", labels=["path", "quantile"])
        for path, values in snapshot["latency_ms"].items():
            for q in ("p50", "p95", "p99"):
                if values:
                    latency.add_metric([path, q], values[q])
        yield latency
        dlq = CounterMetricFamily("live_dlq_records", "DLQ records this session by reason", labels=["reason"])
        for reason, count in snapshot["dlq_by_reason"].items():
            dlq.add_metric([reason], count)
        yield dlq
        bronze = GaugeMetricFamily("live_bronze", "committed Bronze files and rows this session", labels=["what"])
        bronze.add_metric(["files"], snapshot["bronze"]["files"])
        bronze.add_metric(["rows"], snapshot["bronze"]["rows"])
        yield bronze
        yield GaugeMetricFamily("live_steady", "1 when every stage flows and the jobs keep up", value=1 if snapshot["steady"] else 0)


def serve_live_metrics(collector: Any, host: str, port: int) -> Any:
    """Serve on host:port in a thread; returns the server (`.shutdown()` stops it)."""
    registry = CollectorRegistry()
    registry.register(LiveStatusCollector(collector))
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return server
