"""Which event hours each Bronze file holds, from its Parquet footer (min/max event_time_ms), so an
hour of Silver reads every file that may hold it, whatever folder the writer put the file in (the
pipeline's folders are event hours now; files written before that are in processing-time folders,
which hold late spool drains and replays of earlier hours). A file with rows but no event time at
all (an `event_time=unknown` bucket: the pipeline cannot write one) holds no hour: `unplaced`."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.parquet as pq
from pyarrow import fs

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class BronzeFile:
    path: str  # inside the filesystem
    size: int
    rows: int
    first_hour_ms: int  # start of the hour of its oldest event
    last_hour_ms: int  # start of the hour of its newest event
    unreadable: str | None = None  # why its footer could not be read: it holds no hour until fixed

    def hours(self) -> range:
        return range(self.first_hour_ms, self.last_hour_ms + HOUR_MS, HOUR_MS)

    @property
    def unplaced(self) -> bool:
        """Rows, and no event time to place them in an hour."""
        return self.rows > 0 and not self.hours()


def _event_time_range(path: str, filesystem: fs.FileSystem) -> tuple[int, int, int]:
    meta = pq.ParquetFile(path, filesystem=filesystem).metadata
    column = meta.schema.names.index("event_time_ms")
    lows, highs = [], []
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(column).statistics
        if meta.row_group(group).num_rows == 0 or (stats is not None and stats.null_count == meta.row_group(group).num_rows):
            continue  # empty, or no event time at all
        if stats is None or not stats.has_min_max:
            raise ValueError(f"{path}: no min/max statistics for event_time_ms")
        lows.append(stats.min)
        highs.append(stats.max)
    if not lows:
        return meta.num_rows, 0, -HOUR_MS  # empty: no hours
    return meta.num_rows, min(lows), max(highs)


def list_bronze(bronze_uri: str, known: dict[tuple[str, int], BronzeFile] | None = None) -> tuple[fs.FileSystem, list[BronzeFile]]:
    """Every committed Bronze Parquet file (hidden in-progress files are not data yet). A file in
    `known` (by path and size: Silver's ledger) is taken from there: a listing reads only the
    footers of files it has not seen, not 90 days of them."""
    filesystem, base = fs.FileSystem.from_uri(bronze_uri)
    infos = filesystem.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
    known = known or {}
    found = []
    for info in sorted(infos, key=lambda i: i.path):
        name = info.base_name
        if info.type != fs.FileType.File or name.startswith((".", "_")) or not name.endswith(".parquet"):
            continue
        if (info.path, info.size) in known:
            found.append(known[info.path, info.size])
            continue
        try:
            rows, low, high = _event_time_range(info.path, filesystem)
        except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
            # One broken file (truncated, not Parquet, no event_time_ms) must not stop every run: it
            # is named, left out, and looked at again next time.
            found.append(BronzeFile(info.path, info.size, 0, 0, -HOUR_MS, unreadable=f"{type(error).__name__}: {error}"))
            continue
        found.append(BronzeFile(info.path, info.size, rows, low - low % HOUR_MS, high - high % HOUR_MS))
    return filesystem, found
