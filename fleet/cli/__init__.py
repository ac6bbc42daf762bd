"""The `telemetry` command line: `app` builds the parser and dispatches; one module per command
group that needs more than a few lines (config, faults, backfill, lake, query, map). Exit codes are
fleet/cli/exit_codes.py's; logging is set up once per main() by fleet/config/log_setup.py."""

from importlib import metadata

DISTRIBUTION = "fleet-telemetry"


def version() -> str:
    """The installed distribution's version (what every command's --version prints)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # a checkout that was never installed
        return "unknown"
