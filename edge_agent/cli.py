"""`edge-agent`: run the agent for one vehicle until SIGTERM/SIGINT, `--duration-s` or `--readings`.

    edge-agent --vehicle-id 12345 --broker mqtt.example.com --tls --sensor-feed /run/sensors.fifo

reads the vehicle's state from the sensor daemon's JSON lines (`edge_agent.feed`; `-` for stdin).
Without `--sensor-feed` it drives a simulated vehicle, which needs the simulator (device_sim) of the
main distribution, fleet-telemetry: a demo and test mode, not installed on vehicles.

It prints one summary line at exit (readings, published, spooled, resent, dropped, ...). Exit status:
0 after a clean stop, 1 if the agent could not start (e.g. the spool is in use), 2 for bad flags
(and for a simulated vehicle where the simulator is not installed).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from edge_agent.agent import EdgeAgent
from edge_agent.config import MQTT_VERSIONS, AgentConfig, default_spool_dir, parse_broker_address
from edge_agent.feed import SensorFeed
from edge_agent.rate import SEED_RATES, RatePolicy
from edge_agent.sensors import SensorSource
from edge_agent.spool import SpoolError

PASSWORD_ENV = "EDGE_AGENT_PASSWORD"


def _version() -> str:
    try:
        return metadata.version("fleet-edge-agent")
    except metadata.PackageNotFoundError:  # a checkout that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    defaults = AgentConfig(vehicle_id=1, spool_dir=Path("."))
    p = argparse.ArgumentParser(
        prog="edge-agent",
        description="On-vehicle telemetry agent: MQTT QoS 1 to telemetry/{vehicle_id}, store-and-forward spool.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("--vehicle-id", type=int, required=True, help="the vehicle this agent reports for (topic telemetry/<id>)")
    p.add_argument("--broker", default="127.0.0.1:1883", help="host[:port] (port 8883 by default with TLS)")
    p.add_argument("--client-id", help="MQTT client id (default: vehicle-<vehicle id>)")
    p.add_argument("--mqtt-version", choices=MQTT_VERSIONS, default=defaults.mqtt_version, help="MQTT protocol version")
    p.add_argument("--keepalive-s", type=int, default=defaults.keepalive_s, help="MQTT keepalive: the broker drops the session after 1.5x this silence")
    p.add_argument("--username", help="MQTT username (the broker ACL allows it telemetry/<vehicle id> only)")
    p.add_argument("--password", help=f"or set ${PASSWORD_ENV} (keeps it out of the process list)")
    p.add_argument("--tls", action="store_true", help="TLS with the system CA store")
    p.add_argument("--tls-ca", type=Path, help="CA file to verify the broker (implies --tls)")
    p.add_argument("--tls-cert", type=Path, help="client certificate (with --tls-key)")
    p.add_argument("--tls-key", type=Path, help="client private key")
    p.add_argument("--tls-insecure", action="store_true", help="accept any server certificate: tests only")

    p.add_argument("--spool-dir", type=Path, help="default: $XDG_STATE_HOME/fleet-telemetry/edge-agent/<vehicle id>")
    p.add_argument("--max-spool-messages", type=int, default=defaults.max_spool_messages, help="0: no limit")
    p.add_argument("--max-spool-bytes", type=int, default=defaults.max_spool_bytes, help="payload bytes; 0: no limit")
    p.add_argument("--spool-durable", action="store_true", help="fsync every spool commit")

    p.add_argument("--max-inflight", type=int, default=defaults.max_inflight, help="QoS 1 publishes awaiting PUBACK at once")
    p.add_argument("--connect-timeout-s", type=float, default=defaults.connect_timeout_s, help="give up one connection attempt after this long")
    p.add_argument("--reconnect-min-s", type=float, default=defaults.reconnect_min_s, help="first reconnect backoff (doubles up to --reconnect-max-s, with jitter)")
    p.add_argument("--reconnect-max-s", type=float, default=defaults.reconnect_max_s, help="longest reconnect backoff")
    p.add_argument("--flush-timeout-s", type=float, default=defaults.flush_timeout_s, help="at stop, wait this long for in-flight and spooled messages to be acknowledged")

    p.add_argument("--in-trip-hz", type=float, default=SEED_RATES.in_trip_hz, help="readings per second in a trip (seed: 5)")
    p.add_argument("--normal-hz", type=float, default=SEED_RATES.normal_hz, help="readings per second otherwise (seed: 1)")
    p.add_argument("--parked-hz", type=float, default=SEED_RATES.parked_hz, help="readings per second parked with a high battery (seed: 0.1)")
    p.add_argument("--parked-battery-above", type=float, default=SEED_RATES.parked_battery_above, help="battery percent above which a parked vehicle saves power")
    p.add_argument("--sensor-feed", metavar="PATH", help="the sensor daemon's JSON lines: a FIFO, a file it appends to, "
                   "or - for stdin (default: a simulated vehicle, which needs fleet-telemetry's device_sim)")
    p.add_argument("--sensor-max-age-s", type=float, default=30.0,
                   help="a feed's newest line older than this is no reading (the daemon must write at least this often)")
    p.add_argument("--speedup", type=float, default=defaults.speedup, help="divide reading intervals (demos, tests)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="seed of the simulated sensors")
    p.add_argument("--duration-s", type=float, help="stop after this long")
    p.add_argument("--readings", type=int, help="take this many readings, deliver them all, exit")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log level (stderr)")
    return p


def config_from_args(args: argparse.Namespace, environ: dict[str, str] | None = None) -> AgentConfig:
    """Flags → AgentConfig (ValueError on a bad combination)."""
    environ = os.environ if environ is None else environ
    tls = args.tls or args.tls_ca is not None or args.tls_cert is not None
    host, port = parse_broker_address(args.broker, tls=tls)
    password = args.password if args.password is not None else (environ.get(PASSWORD_ENV) if args.username else None)
    return AgentConfig(
        vehicle_id=args.vehicle_id,
        spool_dir=args.spool_dir or default_spool_dir(args.vehicle_id),
        broker_host=host,
        broker_port=port,
        client_id=args.client_id,
        mqtt_version=args.mqtt_version,
        keepalive_s=args.keepalive_s,
        username=args.username,
        password=password,
        tls=args.tls,
        tls_ca=args.tls_ca,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_insecure=args.tls_insecure,
        max_inflight=args.max_inflight,
        connect_timeout_s=args.connect_timeout_s,
        reconnect_min_s=args.reconnect_min_s,
        reconnect_max_s=args.reconnect_max_s,
        flush_timeout_s=args.flush_timeout_s,
        max_spool_messages=args.max_spool_messages,
        max_spool_bytes=args.max_spool_bytes,
        spool_durable=args.spool_durable,
        rates=RatePolicy(args.in_trip_hz, args.normal_hz, args.parked_hz, args.parked_battery_above),
        speedup=args.speedup,
        seed=args.seed,
        duration_s=args.duration_s,
        max_readings=args.readings,
    )


def make_sensor_source(args: argparse.Namespace, config: AgentConfig) -> SensorSource:
    """The sensor daemon's feed, or the simulated vehicle (ImportError, saying what to do, without device_sim)."""
    if args.sensor_feed is not None:
        return SensorFeed(args.sensor_feed, config.vehicle_id, max_age_s=args.sensor_max_age_s)
    try:
        # Imported here, not at the top: the simulator is the main distribution's, and a vehicle's
        # install (fleet-edge-agent alone) must run without it.
        from device_sim.simulated_sensors import SimulatedSensorSource
    except ImportError as exc:
        raise ImportError(
            "no --sensor-feed given, and the simulated vehicle (the default) needs device_sim, the simulator of "
            f"fleet-telemetry, which cannot be imported here ({exc}); on a vehicle give --sensor-feed PATH "
            "(the sensor daemon's JSON lines, - for stdin)"
        ) from exc
    return SimulatedSensorSource(config.vehicle_id, seed=config.seed, time_scale=config.speedup)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a flag argparse refused (it printed why)
        return int(exc.code or 0)
    try:
        config = config_from_args(args)
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"edge-agent: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    try:
        sensor = make_sensor_source(args, config)
    except (ValueError, ImportError) as exc:
        parser.print_usage(sys.stderr)
        print(f"edge-agent: error: {exc}", file=sys.stderr)
        return 2
    try:
        agent = EdgeAgent(config, sensor)
    except (SpoolError, OSError) as exc:
        print(f"edge-agent: error: {exc}", file=sys.stderr)
        return 1

    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda _signum, _frame: agent.stop())
    try:
        stats = agent.run()
    except Exception as exc:
        logging.getLogger("edge_agent").exception("the agent stopped on an error")
        print(f"edge-agent: error: {exc}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if isinstance(sensor, SensorFeed):
            sensor.close()
    print(stats.summary(config.vehicle_id), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
