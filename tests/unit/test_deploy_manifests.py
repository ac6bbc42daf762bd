"""deploy/flink-k8s renders with kustomize and every object validates against its published schema;
what the manifests name (modules, commands, arguments, ConfigMaps, ports) exists and agrees with the
profile each overlay generates. The commands themselves start in tests/integration/test_deploy_entries.py."""

from __future__ import annotations

import ast
import copy
import tempfile
import tomllib
from pathlib import Path

import pytest

from fleet.config import load_config
from fleet.config.invariants import restart_window_ms, transaction_problems
from fleet.deploy.kustomize import KUSTOMIZE_VERSION, build, kustomize_version
from fleet.deploy.overlays import DEPLOY_DIR, DeployError, load_overlay, overlay_names
from fleet.deploy.validate import problems
from infra.flink_cluster import flink_home

ROOT = DEPLOY_DIR.parents[1]
OVERLAYS = overlay_names()


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: build(load_overlay(name).folder) for name in OVERLAYS}


def objects_of(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def profile_of(objects: list[dict], tmp_path: Path, name: str = "profile"):
    [configmap] = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("fleet-profile-")]
    path = tmp_path / f"{name}.toml"
    path.write_text(configmap["data"]["profile.toml"])
    return load_config(path, environ={})


def test_the_overlays_are_the_documented_three_and_kustomize_is_the_pinned_one():
    assert OVERLAYS == ["local", "production", "production-100k"]
    assert kustomize_version() == KUSTOMIZE_VERSION
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert f"KUSTOMIZE_VERSION={KUSTOMIZE_VERSION}\n" in setup


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_every_overlay_validates(rendered, overlay):
    objects = rendered[overlay]
    assert problems(objects) == []
    kinds = {o["kind"] for o in objects}
    assert {"FlinkDeployment", "Deployment", "PodDisruptionBudget", "CronJob", "Job", "ConfigMap", "ServiceAccount"} <= kinds
    # Secrets by reference only: none rendered, and every reference is to a Secret made outside git.
    assert "Secret" not in kinds
    assert all(o["metadata"].get("namespace") == "fleet-telemetry" for o in objects if o["kind"] != "Namespace")


def test_the_validator_refuses_what_a_cluster_would():
    [pipeline] = [o for o in build(load_overlay("production").folder) if o["metadata"]["name"] == "telemetry-pipeline"]
    wrong_version, unknown_field, bad_mode = (copy.deepcopy(pipeline) for _ in range(3))
    wrong_version["spec"]["flinkVersion"] = "v2_9"
    unknown_field["spec"]["job"]["paralellism"] = 4
    bad_mode["spec"]["job"]["upgradeMode"] = "sometimes"
    found = problems([wrong_version, unknown_field, bad_mode])
    assert any("flinkVersion" in line and "v2_9" in line for line in found)
    assert any("paralellism" in line for line in found)
    assert any("upgradeMode" in line for line in found)
    [bridge] = [o for o in build(load_overlay("production").folder) if o["kind"] == "Deployment" and o["metadata"]["name"] == "mqtt-bridge"]
    bridge = copy.deepcopy(bridge)
    bridge["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["prot"] = 1
    assert any("prot" in line for line in problems([bridge]))


def _run_pipeline_module() -> dict[str, str]:
    """The job module each `telemetry run <job>` command imports its build() from (fleet/cli/app.py)."""
    tree = ast.parse((ROOT / "fleet" / "cli" / "app.py").read_text())
    modules = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("cmd_run_pipeline", "cmd_run_alerts"):
            modules[node.name] = next(n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and n.module.startswith("jobs.")
                                      and any(a.name == "build" for a in n.names))
    return {"telemetry-pipeline": modules["cmd_run_pipeline"], "anomaly-detection": modules["cmd_run_alerts"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_flink_deployments_run_the_modules_telemetry_run_uses_with_the_profiles_settings(rendered, overlay, tmp_path):
    from jobs.flink_env import PROMETHEUS_REPORTER_FACTORY, restart_strategy_settings

    objects = rendered[overlay]
    config = profile_of(objects, tmp_path)
    settings = load_overlay(overlay)
    configmaps = set(objects_of(objects, "ConfigMap"))
    [python_jar] = [p.name for p in (flink_home() / "opt").glob("flink-python-*.jar")]
    deployments = objects_of(objects, "FlinkDeployment")
    assert set(deployments) == {"telemetry-pipeline", "anomaly-detection"}
    for name, module in _run_pipeline_module().items():
        spec = deployments[name]["spec"]
        job, conf = spec["job"], spec["flinkConfiguration"]
        assert spec["flinkVersion"] == "v2_2" and spec["image"] == f"{settings.image}:{settings.tag}"
        assert job["entryClass"] == "org.apache.flink.client.python.PythonDriver"
        assert job["jarURI"] == f"local:///opt/flink/lib/{python_jar}"
        assert job["upgradeMode"] == "savepoint" and job["state"] == "running"
        args = job["args"]
        assert args[args.index("-pym") + 1] == module and (ROOT / Path(*module.split("."))).with_suffix(".py").is_file()
        assert args[args.index("--profile") + 1] == "/etc/fleet/profile.toml"
        assert args[args.index("--set") + 1] == f"flink.parallelism={job['parallelism']}"
        # Exactly once on Kubernetes: RocksDB, retained checkpoints on S3, HA, the profile's restart
        # strategy, and a Kafka transaction timeout that outlives it (the profile's invariants).
        assert conf["state.backend.type"] == "rocksdb" == config.flink.state_backend
        assert conf["high-availability.type"] == "kubernetes"
        assert conf["execution.checkpointing.dir"] == f"{settings.flink_state_uri}/checkpoints/{name}"
        assert conf["execution.checkpointing.savepoint-dir"] == f"{settings.flink_state_uri}/savepoints/{name}"
        assert conf["high-availability.storageDir"] == f"{settings.flink_state_uri}/ha/{name}"
        assert settings.flink_state_uri.startswith("s3://")
        assert conf["execution.checkpointing.externalized-checkpoint-retention"] == "RETAIN_ON_CANCELLATION"
        assert {k: v for k, v in conf.items() if k.startswith("restart-strategy")} == restart_strategy_settings(config.flink)
        window = restart_window_ms(config.flink.restart_strategy, config.flink.restart_attempts, config.flink.restart_delay_ms,
                                   config.flink.restart_max_delay_ms)
        assert transaction_problems(transaction_timeout_ms=config.kafka.transaction_timeout_ms,
                                    broker_max_transaction_timeout_ms=config.kafka.broker_max_transaction_timeout_ms,
                                    checkpoint_interval_ms=config.flink.checkpoint_interval_ms, restart_window=window) == []
        assert conf["execution.checkpointing.interval"] == f"{config.flink.checkpoint_interval_ms} ms"
        # Metrics: the reporter on the profile's port, a named container port and scrape annotations.
        port = config.flink.prometheus_port
        assert conf["metrics.reporter.prom.factory.class"] == PROMETHEUS_REPORTER_FACTORY and conf["metrics.reporter.prom.port"] == str(port)
        pod = spec["podTemplate"]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
        [container] = pod["spec"]["containers"]
        assert container["name"] == "flink-main-container" and {"name": "metrics", "containerPort": port} in container["ports"]
        # The generated ConfigMaps' hashed names reached the custom resource (kustomizeconfig.yaml).
        assert container["envFrom"][0]["configMapRef"]["name"] in configmaps
        assert pod["spec"]["volumes"][0]["configMap"]["name"] in configmaps


def test_the_slots_are_one_and_taskmanagers_follow_parallelism(rendered):
    for objects in rendered.values():
        for deployment in objects_of(objects, "FlinkDeployment").values():
            assert deployment["spec"]["flinkConfiguration"]["taskmanager.numberOfTaskSlots"] == "1"


def _telemetry_args(container: dict) -> list[str]:
    assert container["command"] == ["/opt/venv/bin/telemetry"]
    return container["args"]


def _parses(args: list[str]) -> None:
    from fleet.cli.app import build_parser

    substituted = [a.replace("$(MQTT_ADDRESS)", "mqtt:1883").replace("$(POD_NAME)", "bridge-0") for a in args]
    build_parser().parse_args(substituted)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_telemetry_command_the_manifests_run_parses_and_reads_the_profile(rendered, overlay):
    objects = rendered[overlay]
    containers = [c for o in objects_of(objects, "Deployment").values() for c in o["spec"]["template"]["spec"]["containers"]
                  if c.get("command") == ["/opt/venv/bin/telemetry"]]
    containers += [c for o in objects_of(objects, "Job").values() for c in o["spec"]["template"]["spec"]["containers"]
                   if c.get("command") == ["/opt/venv/bin/telemetry"]]
    containers += [c for o in objects_of(objects, "CronJob").values() for c in o["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]]
    commands = {tuple(a for a in _telemetry_args(c) if not a.startswith(("-", "/", "$"))
                      and a not in ("telemetry-bridge", "fleet-bridges", "9252", "0.0.0.0"))[:2] for c in containers}
    assert {("bridge",), ("topics", "ensure"), ("lake", "silver"), ("lake", "gold"), ("lake", "retention"), ("lake", "erase")} <= commands
    for container in containers:
        args = _telemetry_args(container)
        assert args[:2] == ["--profile", "/etc/fleet/profile.toml"]
        if args[args.index("--log-json") + 1:][:2] == ["lake", "erase"]:
            args = [*args, "--vehicle", "1"]      # the template: erasure-job adds the subject
        _parses(args)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_bridge_runs_in_one_share_group_with_probes_metrics_and_a_disruption_budget(rendered, overlay, tmp_path):
    objects = rendered[overlay]
    config = profile_of(objects, tmp_path)
    bridge = objects_of(objects, "Deployment")["mqtt-bridge"]
    pod = bridge["spec"]["template"]
    [container] = pod["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--group") + 1] == "fleet-bridges" and args[args.index("--client-id") + 1] == "$(POD_NAME)"
    assert bridge["spec"]["replicas"] >= 2
    port = int(args[args.index("--metrics-port") + 1])
    assert {"name": "metrics", "containerPort": port} in container["ports"] and pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    # Liveness is the process serving at all: an MQTT or Kafka outage must not restart every bridge.
    assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
    [budget] = objects_of(objects, "PodDisruptionBudget").values()
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert budget["spec"]["maxUnavailable"] == 1
    password = [e for e in container.get("env", []) if e["name"] == "TELEMETRY_BRIDGE_PASSWORD"]
    secret = load_overlay(overlay).mqtt_password_secret
    assert password == ([{"name": "TELEMETRY_BRIDGE_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}] if secret else [])
    assert config.kafka.topic("telemetry").name  # the profile the bridge reads loads


def test_jobs_are_named_after_their_profile_and_image_so_a_new_render_makes_a_new_job(rendered):
    from fleet.deploy.generate import job_suffix

    for overlay, objects in rendered.items():
        settings = load_overlay(overlay)
        suffix = job_suffix(settings, (settings.folder / "profile.toml").read_text())
        names = set(objects_of(objects, "Job"))
        assert f"kafka-topics-{suffix}" in names
        assert (f"local-aws-resources-{suffix}" in names) == (overlay == "local")
    # Another tag, another name: `kubectl apply` creates the Job instead of failing on an immutable template.
    other = load_overlay("production")
    from dataclasses import replace

    assert job_suffix(replace(other, tag="0.1.1"), "p") != job_suffix(other, "p")


def test_the_local_flink_clusters_get_the_profiles_s3_endpoint_and_production_none(rendered, tmp_path):
    for overlay, objects in rendered.items():
        config = profile_of(objects, tmp_path, overlay)
        for deployment in objects_of(objects, "FlinkDeployment").values():
            conf = deployment["spec"]["flinkConfiguration"]
            assert conf.get("s3.endpoint", "") == config.flink.s3_endpoint
            assert ("s3.access-key" in conf) == bool(config.flink.s3_endpoint)


def test_lake_cronjobs_are_scheduled_and_the_erasure_template_never_runs(rendered):
    cronjobs = objects_of(rendered["production"], "CronJob")
    assert set(cronjobs) == {"lake-silver", "lake-gold", "lake-retention", "lake-erase"}
    assert cronjobs["lake-erase"]["spec"]["suspend"] is True
    assert all(c["spec"]["concurrencyPolicy"] == "Forbid" for c in cronjobs.values())
    assert not any(c["spec"].get("suspend") for n, c in cronjobs.items() if n != "lake-erase")


def test_the_generated_files_are_current():
    """`telemetry deploy generate --check`: every overlay's generated files and the docs' sizing."""
    from fleet.deploy.outputs import expected_files

    with tempfile.TemporaryDirectory() as scratch:
        stale = [str(p.relative_to(ROOT)) for p, text in expected_files(Path(scratch)).items() if p.read_text() != text]
    assert stale == [], "run `telemetry deploy generate`"


def test_each_overlay_profile_is_the_packaged_profile_plus_its_settings(tmp_path):
    from fleet.config import PROFILES_DIR

    for overlay in OVERLAYS:
        settings = load_overlay(overlay)
        generated = tomllib.loads((settings.folder / "profile.toml").read_text())
        packaged = tomllib.loads((PROFILES_DIR / f"{settings.profile}.toml").read_text())
        for dotted, value in settings.overrides.items():
            *sections, key = dotted.split(".")
            node = generated
            for section in sections:
                node = node[section]
            assert node[key] == value, (overlay, dotted)
        # Nothing else differs but the keys the sizing sets.
        sized = {"flink.parallelism", "topics.telemetry.partitions", "topics.enriched.partitions", "pipeline.batch_shards"}
        for section, values in packaged.items():
            for key, value in (values.items() if isinstance(values, dict) else ()):
                if isinstance(value, dict):
                    continue
                if f"{section}.{key}" not in settings.overrides and f"{section}.{key}" not in sized:
                    assert generated[section][key] == value, (overlay, section, key)


def test_an_erasure_job_carries_the_subject_and_a_bad_one_is_refused(rendered):
    from fleet.cli.deploy import check_erase_args
    from fleet.deploy.erasure import erasure_job

    job = erasure_job(rendered["production"], ["--vehicle", "10042", "--since", "2026-11-01T00:00:00Z"], check_args=check_erase_args)
    assert problems([{**job, "metadata": {**job["metadata"], "name": "lake-erase-10042-x"}}]) == []
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["args"][-4:] == ["--vehicle", "10042", "--since", "2026-11-01T00:00:00Z"]
    assert job["metadata"]["generateName"] == "lake-erase-10042-"
    with pytest.raises(DeployError, match="ISO-8601"):
        erasure_job(rendered["production"], ["--vehicle", "10042", "--since", "last tuesday"], check_args=check_erase_args)
    with pytest.raises(DeployError, match="not allowed with argument"):
        erasure_job(rendered["production"], ["--vehicle", "1", "--trip", "t"], check_args=check_erase_args)


def test_a_backfill_deployment_validates_and_a_bad_range_is_refused(rendered):
    from fleet.cli.deploy import check_backfill_args
    from fleet.deploy.backfill import backfill_deployment

    deployment = backfill_deployment(rendered["production"], ["--from", "2026-12-01T10:00:00Z", "--to", "2026-12-01T11:00:00Z",
                                                              "--sinks", "store,bronze"], check_args=check_backfill_args)
    assert problems([deployment]) == []
    job = deployment["spec"]["job"]
    assert job["upgradeMode"] == "stateless" and job["args"][:2] == ["-pym", "jobs.backfill.job"]
    assert deployment["metadata"]["name"] == "backfill-2026-12-01t10-00-00z"
    assert "/telemetry-pipeline" not in deployment["spec"]["flinkConfiguration"]["high-availability.storageDir"]
    with pytest.raises(DeployError):
        backfill_deployment(rendered["production"], ["--from", "2026-12-01T11:00:00Z", "--to", "2026-12-01T10:00:00Z"],
                            check_args=check_backfill_args)


def test_the_local_overlays_servers_are_the_versions_the_suite_runs(rendered):
    import importlib.metadata
    import re
    import shutil
    import subprocess

    images = {c["name"]: c["image"] for o in objects_of(rendered["local"], "Deployment").values()
              for c in o["spec"]["template"]["spec"]["containers"]}
    pom = (ROOT / "connectors" / "jvm" / "pom.xml").read_text()
    assert images["kafka"] == "apache/kafka:" + re.search(r"<kafka.version>([^<]+)</kafka.version>", pom).group(1)
    # moto is not pinned (moto>=5): the image is the version the suite ran when it was written, and
    # must stay on the same major version as the one installed now.
    assert images["moto"].startswith("motoserver/moto:")
    assert images["moto"].split(":")[1].split(".")[0] == importlib.metadata.version("moto").split(".")[0]
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    version = re.search(r"mosquitto version (\S+)", subprocess.run([mosquitto, "-h"], capture_output=True, text=True).stdout).group(1)
    assert images["mosquitto"] == f"eclipse-mosquitto:{version}"
