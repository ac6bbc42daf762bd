"""The `telemetry` command line: `app` builds the parser and dispatches; one module per command
group that needs more than a few lines (config, faults, backfill, lake, query, map). Exit codes are
fleet/cli/exit_codes.py's; logging is set up once per main() by fleet/config/log_setup.py."""

import argparse
from importlib import metadata

from fleet.config.log_setup import add_logging_arguments

DISTRIBUTION = "fleet-telemetry"


def version() -> str:
    """The installed distribution's version (what every command's --version prints)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # a checkout that was never installed
        return "unknown"


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """What every command of ours takes at its top: the config profile and overrides, --version, and
    the logging flags (`telemetry` and `telemetry-bridge` alike)."""
    parser.add_argument("--profile", default="local", help="profile name (local, production) or a .toml path")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override one config value")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}", help="print the version and exit")
    add_logging_arguments(parser)
