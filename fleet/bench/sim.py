"""Simulator CPU at fleet scale: 50,000 vehicles at 1 Hz into Kafka (not a test: it measures).

The budget (issue D): at most 0.5 core for the simulator at 50K vehicles x 1 Hz, i.e. 0.01 core per
1K vehicles. Measured as process CPU time (`time.process_time`: every thread of the process, so
librdkafka's own threads — compression, batching, network — count too) over wall time, while the
fleet streams in real time (event time paced against the wall clock, open loop) through the encoded
path into a topic with the production profile's partition count. A second measurement runs the same
fleet with no output, unpaced, for the simulator's own share per event.

    python -m fleet.bench.sim [--vehicles 50000] [--seconds 30] [--bootstrap HOST:PORT] [--modes 1hz|seed]

Without --bootstrap it starts a Kafka broker of its own (free loopback ports, a temporary run
folder) and stops it afterwards. Prints the figures and writes them as JSON (default
<run_dir>/bench/sim-cpu-<time>.json, next to the alert benchmark's).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from device_sim.fleet_model import FleetSpec
from device_sim.kafka_output import produce_batches
from device_sim.rate_fleet import RateModeFleet
from device_sim.report_rates import FIXED_1HZ, SEED_RATES

BUDGET_CORES = 0.5
BUDGET_VEHICLES = 50_000
MODES = {"1hz": FIXED_1HZ, "seed": SEED_RATES}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _sim_only(vehicles: int, seconds: float, modes: str, seed: int) -> dict[str, float]:
    """The simulator alone (encoded path, no output, unpaced), after one warm-up second."""
    fleet = RateModeFleet(FleetSpec(vehicles=vehicles, seed=seed), MODES[modes])
    for _ in fleet.stream_encoded(1.0):
        pass
    gc.freeze()
    started = time.process_time()
    events = sum(1 for _ in fleet.stream_encoded(seconds))
    cpu = time.process_time() - started
    gc.unfreeze()
    return {"events": events, "cpu_s": round(cpu, 3), "us_per_event": round(cpu / events * 1e6, 2)}


def run_sim_benchmark(
    vehicles: int = 50_000,
    seconds: float = 30.0,
    bootstrap: str | None = None,
    *,
    modes: str = "1hz",
    seed: int = 42,
    partitions: int | None = None,
    linger_ms: int = 100,
    warmup_s: float = 5.0,
    out_json: str | Path | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """Stream `vehicles` in real time for `warmup_s` + `seconds` into Kafka; measure CPU over the last
    `seconds`. Returns (and prints, and writes as JSON) the figures."""
    from connectors.kafka_topics import TopicSpec, admin_client, delete_topics, ensure_topics
    from fleet.config import load_config

    say = (lambda *_: None) if quiet else (lambda line: print(line, flush=True))
    if partitions is None:
        partitions = load_config("production", environ={}).kafka.topic("telemetry").partitions
    broker = run_dir = None
    if bootstrap is None:
        from connectors import jars
        from infra.kafka_broker import KafkaBroker
        from infra.process import free_port

        jars.fetch()
        run_dir = Path(tempfile.mkdtemp(prefix="sim-bench-"))
        broker = KafkaBroker(run_dir, "127.0.0.1", free_port(), free_port())
        say(f"starting a Kafka broker in {run_dir} ...")
        broker.up()
        bootstrap = broker.address
    topic = f"sim-bench-{uuid.uuid4().hex[:8]}"
    admin = admin_client(bootstrap)
    try:
        ensure_topics(admin, [TopicSpec("telemetry", topic, partitions, 1, {"compression.type": "lz4"})])
        overrides = {"linger.ms": linger_ms}

        built = time.process_time()
        fleet = RateModeFleet(FleetSpec(vehicles=vehicles, seed=seed), MODES[modes])
        build_cpu = time.process_time() - built
        # Warm-up: every vehicle's first events go through the full model (then its still-cache works).
        say(f"{vehicles:,} vehicles ({modes}): warm-up {warmup_s:g}s, then {seconds:g}s measured, into {topic} ({partitions} partitions)")
        warm = produce_batches(bootstrap, topic, fleet.encoded_batches(fleet.now_ms + int(warmup_s * 1000), keys_only=True),
                               producer_overrides=overrides)
        gc.freeze()  # the fleet's long-lived objects: out of the collector's way
        cpu0, rusage0 = time.process_time(), resource.getrusage(resource.RUSAGE_SELF)
        report = produce_batches(
            bootstrap, topic, fleet.encoded_batches(fleet.now_ms + int(seconds * 1000), keys_only=True),
            producer_overrides=overrides, report_every_s=10, out=say,
        )
        cpu = time.process_time() - cpu0
        rusage1 = resource.getrusage(resource.RUSAGE_SELF)
        gc.unfreeze()
        sim_only = _sim_only(vehicles, min(seconds, 10.0), modes, seed)
    finally:
        try:
            delete_topics(admin, [topic])
        except Exception:  # noqa: BLE001 - the broker may be going away; the topic is a bench's
            pass
        if broker is not None:
            broker.down()
            shutil.rmtree(run_dir, ignore_errors=True)

    wall = report.seconds  # first send to last acknowledgement
    cores = cpu / wall if wall > 0 else 0.0
    result = {
        "benchmark": "simulator CPU, Kafka-direct",
        "vehicles": vehicles,
        "modes": modes,
        "seconds_measured": seconds,
        "warmup_s": warmup_s,
        "topic_partitions": partitions,
        "producer": {"linger.ms": linger_ms, "compression": "lz4", "acks": "all", "idempotence": True},
        "events_sent": report.sent,
        "acknowledged": report.acknowledged,
        "failed": report.failed + warm.failed,
        "achieved_rate_per_s": round(report.send_rate, 1),
        "acknowledged_rate_per_s": round(report.rate, 1),
        "target_rate_per_s": vehicles if modes == "1hz" else None,  # seed modes: the fleet's own mix
        "cpu_s": round(cpu, 3),
        "cpu_user_s": round(rusage1.ru_utime - rusage0.ru_utime, 3),
        "cpu_system_s": round(rusage1.ru_stime - rusage0.ru_stime, 3),
        "wall_s": round(wall, 3),
        "cores": round(cores, 4),
        "cores_per_1k_vehicles": round(cores / (vehicles / 1000), 5),
        "us_per_event": round(cpu / report.sent * 1e6, 2) if report.sent else None,
        "sim_only_us_per_event": sim_only["us_per_event"],
        "output_us_per_event": round(cpu / report.sent * 1e6 - sim_only["us_per_event"], 2) if report.sent else None,
        "fleet_build_cpu_s": round(build_cpu, 3),
        "budget_cores_at_50k": BUDGET_CORES,
        "budget_cores_per_1k_vehicles": BUDGET_CORES / (BUDGET_VEHICLES / 1000),
        "within_budget": cores / (vehicles / 1000) <= BUDGET_CORES / (BUDGET_VEHICLES / 1000),
        "machine": {"cpu": _cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if out_json is None:  # next to the alert benchmark's figures: <run_dir>/bench/
        out_json = Path(load_config("local").infra.run_dir) / "bench" / f"sim-cpu-{int(time.time())}.json"
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2))
    result["json"] = str(out_json)
    say(
        f"simulator: {result['cores']:.3f} cores for {vehicles:,} vehicles = {result['cores_per_1k_vehicles']:.4f} cores per 1K vehicles "
        f"(budget {result['budget_cores_per_1k_vehicles']:.4f}; {'within' if result['within_budget'] else 'OVER'} budget)\n"
        f"  {report.sent:,} events sent at {result['achieved_rate_per_s']:,.0f}/s, {report.acknowledged:,} acknowledged, "
        f"{result['failed']} failed; {result['us_per_event']} µs CPU per event "
        f"(simulator alone {result['sim_only_us_per_event']} µs, Kafka client and pacing {result['output_us_per_event']} µs)\n"
        f"  written to {out_json}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.bench.sim", description=__doc__.splitlines()[0])
    parser.add_argument("--vehicles", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup-s", type=float, default=5.0)
    parser.add_argument("--bootstrap", default=None, help="a running broker (default: start one)")
    parser.add_argument("--modes", choices=sorted(MODES), default="1hz")
    parser.add_argument("--partitions", type=int, default=None, help="default: the production profile's")
    parser.add_argument("--linger-ms", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", default=None, help="where to write the figures")
    args = parser.parse_args(argv)
    result = run_sim_benchmark(
        args.vehicles, args.seconds, args.bootstrap, modes=args.modes, seed=args.seed, partitions=args.partitions,
        linger_ms=args.linger_ms, warmup_s=args.warmup_s, out_json=args.json,
    )
    return 0 if result["failed"] == 0 else 5


if __name__ == "__main__":
    sys.exit(main())
