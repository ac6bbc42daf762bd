"""Deliberate failures for the fault-injection harness: fail a user function on one record, once.

Off unless `faults.fail_once_at` is set (never in a real deployment). "Once" must survive the
restart the failure causes, and Flink rolls state back on restart, so the memory of having failed
is a marker file created atomically (O_EXCL) just before raising: the replayed record passes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class InjectedFailure(RuntimeError):
    """Raised on purpose by the harness's fault; Flink's restart strategy must recover from it."""


@dataclass(frozen=True)
class FailOnce:
    vehicle_id: int
    event_time_ms: int
    marker: str  # file that exists once the failure has fired

    @staticmethod
    def parse(text: str, marker_dir: str, stage: str) -> FailOnce | None:
        """`<vehicle_id>@<event_time_ms>` (empty: no fault). One marker per job stage, so the
        pipeline and the alert job each fail once on the same record."""
        text = text.strip()
        if not text:
            return None
        vehicle, sep, millis = text.partition("@")
        try:
            vehicle_id, event_time_ms = int(vehicle), int(millis)
        except ValueError:
            vehicle_id = event_time_ms = -1
        if not sep or vehicle_id <= 0 or event_time_ms < 0:
            raise ValueError(f"fail_once_at={text!r}: expected <vehicle_id>@<event_time_ms>, e.g. 10001@1767225600000")
        return FailOnce(vehicle_id, event_time_ms, str(Path(marker_dir) / f"fail-once-{stage}-{vehicle_id}-{event_time_ms}"))

    def check(self, vehicle_id: int, event_time_ms: int) -> None:
        if vehicle_id != self.vehicle_id or event_time_ms != self.event_time_ms:
            return
        Path(self.marker).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return  # already failed once: the replay after the restart goes through
        raise InjectedFailure(f"injected failure on vehicle {vehicle_id} event {event_time_ms} (marker {self.marker})")

    @property
    def fired(self) -> bool:
        return Path(self.marker).exists()
