"""`telemetry bench live`: the whole live platform (`telemetry live`) at several fleet sizes, each
on servers of its own, measured from its status file — what `make run` can carry on this machine.

For each fleet size: time from the command to a steady status, then over a measured window after a
warm-up: events/s offered by the fleet (simulator, acknowledged by Mosquitto), ingested (on
vehicle-telemetry) and processed (visible on telemetry-enriched), how the pipeline's and the alerts
job's lag moved, fleet→enriched and ingest→alert latency, and CPU per process. A size is
*sustained* when the jobs keep up: the pipeline's lag at the end is at most `_LAG_LIMIT_S` seconds
of input and grew by less than `_GROWTH_LIMIT` of the input over the window, and enriched keeps
within 10 % of ingest. The comparison is inside each run (offered vs ingested vs processed): there
is no peer for a whole platform. JSON under <run_dir>/bench, a BENCHMARKS.md section between its
markers.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fleet.bench.cpu import machine_busy_seconds

SECTION_BEGIN = "<!-- telemetry bench live: begin -->"
SECTION_END = "<!-- telemetry bench live: end -->"
_LAG_LIMIT_S = 10.0
_GROWTH_LIMIT = 0.05
_PORT_KEYS = ["infra.kafka_port", "infra.kafka_controller_port", "infra.mqtt_port", "infra.moto_port", "live.map_port",
              "live.metrics_port", "live.sim_metrics_port", "live.bridge_metrics_port", "live.pipeline_metrics_port",
              "live.alerts_metrics_port", "live.pipeline_rest_port", "live.alerts_rest_port"]


def isolated_overrides(run_dir: Path) -> list[str]:
    """--set values for a `telemetry live` of its own: its run folder, every port free."""
    from infra.process import free_port

    return [f"infra.run_dir={run_dir}", *(f"{key}={free_port()}" for key in _PORT_KEYS)]


def interrupt(proc: subprocess.Popen, timeout_s: float) -> int | None:
    """SIGINT (what Ctrl-C sends) and wait for the exit code; a platform still up after `timeout_s`
    is killed, its whole process group, and None returned: never one left running behind a run."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return None


def read_status(path: Path) -> dict[str, Any]:
    """A `telemetry live` status file, or {} while there is none (or none that parses)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def run_level(vehicles: int, *, seconds: float, warmup_s: float, folder: Path, bridges: int = 1) -> dict[str, Any]:
    """One fleet size, start to stop; the figures of its measured window."""
    run_dir = folder / f"live-{vehicles}"
    telemetry = str(Path(sys.executable).with_name("telemetry"))
    argv = [telemetry, *(x for o in isolated_overrides(run_dir) for x in ("--set", o)), "live", "--vehicles", str(vehicles),
            "--bridges", str(bridges), "--plain", "--print-every-s", "30", "--no-map"]
    status_file = run_dir / "live" / "status.json"
    log = folder / f"live-{vehicles}.log"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    samples: list[tuple[float, float, dict[str, Any]]] = []  # (monotonic, machine busy s, snapshot)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        steady_at = None
        window_start = None
        try:
            while proc.poll() is None:
                time.sleep(2.0)
                snapshot = read_status(status_file)
                if not snapshot:
                    continue
                if steady_at is None and snapshot.get("steady"):
                    steady_at = time.monotonic() - started
                if window_start is None and snapshot.get("uptime_s", 0) >= warmup_s:
                    window_start = time.monotonic()
                if window_start is not None:
                    samples.append((time.monotonic(), machine_busy_seconds(), snapshot))
                    if time.monotonic() - window_start >= seconds:
                        break
                if time.monotonic() - started > warmup_s + seconds + 600:
                    break  # never reached the window: report what there is
        finally:
            if proc.poll() is None:
                interrupt(proc, 180)
    final = read_status(status_file)
    return {"vehicles": vehicles, "bridges": bridges, "exit_code": proc.returncode, "log": str(log),
            "steady_after_s": None if steady_at is None else round(steady_at, 1),
            "stopped": final.get("stopped"), **_window(samples)}


def _window(samples: list[tuple[float, float, dict[str, Any]]]) -> dict[str, Any]:
    if len(samples) < 2:
        return {"window_s": 0, "sustained": False, "problem": "no measured window (the platform never ran long enough)"}
    (t0, busy0, first), (t1, busy1, last) = samples[0], samples[-1]
    dt = (last.get("time", t1) - first.get("time", t0)) or (t1 - t0)  # the collector's clock: when each was sampled
    totals0 = {s["key"]: s["total"] for s in first["stages"]}
    totals1 = {s["key"]: s["total"] for s in last["stages"]}
    rates = {k: (None if totals0.get(k) is None or totals1.get(k) is None else round((totals1[k] - totals0[k]) / dt, 1))
             for k in totals1}
    cpu0 = {p["name"].split(" ")[0]: p["cpu_s"] for p in first["processes"] if p.get("cpu_s") is not None}
    cpu1 = {p["name"].split(" ")[0]: p["cpu_s"] for p in last["processes"] if p.get("cpu_s") is not None}
    cores = {name: round(max(0.0, cpu1[name] - cpu0.get(name, 0.0)) / dt, 3) for name in cpu1}
    lag = {job: (first["lag"][job]["events"], last["lag"][job]["events"]) for job in last["lag"]}
    ingest = rates.get("telemetry") or 0.0
    growth = {job: None if a is None or b is None else round((b - a) / dt, 1) for job, (a, b) in lag.items()}
    end_lag_s = {job: None if b is None or ingest <= 0 else round(b / ingest, 1) for job, (_a, b) in lag.items()}
    ok_pipeline = (end_lag_s["pipeline"] is not None and end_lag_s["pipeline"] <= _LAG_LIMIT_S
                   and (growth["pipeline"] or 0.0) <= _GROWTH_LIMIT * ingest)
    ok_enriched = ingest > 0 and (rates.get("enriched") or 0.0) >= 0.9 * ingest
    ok_alerts = end_lag_s["alerts"] is not None and end_lag_s["alerts"] <= _LAG_LIMIT_S
    ours = sum(cores.values())
    return {
        "window_s": round(dt, 1), "rates": rates, "lag_events": {j: {"start": a, "end": b} for j, (a, b) in lag.items()},
        "lag_growth_events_per_s": growth, "lag_end_s": end_lag_s,
        "latency_ms": last["latency_ms"], "cores": cores, "cores_ours": round(ours, 2),
        "cores_machine": round((busy1 - busy0) / dt, 2), "cores_others": round(max(0.0, (busy1 - busy0) / dt - ours), 2),
        "duplicates_dropped": last.get("duplicates_dropped"), "dlq_by_reason": last.get("dlq_by_reason"),
        "alerts_by_kind": last.get("alerts_by_kind"), "bronze": last.get("bronze"),
        "sustained": bool(ok_pipeline and ok_enriched and ok_alerts),
    }


def format_table(levels: list[dict[str, Any]]) -> str:
    head = ("vehicles | offered ev/s | ingested | enriched | lag end (s, pipeline/alerts) | lag growth ev/s | "
            "fleet→enriched p50/p95 s | ingest→alert p95 s | cores ours/others | steady after | sustained")
    rows = [head, " | ".join("---" for _ in head.split(" | "))]
    for level in levels:
        if not level.get("rates"):
            rows.append(f"{level['vehicles']:,} | {level.get('problem', '–')} |  |  |  |  |  |  |  |  | no")
            continue
        r, lat = level["rates"], level["latency_ms"]
        e2e, alert = lat.get("event_to_enriched") or {}, lat.get("ingest_to_alert") or {}
        rows.append(" | ".join([
            f"{level['vehicles']:,}", f"{r.get('fleet') or 0:,.0f}", f"{r.get('telemetry') or 0:,.0f}", f"{r.get('enriched') or 0:,.0f}",
            f"{level['lag_end_s']['pipeline']} / {level['lag_end_s']['alerts']}",
            f"{level['lag_growth_events_per_s']['pipeline']} / {level['lag_growth_events_per_s']['alerts']}",
            f"{e2e.get('p50', 0) / 1000:.2f} / {e2e.get('p95', 0) / 1000:.2f}" if e2e else "–",
            f"{alert['p95'] / 1000:.2f}" if alert else "–",
            f"{level['cores_ours']} / {level['cores_others']}",
            "–" if level["steady_after_s"] is None else f"{level['steady_after_s']:.0f} s",
            "yes" if level["sustained"] else "no",
        ]))
    return "\n".join(rows)


def markdown_section(result: dict[str, Any], json_path: Path) -> str:
    levels = result["levels"]
    best = max((lv["vehicles"] for lv in levels if lv.get("sustained")), default=None)
    cores = "\n".join(
        f"- {lv['vehicles']:,} vehicles: " + ", ".join(f"{name} {c:.2f}" for name, c in sorted(lv.get("cores", {}).items(), key=lambda kv: -kv[1]))
        for lv in levels if lv.get("cores"))
    host = result["machine"]
    return "\n".join([
        SECTION_BEGIN,
        "## The live platform (`telemetry live`, everything on this machine)",
        "",
        f"Written by `{result['command']}` on {result['date']}; JSON `{json_path.name}`. Each fleet size runs the whole "
        "`make run` platform on servers of its own: the simulator over MQTT (QoS 1), Mosquitto, one bridge, Kafka, the pipeline "
        "and the alerts job on a MiniCluster each, the status collector. Measured over "
        f"{result['seconds']:g} s after {result['warmup_s']:g} s of warm-up. Sustained: the pipeline's lag ends under "
        f"{_LAG_LIMIT_S:g} s of input and grows by less than {_GROWTH_LIMIT:.0%} of it, enriched within 10 % of ingest, the "
        "alerts job's lag under 10 s. There is no peer for a whole platform: offered, ingested and processed are compared inside each run.",
        "",
        f"Machine: {host['nproc']} cores, load average at start {', '.join(f'{x:.2f}' for x in host['load_average_at_start'])}; "
        "`cores ours` is every process of the platform (children, servers, `telemetry live` itself); `cores others` what other tenants used meanwhile (machine busy minus ours).",
        "",
        format_table(levels),
        "",
        "Steady after: seconds from the command to a steady status (servers and both jobs' start included). A negative lag "
        "growth with enriched above ingest means the jobs were still catching up in the window with what the fleet sent "
        "while they started: the window then shows their spare capacity, and the lag at its end whether they got there.",
        "",
        f"**Largest sustained fleet: {best:,} vehicles.**" if best else "**No fleet size was sustained.**",
        "",
        "CPU by process (cores, over the window):",
        "",
        cores,
        SECTION_END,
    ])


def cmd_bench_live(args: Any, config: Any) -> int:
    from fleet.bench.report import machine
    from infra.flink_cluster import PROJECT_ROOT

    sizes = [int(v) for v in args.vehicles.split(",") if v.strip()]
    bench_dir = Path(config.infra.run_dir) / "bench"
    stamp = time.strftime("%Y%m%dT%H%M%S")
    folder = bench_dir / f"live-{stamp}"
    command = f"telemetry bench live --vehicles {args.vehicles} --seconds {args.seconds:g} --warmup {args.warmup:g}"
    host = machine()
    levels = []
    for vehicles in sizes:
        print(f"fleet of {vehicles:,}: starting (log {folder / f'live-{vehicles}.log'})", flush=True)
        level = run_level(vehicles, seconds=args.seconds, warmup_s=args.warmup, folder=folder, bridges=args.bridges)
        levels.append(level)
        print(format_table([level]).splitlines()[-1], flush=True)
    result = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": host,
              "seconds": args.seconds, "warmup_s": args.warmup, "levels": levels}
    json_path = bench_dir / f"live-{stamp}.json"
    json_path.write_text(json.dumps(result, indent=1, default=str))
    print("\n" + format_table(levels))
    print(f"\nJSON: {json_path}")
    if not args.no_markdown:
        markdown = Path(args.markdown) if args.markdown else PROJECT_ROOT / "BENCHMARKS.md"
        print(f"markdown: {write_section(markdown, markdown_section(result, json_path))}")
    return 0 if all(lv.get("exit_code") == 0 for lv in levels) else 1


def write_section(path: Path, section: str) -> Path:
    """This benchmark's section in BENCHMARKS.md, between its markers (the rest left as it is)."""
    from fleet.bench.lakehouse import write_marked_section

    return write_marked_section(path, section, SECTION_BEGIN, SECTION_END)


def add_parser(bench_cmd: Any, add: Any, config_of: Any) -> None:
    sub = add(bench_cmd, "live", lambda a: cmd_bench_live(a, config_of(a)),
              "the whole live platform at several fleet sizes: offered/ingested/processed events/s, lag, latency, CPU")
    sub.add_argument("--vehicles", default="1000,2000,3000", help="fleet sizes, comma-separated (default 1000,2000,3000)")
    sub.add_argument("--seconds", type=float, default=120.0, help="measured window per size (default 120)")
    sub.add_argument("--warmup", type=float, default=60.0, help="seconds after the jobs are up before measuring (default 60)")
    sub.add_argument("--bridges", type=int, default=1, help="MQTT→Kafka bridges in one share group (default 1)")
    sub.add_argument("--markdown", default=None, help="where to write the section (default BENCHMARKS.md)")
    sub.add_argument("--no-markdown", action="store_true", help="JSON only")
