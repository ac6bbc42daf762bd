"""`main(argv)`: simulate a fleet for a while and send it to Kafka or MQTT, with faults on request.

    python -m device_sim.cli --vehicles 1000 --duration-s 60 --output kafka --bootstrap 127.0.0.1:9092
    python -m device_sim.cli --vehicles 200 --duration-s 30 --output mqtt --mqtt 127.0.0.1:1883 \\
        --duplicates 50 --late 20 --malformed 10 --schema-invalid 10 --geofence-exits 3 --low-batteries 3

Pacing: by default in real time (each event sent when the wall clock reaches its event time, which
starts now: the fleet's own rate, open loop); `--rate N` sends N events/s instead, `--speedup X` runs
event time X times faster, `--as-fast-as-possible` does not pace. Rates are printed as the run goes
(`--report-every-s`), and the totals at the end: what was injected, what downstream must count, and
what the output acknowledged. Exit status 0, or 5 if any event was not acknowledged.

For `fleet.cli`: `add_arguments(parser)` adds these options to a (sub)parser and
`run(args, bootstrap=…, topic=…, mqtt=(host, port))` runs with the profile's addresses as defaults.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from device_sim.fleet_model import FleetSpec
from device_sim.rate_fleet import RateModeFleet
from device_sim.report_rates import FIXED_1HZ, SEED_RATES
from device_sim.scenario import Scenario, ScenarioKnobs
from fleet.cli import version
from fleet.cli.exit_codes import ExitCode
from udfs.telemetry_schema import format_timestamp_ms

MODES = {"seed": SEED_RATES, "1hz": FIXED_1HZ}
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_TOPIC = "vehicle-telemetry"
DEFAULT_MQTT = ("127.0.0.1", 1883)

_KNOB_FLAGS = (
    ("duplicates", int, "events sent twice in a row"),
    ("late", int, "events held back and sent --late-after-s later (unique, but late)"),
    ("late_resends", int, "events sent on time and again --late-after-s later (the copy is a duplicate)"),
    ("late_after_s", float, "delay of late events and late re-sends (default 120)"),
    ("out_of_order", int, "events sent right after their vehicle's next event"),
    ("malformed", int, "raw payloads that are not JSON, in place of events"),
    ("schema_invalid", int, "JSON payloads the schema rejects, in place of events"),
    ("offline_vehicles", int, "vehicles that send nothing for --offline-s"),
    ("offline_s", float, "how long an offline vehicle is silent (default 60)"),
    ("geofence_exits", int, "vehicles driven out of the service area"),
    ("low_batteries", int, "vehicles whose battery drops below 15 %%"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    fleet = parser.add_argument_group("fleet")
    fleet.add_argument("--vehicles", type=int, default=1_000, help="vehicles in the fleet (default 1,000)")
    fleet.add_argument("--seed", type=int, default=42, help="seed of the fleet's routes and readings (default 42)")
    fleet.add_argument("--duration-s", type=float, default=60.0, help="event time to simulate (default 60)")
    fleet.add_argument("--modes", choices=sorted(MODES), default="seed",
                       help="seed: 5 Hz in a trip, 1 Hz normal, 0.1 Hz parked above 80 %% (default); 1hz: every vehicle at 1 Hz")
    fleet.add_argument("--start-ms", type=int, default=None, help="event time of the start (default: now)")
    fleet.add_argument("--first-vehicle-id", type=int, default=10_000, help="id of the first vehicle; the rest follow (default 10000)")

    pacing = parser.add_argument_group("pacing")
    how = pacing.add_mutually_exclusive_group()
    how.add_argument("--rate", type=float, default=None, help="send this many events/s, open loop (default: real time)")
    how.add_argument("--speedup", type=float, default=None, help="run event time this many times faster than real time")
    how.add_argument("--as-fast-as-possible", action="store_true", help="no pacing")
    pacing.add_argument("--report-every-s", type=float, default=5.0, help="print the achieved rate this often (0: never)")

    output = parser.add_argument_group("output")
    output.add_argument("--output", choices=("kafka", "mqtt", "jsonl", "null"), default="kafka",
                        help="kafka (direct), mqtt (QoS 1 to telemetry/{vehicle_id}), jsonl (stdout) or null (generate only)")
    output.add_argument("--bootstrap", default=None, help=f"Kafka bootstrap servers (default {DEFAULT_BOOTSTRAP})")
    output.add_argument("--topic", default=None, help=f"Kafka topic (default {DEFAULT_TOPIC})")
    output.add_argument("--linger-ms", type=int, default=100, help="Kafka producer linger (default 100: fewer, larger batches)")
    output.add_argument("--mqtt", default=None, metavar="HOST:PORT", help=f"MQTT broker (default {DEFAULT_MQTT[0]}:{DEFAULT_MQTT[1]})")
    output.add_argument("--mqtt-connections", type=int, default=4, help="shared connections without per-vehicle credentials")
    output.add_argument("--mqtt-qos", type=int, choices=(0, 1, 2), default=1, help="MQTT QoS of every publish (default 1)")
    output.add_argument("--mqtt-protocol", choices=("3.1.1", "5"), default="3.1.1", help="MQTT protocol version (default 3.1.1)")
    output.add_argument("--mqtt-username", default=None,
                        help="username; with {vehicle_id} in it, every vehicle connects on its own with its own credentials")
    output.add_argument("--mqtt-password", default=None, help="password; may contain {vehicle_id}")
    output.add_argument("--report-json", default=None, help="write the scenario and output reports here")
    output.add_argument("--metrics-port", type=int, default=0, help="serve Prometheus /metrics on this port while running (0: off)")
    output.add_argument("--metrics-host", default="127.0.0.1", help="address /metrics listens on")

    knobs = parser.add_argument_group("faults (each deterministic and counted)")
    for name, kind, text in _KNOB_FLAGS:
        knobs.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None, help=text)
    knobs.add_argument("--knob-seed", type=int, default=1, help="which events and vehicles get the faults")


def knobs_from(args: argparse.Namespace) -> ScenarioKnobs:
    values = {name: getattr(args, name) for name, _, _ in _KNOB_FLAGS if getattr(args, name, None) is not None}
    return ScenarioKnobs(seed=args.knob_seed, **values)


def _credentials(args: argparse.Namespace) -> tuple[Callable[[Any], tuple[str, str | None]] | None, tuple[str, str | None] | None]:
    """(per-vehicle credentials callable, shared login) from the username/password templates."""
    if args.mqtt_username is None:
        return None, None
    if "{vehicle_id}" in args.mqtt_username:
        return (lambda vehicle_id: (
            args.mqtt_username.format(vehicle_id=vehicle_id),
            None if args.mqtt_password is None else args.mqtt_password.format(vehicle_id=vehicle_id),
        )), None
    return None, (args.mqtt_username, args.mqtt_password)


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--mqtt must be HOST:PORT, got {text!r}")
    return host, int(port)


def run(
    args: argparse.Namespace,
    *,
    bootstrap: str | None = None,
    topic: str | None = None,
    mqtt: tuple[str, int] | None = None,
    out: Callable[[str], None] | None = None,
) -> int:
    """Run the simulation `args` describe; `bootstrap`, `topic` and `mqtt` are the defaults for the
    options not given (a profile's addresses). Returns the exit status."""
    say = out or (lambda line: print(line, file=sys.stderr, flush=True))
    metrics = None
    if getattr(args, "metrics_port", 0):
        from device_sim.sim_metrics import SimMetrics

        metrics = SimMetrics(args.output, vehicles=args.vehicles, target_rate=args.rate)
        say(f"metrics: http://{args.metrics_host}:{metrics.serve(args.metrics_host, args.metrics_port)}/metrics")
    try:
        return _run(args, bootstrap=bootstrap, topic=topic, mqtt=mqtt, say=say, metrics=metrics)
    finally:
        if metrics is not None:
            metrics.close()


def _run(args: argparse.Namespace, *, bootstrap: str | None, topic: str | None, mqtt: tuple[str, int] | None,
         say: Callable[[str], None], metrics: Any) -> int:
    from device_sim import pacing

    knobs = knobs_from(args)
    spec = FleetSpec(vehicles=args.vehicles, seed=args.seed, start_ms=args.start_ms, first_vehicle_id=args.first_vehicle_id)
    modes = MODES[args.modes]
    report_every = args.report_every_s or None
    speedup = None if args.as_fast_as_possible or args.rate else (args.speedup or 1.0)
    scenario = Scenario(spec, knobs, duration_s=args.duration_s, modes=modes) if knobs.any else None
    fleet = scenario.fleet if scenario is not None else RateModeFleet(spec, modes)
    until_ms = fleet.start_ms + int(round(args.duration_s * 1000))
    say(
        f"simulating {args.vehicles:,} vehicles ({args.modes} rates) for {args.duration_s:g}s of event time from "
        f"{format_timestamp_ms(fleet.start_ms)}, {'real time' if speedup == 1.0 else f'{speedup:g}x real time' if speedup else f'{args.rate:,.0f} events/s' if args.rate else 'as fast as possible'}"
        + (f"; faults: {', '.join(f'{k}={v}' for k, v in knobs.__dict__.items() if v and k not in ('seed', 'late_after_s', 'offline_s'))}" if scenario else "")
    )

    def items() -> Iterable[Any]:
        """(key, payload) pairs, paced by event time unless --rate paces them by count."""
        if scenario is not None:
            timed = scenario.timed(encoded=True)
            if speedup is None:
                return (item for _ts, item in timed)
            return pacing.realtime(timed, start_ms=fleet.start_ms, speedup=speedup)
        batches = fleet.encoded_batches(until_ms, keys_only=True)
        if speedup is None:
            return (item for _ts, batch in batches for item in batch)
        return pacing.realtime_batches(batches, start_ms=fleet.start_ms, speedup=speedup)

    if metrics is not None:  # count what the fleet model produces (device_sim/sim_metrics.py)
        uncounted = items
        items = lambda: metrics.count_items(uncounted())  # noqa: E731

    output_report: Any = None
    if args.output == "kafka":
        from device_sim.kafka_output import produce_batches, produce_events

        servers = args.bootstrap or bootstrap or DEFAULT_BOOTSTRAP
        name = args.topic or topic or DEFAULT_TOPIC
        overrides = {"linger.ms": args.linger_ms}
        if scenario is None and speedup is not None:  # the cheapest path: batches, one clock check each
            batches = fleet.encoded_batches(until_ms, keys_only=True)
            output_report = produce_batches(servers, name, metrics.count_batches(batches) if metrics else batches, speedup=speedup,
                                            report_every_s=report_every, out=say, producer_overrides=overrides, metrics=metrics)
        else:
            output_report = produce_events(servers, name, items(), rate_per_s=args.rate, report_every_s=report_every,
                                           out=say, producer_overrides=overrides, metrics=metrics)
        failed = output_report.failed
    elif args.output == "mqtt":
        from device_sim.mqtt_output import publish_events

        host, port = _host_port(args.mqtt) if args.mqtt else (mqtt or DEFAULT_MQTT)
        per_vehicle, shared_login = _credentials(args)
        output_report = publish_events(
            host, port, items(), rate_per_s=args.rate, qos=args.mqtt_qos, connections=args.mqtt_connections,
            protocol=args.mqtt_protocol, credentials=per_vehicle, login=shared_login, report_every_s=report_every, out=say,
            metrics=metrics,
        )
        failed = output_report.failed
    else:
        count = 0
        write = sys.stdout.buffer.write if args.output == "jsonl" else None
        if metrics is not None and write is not None:
            metrics.attach(published=lambda: count, acknowledged=lambda: count, failed=lambda: 0)
        for _key, payload in items():
            count += 1
            if write is not None:
                write(payload + b"\n")
        if write is not None:
            sys.stdout.buffer.flush()
        failed = 0
        say(f"generated {count:,} items")

    if metrics is not None:
        metrics.finish(output_report)
    summary: dict[str, Any] = {"mode_counts": dict(fleet.mode_counts), "battery_swaps": fleet.swaps}
    if scenario is not None:
        report = scenario.report
        summary["scenario"] = report.as_dict()
        say(f"injected: {', '.join(f'{k}={v}' for k, v in report.injected().items() if v)}")
        expected = report.expected()
        say(
            f"downstream must count: {expected['unique_valid']:,} unique valid events, {expected['duplicates']:,} duplicates, "
            f"{expected['invalid']:,} invalid {expected['invalid_by_reason']}"
        )
        if report.shortfall():
            say(f"WARNING: fewer faults than asked (the run is too short for them): {report.shortfall()}")
    say(f"events per mode: {fleet.mode_counts}")
    if output_report is not None:
        summary["output"] = {**output_report.__dict__, "rate": output_report.rate, "send_rate": output_report.send_rate}
        if not report_every:  # with progress reports on, the output printed its summary already
            say(output_report.summary("mqtt" if args.output == "mqtt" else (args.topic or topic or DEFAULT_TOPIC)))
        if output_report.first_error:
            say(f"first error: {output_report.first_error}")
    if args.report_json:
        Path(args.report_json).write_text(json.dumps(summary, indent=2, default=str))
    return ExitCode.OK if failed == 0 else ExitCode.ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="device-sim", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
