"""`telemetry bench pipeline`: drain rates of the jobs against the Kafka limit and a peer, one run,
one broker, the same preloaded events (issue F, "What to build" 1).

  1. preload ≥ 1M seed-format events from ≥ 50K simulated vehicles into a fresh topic (fleet.bench.input);
  2. drain it, one stage after another, each into output topics of its own:
     limit      raw consume → produce with confluent-kafka (fleet.bench.limit)
     peer       Quix Streams, exactly once: parse, validate, dedup, geohash-6, vehicle type (fleet.bench.peer_app)
     pipeline   the telemetry pipeline, every sink, exactly once, checkpoints on — MiniCluster
     enriched   the same with only the telemetry-enriched sink — MiniCluster
     alerts     the anomaly job over the calm fleet — MiniCluster
     cluster-*  pipeline / alerts on a standalone cluster with one TaskManager, pipeline with two;
  3. per stage: output records / (last − first output record time, broker-stamped), every sink
     counted against what the input says it must hold (a mismatch is reported loudly and fails the
     run), CPU s per 1,000 events and peak RSS of every process (fleet.bench.cpu);
  4. a table, JSON under <run_dir>/bench/, PNG plots, and BENCHMARKS.md (fleet.bench.report).

No assertions on time anywhere: it measures. `--smoke` is the same path at a few thousand events.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from connectors.kafka_topics import TopicSpec
from fleet.bench.checks import StageOutcome, check_alerts, check_limit, check_pipeline
from fleet.bench.cpu import machine_busy_seconds
from fleet.bench.input import BenchInput, InputSpec, preload
from fleet.bench.output import OUTPUT_TOPIC_CONFIGS
from fleet.bench.stages import StageRun, run_flink_cluster, run_flink_local, run_process
from fleet.bench.state import SMOKE_STATE, StatePlan, measure_state
from fleet.bench.sustained import SMOKE_SUSTAINED, SustainedPlan, run_sustained
from fleet.config import PlatformConfig
from infra.flink_cluster import PROJECT_ROOT, FlinkCluster
from infra.manager import LocalInfra

STAGES: dict[str, str] = {
    "limit": "raw Kafka passthrough, confluent-kafka (the limit)",
    "peer": "Quix Streams, exactly once: parse, validate, dedup, geohash-6, vehicle type",
    "pipeline": "telemetry pipeline, every sink, exactly once — MiniCluster",
    "enriched": "telemetry pipeline, telemetry-enriched only — MiniCluster",
    "alerts": "anomaly job, calm fleet — MiniCluster",
    "cluster-pipeline-1tm": "telemetry pipeline, every sink — standalone cluster, 1 TaskManager",
    "cluster-alerts-1tm": "anomaly job — standalone cluster, 1 TaskManager",
    "cluster-pipeline-2tm": "telemetry pipeline, every sink — standalone cluster, 2 TaskManagers, parallelism 2",
}


@dataclass(frozen=True)
class BenchPlan:
    events: int = 1_000_000
    vehicles: int = 50_000
    resend_share: float = 0.01  # re-sent exact repeats, dropped by every dedup
    defect_share: float = 0.001  # schema defects, to every DLQ
    stages: tuple[str, ...] = tuple(STAGES)
    stage_timeout_s: float = 1_800.0  # a stage that takes longer is killed and reported
    seed: int = 42
    smoke: bool = False
    sustained: SustainedPlan | None = SustainedPlan()  # None: no open-loop climb, no latency
    state: StatePlan | None = StatePlan()  # None: no state and checkpoints at 100K vehicles

    def __post_init__(self) -> None:
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}")
        if self.events < self.vehicles or self.vehicles < 1:
            raise ValueError("events must be >= vehicles >= 1")


# The smoke run (CI) leaves out two stages whose code is another stage's with other arguments:
# enriched-only is the pipeline with one sink, the one-TaskManager cluster pipeline the two-TaskManager
# one at parallelism 1 (cluster-alerts-1tm still runs on a one-TaskManager cluster). `--stages` adds them.
SMOKE_STAGES = tuple(s for s in STAGES if s not in ("enriched", "cluster-pipeline-1tm"))
SMOKE = BenchPlan(events=3_000, vehicles=300, stage_timeout_s=300.0, smoke=True, sustained=SMOKE_SUSTAINED, state=SMOKE_STATE,
                  stages=SMOKE_STAGES)


def stage_settings(config: PlatformConfig, data: BenchInput, tag: str, folder: Path, *, parallelism: int = 1) -> dict[str, str]:
    """--set overrides for a Flink stage: this run's topics, groups, paths; the caller's servers."""
    infra, flink = config.infra, config.flink
    return {
        "infra.run_dir": str(infra.run_dir), "infra.host": infra.host,
        "infra.kafka_port": str(infra.kafka_port), "infra.kafka_controller_port": str(infra.kafka_controller_port),
        "infra.mqtt_port": str(infra.mqtt_port), "infra.moto_port": str(infra.moto_port),
        "aws.endpoint_url": config.aws.endpoint_url or "",
        "topics.telemetry.name": data.topic, "topics.registry.name": data.registry_topic,
        "topics.enriched.name": f"{tag}-enriched", "topics.dlq.name": f"{tag}-dlq", "topics.alerts.name": f"{tag}-alerts",
        "pipeline.group_id": tag, "pipeline.transactional_id_prefix": tag,
        "pipeline.bronze_path": (folder / "bronze").as_uri(),
        "stores.local_path": str(folder / "hot_store.sqlite"),
        "alerts.group_id": f"{tag}-alerts", "alerts.alert_log": str(folder / "alerts.log"), "alerts.sns_topic": f"{tag}-alerts",
        # A stage drains a topic filled before it started, and the sustained run idles between its
        # steps: to the alerts job's input clock that is lag and stalls, each worth a platform alert
        # (the failure harness checks those). Here it would only add records to the counts.
        "alerts.input_stall_after_s": str(config.alerts.offline_after_s - 1), "alerts.input_lag_limit_s": "86400",
        "flink.checkpoint_dir": (folder / "checkpoints").as_uri(),
        "flink.parallelism": str(parallelism),
        "flink.checkpoint_interval_ms": str(flink.checkpoint_interval_ms),
        "flink.state_backend": flink.state_backend, "flink.execution_mode": flink.execution_mode,
        # A failure in a benchmark is a finding to report, not something to retry past.
        "flink.restart_attempts": "0",
    }


def _create_outputs(config: PlatformConfig, tag: str, partitions: int) -> None:
    from connectors.kafka_topics import admin_client, ensure_topics

    ensure_topics(admin_client(config.kafka.bootstrap_servers), [
        TopicSpec(role, f"{tag}-{role}", partitions if role == "enriched" else 1, 1, OUTPUT_TOPIC_CONFIGS)
        for role in ("enriched", "dlq", "alerts")
    ])


class PipelineBenchmark:
    def __init__(self, config: PlatformConfig, plan: BenchPlan, *, out: Callable[[str], None] = print):
        self.config, self.plan, self.out = config, plan, out
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.folder = config.infra.run_dir / "bench" / f"pipeline-{self.run_id}"
        self.infra = LocalInfra(config.infra)
        self.bootstrap = config.kafka.bootstrap_servers
        self.partitions = config.kafka.topic("telemetry").partitions
        self.peer_version: str | None = None

    def run(self) -> dict[str, Any]:
        plan = self.plan
        started_servers = [s.name for s in self.infra.status(["kafka", "moto"]) if s.pid is None]
        self.infra.up(["kafka", "moto"])  # moto: the alerts job publishes to SNS
        try:
            broker_pid = self.infra.status(["kafka"])[0].pid
            spec = InputSpec(events=plan.events, vehicles=plan.vehicles, resends=int(plan.events * plan.resend_share),
                             defects=int(plan.events * plan.defect_share), partitions=self.partitions, seed=plan.seed)
            from udfs.alert_rules import AlertPolicy
            from udfs.geofence import load_service_area

            alerts = self.config.alerts
            policy = AlertPolicy(alerts.low_battery_percent, alerts.battery_rearm_percent, alerts.offline_after_s)
            data = preload(self.bootstrap, f"bench-{self.run_id}-input", f"bench-{self.run_id}-registry", self.folder, spec,
                           policy, load_service_area(alerts.service_area).contains, out=self.out)
            outcomes = []
            for stage in plan.stages:
                self.out(f"\n== {stage}: {STAGES[stage]}")
                outcome = self._stage(stage, data, broker_pid)
                self.out("   " + outcome.summary_line())
                outcomes.append(outcome)
            self._stop_cluster()
            sustained = self._sustained(data) if plan.sustained else None
            state = self._state() if plan.state else None
        finally:
            if started_servers:
                self.infra.down(started_servers)
        return {"run_id": self.run_id, "folder": str(self.folder), "plan": plan, "input": data, "outcomes": outcomes,
                "peer_version": self.peer_version, "sustained": sustained, "state": state}

    def _state(self) -> dict[str, Any]:
        """State, checkpoints and TaskManager memory with many vehicles' state (fleet.bench.state), last:
        its own topic and cluster."""
        plan = self.plan.state
        assert plan is not None
        self.out(f"\n== state: {plan.vehicles:,} vehicles' state in the pipeline and the alerts job (standalone cluster), checkpoints and RSS")
        result = measure_state(self.config, plan, self.folder / "state", prefix=f"bench-{self.run_id}-state", out=self.out)
        for problem in result["problems"]:
            self.out(f"   !! {problem}")
        return result

    def _sustained(self, data: BenchInput) -> dict[str, Any]:
        """The open-loop climb (fleet.bench.sustained) on a topic of its own, after the drains."""
        from connectors.kafka_topics import admin_client, ensure_topics

        plan = self.plan.sustained
        assert plan is not None
        self.out("\n== sustained: open-loop load at rising rates into the pipeline (every sink, MiniCluster), latency at half the best")
        live = f"bench-{self.run_id}-live"
        ensure_topics(admin_client(self.bootstrap), [TopicSpec("telemetry", live, self.partitions, 1,
                                                               {"compression.type": "lz4", "cleanup.policy": "delete"})])
        tag = f"bench-{self.run_id}-sustained"
        _create_outputs(self.config, tag, self.partitions)
        settings = stage_settings(self.config, replace(data, topic=live), tag, self.folder / "sustained")
        grace_s = 2 * self.config.flink.checkpoint_interval_ms / 1000 + 3.0  # two checkpoints: EO output is visible on commit
        try:
            result = run_sustained(self.config, settings, live, f"{tag}-enriched", self.folder / "sustained", plan,
                                   grace_s=grace_s, out=self.out)
        except Exception as exc:  # noqa: BLE001 - reported; the drain figures stand on their own
            result = {"steps": [], "max_sustained_rate": None, "latency": {}, "problems": [f"sustained: {exc}"]}
        for problem in result["problems"]:
            self.out(f"   !! {problem}")
        return result

    # ---- one stage --------------------------------------------------------------------------

    def _stage(self, stage: str, data: BenchInput, broker_pid: int | None) -> StageOutcome:
        tag = f"bench-{self.run_id}-{stage}"
        folder = self.folder / stage
        _create_outputs(self.config, tag, self.partitions)
        busy_before = machine_busy_seconds()
        try:
            run = self._launch(stage, data, tag, folder, broker_pid)
        except Exception as exc:  # noqa: BLE001 - one broken stage must not hide the others' figures
            now = time.time()
            from fleet.bench.cpu import CpuSampler

            run = StageRun(stage, now, now, CpuSampler({}), None, error=f"{stage}: could not start: {exc}")
        busy = machine_busy_seconds() - busy_before
        if stage == "limit":
            outcome = check_limit(self.bootstrap, stage, f"{tag}-enriched", data, run)
        elif stage in ("alerts", "cluster-alerts-1tm"):
            outcome = check_alerts(self.bootstrap, stage, f"{tag}-alerts", data, run)
        else:
            full = stage not in ("enriched", "peer")  # the peer has no Bronze or hot store
            outcome = check_pipeline(self.bootstrap, stage, f"{tag}-enriched", None if stage == "enriched" else f"{tag}-dlq", data, run,
                                     bronze=folder / "bronze" if full else None, hot_store=folder / "hot_store.sqlite" if full else None)
        return replace(outcome, machine_busy_s=round(busy, 2))

    def _launch(self, stage: str, data: BenchInput, tag: str, folder: Path, broker_pid: int | None) -> StageRun:
        timeout = self.plan.stage_timeout_s
        log = folder / "stage.log"
        if stage == "limit":
            import sys

            argv = [sys.executable, "-m", "fleet.bench.limit", "--bootstrap", self.bootstrap, "--source", data.topic,
                    "--target", f"{tag}-enriched", "--group", tag]
            return run_process(stage, argv, broker_pid=broker_pid, role="passthrough", log=log, timeout_s=timeout)
        if stage == "peer":
            from fleet.bench.peer_venv import ensure_peer_venv, peer_version

            python = ensure_peer_venv(out=self.out)
            self.peer_version = peer_version(python)
            argv = [str(python), "-m", "fleet.bench.peer_app", "--bootstrap", self.bootstrap, "--input", data.topic,
                    "--enriched", f"{tag}-enriched", "--dlq", f"{tag}-dlq", "--group", tag,
                    "--registry-file", str(data.registry_file), "--state-dir", str(folder / "state"), "--total", str(data.sent),
                    "--commit-interval", str(self.config.flink.checkpoint_interval_ms / 1000)]
            # The project root only (not our venv's site-packages): the peer imports the pure udfs/.
            return run_process(stage, argv, broker_pid=broker_pid, role="peer", log=log, timeout_s=timeout,
                               env={"PYTHONPATH": str(PROJECT_ROOT)})
        if stage in ("pipeline", "enriched", "alerts"):
            return run_flink_local(stage, stage, stage_settings(self.config, data, tag, folder), self.config.profile,
                                   broker_pid=broker_pid, log=log, timeout_s=timeout)
        job = "alerts" if "alerts" in stage else "pipeline"
        taskmanagers = 2 if stage.endswith("2tm") else 1
        cluster = self._cluster(taskmanagers)
        return run_flink_cluster(stage, cluster, job, stage_settings(self.config, data, tag, folder, parallelism=taskmanagers),
                                 self.config.profile, broker_pid=broker_pid, timeout_s=timeout)

    # ---- the standalone cluster -------------------------------------------------------------

    _cluster_obj: FlinkCluster | None = None
    _cluster_tms = 0

    def _cluster(self, taskmanagers: int) -> FlinkCluster:
        """A cluster of this run's own (own folder and ports), one slot per TaskManager so that
        parallelism 2 lands on two TaskManagers (two interpreters, two GILs), not two slots of one."""
        if self._cluster_obj is not None and self._cluster_tms != taskmanagers:
            self._stop_cluster()
        if self._cluster_obj is None:
            cluster = FlinkCluster(self.folder / "cluster", self.config.infra.host, slots=1)
            self.out(f"   standalone cluster: JobManager + {taskmanagers} TaskManager(s) in {cluster.folder}")
            cluster.up(taskmanagers=taskmanagers)
            self._cluster_obj, self._cluster_tms = cluster, taskmanagers
        return self._cluster_obj

    def _stop_cluster(self) -> None:
        if self._cluster_obj is not None:
            self._cluster_obj.down()
            self._cluster_obj, self._cluster_tms = None, 0


def run_pipeline_benchmark(config: PlatformConfig, plan: BenchPlan, *, out: Callable[[str], None] = print) -> dict[str, Any]:
    bench = PipelineBenchmark(config, plan, out=out)
    try:
        return bench.run()
    finally:
        bench._stop_cluster()
