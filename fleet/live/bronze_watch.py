"""Bronze files and rows as a reader sees them: committed Parquet files (the FileSink keeps files
being written hidden until their checkpoint commits them), footers read once per new file."""

from __future__ import annotations

from pyarrow import fs


class BronzeWatch:
    """Counts committed files under the Bronze base path; `baseline` ones are reported apart, so the
    status can show what this session added."""

    def __init__(self, base_uri: str):
        self.base_uri = base_uri
        self._fs, self._base = fs.FileSystem.from_uri(base_uri)
        self._rows: dict[str, int] = {}
        self.baseline_files = self.baseline_rows = 0
        self.error: str | None = None

    def mark_baseline(self) -> None:
        self.refresh()
        self.baseline_files, self.baseline_rows = len(self._rows), sum(self._rows.values())

    def refresh(self) -> tuple[int, int]:
        """(files, rows) committed in total."""
        import pyarrow.parquet as pq

        try:
            infos = self._fs.get_file_info(fs.FileSelector(self._base, recursive=True, allow_not_found=True))
            for info in infos:
                if info.type == fs.FileType.File and info.path.endswith(".parquet") and not info.base_name.startswith(".") \
                        and info.path not in self._rows:
                    self._rows[info.path] = pq.ParquetFile(info.path, filesystem=self._fs).metadata.num_rows
            self.error = None
        except (OSError, ValueError) as exc:  # a file compacted away between listing and reading
            self.error = str(exc)
        return len(self._rows), sum(self._rows.values())
