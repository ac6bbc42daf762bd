"""`telemetry bench alerts`: ingest→alert latency of the anomaly job at a given event rate.

Starts Kafka if needed, runs the anomaly job on the MiniCluster against fresh topics, produces
simulated telemetry open-loop at `rate` events/s in which a share of vehicles alternate between a
flat battery and the charger (so every such pair raises exactly one low-battery alert), and reads
the alerts as an operator's consumer would. Latency = when the consumer received one of those low-battery
alerts minus when its triggering event entered Kafka (the record's create time, carried as
`ingested_at_ms`). Other alerts the simulated fleet raises (vehicles outside the service area) are
counted by kind, not timed.
Prints p50/p95/p99/max and writes the figures to a JSON file. No assertions: it measures.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from connectors.kafka_clients import make_consumer, make_producer
from connectors.kafka_topics import TopicSpec, admin_client, ensure_topics
from device_sim.fleet_model import Fleet, FleetSpec
from fleet.config import PlatformConfig
from fleet.percentiles import KEYS, latency_percentiles, rounded_index
from infra.manager import LocalInfra

if TYPE_CHECKING:
    from jobs.anomaly_detection import AnomalyConfig


def latency_summary(values: list[float]) -> dict[str, float | None]:
    found = latency_percentiles(values, rounded_index)
    return {**(found or dict.fromkeys(KEYS)), "mean": round(statistics.fmean(values), 1) if values else None}


def anomaly_job_on_fresh_topics(config: PlatformConfig, prefix: str) -> tuple[AnomalyConfig, str]:
    """The anomaly job's config on topics of its own, `<prefix>-telemetry-<suffix>` and
    `<prefix>-alerts-<suffix>` (created here), in consumer group `<prefix>-<suffix>`; and the suffix."""
    from jobs.anomaly_detection import anomaly_config

    suffix = uuid.uuid4().hex[:8]
    telemetry, alerts_topic = f"{prefix}-telemetry-{suffix}", f"{prefix}-alerts-{suffix}"
    ensure_topics(admin_client(config.kafka.bootstrap_servers), [
        TopicSpec("telemetry", telemetry, config.kafka.topic("telemetry").partitions, 1, {}),
        TopicSpec("alerts", alerts_topic, 1, 1, {}),
    ])
    job = replace(anomaly_config(config, start="earliest"), telemetry_topic=telemetry, alerts_topic=alerts_topic,
                  group_id=f"{prefix}-{suffix}")
    return job, suffix


def write_result(config: PlatformConfig, name: str, result: dict[str, Any]) -> dict[str, Any]:
    """`result` written to <run_dir>/bench/<name>-<epoch s>.json, and returned with that "file"."""
    out = Path(config.infra.run_dir) / "bench" / f"{name}-{int(time.time())}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    result["file"] = str(out)
    return result


def run_alert_benchmark(
    config: PlatformConfig, *, rate: float, seconds: float, vehicles: int, alert_share: float, warmup_s: float = 5.0
) -> dict[str, Any]:
    from jobs.anomaly_detection import build
    from jobs.flink_env import create_env

    LocalInfra(config.infra).up(["kafka"])
    bootstrap = config.kafka.bootstrap_servers
    job, suffix = anomaly_job_on_fresh_topics(config, "bench")
    job = replace(job, outputs=frozenset({"kafka"}))
    telemetry, alerts_topic = job.telemetry_topic, job.alerts_topic
    env = create_env(config.flink)
    build(env, job)
    client = env.execute_async("anomaly detection (benchmark)")

    latencies: list[float] = []
    warmup: list[float] = []
    measure_from_ms = [float("inf")]
    in_job: list[float] = []  # ingest → raised by the detector: source, parse, keyed hop
    others: dict[str, int] = {}
    stop = threading.Event()
    fleet = Fleet(FleetSpec(vehicles=vehicles))
    alerting = set(fleet.vehicle_ids[: max(1, int(vehicles * alert_share))])

    def consume() -> None:
        consumer = make_consumer(bootstrap, f"bench-reader-{suffix}", **{"isolation.level": "read_uncommitted"})
        consumer.subscribe([alerts_topic])
        try:
            while not stop.is_set():
                for message in consumer.consume(num_messages=1_000, timeout=0.1):
                    if message.error() is None:
                        alert = orjson.loads(message.value())
                        others[alert["kind"]] = others.get(alert["kind"], 0) + 1
                        # The controlled alerts: one per flat-battery event of the flipping vehicles.
                        if alert["kind"] == "low_battery" and alert["vehicle_id"] in alerting:
                            now_ms = time.time() * 1000
                            # The first seconds (the fleet's first positions, Python warm-up) are reported apart.
                            warm = alert["ingested_at_ms"] >= measure_from_ms[0]
                            (latencies if warm else warmup).append(now_ms - alert["ingested_at_ms"])
                            if warm:
                                in_job.append(alert["raised_at_ms"] - alert["ingested_at_ms"])
        finally:
            consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(8)  # let the job start and the reader join its group before the clock starts

    producer = make_producer(bootstrap, **{"linger.ms": 1})
    sent = expected_alerts = 0
    low_next: dict[int, bool] = {}
    started = time.perf_counter()
    measure_from_ms[0] = time.time() * 1000 + warmup_s * 1000
    for event in fleet.events(ticks=10**9):
        if time.perf_counter() - started >= seconds:
            break
        vehicle_id = event["vehicle_id"]
        event["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000Z"
        if vehicle_id in alerting:
            low = low_next.get(vehicle_id, True)
            event["battery"]["percent"], event["battery"]["charging"] = (8, False) if low else (8, True)
            low_next[vehicle_id] = not low
            expected_alerts += low
        producer.produce(telemetry, orjson.dumps(event), str(vehicle_id).encode())
        sent += 1
        ahead = sent / rate - (time.perf_counter() - started)
        if ahead > 0:
            time.sleep(ahead)  # poll(timeout) returns early on any delivery report: not a clock
        producer.poll(0)
    producer.flush(30)
    elapsed = time.perf_counter() - started
    deadline = time.monotonic() + 20
    while len(latencies) + len(warmup) < expected_alerts and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    reader.join(5)
    client.cancel().result()

    result = {
        "target_rate": rate,
        "achieved_rate": round(sent / elapsed, 1),
        "events": sent,
        "alerts_expected": expected_alerts,
        "alerts_received": len(latencies) + len(warmup),
        "alerts_by_kind": others,
        "warmup_s": warmup_s,
        "latency_ms": latency_summary(latencies),
        "warmup_latency_ms": latency_summary(warmup),
        "ingest_to_detector_ms": latency_summary(in_job),
        "parallelism": config.flink.parallelism,
        "execution_mode": config.flink.execution_mode,
    }
    return write_result(config, "alerts-latency", result)
