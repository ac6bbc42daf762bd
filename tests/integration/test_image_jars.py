"""The image's jars are the local runs' jars: connectors/jvm/image_jars.sh — what the Dockerfile's
first stage runs — run here with Maven, and its lib/ and plugins/ compared by name with what
`telemetry jars fetch` installed from the same pom (connectors/jars.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from connectors import jars

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_the_image_recipe_makes_exactly_the_local_jars(tmp_path):
    jvm = ROOT / "connectors" / "jvm"
    subprocess.run(["sh", str(jvm / "image_jars.sh"), str(jvm / "pom.xml"), str(jvm / "fleet-flink"), str(tmp_path)],
                   check=True, timeout=600, capture_output=True, text=True)

    def names(folder: Path) -> list[str]:
        return sorted(p.name for p in folder.glob("*.jar"))

    fetched = {jar_set.profile: jar_set for jar_set in jars.fetch(("flink", "flink-plugins", "flink-metrics"))}
    assert names(tmp_path / "lib") == sorted(j.name for j in fetched["flink"].jars)
    assert any(n.startswith("fleet-flink-") for n in names(tmp_path / "lib"))
    assert names(tmp_path / "plugins" / "s3-fs-hadoop") == sorted(j.name for j in fetched["flink-plugins"].jars)
    assert names(tmp_path / "plugins" / "metrics-prometheus") == sorted(j.name for j in fetched["flink-metrics"].jars)
    assert sorted(p.name for p in (tmp_path / "plugins").iterdir()) == ["metrics-prometheus", "s3-fs-hadoop"]
    assert not (tmp_path / "fleet-flink-build").exists()
