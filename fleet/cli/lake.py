"""`telemetry lake …`: the batch lakehouse — Silver from Bronze, Gold from Silver, retention, GDPR
erasure, the audit log, and what the tables hold. The work is in lake/; these are thin."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable
from contextlib import closing, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from fleet.cli.exit_codes import ExitCode
from fleet.config import ConfigError, PlatformConfig

log = logging.getLogger(__name__)


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def _bar(total: int | None, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="hour" if desc == "silver" else "step", file=sys.stderr, disable=None, leave=False)


def parse_time_ms(text: str, flag: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: an ISO-8601 time, like 2026-01-15T14:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the lake's times are UTC
    return int(moment.timestamp() * 1000)


def _tables(config: PlatformConfig):
    from lake.storage import use_profile_s3
    from lake.tables import LakeTables

    tables = LakeTables.from_config(config)
    use_profile_s3(config, vars(tables).values())  # s3:// tables: the profile's region, and its endpoint if local (moto)
    return tables


def cmd_silver(args: argparse.Namespace, config: PlatformConfig) -> int:
    from lake import silver
    from lake.retention import oldest_kept

    paths = _tables(config).silver_paths()
    # Hours before Bronze's retention cutoff are no longer whole in Bronze: late rows are added to them.
    _, complete_from_ms = oldest_kept(int(time.time() * 1000), config.lake.bronze_retention_days)
    if args.hour:
        try:
            results = [silver.rebuild(paths, parse_time_ms(args.hour, "--hour"), complete_from_ms=complete_from_ms)]
        except ValueError as exc:
            print(f"telemetry lake silver: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    else:
        pending = silver.pending_hours(paths)
        hours, new, _, _ = pending
        with _bar(len(hours), "silver") as bar:
            results = silver.update(paths, complete_from_ms=complete_from_ms, pending=pending, progress=lambda _: bar.update())
        for broken in [f for f in new if f.unreadable]:
            log.warning("silver: skipped %s (%s); it is read again next run", broken.path, broken.unreadable)
        unplaced = [f for f in new if f.unplaced]
        if unplaced:
            log.warning("silver: %s Bronze rows in %d files have no event time, so no hour: %s",
                        f"{sum(f.rows for f in unplaced):,}", len(unplaced), ", ".join(f.path for f in unplaced[:5]))
    if args.json:
        _print_json({"silver": paths.silver, "hours": [{"hour": silver.hour_label(r.hour_ms), **asdict(r)} for r in results]})
        return ExitCode.OK
    for r in results:
        print(f"{silver.hour_label(r.hour_ms)}  bronze {r.bronze_rows:>9,}  silver {r.silver_rows:>9,}  "
              f"duplicates {r.duplicates:>7,}  rejected {r.rejected:>6,}")
    print(f"silver: {len(results)} hour(s) built into {paths.silver}" if results else "silver: no new Bronze files; nothing to build")
    return ExitCode.OK


def _newest_file_per_date(table_uri: str) -> dict[str, int]:
    """date → when its newest data file was committed (ms), from the table's add actions."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        actions = DeltaTable(table_uri).get_add_actions(flatten=True)
    except TableNotFoundError:
        return {}
    newest: dict[str, int] = {}
    for date, written in zip(actions.column("partition.date").to_pylist(), actions.column("modification_time").to_pylist()):
        written = int(written.timestamp() * 1000) if hasattr(written, "timestamp") else int(written)
        newest[date] = max(newest.get(date, written), written)
    return newest


def _stale_dates(silver_uri: str, gold_uri: str) -> list[str]:
    """Dates whose Silver changed after their Gold was written (or that have no Gold yet): the
    default of `lake gold`, so an hour Silver rebuilt days later (a late file, a backfill) reaches
    Gold too."""
    silver, gold = _newest_file_per_date(silver_uri), _newest_file_per_date(gold_uri)
    return sorted(date for date, written in silver.items() if date not in gold or written > gold[date])


def cmd_gold(args: argparse.Namespace, config: PlatformConfig) -> int:
    from lake import gold

    tables = _tables(config)
    from lake.tables import dates

    available = dates(tables.silver)
    dates = args.date or (available if args.all else _stale_dates(tables.silver, tables.gold))
    missing = sorted(set(dates) - set(available))
    if missing:
        print(f"gold: Silver holds no rows of {', '.join(missing)} (it has {len(available)} dates"
              + (f", {available[0]} .. {available[-1]})" if available else ")"), file=sys.stderr)
        return ExitCode.USAGE
    built = []
    with _bar(len(dates), "gold") as bar:
        for date in dates:
            result = gold.build_day(tables.silver, tables.gold, date)
            bar.update()
            built.append({"date": date, "silver_rows": result.silver_rows, "gold_rows": result.gold_rows})
            if not args.json:
                print(f"{date}  silver rows {result.silver_rows:>10,}  gold rows {result.gold_rows:>8,}")
    if args.json:
        _print_json({"gold": tables.gold, "dates": built})
        return ExitCode.OK
    print(f"gold: {len(dates)} date(s) into {tables.gold}" if dates else "gold: every date is up to date with Silver; nothing to build")
    return ExitCode.OK


def cmd_compact(args: argparse.Namespace, config: PlatformConfig) -> int:
    from lake import compact

    bronze = _tables(config).bronze
    with _bar(None, "compact") as bar:
        merges = compact.compact(bronze, target_bytes=args.target_mb * 1024 * 1024, older_than_s=args.older_than_min * 60,
                                 dry_run=args.dry_run, progress=lambda _: bar.update())
    if args.json:
        _print_json({"bronze": bronze, "dry_run": args.dry_run, "merges": [asdict(m) for m in merges]})
        return ExitCode.OK
    for m in merges:
        print(f"{m.folder.removeprefix(bronze.split('://', 1)[-1]).lstrip('/') or '.'}  {m.prefix}: {len(m.inputs)} files, "
              f"{m.rows:,} rows, {m.bytes_in / 1e6:.1f} MB" + ("" if args.dry_run else f" → {m.output} {m.bytes_out / 1e6:.1f} MB"))
    verb = "would merge" if args.dry_run else "merged"
    print(f"compact: {verb} {sum(len(m.inputs) for m in merges)} files into {len(merges)}" if merges else "compact: nothing to merge")
    return ExitCode.OK


@contextmanager
def _stores(config: PlatformConfig, wanted: bool):
    """(hot store, status store) of the profile, closed after; (None, None) if not wanted."""
    if not wanted:
        yield None, None
        return
    from connectors.hot_store import open_hot_store, open_status_store

    with closing(open_hot_store(config.stores)) as hot_store, closing(open_status_store(config.stores)) as status:
        yield hot_store, status


def _print_removals(removals, *, dry_run: bool) -> None:
    verb = "would remove" if dry_run else "removed"
    for r in removals:
        rows = "?" if r.rows is None else f"{r.rows:,}"
        print(f"  {r.layer:<16} {verb} {rows:>10} rows  {len(r.files):>5} files  {r.note}")


def cmd_retention(args: argparse.Namespace, config: PlatformConfig) -> int:
    from lake import retention

    policy = retention.RetentionPolicy.from_config(config)
    now_ms = parse_time_ms(args.now, "--now") if args.now else int(time.time() * 1000)
    with _stores(config, not args.lake_only) as (hot_store, _), _bar(5, "retention") as bar:
        removals = retention.apply(_tables(config), policy, now_ms=now_ms, hot_store=hot_store, dry_run=args.dry_run,
                                   progress=lambda _: bar.update())
    if args.json:
        _print_json({"policy": asdict(policy), "hot_store_hours": config.stores.retention_hours, "dry_run": args.dry_run,
                     "removals": [asdict(r) for r in removals]})
        return ExitCode.OK
    print(f"retention: Bronze {policy.bronze_days} days, Silver {policy.silver_days}, Gold {policy.gold_days}, "
          f"hot store {config.stores.retention_hours} h" + (" (dry run)" if args.dry_run else ""))
    _print_removals(removals, dry_run=args.dry_run)
    if not removals:
        print("  nothing is expired")
    return ExitCode.OK


def cmd_erase(args: argparse.Namespace, config: PlatformConfig) -> int:
    from connectors.erasure_subject import ErasureSubject
    from lake import erasure

    try:
        subject = ErasureSubject(
            trip_id=args.trip, vehicle_id=args.vehicle,
            since_ms=parse_time_ms(args.since, "--since") if args.since else None,
            until_ms=parse_time_ms(args.until, "--until") if args.until else None,
        )
    except ValueError as exc:
        print(f"telemetry lake erase: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    with _stores(config, not args.lake_only) as (hot_store, status), _bar(4, "erase") as bar:
        report = erasure.erase(subject, _tables(config), hot_store=hot_store, status_store=status,
                               dry_run=args.dry_run, progress=lambda _: bar.update())
    if args.json:
        _print_json({"subject": subject.describe(), "dry_run": args.dry_run, "run_id": report.run_id,
                     "removals": [asdict(r) for r in report.removals], "kafka_retention": _kafka_windows(config)})
        return ExitCode.OK
    print(f"erase {subject.describe()}" + (" (dry run: nothing changed)" if args.dry_run else f" — audit run {report.run_id}"))
    _print_removals(report.removals, dry_run=args.dry_run)
    print(f"  Kafka topics are not rewritten: their records age out with [topics.*] retention_ms ({_kafka_windows(config)})")
    return ExitCode.OK


def _kafka_windows(config: PlatformConfig) -> str:
    windows = []
    for topic in config.kafka.topics:
        retention_ms = topic.configs.get("retention.ms")
        if topic.configs.get("cleanup.policy") == "compact":
            windows.append(f"{topic.name} compacted, vehicle types only")
        elif retention_ms is not None:
            windows.append(f"{topic.name} {int(retention_ms) / 86_400_000:g} d")
    return ", ".join(windows)


def cmd_audit(args: argparse.Namespace, config: PlatformConfig) -> int:
    from lake import audit

    rows = audit.read(_tables(config).audit)[-args.last:]
    if args.json:
        _print_json({"rows": rows})
        return ExitCode.OK
    for row in rows:
        at = datetime.fromtimestamp(row["at_ms"] / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows_text = "?" if row["rows"] is None else f"{row['rows']:,}"
        print(f"{at}  {row['run_id'][:8]}  {row['action']:<9} {row['layer']:<16} {rows_text:>10} rows {row['files']:>5} files  "
              f"{row['subject']}  {row['note']}")
    if not rows:
        print("audit log is empty")
    return ExitCode.OK


def cmd_tables(args: argparse.Namespace, config: PlatformConfig) -> int:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from lake.bronze_index import list_bronze

    tables = _tables(config)
    _, files = list_bronze(tables.bronze)
    found: list[dict[str, Any]] = [
        {"table": "bronze", "rows": sum(f.rows for f in files), "files": len(files), "uri": tables.bronze, "version": None}]
    for name in ("silver", "silver_rejected", "gold", "ledger", "audit"):
        uri = getattr(tables, name)
        try:
            table = DeltaTable(uri)
        except TableNotFoundError:
            found.append({"table": name, "rows": None, "files": None, "uri": uri, "version": None})
            continue
        adds = table.get_add_actions(flatten=True)
        rows = sum(adds.column("num_records").to_pylist()) if adds.num_rows else 0
        found.append({"table": name, "rows": rows, "files": adds.num_rows, "uri": uri, "version": table.version()})
    if args.json:
        _print_json({"tables": found})
        return ExitCode.OK
    for t in found:
        if t["rows"] is None:  # a Delta table not created yet
            print(f"{t['table']:<16} {'-':>12}       {'-':>6}        {t['uri']} (not created yet)")
        else:
            version = "" if t["table"] == "bronze" else f" (version {t['version']})"
            print(f"{t['table']:<16} {t['rows']:>12,} rows  {t['files']:>6} files  {t['uri']}{version}")
    return ExitCode.OK


def cmd_spark_check(args: argparse.Namespace, config: PlatformConfig) -> int:
    """Apache Spark + Delta Lake (a side venv) reads Silver, its rejected rows and Gold: same
    version and row count as delta-rs (tests/integration/test_lake_spark.py compares every row)."""
    import tempfile
    from pathlib import Path

    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from lake.spark_check import SparkCheckError, read_with_spark, spark_report

    tables = _tables(config)
    wanted = {name: getattr(tables, name) for name in ("silver", "silver_rejected", "gold")}
    remote = [uri for uri in wanted.values() if "://" in uri and not uri.startswith("file://")]
    if remote:
        print(f"lake spark-check: local tables only (the Spark venv has no S3 filesystem): {', '.join(remote)}", file=sys.stderr)
        return ExitCode.USAGE
    present = {}
    for name, uri in wanted.items():
        try:
            present[name] = DeltaTable(uri)
        except TableNotFoundError:
            print(f"  {name:<16} not built yet ({uri})")
    if not present:
        print("lake spark-check: no Delta table to read yet (run telemetry lake silver / gold)", file=sys.stderr)
        return ExitCode.USAGE
    out_dir = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="spark-check-"))
    try:
        got = read_with_spark({name: wanted[name] for name in present}, out_dir, out=lambda line: print(f"  {line}"))
    except SparkCheckError as exc:
        print(f"lake spark-check: {exc}", file=sys.stderr)
        return ExitCode.ERROR
    report, failed = spark_report(out_dir), 0
    for name, table in present.items():
        seen, rows = report["tables"][name], table.count()
        same = seen["version"] == table.version() and got[name].num_rows == rows
        failed += not same
        print(f"  {name:<16} {'same' if same else 'DIFFERS'}: Spark v{seen['version']} {got[name].num_rows:,} rows, "
              f"delta-rs v{table.version()} {rows:,} rows, protocol {seen['min_reader_version']}/{seen['min_writer_version']}")
    print(f"lake spark-check: Spark {report['spark_version']} + Delta {report['delta_spark_version']} on Java "
          f"{report['java_version']}, {report['total_s']} s; rows as Parquet in {out_dir}")
    return ExitCode.OK if failed == 0 else ExitCode.CHECK_FAILED


def add_parser(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser], config_of: Callable) -> None:
    lake_cmd = commands.add_parser("lake", help="the batch lakehouse: Silver, Gold, retention, GDPR erasure (docs/lakehouse.md)")
    actions = lake_cmd.add_subparsers(dest="action", required=True)

    def sub(name: str, func: Callable, text: str, json_help: str | None = "print one JSON document instead of lines") -> argparse.ArgumentParser:
        command = add(actions, name, lambda a: func(a, config_of(a)), text)
        if json_help:
            command.add_argument("--json", action="store_true", help=json_help)
        return command

    silver = sub("silver", cmd_silver, "build Silver for every event hour a Bronze file not read yet holds (late files re-open their hour)")
    silver.add_argument("--hour", help="rebuild this one hour (ISO-8601, UTC) from everything Bronze holds for it")
    gold = sub("gold", cmd_gold, "build Gold for dates (default: every date whose Silver changed since its Gold was built)")
    gold.add_argument("--date", action="append", help="YYYY-MM-DD (repeatable)")
    gold.add_argument("--all", action="store_true", help="every date Silver holds")
    compact = sub("compact", cmd_compact, "merge Bronze's small committed files per folder and part prefix (crash-safe)")
    compact.add_argument("--target-mb", type=int, default=128, help="size of the merged files")
    compact.add_argument("--older-than-min", type=float, default=60, help="merge only files committed longer ago")
    compact.add_argument("--dry-run", action="store_true", help="list the merges; change nothing")
    retention = sub("retention", cmd_retention, "remove what each layer's retention has expired (files too), log it")
    retention.add_argument("--dry-run", action="store_true", help="count what would go; change nothing")
    retention.add_argument("--now", help="ISO-8601: run as of this time (default: now)")
    erase = sub("erase", cmd_erase, "GDPR: erase a trip, or a vehicle's data in a range, from every layer; audit it")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--trip", help="a trip_id")
    who.add_argument("--vehicle", type=int, help="a vehicle_id")
    erase.add_argument("--since", help="ISO-8601 event time, inclusive (default: the beginning)")
    erase.add_argument("--until", help="ISO-8601 event time, exclusive (default: now)")
    erase.add_argument("--dry-run", action="store_true", help="count what would go in the lake; change nothing")
    for command in (retention, erase):
        command.add_argument("--lake-only", action="store_true", help="leave the hot store and the status table alone")
    audit = sub("audit", cmd_audit, "the audit log: every retention removal and erasure, per layer")
    audit.add_argument("--last", type=int, default=50, help="show the newest N rows")
    sub("tables", cmd_tables, "each table's rows, files and location")
    spark = sub("spark-check", cmd_spark_check, "Apache Spark + Delta Lake (own venv, made once) reads Silver and Gold: same version and rows",
                json_help=None)
    spark.add_argument("--out", help="where Spark writes the rows it read (default: a temporary folder)")
