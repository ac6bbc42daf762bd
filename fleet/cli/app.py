"""`telemetry`: the one command line of the platform. Subcommands are thin: they read config and call
the module that does the work, so every one of them is also a Python API."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fleet.cli import add_common_arguments
from fleet.cli.exit_codes import ExitCode
from fleet.config import ConfigError, PlatformConfig, load_config
from fleet.config.log_setup import configure_logging

log = logging.getLogger(__name__)


def print_json(document: Any) -> None:
    """A command's data as one JSON document on stdout (--json)."""
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def _config(args: argparse.Namespace) -> PlatformConfig:
    return load_config(args.profile, args.set)


def cmd_jars_fetch(args: argparse.Namespace) -> int:
    from connectors import jars

    started = time.perf_counter()
    for jar_set in jars.fetch(tuple(args.only) if args.only else jars.PROFILES):
        print(f"{jar_set.profile:<13} {len(jar_set.jars):>3} jars  {jar_set.folder}")
    log.info("jars ready in %.1fs", time.perf_counter() - started)
    return ExitCode.OK


def cmd_jars_list(args: argparse.Namespace) -> int:
    from connectors import jars

    installed = {profile: [str(jar) for jar in jars.installed(profile).jars] for profile in jars.PROFILES}
    if args.json:
        print_json(installed)
        return ExitCode.OK
    for profile, names in installed.items():
        for jar in names:
            print(f"{profile}\t{jar}")
    return ExitCode.OK


def _status_document(run_dir: Any, rows: list) -> dict[str, Any]:
    return {"run_dir": str(run_dir), "components": [{**asdict(r), "log": None if r.log is None else str(r.log)} for r in rows]}


def cmd_infra_up(args: argparse.Namespace) -> int:
    from infra.manager import LocalInfra, format_status

    config = _config(args)
    rows = LocalInfra(config.infra).up(args.components)
    if args.json:
        print_json(_status_document(config.infra.run_dir, rows))
        return ExitCode.OK
    print(f"run folder: {config.infra.run_dir}")
    print(format_status(rows))
    return ExitCode.OK


def cmd_infra_down(args: argparse.Namespace) -> int:
    from infra.manager import LocalInfra

    stopped = LocalInfra(_config(args).infra).down(args.components)
    if args.json:
        print_json({"stopped": list(stopped)})
        return ExitCode.OK
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return ExitCode.OK


def cmd_infra_status(args: argparse.Namespace) -> int:
    from infra.manager import LocalInfra, format_status

    config = _config(args)
    rows = LocalInfra(config.infra).status(args.components)
    if args.json:
        print_json(_status_document(config.infra.run_dir, rows))
    else:
        print(f"run folder: {config.infra.run_dir}")
        print(format_status(rows))
    return ExitCode.OK if all(r.healthy for r in rows) else ExitCode.UNAVAILABLE


def cmd_topics_ensure(args: argparse.Namespace) -> int:
    from connectors.kafka_topics import admin_client, ensure_topics, format_reports

    config = _config(args)
    reports = ensure_topics(admin_client(config.kafka.bootstrap_servers), config.kafka.topics, fix=args.fix)
    if args.json:
        print_json({"bootstrap_servers": config.kafka.bootstrap_servers, "topics": [asdict(r) for r in reports]})
    else:
        print(format_reports(reports))
    return ExitCode.CHECK_FAILED if any(r.action == "differs" for r in reports) else ExitCode.OK


def cmd_sim_kafka(args: argparse.Namespace) -> int:
    from device_sim.fleet_model import Fleet, FleetSpec
    from device_sim.kafka_output import produce_events

    config = _config(args)
    topic = config.kafka.topic("telemetry").name
    fleet = Fleet(FleetSpec(vehicles=args.vehicles, seed=args.seed))
    report = produce_events(config.kafka.bootstrap_servers, topic, fleet.take(args.events), rate_per_s=args.rate)
    print(
        f"{topic}: sent {report.sent}, acknowledged {report.acknowledged}, failed {report.failed} "
        f"in {report.seconds:.2f}s ({report.rate:,.0f} events/s)"
    )
    if report.first_error:
        log.error("first error: %s", report.first_error)
    return ExitCode.OK if report.failed == 0 else ExitCode.ERROR


def cmd_sim_run(args: argparse.Namespace) -> int:
    from device_sim.cli import run

    config = _config(args)
    return run(
        args, bootstrap=config.kafka.bootstrap_servers, topic=config.kafka.topic("telemetry").name,
        mqtt=(config.infra.host, config.infra.mqtt_port),
    )


def cmd_run_smoke(args: argparse.Namespace) -> int:
    from jobs.flink_env import create_env
    from jobs.smoke_count import format_summary, run, smoke_config

    config = _config(args)
    totals = run(create_env(config.flink), smoke_config(config, start=args.start, stop=args.stop))
    print(format_summary(totals))
    return ExitCode.OK


def cmd_run_pipeline(args: argparse.Namespace) -> int:
    from jobs.job_main import execute_job
    from jobs.telemetry_pipeline import build, pipeline_config

    config = _config(args)
    log.info("telemetry pipeline: %s from %s to %s", config.kafka.topic("telemetry").name, args.start, args.stop or "forever (Ctrl-C stops)")
    execute_job(config, name="telemetry pipeline", make_config=pipeline_config, build=build, start=args.start, stop=args.stop,
                restore_from=args.restore)
    return ExitCode.OK


def cmd_registry_load(args: argparse.Namespace) -> int:
    from connectors.vehicle_registry_topic import publish_registry
    from device_sim.fleet_model import Fleet, FleetSpec
    from device_sim.registry import registry_records

    config = _config(args)
    topic = config.kafka.topic("registry").name
    if args.file:
        from udfs.vehicle_registry import load_registry_file

        records = [{"vehicle_id": v, "vehicle_type": t} for v, t in load_registry_file(args.file).items()]
    else:
        records = list(registry_records(Fleet(FleetSpec(vehicles=args.vehicles, seed=args.seed)).vehicle_ids, seed=args.seed))
    print(f"{topic}: {publish_registry(config.kafka.bootstrap_servers, topic, records)} vehicles")
    return ExitCode.OK


def cmd_stores_init(args: argparse.Namespace) -> int:
    """Create the AWS tables the configured backends need (local backends need nothing)."""
    from connectors.hot_store import open_hot_store, open_status_store

    stores = _config(args).stores
    hot, status = open_hot_store(stores), open_status_store(stores)
    try:
        if stores.hot_store_backend == "timestream":
            hot.ensure_database_and_table(stores.retention_hours)
            print(f"timestream {stores.timestream_database}.{stores.timestream_table}: ready ({stores.retention_hours} h memory store)")
        if stores.status_backend == "dynamodb":
            status.ensure_table()
            print(f"dynamodb {stores.dynamodb_table}: ready")
        if stores.hot_store_backend == "local" or stores.status_backend == "local":
            print(f"local store file: {stores.local_path}")
    finally:
        hot.close()
        status.close()
    return ExitCode.OK


def cmd_run_alerts(args: argparse.Namespace) -> int:
    from jobs.anomaly_detection import anomaly_config, build
    from jobs.job_main import execute_job

    config = _config(args)
    log.info("anomaly detection: %s → %s, SNS topic %s, log %s", config.kafka.topic("telemetry").name,
             config.kafka.topic("alerts").name, config.alerts.sns_topic, config.alerts.alert_log)
    execute_job(config, name="anomaly detection", make_config=anomaly_config, build=build, start=args.start, stop=args.stop,
                restore_from=args.restore)
    return ExitCode.OK


def cmd_bench_alerts(args: argparse.Namespace) -> int:
    from fleet.bench.alerts import run_alert_benchmark

    result = run_alert_benchmark(
        _config(args), rate=args.rate, seconds=args.seconds, vehicles=args.vehicles, alert_share=args.alert_share, warmup_s=args.warmup,
    )
    latency, warmup = result["latency_ms"], result["warmup_latency_ms"]
    print(f"events {result['events']} at {result['achieved_rate']:,.0f}/s (target {result['target_rate']:,.0f}/s); "
          f"timed low-battery alerts {result['alerts_received']} of {result['alerts_expected']}; all alerts by kind {result['alerts_by_kind']}")
    print(f"ingest→alert latency ms after {args.warmup:g}s warm-up: p50 {latency['p50']}  p95 {latency['p95']}  p99 {latency['p99']}  max {latency['max']}")
    print(f"during warm-up: p50 {warmup['p50']}  p99 {warmup['p99']}  max {warmup['max']}")
    print(f"written to {result['file']}")
    return ExitCode.OK


def cmd_bridge(args: argparse.Namespace) -> int:
    from ingest.cli import run_from_args

    return run_from_args(_config(args), args)


def cmd_bench_bridge(args: argparse.Namespace) -> int:
    from fleet.bench.bridge import run_bridge_benchmark

    result = run_bridge_benchmark(_config(args), messages=args.messages, vehicles=args.vehicles)
    if args.record:
        from fleet.bench.bridge import record

        print(f"recorded: {record(result)}")
    return ExitCode.OK


def cmd_bench_sim(args: argparse.Namespace) -> int:
    from fleet.bench.sim import run_sim_benchmark

    config = _config(args)
    # Its own Kafka broker (50 partitions, as in production), so the figure is not shared with a demo.
    run_sim_benchmark(
        vehicles=args.vehicles, seconds=args.seconds,
        out_json=config.infra.run_dir / "bench" / f"sim-cpu-{int(time.time())}.json",
    )
    return ExitCode.OK


def cmd_validate(args: argparse.Namespace) -> int:
    from collections import Counter

    from udfs.telemetry_schema import Rejection, parse

    policy = _config(args).schema
    source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")
    counts: Counter = Counter()
    rejections: list[dict[str, Any]] = []
    with source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            result = parse(line, policy)
            if isinstance(result, Rejection):
                counts[result.reason] += 1
                rejections.append({"line": number, "reason": result.reason, "field": result.field, "detail": result.detail})
                if not args.json:
                    print(f"line {number}: {result.reason} {result.field or ''}: {result.detail}")
            else:
                counts["valid"] += 1
    if args.json:
        print_json({"counts": dict(sorted(counts.items())), "rejections": rejections})
    else:
        print("summary: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    return ExitCode.OK if set(counts) <= {"valid"} else ExitCode.CHECK_FAILED


def cmd_prometheus(args: argparse.Namespace) -> int:
    from infra.prometheus import main as prometheus_main

    return prometheus_main([args.action, "--profile", str(args.profile), "--port", str(args.port),
                            *(x for value in args.set for x in ("--set", value))])


def cmd_demo(args: argparse.Namespace) -> int:
    from fleet.demo import run_demo

    return run_demo(
        _config(args), vehicles=args.vehicles, events=args.events, defects=args.defects, resends=args.resends,
        seed=args.seed, keep_infra=not args.stop_after,
    )


def build_parser() -> argparse.ArgumentParser:
    from jobs.job_main import add_position_arguments

    parser = argparse.ArgumentParser(prog="telemetry", description="Fleet telemetry platform on Apache Flink.")
    add_common_arguments(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(parent: argparse._SubParsersAction, name: str, func: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func)
        return sub

    jars_cmd = commands.add_parser("jars", help="JVM jars from connectors/jvm/pom.xml").add_subparsers(dest="action", required=True)
    fetch = add(jars_cmd, "fetch", cmd_jars_fetch, "fetch the jars with Maven once; later calls download nothing")
    fetch.add_argument("--only", action="append", choices=["flink", "kafka-broker"], help="only this jar set (repeatable; default: all)")
    jars_list = add(jars_cmd, "list", cmd_jars_list, "list the fetched jars")
    jars_list.add_argument("--json", action="store_true", help="print {jar set: [jar, ...]} as JSON instead of lines")

    infra_cmd = commands.add_parser("infra", help="local servers: Kafka (KRaft), Mosquitto, moto").add_subparsers(dest="action", required=True)
    for name, func, text in (
        ("up", cmd_infra_up, "start the local servers (all, or the ones named)"),
        ("down", cmd_infra_down, "stop them, by pid"),
        ("status", cmd_infra_status, "show each server's address, pid and health"),
    ):
        sub = add(infra_cmd, name, func, text)
        sub.add_argument("components", nargs="*", metavar="COMPONENT", help="kafka, mosquitto, moto (default: all)")
        sub.add_argument("--json", action="store_true", help="print one JSON document instead of a table")

    topics_cmd = commands.add_parser("topics", help="Kafka topics as code").add_subparsers(dest="action", required=True)
    ensure = add(topics_cmd, "ensure", cmd_topics_ensure, "create missing topics and report differences from the profile")
    ensure.add_argument("--fix", action="store_true", help="also set differing topic configs (never partitions)")
    ensure.add_argument("--json", action="store_true", help="print each topic's action and differences as one JSON document")

    sim_cmd = commands.add_parser("sim", help="the fleet simulator").add_subparsers(dest="action", required=True)
    sim_kafka = add(sim_cmd, "kafka", cmd_sim_kafka, "produce simulated telemetry straight to Kafka")
    sim_kafka.add_argument("--vehicles", type=int, default=500, help="simulated vehicles (default: 500)")
    sim_kafka.add_argument("--events", type=int, default=5_000, help="events to send (default: 5000)")
    sim_kafka.add_argument("--seed", type=int, default=42, help="simulator seed (default: 42)")
    sim_kafka.add_argument("--rate", type=float, default=None, help="events/s, open loop (default: as fast as possible)")

    sim_run = add(sim_cmd, "run", cmd_sim_run, "the fleet at the seed's rates (5 Hz trip, 1 Hz, 0.1 Hz parked) with fault knobs, to Kafka or MQTT")
    from device_sim.cli import add_arguments as add_sim_arguments

    add_sim_arguments(sim_run)

    run_cmd = commands.add_parser("run", help="run a Flink job on the local MiniCluster").add_subparsers(dest="action", required=True)
    smoke = add(run_cmd, "smoke", cmd_run_smoke, "count and validate the telemetry topic between two positions")
    smoke.add_argument("--start", default="earliest", help="committed | earliest | latest | timestamp=ISO | offsets=p:o,...")
    smoke.add_argument("--stop", default="latest", help="latest | timestamp=ISO | offsets=p:o,...")

    pipeline = add(run_cmd, "pipeline", cmd_run_pipeline, "the telemetry pipeline: validate, dedup, enrich, sink exactly once")
    add_position_arguments(pipeline)

    alerts_run = add(run_cmd, "alerts", cmd_run_alerts, "the anomaly job: low battery, geofence and offline alerts")
    add_position_arguments(alerts_run)

    bench_cmd = commands.add_parser("bench", help="benchmarks: print figures, write JSON").add_subparsers(dest="action", required=True)
    bench_alerts = add(bench_cmd, "alerts", cmd_bench_alerts, "ingest→alert latency of the anomaly job at a given event rate")
    bench_alerts.add_argument("--rate", type=float, default=2_000, help="events/s sent (default: 2000)")
    bench_alerts.add_argument("--seconds", type=float, default=20, help="how long to send (default: 20)")
    bench_alerts.add_argument("--vehicles", type=int, default=2_000, help="simulated vehicles (default: 2000)")
    bench_alerts.add_argument("--warmup", type=float, default=5.0, help="seconds at the start reported apart")
    bench_alerts.add_argument("--alert-share", type=float, default=0.01, help="share of vehicles that flip between flat and charging")
    from fleet.bench.storm import add_parser as add_bench_storm_parser

    add_bench_storm_parser(bench_cmd, add, _config)

    bench_bridge = add(bench_cmd, "bridge", cmd_bench_bridge, "MQTT→Kafka bridge throughput (msgs/s, msgs per CPU-second)")
    bench_bridge.add_argument("--messages", type=int, default=100_000, help="MQTT messages to publish (default: 100000)")
    bench_bridge.add_argument("--vehicles", type=int, default=5_000, help="simulated vehicles (default: 5000)")
    bench_bridge.add_argument("--record", action="store_true",
                              help="also write docs/benchmarks/bridge.json, the figure the Kubernetes bridges are sized from (docs/kubernetes.md)")
    bench_sim = add(bench_cmd, "sim", cmd_bench_sim, "simulator CPU per 1K vehicles producing at 1 Hz into Kafka")
    bench_sim.add_argument("--vehicles", type=int, default=50_000, help="simulated vehicles (default: 50000)")
    bench_sim.add_argument("--seconds", type=float, default=30, help="how long to measure (default: 30)")
    from fleet.bench.pipeline_cli import add_parser as add_bench_pipeline_parser

    add_bench_pipeline_parser(bench_cmd, add, _config)
    from fleet.bench.lakehouse import add_parser as add_bench_lake_parser
    from fleet.bench.live import add_parser as add_bench_live_parser

    add_bench_lake_parser(bench_cmd, add, _config)
    add_bench_live_parser(bench_cmd, add, _config)

    from ingest.cli import add_arguments as add_bridge_arguments

    bridge = add(commands, "bridge", cmd_bridge, "MQTT→Kafka bridge: $share/<group>/telemetry/+ → vehicle-telemetry, rejects → telemetry-dlq")
    add_bridge_arguments(bridge)

    from fleet.cli.config import add_parser as add_config_parser
    from fleet.cli.query import add_parser as add_query_parser

    add_query_parser(commands)
    add_config_parser(commands)

    registry_cmd = commands.add_parser("registry", help="the vehicle registry (vehicle_id → vehicle_type)").add_subparsers(dest="action", required=True)
    load = add(registry_cmd, "load", cmd_registry_load, "publish registry records to the compacted vehicle-registry topic")
    load.add_argument("--file", help="JSON lines of {vehicle_id, vehicle_type}; default: the simulated fleet's registry")
    load.add_argument("--vehicles", type=int, default=500, help="simulated fleet size without --file (default: 500)")
    load.add_argument("--seed", type=int, default=42, help="simulator seed without --file (default: 42)")

    from fleet.cli.backfill import add_parser as add_backfill_parser
    from fleet.cli.faults import add_parsers as add_faults_parsers
    from fleet.cli.lake import add_parser as add_lake_parser

    add_backfill_parser(commands)
    add_faults_parsers(commands, add, _config)
    add_lake_parser(commands, add, _config)

    from fleet.cli.deploy import add_parser as add_deploy_parser

    add_deploy_parser(commands)

    from fleet.cli.map import add_parser as add_map_parser

    add_map_parser(commands, add, _config)

    from fleet.live.command import add_parser as add_live_parser

    add_live_parser(commands)

    prometheus = add(commands, "prometheus", cmd_prometheus, "Debian's Prometheus scraping the live platform's processes (docs/metrics.md)")
    prometheus.add_argument("action", choices=("up", "down", "status", "config"), help="start, stop, show it, or print its config")
    prometheus.add_argument("--port", type=int, default=9090, help="its web port (default: 9090)")

    stores_cmd = commands.add_parser("stores", help="the hot store and vehicle status backends").add_subparsers(dest="action", required=True)
    add(stores_cmd, "init", cmd_stores_init, "create the Timestream database/table and DynamoDB table if the profile uses them")

    validate = add(commands, "validate", cmd_validate, "validate JSON-lines payloads against the telemetry schema")
    validate.add_argument("file", nargs="?", default="-", help="a file of one payload per line, or - for stdin")
    validate.add_argument("--json", action="store_true", help="print {counts, rejections} as one JSON document")

    demo = add(commands, "demo", cmd_demo, "infra up, simulate a fleet into Kafka, run the telemetry pipeline, show what each sink got")
    demo.add_argument("--vehicles", type=int, default=500, help="simulated vehicles (default: 500)")
    demo.add_argument("--events", type=int, default=5_000, help="events to send (default: 5000)")
    demo.add_argument("--defects", type=int, default=25, help="how many of the events to corrupt (shows the DLQ path)")
    demo.add_argument("--resends", type=int, default=250, help="how many events to send twice (shows dedup)")
    demo.add_argument("--seed", type=int, default=42, help="simulator seed (default: 42)")
    demo.add_argument("--stop-after", action="store_true", help="stop the local servers when done")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse, set up logging once, run the command; the exit codes are fleet/cli/exit_codes.py's."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, json=args.log_json)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"telemetry: configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except Exception as exc:
        from connectors.jars import JarsError
        from infra.process import InfraError

        if isinstance(exc, (InfraError, JarsError)):
            print(f"telemetry: {exc}", file=sys.stderr)
            return ExitCode.ERROR
        raise


if __name__ == "__main__":
    sys.exit(main())
