"""Where a batch operator's Python time goes: the pipeline's and the anomaly job's Python functions
run outside Flink on simulated seed events, with in-memory stand-ins for state and context.

    .venv/bin/python scripts/profile_operators.py                  # µs/event per variant
    .venv/bin/python scripts/profile_operators.py --profile all    # + cProfile's top functions

Variants of the pipeline operator (jobs/pipeline_batch.EnrichBatch): `enriched` (parse, validate,
dedup, enrich, encode), `+bronze` (and the Bronze row), `+store` (and the local hot store and
status writes), `all`; and `alerts` (jobs/alert_batch.AlertBatchDetector, a calm fleet). Times are
the thread's CPU time, so a busy machine slows them less than wall time. What this leaves out is
Flink's own share (the Kafka source, the Java batching, the conversions into and out of Python,
the sinks): `telemetry bench pipeline` measures whole jobs.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import orjson  # noqa: E402
from pyflink.common import Row  # noqa: E402

from device_sim.fleet_model import Fleet, FleetSpec  # noqa: E402
from fleet.config import load_config  # noqa: E402
from udfs.alert_rules import AlertPolicy  # noqa: E402
from udfs.telemetry_schema import format_timestamp_ms  # noqa: E402


class _MapState(dict):
    def get(self, key):
        return dict.get(self, key)

    def put_all(self, values):
        self.update(values)


class _Counter:
    def inc(self, n: int = 1) -> None:
        pass


class _Runtime:
    def get_map_state(self, descriptor):
        return _MapState()

    def get_metrics_group(self):
        return self

    def counter(self, name):
        return _Counter()


class _Context:
    """Read-only broadcast state (empty registry), timers, current key: what the operators use."""

    def __init__(self):
        self.timers: list[int] = []

    def get_broadcast_state(self, descriptor):
        return {}

    def timer_service(self):
        return self

    def current_processing_time(self) -> int:
        return int(time.time() * 1000)

    def register_processing_time_timer(self, at: int) -> None:
        self.timers.append(at)

    def get_current_key(self) -> int:
        return 0


def batches(events: int, vehicles: int, size: int) -> list[Row]:
    now = int(time.time() * 1000) - 3_600_000
    payloads = []
    for event in Fleet(FleetSpec(vehicles=vehicles, seed=3)).take(events):
        event["timestamp"] = format_timestamp_ms(now + len(payloads))  # recent: inside the hot store's retention
        payloads.append(orjson.dumps(event))
    return [Row(payloads[i:i + size], [now] * len(payloads[i:i + size])) for i in range(0, len(payloads), size)]


def make_operator(variant: str, run_dir: str):
    platform = load_config("local", {"infra.run_dir": run_dir}, environ={})
    if variant == "alerts":
        from jobs.alert_batch import AlertBatchDetector

        alerts = platform.alerts
        policy = AlertPolicy(alerts.low_battery_percent, alerts.battery_rearm_percent, alerts.offline_after_s)
        return AlertBatchDetector(policy, alerts.service_area, alerts.offline_timer_granularity_ms)
    from jobs.pipeline_batch import EnrichBatch

    return EnrichBatch(
        topic="vehicle-telemetry", dedup_capacity=platform.pipeline.dedup_recent_events, dedup_ttl_s=platform.pipeline.dedup_ttl_s,
        stores=platform.stores if variant in ("+store", "all") else None, to_bronze=variant in ("+bronze", "all"),
    )


def run(variant: str, work: list[Row], profile: bool) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        operator = make_operator(variant, run_dir)
        operator.open(_Runtime())
        context = _Context()
        profiler = cProfile.Profile() if profile else None
        started = time.thread_time()
        if profiler:
            profiler.enable()
        for batch in work:
            for _ in operator.process_element(batch, context):
                pass
        if profiler:
            profiler.disable()
        spent = time.thread_time() - started
        operator.close() if hasattr(operator, "close") else None
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--vehicles", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=300, help="events per batch (50 ms of 50K events/s over 8 shards ≈ 300)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the fastest counts")
    parser.add_argument("--profile", choices=("enriched", "+bronze", "+store", "all", "alerts"))
    args = parser.parse_args()
    work = batches(args.events, args.vehicles, args.batch)
    print(f"{args.events:,} events from {args.vehicles:,} vehicles in batches of {args.batch}; thread CPU time, best of {args.repeat}")
    for variant in ("enriched", "+bronze", "+store", "all", "alerts"):
        best = min(run(variant, work, False) for _ in range(args.repeat))
        print(f"  {variant:10s} {best / args.events * 1e6:6.1f} µs/event")
    if args.profile:
        run(args.profile, work, True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
