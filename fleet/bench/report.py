"""What `telemetry bench pipeline` prints and writes: a table, a JSON file, PNG plots, BENCHMARKS.md.

Every rate is also given as a ratio to the limit and to the peer measured in the same run, on the
same broker and input: absolute figures on a shared 2-core box move with the neighbours, ratios
much less. The machine section says what the box was and how busy others kept it.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from fleet import text_table
from fleet.bench.checks import StageOutcome
from fleet.bench.state import state_markdown

HEADER = ("stage", "events/s", "× limit", "× peer", "outputs (got/expected)", "CPU s/1K events", "broker CPU s/1K", "peak RSS MiB",
          "others' load (cores)", "check")


def _ratio(value: float | None, base: float | None) -> str:
    return f"{value / base:.2f}" if value and base else "–"


def _base(outcomes: list[StageOutcome], stage: str) -> float | None:
    return next((o.rate for o in outcomes if o.stage == stage and o.ok), None)


def stage_cpu_per_1k(outcome: StageOutcome) -> float | None:
    """The stage's own processes (not the broker), over the drain window."""
    total = sum(entry["cpu_s_window"] for role, entry in outcome.processes.items() if role != "broker")
    return round(total / (outcome.events_in / 1000), 4) if outcome.events_in else None


def rows(outcomes: list[StageOutcome]) -> list[tuple[str, ...]]:
    limit, peer = _base(outcomes, "limit"), _base(outcomes, "peer")
    table = []
    for o in outcomes:
        stage_roles = {r: e for r, e in o.processes.items() if r != "broker"}
        table.append((
            o.stage, f"{o.rate:,.0f}" if o.rate else "–", _ratio(o.rate, limit), _ratio(o.rate, peer),
            " ".join(f"{name} {v['records']}/{v['expected']}" for name, v in o.outputs.items()),
            f"{stage_cpu_per_1k(o):.3f}" if stage_cpu_per_1k(o) is not None else "–",
            f"{o.cpu_per_1k('broker'):.3f}" if o.cpu_per_1k("broker") is not None else "–",
            # Helpers a client forks for a moment (a shell, a launcher) would only clutter the cell.
            " ".join(f"{r.split(' ')[0]} {e['peak_rss_mib']:.0f}" for r, e in sorted(stage_roles.items()) if e["peak_rss_mib"] >= 5),
            # Other tenants' CPU during the stage, in cores: how far this row's conditions were from an idle box.
            f"{o.foreign_cpu_s / o.wall_s:.2f}" if o.wall_s else "–",
            "OK" if o.ok else "MISMATCH",
        ))
    return table


def format_table(outcomes: list[StageOutcome]) -> str:
    return text_table.format_table(HEADER, rows(outcomes))


def markdown_table(outcomes: list[StageOutcome]) -> str:
    return text_table.markdown_table(HEADER, rows(outcomes))


def process_table(outcomes: list[StageOutcome]) -> str:
    """Markdown: every process of every stage, CPU s per 1K events (drain window and whole stage), peak RSS."""
    lines = ["| stage | process | CPU s/1K events (drain) | CPU s/1K events (whole stage, start-up incl.) | peak RSS MiB |",
             "| --- | --- | --- | --- | --- |"]
    for o in outcomes:
        for role in sorted(o.processes):
            lines.append(f"| {o.stage} | {role} | {o.cpu_per_1k(role) or 0:.3f} | {o.cpu_per_1k(role, window=False) or 0:.3f} "
                         f"| {o.processes[role]['peak_rss_mib']:.0f} |")
    return "\n".join(lines)


# ---- the machine ---------------------------------------------------------------------------------

def _first_line(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (result.stdout or result.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "?"


def machine() -> dict[str, Any]:
    cpu_model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
        mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kib = 0
    versions: dict[str, str] = {"python": sys.version.split()[0]}
    from importlib.metadata import PackageNotFoundError, version

    for package in ("apache-flink", "confluent-kafka", "orjson"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "?"
    try:
        from connectors import jars

        kafka_jar = next((p.name for p in jars.installed("kafka-broker").jars if p.name.startswith("kafka_2.13-")), "?")
        versions["kafka broker"] = kafka_jar.removeprefix("kafka_2.13-").removesuffix(".jar")
    except Exception:  # noqa: BLE001
        versions["kafka broker"] = "?"
    versions["java"] = _first_line(["java", "-version"])
    return {
        "nproc": os.cpu_count(), "memory_gib": round(mem_kib / 1024 / 1024, 1), "cpu_model": cpu_model,
        "kernel": platform.release(), "load_average_at_start": os.getloadavg(), "versions": versions,
    }


# ---- files ---------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, frozenset, set)):
        return [_plain(v) for v in (sorted(value) if isinstance(value, (set, frozenset)) else value)]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(result: dict[str, Any], folder: Path, host: dict[str, Any], command: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    outcomes: list[StageOutcome] = result["outcomes"]
    data = {
        "command": command, "machine": host, "run_id": result["run_id"], "peer_version": result["peer_version"],
        "plan": _plain(result["plan"]), "input": {k: v for k, v in _plain(result["input"]).items() if k != "vehicle_ids"},
        "stages": [{**_plain(o), "ok": o.ok, "stage_cpu_s_per_1k": stage_cpu_per_1k(o), "foreign_cpu_s": o.foreign_cpu_s}
                   for o in outcomes],
        "sustained": _plain(result.get("sustained")),
        "state": _plain(result.get("state")),
        "checkpoint_interval_ms": result.get("checkpoint_interval_ms"),
        "ratios": {o.stage: {"to_limit": _ratio(o.rate, _base(outcomes, "limit")), "to_peer": _ratio(o.rate, _base(outcomes, "peer"))}
                   for o in outcomes},
    }
    path = folder / f"pipeline-{result['run_id']}.json"
    path.write_text(json.dumps(data, indent=2, default=str))
    return path


def write_plots(outcomes: list[StageOutcome], folder: Path, stem: str, sustained: dict[str, Any] | None = None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    names = [o.stage for o in outcomes]
    paths = []

    fig, ax = plt.subplots(figsize=(9, 4.5))
    rates = [o.rate or 0 for o in outcomes]
    colours = ["#888888" if n == "limit" else "#d98c1f" if n == "peer" else "#2b6cb0" for n in names]
    bars = ax.barh(names[::-1], rates[::-1], color=colours[::-1])
    for bar, o in zip(bars, outcomes[::-1]):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {o.rate or 0:,.0f}" + ("" if o.ok else " MISMATCH"),
                va="center", fontsize=8)
    ax.set_xlabel("events/s drained (first to last output record)")
    ax.set_title("Drain rate, same broker and input, one run")
    paths.append(_save(fig, folder / f"{stem}-rates.png"))

    roles = sorted({r for o in outcomes for r in o.processes})
    fig, ax = plt.subplots(figsize=(9, 4.5))
    left = [0.0] * len(outcomes)
    for role in roles:
        values = [o.cpu_per_1k(role) or 0 for o in outcomes]
        ax.barh(names, values, left=left, label=role)
        left = [a + b for a, b in zip(left, values)]
    ax.invert_yaxis()
    ax.set_xlabel("CPU seconds per 1,000 events (drain window), by process")
    ax.set_title("CPU cost per event")
    ax.legend(fontsize=7, loc="lower right")
    paths.append(_save(fig, folder / f"{stem}-cpu.png"))

    steps = (sustained or {}).get("steps") or []
    if steps:
        fig, ax = plt.subplots(figsize=(9, 4.5))
        labels = [f"{s['rate']:,.0f}" for s in steps]
        ax.bar(labels, [s["max_lag"] for s in steps], color=["#2f855a" if s["bounded"] else "#c53030" for s in steps])
        ax.set_xlabel("target events/s (open loop, green: sustained)")
        ax.set_ylabel("max lag during the step (events)")
        ax.set_title("Sustained load: the pipeline's lag at rising rates")
        paths.append(_save(fig, folder / f"{stem}-sustained.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_markdown(path: Path, result: dict[str, Any], host: dict[str, Any], command: str, plots: list[Path], json_path: Path) -> Path:
    outcomes: list[StageOutcome] = result["outcomes"]
    data, plan = result["input"], result["plan"]
    limit, peer = _base(outcomes, "limit"), _base(outcomes, "peer")
    versions = ", ".join(f"{k} {v}" for k, v in host["versions"].items())
    foreign = sum(o.foreign_cpu_s for o in outcomes)
    wall = sum(o.wall_s for o in outcomes) or 1.0
    shared = foreign / wall > 0.1  # more than a tenth of a core used by others on average
    rel = lambda p: os.path.relpath(p, path.parent)  # noqa: E731
    lines = [
        "# Benchmarks: the telemetry pipeline against the Kafka limit and a peer",
        "",
        f"Written by `telemetry bench pipeline` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} (run `{result['run_id']}`). "
        "Reproduce with the command below; every figure is from that one run. How the jobs got here, the "
        "figures before the work, and where the time still goes: [docs/performance.md](docs/performance.md).",
        "",
        "```",
        command,
        "```",
        "",
        "## Machine",
        "",
        f"- {host['nproc']} cores ({host['cpu_model']}), {host['memory_gib']} GiB, Linux {host['kernel']}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in host['load_average_at_start'])}",
        f"- {versions}; peer: quixstreams {result['peer_version'] or '–'}",
        f"- one Kafka broker on 127.0.0.1 (KRaft), parallelism 1 unless the stage says otherwise, thread mode, "
        f"checkpoints every {_checkpoint_interval(result)} ms, exactly once; the peer commits as often",
    ]
    if shared:
        lines.append(f"- **a noisy, shared run**: other tenants used {foreign:,.0f} CPU s during the {wall:,.0f} s of the stages "
                     f"({foreign / wall:.2f} cores on average; per stage in the JSON, `foreign_cpu_s`). Ratios hold up better than absolute rates.")
    lines += [
        "",
        "## Input",
        "",
        f"{data.sent:,} records in one topic of {data.partitions} partitions: {plan.events:,} simulated events from "
        f"{plan.vehicles:,} vehicles in the seed's payload format (device_sim), {data.resends:,} of them re-sent "
        f"(exact repeats), {data.rejected:,} invalid, {len(data.alert_sentinels)} sentinel events; "
        f"{data.unique_valid:,} unique valid events every pipeline sink must hold, {data.alerts} alerts the alerts job must raise "
        f"(a calm fleet: the sentinels' low batteries only). Preloaded before any stage starts (at {data.produce_rate:,.0f} events/s).",
        "",
        "## Drain rates",
        "",
        "Rate = output records / (last − first output record), broker timestamps (LogAppendTime); the alerts job: input "
        "events over the window between its first and last sentinel alert. `× limit` and `× peer` are ratios to rows 1 and 2. "
        "CPU s/1K events: the stage's own processes over the drain window (broker apart); peak RSS per process.",
        "",
        markdown_table(outcomes),
        "",
    ]
    if limit and peer:
        lines += [f"The limit moved {limit:,.0f} events/s; the peer {peer:,.0f} events/s ({peer / limit:.2f} × the limit).", ""]
    problems = [p for o in outcomes for p in o.problems]
    if problems:
        lines += ["**Mismatches in this run** (their rates do not count):", "", *(f"- {p.splitlines()[0]}" for p in problems), ""]
    cluster = [o for o in outcomes if o.checkpoints]
    if cluster:
        lines += ["## Checkpoints on the standalone cluster (Flink REST)", "",
                  "| stage | completed | state size bytes (min/avg/max) | duration ms (min/avg/max) |", "| --- | --- | --- | --- |"]
        for o in cluster:
            size, duration = o.checkpoints.get("state_size_bytes", {}), o.checkpoints.get("duration_ms", {})
            lines.append(f"| {o.stage} | {o.checkpoints.get('completed')} | {size.get('min')}/{size.get('avg')}/{size.get('max')} "
                         f"| {duration.get('min')}/{duration.get('avg')}/{duration.get('max')} |")
        lines.append("")
    lines += targets_markdown(outcomes, peer)
    lines += sustained_markdown(result.get("sustained"), peer)
    lines += state_markdown(result.get("state"))
    lines += ["## CPU and memory per process", "", process_table(outcomes), "",
              "## Plots", "", *(f"![{p.stem}]({rel(p)})" for p in plots), "",
              f"Raw figures: [{rel(json_path)}]({rel(json_path)}) (the run's JSON, committed: `telemetry deploy generate` sizes the Kubernetes deployment from it, docs/kubernetes.md).", "",
              "## How it is measured", "",
              "- Each stage is a process (tree) of its own, started after the preload is complete, draining the whole topic "
              "from offset 0 into output topics of its own; the Flink jobs are bounded (`--stop latest`), the peer stops "
              "after the last input record, the passthrough at the end offsets.",
              "- Output topics use `message.timestamp.type=LogAppendTime`, so first and last output record times are the "
              "broker's, whatever the writer stamps. Exactly-once writers append before they commit: the window is when "
              "the work was done; visibility lags by up to one checkpoint.",
              "- CPU: utime+stime of every process from /proc/<pid>/stat, sampled every 0.25 s and interpolated at the "
              "window's ends (start-up is left out; the whole-stage figure keeps it). Peak RSS: VmHWM (the broker's is its "
              "lifetime peak). `foreign_cpu_s` in the JSON: machine CPU during the stage not used by the stage or the broker.",
              "- Every sink is read back and counted: telemetry-enriched (distinct (vehicle_id, timestamp)), DLQ, committed "
              "Bronze files, hot store rows, alert ids. A stage that did not output exactly the expected records is marked "
              "MISMATCH and the command exits 1.",
              "- Not measured here: the simulator's own CPU per event (`telemetry bench sim` does).", ""]
    path.write_text("\n".join(lines) + _other_benchmarks(path))
    return path


def _other_benchmarks(path: Path) -> str:
    """The sections other benchmarks keep in the same file (between their begin/end markers:
    `telemetry bench lake`, `telemetry bench live`): this one rewrites the rest, not theirs."""
    from fleet.bench import lakehouse as bench_lake
    from fleet.bench import live as bench_live

    old = path.read_text() if path.exists() else ""
    kept = ""
    for begin, end_marker in ((bench_lake.SECTION_BEGIN, bench_lake.SECTION_END), (bench_live.SECTION_BEGIN, bench_live.SECTION_END)):
        start, end = old.find(begin), old.find(end_marker)
        if 0 <= start < end:
            kept += "\n" + old[start:end + len(end_marker)] + "\n"
    return kept


def _checkpoint_interval(result: dict[str, Any]) -> int:
    return int(result.get("checkpoint_interval_ms", 0)) or 2000


def sustained_summary(sustained: dict[str, Any] | None) -> str:
    """What the command prints: the headline, then every sink's latency with the issue's targets."""
    if not sustained:
        return "sustained: not run"
    lines = [_sustained_headline(sustained)]
    for name, label, _expected, target in _latency_rows(sustained.get("latency") or {}):
        if name.startswith("ingest_to_enriched"):
            continue  # in the headline
        figures = sustained["latency"][name]
        verdict = "" if not target else f"; {target[0]}" if target[1] == "–" else f"; target {target[0]}: {'met' if target[1] == 'yes' else 'NOT met'}"
        lines.append(f"  ingest→{label}: p50 {figures['p50']} ms, p95 {figures['p95']} ms, p99 {figures['p99']} ms "
                     f"({figures['samples']} samples){verdict}")
    return "\n".join(lines)


# The latency step's paths as (JSON key, what the time runs to, expected count key, issue target key).
LATENCY_PATHS = (
    ("ingest_to_enriched_ms", "telemetry-enriched, visible to a read_committed consumer", "events_timed", None),
    ("ingest_to_enriched_append_ms", "telemetry-enriched, appended by the job (LogAppendTime)", "events_timed", None),
    ("ingest_to_hot_store_ms", "hot store row (SQLite, first seen by a read-only poll)", "events_timed", "ingest_to_hot_store_ms"),
    ("ingest_to_bronze_ms", "Bronze file committed (first seen by a directory listing)", "events_timed", "bronze"),
    ("ingest_to_alert_ms", "alert received (low-battery sentinels, read_committed)", "alert_sentinels", "ingest_to_alert_ms"),
    ("ingest_to_alert_append_ms", "alert appended by the alerts job (LogAppendTime)", "alert_sentinels", None),
)


def _target(latency: dict[str, Any], key: str | None, p99: float | None) -> tuple[str, str] | None:
    """(the target as text, met?) — Bronze has none: its files commit with a checkpoint."""
    if key is None:
        return None
    if key == "bronze":
        return (f"none: bound by the checkpoint interval ({latency.get('checkpoint_interval_ms', 0):,} ms)", "–")
    limit = (latency.get("targets_p99_ms") or {}).get(key)
    if limit is None:
        return None
    return (f"p99 ≤ {limit:,.0f} ms", "–" if p99 is None else "yes" if p99 <= limit else "no")


def _latency_rows(latency: dict[str, Any]) -> list[tuple[str, str, int | None, tuple[str, str] | None]]:
    """The paths this run measured (an older run's JSON has only the enriched ones)."""
    return [(name, label, latency.get(expected), _target(latency, target, latency[name].get("p99")))
            for name, label, expected, target in LATENCY_PATHS if latency.get(name)]


def latency_markdown(latency: dict[str, Any]) -> list[str]:
    if not latency or not (latency.get("ingest_to_hot_store_ms") or latency.get("ingest_to_alert_ms")):
        return []  # an older run: the headline says all it measured
    poll = latency.get("poll_ms") or {}
    lines = [f"Every event of the latency step at {latency['rate']:,.0f} events/s (sent at {latency['achieved_rate']:,.0f}/s), "
             "from its Kafka create time (`ingested_at_ms`) to each sink. The hot store and Bronze are polled read-only beside "
             f"the writers (every {poll.get('hot_store', '?')} ms and {poll.get('bronze', '?')} ms: a figure is up to one poll late). "
             f"The alerts job ran {latency.get('alerts_job', 'alongside the pipeline')}; {latency.get('alert_sentinels', 0)} "
             "low-battery sentinels were sent at known times spread over the step, each to raise exactly one alert "
             f"(alerts seen by kind: {', '.join(f'{k} {v}' for k, v in sorted((latency.get('alerts_by_kind') or {}).items())) or 'none'}). "
             "Bronze has no target: a Parquet file commits when a checkpoint completes, so the checkpoint interval sets it.", "",
             "| ingest → | p50 ms | p95 ms | p99 ms | max ms | samples | expected | issue target | met |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, label, expected, target in _latency_rows(latency):
        figures = latency[name]
        cells = [_ms_text(figures.get(q)) for q in ("p50", "p95", "p99", "max")]
        lines.append(f"| {label} | {' | '.join(cells)} | {figures.get('samples', 0):,} | {_count_text(expected)} "
                     f"| {target[0] if target else '–'} | {target[1] if target else '–'} |")
    lines += [*(f"- {note}" for note in latency.get("notes") or []), ""]
    return lines


def _ms_text(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def _sustained_headline(sustained: dict[str, Any]) -> str:
    best = sustained.get("max_sustained_rate")
    latency = (sustained.get("latency") or {}).get("ingest_to_enriched_ms") or {}
    text = f"sustained: highest rate with bounded lag {best:,.0f} events/s" if best else "sustained: no rate was sustained"
    if latency:
        text += (f"; at {sustained['latency']['rate']:,.0f}/s ingest→telemetry-enriched (visible to a consumer) p50 {latency['p50']} ms, "
                 f"p95 {latency['p95']} ms, p99 {latency['p99']} ms ({latency['samples']} events)")
        appended = sustained["latency"].get("ingest_to_enriched_append_ms")
        if appended:
            text += f"; ingest→appended by the job p50 {appended['p50']} ms, p95 {appended['p95']} ms, p99 {appended['p99']} ms"
    return text


def sustained_markdown(sustained: dict[str, Any] | None, peer: float | None) -> list[str]:
    if not sustained:
        return []
    lines = ["## Sustained open-loop load (pipeline, every sink, MiniCluster)", "",
             f"The simulator sends at each rate for {sustained.get('step_s', 0):g} s, open loop; a rate is sustained when the lag at "
             f"the step's end is at most {sustained.get('grace_s', 0):g} s worth of events (two checkpoints and 3 s: exactly-once "
             f"visibility) and every event of the step is in telemetry-enriched within {sustained.get('grace_s', 0):g} s after it.", "",
             "| target events/s | sent at | max lag (events) | lag at end | lag after grace | sustained |", "| --- | --- | --- | --- | --- | --- |"]
    for step in sustained.get("steps", []):
        lines.append(f"| {step['rate']:,.0f} | {step['achieved_rate']:,.0f} | {step['max_lag']:,} | {_count_text(step.get('lag_at_end'))} "
                     f"| {step['lag_after_grace']:,} "
                     f"| {'yes' if step['bounded'] else 'no'}{'' if step['generator_kept_up'] else ' (the simulator could not send faster)'} |")
    lines += ["", _sustained_headline(sustained) + (f" ({sustained['max_sustained_rate'] / peer:.2f} × the peer's drain rate)"
                                                    if sustained.get("max_sustained_rate") and peer else "") + ".", ""]
    lines += latency_markdown(sustained.get("latency") or {})
    for problem in sustained.get("problems", []):
        lines.append(f"- **{problem}**")
    return lines + [""]


# Issue F's targets, as ratios from this run: (stage, reference, factor) — reference "peer" or events/s.
TARGETS = (
    ("pipeline", "peer", 1.0, "full pipeline, one TaskManager (MiniCluster) ≥ 1.0 × the peer"),
    ("cluster-pipeline-1tm", "peer", 1.0, "full pipeline, one TaskManager (cluster) ≥ 1.0 × the peer"),
    ("enriched", "peer", 1.5, "enriched-only ≥ 1.5 × the peer"),
    ("alerts", "peer", 1.5, "alerts job, one TaskManager ≥ 1.5 × the peer"),
    ("cluster-pipeline-2tm", 50_000.0, 1.0, "full pipeline, two TaskManagers ≥ 50,000 events/s"),
)


def targets_markdown(outcomes: list[StageOutcome], peer: float | None) -> list[str]:
    by_stage = {o.stage: o for o in outcomes}
    lines = ["## Against issue F's targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    for stage, reference, factor, text in TARGETS:
        outcome = by_stage.get(stage)
        if outcome is None:
            continue
        base = peer if reference == "peer" else reference
        if not outcome.rate or not base or not outcome.ok:
            lines.append(f"| {text} | – | – |")
            continue
        measured = f"{outcome.rate / base:.2f} × the peer" if reference == "peer" else f"{outcome.rate:,.0f} events/s"
        lines.append(f"| {text} | {measured} | {'yes' if outcome.rate >= factor * base else 'no'} |")
    return lines + [""]


def load_result(path: Path) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A run's JSON back as the objects the writers take (to render BENCHMARKS.md again)."""
    from dataclasses import fields

    from fleet.bench.input import BenchInput
    from fleet.bench.pipeline import BenchPlan
    from fleet.bench.sustained import SustainedPlan

    data = json.loads(Path(path).read_text())
    names = {f.name for f in fields(StageOutcome)}
    outcomes = [StageOutcome(**{**{k: v for k, v in stage.items() if k in names}, "problems": tuple(stage["problems"])})
                for stage in data["stages"]]
    raw_input = data["input"]
    bench_input = BenchInput(**{**raw_input, "registry_file": Path(raw_input["registry_file"]), "vehicle_ids": (),
                                "alert_sentinels": frozenset(raw_input["alert_sentinels"])})
    raw_plan = dict(data["plan"])
    sustained = raw_plan.pop("sustained")
    state = raw_plan.pop("state", None)
    plan = BenchPlan(**{**raw_plan, "stages": tuple(raw_plan["stages"]),
                        "sustained": SustainedPlan(**{**sustained, "rates": tuple(sustained["rates"])}) if sustained else None,
                        "state": _state_plan(state) if state else None})
    result = {"run_id": data["run_id"], "plan": plan, "input": bench_input, "outcomes": outcomes, "peer_version": data["peer_version"],
              "sustained": data.get("sustained"), "state": data.get("state"),
              "checkpoint_interval_ms": data.get("checkpoint_interval_ms", 2000)}
    return result, data["machine"], data["command"]


def _state_plan(raw: dict[str, Any]) -> Any:
    from fleet.bench.state import StatePlan

    pairs = {k: tuple(tuple(p) for p in raw[k]) for k in ("job_settings", "cluster_settings") if k in raw}
    return StatePlan(**{**raw, "jobs": tuple(raw.get("jobs", ())), **pairs})


def _count_text(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"
