"""The local alert log: one JSON line per alert, appended and flushed at once (operators tail it)."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson


class AlertLog:
    def __init__(self, path: str):
        if not path:
            raise ValueError("alert log path is empty")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()  # several subtasks of one TaskManager share the file

    def append(self, alert: dict[str, Any]) -> None:
        self.append_many([alert])

    def append_many(self, alerts: Sequence[dict[str, Any]]) -> None:
        """One write of all the lines (a flush of the alert fan-out)."""
        if not alerts:
            return
        lines = b"".join(orjson.dumps(alert) + b"\n" for alert in alerts)
        with self._lock:
            # O_APPEND: the lines land whole at the end, even with another process appending.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                view = memoryview(lines)
                while view:  # a regular file takes it all at once; a short write is only retried
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)


def read_alert_log(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as handle:
            return [orjson.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
