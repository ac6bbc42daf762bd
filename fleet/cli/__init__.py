"""The `telemetry` command line: `app` builds the parser and dispatches; one module per command
group that needs more than a few lines (config, faults, backfill, lake, query, map)."""
