"""What the sizing starts from: deploy/flink-k8s/sizing.toml (policy and targets) and the measured
figures in docs/benchmarks/ — pipeline.json (`telemetry bench pipeline`) and bridge.json
(`telemetry bench bridge --record`). Each figure is read from a named place in those files."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from fleet.deploy.overlays import DEPLOY_DIR, DeployError
from fleet.deploy.sizing import BridgeFigures, Figures, JobFigures, SizingPolicy, Target

BENCH_DIR = DEPLOY_DIR.parents[1] / "docs" / "benchmarks"
SIZING_FILE = DEPLOY_DIR / "sizing.toml"
# One TaskManager of one slot on the standalone cluster: what one Kubernetes TaskManager runs.
JOB_STAGES = {"pipeline": "cluster-pipeline-1tm", "alerts": "cluster-alerts-1tm"}
# The MiniCluster stage of the same job: its Python client's footprint (the driver process).
CLIENT_STAGES = {"pipeline": "pipeline", "alerts": "alerts"}
CLIENT_ROLE = "job-client (python)"


@dataclass(frozen=True)
class Inputs:
    figures: Figures
    policy: SizingPolicy
    targets: list[Target]
    sources: dict[str, str]          # which file and run each figure came from


def _stage(data: dict[str, Any], name: str, path: Path) -> dict[str, Any]:
    for stage in data["stages"]:
        if stage["stage"] == name:
            if not stage.get("ok") or not stage.get("rate"):
                raise DeployError(f"{path}: stage {name} did not pass (ok={stage.get('ok')}); rerun `telemetry bench pipeline`")
            return stage
    raise DeployError(f"{path}: no stage {name!r}; run the whole `telemetry bench pipeline`")


def _cpu_s_per_1k(stage: dict[str, Any], role: str) -> float:
    return stage["processes"][role]["cpu_s_window"] / (stage["events_in"] / 1000)


def _state_bytes_per_vehicle(state: dict[str, Any], kind: str) -> float:
    """Full state per vehicle as checkpointed while idle; the pipeline's at the full dedup horizon
    (the bench's own estimate, fleet.bench.state.full_horizon_bytes)."""
    from fleet.bench.state import full_horizon_bytes

    result = state["jobs"][kind]
    full = full_horizon_bytes(state, result) if kind == "pipeline" else result["checkpoints"]["idle"]["latest"]["state_bytes"]
    if full is None:
        raise DeployError(f"state.jobs.{kind}: no idle checkpoint; rerun `telemetry bench pipeline`")
    return full / state["vehicles"]


def job_figures(data: dict[str, Any], kind: str, path: Path) -> JobFigures:
    stage = _stage(data, JOB_STAGES[kind], path)
    client = _stage(data, CLIENT_STAGES[kind], path)
    state = data.get("state") or {}
    if kind not in state.get("jobs", {}):
        raise DeployError(f"{path}: no state measurement for {kind}; run `telemetry bench pipeline` without --no-state")
    return JobFigures(
        events_per_s=stage["rate"],
        taskmanager_cpu_s_per_1k=_cpu_s_per_1k(stage, "taskmanager"),
        # The higher of its peak while draining at full rate and its peak holding the 100K vehicles' state.
        taskmanager_peak_rss_mib=max(stage["processes"]["taskmanager"]["peak_rss_mib"], state["jobs"][kind]["taskmanager"]["peak_rss_mib"]),
        state_vehicles=state["vehicles"],
        jobmanager_peak_rss_mib=stage["processes"]["jobmanager"]["peak_rss_mib"],
        client_peak_rss_mib=client["processes"][CLIENT_ROLE]["peak_rss_mib"],
        state_bytes_per_vehicle=_state_bytes_per_vehicle(state, kind),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DeployError(f"{path} is missing: it is written by the benchmark named in docs/kubernetes.md") from None


def _dataclass(cls: type, raw: dict[str, Any], where: str) -> Any:
    names = {f.name for f in fields(cls)}
    missing, unknown = names - set(raw), set(raw) - names
    if missing or unknown:
        raise DeployError(f"{SIZING_FILE} {where}: " + "; ".join(
            ([f"missing {', '.join(sorted(missing))}"] if missing else []) + ([f"unknown {', '.join(sorted(unknown))}"] if unknown else [])))
    return cls(**raw)


def load_inputs(bench_dir: Path = BENCH_DIR, sizing_file: Path = SIZING_FILE) -> Inputs:
    raw = tomllib.loads(sizing_file.read_text())
    policy = _dataclass(SizingPolicy, raw["policy"], "[policy]")
    targets = [_dataclass(Target, {"name": name, **values}, f"[targets.{name}]") for name, values in raw["targets"].items()]
    pipeline_path, bridge_path = bench_dir / "pipeline.json", bench_dir / "bridge.json"
    pipeline, bridge = _read_json(pipeline_path), _read_json(bridge_path)
    figures = Figures(
        pipeline=job_figures(pipeline, "pipeline", pipeline_path),
        alerts=job_figures(pipeline, "alerts", pipeline_path),
        bridge=BridgeFigures(messages_per_s=bridge["msgs_per_s"], cores=bridge["cpu_s_process"] / bridge["drain_s"],
                             peak_rss_mib=bridge["peak_rss_mib"]),
        broker_cpu_s_per_1k=_cpu_s_per_1k(_stage(pipeline, JOB_STAGES["pipeline"], pipeline_path), "broker"),
        event_bytes=bridge["mean_payload_bytes"],
    )
    sources = {
        "pipeline": f"docs/benchmarks/pipeline.json (run {pipeline.get('run_id')}, `{pipeline.get('command')}`)",
        "bridge": f"docs/benchmarks/bridge.json ({bridge.get('when')}, `telemetry bench bridge --record`, {bridge.get('messages'):,} messages)",
    }
    return Inputs(figures=figures, policy=policy, targets=targets, sources=sources)
