"""The storm guard: at most `pages_per_window` pages per (kind, zone_id) and window, then one summary.

When a whole fleet's positions jump outside the service area (a GPS glitch, a wrong polygon) the
detector raises one alert per vehicle, tens of thousands at once, and paging each one buries every
other alert. Per key (kind, zone_id) and tumbling window of `window_s`:

  - the first `pages_per_window` alerts are paged (SNS) as before;
  - later ones are suppressed: not paged, but still recorded (fleet-alerts, the alert log), marked
    `"paged": false` and `"summary_id"`: the id of the summary they are counted in;
  - one summary alert per key and window is paged instead, when the window closes:
    "N geofence_exit alerts in zone u0yhuh in the last 60 s".

Windows are aligned on the alerts' *event* time (epoch multiples of `window_s`), not on when they
were processed, so a replay after a restart puts every alert in the same window and repeats the
same summary id: uuid5 of kind/zone/window start. The summary is due `window end - event time` of
the alert that opened the storm after that alert was processed (clamped to [0, window]): at the
window's end for live alerts, at most one window later for replayed ones. A late alert that
arrives after its window's summary went out is still suppressed and points at that summary, but
the summary's count does not include it.

Pure functions over a small per-key state; the Flink job keeps it in keyed state (jobs/alert_fanout).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from edge_agent.wire import format_timestamp_ms
from udfs.alert_rules import SEVERITY
from udfs.telemetry_schema import parse_timestamp_ms

STORM_SUMMARY: Final = "alert_storm"
NO_ZONE: Final = "-"
_SUMMARY_NAMESPACE: Final = uuid.UUID("b1d3a7e4-52c6-4f0e-8f6b-3c9a1e7d2f40")
# Windows kept per key behind the newest one (for late alerts) once they need no summary.
_WINDOWS_KEPT_BEHIND: Final = 2


@dataclass(frozen=True)
class StormPolicy:
    window_s: float = 60.0
    pages_per_window: int = 20

    def __post_init__(self) -> None:
        if not self.window_s >= 1:
            raise ValueError(f"window_s must be >= 1, got {self.window_s}")
        if self.pages_per_window < 0:
            raise ValueError(f"pages_per_window must be >= 0, got {self.pages_per_window}")

    @property
    def window_ms(self) -> int:
        return int(round(self.window_s * 1000))


@dataclass(frozen=True)
class WindowTally:
    """One key's count in one window. `close_at_ms` (processing time) is set by the first
    suppressed alert: the summary is due then. `summarised`: the summary went out."""

    start_ms: int
    paged: int = 0
    suppressed: int = 0
    close_at_ms: int | None = None
    summarised: bool = False

    @property
    def awaiting_summary(self) -> bool:
        return self.suppressed > 0 and not self.summarised


@dataclass(frozen=True)
class GuardState:
    windows: tuple[WindowTally, ...] = ()

    def encode(self) -> str:
        return orjson.dumps([[w.start_ms, w.paged, w.suppressed, w.close_at_ms, w.summarised] for w in self.windows]).decode()

    @staticmethod
    def decode(text: str | None) -> GuardState:
        if not text:
            return GuardState()
        return GuardState(tuple(WindowTally(*values) for values in orjson.loads(text)))


@dataclass(frozen=True)
class Decision:
    paged: bool
    window_start_ms: int
    summary_id: str | None  # set for a suppressed alert: the summary it is counted in
    close_at_ms: int | None  # set when this alert opened the storm: arm a timer for then


def storm_key(alert: dict[str, Any]) -> str:
    """"kind/zone_id" ("-" for an alert without a location)."""
    return f"{alert['kind']}/{alert.get('zone_id') or NO_ZONE}"


def split_key(key: str) -> tuple[str, str | None]:
    kind, _, zone = key.rpartition("/")
    return kind, (None if zone == NO_ZONE else zone)


def window_start(time_ms: int, policy: StormPolicy) -> int:
    return time_ms - time_ms % policy.window_ms


def summary_id(kind: str, zone_id: str | None, window_start_ms: int) -> str:
    """Same kind, zone and window → same id, however often a replay raises it."""
    return str(uuid.uuid5(_SUMMARY_NAMESPACE, f"{kind}/{zone_id or NO_ZONE}/{window_start_ms}"))


def alert_time_ms(alert: dict[str, Any]) -> int:
    """The event time the alert is windowed by; its raise time if it has none."""
    parsed = parse_timestamp_ms(alert.get("event_time"))
    if parsed is not None:
        return parsed
    return int(alert.get("raised_at_ms") or 0)


def on_alert(state: GuardState, key: str, time_ms: int, now_ms: int, policy: StormPolicy) -> tuple[GuardState, Decision]:
    """Count one alert of `key` raised at event time `time_ms`, processed at `now_ms`: page it or not."""
    start = window_start(time_ms, policy)
    windows = list(state.windows)
    index = next((i for i, w in enumerate(windows) if w.start_ms == start), None)
    tally = windows[index] if index is not None else WindowTally(start)
    close_at = None
    if tally.paged < policy.pages_per_window:
        tally = replace(tally, paged=tally.paged + 1)
        decision = Decision(True, start, None, None)
    else:
        if tally.close_at_ms is None:
            window_end = start + policy.window_ms
            close_at = now_ms + min(policy.window_ms, max(0, window_end - time_ms))
            tally = replace(tally, close_at_ms=close_at)
        tally = replace(tally, suppressed=tally.suppressed + 1)
        decision = Decision(False, start, summary_id(*split_key(key), start), close_at)
    if index is None:
        windows.append(tally)
    else:
        windows[index] = tally
    return GuardState(_prune(windows, policy)), decision


def due_summaries(
    state: GuardState, key: str, now_ms: int, policy: StormPolicy, *, all_open: bool = False
) -> tuple[GuardState, list[dict[str, Any]]]:
    """Summaries of the windows whose close time has come (every open one if `all_open`: the input
    ended), oldest first; each window is summarised once."""
    kind, zone = split_key(key)
    summaries: list[dict[str, Any]] = []
    windows: list[WindowTally] = []
    for tally in sorted(state.windows, key=lambda w: w.start_ms):
        if tally.awaiting_summary and (all_open or (tally.close_at_ms is not None and tally.close_at_ms <= now_ms)):
            summaries.append(summary_alert(kind, zone, tally, policy, raised_at_ms=now_ms))
            tally = replace(tally, summarised=True)
        windows.append(tally)
    return GuardState(_prune(windows, policy)), summaries


def summary_alert(kind: str, zone_id: str | None, tally: WindowTally, policy: StormPolicy, *, raised_at_ms: int) -> dict[str, Any]:
    total = tally.paged + tally.suppressed
    where = f"in zone {zone_id}" if zone_id else "without a zone"
    window_end = tally.start_ms + policy.window_ms
    return {
        "alert_id": summary_id(kind, zone_id, tally.start_ms),
        "kind": STORM_SUMMARY,
        "severity": SEVERITY.get(kind, "warning"),
        "vehicle_id": None,
        "episode_start": format_timestamp_ms(tally.start_ms),
        "event_time": format_timestamp_ms(window_end),
        "location": None,
        "zone_id": zone_id,
        "subject": f"Alert storm: {total} {kind} alerts {where}"[:100],
        "message": (
            f"{total} {kind} alerts {where} in the last {policy.window_s:g} s: {tally.paged} paged, "
            f"{tally.suppressed} not paged (all of them are on fleet-alerts and in the alert log)."
        ),
        "details": {
            "storm_kind": kind, "alerts": total, "paged": tally.paged, "suppressed": tally.suppressed,
            "window_start": format_timestamp_ms(tally.start_ms), "window_end": format_timestamp_ms(window_end),
            "window_s": policy.window_s, "pages_per_window": policy.pages_per_window,
        },
        "paged": True,
        "ingested_at_ms": None,
        "raised_at_ms": raised_at_ms,
    }


def mark(alert: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """The alert as recorded: `paged`, and for a suppressed one the summary it is counted in."""
    alert["paged"] = decision.paged
    if decision.summary_id is not None:
        alert["summary_id"] = decision.summary_id
    return alert


def _prune(windows: list[WindowTally], policy: StormPolicy) -> tuple[WindowTally, ...]:
    """Keep every window still owing a summary, and the others up to a few windows behind the newest."""
    if not windows:
        return ()
    newest = max(w.start_ms for w in windows)
    oldest_kept = newest - _WINDOWS_KEPT_BEHIND * policy.window_ms
    return tuple(sorted((w for w in windows if w.awaiting_summary or w.start_ms >= oldest_kept), key=lambda w: w.start_ms))
