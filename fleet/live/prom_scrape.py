"""Read a process's Prometheus /metrics once: what the live status takes from the simulator, the
bridges and the Flink jobs (their own reporters), so the terminal shows the same numbers a
Prometheus server would scrape."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(host: str, port: int, timeout_s: float = 1.0) -> dict[str, float] | None:
    """Every sample's value summed over its labels, by sample name; None if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout_s) as response:
            text = response.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.value == sample.value:  # NaN: a gauge with nothing to report yet
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def pick(values: dict[str, float] | None, *suffixes: str) -> float | None:
    """The first sample whose name ends with one of `suffixes` (tried in order), summed over names
    that share it. Flink prefixes its metrics by scope (`flink_taskmanager_job_task_operator_…`),
    so a suffix names a metric wherever the reporter puts it."""
    if not values:
        return None
    for suffix in suffixes:
        found = [v for name, v in values.items() if name.endswith(suffix)]
        if found:
            return sum(found)
    return None
