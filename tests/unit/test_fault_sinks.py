"""How the failure harness reads moto's Timestream: as Timestream would hold it, so that a
duplicate series is counted (moto keeps every write; Timestream one record per identity)."""

from fleet.harness.sinks import timestream_identities


def record(vehicle: str, time_ms: int, **dimensions: str) -> dict:
    return {"Dimensions": [{"Name": "vehicle_id", "Value": vehicle}, *({"Name": k, "Value": v} for k, v in dimensions.items())],
            "Time": str(time_ms), "MeasureName": "telemetry", "MeasureValues": []}


def test_a_rewrite_is_one_record_and_counted_as_a_rewrite():
    per_event, rewrites = timestream_identities([record("7", 1000), record("7", 1000), record("7", 2000)])
    assert per_event == {(7, 1000): 1, (7, 2000): 1} and rewrites == 1


def test_one_event_under_two_dimension_sets_is_two_records_a_duplicate():
    """What a replay after an enrichment change wrote while zone_id was a dimension."""
    per_event, rewrites = timestream_identities([record("7", 1000, zone_id="u0yjjd"), record("7", 1000, zone_id="u0yjjf")])
    assert per_event == {(7, 1000): 2} and rewrites == 0
