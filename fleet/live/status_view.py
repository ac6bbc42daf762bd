"""How the live status looks: a rich panel redrawn in place on a terminal, one plain line per
interval elsewhere (a log, CI), both from the collector's snapshot."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text


def _n(value: float | None, unit: str = "") -> str:
    return "–" if value is None else f"{value:,.0f}{unit}"


def _latency(p: dict[str, float] | None) -> str:
    return "–" if not p else f"p50 {p['p50'] / 1000:.2f}s  p95 {p['p95'] / 1000:.2f}s  p99 {p['p99'] / 1000:.2f}s"


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def render(snapshot: dict[str, Any], *, map_url: str, run_dir: str) -> Any:
    """The rich renderable of one snapshot."""
    if not snapshot.get("stages"):
        return Panel(Group(Text("starting: waiting for the first sample …"),
                           *(Text(f"! {e}", style="red") for e in snapshot.get("errors", []))), title="fleet telemetry · live")
    stages = Table(expand=True, box=None, pad_edge=False)
    stages.add_column("stage")
    stages.add_column("events/s", justify="right")
    stages.add_column("this session", justify="right")
    for stage in snapshot["stages"]:
        stages.add_row(stage["label"], _n(stage["rate"]), _n(stage["total"]))

    facts = Table(expand=True, box=None, show_header=False, pad_edge=False)
    facts.add_column(style="bold", no_wrap=True)
    facts.add_column()
    for _job, lag in snapshot["lag"].items():
        facts.add_row(f"lag · {lag['group']}", "no commit yet" if lag["events"] is None else
                      f"{lag['events']:,} events ({lag['seconds']:.1f} s of input)")
    latency = snapshot["latency_ms"]
    facts.add_row("fleet → enriched", _latency(latency["event_to_enriched"]))
    facts.add_row("ingest → enriched", _latency(latency["ingest_to_enriched"]))
    facts.add_row("ingest → alert", _latency(latency["ingest_to_alert"]))
    facts.add_row("duplicates dropped", _n(snapshot["duplicates_dropped"]))
    dlq = snapshot["dlq_by_reason"]
    facts.add_row("DLQ by reason", ", ".join(f"{k} {v:,}" for k, v in sorted(dlq.items(), key=lambda kv: -kv[1])) or "none")
    cp = snapshot["checkpoints"]
    facts.add_row("checkpoints (pipeline)", "–" if cp["completed"] is None else
                  f"{cp['completed']:,.0f} completed, {cp['failed'] or 0:,.0f} failed, last took {_n(cp['last_duration_ms'], ' ms')}")
    bronze = snapshot["bronze"]
    facts.add_row("Bronze", f"{bronze['files']:,} files, {bronze['rows']:,} rows this session ({bronze['files_total']:,} files in all)")

    alerts = Table(expand=True, box=None, pad_edge=False)
    for column in ("alert", "vehicle", "zone", "event time", "message"):
        alerts.add_column(column, no_wrap=column != "message", overflow="ellipsis")
    for alert in snapshot["recent_alerts"][:6]:
        alerts.add_row(str(alert.get("kind")), str(alert.get("vehicle_id")), str(alert.get("zone_id") or "–"),
                       str(alert.get("event_time", ""))[11:19], str(alert.get("message", "")))
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(snapshot["alerts_by_kind"].items())) or "none yet"

    procs = Table(expand=True, box=None, pad_edge=False)
    for column in ("process", "pid", "state", "CPU (cores)"):
        procs.add_column(column)
    for p in snapshot["processes"]:
        procs.add_row(p["name"], str(p["pid"]), p["state"], f"{p['cores']:.2f}" if p.get("cores") is not None else "–")

    steady = snapshot["steady"]
    head = Text.assemble(
        (f"up {_clock(snapshot['uptime_s'])}", "bold"), f"   fleet {snapshot['vehicles']:,} vehicles   map {map_url}   ",
        ("steady" if steady else "settling", "green bold" if steady else "yellow bold"),
        f" (after {snapshot['steady_after_s']:.0f} s)" if snapshot.get("steady_after_s") is not None else "",
    )
    errors = [Text(f"! {e}", style="red") for e in snapshot.get("errors", [])]
    return Panel(Group(head, Text(""), stages, Text(""), facts, Text(f"\nalerts: {by_kind}", style="bold"), alerts,
                       Text(""), procs, *errors,
                       Text(f"\nCtrl-C stops everything (the data stays in {run_dir}); queries: telemetry query …", style="dim")),
                 title="fleet telemetry · live")


def plain_line(snapshot: dict[str, Any]) -> str:
    """One line for logs: rates per stage, lag, latency p95, DLQ, duplicates, alerts, Bronze."""
    if not snapshot.get("stages"):
        return "live: starting" + "".join(f" ! {e}" for e in snapshot.get("errors", []))
    rates = " ".join(f"{s['key']}={_n(s['rate'])}/s({_n(s['total'])})" for s in snapshot["stages"])
    lag = " ".join(f"lag[{j}]={'-' if v['events'] is None else v['events']}" for j, v in snapshot["lag"].items())
    p = snapshot["latency_ms"]["event_to_enriched"]
    return (f"{time.strftime('%H:%M:%S')} live up={snapshot['uptime_s']:.0f}s {'STEADY' if snapshot['steady'] else 'settling'} "
            f"{rates} {lag} e2e_p95={'-' if not p else round(p['p95'])}ms dup={_n(snapshot['duplicates_dropped'])} "
            f"dlq={snapshot['dlq_by_reason']} alerts={snapshot['alerts_by_kind']} bronze_rows={snapshot['bronze']['rows']}")
