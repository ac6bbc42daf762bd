"""docs/metrics.md shows the scrape config infra/prometheus.py generates for the local profile, and
names every series the exporters of this repository define."""

from __future__ import annotations

import re
from pathlib import Path

from device_sim.sim_metrics import SimMetrics
from fleet.config import load_config
from infra.prometheus import scrape_config
from ingest.metrics import BridgeCollector
from tests.unit.test_bridge_metrics import FakeBridge

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_the_docs_scrape_config_is_the_generated_one():
    text = DOC.read_text()
    block = re.search(r"<!-- generated: scrape_config\(local\) -->\n```yaml\n(.*?)```\n<!-- end generated -->", text, re.S)
    assert block, "docs/metrics.md lost its generated block"
    assert block.group(1) == scrape_config(load_config("local", environ={}))


def test_the_docs_name_every_bridge_and_simulator_series():
    text = DOC.read_text()
    families = [*BridgeCollector(FakeBridge().stats, reasons=()).collect(), *SimMetrics("mqtt", target_rate=1.0).collect()]
    names = {f.name + ("_total" if f.type == "counter" else "") for f in families}
    assert len(names) > 15
    missing = [n for n in sorted(names) if f"`{n}" not in text]
    assert not missing, missing
