"""Bronze compaction: the pipeline's Parquet sink commits a file per bucket, subtask and checkpoint
(every 2 s here), so an hour folder fills with small files. This merges the small committed files
of each folder and part prefix into files of about `target_bytes`, sorted by vehicle and event
time (row-group statistics then let a vehicle's erasure or a reader skip most of a file).

Exactly once, crash-safe, readers never short of a row: the merged file is written hidden, moved
into place (from then on readers may see its rows twice until the next step — Silver deduplicates,
so it is not fooled), and only then are the inputs deleted. The merged file names its inputs in its
footer (`fleet.compacted_from`); a run first finishes any merge a crash interrupted by deleting the
inputs a merged file names. Only files committed more than `older_than_s` ago are merged: Flink's
checkpoints, the ones a job restores from, are far younger. The part prefix stays, so a backfill
still finds (and a re-run still deletes) its own files."""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from itertools import groupby

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs

COMPACTED_FROM = b"fleet.compacted_from"
COMPACTED_SUFFIX = "-compacted.parquet"
TARGET_BYTES = 128 * 1024 * 1024
_WRITING = ".compacting"
# FileSink names a committed file <prefix>-<uuid>-<counter>.parquet; ours <prefix>-<uuid>-compacted.parquet.
_NAME = re.compile(r"(?P<prefix>.+)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-(\d+|compacted)\.parquet")


@dataclass(frozen=True)
class Merge:
    folder: str
    prefix: str
    inputs: tuple[str, ...]  # file names in the folder
    output: str
    rows: int
    bytes_in: int
    bytes_out: int


def _part_prefix(name: str) -> str | None:
    match = _NAME.fullmatch(name)
    return match.group("prefix") if match else None


def _finish_interrupted(filesystem: fs.FileSystem, infos: list[fs.FileInfo], since_s: float) -> set[str]:
    """Delete the inputs a merged file (written after `since_s`) names that are still there;
    returns the paths deleted."""
    present = {info.path for info in infos}
    deleted = set()
    for info in infos:
        if not info.base_name.endswith(COMPACTED_SUFFIX) or info.mtime.timestamp() < since_s:
            continue
        metadata = pq.ParquetFile(info.path, filesystem=filesystem).schema_arrow.metadata or {}
        folder = info.path.rpartition("/")[0]
        for name in json.loads(metadata.get(COMPACTED_FROM, b"[]")):
            path = f"{folder}/{name}"
            if path in present and path not in deleted:
                filesystem.delete_file(path)
                deleted.add(path)
    return deleted


def _batches(files: list[fs.FileInfo], target_bytes: int) -> list[list[fs.FileInfo]]:
    """Consecutive files into groups of about target_bytes (inputs' sizes: compressed alike)."""
    groups, current, size = [], [], 0
    for info in files:
        if current and size + info.size > target_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(info)
        size += info.size
    if current:
        groups.append(current)
    return [g for g in groups if len(g) > 1]


def _merge(filesystem: fs.FileSystem, folder: str, prefix: str, group: list[fs.FileInfo]) -> Merge:
    table = pa.concat_tables([pq.read_table(info.path, filesystem=filesystem) for info in group])
    table = table.sort_by([("vehicle_id", "ascending"), ("event_time_ms", "ascending")])
    names = [info.base_name for info in group]
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), COMPACTED_FROM: json.dumps(names).encode()})
    output = f"{prefix}-{uuid.uuid4()}{COMPACTED_SUFFIX}"
    hidden = f"{folder}/.{output}{_WRITING}"
    with filesystem.open_output_stream(hidden) as out:
        pq.write_table(table, out, compression="snappy", row_group_size=1_000_000)
    filesystem.move(hidden, f"{folder}/{output}")
    for info in group:
        filesystem.delete_file(info.path)
    size = filesystem.get_file_info(f"{folder}/{output}").size
    return Merge(folder, prefix, tuple(names), output, table.num_rows, sum(i.size for i in group), size)


def compact(bronze_uri: str, *, target_bytes: int = TARGET_BYTES, older_than_s: float = 3600.0,
            now_s: float | None = None, dry_run: bool = False, progress=lambda merge: None) -> list[Merge]:
    """Merge each folder's small files (below half the target) per part prefix; returns the merges
    (with `dry_run`, the ones it would make, output unnamed and sizes of the inputs)."""
    now_s = time.time() if now_s is None else now_s
    filesystem, base = fs.FileSystem.from_uri(bronze_uri)
    infos = [i for i in filesystem.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
             if i.type == fs.FileType.File]
    for info in infos:  # a merge a crash cut short before its move: never visible, safe to drop
        if info.base_name.startswith(".") and info.base_name.endswith(_WRITING) and info.mtime.timestamp() < now_s - older_than_s:
            filesystem.delete_file(info.path)
    visible = [i for i in infos if not i.base_name.startswith((".", "_")) and i.base_name.endswith(".parquet")]
    # A run a day (or more often) sees any crash of the last week's runs.
    gone = set() if dry_run else _finish_interrupted(filesystem, visible, now_s - 7 * 86_400)
    small = [i for i in visible if i.path not in gone and i.size < target_bytes // 2
             and i.mtime.timestamp() < now_s - older_than_s and _part_prefix(i.base_name) is not None]
    key = lambda i: (i.path.rpartition("/")[0], _part_prefix(i.base_name))  # noqa: E731
    merges = []
    for (folder, prefix), members in groupby(sorted(small, key=lambda i: (*key(i), i.base_name)), key=key):
        for group in _batches(list(members), target_bytes):
            if dry_run:
                rows = sum(pq.ParquetFile(i.path, filesystem=filesystem).metadata.num_rows for i in group)
                merge = Merge(folder, prefix, tuple(i.base_name for i in group), "", rows, sum(i.size for i in group), 0)
            else:
                merge = _merge(filesystem, folder, prefix, group)
            merges.append(merge)
            progress(merge)
    return merges
