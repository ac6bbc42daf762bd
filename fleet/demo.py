"""`telemetry demo` (the README's `make run`): the whole local path, end to end, with a live status.

infra up → topics → simulated fleet into `vehicle-telemetry` → the main job on the embedded
MiniCluster over exactly this run's events → a summary that must add up → status of every server.
The main job is the smoke count until the telemetry pipeline (issue B) takes its place.
"""

from __future__ import annotations

import time
from collections import Counter

from connectors.kafka_clients import end_offsets
from connectors.kafka_source import OffsetPosition
from connectors.kafka_topics import admin_client, ensure_topics, format_reports
from device_sim.defects import with_defects
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import produce_events
from fleet.config import PlatformConfig
from infra.manager import LocalInfra, format_status


def _step(number: int, text: str) -> float:
    print(f"\n[{number}/5] {text}", flush=True)
    return time.perf_counter()


def _done(started: float) -> None:
    print(f"      done in {time.perf_counter() - started:.1f}s", flush=True)


def run_demo(config: PlatformConfig, *, vehicles: int, events: int, defects: int, seed: int, keep_infra: bool) -> int:
    infra = LocalInfra(config.infra)
    bootstrap = config.kafka.bootstrap_servers
    topic = config.kafka.topic("telemetry").name
    try:
        started = _step(1, f"local servers up (run folder {config.infra.run_dir})")
        print(format_status(infra.up()))
        _done(started)

        started = _step(2, f"topics on {bootstrap}")
        print(format_reports(ensure_topics(admin_client(bootstrap), config.kafka.topics)))
        _done(started)

        started = _step(3, f"simulate {events} events from {vehicles} vehicles ({defects} corrupted) into {topic}")
        before = end_offsets(bootstrap, topic)
        fleet = Fleet(FleetSpec(vehicles=vehicles, seed=seed))
        report = produce_events(bootstrap, topic, with_defects(fleet.take(events), events, defects, seed))
        print(f"      acknowledged {report.acknowledged} of {report.sent} ({report.rate:,.0f} events/s)")
        if report.failed:
            print(f"      {report.failed} not acknowledged: {report.first_error}")
            return 1
        _done(started)

        started = _step(4, "main job on the embedded MiniCluster (PyFlink, thread mode): read this run's events, validate, count")
        from jobs.flink_env import create_env
        from jobs.smoke_count import SmokeConfig, format_summary, run

        job_config = SmokeConfig(
            bootstrap_servers=bootstrap, topic=topic, group_id="demo-smoke-count",
            start=OffsetPosition("offsets", offsets=before), stop=OffsetPosition("latest"),
        )
        totals: Counter = run(create_env(config.flink), job_config)
        print(format_summary(totals))
        _done(started)

        counted, rejected = sum(totals.values()), counted_rejections(totals)
        ok = counted == report.acknowledged and rejected == defects
        verdict = "OK: every event counted once, every corrupted one rejected" if ok else (
            f"MISMATCH: produced {report.acknowledged} ({defects} corrupted), counted {counted} ({rejected} rejected)"
        )

        _step(5, "status")
        print(format_status(infra.status()))
        print(f"\n{verdict}")
        if keep_infra:
            print("servers keep running: `telemetry infra status`, `telemetry infra down` (or `make down`) to stop")
        return 0 if ok else 1
    finally:
        if not keep_infra:
            infra.down()


def counted_rejections(totals: Counter) -> int:
    return sum(count for outcome, count in totals.items() if outcome.startswith("rejected:"))
