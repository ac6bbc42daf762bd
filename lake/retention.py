"""Retention: each layer keeps its last N days by the events' own UTC date (seed section 10:
Bronze 90 days, Silver 2 years, Gold 5 years, the hot store 3 days). A day is expired once it is
more than N days before today: today minus N days is the oldest date kept. Data files go too
(Bronze files deleted or rewritten, Delta tables vacuumed), and every removal is in the audit log."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow.dataset as ds

from lake import audit, ledger
from lake.bronze_rewrite import remove_rows
from lake.delta_delete import delete_rows
from lake.tables import LakeTables

DAY_MS = 86_400_000


@dataclass(frozen=True)
class RetentionPolicy:
    bronze_days: int
    silver_days: int
    gold_days: int

    @classmethod
    def from_config(cls, config) -> RetentionPolicy:  # a fleet.config.PlatformConfig
        lake = config.lake
        return cls(lake.bronze_retention_days, lake.silver_retention_days, lake.gold_retention_days)


def oldest_kept(now_ms: int, days: int) -> tuple[str, int]:
    """(date, its midnight in ms): the oldest UTC date a `days` retention keeps at `now_ms`."""
    today = datetime.fromtimestamp(now_ms / 1000, tz=UTC).date()
    oldest = today - timedelta(days=days)
    midnight = datetime(oldest.year, oldest.month, oldest.day, tzinfo=UTC)
    return oldest.isoformat(), int(midnight.timestamp() * 1000)


def _delta(layer: str, uri: str, predicate: str, dry_run: bool) -> list[audit.Removal]:
    removed = delete_rows(uri, predicate, dry_run=dry_run)
    if removed is None:
        return []
    return [audit.Removal(layer, uri, removed.rows, removed.files, f"WHERE {predicate}")]


def _unreadable_note(paths: list[str]) -> str:
    return f"; {len(paths)} unreadable files not checked: {', '.join(paths[:5])}" if paths else ""


def apply(tables: LakeTables, policy: RetentionPolicy, *, now_ms: int | None = None, hot_store=None,
          dry_run: bool = False, progress=lambda layer: None) -> list[audit.Removal]:
    """Remove what each layer's retention has expired; log it (unless `dry_run`, which only
    counts). `hot_store`: a connectors.hot_store.HotStore, whose own retention_hours apply."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    removals: list[audit.Removal] = []

    bronze_date, bronze_ms = oldest_kept(now_ms, policy.bronze_days)
    progress("bronze")
    changes, unreadable = remove_rows(tables.bronze, ds.field("event_time_ms") < bronze_ms, known=ledger.read_index(tables.ledger),
                          may_hold=lambda f: f.first_hour_ms < bronze_ms, dry_run=dry_run)
    if changes or unreadable:
        deleted = sum(c.deleted for c in changes)
        removals.append(audit.Removal("bronze", tables.bronze, sum(c.rows_removed for c in changes),
                                      tuple(c.path for c in changes),
                                      f"events before {bronze_date}: {deleted} files deleted, {len(changes) - deleted} rewritten"
                                      + _unreadable_note(unreadable)))
    # The ledger's rows of Bronze files now gone would otherwise pile up (one per file ever read).
    removals += _delta("ledger", tables.ledger, f"last_hour_ms < {bronze_ms}", dry_run)

    silver_date, _ = oldest_kept(now_ms, policy.silver_days)
    progress("silver")
    removals += _delta("silver", tables.silver, f"date < '{silver_date}'", dry_run)
    removals += _delta("silver_rejected", tables.silver_rejected, f"date < '{silver_date}'", dry_run)
    gold_date, _ = oldest_kept(now_ms, policy.gold_days)
    progress("gold")
    removals += _delta("gold", tables.gold, f"date < '{gold_date}'", dry_run)

    if hot_store is not None and not dry_run:
        progress("hot_store")
        hours = getattr(hot_store, "retention_hours", None)
        removals.append(audit.Removal("hot_store", type(hot_store).__name__, hot_store.enforce_retention(now_ms),
                                      note=f"points older than {hours} h" if hours else "the backend's own retention"))
    removals = [r for r in removals if r.rows or r.files]
    if not dry_run:
        audit.record(tables.audit, run_id=audit.new_run_id(), at_ms=now_ms, action="retention",
                     subject=f"bronze<{bronze_date} silver<{silver_date} gold<{gold_date}", removals=removals)
    return removals
