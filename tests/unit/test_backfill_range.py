"""Backfill ranges: what the command line accepts, and how a range becomes exact offsets per
partition from the log bounds and the offsets Kafka gives for a time (passed in as plain data)."""

import pytest

from connectors.kafka_offsets import LogBounds
from jobs.backfill.ranges import (
    BackfillError,
    OffsetRange,
    PartitionRange,
    ResolvedRange,
    TimeRange,
    format_resolved,
    parse_offsets,
    parse_request,
    resolve_offsets,
    resolve_time,
)

NOW = 1_736_956_800_000  # 2025-01-15T16:00:00Z
T14, T15 = 1_736_949_600_000, 1_736_953_200_000  # 14:00Z, 15:00Z


def test_offsets_parse_into_partition_to_offset():
    assert parse_offsets("0:100, 3:7,", "--offsets-from") == {0: 100, 3: 7}


@pytest.mark.parametrize("text, complaint", [
    ("", "at least one"),
    ("0-100", "partition:offset"),
    ("a:1", "partition:offset"),
    ("0:-1", "partition:offset"),
    ("0:1,0:2", "partition 0 is given twice"),
])
def test_bad_offsets_say_what_is_expected(text, complaint):
    with pytest.raises(BackfillError, match=complaint):
        parse_offsets(text, "--offsets-from")


def test_a_time_range_is_from_inclusive_to_exclusive():
    assert parse_request(time_from="2025-01-15T14:00:00Z", time_to="2025-01-15T15:00:00Z", now_ms=NOW) == TimeRange(T14, T15)


def test_an_offset_range_needs_both_ends_of_the_same_partitions():
    request = parse_request(offsets_from="0:10,1:0", offsets_to="0:20,1:0", now_ms=NOW)
    assert request == OffsetRange({0: 10, 1: 0}, {0: 20, 1: 0})
    assert request.describe() == {"offsets_from": "0:10,1:0", "offsets_to": "0:20,1:0"}


@pytest.mark.parametrize("kwargs, complaint", [
    ({}, "say what to replay"),
    ({"time_from": "2025-01-15T14:00:00Z"}, "needs both --from and --to"),
    ({"time_from": "2025-01-15T15:00:00Z", "time_to": "2025-01-15T14:00:00Z"}, "must be after --from"),
    ({"time_from": "2025-01-15T14:00:00Z", "time_to": "2025-01-15T14:00:00Z"}, "must be after --from"),
    ({"time_from": "2025-01-15T14:00:00Z", "time_to": "2025-01-15T17:00:00Z"}, "in the future"),
    ({"time_from": "yesterday", "time_to": "2025-01-15T15:00:00Z"}, "ISO-8601 with a zone"),
    ({"time_from": "2025-01-15T14:00:00", "time_to": "2025-01-15T15:00:00Z"}, "ISO-8601 with a zone"),
    ({"offsets_from": "0:1"}, "needs both --offsets-from and --offsets-to"),
    ({"offsets_from": "0:1,1:1", "offsets_to": "0:5"}, "give both ends of each"),
    ({"offsets_from": "0:9,1:1", "offsets_to": "0:5,1:1"}, r"0 \(9 > 5\)"),
    ({"time_from": "2025-01-15T14:00:00Z", "offsets_from": "0:1"}, "not both"),
])
def test_bad_requests_are_refused_with_the_reason(kwargs, complaint):
    with pytest.raises(BackfillError, match=complaint):
        parse_request(now_ms=NOW, **kwargs)


BOUNDS = {0: LogBounds(0, 100), 1: LogBounds(40, 90), 2: LogBounds(0, 0), 3: LogBounds(5, 50)}


def test_a_time_range_resolves_to_the_first_offsets_at_or_after_each_time():
    resolved = resolve_time(
        "vehicle-telemetry", TimeRange(T14, T15), BOUNDS,
        first_at_from={0: 10, 1: 40, 2: None, 3: None},  # 3: nothing at/after 14:00 → empty at its end
        first_at_to={0: 60, 1: None, 2: None, 3: None},  # 1: nothing at/after 15:00 → up to its end now
    )
    assert resolved.partitions == (
        PartitionRange(0, 10, 60), PartitionRange(1, 40, 90), PartitionRange(2, 0, 0), PartitionRange(3, 50, 50),
    )
    assert resolved.records == 100
    assert resolved.start_offsets() == {0: 10, 1: 40}  # empty partitions are left out of start and stop
    assert resolved.end_offsets() == {0: 60, 1: 90}


def test_time_offsets_stay_inside_the_stored_log():
    resolved = resolve_time("t", TimeRange(T14, T15), {0: LogBounds(40, 90)}, {0: 12}, {0: 95})
    assert resolved.partitions == (PartitionRange(0, 40, 90),)


def test_an_offset_range_is_taken_as_given_for_the_partitions_it_names():
    resolved = resolve_offsets("t", OffsetRange({0: 10, 3: 50}, {0: 20, 3: 50}), BOUNDS)
    assert resolved.partitions == (PartitionRange(0, 10, 20), PartitionRange(3, 50, 50))
    assert resolved.as_json() == {"0": [10, 20], "3": [50, 50]}


def test_a_start_deleted_by_retention_moves_to_the_log_start_and_says_so():
    resolved = resolve_offsets("t", OffsetRange({1: 0, 3: 0}, {1: 60, 3: 3}), BOUNDS)
    assert resolved.partitions == (PartitionRange(1, 40, 60, clamped=True), PartitionRange(3, 5, 5, clamped=True))
    lines = format_resolved(resolved)
    assert "deleted by retention" in lines[0] and "empty  (deleted by retention)" in lines[1]
    assert lines[-1] == "20 records in 1 of 2 partitions"


@pytest.mark.parametrize("request_, complaint", [
    (OffsetRange({7: 0}, {7: 1}), "has no partition 7"),
    (OffsetRange({0: 0, 1: 50}, {0: 101, 1: 91}), r"beyond the end.*0 \(asked 101, ends at 100\), 1 \(asked 91, ends at 90\)"),
])
def test_offsets_outside_the_topic_are_refused(request_, complaint):
    with pytest.raises(BackfillError, match=complaint):
        resolve_offsets("t", request_, BOUNDS)


def test_ranges_overlap_only_where_they_share_a_record():
    resolved = ResolvedRange("t", (PartitionRange(0, 10, 20), PartitionRange(1, 5, 5)))
    assert resolved.overlaps({0: (19, 30)})
    assert not resolved.overlaps({0: (20, 30)})  # half-open: 20 is not in [10, 20)
    assert not resolved.overlaps({1: (0, 10)})  # partition 1 is empty here
    assert not resolved.overlaps({0: (12, 12), 2: (0, 100)})
