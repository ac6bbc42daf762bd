"""Backfill runs: the run id, the manifest, and what a second invocation does (skip, rerun into the
idempotent sinks, resume from a checkpoint, start over, or refuse)."""

from dataclasses import replace
from pathlib import Path

import pytest

from connectors.bronze_files import count_rows, delete_part_files, part_files
from jobs.backfill.ranges import BackfillError, PartitionRange, ResolvedRange
from jobs.backfill.runs import (
    Attempt,
    Manifest,
    all_manifests,
    find_rerun_target,
    inspect_checkpoints,
    overlapping_runs,
    parse_sinks,
    plan_attempt,
    read_manifest,
    run_folder,
    run_id_of,
    write_manifest,
)

RANGE = ResolvedRange("vehicle-telemetry", (PartitionRange(0, 10, 20), PartitionRange(1, 0, 0)))
TARGETS = {"enriched": "telemetry-enriched", "dlq": "telemetry-dlq", "bronze": "file:///lake", "store": "hot=local:/s"}
ALL = frozenset({"enriched", "bronze", "store", "dlq"})
IDEMPOTENT = frozenset({"store", "bronze"})


def manifest(state="complete", sinks=ALL, attempt_sinks=None, purpose="first", submitted=True, run_id=None, resolved=RANGE, targets=TARGETS):
    run_id = run_id or run_id_of(resolved, sinks, targets)
    return Manifest(
        run_id=run_id, state=state, telemetry_topic=resolved.topic, range={"offsets_from": "0:10", "offsets_to": "0:20"},
        resolved=resolved.as_json(), records=resolved.records, sinks=tuple(sorted(sinks)),
        targets={s: targets[s] for s in sorted(sinks)}, group_id=f"backfill-{run_id}", transactional_id_prefix=f"backfill-{run_id}",
        bronze_part_prefix=f"backfill-{run_id}", checkpoint_dir="file:///run/checkpoints", counts_dir="file:///run/counts",
        started_at="2025-01-15T16:00:00.000Z", counts={"enriched": 9} if state == "complete" else {},
        attempts=(Attempt(purpose, purpose, tuple(sorted(attempt_sinks or sinks)), "2025-01-15T16:00:00.000Z", submitted=submitted),),
    )


def test_sinks_default_to_all_and_unknown_ones_are_refused():
    assert parse_sinks(None) == ALL
    assert parse_sinks("store, bronze") == IDEMPOTENT
    with pytest.raises(BackfillError, match="choose from"):
        parse_sinks("store,lake")


def test_the_run_id_is_the_same_for_the_same_run_and_differs_for_any_other():
    same = run_id_of(RANGE, ["store", "bronze"], TARGETS)
    assert same == run_id_of(RANGE, ["bronze", "store"], {**TARGETS, "enriched": "elsewhere"})  # unused targets don't count
    assert len(same) == 12
    assert same != run_id_of(RANGE, ["store"], TARGETS)
    assert same != run_id_of(RANGE, ["store", "bronze"], {**TARGETS, "bronze": "file:///other"})
    assert same != run_id_of(ResolvedRange("vehicle-telemetry", (PartitionRange(0, 10, 21),)), ["store", "bronze"], TARGETS)


def test_a_manifest_round_trips_and_a_broken_one_is_named(tmp_path):
    written = manifest(state="running")
    write_manifest(tmp_path / "run", written)
    assert read_manifest(tmp_path / "run") == written
    assert read_manifest(tmp_path / "none") is None
    (tmp_path / "run" / "manifest.json").write_text("{")
    with pytest.raises(BackfillError, match="not a readable backfill manifest"):
        read_manifest(tmp_path / "run")


def test_a_new_run_runs_into_the_sinks_asked_for():
    plan = plan_attempt(None, sinks=ALL, rerun=False, checkpoint=None, job_seen=False)
    assert (plan.action, plan.sinks, plan.sentinel) == ("first", ALL, True)


def test_a_complete_run_is_not_run_again():
    plan = plan_attempt(manifest(), sinks=ALL, rerun=False, checkpoint=None, job_seen=False)
    assert (plan.action, plan.reason) == ("skip", "already complete")


def test_rerun_replays_a_complete_run_into_store_and_bronze_only():
    plan = plan_attempt(manifest(), sinks=IDEMPOTENT, rerun=True, checkpoint=None, job_seen=False)
    assert (plan.action, plan.sinks, plan.delete_bronze) == ("rerun", IDEMPOTENT, True)
    assert not plan_attempt(manifest(), sinks=frozenset({"store"}), rerun=True, checkpoint=None, job_seen=False).delete_bronze
    for kafka in ({"enriched"}, {"dlq", "store"}):
        with pytest.raises(BackfillError, match="append-only"):
            plan_attempt(manifest(), sinks=frozenset(kafka), rerun=True, checkpoint=None, job_seen=False)
    with pytest.raises(BackfillError, match="nothing to rerun"):
        plan_attempt(None, sinks=IDEMPOTENT, rerun=True, checkpoint=None, job_seen=False)


def test_an_interrupted_run_resumes_its_own_attempt_from_its_latest_checkpoint():
    crashed = manifest(state="running", attempt_sinks=IDEMPOTENT, purpose="rerun")
    plan = plan_attempt(crashed, sinks=ALL, rerun=False, checkpoint="file:///run/checkpoints/j/chk-7", job_seen=True)
    assert (plan.action, plan.sinks, plan.restore_from) == ("resume", IDEMPOTENT, "file:///run/checkpoints/j/chk-7")
    assert not plan.delete_bronze and not plan.sentinel  # the restored source state holds the sentinel


def test_an_interrupted_run_without_a_checkpoint_starts_over_when_nothing_can_have_been_committed():
    idempotent = plan_attempt(manifest(state="running", sinks=IDEMPOTENT), sinks=IDEMPOTENT, rerun=False, checkpoint=None, job_seen=False)
    assert (idempotent.action, idempotent.delete_bronze) == ("restart", True)
    # Transactions commit only after a checkpoint completes, and completed ones are retained.
    started = plan_attempt(manifest(state="running"), sinks=ALL, rerun=False, checkpoint=None, job_seen=True)
    assert (started.action, started.sinks) == ("restart", ALL)
    never_submitted = plan_attempt(manifest(state="running", submitted=False), sinks=ALL, rerun=False, checkpoint=None, job_seen=False)
    assert never_submitted.action == "restart"


def test_an_interrupted_run_with_kafka_sinks_and_no_trace_of_its_job_is_refused():
    with pytest.raises(BackfillError, match="cannot tell whether transactions to dlq, enriched were committed"):
        plan_attempt(manifest(state="running"), sinks=ALL, rerun=False, checkpoint=None, job_seen=False)


def test_rerun_of_an_interrupted_first_attempt_is_refused_until_it_is_resumed():
    with pytest.raises(BackfillError, match="without --rerun to resume"):
        plan_attempt(manifest(state="running"), sinks=IDEMPOTENT, rerun=True, checkpoint=None, job_seen=True)


def test_rerun_finds_the_earlier_run_of_the_range_that_wrote_those_sinks():
    earlier = manifest()
    other_range = manifest(resolved=ResolvedRange("vehicle-telemetry", (PartitionRange(0, 0, 5),)))
    other_lake = manifest(targets={**TARGETS, "bronze": "file:///other"})
    assert find_rerun_target([other_range, other_lake, earlier], RANGE, IDEMPOTENT, TARGETS, None) == earlier
    assert find_rerun_target([earlier], RANGE, IDEMPOTENT, {**TARGETS, "store": "hot=elsewhere"}, None) is None
    twin = replace(earlier, run_id="twin")
    with pytest.raises(BackfillError, match="choose one with --run-id"):
        find_rerun_target([earlier, twin], RANGE, IDEMPOTENT, TARGETS, None)
    assert find_rerun_target([earlier, twin], RANGE, IDEMPOTENT, TARGETS, "twin") == twin
    with pytest.raises(BackfillError, match="no run nope"):
        find_rerun_target([earlier], RANGE, IDEMPOTENT, TARGETS, "nope")


def test_a_new_run_that_would_add_records_again_where_an_earlier_one_wrote_them_is_found():
    earlier = manifest()
    wider = ResolvedRange("vehicle-telemetry", (PartitionRange(0, 15, 40),))
    clashes = overlapping_runs([earlier], wider, ALL, TARGETS, "new")
    assert [(m.run_id, shared) for m, shared in clashes] == [(earlier.run_id, ["bronze", "dlq", "enriched"])]
    assert [shared for _, shared in overlapping_runs([earlier], wider, IDEMPOTENT, TARGETS, "new")] == [["bronze"]]
    elsewhere = {**TARGETS, "enriched": "e2", "dlq": "d2", "bronze": "file:///lake2"}
    assert not overlapping_runs([earlier], wider, ALL, elsewhere, "new")
    assert not overlapping_runs([earlier], ResolvedRange("vehicle-telemetry", (PartitionRange(0, 20, 40),)), ALL, TARGETS, "new")
    assert not overlapping_runs([earlier], wider, frozenset({"store"}), TARGETS, "new")  # upserts


def test_all_manifests_reads_every_run_folder(tmp_path):
    assert all_manifests(tmp_path) == []
    first, second = manifest(run_id="aaa"), manifest(run_id="bbb")
    for m in (first, second):
        write_manifest(run_folder(tmp_path, m.run_id), m)
    assert all_manifests(tmp_path) == [first, second]


def test_the_latest_checkpoint_is_the_newest_complete_one_across_attempts(tmp_path):
    base = tmp_path / "checkpoints"
    assert inspect_checkpoints(base.as_uri()).latest is None
    for job, number, complete in (("job-a", 3, True), ("job-b", 8, True), ("job-b", 9, False)):
        folder = base / job / f"chk-{number}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "_metadata").write_bytes(b"x")
    found = inspect_checkpoints(base.as_uri())
    assert found.job_seen and found.latest == (base / "job-b" / "chk-8").as_uri()
    (base / "job-c").mkdir()
    assert inspect_checkpoints(base.as_uri()).latest == (base / "job-b" / "chk-8").as_uri()


def test_bronze_files_of_one_run_are_found_counted_and_deleted_by_prefix(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    hour = tmp_path / "year=2025" / "month=01" / "day=15" / "hour=16"
    hour.mkdir(parents=True)
    pq.write_table(pa.table({"vehicle_id": [1, 2, 3]}), hour / "backfill-abc-0-0.parquet")
    pq.write_table(pa.table({"vehicle_id": [4]}), hour / "telemetry-0-0.parquet")  # the live job's
    (hour / ".backfill-abc-0-1.parquet.inprogress.x").write_bytes(b"")
    assert count_rows(tmp_path.as_uri(), "backfill-abc") == (3, 1)
    assert len(part_files(tmp_path.as_uri(), "backfill-abc").hidden) == 1
    assert delete_part_files(tmp_path.as_uri(), "backfill-abc", hidden_only=True) == 1
    assert delete_part_files(tmp_path.as_uri(), "backfill-abc") == 1
    assert sorted(p.name for p in hour.iterdir()) == ["telemetry-0-0.parquet"]


class _CleanerRacingFilesystem:
    """A pyarrow filesystem whose first `delete_dir` meets a file Flink's checkpoint cleaner removed
    mid-walk (what a finished backfill hit: FileNotFoundError … chk-23/_metadata)."""

    def __init__(self, real, raced_file: Path):
        self.real, self.raced_file, self.deletes = real, raced_file, 0

    def get_file_info(self, path):
        return self.real.get_file_info(path)

    def delete_dir(self, path):
        self.deletes += 1
        if self.deletes == 1:
            self.raced_file.unlink()  # the cleaner got there first
            raise FileNotFoundError(f"[Errno 2] Failed to delete file {self.raced_file}")
        return self.real.delete_dir(path)


def test_removing_a_checkpoint_folder_rides_out_flinks_cleaner(tmp_path, monkeypatch):
    from pyarrow import fs

    import jobs.backfill.runs as backfill_run

    folder = tmp_path / "checkpoints" / "attempt-1"
    for checkpoint in ("chk-22", "chk-23"):
        (folder / checkpoint).mkdir(parents=True)
        (folder / checkpoint / "_metadata").write_bytes(b"x")
    racing = _CleanerRacingFilesystem(fs.LocalFileSystem(), folder / "chk-23" / "_metadata")
    monkeypatch.setattr(backfill_run, "_filesystem", lambda uri: (fs, racing, str(tmp_path / "checkpoints")))

    backfill_run.remove_dir((tmp_path / "checkpoints").as_uri())

    assert not (tmp_path / "checkpoints").exists()
    assert racing.deletes == 2
