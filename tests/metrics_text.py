"""Read a /metrics page in tests: scrape it over HTTP and pick samples by name and labels, parsed by
prometheus_client's own text parser (what a Prometheus server would read)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def get(url: str, timeout_s: float = 5.0) -> tuple[int, str, str]:
    """(status, content type, body) of a GET; HTTP errors are answers too (healthz says 503)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def scrape(port: int, host: str = "127.0.0.1") -> list[Sample]:
    status, _, text = get(f"http://{host}:{port}/metrics")
    assert status == 200, f"/metrics on {port} answered {status}"
    return [Sample(s.name, dict(s.labels), s.value) for family in text_string_to_metric_families(text) for s in family.samples]


def values(samples: list[Sample], name: str, **labels: str) -> list[float]:
    """Values of the samples called `name` whose labels include `labels`."""
    return [s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample called `name` with these labels (fails if there are none or several)."""
    found = values(samples, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples, wanted one"
    return found[0]


def poll(fetch: Callable[[], object], until: Callable[[object], bool], *, timeout_s: float, what: str, interval_s: float = 0.5):
    """Call `fetch` until `until(result)` holds; return that result (fail with the last one)."""
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            last = fetch()
            if until(last):
                return last
        except (OSError, AssertionError) as exc:  # not up yet
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached in {timeout_s:.0f}s; last: {str(last)[:2000]}")
        time.sleep(interval_s)
