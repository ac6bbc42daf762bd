"""State and checkpoints with a large fleet's state, for `telemetry bench pipeline` (issue F: "state
and checkpoint size and checkpoint duration with 100K vehicles' state", "TaskManager RSS"; targets
"100K vehicles' state: TaskManager RSS ≤ 2 GiB, checkpoint ≤ 1 s").

  1. preload a topic with `events_per_vehicle` events from each of `vehicles` distinct simulated
     vehicles (fleet.bench.input: one event per vehicle per tick, so every vehicle has exactly that
     many; a calm fleet plus the alert sentinels);
  2. on a standalone cluster (infra.flink_cluster), the pipeline (every sink) and the alerts job run
     unbounded (fleet.bench.flink_job --unbounded), each on a TaskManager of its own with one slot:
     that TaskManager is the job's, as a FlinkDeployment's would be (deploy/flink-k8s), so its
     RSS is the job's and not the sum of two;
  3. every completed checkpoint is collected from Flink's REST API while they drain (under load) and
     after both have committed offsets up to the topic's end (consumer lag 0) while idle, until
     `idle_checkpoints` more completed; then per job: checkpoint end-to-end duration, checkpointed
     size (what the checkpoint wrote: for RocksDB incremental checkpoints only the new files) and
     state size (the full state it stands for), the TaskManager JVM's peak (VmHWM) and current RSS
     from /proc (in thread mode the JVM embeds the jobs' Python interpreter: its memory is in the
     RSS too), heap and managed memory from the TaskManager's metrics, and where the slowest
     checkpoint's time went per vertex; the sinks are counted.

Why `events_per_vehicle` = 5 by default: one event gives a vehicle its alert state (jobs/alert_batch.py)
and its dedup state (udfs/dedup.py), but a dedup state of one time is not a typical one; five make
every vehicle's dedup value a real sorted set, and the alert state passes its first-event path.
The full dedup horizon (128 times, ~1 KiB per vehicle) would need 12.8M events at 100K vehicles,
about half an hour of the pipeline on one TaskManager; 500K events drain in a minute or two. What
a full horizon adds is the dedup values' growth, reported as an estimate beside the figures.

No assertions on time: it measures; a sink that did not get what the input says is a problem.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from connectors.kafka_clients import end_offsets
from fleet.bench.cpu import memory_kib
from fleet.bench.input import BenchInput, InputSpec, preload
from fleet.bench.output import event_identity, read_topic
from fleet.config import PlatformConfig
from infra.flink_cluster import PROJECT_ROOT, TERMINAL_STATES, FlinkCluster

TARGET_RSS_MIB = 2048.0  # "TaskManager RSS ≤ 2 GiB"
TARGET_CHECKPOINT_MS = 1000.0  # "checkpoint ≤ 1 s"
DEDUP_HORIZON = 128  # udfs/dedup.py DEFAULT_CAPACITY (the profile's dedup_recent_events)
BYTES_PER_DEDUP_TIME = 10.5  # checkpointed, per kept event time (see _full_horizon_estimate)
JOBS = ("pipeline", "alerts")
# Metrics of a TaskManager that cost one REST call together (Flink's TaskManager metric names).
TM_METRICS = {
    "heap_used_mib": "Status.JVM.Memory.Heap.Used",
    "heap_max_mib": "Status.JVM.Memory.Heap.Max",
    "non_heap_used_mib": "Status.JVM.Memory.NonHeap.Used",
    "direct_used_mib": "Status.JVM.Memory.Direct.MemoryUsed",
    "managed_used_mib": "Status.Flink.Memory.Managed.Used",
    "managed_total_mib": "Status.Flink.Memory.Managed.Total",
}


@dataclass(frozen=True)
class StatePlan:
    vehicles: int = 100_000
    events_per_vehicle: int = 5  # see the module docstring
    idle_checkpoints: int = 3  # completed after lag 0, while nothing arrives
    jobs: tuple[str, ...] = JOBS
    drain_timeout_s: float = 1_500.0  # submit to the last idle checkpoint, both jobs
    taskmanager_memory: str = "2048m"  # taskmanager.memory.process.size: the cluster helper's default
    # Overrides for the jobs (--set, e.g. flink.state_backend=rocksdb) and lines for the cluster's
    # config.yaml (e.g. execution.checkpointing.incremental=true): to measure a setting, not to change one.
    job_settings: tuple[tuple[str, str], ...] = ()
    cluster_settings: tuple[tuple[str, str], ...] = ()
    seed: int = 42

    def __post_init__(self) -> None:
        if self.vehicles < 1 or self.events_per_vehicle < 1:
            raise ValueError("state plan: vehicles and events_per_vehicle must be >= 1")
        unknown = [j for j in self.jobs if j not in JOBS]
        if unknown:
            raise ValueError(f"state plan: unknown job(s) {', '.join(unknown)}; known: {', '.join(JOBS)}")


SMOKE_STATE = StatePlan(vehicles=2_000, idle_checkpoints=2, drain_timeout_s=300.0)
# The production deployments' backend (deploy/flink-k8s): to measure, e.g. replace(plan, **ROCKSDB_INCREMENTAL).
ROCKSDB_INCREMENTAL: dict[str, Any] = {"job_settings": (("flink.state_backend", "rocksdb"),),
                                       "cluster_settings": (("execution.checkpointing.incremental", "true"),)}


class _Cluster(FlinkCluster):
    """The cluster helper's configuration plus the plan's extra lines (appended: later keys win)."""

    def __init__(self, *args: Any, extra: dict[str, str], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.extra = extra

    def write_config(self) -> None:
        super().write_config()
        with (self.conf_dir / "config.yaml").open("a") as handle:
            handle.writelines(f"{key}: {value}\n" for key, value in self.extra.items())


# ---- /proc and REST readings ---------------------------------------------------------------------

def rss_mib(pid: int) -> dict[str, float | None]:
    """Peak (VmHWM) and current (VmRSS) resident memory of `pid`, MiB."""
    kib = memory_kib(pid)
    return {key: None if kib.get(line) is None else round(kib[line] / 1024, 1)
            for key, line in (("peak_rss_mib", "VmHWM"), ("rss_mib", "VmRSS"))}


def taskmanager_memory(cluster: FlinkCluster, tm_id: str) -> dict[str, float | None]:
    """Heap, non-heap, direct and managed memory as the TaskManager reports them, MiB (None: not exposed)."""
    names = ",".join(TM_METRICS.values())
    values = {m["id"]: m.get("value") for m in cluster._get(f"/taskmanagers/{tm_id}/metrics?get={names}")}
    return {key: round(float(values[name]) / 2**20, 1) if values.get(name) not in (None, "") else None
            for key, name in TM_METRICS.items()}


def checkpoint_config(cluster: FlinkCluster, job_id: str) -> dict[str, Any]:
    """What the job checkpoints with, as Flink says (backend, unaligned, …): proof of what was measured."""
    try:
        info = cluster._get(f"/jobs/{job_id}/checkpoints/config")
    except (OSError, ValueError) as exc:
        return {"error": str(exc)}
    return {k: info.get(k) for k in ("mode", "interval", "state_backend", "checkpoint_storage", "unaligned_checkpoints",
                                     "state_changelog_enabled") if k in info}


def checkpoint_breakdown(cluster: FlinkCluster, job_id: str, checkpoint_id: int) -> list[dict[str, Any]]:
    """Where one checkpoint's time went, per vertex (slowest subtask): how long the barrier took to
    reach it (start delay: backpressure ahead of it), alignment, and its own sync and async parts."""
    names = {v["id"]: v["name"] for v in cluster.job(job_id)["vertices"]}
    found = []
    for vertex_id, name in names.items():
        try:
            detail = cluster._get(f"/jobs/{job_id}/checkpoints/details/{checkpoint_id}/subtasks/{vertex_id}")
        except (OSError, ValueError):
            continue  # gone from the history already, or the vertex had finished
        subtasks = [t for t in detail.get("subtasks", []) if t.get("status") == "completed"]
        if not subtasks:
            continue
        pick = lambda f, subtasks=subtasks: max((f(t) or 0) for t in subtasks)  # noqa: E731 - read in this iteration only
        found.append({"vertex": name[:80], "end_to_end_ms": pick(lambda t: t.get("end_to_end_duration")),
                      "start_delay_ms": pick(lambda t: t.get("start_delay")),
                      "alignment_ms": pick(lambda t: (t.get("alignment") or {}).get("duration")),
                      "sync_ms": pick(lambda t: (t.get("checkpoint") or {}).get("sync")),
                      "async_ms": pick(lambda t: (t.get("checkpoint") or {}).get("async"))})
    return sorted(found, key=lambda v: v["end_to_end_ms"])


def checkpoint_record(entry: dict[str, Any]) -> dict[str, Any]:
    """One checkpoint of `/jobs/<id>/checkpoints` history, in this report's words."""
    return {"id": entry["id"], "status": entry.get("status"), "trigger_ms": entry.get("trigger_timestamp"),
            "duration_ms": entry.get("end_to_end_duration"), "checkpointed_bytes": entry.get("checkpointed_size"),
            "state_bytes": entry.get("state_size")}


def summarise(checkpoints: list[dict[str, Any]]) -> dict[str, Any]:
    """Latest, average and maximum of duration and both sizes over completed checkpoints (by id)."""
    done = sorted((c for c in checkpoints if c["status"] == "COMPLETED"), key=lambda c: c["id"])
    if not done:
        return {"count": 0}
    summary: dict[str, Any] = {"count": len(done), "latest": {k: done[-1][k] for k in ("id", "duration_ms", "checkpointed_bytes", "state_bytes")}}
    for key in ("duration_ms", "checkpointed_bytes", "state_bytes"):
        values = [c[key] for c in done if c[key] is not None]
        summary[key] = {"avg": round(sum(values) / len(values), 1) if values else None, "max": max(values, default=None)}
    return summary


# ---- one job: its TaskManager, its checkpoints, its lag ------------------------------------------

@dataclass
class _Job:
    kind: str
    job_id: str
    tm_id: str
    tm_pid: int
    group: str
    bootstrap: str
    started: float  # wall clock, s, at submit
    checkpoints: dict[int, dict[str, Any]] = field(default_factory=dict)
    failed_checkpoints: int = 0
    processed_at_ms: int | None = None  # when its committed offsets first reached the topic's end
    slowest: dict[str, Any] = field(default_factory=dict)  # the slowest completed checkpoint, per vertex
    consumer: Any = None

    def poll(self, cluster: FlinkCluster, topic: str, end: dict[int, int]) -> None:
        state = cluster.job_state(self.job_id)
        if state in TERMINAL_STATES:
            raise RuntimeError(f"{self.kind}: the job is {state}; exceptions: {cluster.exceptions(self.job_id)[:3]}")
        stats = cluster._get(f"/jobs/{self.job_id}/checkpoints")
        self.failed_checkpoints = int(stats.get("counts", {}).get("failed", 0))
        # The history holds the last few only (web.checkpoints.history): polled often enough, every
        # checkpoint is seen once it is final.
        for entry in stats.get("history", []):
            if entry.get("status") in ("COMPLETED", "FAILED") and entry["id"] not in self.checkpoints:
                record = self.checkpoints[entry["id"]] = checkpoint_record(entry)
                if record["status"] == "COMPLETED" and (record["duration_ms"] or 0) > (self.slowest.get("duration_ms") or 0):
                    # Read now: Flink keeps a checkpoint's details only while it is in the history.
                    self.slowest = {"id": record["id"], "duration_ms": record["duration_ms"],
                                    "vertices": checkpoint_breakdown(cluster, self.job_id, record["id"])}
        if self.processed_at_ms is None and self.lag(topic, end) == 0:
            self.processed_at_ms = int(time.time() * 1000)

    def lag(self, topic: str, end: dict[int, int]) -> int:
        """Records of `topic` past the offsets the job committed (on checkpoint completion)."""
        if self.consumer is None:
            self.consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": self.group, "enable.auto.commit": False})
        committed = {tp.partition: tp.offset for tp in self.consumer.committed([TopicPartition(topic, p) for p in end], timeout=10)}
        return sum(max(0, high - max(0, committed.get(p, -1))) for p, high in end.items())

    def idle(self) -> list[dict[str, Any]]:
        """Checkpoints triggered once everything was processed: the state at rest."""
        at = self.processed_at_ms
        return [] if at is None else [c for c in self.checkpoints.values() if (c["trigger_ms"] or 0) >= at]

    def under_load(self) -> list[dict[str, Any]]:
        at = self.processed_at_ms or 2**62
        return [c for c in self.checkpoints.values() if (c["trigger_ms"] or 0) < at]

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()
            self.consumer = None


def _start_taskmanagers(cluster: FlinkCluster, count: int) -> dict[str, int]:
    """{TaskManager id: pid}, started one by one so that each id is known to be that process's."""
    found: dict[str, int] = {}
    for index in range(count):
        before = {tm["id"] for tm in cluster.taskmanagers()}
        pid = cluster.start_taskmanager(index)
        found[next(iter({tm["id"] for tm in cluster.taskmanagers()} - before))] = pid
    return found


def _submit_all(cluster: FlinkCluster, settings_of: dict[str, dict[str, str]], profile: str) -> dict[str, str]:
    """{kind: job id}: the `flink run` clients at the same time (each is a JVM and a Python planning
    the job, half a minute on a busy box; one after the other doubles the smoke run)."""
    def submit(kind: str) -> str:
        args = ["--kind", kind, "--unbounded", "--profile", profile,
                *(a for k, v in settings_of[kind].items() for a in ("--set", f"{k}={v}"))]
        return cluster.submit(PROJECT_ROOT / "fleet" / "bench" / "flink_job.py", args)

    with ThreadPoolExecutor(len(settings_of)) as pool:
        futures = {kind: pool.submit(submit, kind) for kind in settings_of}
        return {kind: future.result() for kind, future in futures.items()}


def _taskmanager_of(cluster: FlinkCluster, job_id: str) -> str:
    """The one TaskManager all of the job's tasks run on (one slot each: a job, a TaskManager)."""
    ids = {tm.get("taskmanager-id") for vertex in cluster.job(job_id)["vertices"]
           for tm in cluster._get(f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")["taskmanagers"]}
    if len(ids) != 1:
        raise RuntimeError(f"job {job_id} runs on {len(ids)} TaskManagers ({', '.join(map(str, ids))}), expected one")
    return str(ids.pop())


def _outputs(bootstrap: str, kind: str, tag: str, data: BenchInput) -> dict[str, dict[str, int | None]]:
    """What the job's Kafka outputs hold (read_committed) against what the input says they must."""
    if kind == "alerts":
        contents = read_topic(bootstrap, f"{tag}-alerts")
        return {"alerts": {"records": contents.records, "expected": data.alerts}}
    contents = read_topic(bootstrap, f"{tag}-enriched", identity=event_identity)
    return {"enriched": {"records": contents.records, "distinct": contents.distinct, "expected": data.unique_valid}}


def _job_result(cluster: FlinkCluster, job: _Job, outputs: dict[str, Any]) -> dict[str, Any]:
    try:
        memory = taskmanager_memory(cluster, job.tm_id)
    except (OSError, ValueError, KeyError) as exc:  # a bonus beside RSS, not the measurement
        memory = {"error": str(exc)}
    drained = (job.processed_at_ms / 1000 - job.started) if job.processed_at_ms else None
    return {
        "job_id": job.job_id, "taskmanager_id": job.tm_id, "checkpoint_config": checkpoint_config(cluster, job.job_id),
        "submit_to_lag_0_s": round(drained, 1) if drained is not None else None,
        "checkpoints": {"idle": summarise(job.idle()), "under_load": summarise(job.under_load()),
                        "completed": sum(1 for c in job.checkpoints.values() if c["status"] == "COMPLETED"),
                        # Flink's count includes triggers refused while tasks were still starting (not
                        # checkpoints that ran and failed: those are in the history, counted next).
                        "failed": job.failed_checkpoints,
                        "failed_after_trigger": sum(1 for c in job.checkpoints.values() if c["status"] == "FAILED"),
                        "slowest": job.slowest},
        "taskmanager": {**rss_mib(job.tm_pid), **memory},
        "outputs": outputs,
    }


def _problems(kind: str, result: dict[str, Any]) -> list[str]:
    found = [f"state/{kind}: {name} holds {o['records']} of {o['expected']} expected records"
             for name, o in result["outputs"].items() if o["records"] != o["expected"] or o.get("distinct", o["records"]) != o["records"]]
    if not result["checkpoints"]["idle"]["count"]:
        found.append(f"state/{kind}: no checkpoint completed while idle")
    return found


# ---- the measurement -----------------------------------------------------------------------------

def _preload(config: PlatformConfig, plan: StatePlan, prefix: str, folder: Path, out: Callable[[str], None]) -> BenchInput:
    from udfs.alert_rules import AlertPolicy
    from udfs.geofence import load_service_area

    alerts = config.alerts
    policy = AlertPolicy(alerts.low_battery_percent, alerts.battery_rearm_percent, alerts.offline_after_s)
    # No re-sends or defects: the state is the point here, and the drain stages already check both paths.
    spec = InputSpec(events=plan.vehicles * plan.events_per_vehicle, vehicles=plan.vehicles, resends=0, defects=0,
                     partitions=config.kafka.topic("telemetry").partitions, seed=plan.seed)
    return preload(config.kafka.bootstrap_servers, f"{prefix}-input", f"{prefix}-registry", folder, spec, policy,
                   load_service_area(alerts.service_area).contains, out=out)


def measure_state(config: PlatformConfig, plan: StatePlan, folder: Path, *, prefix: str,
                  out: Callable[[str], None] = print) -> dict[str, Any]:
    """Preload `plan.vehicles` vehicles' events, run the jobs unbounded on a cluster, read their
    checkpoints and TaskManagers (module docstring). Kafka (and moto, for the alerts job's SNS) must be up."""
    report: dict[str, Any] = {
        "vehicles": plan.vehicles, "events_per_vehicle": plan.events_per_vehicle,
        "checkpoint_interval_ms": config.flink.checkpoint_interval_ms,
        "state_backend": dict(plan.job_settings).get("flink.state_backend", config.flink.state_backend),
        "cluster_settings": dict(plan.cluster_settings), "taskmanager_memory": plan.taskmanager_memory,
        "targets": {"taskmanager_rss_mib": TARGET_RSS_MIB, "checkpoint_ms": TARGET_CHECKPOINT_MS},
        "jobs": {}, "problems": [],
    }
    try:
        data = _preload(config, plan, prefix, folder, out)
    except Exception as exc:  # noqa: BLE001 - reported; the drain figures stand on their own
        return {**report, "problems": [f"state: preload: {exc}"]}
    report.update(events=data.sent, unique_valid=data.unique_valid, alerts_expected=data.alerts, preload_rate=data.produce_rate)
    report["jobs"], report["problems"] = _run_jobs(config, plan, data, folder, prefix, out)
    return report


def _run_jobs(config: PlatformConfig, plan: StatePlan, data: BenchInput, folder: Path, prefix: str,
              out: Callable[[str], None]) -> tuple[dict[str, Any], list[str]]:
    """({kind: figures}, problems): the cluster, the jobs on it until idle, then their readings."""
    from fleet.bench.pipeline import _create_outputs, stage_settings

    bootstrap = config.kafka.bootstrap_servers
    cluster = _Cluster(folder / "cluster", config.infra.host, slots=1, taskmanager_memory=plan.taskmanager_memory,
                       extra=dict(plan.cluster_settings))
    out(f"   standalone cluster: JobManager + one TaskManager per job ({', '.join(plan.jobs)}) in {cluster.folder}")
    jobs: list[_Job] = []
    results: dict[str, Any] = {}
    problems: list[str] = []
    settings_of: dict[str, dict[str, str]] = {}
    try:
        end = end_offsets(bootstrap, data.topic)
        cluster.up(taskmanagers=0)
        pids = _start_taskmanagers(cluster, len(plan.jobs))
        for kind in plan.jobs:
            tag = f"{prefix}-{kind}"
            _create_outputs(config, tag, data.partitions)
            settings_of[kind] = {**stage_settings(config, data, tag, folder / kind), **dict(plan.job_settings)}
        started = time.time()
        for kind, job_id in _submit_all(cluster, settings_of, config.profile).items():
            cluster.wait_running(job_id)
            tm_id = _taskmanager_of(cluster, job_id)
            group = settings_of[kind]["alerts.group_id" if kind == "alerts" else "pipeline.group_id"]
            jobs.append(_Job(kind, job_id, tm_id, pids[tm_id], group, bootstrap, started))
            out(f"   {kind}: job {job_id} running on TaskManager {tm_id} (pid {pids[tm_id]})")
        _wait_idle(cluster, jobs, data.topic, end, plan, out)
        for job in jobs:
            results[job.kind] = _job_result(cluster, job, _outputs(bootstrap, job.kind, f"{prefix}-{job.kind}", data))
            problems += _problems(job.kind, results[job.kind])
            out("   " + job_line(job.kind, results[job.kind]))
    except Exception as exc:  # noqa: BLE001 - reported; the drain figures stand on their own
        problems.append(f"state: {exc}")
    finally:
        for job in jobs:
            job.close()
        cluster.down()  # its processes only, by pid
    return results, problems


def _wait_idle(cluster: FlinkCluster, jobs: list[_Job], topic: str, end: dict[int, int], plan: StatePlan,
               out: Callable[[str], None]) -> None:
    """Poll every job until each has committed the topic's end and `idle_checkpoints` more completed."""
    deadline = time.monotonic() + plan.drain_timeout_s
    reported: set[str] = set()
    while True:
        for job in jobs:
            job.poll(cluster, topic, end)
            if job.processed_at_ms is not None and job.kind not in reported:
                reported.add(job.kind)
                out(f"   {job.kind}: lag 0 after {job.processed_at_ms / 1000 - job.started:.1f}s from submit; "
                    f"waiting for {plan.idle_checkpoints} idle checkpoints")
        if all(len([c for c in j.idle() if c["status"] == "COMPLETED"]) >= plan.idle_checkpoints for j in jobs):
            return
        if time.monotonic() > deadline:
            lags = ", ".join(f"{j.kind} lag {j.lag(topic, end):,}, {len(j.idle())} idle checkpoints" for j in jobs)
            raise RuntimeError(f"not idle within {plan.drain_timeout_s:.0f}s: {lags}")
        time.sleep(0.5)


# ---- the report ----------------------------------------------------------------------------------

def _mib(value: float | None) -> str:
    return "–" if value is None else f"{value / 2**20:,.1f} MiB"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _vehicles_text(count: int) -> str:
    return f"{count // 1000}K" if count >= 1000 and count % 1000 == 0 else f"{count:,}"


def _outputs_text(outputs: dict[str, dict[str, Any]]) -> str:
    return " ".join(f"{name} {o['records']}/{o['expected']}" for name, o in outputs.items())


def job_line(kind: str, result: dict[str, Any]) -> str:
    idle, tm = result["checkpoints"]["idle"], result["taskmanager"]
    latest = idle.get("latest", {})
    return (f"{kind}: idle checkpoint {_ms(latest.get('duration_ms'))} ms (max {_ms(idle.get('duration_ms', {}).get('max'))}), "
            f"checkpointed {_mib(latest.get('checkpointed_bytes'))}, full state {_mib(latest.get('state_bytes'))}; "
            f"TaskManager RSS peak {tm.get('peak_rss_mib')} MiB, now {tm.get('rss_mib')} MiB")


def state_summary(state: dict[str, Any] | None) -> str:
    if not state:
        return "state: not run"
    lines = [f"state at {state['vehicles']:,} vehicles ({state['events_per_vehicle']} events each, {state['state_backend']}):"]
    lines += [f"  {job_line(kind, result)}" for kind, result in state["jobs"].items()]
    lines += [f"  !! {p}" for p in state["problems"]]
    return "\n".join(lines)


def _verdict(measured: float | None, target: float) -> tuple[str, str]:
    """(× target, met) as the report's other target tables word them."""
    if measured is None:
        return "–", "–"
    return f"{measured / target:.2f}", "yes" if measured <= target else "no"


def full_horizon_bytes(state: dict[str, Any], result: dict[str, Any]) -> float | None:
    """A job's full state at the full dedup horizon: 128 instead of `events_per_vehicle` times per
    vehicle, ~10.5 bytes each as checkpointed (8-byte times kept as latin-1 text, whose characters
    ≥ 0x80 take two bytes in Flink's string serializer). Measured with the hashmap backend: 2,000
    vehicles' full state was 196,967 B at 5 events each and 616,959 B at 25, i.e. 10.5 B per time.
    An estimate (a RocksDB file layout differs), and the report says so. None: no idle checkpoint."""
    measured = result["checkpoints"]["idle"].get("latest", {}).get("state_bytes")
    if not measured:
        return None
    return measured + state["vehicles"] * max(0, DEDUP_HORIZON - state["events_per_vehicle"]) * BYTES_PER_DEDUP_TIME


def _full_horizon_estimate(state: dict[str, Any], result: dict[str, Any]) -> str | None:
    extra_times = max(0, DEDUP_HORIZON - state["events_per_vehicle"])
    estimate = full_horizon_bytes(state, result)
    if estimate is None or not extra_times:
        return None
    return f"~{_mib(estimate)} (estimate: + {extra_times} × {BYTES_PER_DEDUP_TIME} B per vehicle)"


def state_markdown(state: dict[str, Any] | None) -> list[str]:
    """BENCHMARKS.md's section on state at scale (called from fleet.bench.report.write_markdown)."""
    if not state:
        return []
    jobs = state["jobs"]
    lines = [f"## State at {_vehicles_text(state['vehicles'])} vehicles", "",
             f"{state['events']:,} events: {state['events_per_vehicle']} from each of {state['vehicles']:,} vehicles (each has "
             f"dedup and alert state). Both jobs unbounded on a standalone cluster, each on a TaskManager of its own "
             f"(one slot, `taskmanager.memory.process.size` {state['taskmanager_memory']}), state backend "
             f"`{state['state_backend']}`{''.join(f', `{k}: {v}`' for k, v in state['cluster_settings'].items())}, "
             f"checkpoints every {state['checkpoint_interval_ms']} ms. Idle: checkpoints triggered after the job committed the "
             "topic's end; under load: while it drained the preloaded topic. Checkpointed = what a checkpoint wrote "
             "(`checkpointed_size`), full = the state it stands for (`state_size`); equal unless checkpoints are incremental.", "",
             "| job | idle checkpoint ms (latest/avg/max) | under load ms (avg/max) | checkpointed (latest idle) | full state (latest idle) "
             "| full state at 128 dedup times | TM peak RSS MiB | TM RSS now MiB | heap used MiB | managed used MiB | outputs |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for kind, result in jobs.items():
        idle, load, tm = result["checkpoints"]["idle"], result["checkpoints"]["under_load"], result["taskmanager"]
        latest = idle.get("latest", {})
        d, ld = idle.get("duration_ms", {}), load.get("duration_ms", {})
        horizon = _full_horizon_estimate(state, result) if kind == "pipeline" else "–"
        lines.append(f"| {kind} | {_ms(latest.get('duration_ms'))}/{_ms(d.get('avg'))}/{_ms(d.get('max'))} "
                     f"| {_ms(ld.get('avg'))}/{_ms(ld.get('max'))} ({load.get('count', 0)}) | {_mib(latest.get('checkpointed_bytes'))} "
                     f"| {_mib(latest.get('state_bytes'))} | {horizon or '–'} | {tm.get('peak_rss_mib', '–')} | {tm.get('rss_mib', '–')} "
                     f"| {tm.get('heap_used_mib', '–')} | {tm.get('managed_used_mib', '–')} "
                     f"| {_outputs_text(result['outputs'])} |")
    lines += ["", "| target | job | measured | × target | met |", "| --- | --- | --- | --- | --- |"]
    for kind, result in jobs.items():
        idle_max = result["checkpoints"]["idle"].get("duration_ms", {}).get("max")
        load_max = result["checkpoints"]["under_load"].get("duration_ms", {}).get("max")
        peak = result["taskmanager"].get("peak_rss_mib")
        for text, measured, target, unit in (
            ("TaskManager RSS ≤ 2 GiB (peak, VmHWM)", peak, TARGET_RSS_MIB, "MiB"),
            ("checkpoint ≤ 1 s (idle, max)", idle_max, TARGET_CHECKPOINT_MS, "ms"),
            ("checkpoint ≤ 1 s (under load, max)", load_max, TARGET_CHECKPOINT_MS, "ms"),
        ):
            ratio, met = _verdict(measured, target)
            lines.append(f"| {text} | {kind} | {'–' if measured is None else f'{measured:,.0f} {unit}'} | {ratio} | {met} |")
    lines += [""] + [line for kind, result in jobs.items() for line in _slowest_line(kind, result)]
    lines += [f"- **{p}**" for p in state["problems"]] + [""]
    return lines


def _slowest_line(kind: str, result: dict[str, Any]) -> list[str]:
    """Where the slowest checkpoint's time went: a barrier that reaches a vertex late is waiting
    behind the records ahead of it (backpressure); sync/async are that vertex's own state work."""
    slowest = result["checkpoints"].get("slowest") or {}
    if not slowest.get("vertices"):
        return []
    parts = "; ".join(f"{v['vertex'][:48]} {_ms(v['start_delay_ms'])}/{_ms(v['alignment_ms'])}/{_ms(v['sync_ms'])}/{_ms(v['async_ms'])}"
                      for v in slowest["vertices"])
    return [f"- Slowest checkpoint of {kind}: {_ms(slowest['duration_ms'])} ms; per vertex, barrier delay/alignment/sync/async ms: {parts}"]
