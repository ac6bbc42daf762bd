"""Benchmarks: each prints its figures and writes JSON (and BENCHMARKS.md sections, PNG plots);
none asserts a time. `telemetry bench <name>` runs them (fleet/cli/app.py)."""
