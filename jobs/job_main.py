"""The one `main()` every streaming job shares: read config, build the job, execute it.

The same entry serves `telemetry run …` on the MiniCluster and `flink run -py jobs/<job>.py …` on
a cluster: a job module only says how to make its config and how to build itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fleet.config import PlatformConfig, load_config
from fleet.config.log_setup import add_logging_arguments, configure_logging

START_HELP = "committed | earliest | latest | timestamp=ISO | offsets=p:o,..."
STOP_HELP = "omit to run forever; latest | timestamp=ISO | offsets=p:o,... for a bounded run"


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--profile, --set and the logging flags of a `flink run` entry: the same as `telemetry`'s
    (fleet.cli.add_common_arguments, a layer above the jobs), so a manifest's args read alike."""
    parser.add_argument("--profile", default="local", help="profile name (local, production) or a .toml path (on Kubernetes: /etc/fleet/profile.toml)")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config value")
    add_logging_arguments(parser)


def add_position_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--start", default="committed", help=START_HELP)
    parser.add_argument("--stop", default=None, help=STOP_HELP)
    parser.add_argument("--restore", default=None, metavar="PATH",
                        help="start from this savepoint or retained checkpoint (its offsets and state; --start then applies only to new partitions)")


def execute_job(
    platform: PlatformConfig,
    *,
    name: str,
    make_config: Callable[..., Any],
    build: Callable[[Any, Any], Any],
    start: str,
    stop: str | None,
    restore_from: str | None = None,
) -> None:
    from jobs.flink_env import create_env

    env = create_env(platform.flink, extra={"execution.state-recovery.path": restore_from} if restore_from else None)
    build(env, make_config(platform, start=start, stop=stop))
    env.execute(name)


def job_main(argv: list[str] | None, *, name: str, description: str, make_config: Callable[..., Any], build: Callable[[Any, Any], Any]) -> int:
    parser = argparse.ArgumentParser(description=description)
    add_config_arguments(parser)
    add_position_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level, json=args.log_json)
    execute_job(load_config(args.profile, args.set), name=name, make_config=make_config, build=build, start=args.start, stop=args.stop,
                restore_from=args.restore)
    return 0
