"""Micro-benchmark of the per-event pure-Python functions in udfs/: µs per event on seed events.

    .venv/bin/python scripts/bench_udfs.py                      # this working tree
    .venv/bin/python scripts/bench_udfs.py --compare HEAD       # and a git revision, interleaved

Events come from `device_sim.fleet_model.Fleet` (the seed payload, ~450 bytes of JSON each), split
into batches of `--batch` events. Each function runs over every batch `--repeat` times; a batch's
figure is its minimum over the runs (the least disturbed one), and the printed µs/event is the sum
of those minima over all events. Times are the thread's CPU time (`time.thread_time_ns`), not wall
time: the machine is shared, and being descheduled is not the function's cost.

With `--compare REV` the three modules (telemetry_schema, geohash, enrich) as they are at REV are
loaded next to the working tree's (from `git show`, under a private package name) and both are timed
run by run, so a change in load hits both alike.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import random
import subprocess
import sys
import tempfile
import time
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import orjson  # noqa: E402

from device_sim.fleet_model import Fleet, FleetSpec  # noqa: E402

MODULES = ("geohash", "telemetry_schema", "enrich")
NOW_MS = 1_736_951_538_000  # 2025-01-15T14:32:18Z: the simulated hour ends here


def load_revision(rev: str) -> types.SimpleNamespace:
    """The three udfs modules as they are at `rev`, importing each other, under a private name."""
    package = "udfs_at_" + "".join(c if c.isalnum() else "_" for c in rev)
    directory = tempfile.mkdtemp(prefix="bench_udfs_")
    os.makedirs(os.path.join(directory, package))
    open(os.path.join(directory, package, "__init__.py"), "w").close()
    for name in MODULES:
        source = subprocess.run(
            ["git", "-C", ROOT, "show", f"{rev}:udfs/{name}.py"], check=True, capture_output=True, text=True
        ).stdout
        for other in MODULES:
            source = source.replace(f"udfs.{other}", f"{package}.{other}")
        with open(os.path.join(directory, package, f"{name}.py"), "w") as handle:
            handle.write(source)
    sys.path.insert(0, directory)
    return types.SimpleNamespace(**{name: importlib.import_module(f"{package}.{name}") for name in MODULES})


def working_tree() -> types.SimpleNamespace:
    return types.SimpleNamespace(**{name: importlib.import_module(f"udfs.{name}") for name in MODULES})


def sparse(event: dict) -> dict:
    """A valid event without the optional sections an edge device may leave out."""
    copy = orjson.loads(orjson.dumps(event))
    del copy["motion"], copy["diagnostics"]
    copy["location"].pop("accuracy")
    return copy


DEFECTS = (
    ("battery", "percent", 101), ("location", "lat", "50.1"), ("vehicle_status", "locked", 1),
    ("diagnostics", "odometer_km", -1), ("motion", "heading", None), (None, "timestamp", "2025-01-15"),
)


def invalid(event: dict, index: int) -> dict:
    """The event with one of a few typical defects (DLQ traffic)."""
    copy = orjson.loads(orjson.dumps(event))
    section, name, value = DEFECTS[index % len(DEFECTS)]
    (copy if section is None else copy[section])[name] = value
    return copy


def cases(mods: types.SimpleNamespace, batches: list[list[dict]]) -> dict:
    """name → (prepare() → per-batch inputs, run(batch input)); run is what is timed."""
    schema, geohash, enrich = mods.telemetry_schema, mods.geohash, mods.enrich
    policy = schema.DEFAULT_POLICY
    loads, dumps = orjson.loads, orjson.dumps
    validate, parse, parse_ts, format_ts = schema.validate, schema.parse, schema.parse_timestamp_ms, schema.format_timestamp_ms
    zone, enrich_copy, bronze = geohash.zone_id, enrich.enrich, enrich.bronze_values

    rng = random.Random(5)

    def fixed(make):
        inputs = [make(batch) for batch in batches]
        return lambda: inputs

    def run_validate(events):
        for e in events:
            validate(e, policy, NOW_MS)

    def run_parse(raws):
        for r in raws:
            parse(r, policy, NOW_MS)

    def run_parse_ts(texts):
        for t in texts:
            parse_ts(t)

    def run_format_ts(times):
        for t in times:
            format_ts(t)

    def run_zone(points):
        for lat, lon in points:
            zone(lat, lon)

    def run_enrich(events):
        for e in events:
            enrich_copy(e, "scooter", NOW_MS)

    def run_bronze(pairs):
        for e, t in pairs:
            bronze(e, t)

    def run_loads(raws):
        for r in raws:
            loads(r)

    def run_dumps(events):
        for e in events:
            dumps(e)

    raw = fixed(lambda b: [dumps(e) for e in b])
    table = {
        "telemetry_schema.validate": (fixed(lambda b: b), run_validate),
        "telemetry_schema.validate, sparse events": (fixed(lambda b: [sparse(e) for e in b]), run_validate),
        "telemetry_schema.validate, invalid events": (fixed(lambda b: [invalid(e, i) for i, e in enumerate(b)]), run_validate),
        "telemetry_schema.parse (loads+validate)": (raw, run_parse),
        "telemetry_schema.parse_timestamp_ms": (fixed(lambda b: [e["timestamp"] for e in b]), run_parse_ts),
        # Backfill-like: every timestamp from another second (and mostly another day) of 2020-2030,
        # new ones for every run, so the fast path's memo tables rarely help.
        "telemetry_schema.parse_timestamp_ms, new seconds": (
            lambda: [[format_ts(rng.randrange(1_577_836_800_000, 1_893_456_000_000)) for _ in b] for b in batches],
            run_parse_ts,
        ),
        "telemetry_schema.format_timestamp_ms": (fixed(lambda b: [parse_ts(e["timestamp"]) for e in b]), run_format_ts),
        "geohash.zone_id": (fixed(lambda b: [(e["location"]["lat"], e["location"]["lon"]) for e in b]), run_zone),
        "enrich.enrich": (fixed(lambda b: b), run_enrich),
    }
    in_place = getattr(enrich, "enrich_in_place", None)
    if in_place is not None:
        def run_in_place(events):
            for e in events:
                in_place(e, "scooter", NOW_MS)

        # It mutates: fresh decoded copies for every run, decoded before the clock starts.
        table["enrich.enrich_in_place"] = (lambda: [[loads(dumps(e)) for e in b] for b in batches], run_in_place)
    table["enrich.bronze_values"] = (
        fixed(lambda b: [(enrich_copy(e, "scooter", NOW_MS), parse_ts(e["timestamp"])) for e in b]), run_bronze
    )
    table["orjson.loads (reference)"] = (raw, run_loads)
    table["orjson.dumps of enriched (reference)"] = (fixed(lambda b: [enrich_copy(e, "scooter", NOW_MS) for e in b]), run_dumps)
    return table


def time_batches(case) -> list[int]:
    """This thread's CPU time per batch, in ns (not wall time: on a shared machine we get preempted)."""
    prepare, run = case
    inputs = prepare()
    clock = time.thread_time_ns
    out = []
    gc.disable()
    try:
        for batch in inputs:
            start = clock()
            run(batch)
            out.append(clock() - start)
    finally:
        gc.enable()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=250, help="events per timed batch")
    parser.add_argument("--repeat", type=int, default=30, help="runs per function; each batch's minimum counts")
    parser.add_argument("--compare", metavar="REV", help="also time the modules as they are at this git revision")
    parser.add_argument("--only", help="time only the functions whose name contains this")
    args = parser.parse_args(argv)

    fleet = Fleet(FleetSpec(vehicles=500, seed=7, start_ms=NOW_MS - 3_600_000))
    events = list(fleet.take(args.events))
    size = sum(len(orjson.dumps(e)) for e in events) / len(events)
    batches = [events[i:i + args.batch] for i in range(0, len(events), args.batch)]

    variants = {"now": working_tree()}
    if args.compare:
        variants[args.compare] = load_revision(args.compare)
    tables = {label: cases(mods, batches) for label, mods in variants.items()}
    names = [n for n in tables["now"] if not args.only or args.only in n]
    best: dict[str, dict[str, list[int]]] = {label: {} for label in tables}
    for _ in range(args.repeat):
        for name in names:
            for label, table in tables.items():
                if name in table:
                    times = time_batches(table[name])
                    kept = best[label].setdefault(name, times)
                    best[label][name] = [min(a, b) for a, b in zip(kept, times)]
    per_event = {label: {n: sum(t) / len(events) / 1000 for n, t in found.items()} for label, found in best.items()}

    print(
        f"{len(events)} simulated seed events (~{size:.0f} bytes of JSON each) in batches of {args.batch}; "
        f"µs/event, each batch's minimum of {args.repeat} runs (thread CPU time)"
    )
    header = f"{'function':52s}" + "".join(f"{label:>12s}" for label in tables)
    print(header + (f"{'speed-up':>10s}" if args.compare else ""))
    for name in names:
        line = f"{name:52s}"
        for label in tables:
            value = per_event[label].get(name)
            line += f"{value:12.2f}" if value is not None else f"{'-':>12s}"
        if args.compare:
            old = per_event[args.compare].get(name)
            note = ""
            if old is None and name == "enrich.enrich_in_place":
                old, note = per_event[args.compare].get("enrich.enrich"), " (vs enrich)"
            line += f"{old / per_event['now'][name]:9.2f}x{note}" if old else ""
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
