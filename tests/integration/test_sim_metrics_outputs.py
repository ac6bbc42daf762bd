"""`telemetry sim run --metrics-port N` with real outputs: what /metrics says at the end of a run
equals what arrived (an MQTT subscriber's count, a Kafka topic's end offsets), and while a paced
run goes on, the rate gauge is the pace asked for."""

from __future__ import annotations

import argparse
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest

from connectors.kafka_clients import end_offsets
from device_sim import cli
from infra.process import free_port
from tests.metrics_text import poll, scrape, value

pytestmark = pytest.mark.integration


def sim_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


class Counting:
    """An MQTT subscriber counting messages under telemetry/#."""

    def __init__(self, host: str, port: int):
        self.count = 0
        self.lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-metrics-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv311)
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe("telemetry/#", qos=1)
        assert subscribed.wait(10)

    def _on_message(self, *_args) -> None:
        with self.lock:
            self.count += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_mqtt_run_counts_equal_what_the_broker_delivered(mqtt_address):
    host, port = mqtt_address
    metrics_port = free_port()
    subscriber = Counting(host, port)
    scraped = []

    def out(line: str) -> None:
        if line.startswith("events per mode:"):  # printed after the run, before /metrics closes
            scraped.append(scrape(metrics_port))

    try:
        args = sim_args("--vehicles", "30", "--duration-s", "10", "--as-fast-as-possible", "--output", "mqtt",
                        "--mqtt", f"{host}:{port}", "--duplicates", "5", "--metrics-port", str(metrics_port), "--report-every-s", "0")
        assert cli.run(args, out=out) == 0
        [samples] = scraped
        acknowledged = value(samples, "sim_events_acknowledged_total", output="mqtt")
        poll(lambda: subscriber.count, lambda n: n >= acknowledged, timeout_s=15, what=f"{acknowledged:.0f} messages at the subscriber")
        assert subscriber.count == acknowledged > 30
    finally:
        subscriber.close()
    assert value(samples, "sim_events_generated_total", output="mqtt") == acknowledged
    assert value(samples, "sim_events_published_total", output="mqtt") == acknowledged
    assert value(samples, "sim_events_failed_total", output="mqtt") == 0


def test_kafka_run_counts_equal_the_topic_and_the_rate_is_the_pace(kafka_bootstrap, fresh_topic):
    topic = fresh_topic(2)
    metrics_port = free_port()
    during, at_end = [], []

    def out(line: str) -> None:
        if line.startswith(f"{topic}: sent: "):  # a progress line (every second): the run is under way
            during.append(scrape(metrics_port))
        if line.startswith("events per mode:"):
            at_end.append(scrape(metrics_port))

    # 200 vehicles at 1 Hz for 20 s of event time = 4,000 events, sent at 800/s: 5 s of sending.
    args = sim_args("--vehicles", "200", "--modes", "1hz", "--duration-s", "20", "--rate", "800", "--output", "kafka",
                    "--bootstrap", kafka_bootstrap, "--topic", topic, "--metrics-port", str(metrics_port), "--report-every-s", "1")
    assert cli.run(args, out=out) == 0
    [samples] = at_end
    on_topic = sum(end_offsets(kafka_bootstrap, topic).values())
    assert on_topic == 4_000
    for name in ("generated", "published", "acknowledged"):
        assert value(samples, f"sim_events_{name}_total", output="kafka") == on_topic, name
    assert value(samples, "sim_events_failed_total", output="kafka") == 0
    assert value(samples, "sim_target_events_per_second") == 800

    assert len(during) >= 3
    late = during[-1]  # at least 3 s into the run
    assert value(late, "sim_running") == 1
    assert 600 <= value(late, "sim_events_per_second", output="kafka") <= 1_000  # 800/s ± 25 %
    progress = [value(s, "sim_events_published_total", output="kafka") for s in during]
    # the first progress line comes mid-run; the last may come as the final batch is flushed
    assert progress == sorted(progress) and 0 < progress[0] < 4_000 and progress[-1] <= 4_000
    acked = [value(s, "sim_events_acknowledged_total", output="kafka") for s in during]
    assert all(0 <= a <= p for a, p in zip(acked, progress))
