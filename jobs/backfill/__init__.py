"""Backfill: replay a range of `vehicle-telemetry` as a bounded job (job.py); what a range means
(ranges.py), a run's identity and the rules for running it again (runs.py), the job's own output
counts (counts.py)."""
