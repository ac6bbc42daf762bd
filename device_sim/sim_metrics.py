"""The simulator's Prometheus metrics: `telemetry sim run … --metrics-port N` serves /metrics while it
runs.

    sim_events_generated_total{output}     items the fleet model produced (faults included)
    sim_events_published_total{output}     handed to the output (paho / librdkafka / stdout)
    sim_events_acknowledged_total{output}  confirmed by it: PUBACK (MQTT QoS ≥ 1), the broker's ack
                                           (Kafka), written (jsonl)
    sim_events_failed_total{output}        refused, or not acknowledged in time
    sim_events_per_second{output}          gauge: generated events/s over the last 5 s
    sim_target_events_per_second           gauge: --rate, when given
    sim_vehicles                           gauge: the fleet's size
    sim_running                            gauge: 1 while sending, 0 once the run is over

Counts are read from the output at scrape time (`attach` gives the collector functions that read
the output's own counters, which the output's threads keep), so nothing is counted twice and the
hot loop pays nothing extra but the generated count (a generator step per item, only with
--metrics-port). Kafka's acknowledged count while running is published − still queued in
librdkafka − failed (its delivery reports are for failures only); at the end, `finish(report)`
fixes every count to the output's report.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

RATE_WINDOW_S = 5.0
_ZERO: Callable[[], int] = lambda: 0  # noqa: E731


class SimMetrics:
    def __init__(self, output: str, *, vehicles: int = 0, target_rate: float | None = None,
                 clock: Callable[[], float] = time.monotonic, sample_every_s: float = 0.5):
        self.output = output
        self.vehicles = vehicles
        self.target_rate = target_rate
        self.clock = clock
        self.sample_every_s = sample_every_s
        self.generated = 0
        self.running = True
        self._published = self._acknowledged = self._failed = _ZERO
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._server: Any = None

    # -- what the run tells us -------------------------------------------------------------------

    def count_items(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            self.generated += 1
            yield item

    def count_batches(self, batches: Iterable[tuple[int, list[Any]]]) -> Iterator[tuple[int, list[Any]]]:
        """For (event time, [item, …]) batches (the Kafka load path)."""
        for ts, batch in batches:
            self.generated += len(batch)
            yield ts, batch

    def attach(self, *, published: Callable[[], int], acknowledged: Callable[[], int], failed: Callable[[], int]) -> None:
        """Functions reading the output's live counters (called from the HTTP thread)."""
        self._published, self._acknowledged, self._failed = published, acknowledged, failed

    def attach_kafka(self, producer: Any, outcome: dict[str, Any], sent: Callable[[], int]) -> None:
        """A confluent-kafka producer reporting failures only: acknowledged = sent − queued − failed."""
        def acknowledged() -> int:
            try:
                queued = len(producer)
            except RuntimeError:  # closed: everything it held was delivered or failed
                queued = 0
            return max(0, sent() - queued - outcome["failed"])

        self.attach(published=sent, acknowledged=acknowledged, failed=lambda: outcome["failed"])

    def finish(self, report: Any = None) -> None:
        """The run is over: counts fixed to the output's report (a ProduceReport), if any."""
        if report is not None:
            sent, acknowledged, failed = report.sent, report.acknowledged, report.failed
            self.attach(published=lambda: sent, acknowledged=lambda: acknowledged, failed=lambda: failed)
        self.running = False
        self.sample()

    # -- the rate ----------------------------------------------------------------------------------

    def sample(self) -> None:
        now = self.clock()
        with self._lock:
            self._samples.append((now, self.generated))
            while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW_S:
                self._samples.popleft()

    def rate(self) -> float:
        """Generated events/s between the oldest sample of the window and now."""
        self.sample()
        with self._lock:
            (t0, n0), (t1, n1) = self._samples[0], self._samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def _sample_forever(self) -> None:
        while not self._done.wait(self.sample_every_s):
            self.sample()

    # -- Prometheus ------------------------------------------------------------------------------

    def collect(self) -> Iterator[Any]:
        labels = [self.output]
        for name, help_text, read in (
            ("generated", "events the fleet model produced", lambda: self.generated),
            ("published", "events handed to the output", self._published),
            ("acknowledged", "events the output confirmed (PUBACK, Kafka ack, written)", self._acknowledged),
            ("failed", "events refused or not acknowledged in time", self._failed),
        ):
            family = CounterMetricFamily(f"sim_events_{name}", help_text, labels=["output"])
            family.add_metric(labels, read())
            yield family
        rate = GaugeMetricFamily("sim_events_per_second", f"generated events/s over the last {RATE_WINDOW_S:g} s", labels=["output"])
        rate.add_metric(labels, self.rate())
        yield rate
        if self.target_rate:
            yield GaugeMetricFamily("sim_target_events_per_second", "the --rate asked for", value=self.target_rate)
        yield GaugeMetricFamily("sim_vehicles", "vehicles in the simulated fleet", value=self.vehicles)
        yield GaugeMetricFamily("sim_running", "1 while the simulator sends, 0 once its run is over", value=1 if self.running else 0)

    def serve(self, host: str, port: int) -> int:
        """/metrics on host:port in threads of their own (with a sampler for the rate); returns the port."""
        registry = CollectorRegistry()
        registry.register(self)
        self.sample()
        self._server, _thread = start_http_server(port, addr=host, registry=registry)
        threading.Thread(target=self._sample_forever, name="sim-metrics-sampler", daemon=True).start()
        return self._server.server_address[1]

    def close(self) -> None:
        self._done.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
