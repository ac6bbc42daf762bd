"""One platform alert per incident in which the anomaly job cannot see its input, whatever the
number of subtasks that notice it.

Each detector instance reports its input status (udfs.input_clock) when it changes, and again
while it stays blind; a single keyed operator (jobs.platform_monitor) folds the reports:

  first instance stalled or lagging  → `input_stalled` (critical): per-vehicle offline detection
                                       is holding, alerts may be late
  every instance current again       → `input_restored` (info), same episode
  an instance silent for `expire_ms` → forgotten (a rescaled job has fewer instances), so an
  while blind                          episode cannot stay open forever

The ids are deterministic (episode start = when the first instance went blind), so a replay's
repeat is dropped by id like every other alert's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from edge_agent.wire import format_timestamp_ms
from udfs.alert_rules import alert_id
from udfs.input_clock import CURRENT

INPUT_STALLED: Final = "input_stalled"
INPUT_RESTORED: Final = "input_restored"


@dataclass(frozen=True)
class MonitorState:
    blind: dict[int, dict[str, Any]] = field(default_factory=dict)  # subtask → its last blind report
    episode_ms: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"blind": {str(k): v for k, v in self.blind.items()}, "episode_ms": self.episode_ms}

    @staticmethod
    def from_json(value: dict[str, Any] | None) -> MonitorState:
        if not value:
            return MonitorState()
        return MonitorState({int(k): v for k, v in value["blind"].items()}, value["episode_ms"])


def status_report(subtask: int, status: str, at_ms: int, input_ms: int | None, since_ms: int) -> dict[str, Any]:
    """What a detector instance sends: its status, since when, and how far its input has come."""
    return {"subtask": subtask, "status": status, "at_ms": at_ms, "input_ms": input_ms, "since_ms": since_ms}


def on_report(state: MonitorState, report: dict[str, Any]) -> tuple[MonitorState, list[dict[str, Any]]]:
    subtask, at_ms = int(report["subtask"]), int(report["at_ms"])
    blind = dict(state.blind)
    if report["status"] == CURRENT:
        if blind.pop(subtask, None) is None:
            return state, []
        return _settle(replace(state, blind=blind), at_ms)
    blind[subtask] = report
    if state.episode_ms is not None:
        return replace(state, blind=blind), []
    episode = at_ms
    return MonitorState(blind, episode), [_alert(INPUT_STALLED, episode, at_ms, blind)]


def expire(state: MonitorState, now_ms: int, expire_ms: int) -> tuple[MonitorState, list[dict[str, Any]]]:
    blind = {k: v for k, v in state.blind.items() if now_ms - int(v["at_ms"]) < expire_ms}
    if len(blind) == len(state.blind):
        return state, []
    return _settle(replace(state, blind=blind), now_ms)


def _settle(state: MonitorState, at_ms: int) -> tuple[MonitorState, list[dict[str, Any]]]:
    if state.blind or state.episode_ms is None:
        return state, []
    return MonitorState(), [_alert(INPUT_RESTORED, state.episode_ms, at_ms, {})]


def _alert(kind: str, episode_ms: int, at_ms: int, blind: dict[int, dict[str, Any]]) -> dict[str, Any]:
    if kind == INPUT_STALLED:
        why = ", ".join(f"subtask {k} {v['status']}" for k, v in sorted(blind.items()))
        subject = "Alerting blind: the anomaly job's input stalled or fell behind"
        message = (f"The anomaly job cannot see current telemetry ({why}). Per-vehicle offline alerts hold "
                   f"until it can; the silence it could not see is not counted against any vehicle.")
        severity = "critical"
    else:
        subject = "Alerting restored: the anomaly job's input is current"
        message = f"Every subtask of the anomaly job reads current telemetry again (blind since {format_timestamp_ms(episode_ms)})."
        severity = "info"
    return {
        "alert_id": alert_id(-1, kind, episode_ms),  # -1: the platform, not a vehicle
        "kind": kind,
        "severity": severity,
        "vehicle_id": None,
        "episode_start": format_timestamp_ms(episode_ms),
        "event_time": format_timestamp_ms(at_ms),
        "location": {"lat": None, "lon": None},
        "zone_id": None,
        "subject": subject,
        "message": message,
        "details": {"subtasks": {str(k): {f: v[f] for f in ("status", "since_ms", "input_ms")} for k, v in sorted(blind.items())}},
    }
