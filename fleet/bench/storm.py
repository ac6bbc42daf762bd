"""`telemetry bench storm`: the alert fan-out during a storm, against the moto server.

In one run, on the same moto server:
  1. the limits of SNS here: alerts/s published one `publish` per alert (the fan-out before the
     storm work: one synchronous call per alert) and with `publish_batch` (PublishBatch of 10,
     `alerts.publish_concurrency` in flight);
  2. the anomaly job on the MiniCluster, fresh topics, while `--alerts` vehicles each send one
     position outside the service area spread over `--zones` zones (a GPS glitch), open loop at
     `--rate` events/s, and `--ordinary-every-ms` an unrelated vehicle inside the area runs flat
     (one low-battery alert each, each in a zone of its own).
     `--through fanout` measures the fan-out alone: the same alerts, made as the detector makes
     them, are produced to a topic that a job of only the fan-out (source → storm guard →
     publisher → fleet-alerts) reads, so the detector's own rate does not bound the figure.
Read from fleet-alerts as an operator's consumer would: storm alerts recorded per second, pages
(records marked paged, each handed on only after SNS accepted it) per second, the summaries, and
the latency of the ordinary alerts = arrival on fleet-alerts − when the triggering event entered
Kafka (an upper bound of ingest→paged, as the alert reaches Kafka after its publish).
`--no-guard` lifts the storm guard (pages_per_window = 10^9): every alert is paged.
Prints the figures and writes them to <run_dir>/bench/storm-<time>.json. No assertions: it measures.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson

from connectors.kafka_clients import make_consumer, make_producer
from fleet.bench.alerts import anomaly_job_on_fresh_topics, latency_summary, write_result
from fleet.config import PlatformConfig
from infra.manager import LocalInfra
from udfs.geohash import zone_id
from udfs.telemetry_schema import format_timestamp_ms

STORM_FIRST_VEHICLE = 1_000_000
ORDINARY_FIRST_VEHICLE = 9_000_000
INSIDE = (50.1105, 8.6821)  # the seed's sample point, inside the Frankfurt service area


def ordinary_positions(count: int) -> list[tuple[float, float]]:
    """Up to `count` points inside the service area, each in a geohash-6 cell of its own."""
    from udfs.geofence import DEFAULT_SERVICE_AREA, load_service_area

    area = load_service_area(DEFAULT_SERVICE_AREA)
    points, zones = [], set()
    for row in range(40):
        for column in range(40):
            lat, lon = 50.06 + row * 0.003, 8.60 + column * 0.005
            if area.contains(lat, lon) and zone_id(lat, lon) not in zones:
                zones.add(zone_id(lat, lon))
                points.append((lat, lon))
    return points[:count]


def storm_positions(zones: int) -> list[tuple[float, float]]:
    """`zones` points north of the service area, each in a geohash-6 cell of its own."""
    points = [(50.30 + (i // 20) * 0.02, 8.30 + (i % 20) * 0.03) for i in range(zones)]
    if len({zone_id(lat, lon) for lat, lon in points}) != zones:
        raise AssertionError("storm positions share a zone")
    return points


def _sample_alert(n: int) -> dict[str, Any]:
    return {
        "alert_id": str(uuid.uuid4()), "kind": "geofence_exit", "severity": "critical", "vehicle_id": n,
        "zone_id": "u0yqxp", "subject": f"Geofence Violation: Vehicle {n}",
        "message": f"Vehicle {n} is outside operational area. Location: 50.4, 9.1", "details": {},
    }


def measure_sns_limits(config: PlatformConfig, *, sequential: int, batched: int) -> dict[str, Any]:
    from connectors.sns_alerts import SnsAlertPublisher

    topic = f"bench-storm-limit-{uuid.uuid4().hex[:8]}"
    single = SnsAlertPublisher(config.stores, topic)
    single.ensure_topic()
    started = time.perf_counter()
    for n in range(sequential):
        single.publish(_sample_alert(n))
    one_by_one = sequential / (time.perf_counter() - started)
    pool = SnsAlertPublisher(config.stores, topic, concurrency=config.alerts.publish_concurrency)
    pool.ensure_topic()
    alerts = [_sample_alert(n) for n in range(batched)]
    started = time.perf_counter()
    result = pool.publish_batch(alerts)
    batch_rate = len(result.message_ids) / (time.perf_counter() - started)
    pool.close()
    return {
        "publish_one_by_one_per_s": round(one_by_one, 1), "publish_one_by_one_alerts": sequential,
        "publish_batch_per_s": round(batch_rate, 1), "publish_batch_alerts": batched, "publish_batch_calls": result.calls,
        "publish_concurrency": config.alerts.publish_concurrency,
    }


def _build_fanout_only(env: Any, job: Any, alerts_in: str) -> None:
    """Kafka (alert JSON, as the detector emits it) → the fan-out → fleet-alerts."""
    from pyflink.common import Types, WatermarkStrategy

    from connectors.kafka_sink import value_only_sink
    from connectors.kafka_source import raw_bytes_source
    from jobs.alert_fanout import add_alert_fanout

    source = raw_bytes_source(job.bootstrap_servers, alerts_in, job.group_id, start=job.start)
    raw = env.from_source(source, WatermarkStrategy.no_watermarks(), "raised alerts source").uid("bench-raised-alerts-source")
    texts = raw.map(lambda value: bytes(value).decode(), output_type=Types.STRING()).name("decode").uid("bench-decode")
    add_alert_fanout(texts, job).sink_to(
        value_only_sink(job.bootstrap_servers, job.alerts_topic, "bench-storm-alerts", exactly_once=False)
    ).name("fleet-alerts sink").uid("bench-alerts-sink")


def _event(vehicle: int, now_ms: int, lat: float, lon: float, percent: float) -> dict[str, Any]:
    return {"vehicle_id": vehicle, "timestamp": format_timestamp_ms(now_ms), "location": {"lat": lat, "lon": lon},
            "battery": {"percent": percent, "charging": False}}


def _raised(kind: str, vehicle: int, now_ms: int, lat: float, lon: float) -> dict[str, Any]:
    """The alert the detector would raise for that event (udfs.alert_rules), with its timestamps."""
    from udfs.alert_rules import make_alert

    alert = make_alert(kind, vehicle, now_ms, event_time_ms=now_ms, lat=lat, lon=lon,
                       subject=f"{kind}: Vehicle {vehicle}", message=f"Vehicle {vehicle}: {kind} at {lat}, {lon}")
    alert["ingested_at_ms"] = alert["raised_at_ms"] = now_ms
    return alert


def run_storm_benchmark(
    config: PlatformConfig, *, alerts: int, zones: int, rate: float, ordinary_every_ms: float, guard: bool,
    through: str = "detector", sequential: int = 300, batched: int = 5_000,
) -> dict[str, Any]:
    if through not in ("detector", "fanout"):
        raise ValueError(f"through={through!r}: detector or fanout")
    from jobs.anomaly_detection import build
    from jobs.flink_env import create_env

    LocalInfra(config.infra).up(["kafka", "moto"])
    limits = measure_sns_limits(config, sequential=sequential, batched=batched)

    bootstrap = config.kafka.bootstrap_servers
    job, suffix = anomaly_job_on_fresh_topics(config, "bench-storm")
    job = replace(job, sns_topic=f"bench-storm-{suffix}",
                  alert_log=str(Path(config.infra.run_dir) / "bench" / f"storm-alerts-{suffix}.log"))
    telemetry, alerts_topic = job.telemetry_topic, job.alerts_topic
    if not guard:
        job = replace(job, fanout=replace(job.fanout, storm=replace(job.fanout.storm, pages_per_window=10**9)))
    policy = job.fanout.storm
    env = create_env(config.flink)
    if through == "detector":
        build(env, job)
    else:
        _build_fanout_only(env, job, telemetry)
    client = env.execute_async(f"alert storm benchmark (through the {through})")

    seen: dict[str, float] = {}  # alert_id → first arrival (s, wall clock)
    storm_arrivals: list[float] = []
    page_arrivals: list[float] = []
    exit_page_arrivals: list[float] = []  # the storm's own pages (not summaries, not the ordinary alerts)
    ordinary_ms: list[float] = []
    ordinary_in_job_ms: list[float] = []
    kinds: Counter = Counter()
    summaries: dict[str, dict[str, Any]] = {}
    stop = threading.Event()
    ready = threading.Event()

    def consume() -> None:
        consumer = make_consumer(bootstrap, f"bench-storm-reader-{suffix}", **{"isolation.level": "read_uncommitted"})
        consumer.subscribe([alerts_topic])
        try:
            while not stop.is_set():
                messages = consumer.consume(num_messages=2_000, timeout=0.1)
                ready.set() if consumer.assignment() else None
                now = time.time()
                for message in messages:
                    if message.error() is not None:
                        continue
                    alert = orjson.loads(message.value())
                    if alert["alert_id"] in seen:
                        continue  # a replay's repeat
                    seen[alert["alert_id"]] = now
                    kinds[alert["kind"]] += 1
                    if alert.get("paged"):
                        page_arrivals.append(now)
                    else:
                        kinds["unpaged"] += 1
                    if alert["kind"] == "alert_storm":
                        summaries[alert["alert_id"]] = alert
                    elif alert["kind"] == "geofence_exit":
                        storm_arrivals.append(now)
                        if alert.get("paged"):
                            exit_page_arrivals.append(now)
                    elif alert["kind"] == "low_battery" and alert["vehicle_id"] >= ORDINARY_FIRST_VEHICLE:
                        ordinary_ms.append(now * 1000 - alert["ingested_at_ms"])
                        ordinary_in_job_ms.append(alert["raised_at_ms"] - alert["ingested_at_ms"])
        finally:
            consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    ready.wait(30)
    time.sleep(8)  # let the job start (and open its SNS client) before the clock starts

    positions = storm_positions(zones)
    quiet = ordinary_positions(10_000)
    producer = make_producer(bootstrap, **{"linger.ms": 2})
    windows: Counter = Counter()
    ordinary_sent = 0
    next_ordinary = 0.0

    def send(kind: str, vehicle: int, now_ms: int, lat: float, lon: float) -> None:
        if through == "detector":
            record = _event(vehicle, now_ms, lat, lon, 5 if kind == "low_battery" else 70)
        else:
            record = _raised(kind, vehicle, now_ms, lat, lon)
        producer.produce(telemetry, orjson.dumps(record), str(vehicle).encode())

    started = time.perf_counter()
    for n in range(alerts):
        now_ms = int(time.time() * 1000)
        lat, lon = positions[n % zones]
        windows[(zone_id(lat, lon), now_ms - now_ms % policy.window_ms)] += 1
        send("geofence_exit", STORM_FIRST_VEHICLE + n, now_ms, lat, lon)
        elapsed = time.perf_counter() - started
        if elapsed >= next_ordinary:
            # Each in a zone of its own: unrelated to the storm and to each other.
            send("low_battery", ORDINARY_FIRST_VEHICLE + ordinary_sent, now_ms, *quiet[ordinary_sent % len(quiet)])
            ordinary_sent += 1
            next_ordinary += ordinary_every_ms / 1000
        if rate > 0:
            ahead = (n + 1) / rate - elapsed
            if ahead > 0:
                time.sleep(ahead)
        producer.poll(0)
    producer.flush(60)
    produce_s = time.perf_counter() - started

    expected_pages = sum(min(count, policy.pages_per_window) for count in windows.values())
    expected_summaries = sum(1 for count in windows.values() if count > policy.pages_per_window)
    deadline = time.monotonic() + 120 + policy.window_s
    while time.monotonic() < deadline:
        if kinds["geofence_exit"] >= alerts and len(ordinary_ms) >= ordinary_sent and len(summaries) >= expected_summaries:
            break
        time.sleep(0.2)
    stop.set()
    reader.join(10)
    client.cancel().result()

    def span_rate(times: list[float]) -> float | None:
        return round(len(times) / (max(times) - min(times)), 1) if len(times) > 1 and max(times) > min(times) else None

    result = {
        "through": through, "alerts": alerts, "zones": zones, "guard": guard, "target_rate": rate,
        "produced_per_s": round((alerts + ordinary_sent) / produce_s, 1),
        "storm_window_s": policy.window_s, "pages_per_window": policy.pages_per_window,
        "publish_concurrency": job.fanout.publish_concurrency, "publish_flush_ms": job.fanout.publish_flush_ms,
        "publish_shards": job.fanout.publish_shards,
        "storm_alerts_recorded": kinds["geofence_exit"],
        "storm_recorded_per_s": span_rate(storm_arrivals),
        # Every paged record (the exits within the limit, the summaries, the ordinary alerts); the
        # rate is that of the storm's own pages, first to last, each on fleet-alerts only once SNS took it.
        "pages": len(page_arrivals), "pages_expected": expected_pages + expected_summaries + ordinary_sent,
        "storm_pages": len(exit_page_arrivals), "storm_pages_per_s": span_rate(exit_page_arrivals),
        "summaries": len(summaries), "summaries_expected": expected_summaries,
        "suppressed": kinds["unpaged"],
        "ordinary_sent": ordinary_sent, "ordinary_received": len(ordinary_ms),
        "ordinary_latency_ms": latency_summary(ordinary_ms),
        "ordinary_ingest_to_detector_ms": latency_summary(ordinary_in_job_ms),
        "drain_s": round(max(storm_arrivals) - min(storm_arrivals), 2) if storm_arrivals else None,
        "limits": limits,
        "parallelism": config.flink.parallelism, "execution_mode": config.flink.execution_mode,
    }
    return write_result(config, "storm", result)


def _rate(per_s: float | None) -> str:
    return "n/a (all at once)" if per_s is None else f"{per_s:,.0f}/s"


def format_result(result: dict[str, Any]) -> str:
    limits, latency = result["limits"], result["ordinary_latency_ms"]
    lines = [
        f"SNS on moto, limits: one publish per alert {limits['publish_one_by_one_per_s']:,.0f} alerts/s; "
        f"publish_batch ({limits['publish_concurrency']} in flight) {limits['publish_batch_per_s']:,.0f} alerts/s",
        f"storm through the {result['through']}: {result['alerts']:,} geofence exits in {result['zones']} zones at {result['produced_per_s']:,.0f} records/s "
        f"(guard {'on: ' + str(result['pages_per_window']) + ' pages per ' + format(result['storm_window_s'], 'g') + ' s' if result['guard'] else 'off'})",
        f"recorded on fleet-alerts: {result['storm_alerts_recorded']:,} storm alerts, {_rate(result['storm_recorded_per_s'])} "
        f"(drained in {result['drain_s']} s)",
        f"paged: {result['pages']:,} of {result['pages_expected']:,} expected; the storm's {result['storm_pages']:,} at "
        f"{_rate(result['storm_pages_per_s'])}; "
        f"not paged {result['suppressed']:,}; summaries {result['summaries']} of {result['summaries_expected']}",
        f"ordinary alerts during the storm: {result['ordinary_received']} of {result['ordinary_sent']}, ingest→fleet-alerts ms "
        f"p50 {latency['p50']}  p95 {latency['p95']}  p99 {latency['p99']}  max {latency['max']}",
    ]
    return "\n".join(lines)


def add_parser(bench_cmd: Any, add: Any, config_of: Any) -> None:
    """`telemetry bench storm` in the bench subcommands (fleet/cli/app.py)."""

    def cmd_bench_storm(args: Any) -> int:
        result = run_storm_benchmark(
            config_of(args), alerts=args.alerts, zones=args.zones, rate=args.rate, ordinary_every_ms=args.ordinary_every_ms,
            guard=not args.no_guard, through=args.through, sequential=args.sequential, batched=args.batched,
        )
        print(format_result(result))
        print(f"written to {result['file']}")
        return 0

    storm = add(bench_cmd, "storm", cmd_bench_storm, "alert fan-out during a storm: alerts/s published, latency of an unrelated alert (moto SNS)")
    storm.add_argument("--alerts", type=int, default=50_000, help="vehicles that each leave the service area once")
    storm.add_argument("--zones", type=int, default=100, help="geohash-6 zones the storm is spread over")
    storm.add_argument("--rate", type=float, default=5_000, help="storm events/s, open loop (0: as fast as possible)")
    storm.add_argument("--ordinary-every-ms", type=float, default=100, help="an unrelated low-battery alert this often")
    storm.add_argument("--through", choices=("detector", "fanout"), default="detector",
                       help="detector: the whole anomaly job from telemetry; fanout: raised alerts into the fan-out alone")
    storm.add_argument("--no-guard", action="store_true", help="page every alert (storm_pages_per_window = 10^9)")
    storm.add_argument("--sequential", type=int, default=300, help="alerts for the one-publish-per-alert limit")
    storm.add_argument("--batched", type=int, default=5_000, help="alerts for the publish_batch limit")
