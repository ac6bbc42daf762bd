"""`telemetry query …`: read what the platform stored, as an aligned table or, with --json, one JSON
document for scripts. The data comes from fleet/queries.py; this module parses and prints.

They work with every server stopped except `query dlq`: the hot store, the status table and the
alert log are files locally (after Ctrl-C of `telemetry live` they stay), the DLQ is a Kafka topic.

Exit codes (fleet/cli/exit_codes.py): OK an answer (an empty one too), ERROR an unknown vehicle,
USAGE a query the profile's backend cannot answer or a bad argument, UNAVAILABLE Kafka not
reachable or the topic missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from fleet.cli.exit_codes import ExitCode
from udfs.alert_rules import BACK_ONLINE, GEOFENCE_EXIT, GEOFENCE_RETURN, LOW_BATTERY, OFFLINE
from udfs.alert_storm import STORM_SUMMARY
from udfs.platform_alerts import INPUT_RESTORED, INPUT_STALLED
from udfs.telemetry_schema import format_timestamp_ms, parse_timestamp_ms

# Every kind the anomaly job writes to the alert log (udfs/alert_rules, alert_storm, platform_alerts).
ALERT_KINDS = (LOW_BATTERY, GEOFENCE_EXIT, GEOFENCE_RETURN, OFFLINE, BACK_ONLINE, STORM_SUMMARY, INPUT_STALLED, INPUT_RESTORED)
# Shorthands a reader asks for: "geofence" is both directions of a geofence episode.
KIND_GROUPS = {"geofence": (GEOFENCE_EXIT, GEOFENCE_RETURN)}

EXIT_UNKNOWN_VEHICLE = ExitCode.ERROR
EXIT_NOT_SUPPORTED = ExitCode.USAGE
EXIT_KAFKA = ExitCode.UNAVAILABLE

_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


@dataclass(frozen=True)
class Since:
    """--since as given and as the epoch milliseconds it meant when the command started."""

    text: str
    ms: int

    @property
    def iso(self) -> str:
        return format_timestamp_ms(self.ms)


def since_argument(text: str, now_ms: int | None = None) -> Since:
    """'1h', '30m', '2d', '90s' ago, or an ISO-8601 time with a zone."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if text[-1:] in _UNITS_MS and text[:-1].isdigit():
        return Since(text, now - int(text[:-1]) * _UNITS_MS[text[-1]])
    parsed = parse_timestamp_ms(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration like 1h, 30m, 2d, or ISO-8601 like 2025-01-15T14:00:00Z")
    return Since(text, parsed)


def _limit_argument(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: a limit is 0 or more")
    return value


def _config(args: argparse.Namespace):
    from fleet.config import load_config

    return load_config(args.profile, args.set)


def _print_json(document: Any) -> None:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")


def _fail(command: str, message: str, code: int) -> int:
    print(f"telemetry query {command}: {message}", file=sys.stderr)
    return code


def _speed(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}"


# --- the commands ---------------------------------------------------------------------------------


def cmd_trace(args: argparse.Namespace) -> int:
    from connectors.hot_store import open_hot_store, open_status_store
    from fleet.queries import UnknownVehicle, vehicle_trace
    from fleet.text_table import format_table

    stores = _config(args).stores
    hot, status = open_hot_store(stores), open_status_store(stores)
    try:
        points = vehicle_trace(hot, status, args.vehicle, since_ms=args.since.ms, limit=args.limit)
    except UnknownVehicle as exc:
        return _fail("trace", str(exc), EXIT_UNKNOWN_VEHICLE)
    finally:
        hot.close()
        status.close()
    if args.json:
        _print_json({
            "vehicle_id": args.vehicle, "since": args.since.iso, "limit": args.limit,
            "points": [{"time": format_timestamp_ms(p.time_ms), **asdict(p)} for p in points],
        })
        return ExitCode.OK
    rows = [(format_timestamp_ms(p.time_ms), f"{p.latitude:.6f}", f"{p.longitude:.6f}", _speed(p.speed_kmh)) for p in points]
    print(format_table(("time", "latitude", "longitude", "speed_kmh"), rows, right=("latitude", "longitude", "speed_kmh")))
    print(f"({len(points)} points of vehicle {args.vehicle} since {args.since.iso}, newest first)")
    return ExitCode.OK


def cmd_status(args: argparse.Namespace) -> int:
    from connectors.hot_store import open_status_store
    from fleet.queries import UnknownVehicle, vehicle_status

    store = open_status_store(_config(args).stores)
    try:
        status = vehicle_status(store, args.vehicle)
    except UnknownVehicle as exc:
        return _fail("status", str(exc), EXIT_UNKNOWN_VEHICLE)
    finally:
        store.close()
    fields = asdict(status)
    if args.json:
        _print_json({**fields, "last_seen": format_timestamp_ms(status.last_seen_ms)})
        return ExitCode.OK
    age_s = max(0.0, time.time() - status.last_seen_ms / 1000)
    for key, value in fields.items():
        shown = f"{format_timestamp_ms(value)} ({_age(age_s)} ago)" if key == "last_seen_ms" else value
        print(f"{key:<16} {'' if shown is None else shown}")
    return ExitCode.OK


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cmd_alerts(args: argparse.Namespace) -> int:
    from connectors.hot_store import open_status_store
    from fleet.queries import UnknownVehicle, alert_time_ms, recent_alerts, vehicle_status
    from fleet.text_table import format_table

    config = _config(args)
    kinds = tuple(dict.fromkeys(kind for asked in args.kind for kind in KIND_GROUPS.get(asked, (asked,))))
    selection = recent_alerts(config.alerts.alert_log, since_ms=args.since.ms, kinds=kinds, vehicle_id=args.vehicle, limit=args.limit)
    if args.vehicle is not None and not selection.matched:
        store = open_status_store(config.stores)
        try:
            vehicle_status(store, args.vehicle)
        except UnknownVehicle as exc:
            return _fail("alerts", str(exc), EXIT_UNKNOWN_VEHICLE)
        finally:
            store.close()
    if args.json:
        _print_json({
            "alert_log": config.alerts.alert_log, "since": args.since.iso, "kinds": list(kinds), "vehicle_id": args.vehicle,
            "matched": selection.matched, "unreadable_lines": selection.unreadable_lines, "alerts": selection.alerts,
        })
        return ExitCode.OK
    rows = [
        (format_timestamp_ms(alert_time_ms(a)), a.get("kind"), a.get("severity"), a.get("vehicle_id"), a.get("zone_id"),
         {True: "yes", False: "no"}.get(a.get("paged")), a.get("subject"))
        for a in selection.alerts
    ]
    print(format_table(("raised", "kind", "severity", "vehicle", "zone_id", "paged", "subject"), rows, right=("vehicle",)))
    note = f"; {selection.unreadable_lines} unreadable lines skipped" if selection.unreadable_lines else ""
    print(f"({len(selection.alerts)} of {selection.matched} alerts raised since {args.since.iso}, newest first; "
          f"log {config.alerts.alert_log}{note})")
    return ExitCode.OK


def cmd_zones(args: argparse.Namespace) -> int:
    from connectors.hot_store import open_hot_store
    from fleet.queries import QueryNotSupported, zone_counts
    from fleet.text_table import format_table

    store = open_hot_store(_config(args).stores)
    try:
        tally = zone_counts(store, since_ms=args.since.ms, limit=args.limit)
    except QueryNotSupported as exc:
        return _fail("zones", str(exc), EXIT_NOT_SUPPORTED)
    finally:
        store.close()
    if args.json:
        _print_json({
            "since": args.since.iso, "zones_total": tally.zone_total, "events_total": tally.event_total,
            "zones": [{**asdict(z), "first": format_timestamp_ms(z.first_ms), "last": format_timestamp_ms(z.last_ms)} for z in tally.zones],
        })
        return ExitCode.OK
    rows = [(z.zone_id, z.events, z.vehicles, format_timestamp_ms(z.first_ms), format_timestamp_ms(z.last_ms)) for z in tally.zones]
    print(format_table(("zone_id", "events", "vehicles", "first", "last"), rows, right=("events", "vehicles")))
    print(f"({len(tally.zones)} of {tally.zone_total} zones, {tally.event_total:,} events since {args.since.iso}, most events first)")
    return ExitCode.OK


def cmd_dlq(args: argparse.Namespace) -> int:
    from connectors.kafka_offsets import UnknownTopic
    from connectors.kafka_time_reader import BrokerUnreachable, read_since
    from fleet.queries import dlq_counts
    from fleet.text_table import format_table

    config = _config(args)
    bootstrap, topic = config.kafka.bootstrap_servers, config.kafka.topic("dlq").name
    try:
        read = read_since(bootstrap, topic, args.since.ms)
    except BrokerUnreachable as exc:
        return _fail("dlq", f"{exc}; start it with `telemetry infra up kafka`", EXIT_KAFKA)
    except UnknownTopic:
        return _fail("dlq", f"topic {topic} does not exist on {bootstrap}; `telemetry topics ensure` creates it", EXIT_KAFKA)
    tally = dlq_counts(read.values)
    if args.json:
        _print_json({
            "topic": topic, "since": args.since.iso, "records": tally.records, "unreadable": tally.unreadable,
            "complete": read.complete, "counts": [asdict(c) for c in tally.counts],
            "partitions": {str(p): {"from": read.start[p], "to": read.end[p]} for p in sorted(read.end)},
        })
        return ExitCode.OK
    rows = [(c.stage, c.reason, c.records, c.first_rejected_at, c.last_rejected_at) for c in tally.counts]
    print(format_table(("stage", "reason", "records", "first_rejected_at", "last_rejected_at"), rows, right=("records",)))
    notes = [f"{tally.records} records on {topic} since {args.since.iso}"]
    if tally.unreadable:
        notes.append(f"{tally.unreadable} values that are not DLQ records")
    if not read.complete:
        notes.append("stopped short of the end offsets taken at the start (an open transaction holds the rest back)")
    print("(" + "; ".join(notes) + ")")
    return ExitCode.OK


# --- the parser -----------------------------------------------------------------------------------


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    text = "read the hot store, the vehicle status, the alert log and the DLQ (table, or --json)"
    parser = commands.add_parser("query", help=text, description=text)
    actions = parser.add_subparsers(dest="action", required=True)

    def add(name: str, func: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = actions.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(func=func)
        sub.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
        return sub

    def since(sub: argparse.ArgumentParser, what: str) -> None:
        sub.add_argument("--since", type=since_argument, default="1h",
                         help=f"{what} at or after: a duration ago (1h, 30m, 2d, 90s) or an ISO-8601 time (default: 1h)")

    trace = add("trace", cmd_trace, "a vehicle's GPS trace from the hot store, newest first (the seed's example query)")
    trace.add_argument("--vehicle", type=int, required=True, help="the vehicle_id")
    since(trace, "points with an event time")
    trace.add_argument("--limit", type=_limit_argument, default=None, help="at most this many points (default: all)")

    status = add("status", cmd_status, "a vehicle's last known state from the vehicle status table")
    status.add_argument("--vehicle", type=int, required=True, help="the vehicle_id")

    alerts = add("alerts", cmd_alerts, "recent alerts from the alert log ([alerts] alert_log), newest first")
    since(alerts, "alerts raised (the anomaly job's clock)")
    alerts.add_argument("--kind", action="append", default=[], choices=[*ALERT_KINDS, *KIND_GROUPS],
                        help="only this kind (repeatable; geofence = geofence_exit and geofence_return)")
    alerts.add_argument("--vehicle", type=int, default=None, help="only this vehicle_id's alerts (default: every vehicle)")
    alerts.add_argument("--limit", type=_limit_argument, default=20, help="at most this many (default: 20)")

    zones = add("zones", cmd_zones, "events per zone in the hot store: the zone_id (geohash-6 of the event's "
                "position) the pipeline stored with each point, most events first; local hot store only")
    since(zones, "points with an event time")
    zones.add_argument("--limit", type=_limit_argument, default=20, help="the busiest this many zones (default: 20)")

    dlq = add("dlq", cmd_dlq, "DLQ records on the telemetry-dlq topic by stage and reason (needs Kafka: "
              "telemetry infra up kafka); read from each partition's first record with a Kafka timestamp at or after "
              "--since up to its end offset when the command started")
    since(dlq, "records with a Kafka timestamp")
    return parser
