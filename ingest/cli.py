"""Command line of the MQTT→Kafka bridge: `telemetry bridge …`, or on its own
`python -m ingest.cli [--profile local] [--set k=v] [--mqtt host:port] …`.

Runs until SIGTERM/SIGINT, then stops cleanly (flushes Kafka, acknowledges what was written) and
logs one stats line every `--stats-every` seconds and at the end (with --log-json, the counters are
fields of the line). Exit status (fleet/cli/exit_codes.py): OK after a clean stop, ERROR if the
broker refused the bridge (credentials, ACL), USAGE for bad flags or configuration.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from fleet.cli import add_common_arguments
from fleet.cli.exit_codes import ExitCode
from fleet.config.log_setup import configure_logging

PASSWORD_ENV = "TELEMETRY_BRIDGE_PASSWORD"
log = logging.getLogger(__name__)


def parse_host_port(text: str, default_port: int = 1883) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not host:port")
    return host or "127.0.0.1", int(port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The bridge's own flags (the global --profile/--set come from the caller's parser)."""
    parser.add_argument("--mqtt", type=parse_host_port, default=None, metavar="HOST:PORT",
                        help="the MQTT broker (default: the profile's infra.host:infra.mqtt_port)")
    parser.add_argument("--username", help="MQTT user (infra/mqtt_security.py names it telemetry-bridge)")
    parser.add_argument("--password", help=f"or set ${PASSWORD_ENV} (keeps it out of the process list)")
    parser.add_argument("--group", default="telemetry-bridge", help="shared-subscription group: bridges in one group split the load")
    parser.add_argument("--client-id", default=None, help="stable per bridge instance (default: telemetry-bridge-<hostname>)")
    parser.add_argument("--receive-maximum", type=int, default=1_000, help="MQTT in-flight window")
    parser.add_argument("--max-in-flight", type=int, default=10_000, help="most messages held unacknowledged")
    parser.add_argument("--delivery-timeout-ms", type=int, default=120_000, help="a Kafka write failing after this is retried via MQTT")
    parser.add_argument("--stats-every", type=float, default=10.0, metavar="SECONDS", help="log counters this often (0: only at the end)")
    parser.add_argument("--metrics-port", type=int, default=0, metavar="PORT",
                        help="serve Prometheus /metrics and /healthz on this port (0: off; ingest/metrics.py)")
    parser.add_argument("--metrics-host", default="127.0.0.1", help="address /metrics and /healthz listen on")


def format_stats(stats: dict[str, Any]) -> str:
    rejected = ", ".join(f"{k}={v}" for k, v in sorted(stats["rejected"].items())) or "none"
    return (
        f"received {stats['received']} forwarded {stats['forwarded']} rejected {stats['rejected_total']} ({rejected}) "
        f"acked {stats['acked']} in_flight {stats['in_flight']} deferred {stats['deferred']} "
        f"delivery_failed {stats['delivery_failed']} resyncs {stats['resyncs']} reconnects {stats['reconnects']}"
        + ("" if stats["connected"] else " [disconnected]")
        + (f" last_error: {stats['last_error']}" if stats["last_error"] else "")
    )


def run_from_args(config: Any, args: argparse.Namespace, environ: dict[str, str] | None = None) -> int:
    """Run the bridge from a PlatformConfig and parsed flags until a signal stops it."""
    from ingest.bridge import BridgeError, MqttKafkaBridge
    from ingest.settings import bridge_config

    environ = os.environ if environ is None else environ
    host, port = args.mqtt if args.mqtt else (None, None)
    password = args.password if args.password is not None else (environ.get(PASSWORD_ENV) if args.username else None)
    bridge = MqttKafkaBridge(bridge_config(
        config, mqtt_host=host, mqtt_port=port, username=args.username, password=password, group=args.group,
        client_id=args.client_id, receive_maximum=args.receive_maximum, max_in_flight=args.max_in_flight,
        delivery_timeout_ms=args.delivery_timeout_ms,
    ), policy=config.schema)
    cfg = bridge.config
    log.info("bridge %s: mqtt://%s:%s %s → %s (rejects → %s) on %s", cfg.client_id, cfg.mqtt_host, cfg.mqtt_port,
             cfg.subscription, cfg.telemetry_topic, cfg.dlq_topic, cfg.bootstrap_servers)

    done = threading.Event()

    def on_signal(_signum, _frame) -> None:
        bridge.request_stop()  # the loop runs on this (main) thread and shuts down cleanly

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def report() -> None:
        while not done.wait(args.stats_every):
            stats = bridge.stats()
            log.info("%s", format_stats(stats), extra={"stats": stats})

    if args.stats_every > 0:
        threading.Thread(target=report, name="bridge-stats", daemon=True).start()
    metrics = None
    if args.metrics_port:
        from ingest.metrics import serve_bridge_metrics

        metrics = serve_bridge_metrics(bridge, args.metrics_host, args.metrics_port)
        log.info("bridge metrics: http://%s:%s/metrics, /healthz", args.metrics_host, metrics.port)
    try:
        bridge.run()
    except BridgeError as exc:
        log.error("bridge: %s", exc)
        return ExitCode.ERROR
    finally:
        done.set()
        if metrics is not None:
            metrics.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    stats = bridge.stats()
    log.info("stopped: %s", format_stats(stats), extra={"stats": stats})
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="telemetry-bridge", description="MQTT → Kafka bridge (replaces the IoT Core rule).")
    add_common_arguments(parser)
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from fleet.config import ConfigError, load_config

    args = build_parser().parse_args(argv)
    configure_logging(args.log_level, json=args.log_json)
    try:
        config = load_config(args.profile, args.set)
    except ConfigError as exc:
        print(f"bridge: configuration error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        return int(run_from_args(config, args))
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
