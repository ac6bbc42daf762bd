"""The Bronze lake's part files as files: find, count and delete those one writer named with its
part prefix (a backfill run's `backfill-<run_id>`), under a `file://` or `s3://` base path.

The FileSink names a committed file `<prefix>-<uuid>-<counter>.parquet` and keeps files being
written hidden as `.<prefix>-….inprogress.<uuid>` until their checkpoint commits them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyarrow import fs


@dataclass(frozen=True)
class PartFiles:
    committed: tuple[str, ...]  # paths inside the filesystem, readers see these
    hidden: tuple[str, ...]  # in-progress or pending files of an interrupted writer


def _mine(name: str, part_prefix: str) -> bool:
    return name.lstrip(".").startswith(f"{part_prefix}-")


def part_files(base_uri: str, part_prefix: str) -> PartFiles:
    filesystem, base = fs.FileSystem.from_uri(base_uri)
    infos = filesystem.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True))
    committed: list[str] = []
    hidden: list[str] = []
    for info in infos:
        if info.type != fs.FileType.File or not _mine(info.base_name, part_prefix):
            continue
        (hidden if info.base_name.startswith(".") else committed).append(info.path)
    return PartFiles(tuple(sorted(committed)), tuple(sorted(hidden)))


def count_rows(base_uri: str, part_prefix: str) -> tuple[int, int]:
    """(rows, files) of the committed Parquet files with this prefix, from their footers."""
    import pyarrow.parquet as pq

    filesystem, _ = fs.FileSystem.from_uri(base_uri)
    files = part_files(base_uri, part_prefix).committed
    return sum(pq.ParquetFile(path, filesystem=filesystem).metadata.num_rows for path in files), len(files)


def delete_part_files(base_uri: str, part_prefix: str, *, hidden_only: bool = False) -> int:
    """Delete the files with this prefix (only the hidden ones: what an interrupted writer left
    behind once its job has finished); returns how many."""
    filesystem, _ = fs.FileSystem.from_uri(base_uri)
    found = part_files(base_uri, part_prefix)
    doomed = found.hidden if hidden_only else (*found.committed, *found.hidden)
    for path in doomed:
        filesystem.delete_file(path)
    return len(doomed)
