"""`telemetry faults run` (the failure harness) and `telemetry cluster up|down|status` (the local
standalone Flink cluster it runs on, also usable for `flink run` by hand)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, fields

from fleet.cli.exit_codes import ExitCode
from fleet.config import PlatformConfig

log = logging.getLogger(__name__)


def cmd_faults_run(args: argparse.Namespace, config: PlatformConfig) -> int:
    from fleet.harness.runner import (
        BASELINE,
        FAULTS,
        OPERATIONS,
        HarnessPlan,
        format_table,
        markdown_table,
        run_harness,
        write_report,
    )

    faults = [*FAULTS, *OPERATIONS] if args.faults == ["all"] else args.faults
    unknown = [f for f in faults if f not in FAULTS and f not in OPERATIONS and f != BASELINE]
    if unknown:
        print(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join([*FAULTS, *OPERATIONS, BASELINE])}, all", file=sys.stderr)
        return ExitCode.USAGE
    overrides = {f.name: getattr(args, f.name) for f in fields(HarnessPlan) if getattr(args, f.name, None) is not None}
    try:
        plan = HarnessPlan(**overrides)
    except ValueError as exc:
        print(f"bad plan: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    results = run_harness(config, faults, plan, out=log.info)  # progress is diagnostics: stderr, stdout stays the result
    report = write_report(results, plan, config.infra.run_dir / "bench")
    exact = all(r.exact for r in results)
    if args.json:
        sys.stdout.write(json.dumps({"report": str(report), "exact": exact, **json.loads(report.read_text())}, indent=2) + "\n")
        return ExitCode.OK if exact else ExitCode.CHECK_FAILED
    print("\n" + format_table(results))
    print(f"\nreport: {report}")
    if args.markdown:
        print("\n" + markdown_table(results))
    print("\nOK: nothing lost, nothing duplicated, every alert raised" if exact else "\nMISMATCH: see the rows above")
    return ExitCode.OK if exact else ExitCode.CHECK_FAILED


def cmd_cluster(args: argparse.Namespace, config: PlatformConfig) -> int:
    from infra.flink_cluster import FlinkCluster
    from infra.manager import format_status

    cluster = FlinkCluster(config.infra.run_dir, config.infra.host)
    if args.action == "up":
        cluster.up(taskmanagers=args.taskmanagers)
    elif args.action == "down":
        stopped = cluster.down()
        if args.json:
            sys.stdout.write(json.dumps({"stopped": bool(stopped)}) + "\n")
        else:
            print("stopped" if stopped else "nothing was running")
        return ExitCode.OK
    status = cluster.status()
    if args.json:
        document = {**asdict(status), "log": None if status.log is None else str(status.log)}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return ExitCode.OK if status.healthy else ExitCode.UNAVAILABLE
    print(format_status([status]))
    if args.action == "up":
        env = cluster.environment()
        print(f"\nsubmit a job:\n  FLINK_CONF_DIR={env['FLINK_CONF_DIR']} PYTHONPATH={env['PYTHONPATH']} \\\n"
              f"  {env['FLINK_HOME']}/bin/flink run -py jobs/telemetry_pipeline.py -pyexec .venv/bin/python -pyclientexec .venv/bin/python")
        print(f"web UI / REST: {cluster.rest_url}")
    return ExitCode.OK if status.healthy else ExitCode.UNAVAILABLE


def add_parsers(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser], config_of: Callable) -> None:
    from fleet.harness.runner import BASELINE, FAULTS, OPERATIONS, HarnessPlan

    faults_cmd = commands.add_parser("faults", help="the failure harness on a local standalone Flink cluster").add_subparsers(dest="action", required=True)
    run = add(faults_cmd, "run", lambda a: cmd_faults_run(a, config_of(a)),
              "run the pipeline and alert jobs on a standalone cluster, inject failures one at a time, count every record")
    run.add_argument("--faults", nargs="+", default=["all"], metavar="FAULT", help=f"{', '.join([*FAULTS, *OPERATIONS])}, {BASELINE} (no failure), or all (every failure and the savepoint upgrade)")
    defaults = HarnessPlan()
    for name, help_text in (
        ("vehicles", "simulated vehicles"), ("duration_s", "seconds of input, sent in real time"),
        ("duplicates", "re-sent events"), ("malformed", "non-JSON payloads"), ("schema_invalid", "payloads the schema rejects"),
        ("offline_vehicles", "vehicles that go silent"), ("offline_s", "how long they stay silent"),
        ("offline_after_s", "the alert job's offline timeout"),
        ("outage_s", "how long the hot store or the ingest path stays unavailable"),
        ("input_stall_after_s", "the alert job's input stall period (below the offline timeout)"),
        ("store", "hot store backend: local (SQLite) or timestream (Timestream + DynamoDB on moto)"), ("fault_at", "share of the input sent before the failure"),
        ("seed", "simulator seed"),
    ):
        kind = type(getattr(defaults, name))
        run.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, default=None, help=f"{help_text} (default {getattr(defaults, name)})")
    run.add_argument("--markdown", action="store_true", help="also print the table as Markdown (for docs)")
    run.add_argument("--json", action="store_true", help="print the report (plan, results, exact) as one JSON document")

    cluster_cmd = commands.add_parser("cluster", help="a local Flink standalone cluster from PyFlink's bin/").add_subparsers(dest="action", required=True)
    for action, text in (("up", "start a JobManager and TaskManagers"), ("down", "stop them (by pid)"), ("status", "JobManager, TaskManagers, slots")):
        sub = add(cluster_cmd, action, lambda a: cmd_cluster(a, config_of(a)), text)
        sub.add_argument("--json", action="store_true", help="print the JobManager's status as one JSON document")
        if action == "up":
            sub.add_argument("--taskmanagers", type=int, default=1, help="TaskManagers to start (default: 1)")
