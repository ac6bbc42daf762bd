"""`telemetry lake …` end to end on generated Bronze under a run folder: the commands find the
tables from config, build them, erase, apply retention and show the audit log."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from deltalake import DeltaTable

from fleet.cli.app import main
from tests.unit import lake_expected
from tests.unit.test_lake_silver import HOUR0, _row, _write

HOUR_MS = 3_600_000


def test_lake_commands_build_erase_retain_and_audit(tmp_path, capsys):
    rng = random.Random(9)
    run_dir = tmp_path / "run"
    rows = [dict(_row(rng, v, HOUR0 + h * HOUR_MS + i * 2000, HOUR0 + h * HOUR_MS + i * 2000 + 50), trip_id=f"trip-{v}-{h}")
            for v in (1, 2, 3) for h in (0, 1, 25) for i in range(100)]
    for h in (0, 1, 25):  # one file an event hour, as the pipeline's Bronze sink writes them
        _write(run_dir / "lake" / "bronze" / "telemetry" / f"h{h}", "part-1.parquet", [r for r in rows if r["trip_id"].endswith(f"-{h}")])
    cli = ["--set", f"infra.run_dir={run_dir}"]

    assert main([*cli, "lake", "silver"]) == 0
    out = capsys.readouterr().out
    assert "2026-01-01T00" in out and "2026-01-02T01" in out and "3 hour(s) built" in out
    silver_uri = run_dir / "lake" / "silver" / "telemetry"
    assert DeltaTable(str(silver_uri)).to_pyarrow_table().num_rows == len(lake_expected.silver_rows(rows))
    assert main([*cli, "lake", "silver"]) == 0 and "nothing to build" in capsys.readouterr().out

    assert main([*cli, "lake", "compact", "--older-than-min", "0"]) == 0  # one file a folder: nothing to pair
    assert "nothing to merge" in capsys.readouterr().out
    assert main([*cli, "lake", "gold", "--all"]) == 0
    assert "2026-01-01" in capsys.readouterr().out
    gold_rows = DeltaTable(str(run_dir / "lake" / "gold" / "vehicle_hourly")).to_pyarrow_table().num_rows
    assert gold_rows == len(lake_expected.gold_rows(list(lake_expected.silver_rows(rows).values())))
    assert main([*cli, "lake", "gold"]) == 0 and "nothing to build" in capsys.readouterr().out  # Gold is up to date
    late = [dict(_row(rng, 7, HOUR0 + 25 * HOUR_MS + 5, HOUR0 + 30 * HOUR_MS), trip_id="trip-7-25")]
    _write(run_dir / "lake" / "bronze" / "telemetry" / "h25", "part-late.parquet", late)
    assert main([*cli, "lake", "silver"]) == 0
    capsys.readouterr()
    assert main([*cli, "lake", "gold"]) == 0  # only the date whose Silver changed
    out = capsys.readouterr().out
    assert "2026-01-02" in out and "2026-01-01" not in out and "1 date(s)" in out
    rows.extend(late)
    assert main([*cli, "lake", "gold", "--date", "2030-01-01"]) == 2
    assert "Silver holds no rows of 2030-01-01" in capsys.readouterr().err

    assert main([*cli, "lake", "erase", "--trip", "trip-2-1", "--dry-run"]) == 0
    assert "would remove" in capsys.readouterr().out
    assert main([*cli, "lake", "erase", "--trip", "trip-2-1"]) == 0
    out = capsys.readouterr().out
    assert "erase trip trip-2-1" in out and "vehicle-telemetry 7 d" in out
    left = DeltaTable(str(silver_uri)).to_pyarrow_table(columns=["trip_id"]).column("trip_id").to_pylist()
    assert "trip-2-1" not in left and len(left) == len(lake_expected.silver_rows(rows)) - 100
    assert main([*cli, "lake", "erase", "--vehicle", "1", "--since", "2026-01-02T00:00", "--until", "2026-01-01T00:00"]) == 2
    assert "empty range" in capsys.readouterr().err

    # As of 2026-01-04 with Silver kept 2 days: 2026-01-01 is expired, 2026-01-02 stays.
    now = datetime(2026, 1, 4, 6, tzinfo=UTC).isoformat()
    assert main([*cli, "--set", "lake.silver_retention_days=2", "lake", "retention", "--now", now, "--lake-only"]) == 0
    assert "silver" in capsys.readouterr().out
    assert {r["date"] for r in DeltaTable(str(silver_uri)).to_pyarrow_table(columns=["date"]).to_pylist()} == {"2026-01-02"}

    assert main([*cli, "lake", "audit"]) == 0
    audit_out = capsys.readouterr().out
    assert "erasure" in audit_out and "retention" in audit_out and "trip-2-1" in audit_out
    assert main([*cli, "lake", "tables"]) == 0
    assert "version" in capsys.readouterr().out


def test_lake_commands_json(tmp_path, capsys):
    """--json: one document on stdout, the same figures the tables hold (counted independently)."""
    import json

    rng = random.Random(4)
    run_dir = tmp_path / "run"
    rows = [dict(_row(rng, v, HOUR0 + h * HOUR_MS + i * 2000, HOUR0 + h * HOUR_MS + i * 2000 + 50),
                 trip_id=f"trip-{v}-{h}")
            for v in (1, 2) for h in (0, 25) for i in range(50)]
    for h in (0, 25):
        hour_rows = [r for r in rows if r["trip_id"].endswith(f"-{h}")]
        _write(run_dir / "lake" / "bronze" / "telemetry" / f"h{h}", "part-1.parquet", hour_rows)
    cli = ["--set", f"infra.run_dir={run_dir}"]

    def run(*argv: str) -> dict:
        assert main([*cli, "lake", *argv, "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    silver = run("silver")
    expected_silver = lake_expected.silver_rows(rows)
    assert [h["hour"] for h in silver["hours"]] == ["2026-01-01T00", "2026-01-02T01"]
    assert sum(h["bronze_rows"] for h in silver["hours"]) == len(rows)
    assert sum(h["silver_rows"] for h in silver["hours"]) == len(expected_silver)
    gold = run("gold", "--all")
    assert [d["date"] for d in gold["dates"]] == ["2026-01-01", "2026-01-02"]
    expected_gold = lake_expected.gold_rows(list(expected_silver.values()))
    assert sum(d["gold_rows"] for d in gold["dates"]) == len(expected_gold)
    erased = run("erase", "--trip", "trip-2-0", "--dry-run", "--lake-only")
    assert erased["dry_run"] is True and erased["subject"].startswith("trip trip-2-0")
    assert {r["layer"]: r["rows"] for r in erased["removals"]}.get("bronze") == 50
    tables = {t["table"]: t for t in run("tables")["tables"]}
    assert tables["bronze"]["rows"] == len(rows) and tables["bronze"]["files"] == 2
    assert tables["silver"]["rows"] == len(expected_silver) and tables["silver"]["version"] is not None
    assert run("audit")["rows"] == []  # a dry run audits nothing
