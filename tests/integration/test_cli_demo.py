"""The README's run command, end to end: `telemetry demo` on ports and a run folder of its own."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra.process import free_port

pytestmark = [pytest.mark.integration, pytest.mark.job]


def test_demo_runs_the_main_job_and_adds_up(tmp_path):
    telemetry = Path(sys.executable).parent / "telemetry"
    settings = [
        f"infra.run_dir={tmp_path}", f"infra.kafka_port={free_port()}", f"infra.kafka_controller_port={free_port()}",
        f"infra.mqtt_port={free_port()}", f"infra.moto_port={free_port()}",
    ]
    common = [str(telemetry), *(a for s in settings for a in ("--set", s))]
    argv = [*common, "demo", "--vehicles", "200", "--events", "3000", "--defects", "12", "--resends", "100", "--stop-after"]
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "2988 unique valid" in out
    assert re.search(r"telemetry-enriched\s+2988 events", out), out
    assert re.search(r"bronze parquet\s+2988 rows", out), out
    assert re.search(r"hot store\s+2988 points", out), out
    assert "OK: every unique valid event in every sink exactly once, every invalid one in the DLQ" in out
    assert not list(tmp_path.rglob("*.pid")), "servers left running after --stop-after"

    # The hot store is embedded: the seed's trace query works with every server stopped.
    vehicle = re.search(r"vehicle (\d+) \(", out).group(1)
    trace = subprocess.run([*common, "query", "trace", "--vehicle", vehicle, "--since", "1h"], capture_output=True, text=True, timeout=60)
    assert trace.returncode == 0, trace.stderr
    times = [line.split()[0] for line in trace.stdout.splitlines()[1:-1]]
    assert len(times) == 15 and times == sorted(times, reverse=True)
    status = subprocess.run([*common, "query", "status", "--vehicle", vehicle], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and f"vehicle_id       {vehicle}" in status.stdout


def test_validate_command_reports_each_bad_line(tmp_path):
    telemetry = Path(sys.executable).parent / "telemetry"
    payloads = tmp_path / "payloads.jsonl"
    payloads.write_text(
        '{"vehicle_id": 1, "timestamp": "2025-01-15T14:32:18.123Z", "location": {"lat": 50.1, "lon": 8.6}, "battery": {"percent": 50}}\n'
        '{"vehicle_id": 1, "timestamp": "2025-01-15T14:32:18.123Z", "location": {"lat": 91, "lon": 8.6}, "battery": {"percent": 50}}\n'
        "not json\n"
        '{"vehicle_id": 1, "timestamp": "2025-01-15T14:32:18.123Z", "location": {"lat": 50.1, "lon": 8.6}, "battery": {"percent": 50}, '
        f'"notes": "{"n" * 140_000}"}}\n'
        '{"vehicle_id": 1, "timestamp": "2025-01-15T14:32:18.123Z", "location": {"lat": 50.1, "lon": 8.6}, "battery": {"percent": 50}, '
        '"x": [[[[[[[[1]]]]]]]]}\n'
    )
    completed = subprocess.run([str(telemetry), "validate", str(payloads)], capture_output=True, text=True, timeout=60)
    assert completed.returncode == 4  # fleet/cli/exit_codes.py: CHECK_FAILED, a check ran and failed
    assert "line 2: out_of_range location.lat" in completed.stdout
    assert "line 3: bad_json" in completed.stdout
    assert "line 4: payload_too_large : payload is 140," in completed.stdout
    assert "line 5: over_limit x[0][0][0][0][0][0][0]: nested 9 levels deep; the limit is 8" in completed.stdout
    assert "summary: bad_json=1, out_of_range=1, over_limit=1, payload_too_large=1, valid=1" in completed.stdout
    # The limits are the profile's: with a shallower one the first line is refused too.
    tight = subprocess.run([str(telemetry), "--set", "schema.max_depth=1", "validate", str(payloads)],
                           capture_output=True, text=True, timeout=60)
    assert "line 1: over_limit location: nested 2 levels deep; the limit is 1" in tight.stdout
