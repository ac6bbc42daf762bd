"""`telemetry backfill …`: the backfill job (jobs/backfill/job.py) on the local MiniCluster."""

from __future__ import annotations

import argparse
import sys

from fleet.cli.exit_codes import ExitCode


def cmd_backfill(args: argparse.Namespace) -> int:
    from fleet.config import load_config
    from jobs.backfill.job import request_from_args, run_backfill
    from jobs.backfill.ranges import BackfillError

    try:
        return run_backfill(load_config(args.profile, args.set), request_from_args(args))
    except BackfillError as exc:
        print(f"telemetry backfill: {exc}", file=sys.stderr)
        return ExitCode.USAGE


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from jobs.backfill.job import add_arguments

    text = "replay vehicle-telemetry for a time or offset range into chosen sinks, once (docs/backfill.md)"
    parser = subparsers.add_parser("backfill", help=text, description=text)
    add_arguments(parser)
    parser.set_defaults(func=cmd_backfill)
    return parser
