"""Bronze compaction on FileSink-named files: rows kept exactly (none lost, none doubled, also after
an interrupted merge), part prefixes kept apart, young and large files left alone, and Silver built
from the compacted files equal to Silver built from the small ones."""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from deltalake import DeltaTable

from connectors.bronze_files import count_rows
from lake import compact, silver
from tests.unit.test_lake_silver import HOUR0, _row, _write, lake_paths

HOUR_MS = 3_600_000
NOW_S = HOUR0 / 1000 + 10 * 3600


def _sink_name(prefix: str, counter: int) -> str:
    return f"{prefix}-{uuid.uuid4()}-{counter}.parquet"


def _rows_by_folder(bronze: Path) -> dict[str, list[tuple]]:
    out = {}
    for f in bronze.rglob("*.parquet"):
        if not f.name.startswith("."):
            out.setdefault(f.parent.name, []).extend((r["vehicle_id"], r["timestamp"], r["ingested_at_ms"]) for r in pq.read_table(f).to_pylist())
    return {k: sorted(v) for k, v in out.items()}


def _age(path: Path, seconds_before_now: float) -> None:
    os.utime(path, (NOW_S - seconds_before_now, NOW_S - seconds_before_now))


def test_compaction_merges_small_files_and_keeps_every_row_once(tmp_path):
    rng = random.Random(4)
    bronze = tmp_path / "bronze"
    for hour in (0, 1):
        for counter in range(12):  # a file per checkpoint
            start = HOUR0 + hour * HOUR_MS + counter * 60_000
            _write(bronze / f"hour={hour:02d}", _sink_name("telemetry", counter),
                   [_row(rng, rng.randrange(1, 30), start + i * 100, start + i * 100 + 20) for i in range(40)])
    _write(bronze / "hour=01", _sink_name("backfill-run7", 0), [_row(rng, 5, HOUR0 + HOUR_MS + i, HOUR0) for i in range(30)])
    _write(bronze / "hour=01", _sink_name("backfill-run7", 1), [_row(rng, 6, HOUR0 + HOUR_MS + i, HOUR0) for i in range(30)])
    for f in bronze.rglob("*.parquet"):
        _age(f, 2 * 3600)
    young = bronze / "hour=01" / _sink_name("telemetry", 99)
    _write(young.parent, young.name, [_row(rng, 1, HOUR0 + HOUR_MS + 5, HOUR0 + HOUR_MS + 9)])
    _age(young, 60)
    before = _rows_by_folder(bronze)
    telemetry_rows, _ = count_rows(bronze.as_uri(), "telemetry")
    lake = lake_paths(tmp_path)
    silver.update(lake)
    silver_before = sorted(map(str, DeltaTable(lake.silver).to_pyarrow_table().to_pylist()))

    one_file = max(f.stat().st_size for f in bronze.rglob("*.parquet"))
    plan = compact.compact(bronze.as_uri(), target_bytes=one_file * 5, now_s=NOW_S, dry_run=True)
    assert _rows_by_folder(bronze) == before and plan
    merges = compact.compact(bronze.as_uri(), target_bytes=one_file * 5, now_s=NOW_S)
    assert [(m.folder.rsplit("/", 1)[1], m.prefix, len(m.inputs), m.rows) for m in merges] == \
        [(p.folder.rsplit("/", 1)[1], p.prefix, len(p.inputs), p.rows) for p in plan]

    assert _rows_by_folder(bronze) == before  # every row once, each in its folder
    assert young.exists()  # committed a minute ago: not merged yet
    assert {m.prefix for m in merges} == {"telemetry", "backfill-run7"}
    assert all(m.output.startswith(f"{m.prefix}-") for m in merges)
    assert count_rows(bronze.as_uri(), "telemetry")[0] == telemetry_rows and count_rows(bronze.as_uri(), "backfill-run7")[0] == 60
    files_after = [f for f in bronze.rglob("*.parquet")]
    assert len(files_after) < 12 * 2 + 3 and sum(len(m.inputs) for m in merges) == 12 * 2 + 2
    merged = pq.read_table(bronze / "hour=00" / merges[0].output).to_pylist()
    assert [(r["vehicle_id"], r["event_time_ms"]) for r in merged] == sorted((r["vehicle_id"], r["event_time_ms"]) for r in merged)

    silver.update(lake)  # new files, the same rows: the hours are rebuilt the same
    assert sorted(map(str, DeltaTable(lake.silver).to_pyarrow_table().to_pylist())) == silver_before
    assert compact.compact(bronze.as_uri(), target_bytes=one_file * 5, now_s=NOW_S) == []  # nothing small and old left to pair


def test_a_merge_interrupted_before_its_inputs_went_is_finished_by_the_next_run(tmp_path):
    rng = random.Random(8)
    folder = tmp_path / "bronze" / "hour=00"
    names = [_sink_name("telemetry", i) for i in range(3)]
    for i, name in enumerate(names):
        _write(folder, name, [_row(rng, i, HOUR0 + i * 1000 + j, HOUR0) for j in range(10)]
               + [dict(_row(rng, i, HOUR0 + 5, HOUR0), timestamp=f"bad-{i}", battery_percent=-5.0)])
        _age(folder / name, 7200)
    before = _rows_by_folder(tmp_path / "bronze")
    # What a crash after the move and before the deletes leaves: the merged file and its inputs.
    table = pa.concat_tables([pq.read_table(folder / n) for n in names[:2]])
    table = table.replace_schema_metadata({compact.COMPACTED_FROM: json.dumps(names[:2]).encode()})
    pq.write_table(table, folder / f"telemetry-{uuid.uuid4()}{compact.COMPACTED_SUFFIX}")
    (folder / ".leftover.parquet.compacting").write_bytes(b"half a file")
    _age(folder / ".leftover.parquet.compacting", 7200)

    # Silver built meanwhile sees the merged rows twice: each still once in Silver and in its rejected rows.
    lake = lake_paths(tmp_path)
    silver.update(lake)
    assert sorted(r["timestamp"] for r in DeltaTable(lake.silver_rejected).to_pyarrow_table().to_pylist()) == ["bad-0", "bad-1", "bad-2"]
    assert DeltaTable(lake.silver).to_pyarrow_table().num_rows == 30
    _age(next(folder.glob(f"*{compact.COMPACTED_SUFFIX}")), 600)  # written ten minutes before this run
    compact.compact((tmp_path / "bronze").as_uri(), now_s=NOW_S + 1)
    assert _rows_by_folder(tmp_path / "bronze") == before
    assert not (folder / names[0]).exists() and not (folder / ".leftover.parquet.compacting").exists()
