"""The image recipe (deploy/flink-k8s/Dockerfile) against what the project pins: the Flink of our
PyFlink, Python 3.11, every package, the jars from connectors/jvm/image_jars.sh (whose output
tests/integration/test_image_jars.py compares with the local jars), and the paths the manifests name."""

from __future__ import annotations

import importlib.metadata
import re

from fleet.deploy.overlays import DEPLOY_DIR
from infra.flink_cluster import flink_home

ROOT = DEPLOY_DIR.parents[1]
DOCKERFILE = (DEPLOY_DIR / "Dockerfile").read_text()


def test_the_base_is_the_official_flink_image_of_our_pyflink_with_python_3_11():
    [base] = re.findall(r"^FROM (flink:\S+)$", DOCKERFILE, re.M)
    assert base == f"flink:{importlib.metadata.version('apache-flink')}-scala_2.12-java17"
    assert "python3.11 python3.11-venv python3.11-dev" in DOCKERFILE and "python3.11 -m venv /opt/venv" in DOCKERFILE
    requires = re.search(r'requires-python = "([^"]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    assert requires.startswith(">=3.11")


def test_every_package_is_copied_and_installed_with_the_edge_agent():
    packages = [p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"]
    for package in packages:
        assert f"COPY {package} /opt/fleet/{package}" in DOCKERFILE, package
    assert "COPY pyproject.toml README.md /opt/fleet/" in DOCKERFILE   # the build backend reads the readme
    assert "pip install --no-cache-dir /opt/fleet/edge_agent /opt/fleet" in DOCKERFILE
    assert "PYTHONPATH=/opt/fleet" in DOCKERFILE   # -pym jobs.<module> from the project root


def test_the_jars_come_from_the_shared_script_into_lib_and_plugins():
    assert "RUN sh /build/image_jars.sh /build/pom.xml /build/fleet-flink /build/out" in DOCKERFILE
    assert "COPY --from=jars /build/out/lib/ /opt/flink/lib/" in DOCKERFILE
    assert "COPY --from=jars /build/out/plugins/ /opt/flink/plugins/" in DOCKERFILE
    assert "TELEMETRY_JARS_IN_FLINK_LIB=1" in DOCKERFILE
    # The manifests' jarURI is the flink-python jar the image copies from opt/ into lib/.
    [python_jar] = [p.name for p in (flink_home() / "opt").glob("flink-python-*.jar")]
    assert "cp /opt/flink/opt/flink-python-*.jar /opt/flink/lib/" in DOCKERFILE
    assert f"local:///opt/flink/lib/{python_jar}" in (DEPLOY_DIR / "base" / "telemetry-pipeline.yaml").read_text()
    assert "/opt/venv/bin/python" in (DEPLOY_DIR / "base" / "telemetry-pipeline.yaml").read_text()
