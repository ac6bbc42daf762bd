"""`telemetry demo` (the README's `make run`): the whole local path, end to end, with a live status.

infra up → topics → vehicle registry → a simulated fleet (with re-sends and corrupted payloads)
into `vehicle-telemetry` → the telemetry pipeline on the embedded MiniCluster over exactly this
run's events → a summary per sink that must add up → a trace query → status of every server.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from connectors.hot_store import open_hot_store, open_status_store
from connectors.kafka_clients import end_offsets, read_values
from connectors.kafka_source import OffsetPosition
from connectors.kafka_topics import admin_client, ensure_topics, format_reports
from connectors.vehicle_registry_topic import publish_registry
from device_sim.defects import with_defects, with_resends
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import produce_events
from device_sim.registry import registry_records
from fleet.config import PlatformConfig
from infra.manager import LocalInfra, format_status
from udfs.telemetry_schema import Rejection, format_timestamp_ms, parse_timestamp_ms, validate

STEPS = 7


@dataclass(frozen=True)
class DemoPlan:
    vehicles: int
    events: int
    defects: int
    resends: int
    seed: int


def _step(number: int, text: str) -> float:
    print(f"\n[{number}/{STEPS}] {text}", flush=True)
    return time.perf_counter()


def _done(started: float) -> None:
    print(f"      done in {time.perf_counter() - started:.1f}s", flush=True)


def _bronze_rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def run_demo(config: PlatformConfig, *, vehicles: int, events: int, defects: int, resends: int, seed: int, keep_infra: bool) -> int:
    plan = DemoPlan(vehicles, events, defects, resends, seed)
    infra = LocalInfra(config.infra)
    kafka = config.kafka
    bootstrap = kafka.bootstrap_servers
    topic, enriched_topic, dlq_topic = kafka.topic("telemetry").name, kafka.topic("enriched").name, kafka.topic("dlq").name
    bronze_root = Path(config.pipeline.bronze_path.removeprefix("file://")) if config.pipeline.bronze_path.startswith("file://") else None
    try:
        started = _step(1, f"local servers up (run folder {config.infra.run_dir})")
        print(format_status(infra.up()))
        _done(started)

        started = _step(2, f"topics on {bootstrap}")
        print(format_reports(ensure_topics(admin_client(bootstrap), kafka.topics)))
        _done(started)

        fleet = Fleet(FleetSpec(vehicles=plan.vehicles, seed=plan.seed))
        started = _step(3, f"vehicle registry: {plan.vehicles} vehicles into {kafka.topic('registry').name}")
        publish_registry(bootstrap, kafka.topic("registry").name, registry_records(fleet.vehicle_ids, seed=plan.seed))
        _done(started)

        started = _step(4, f"simulate {plan.events} events from {plan.vehicles} vehicles, {plan.resends} re-sent, {plan.defects} corrupted")
        before = {name: end_offsets(bootstrap, name) for name in (topic, enriched_topic, dlq_topic)}
        bronze_before = set(bronze_root.rglob("*.parquet")) if bronze_root and bronze_root.exists() else set()
        generated = list(with_defects(fleet.take(plan.events), plan.events, plan.defects, plan.seed))
        sent = list(with_resends(generated, plan.resends, plan.seed))
        unique_valid = sum(1 for e in generated if not isinstance(validate(e), Rejection))
        expected_rejected = sum(1 for e in sent if isinstance(validate(e), Rejection))  # re-sent bad ones too
        first_event_ms = min(t for t in (parse_timestamp_ms(e.get("timestamp")) for e in generated) if t is not None)
        report = produce_events(bootstrap, topic, sent)
        print(
            f"      acknowledged {report.acknowledged} of {report.sent} ({report.rate:,.0f} events/s): "
            f"{unique_valid} unique valid, {report.sent - unique_valid - expected_rejected} re-sent, {expected_rejected} invalid"
        )
        if report.failed:
            print(f"      {report.failed} not acknowledged: {report.first_error}")
            return 1
        _done(started)

        started = _step(5, "telemetry pipeline on the embedded MiniCluster (PyFlink, thread mode), over this run's events")
        from jobs.flink_env import create_env
        from jobs.telemetry_pipeline import build, pipeline_config

        job = pipeline_config(config, start="earliest", stop="latest")
        from dataclasses import replace

        job = replace(job, start=OffsetPosition("offsets", offsets=before[topic]))
        env = create_env(config.flink)
        build(env, job)
        env.execute("telemetry pipeline (demo)")
        _done(started)

        started = _step(6, "what reached each sink")
        enriched = read_values(bootstrap, enriched_topic, before[enriched_topic])
        dlq = [orjson.loads(v) for v in read_values(bootstrap, dlq_topic, before[dlq_topic])]
        new_files = sorted(set(bronze_root.rglob("*.parquet")) - bronze_before) if bronze_root else []
        bronze_rows = _bronze_rows(new_files)
        sample = orjson.loads(enriched[-1]) if enriched else None
        hot = open_hot_store(config.stores)
        status_store = open_status_store(config.stores)
        try:
            hot_points = sum(len(hot.trace(v, since_ms=first_event_ms)) for v in fleet.vehicle_ids)
            trace = hot.trace(sample["vehicle_id"], since_ms=0, limit=5) if sample else []
            status = status_store.get(sample["vehicle_id"]) if sample else None
        finally:
            hot.close()
            status_store.close()
        reasons: dict[str, int] = {}
        for record in dlq:
            reasons[record["reason"]] = reasons.get(record["reason"], 0) + 1
        print(f"      {enriched_topic:<22} {len(enriched):>6} events (exactly once, read_committed)")
        print(f"      {'bronze parquet':<22} {bronze_rows:>6} rows in {len(new_files)} new files under {bronze_root}")
        print(f"      {'hot store':<22} {hot_points:>6} points ({config.stores.hot_store_backend}: {config.stores.local_path})")
        print(f"      {dlq_topic:<22} {len(dlq):>6} records: " + ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
        print(f"      duplicates dropped     {report.acknowledged - unique_valid - len(dlq):>6}")
        if sample:
            print(f"\n      vehicle {sample['vehicle_id']} ({sample['vehicle_type']}, zone {sample['zone_id']}): last points, newest first")
            for point in trace:
                print(f"        {format_timestamp_ms(point.time_ms)}  {point.latitude:.6f}, {point.longitude:.6f}  {point.speed_kmh} km/h")
            if status:
                print(f"      status: battery {status.battery_percent}%, in use {status.in_use}, last seen {format_timestamp_ms(status.last_seen_ms)}")
        _done(started)

        ok = len(enriched) == bronze_rows == hot_points == unique_valid and len(dlq) == expected_rejected
        verdict = "OK: every unique valid event in every sink exactly once, every invalid one in the DLQ" if ok else (
            f"MISMATCH: expected {unique_valid} unique valid and {expected_rejected} rejected; got enriched {len(enriched)}, "
            f"bronze {bronze_rows}, hot store {hot_points}, dlq {len(dlq)}"
        )

        _step(7, "status")
        print(format_status(infra.status()))
        print(f"\n{verdict}")
        if keep_infra:
            print("servers keep running: try `telemetry query trace --vehicle "
                  f"{sample['vehicle_id'] if sample else fleet.vehicle_ids[0]}`; `make down` stops them")
        return 0 if ok else 1
    finally:
        if not keep_infra:
            infra.down()
