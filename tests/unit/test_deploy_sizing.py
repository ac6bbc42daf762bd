"""The sizes in the rendered manifests, recomputed here from the committed benchmark JSON with the
rules docs/kubernetes.md states — written out again, not by calling fleet/deploy/sizing.py — and
found equal: TaskManagers, slots, CPU and memory, parallelism, bridges, partitions, key groups."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest

from fleet.deploy.kustomize import build
from fleet.deploy.overlays import DEPLOY_DIR, load_overlay, overlay_names

ROOT = DEPLOY_DIR.parents[1]
PIPELINE = json.loads((ROOT / "docs" / "benchmarks" / "pipeline.json").read_text())
BRIDGE = json.loads((ROOT / "docs" / "benchmarks" / "bridge.json").read_text())
SIZING = tomllib.loads((DEPLOY_DIR / "sizing.toml").read_text())
POLICY = SIZING["policy"]


def stage(name: str) -> dict:
    [found] = [s for s in PIPELINE["stages"] if s["stage"] == name]
    assert found["ok"]
    return found


def ceil_to(value: float, step: float) -> float:
    return math.ceil(round(value / step, 9)) * step


def memory_mib(rss: float, floor: int) -> int:
    step = POLICY["memory_step_mib"]
    return max(floor, math.ceil(round(rss * POLICY["memory_margin"] / step, 9)) * step)


def expected_job(kind: str, target: dict) -> dict:
    one = stage(f"cluster-{kind}-1tm")
    tm = one["processes"]["taskmanager"]
    state_tm = PIPELINE["state"]["jobs"][kind]["taskmanager"]
    client = stage(kind)["processes"]["job-client (python)"]
    parallelism = math.ceil(round(target["events_per_s"] * POLICY["headroom"] / one["rate"], 9))
    cores = tm["cpu_s_window"] / one["events_in"] * one["rate"]
    return {
        "parallelism": parallelism,
        "tm_cpu": ceil_to(cores, POLICY["cpu_step"]),
        "tm_memory": memory_mib(max(tm["peak_rss_mib"], state_tm["peak_rss_mib"]), POLICY["min_flink_memory_mib"]),
        "jm_memory": memory_mib(one["processes"]["jobmanager"]["peak_rss_mib"] + client["peak_rss_mib"], POLICY["min_flink_memory_mib"]),
    }


def expected_partitions(target_name: str) -> int:
    group = [t for t in SIZING["targets"].values() if t["topic_group"] == SIZING["targets"][target_name]["topic_group"]]
    step = math.lcm(*(expected_job(kind, t)["parallelism"] for t in group for kind in ("pipeline", "alerts")))
    least = max(math.ceil(t["vehicles"] / POLICY["vehicles_per_partition"]) for t in group)
    return step * math.ceil(least / step)


def expected_key_groups() -> int:
    """The fewest key groups (a power of two, at least 128) with which no subtask of any target gets
    more than key_group_skew above the mean: a subtask holds at most ⌈K/p⌉ of K key groups."""
    parallelisms = [expected_job(kind, t)["parallelism"] for t in SIZING["targets"].values() for kind in ("pipeline", "alerts")]
    power = 128
    while any(math.ceil(power / p) / (power / p) - 1 > POLICY["key_group_skew"] for p in parallelisms):
        power *= 2
    return power


@pytest.mark.parametrize("overlay", overlay_names())
def test_rendered_resources_equal_a_recomputation_from_the_benchmark_json(overlay):
    settings = load_overlay(overlay)
    target = SIZING["targets"][settings.sizing]
    objects = build(settings.folder)
    deployments = {o["metadata"]["name"]: o["spec"] for o in objects if o["kind"] == "FlinkDeployment"}
    for name, kind in (("telemetry-pipeline", "pipeline"), ("anomaly-detection", "alerts")):
        spec, want = deployments[name], expected_job(kind, target)
        assert spec["job"]["parallelism"] == want["parallelism"], (overlay, name)
        assert spec["flinkConfiguration"]["taskmanager.numberOfTaskSlots"] == "1"   # TaskManagers = parallelism
        assert float(spec["taskManager"]["resource"]["cpu"]) == want["tm_cpu"], (overlay, name)
        assert spec["taskManager"]["resource"]["memory"] == f"{want['tm_memory']}m", (overlay, name)
        assert float(spec["jobManager"]["resource"]["cpu"]) == POLICY["jobmanager_cpu"]
        assert spec["jobManager"]["resource"]["memory"] == f"{want['jm_memory']}m", (overlay, name)
        assert spec["flinkConfiguration"]["pipeline.max-parallelism"] == str(expected_key_groups())
    [bridge] = [o["spec"] for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "mqtt-bridge"]
    replicas = max(POLICY["min_bridges"], math.ceil(round(target["events_per_s"] * POLICY["headroom"] / BRIDGE["msgs_per_s"], 9)))
    assert bridge["replicas"] == replicas
    [container] = bridge["template"]["spec"]["containers"]
    cores = ceil_to(BRIDGE["cpu_s_process"] / BRIDGE["drain_s"], POLICY["cpu_step"])
    assert container["resources"]["requests"]["cpu"] == f"{round(cores * 1000)}m"
    assert container["resources"]["requests"]["memory"] == f"{memory_mib(BRIDGE['peak_rss_mib'], POLICY['memory_step_mib'])}Mi"
    # The partitions and the pipeline's parallelism reach every container through the profile ConfigMap.
    [configmap] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("fleet-profile-")]
    profile = tomllib.loads(configmap["data"]["profile.toml"])
    partitions = expected_partitions(settings.sizing)
    assert profile["topics"]["telemetry"]["partitions"] == profile["topics"]["enriched"]["partitions"] == partitions
    assert profile["flink"]["parallelism"] == expected_job("pipeline", target)["parallelism"]
    assert profile["pipeline"]["batch_shards"] >= profile["flink"]["parallelism"]
    for name in deployments:
        assert partitions % deployments[name]["job"]["parallelism"] == 0     # every subtask reads as many partitions


def test_scaling_50k_to_100k_changes_no_topic_and_keeps_the_key_groups():
    production, larger = (build(load_overlay(name).folder) for name in ("production", "production-100k"))

    def partitions(objects):
        [cm] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("fleet-profile-")]
        return tomllib.loads(cm["data"]["profile.toml"])["topics"]["telemetry"]["partitions"]

    def key_groups(objects):
        return {o["spec"]["flinkConfiguration"]["pipeline.max-parallelism"] for o in objects if o["kind"] == "FlinkDeployment"}

    assert partitions(production) == partitions(larger)
    assert key_groups(production) == key_groups(larger)
    pipelines = [next(o for o in objs if o["metadata"]["name"] == "telemetry-pipeline")["spec"]["job"]["parallelism"] for objs in (production, larger)]
    assert pipelines == [expected_job("pipeline", SIZING["targets"][name])["parallelism"] for name in ("production", "production-100k")]


def expected_state_mib(kind: str, vehicles: int) -> float:
    """The job's whole state at `vehicles`: the idle checkpoint's bytes per vehicle, the pipeline's
    with every dedup time it would keep at the full horizon (the bench's 10.5 B per kept time)."""
    state = PIPELINE["state"]
    measured = state["jobs"][kind]["checkpoints"]["idle"]["latest"]["state_bytes"]
    if kind == "pipeline":
        horizon = tomllib.loads((ROOT / "fleet" / "config" / "profiles" / "production.toml").read_text())["pipeline"]["dedup_recent_events"]
        measured += state["vehicles"] * (horizon - state["events_per_vehicle"]) * 10.5
    return vehicles * measured / state["vehicles"] / 2**20


def test_every_target_in_the_docs_is_the_recomputed_one():
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    for name, target in SIZING["targets"].items():
        for kind in ("pipeline", "alerts"):
            want = expected_job(kind, target)
            state = expected_state_mib(kind, target["vehicles"])
            row = (f"| {name} | {target['events_per_s']:,} | {kind} | {want['parallelism']} | {want['parallelism']} × 1 slot | "
                   f"{want['tm_cpu']:g} | {want['tm_memory']}m | {POLICY['jobmanager_cpu']:g} / {want['jm_memory']}m | {state:,.0f} MiB | "
                   f"{state / want['parallelism']:,.1f} MiB |")
            assert row in doc, row
        assert f"| {name} | {expected_partitions(name)} | {expected_key_groups()} |" in doc


def test_the_measurements_are_those_of_one_committed_run():
    """Every figure the sizing reads comes from one run that passed its own checks."""
    assert PIPELINE["command"].startswith("telemetry bench pipeline") and "--smoke" not in PIPELINE["command"]
    assert all(s["ok"] for s in PIPELINE["stages"]) and not PIPELINE["state"]["problems"]
    assert BRIDGE["written_to_kafka"] == BRIDGE["messages"] == BRIDGE["bridge_stats"]["acked"]
    assert Path(ROOT / "BENCHMARKS.md").read_text().count(PIPELINE["run_id"]) >= 1
