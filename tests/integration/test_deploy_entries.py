"""What the local overlay's manifests run starts here, with the manifests' own arguments: both
FlinkDeployments' `-pym` modules through `flink run` on a local standalone cluster (what the
operator's PythonDriver does in the JobManager pod), the bridge Deployment's command until /healthz
answers 200, the topics Job, the lake CronJobs and the erasure template, all reading the profile
the overlay's ConfigMap holds. Only what names this machine is rewritten: the endpoints (Kafka,
MQTT, moto), the topic names (unique per run), the storage paths (local folders: the standalone
cluster has no S3 plugin), the run folder and the bridge's metrics port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
import uuid
from pathlib import Path

import pytest
import tomli_w

from connectors.kafka_topics import admin_client
from fleet.config import load_config
from fleet.deploy.kustomize import build
from fleet.deploy.overlays import load_overlay
from infra.flink_cluster import FlinkCluster
from infra.process import free_port

pytestmark = pytest.mark.integration
PROFILE_MOUNT = "/etc/fleet/profile.toml"
TELEMETRY = str(Path(sys.executable).parent / "telemetry")


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    return build(load_overlay("local").folder)


def _by(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _here_profile(objects, tmp_path: Path, kafka: str, moto: str) -> Path:
    """The ConfigMap's profile.toml with this machine's endpoints, topic names and paths."""
    [configmap] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("fleet-profile-")]
    raw = tomllib.loads(configmap["data"]["profile.toml"])
    run = uuid.uuid4().hex[:8]
    raw["infra"]["run_dir"] = str(tmp_path / "run")
    raw["kafka"]["bootstrap_servers"] = kafka
    raw["flink"]["s3_endpoint"] = moto
    raw["aws"]["endpoint_url"] = moto
    raw["flink"]["checkpoint_dir"] = (tmp_path / "checkpoints").as_uri()
    raw["pipeline"]["bronze_path"] = str(tmp_path / "bronze")
    raw["lake"]["base_path"] = str(tmp_path / "lake")
    for topic in raw["topics"].values():
        topic["name"] = f"deploy-{run}-{topic['name']}"
    raw["pipeline"]["group_id"] = f"deploy-{run}-pipeline"
    raw["alerts"]["group_id"] = f"deploy-{run}-alerts"
    raw["pipeline"]["transactional_id_prefix"] = f"deploy-{run}"
    raw["stores"]["timestream_table"] = f"telemetry_{run}"
    raw["stores"]["dynamodb_table"] = f"vehicle-status-{run}"
    path = tmp_path / "profile.toml"
    path.write_text(tomli_w.dumps(raw))
    return path


def _telemetry(args: list[str], profile: Path, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "eu-central-1"}
    return subprocess.run([TELEMETRY, *[str(profile) if a == PROFILE_MOUNT else a for a in args]], capture_output=True, text=True,
                          timeout=300, env=env, **kw)


def _container(pod_spec: dict) -> dict:
    [container] = pod_spec["containers"]
    return container


def test_the_local_overlays_workloads_start_with_their_manifest_arguments(objects, tmp_path, kafka_bootstrap, mqtt_address, private_moto):
    profile = _here_profile(objects, tmp_path, kafka_bootstrap, private_moto.endpoint)
    config = load_config(profile, environ={})

    # The topics Job, then the stores the local-aws-resources Job makes on moto.
    [topics_job] = [job for name, job in _by(objects, "Job").items() if name.startswith("kafka-topics-")]
    topics = _container(topics_job["spec"]["template"]["spec"])
    done = _telemetry(topics["args"], profile)
    assert done.returncode == 0, done.stdout + done.stderr
    existing = admin_client(kafka_bootstrap).list_topics(timeout=10).topics
    for spec in config.kafka.topics:
        assert len(existing[spec.name].partitions) == spec.partitions
    done = _telemetry(["--profile", PROFILE_MOUNT, "stores", "init"], profile)
    assert done.returncode == 0, done.stdout + done.stderr

    # Both FlinkDeployments: the same module and arguments through `flink run -pym`, on TaskManagers
    # of the manifests' slots and memory; each must reach RUNNING and complete a checkpoint.
    deployments = _by(objects, "FlinkDeployment")
    tm = deployments["telemetry-pipeline"]["spec"]["taskManager"]["resource"]["memory"]
    slots = int(deployments["telemetry-pipeline"]["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"])
    cluster = FlinkCluster(tmp_path / "cluster", slots=slots, taskmanager_memory=tm)
    try:
        parallelism = sum(d["spec"]["job"]["parallelism"] for d in deployments.values())
        cluster.up(taskmanagers=parallelism // slots)
        jobs = {}
        for name, deployment in deployments.items():
            args = deployment["spec"]["job"]["args"]
            module = args[args.index("-pym") + 1]
            rest = [str(profile) if a == PROFILE_MOUNT else a for a in args[args.index("-pym") + 2:]]
            jobs[name] = cluster.submit_module(module, rest)
        for name, job_id in jobs.items():
            cluster.wait_running(job_id, timeout_s=180)
            assert cluster.wait_for_checkpoints(job_id, more_than=0, timeout_s=120) >= 1, name
            assert cluster.job(job_id)["name"] in ("telemetry pipeline", "anomaly detection")
        for job_id in jobs.values():
            cluster.cancel(job_id)
    finally:
        cluster.down()

    # The bridge Deployment's command, with the MQTT address and pod name Kubernetes would expand.
    bridge = _container(_by(objects, "Deployment")["mqtt-bridge"]["spec"]["template"]["spec"])
    port = free_port()
    args = [a.replace("$(MQTT_ADDRESS)", f"{mqtt_address[0]}:{mqtt_address[1]}").replace("$(POD_NAME)", "mqtt-bridge-test")
            for a in bridge["args"]]
    args[args.index("--metrics-port") + 1] = str(port)
    args[args.index("--metrics-host") + 1] = "127.0.0.1"
    process = subprocess.Popen([TELEMETRY, *[str(profile) if a == PROFILE_MOUNT else a for a in args]],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and status != 200:
            try:
                status = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status
            except OSError:
                time.sleep(0.5)
        assert status == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out

    # A backfill FlinkDeployment made by `telemetry deploy backfill`: its module with its arguments
    # (what PythonDriver runs as `python -m`), as a dry run: the range resolved against the topic.
    from fleet.cli.deploy import check_backfill_args
    from fleet.deploy.backfill import backfill_deployment

    backfill = backfill_deployment(objects, ["--from", "2026-12-01T10:00:00Z", "--to", "2026-12-01T11:00:00Z", "--sinks", "store"],
                                   check_args=check_backfill_args)["spec"]["job"]["args"]
    assert backfill[:2] == ["-pym", "jobs.backfill.job"]
    run_dir = backfill.index("--set") + 1
    assert backfill[run_dir].startswith("infra.run_dir=")
    backfill[run_dir] = f"infra.run_dir={tmp_path / 'backfill-runs'}"
    done = subprocess.run([sys.executable, "-m", backfill[1], *[str(profile) if a == PROFILE_MOUNT else a for a in backfill[2:]], "--dry-run"],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
    assert done.returncode == 0 and "backfill" in done.stdout, done.stdout + done.stderr

    # The lake CronJobs on an empty lake, and the erasure template with a subject, as a dry run.
    cronjobs = _by(objects, "CronJob")
    for name in ("lake-silver", "lake-gold", "lake-retention", "lake-erase"):
        container = _container(cronjobs[name]["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        extra = ["--vehicle", "10042", "--dry-run"] if name == "lake-erase" else []
        done = _telemetry([*container["args"], *extra], profile)
        assert done.returncode == 0, (name, done.stdout + done.stderr)
