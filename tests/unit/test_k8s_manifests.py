"""The Kubernetes manifests point at job files, jars and settings that exist (no cluster here)."""

from pathlib import Path

import pytest
import yaml

from infra.flink_cluster import flink_home

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "flink-k8s"
ROOT = DEPLOY.parents[1]


@pytest.mark.parametrize("manifest, job_file", [("telemetry-pipeline.yaml", "jobs/telemetry_pipeline.py"), ("anomaly-detection.yaml", "jobs/anomaly_detection.py")])
def test_deployment_runs_our_job_with_savepoint_upgrades(manifest, job_file):
    spec = yaml.safe_load((DEPLOY / manifest).read_text())["spec"]
    job = spec["job"]
    assert job["upgradeMode"] == "savepoint" and job["state"] == "running"
    assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    # The jar the Dockerfile copies into lib/ is the flink-python of the PyFlink we pin.
    [python_jar] = [p.name for p in (flink_home() / "opt").glob("flink-python-*.jar")]
    assert job["jarURI"] == f"local:///opt/flink/lib/{python_jar}"
    args = job["args"]
    assert args[args.index("-py") + 1] == f"/opt/fleet/{job_file}" and (ROOT / job_file).is_file()
    assert args[args.index("--profile") + 1] == "production"
    conf = spec["flinkConfiguration"]
    assert conf["execution.checkpointing.savepoint-dir"].startswith("s3://")
    assert conf["python.execution-mode"] == "thread"
    assert conf["high-availability.type"] == "kubernetes"
    # Flink's Prometheus reporter on the production profile's port, a named container port for it.
    from fleet.config import load_config
    from jobs.flink_env import PROMETHEUS_REPORTER_FACTORY

    port = load_config("production", environ={}).flink.prometheus_port
    assert conf["metrics.reporter.prom.factory.class"] == PROMETHEUS_REPORTER_FACTORY
    assert conf["metrics.reporter.prom.port"] == str(port)
    [container] = spec["podTemplate"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": port} in container["ports"]


def test_dockerfile_copies_every_package_and_ships_jars_in_lib():
    text = (DEPLOY / "Dockerfile").read_text()
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"]
    for package in packages:
        assert f"COPY {package} /opt/fleet/{package}" in text, package
    assert "TELEMETRY_JARS_IN_FLINK_LIB=1" in text and "-P flink dependency:copy-dependencies" in text
    # The reporter from the pom's flink-metrics profile, as a plugin (never in lib/).
    assert "-P flink-metrics dependency:copy-dependencies -DoutputDirectory=/build/plugins/metrics-prometheus" in text
    assert "COPY --from=jars /build/plugins/metrics-prometheus/ /opt/flink/plugins/metrics-prometheus/" in text
