"""The newest alerts of the JSON-lines alert log (connectors/alert_log.py), kept current cheaply.

The map asks for the feed every 2 s while the alerts job appends. Reading the whole log each time
grows with the log; instead the tail remembers how far it has read and reads only what was appended
since. The first read of a large log (or a burst larger than `max_forward_bytes`) reads backwards
from the end just far enough for `keep` lines. A line without its newline yet is a write in
progress: it is left for the next read. A log that shrank or was replaced (another inode: rotated,
or a new run) is read again from its tail.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from typing import Any, BinaryIO

import orjson

_BLOCK = 64 * 1024


class AlertTail:
    def __init__(self, path: str, keep: int = 500, *, max_forward_bytes: int = 4 * 1024 * 1024):
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.path = path
        self.keep = keep
        self.max_forward_bytes = max_forward_bytes
        self.bytes_read = 0  # all reads together: what the tail costs (tests check it stays small)
        self.unreadable = 0  # complete lines that were not a JSON object, skipped
        self._lock = threading.Lock()  # the server answers requests from several threads
        self._alerts: deque[dict[str, Any]] = deque(maxlen=keep)
        self._offset = 0  # bytes consumed: always the end of a complete line
        self._identity: tuple[int, int] | None = None

    def newest(self, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` (<= keep) alerts, newest (last appended) first, after reading what is new."""
        with self._lock:
            self._refresh()
            alerts = list(self._alerts)
        alerts.reverse()
        return alerts[:limit]

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:  # no alert yet (the job creates the file on its first one)
            self._reset(None)
            return
        identity = (stat.st_dev, stat.st_ino)
        if identity != self._identity or stat.st_size < self._offset:
            self._reset(identity)
        size = stat.st_size
        if size == self._offset:
            return
        with open(self.path, "rb") as handle:
            if size - self._offset > self.max_forward_bytes:
                self._alerts.clear()  # all of them would be pushed out by the newer ones anyway
                self._offset = self._tail_start(handle, size)
            handle.seek(self._offset)
            data = handle.read(size - self._offset)  # not beyond the size seen: lines still arriving wait
        self.bytes_read += len(data)
        end = data.rfind(b"\n") + 1
        self._offset += end
        for line in data[:end].split(b"\n"):
            if line.strip():
                self._add(line)

    def _add(self, line: bytes) -> None:
        try:
            alert = orjson.loads(line)
        except orjson.JSONDecodeError:
            alert = None
        if isinstance(alert, dict):
            self._alerts.append(alert)
        else:
            self.unreadable += 1

    def _reset(self, identity: tuple[int, int] | None) -> None:
        self._alerts.clear()
        self._offset = 0
        self._identity = identity

    def _tail_start(self, handle: BinaryIO, size: int) -> int:
        """The start of the line from which `keep` complete lines remain up to `size` (0 if fewer)."""
        wanted = self.keep + 1  # the newline ending the line before them, too
        position = size
        while position > 0:
            start = max(0, position - _BLOCK)
            handle.seek(start)
            block = handle.read(position - start)
            self.bytes_read += len(block)
            index = len(block)
            while True:
                index = block.rfind(b"\n", 0, index)
                if index < 0:
                    break
                wanted -= 1
                if wanted == 0:
                    return start + index + 1
            position = start
        return 0
