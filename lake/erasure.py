"""GDPR erasure: remove one trip, or one vehicle's data in a time range, from every layer that holds
it — Gold, Bronze, Silver (and its rejected rows), the hot store, the vehicle status table — and
write what went where to the audit log.

The order makes a re-run after a crash finish the job: Gold first, recomputed for the vehicles and
dates concerned from Silver without the subject's rows (Gold has no trip ids, so Silver must still
hold them to say which vehicle-hours the trip fed); then Bronze (files rewritten: Silver's ledger
sees them changed, so a Silver run meanwhile rebuilds their hours without the rows); then Silver
and the rest. Kafka topics are not rewritten: they age out (`[topics.*] retention_ms`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from connectors.erasure_subject import ErasureSubject
from lake import audit, gold, ledger
from lake.bronze_index import HOUR_MS, BronzeFile
from lake.bronze_rewrite import null_safe, remove_rows
from lake.delta_delete import DeltaRemoval, count_rows, delete_rows, vacuum
from lake.engine import connect
from lake.tables import LakeTables, dates

TIME_COLUMN = "event_time_ms"  # Bronze's and Silver's event time


@dataclass(frozen=True)
class ErasureReport:
    run_id: str
    subject: ErasureSubject
    removals: tuple[audit.Removal, ...]


def bronze_match(subject: ErasureSubject) -> ds.Expression:
    if subject.trip_id is not None:
        match, columns = ds.field("trip_id") == subject.trip_id, ["trip_id"]
    else:
        match, columns = ds.field("vehicle_id") == subject.vehicle_id, ["vehicle_id"]
    if subject.since_ms is not None:
        match &= ds.field(TIME_COLUMN) >= subject.since_ms
    if subject.until_ms is not None:
        match &= ds.field(TIME_COLUMN) < subject.until_ms
    return null_safe(match, *columns, *([TIME_COLUMN] if subject.since_ms is not None or subject.until_ms is not None else []))


def _may_hold(subject: ErasureSubject):
    """Footer test: a file whose event hours miss the range cannot hold the subject's rows."""
    def test(f: BronzeFile) -> bool:
        if subject.until_ms is not None and f.first_hour_ms >= subject.until_ms:
            return False
        return subject.since_ms is None or f.last_hour_ms + HOUR_MS > subject.since_ms
    return test


def _silver_vehicle_days(silver_uri: str, predicate: str) -> dict[str, list[int]]:
    """date → vehicle ids whose Silver rows of that date the subject's rows are among."""
    try:
        dataset = DeltaTable(silver_uri).to_pyarrow_dataset()
    except TableNotFoundError:
        return {}
    con = connect()
    con.register("silver", dataset)
    days: dict[str, list[int]] = {}
    for date, vehicle_id in con.sql(f"SELECT DISTINCT date, vehicle_id FROM silver WHERE {predicate} ORDER BY 1, 2").fetchall():
        days.setdefault(date, []).append(vehicle_id)
    return days


def _gold_beyond_silver(subject: ErasureSubject, tables: LakeTables, dry_run: bool) -> audit.Removal:
    """Gold keeps 5 years, Silver 2: on dates Silver no longer holds, a vehicle's Gold rows whose
    hour overlaps the range are deleted whole (nothing is left to recompute them from). A trip
    cannot be tied to those rows (Gold has no trip ids): the audit says so."""
    layer = "gold_beyond_silver"
    try:
        gold_table = DeltaTable(tables.gold)
    except TableNotFoundError:
        return audit.Removal(layer, tables.gold, 0, note="no such table")
    older = sorted(set(dates(tables.gold)) - set(dates(tables.silver)))
    if subject.trip_id is not None:
        return audit.Removal(layer, tables.gold, 0, note=(
            f"{len(older)} Gold dates older than Silver's retention cannot be tied to a trip; erase the trip's "
            "vehicle and time range to reach them" if older else "every Gold date is in Silver"))
    if not older:
        return audit.Removal(layer, tables.gold, 0, note="every Gold date is in Silver")
    con = connect()
    con.register("gold", gold_table.to_pyarrow_dataset())
    in_older = ", ".join(f"'{d}'" for d in older)
    keys = con.sql(f"SELECT DISTINCT date, hour FROM gold WHERE vehicle_id = {int(subject.vehicle_id)} AND date IN ({in_older})").fetchall()
    since, until = subject.since_ms, subject.until_ms
    hit = [(d, h) for d, h in keys
           if (start := int(datetime.fromisoformat(f"{d}T{h:02d}:00:00+00:00").timestamp() * 1000)) >= 0
           and (until is None or start < until) and (since is None or start + HOUR_MS > since)]
    if not hit:
        return audit.Removal(layer, tables.gold, 0, note=f"{len(older)} dates older than Silver: none of the vehicle's hours in the range")
    where = f"vehicle_id = {int(subject.vehicle_id)} AND (" + " OR ".join(f"(date = '{d}' AND hour = {h})" for d, h in hit) + ")"
    removed = delete_rows(tables.gold, where, dry_run=dry_run)
    return audit.Removal(layer, tables.gold, removed.rows, removed.files,
                         f"hours overlapping the range on {len({d for d, _ in hit})} dates older than Silver's retention, deleted whole")


def _delta_removal(layer: str, uri: str, removed: DeltaRemoval | None, predicate: str) -> audit.Removal:
    if removed is None:
        return audit.Removal(layer, uri, 0, note="no such table")
    return audit.Removal(layer, uri, removed.rows, removed.files, f"WHERE {predicate}")


def erase(subject: ErasureSubject, tables: LakeTables, *, hot_store=None, status_store=None,
          dry_run: bool = False, now_ms: int | None = None, progress=lambda layer: None) -> ErasureReport:
    """Erase `subject` everywhere (`dry_run`: only count what would go; nothing is logged)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    predicate = subject.literal_where(TIME_COLUMN)
    removals: list[audit.Removal] = []

    progress("gold")
    days = _silver_vehicle_days(tables.silver, predicate)
    vehicle_days = sum(map(len, days.values()))
    gold_where = " OR ".join(f"(date = '{date}' AND vehicle_id IN ({', '.join(map(str, vehicles))}))"
                             for date, vehicles in days.items())
    before = count_rows(tables.gold, gold_where) if days else 0
    if dry_run or not days:
        removals.append(audit.Removal("gold", tables.gold, None if dry_run else 0,
                                      note=f"{vehicle_days} vehicle-days ({before} rows) to recompute"))
    else:
        for date, vehicles in days.items():
            gold.build_day(tables.silver, tables.gold, date, vehicle_ids=vehicles, exclude=predicate)
        after = count_rows(tables.gold, gold_where)
        removals.append(audit.Removal(
            "gold", tables.gold, before - after, vacuum(tables.gold),
            f"recomputed without the subject: {vehicle_days} vehicle-days on {len(days)} dates, {before} rows then {after}"))

    removals.append(_gold_beyond_silver(subject, tables, dry_run))

    progress("bronze")
    changes, unreadable = remove_rows(tables.bronze, bronze_match(subject), may_hold=_may_hold(subject), dry_run=dry_run,
                          known=ledger.read_index(tables.ledger))
    deleted = sum(c.deleted for c in changes)
    removals.append(audit.Removal("bronze", tables.bronze, sum(c.rows_removed for c in changes), tuple(c.path for c in changes),
                                  f"{deleted} files deleted, {len(changes) - deleted} rewritten"
                                  + (f"; {len(unreadable)} unreadable files not checked (fix and erase again): "
                                     f"{', '.join(unreadable[:5])}" if unreadable else "")))

    progress("silver")
    for layer, uri in (("silver", tables.silver), ("silver_rejected", tables.silver_rejected)):
        removals.append(_delta_removal(layer, uri, delete_rows(uri, predicate, dry_run=dry_run), predicate))

    progress("hot_store")
    if hot_store is not None:
        if dry_run:
            removals.append(audit.Removal("hot_store", type(hot_store).__name__, None, note="dry run: not counted"))
        else:
            erased = hot_store.erase(subject)
            note = "" if erased is not None else (
                f"this backend cannot delete points: they age out within {hot_store.ages_out_after_hours} h of their time")
            removals.append(audit.Removal("hot_store", type(hot_store).__name__, erased, note=note))
    if status_store is not None and not dry_run:
        removals.append(audit.Removal("vehicle_status", type(status_store).__name__, status_store.erase(subject),
                                      note="the row goes if its newest event is the subject's"))

    run_id = audit.new_run_id()
    if not dry_run:
        audit.record(tables.audit, run_id=run_id, at_ms=now_ms, action="erasure", subject=subject.to_json(), removals=removals)
    return ErasureReport(run_id, subject, tuple(removals))
