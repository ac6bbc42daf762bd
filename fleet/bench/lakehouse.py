"""`telemetry bench lake`: Bronze → Silver → Gold on a generated hour, in rows per second per core.

The input is an hour of Bronze made the way the pipeline makes it: the fleet simulator at the
seed's rates (`device_sim.report_rates`: 5 Hz in a trip, 1 Hz, 0.1 Hz parked) rendered to the seed
payload, enriched and flattened by `udfs.enrich` (as `jobs/pipeline_batch.py` does), written as
Snappy Parquet files that straddle the hour's edges. The seed's volume is 50,000 vehicles at
~1 event/s, 180M rows an hour; the benchmark scales the fleet down (`--rows`), not the rates, so a
vehicle-hour looks like a real one. On top: re-sent copies (a replay, ingested minutes later) and a
few rows failing each range check.

Rows per second per core = Bronze rows of the hour / CPU seconds of this process (user + system,
all threads) while the step runs; wall seconds are printed beside it. CPU seconds are what the
step costs whatever else runs on the machine (a shared box: wall time moves with the neighbours).

The peer, measured in the same run on the same files, is the seed's Glue job written plainly on
the same engine: DuckDB reads the hour, a window keeps one copy per (vehicle_id, timestamp), the
checks run as separate queries, `deltalake.write_deltalake` writes Silver with an overwrite
predicate; Gold is one GROUP BY written the same way. That is how `lake/` was first written, so the
gap to it is what the tuned formulation buys on this box; a different engine (Spark, Polars) would
measure the engine as much as the formulation.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from udfs.enrich import BRONZE_COLUMNS

HOUR0_MS = 1_767_225_600_000  # 2026-01-01T00:00Z: the generated hour
EDGE_MS = 90_000  # the fleet runs this long before and after the hour: files straddle its edges
EVENTS_PER_VEHICLE_S = 1.04  # the seed's rate mix, measured on the simulator (5 Hz / 1 Hz / 0.1 Hz)
RESENT_SHARE = 0.01  # copies replayed into Bronze (a re-run backfill, a late spool), ingested later
BAD_EVERY = 10_000  # one row in this many fails a range check
FILE_ROWS = 250_000
INPUT_VERSION = 2  # bump when the generator changes: cached inputs of another version are not reused

_ARROW = {"bigint": pa.int64(), "double": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}
BRONZE_SCHEMA = pa.schema([(name, _ARROW[kind]) for name, kind in BRONZE_COLUMNS])


@dataclass(frozen=True)
class LakeInput:
    folder: str
    rows_requested: int
    vehicles: int
    files: int
    bronze_rows: int  # every row written, all hours, copies included
    hour_rows: int  # rows whose event time is in the hour, copies included
    resent: int  # re-sent copies written (any hour)
    bad: int  # rows made to fail a check
    generate_cpu_s: float


def vehicles_for(rows: int) -> int:
    return max(1, round(rows / (3600 * EVENTS_PER_VEHICLE_S)))


def _write_file(path: Path, rows: list[tuple]) -> None:
    columns = list(zip(*rows))
    table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(columns, BRONZE_SCHEMA)], schema=BRONZE_SCHEMA)
    pq.write_table(table, path, compression="snappy")


def _bad(row: tuple, which: int) -> tuple:
    names = [name for name, _ in BRONZE_COLUMNS]
    values = list(row)
    field, value = (("battery_percent", 130.0), ("latitude", 91.5), ("longitude", -200.0), ("battery_percent", None))[which % 4]
    values[names.index(field)] = value
    return tuple(values)


def _generate_part(folder: str, part: int, vehicles: int, first_vehicle_id: int, seed: int) -> dict:
    from device_sim.fleet_model import FleetSpec
    from device_sim.rate_fleet import RateModeFleet
    from udfs.enrich import bronze_values, enrich_in_place
    from udfs.telemetry_schema import parse_timestamp_ms

    started = time.process_time()
    rng = random.Random(seed * 1_000 + part)
    fleet = RateModeFleet(FleetSpec(vehicles=vehicles, seed=seed * 1_000 + part, first_vehicle_id=first_vehicle_id,
                                    start_ms=HOUR0_MS - EDGE_MS))
    out = Path(folder)
    rows: list[tuple] = []
    replay: list[tuple] = []
    counts = {"files": 0, "bronze_rows": 0, "hour_rows": 0, "resent": 0, "bad": 0}
    for event in fleet.stream(until_ms=HOUR0_MS + 3_600_000 + EDGE_MS):
        event_ms = parse_timestamp_ms(event["timestamp"])
        ingested = event_ms + 20 + int(rng.expovariate(1 / 150))  # MQTT → bridge → Kafka
        row = bronze_values(enrich_in_place(event, "scooter" if event["vehicle_id"] % 3 else "e-bike", ingested), event_ms)
        if rng.random() < RESENT_SHARE:
            # The same event again, through the pipeline later (ingested minutes after the first copy).
            replay.append(row[:-1] + (ingested + rng.randrange(300_000, 1_800_000),))
        if rng.randrange(BAD_EVERY) == 0:
            row = _bad(row, counts["bad"])
            counts["bad"] += 1
        rows.append(row)
        if len(rows) >= FILE_ROWS:
            _write_file(out / f"part-{part}-{counts['files']:04d}.parquet", rows)
            counts["files"] += 1
            counts["bronze_rows"] += len(rows)
            counts["hour_rows"] += sum(1 for r in rows if HOUR0_MS <= r[2] < HOUR0_MS + 3_600_000)
            rows = []
    for batch, name in ((rows, f"part-{part}-{counts['files']:04d}.parquet"), (replay, f"replay-{part}.parquet")):
        if batch:
            _write_file(out / name, batch)
            counts["files"] += 1
            counts["bronze_rows"] += len(batch)
            counts["hour_rows"] += sum(1 for r in batch if HOUR0_MS <= r[2] < HOUR0_MS + 3_600_000)
    counts["resent"] = len(replay)
    counts["cpu_s"] = time.process_time() - started
    return counts


def generate_input(base: Path, rows: int, *, seed: int = 7, parts: int | None = None) -> LakeInput:
    """An hour of Bronze for `rows` rows in the hour (about: the simulator decides), cached under
    `base` by size and seed (generation costs ~13 µs a row; a second run reuses the files)."""
    folder = base / f"rows{rows}-seed{seed}-v{INPUT_VERSION}"
    manifest = folder / "manifest.json"
    if manifest.exists():  # complete (written last); the folder may have been moved
        return LakeInput(**{**json.loads(manifest.read_text()), "folder": str(folder / "bronze")})
    shutil.rmtree(folder, ignore_errors=True)
    bronze = folder / "bronze"
    bronze.mkdir(parents=True)
    vehicles = vehicles_for(rows)
    parts = parts or (1 if rows < 500_000 else min(4, os.cpu_count() or 1))
    share = [vehicles // parts + (1 if i < vehicles % parts else 0) for i in range(parts)]
    firsts = [10_000 + sum(share[:i]) for i in range(parts)]
    jobs = [(str(bronze), i, share[i], firsts[i], seed) for i in range(parts) if share[i]]
    if len(jobs) == 1:
        results = [_generate_part(*jobs[0])]
    else:
        with ProcessPoolExecutor(len(jobs)) as pool:
            results = list(pool.map(_generate_part, *zip(*jobs)))
    total = {key: sum(r[key] for r in results) for key in results[0]}
    made = LakeInput(str(bronze), rows, vehicles, total["files"], total["bronze_rows"], total["hour_rows"],
                     total["resent"], total["bad"], round(total["cpu_s"], 2))
    manifest.write_text(json.dumps(asdict(made), indent=2))
    return made


# ---- the peer: the seed's Glue job written plainly (how lake/ was first written) -----------------

def peer_silver_hour(bronze_files: list[str], silver_uri: str, rejected_uri: str, hour_ms: int) -> dict:
    """Read the hour, keep one copy per (vehicle_id, timestamp) by a window, run the checks as
    queries, sort, and let `write_deltalake` write both tables with an overwrite predicate."""
    import pyarrow.dataset as ds
    from deltalake import write_deltalake

    from lake.engine import connect
    from lake.silver import CHECKS

    valid = " AND ".join(f"coalesce({check}, false)" for _, check in CHECKS)
    reason = "CASE " + " ".join(f"WHEN NOT coalesce({check}, false) THEN '{name}'" for name, check in CHECKS) + " END"
    con = connect()
    con.register("bronze", ds.dataset(bronze_files, format="parquet"))
    con.execute(f"CREATE TEMP VIEW hour_rows AS SELECT * FROM bronze "
                f"WHERE event_time_ms >= {hour_ms} AND event_time_ms < {hour_ms + 3_600_000}")
    bronze_rows = con.sql("SELECT count(*) FROM hour_rows").fetchone()[0]
    extra = """, make_timestamptz(ingested_at_ms * 1000) AS ingestion_time,
               strftime(make_timestamptz(event_time_ms * 1000), '%Y-%m-%d') AS date,
               hour(make_timestamptz(event_time_ms * 1000))::INTEGER AS hour"""
    silver = con.sql(f"""
        SELECT * EXCLUDE (copy){extra} FROM (
            SELECT *, row_number() OVER (PARTITION BY vehicle_id, "timestamp" ORDER BY ingested_at_ms, event_time_ms) AS copy
            FROM hour_rows WHERE {valid})
        WHERE copy = 1 ORDER BY vehicle_id, event_time_ms""").fetch_arrow_table()
    rejected = con.sql(f"SELECT *, {reason} AS reason{extra} FROM hour_rows WHERE NOT ({valid})").fetch_arrow_table()
    moment = time.gmtime(hour_ms // 1000)
    predicate = f"date = '{time.strftime('%Y-%m-%d', moment)}' AND hour = {moment.tm_hour}"
    write_deltalake(silver_uri, silver, mode="overwrite", predicate=predicate, partition_by=["date"])
    write_deltalake(rejected_uri, rejected, mode="overwrite", predicate=predicate, partition_by=["date"])
    return {"bronze_rows": bronze_rows, "silver_rows": silver.num_rows, "rejected": rejected.num_rows}


# ---- the run -------------------------------------------------------------------------------------

TARGET_ROWS_PER_CORE_S = 2_000_000  # the target: rows/s per core, Silver and Gold each
SMOKE_ROWS = 50_000
DEFAULT_ROWS = 5_000_000
SECTION_BEGIN = "<!-- telemetry bench lake: begin -->"
SECTION_END = "<!-- telemetry bench lake: end -->"


def _measured(step, rows_of) -> tuple[object, dict]:
    load = os.getloadavg()[0]
    cpu, wall = time.process_time(), time.perf_counter()
    result = step()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rows = rows_of(result)
    return result, {"rows": rows, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                    "rows_per_core_s": round(rows / cpu) if cpu > 0 else None,
                    "rows_per_s": round(rows / wall) if wall > 0 else None, "load_1min_at_start": load}


def run_lake_benchmark(bench_dir: Path, rows: int, *, seed: int = 7, keep: bool = False) -> dict:
    from deltalake import DeltaTable

    from lake import gold, silver
    from lake.bronze_index import list_bronze

    data = generate_input(bench_dir / "lake-input", rows, seed=seed)
    run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    work = bench_dir / f"lake-work-{run_id}"
    tuned = silver.LakePaths(data.folder, str(work / "silver"), str(work / "silver_rejected"), str(work / "ledger"))
    peer = {name: str(work / "peer" / name) for name in ("silver", "silver_rejected", "gold")}
    date = time.strftime("%Y-%m-%d", time.gmtime(HOUR0_MS // 1000))
    filesystem, files = list_bronze(data.folder)
    holding = [f.path for f in files if HOUR0_MS in f.hours()]
    steps = {}
    try:
        # The peer first, then lake/: whichever runs second finds the Bronze files in the page cache.
        peer_silver, steps["peer_silver"] = _measured(
            lambda: peer_silver_hour(holding, peer["silver"], peer["silver_rejected"], HOUR0_MS), lambda r: r["bronze_rows"])
        # The hour itself, as `silver.update` builds each hour (the footer listing is done above for both).
        hour, steps["silver"] = _measured(lambda: silver.build_hour(tuned, HOUR0_MS, files, filesystem), lambda r: r.bronze_rows)
        # Gold's peer is the same GROUP BY over the peer's Silver: lake/gold.py is that plain query
        # (already past the target), so this pair shows what Silver's file layout does to Gold.
        peer_gold, steps["peer_gold"] = _measured(lambda: gold.build_day(peer["silver"], peer["gold"], date), lambda r: r.silver_rows)
        day, steps["gold"] = _measured(lambda: gold.build_day(tuned.silver, str(work / "gold"), date), lambda r: r.silver_rows)
        counts = {
            "bronze_rows_in_hour": hour.bronze_rows, "silver_rows": hour.silver_rows, "duplicates": hour.duplicates,
            "rejected": hour.rejected, "gold_rows": day.gold_rows, "gold_readings": day.silver_rows,
            "silver_rows_read_back": DeltaTable(tuned.silver).to_pyarrow_dataset().count_rows(filter=_hour0_filter()),
            "rejected_rows_read_back": DeltaTable(tuned.silver_rejected).to_pyarrow_dataset().count_rows(filter=_hour0_filter()),
            "peer": {"silver_rows": peer_silver["silver_rows"], "rejected": peer_silver["rejected"],
                     "gold_rows": peer_gold.gold_rows},
        }
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    problems = []
    if counts["peer"]["silver_rows"] != hour.silver_rows or counts["peer"]["rejected"] != hour.rejected:
        problems.append(f"Silver differs from the peer: {hour.silver_rows}/{hour.rejected} vs "
                        f"{counts['peer']['silver_rows']}/{counts['peer']['rejected']} (rows/rejected)")
    if counts["peer"]["gold_rows"] != day.gold_rows:
        problems.append(f"Gold differs from the peer: {day.gold_rows} vs {counts['peer']['gold_rows']} rows")
    if counts["silver_rows_read_back"] != hour.silver_rows:
        problems.append(f"Silver read back {counts['silver_rows_read_back']} rows, wrote {hour.silver_rows}")
    for step in ("silver", "gold"):
        steps[step]["to_target"] = _ratio(steps[step]["rows_per_core_s"], TARGET_ROWS_PER_CORE_S)
        steps[step]["to_peer"] = _ratio(steps[step]["rows_per_core_s"], steps[f"peer_{step}"]["rows_per_core_s"])
    return {"run_id": run_id, "input": asdict(data), "steps": steps, "counts": counts, "problems": problems,
            "target_rows_per_core_s": TARGET_ROWS_PER_CORE_S, "work_dir": str(work) if keep else None}


def _hour0_filter():
    import pyarrow.dataset as ds

    return (ds.field("date") == time.strftime("%Y-%m-%d", time.gmtime(HOUR0_MS // 1000))) & (ds.field("hour") == 0)


def _ratio(value: float | None, base: float | None) -> float | None:
    return round(value / base, 2) if value and base else None


# ---- what it prints and writes -------------------------------------------------------------------

_LABELS = {"peer_silver": "Silver, peer", "silver": "Silver (lake/)", "peer_gold": "Gold, peer", "gold": "Gold (lake/)"}


def table_rows(result: dict) -> list[tuple[str, ...]]:
    rows = []
    for key in ("peer_silver", "silver", "peer_gold", "gold"):
        s = result["steps"][key]
        rows.append((_LABELS[key], f"{s['rows']:,}", f"{s['wall_s']:.2f}", f"{s['cpu_s']:.2f}", f"{s['rows_per_core_s']:,}",
                     f"{s['rows_per_core_s'] / result['target_rows_per_core_s']:.2f}",
                     f"{s['to_peer']:.2f}" if s.get("to_peer") else "1.00"))
    return rows


HEADER = ("step", "rows", "wall s", "CPU s", "rows/s/core", "× target (2M)", "× peer")


def format_table(result: dict) -> str:
    rows = [HEADER, *table_rows(result)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows)


def write_json(result: dict, bench_dir: Path, host: dict, command: str) -> Path:
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = bench_dir / f"lake-{result['run_id']}.json"
    path.write_text(json.dumps({"command": command, "machine": host, **result}, indent=2, default=str))
    return path


def markdown_section(result: dict, host: dict, command: str, json_path: Path) -> str:
    data, counts, steps = result["input"], result["counts"], result["steps"]
    met = lambda key: "yes" if steps[key]["rows_per_core_s"] >= result["target_rows_per_core_s"] else "no"  # noqa: E731
    lines = [
        SECTION_BEGIN,
        "## Lakehouse: Bronze → Silver → Gold (`telemetry bench lake`)",
        "",
        f"Written by `telemetry bench lake` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (run `{result['run_id']}`); "
        "every figure is from that one run. This section is rewritten by that command only (between its markers).",
        "",
        "```", command, "```", "",
        f"Input: one generated event hour of Bronze, {data['bronze_rows']:,} rows in {data['files']} Snappy Parquet files "
        f"({data['hour_rows']:,} in the hour; the files straddle its edges): {data['vehicles']:,} simulated vehicles at the "
        "seed's rates (device_sim rate modes → udfs.enrich Bronze rows, as the pipeline writes them) — the seed's 50,000 "
        f"vehicles make 180M rows an hour, so this is the fleet scaled down, not the rates; {data['resent']:,} re-sent copies "
        f"ingested minutes later, {data['bad']} rows failing a range check. Machine: {host['nproc']} cores ({host['cpu_model']}), "
        f"shared; 1-min load average at the start of each step in the JSON.",
        "",
        "Rows/s/core = the step's input rows (Silver: Bronze rows of the hour, copies included; Gold: Silver rows of the date) "
        "/ CPU seconds of the process (user + system, all threads) during the step. The peer, same run, same files: the seed's "
        "Glue job written plainly on the same engine (DuckDB window dedup, checks as queries, sort, `write_deltalake` with an "
        "overwrite predicate) — how `lake/` was first written; Gold's peer is the same query over the peer's Silver.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "| " + " | ".join("---" for _ in HEADER) + " |",
        *("| " + " | ".join(r) + " |" for r in table_rows(result)),
        "",
        "| target | measured | met |", "| --- | --- | --- |",
        f"| Silver ≥ 2,000,000 rows/s/core | {steps['silver']['rows_per_core_s']:,} | {met('silver')} |",
        f"| Gold ≥ 2,000,000 rows/s/core | {steps['gold']['rows_per_core_s']:,} | {met('gold')} |",
        "",
        f"Rows out: Silver {counts['silver_rows']:,} ({counts['duplicates']:,} duplicates dropped, {counts['rejected']:,} rejected), "
        f"Gold {counts['gold_rows']:,} vehicle-hours; the peer's counts are equal"
        + ("." if not result["problems"] else f" — **no**: {'; '.join(result['problems'])}."),
        f"Raw figures: `{json_path}` (not committed).",
        SECTION_END,
    ]
    return "\n".join(lines)


def write_markdown_section(path: Path, section: str) -> Path:
    return write_marked_section(path, section, SECTION_BEGIN, SECTION_END)


def write_marked_section(path: Path, section: str, begin: str, end: str) -> Path:
    """Put a benchmark's section in BENCHMARKS.md: between its markers if there, else at the end;
    the rest of the file (written by `telemetry bench pipeline`, other benchmarks) is left as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + section + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)
    return path


def _host() -> dict:
    from importlib.metadata import version

    from fleet.bench.report import machine

    host = machine()
    host["versions"] = {"python": host["versions"]["python"],
                        **{p: version(p) for p in ("duckdb", "deltalake", "pyarrow", "numpy")}}
    return host


def cmd_bench_lake(args, config) -> int:
    from infra.flink_cluster import PROJECT_ROOT

    bench_dir = Path(config.infra.run_dir) / "bench"
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        markdown = Path(args.markdown) if args.markdown else PROJECT_ROOT / "BENCHMARKS.md"
        section = markdown_section(saved, saved["machine"], saved["command"], Path(args.render))
        print(f"markdown: {write_markdown_section(markdown, section)}")
        return 0
    rows = args.rows or (SMOKE_ROWS if args.smoke else DEFAULT_ROWS)
    command = "telemetry bench lake" + (" --smoke" if args.smoke else "") + (f" --rows {args.rows}" if args.rows else "")
    host = _host()
    result = run_lake_benchmark(bench_dir, rows, seed=args.seed, keep=args.keep)
    print(format_table(result))
    json_path = write_json(result, bench_dir, host, command)
    print(f"\nJSON: {json_path}")
    markdown = Path(args.markdown) if args.markdown else (None if args.smoke else PROJECT_ROOT / "BENCHMARKS.md")
    if markdown:
        print(f"markdown: {write_markdown_section(markdown, markdown_section(result, host, command, json_path))}")
    if result["problems"]:
        print("\nMISMATCH:\n  " + "\n  ".join(result["problems"]))
        return 1
    return 0


def add_parser(bench_cmd, add, config_of) -> None:
    """`telemetry bench lake` in the bench subcommands (fleet/cli/app.py)."""
    sub = add(bench_cmd, "lake", lambda a: cmd_bench_lake(a, config_of(a)),
              "Bronze→Silver→Gold rows/s per core on a generated hour, against the 2M target and a plain peer, same run")
    sub.add_argument("--rows", type=int, default=None, help=f"rows in the generated hour (default {DEFAULT_ROWS:,}; about: the simulator decides)")
    sub.add_argument("--smoke", action="store_true", help=f"{SMOKE_ROWS:,} rows, no BENCHMARKS.md: for CI")
    sub.add_argument("--seed", type=int, default=7, help="seed of the generated telemetry (default 7)")
    sub.add_argument("--keep", action="store_true", help="keep the tables written (under <run_dir>/bench/lake-work-*)")
    sub.add_argument("--markdown", default=None, help="where to write the section (default BENCHMARKS.md; none with --smoke)")
    sub.add_argument("--render", default=None, metavar="JSON", help="run nothing: write the BENCHMARKS.md section from a run's JSON")


def main(argv: list[str] | None = None) -> int:
    """`python -m fleet.bench.lakehouse [--profile P] [--set k=v …] [--smoke | --rows N] …`: the command
    without fleet/cli/app.py (the same options as `telemetry [--profile P] [--set k=v] bench lake …`)."""
    import argparse

    from fleet.config import load_config

    parser = argparse.ArgumentParser(prog="python -m fleet.bench.lakehouse")
    parser.add_argument("--profile", default="local")
    parser.add_argument("--set", action="append", default=[])
    commands = parser.add_subparsers(dest="action", required=True)

    def add(parent, name, func, text):
        sub = parent.add_parser(name, help=text, description=text)
        sub.set_defaults(func=func)
        return sub

    add_parser(commands, add, lambda a: load_config(a.profile, a.set))
    argv = list(sys.argv[1:] if argv is None else argv)
    split = next((i for i, a in enumerate(argv) if a not in ("--profile", "--set") and not a.startswith("--set=")
                  and (i == 0 or argv[i - 1] not in ("--profile", "--set"))), len(argv))
    arguments = parser.parse_args([*argv[:split], "lake", *argv[split:]])
    return arguments.func(arguments)


if __name__ == "__main__":
    sys.exit(main())
