"""Debian's Prometheus (infra/prometheus.py, the scrape config docs/metrics.md shows) against the
running `telemetry live`: every process's target is up, and the series it stores agree with
Kafka, read here independently.

The pipeline's throughput series is its enriched sink's writer counter (Flink's `numRecordsSend`,
records handed to the exactly-once Kafka producer since the job started); the independent count is
the records of telemetry-enriched a read_committed consumer sees. Tolerance: the Prometheus sample
is up to one scrape interval (2 s) old, and records sent become visible in Kafka only when the
next checkpoint commits them (the profile's checkpoint interval), plus 2 s for the reads
themselves: |difference| <= rate x (2 s + checkpoint interval + 2 s), the rate measured on Kafka."""

from __future__ import annotations

import time

import pytest

from connectors.kafka_clients import end_offsets, read_values
from infra.process import free_port
from infra.prometheus import SCRAPE_INTERVAL_S, PrometheusServer
from tests.metrics_text import poll

pytestmark = pytest.mark.integration

ENRICHED_WRITER = 'flink_taskmanager_job_task_operator_numRecordsSend{job="flink-pipeline", operator_name=~"telemetry_enriched.*_Writer"}'
ENRICHED_SENT = f"sum({ENRICHED_WRITER})"
BRIDGE_FORWARDED = 'sum(bridge_forwarded_total{job="telemetry-bridge"})'
RATE_WINDOW_S = 30
JOBS = {"telemetry-sim", "telemetry-bridge", "flink-pipeline", "flink-alerts", "telemetry-live"}


def one(server: PrometheusServer, expr: str) -> float:
    result = server.query(expr)
    assert len(result) == 1, f"{expr}: {result}"
    return result[0][1]


def counted(read) -> tuple[float, int]:
    """(when the count was taken, the count): both readers count up to the end offsets taken first."""
    started = time.monotonic()
    return started, read()


def test_prometheus_scrapes_every_process_and_the_pipeline_throughput_matches_kafka(live_platform):
    config = live_platform.config
    bootstrap = config.kafka.bootstrap_servers
    enriched, telemetry = config.kafka.topic("enriched").name, config.kafka.topic("telemetry").name
    live_platform.wait_steady()
    committed = lambda: len(read_values(bootstrap, enriched))  # noqa: E731
    ingested = lambda: sum(end_offsets(bootstrap, telemetry).values())  # noqa: E731 - the bridge's producer writes no transactions
    server = PrometheusServer(config.infra.run_dir, config.infra.host, free_port())
    server.up(config)
    try:
        i0, ingested0 = counted(ingested)
        t0, committed0 = counted(committed)
        targets = poll(server.targets, lambda ts: {t["job"] for t in ts if t["health"] == "up"} == JOBS,
                       timeout_s=30, what=f"every job's target up ({sorted(JOBS)})")
        assert all(t["health"] == "up" for t in targets), [(t["job"], t["health"], t.get("lastError")) for t in targets]
        assert len([t for t in targets if t["job"] == "telemetry-bridge"]) == config.live.bridges
        # Enough history for a rate over RATE_WINDOW_S (a sample every 2 s).
        poll(lambda: server.query(f"min(count_over_time({ENRICHED_WRITER}[{RATE_WINDOW_S}s]))"),
             lambda r: r and r[0][1] >= RATE_WINDOW_S / SCRAPE_INTERVAL_S - 1, timeout_s=RATE_WINDOW_S + 30,
             what=f"{RATE_WINDOW_S} s of scrapes")

        t1, committed_before = counted(committed)
        sent = one(server, ENRICHED_SENT)
        prom_rate = one(server, f"sum(rate({ENRICHED_WRITER}[{RATE_WINDOW_S}s]))")
        _, committed_after = counted(committed)
        i1, ingested_before = counted(ingested)
        forwarded = one(server, BRIDGE_FORWARDED)
        _, ingested_after = counted(ingested)
    finally:
        assert server.down()  # by its pid

    kafka_rate = (committed_before - committed0) / (t1 - t0)
    assert kafka_rate > 0, (committed0, committed_before)
    tolerance = kafka_rate * (SCRAPE_INTERVAL_S + config.flink.checkpoint_interval_ms / 1000 + 2)
    print(f"enriched: committed {committed_before}..{committed_after}, Prometheus {sent:.0f} (±{tolerance:.0f}); "
          f"rate Kafka {kafka_rate:.1f}/s, Prometheus {prom_rate:.1f}/s; ingest {ingested_before}..{ingested_after}, "
          f"bridge forwarded {forwarded:.0f}")
    assert committed_before - tolerance <= sent <= committed_after + tolerance, (committed_before, sent, committed_after, tolerance)
    # The rate Prometheus computes over its last 30 s against Kafka's over the test's ~40 s.
    assert 0.65 * kafka_rate <= prom_rate <= 1.35 * kafka_rate, (prom_rate, kafka_rate)
    # The bridge's forwarded counter against the ingest topic (written by it alone in telemetry live);
    # a write is counted when Kafka confirms it, so only the scrape's age separates them.
    ingest_tolerance = (ingested_before - ingested0) / (i1 - i0) * (SCRAPE_INTERVAL_S + 2)
    assert ingested_before - ingest_tolerance <= forwarded <= ingested_after + ingest_tolerance, (
        ingested_before, forwarded, ingested_after, ingest_tolerance)
    assert server.status().pid is None
