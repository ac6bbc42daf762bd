"""`telemetry bench lake --smoke` end to end: a generated hour of Bronze through Silver and Gold and
the peer, the JSON written, the BENCHMARKS.md section put between its markers (the rest of the file
left alone), and every count equal to one computed here from the generated Bronze files in plain
Python. Structure and counts only: the timings are the benchmark's output, never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fleet.bench import lakehouse as bench_lake

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
HOUR_MS = 3_600_000


def _expected(bronze: Path) -> dict:
    """From the files themselves: the hour's rows, the valid ones, distinct (vehicle_id, timestamp)."""
    rows = [r for f in sorted(bronze.glob("*.parquet")) for r in pq.read_table(f).to_pylist()
            if bench_lake.HOUR0_MS <= r["event_time_ms"] < bench_lake.HOUR0_MS + HOUR_MS]

    def ok(r):
        b, lat, lon = r["battery_percent"], r["latitude"], r["longitude"]
        return b is not None and 0 <= b <= 100 and -90 <= lat <= 90 and -180 <= lon <= 180

    valid = [r for r in rows if ok(r)]
    keys = {(r["vehicle_id"], r["timestamp"]) for r in valid}
    return {"hour_rows": len(rows), "silver": len(keys), "rejected": len(rows) - len(valid),
            "duplicates": len(valid) - len(keys), "gold": len({r["vehicle_id"] for r in valid})}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    markdown = run_dir / "BENCHMARKS.md"
    markdown.write_text("# Benchmarks: the telemetry pipeline\n\nwritten by bench pipeline\n")
    code = bench_lake.main(["--set", f"infra.run_dir={run_dir}", "--smoke", "--markdown", str(markdown)])
    written = sorted((run_dir / "bench").glob("lake-*.json"))
    assert len(written) == 1, written
    return code, json.loads(written[0].read_text()), markdown, written[0]


def test_counts_equal_an_independent_count_of_the_generated_hour(smoke):
    code, report, _, _ = smoke
    assert code == 0 and report["problems"] == []
    data = report["input"]
    expected = _expected(Path(data["folder"]))
    assert data["hour_rows"] == expected["hour_rows"] and data["resent"] > 0 and data["bad"] > 0
    counts = report["counts"]
    assert counts["bronze_rows_in_hour"] == expected["hour_rows"]
    assert counts["silver_rows"] == counts["silver_rows_read_back"] == expected["silver"]
    assert counts["rejected"] == counts["rejected_rows_read_back"] == expected["rejected"]
    assert counts["duplicates"] == expected["duplicates"] > 0
    assert counts["gold_rows"] == expected["gold"] and counts["gold_readings"] == expected["silver"]
    assert counts["peer"] == {"silver_rows": expected["silver"], "rejected": expected["rejected"], "gold_rows": expected["gold"]}


def test_every_step_measured_against_the_target_and_the_peer(smoke):
    _, report, _, _ = smoke
    steps = report["steps"]
    assert set(steps) == {"silver", "peer_silver", "gold", "peer_gold"}
    for name, step in steps.items():
        assert step["rows"] == (report["counts"]["bronze_rows_in_hour"] if "silver" in name else report["counts"]["silver_rows"])
        assert step["cpu_s"] > 0 and step["wall_s"] > 0 and step["rows_per_core_s"] > 0, name
    for name in ("silver", "gold"):
        assert steps[name]["to_target"] > 0 and steps[name]["to_peer"] > 0
    assert report["target_rows_per_core_s"] == 2_000_000 and report["machine"]["versions"]["deltalake"]


def test_the_markdown_section_is_replaced_between_its_markers(smoke):
    _, _, markdown, json_path = smoke
    text = markdown.read_text()
    assert text.startswith("# Benchmarks: the telemetry pipeline\n\nwritten by bench pipeline\n")
    assert text.count(bench_lake.SECTION_BEGIN) == text.count(bench_lake.SECTION_END) == 1
    assert "| Silver (lake/) |" in text and "| Gold, peer |" in text
    assert bench_lake.main(["--render", str(json_path), "--markdown", str(markdown)]) == 0  # again, from the JSON
    again = markdown.read_text()
    assert again.count(bench_lake.SECTION_BEGIN) == 1 and again.startswith("# Benchmarks: the telemetry pipeline")
