"""`telemetry backfill …`: the backfill job (jobs/backfill/job.py) on the local MiniCluster.

With --json the progress lines go to the log (stderr) and stdout is one document: the decision
(range, targets, plan) and, after a run, its manifest; with --dry-run it is the plan alone."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from typing import Any

from fleet.cli.exit_codes import ExitCode

log = logging.getLogger(__name__)


def cmd_backfill(args: argparse.Namespace) -> int:
    from fleet.config import load_config
    from jobs.backfill.job import request_from_args, run_backfill
    from jobs.backfill.ranges import BackfillError

    try:
        config, request = load_config(args.profile, args.set), request_from_args(args)
        if not args.json:
            return run_backfill(config, request)
        return _backfill_json(config, request)
    except BackfillError as exc:
        print(f"telemetry backfill: {exc}", file=sys.stderr)
        return ExitCode.USAGE


def _backfill_json(config: Any, request: Any) -> int:
    from jobs.backfill.job import decide, run_backfill
    from jobs.backfill.runs import read_manifest

    # The decision is taken again inside run_backfill; it reads the same offsets, so it is the same run.
    decision = decide(config, request)
    plan = decision.plan
    document: dict[str, Any] = {
        "run_id": decision.run_id, "topic": decision.resolved.topic, "range": request.range.describe(),
        "records": decision.resolved.records, "partitions": [asdict(p) for p in decision.resolved.partitions],
        "targets": {s: t for s, t in decision.targets.items() if s in plan.sinks},
        "folder": str(decision.folder),
        "plan": {"action": plan.action, "sinks": sorted(plan.sinks), "reason": plan.reason},
        "dry_run": request.dry_run,
    }
    code = ExitCode.OK
    if plan.action != "skip" and not request.dry_run:
        code = ExitCode(run_backfill(config, request, out=log.info))
    manifest = read_manifest(decision.folder)
    document["manifest"] = None if manifest is None else asdict(manifest)
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    return code


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from jobs.backfill.job import add_arguments

    text = "replay vehicle-telemetry for a time or offset range into chosen sinks, once (docs/backfill.md)"
    parser = subparsers.add_parser("backfill", help=text, description=text)
    add_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help="print the plan (with --dry-run), or the plan and the run's manifest, as JSON")
    parser.set_defaults(func=cmd_backfill)
    return parser
