"""The local alert log: one JSON line per alert, appended and flushed at once (operators tail it)."""

from __future__ import annotations

import os
import threading
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
        line = orjson.dumps(alert) + b"\n"
        with self._lock:
            # O_APPEND: each line lands whole at the end, even with another process appending.
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


def read_alert_log(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, "rb") as handle:
            return [orjson.loads(line) for line in handle if line.strip()]
    except FileNotFoundError:
        return []
