"""The simulator's /metrics (device_sim/sim_metrics.py): the CLI serves it on a free port while it
runs; the counts scraped at the end of a run equal what it wrote (the lines on stdout), and the
rate gauge is generated events over its window, on a clock the test moves.

The outputs with servers behind them (MQTT, Kafka): tests/integration/test_sim_metrics_outputs.py."""

from __future__ import annotations

import argparse

import pytest

from device_sim import cli
from device_sim.sim_metrics import RATE_WINDOW_S, SimMetrics
from infra.process import free_port
from tests.metrics_text import scrape, value


def sim_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def run_and_scrape_at_the_end(args: argparse.Namespace, **kwargs) -> tuple[int, list]:
    """Run the simulator; scrape its /metrics when it prints its last line (its server is still
    up then: it closes when run() returns)."""
    scraped = []

    def out(line: str) -> None:
        if line.startswith("events per mode:"):
            scraped.append(scrape(args.metrics_port))

    status = cli.run(args, out=out, **kwargs)
    assert len(scraped) == 1
    return status, scraped[0]


def test_jsonl_run_counts_every_line_it_wrote(capsysbinary):
    port = free_port()
    args = sim_args("--vehicles", "25", "--duration-s", "20", "--as-fast-as-possible", "--output", "jsonl",
                    "--duplicates", "7", "--malformed", "4", "--metrics-port", str(port))
    status, samples = run_and_scrape_at_the_end(args)
    lines = capsysbinary.readouterr().out.splitlines()
    assert status == 0 and len(lines) > 25
    jsonl = {"output": "jsonl"}
    assert value(samples, "sim_events_generated_total", **jsonl) == len(lines)
    assert value(samples, "sim_events_published_total", **jsonl) == len(lines)
    assert value(samples, "sim_events_acknowledged_total", **jsonl) == len(lines)
    assert value(samples, "sim_events_failed_total", **jsonl) == 0
    assert value(samples, "sim_vehicles") == 25
    assert value(samples, "sim_running") == 0  # the run is over when its last line is printed


def test_null_output_generates_and_publishes_nothing(capsysbinary):
    port = free_port()
    args = sim_args("--vehicles", "10", "--duration-s", "30", "--as-fast-as-possible", "--output", "null", "--metrics-port", str(port))
    said = []
    scraped = []

    def out(line: str) -> None:
        said.append(line)
        if line.startswith("events per mode:"):
            scraped.append(scrape(port))

    assert cli.run(args, out=out) == 0
    [generated_line] = [line for line in said if line.startswith("generated ")]
    generated = int(generated_line.split()[1].replace(",", ""))
    assert generated > 0
    assert value(scraped[0], "sim_events_generated_total", output="null") == generated
    assert value(scraped[0], "sim_events_published_total", output="null") == 0


def test_metrics_server_is_closed_after_the_run():
    port = free_port()
    cli.run(sim_args("--vehicles", "2", "--duration-s", "2", "--as-fast-as-possible", "--output", "null", "--metrics-port", str(port)),
            out=lambda _line: None)
    with pytest.raises(OSError):
        scrape(port)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_rate_is_generated_events_over_the_window():
    clock = Clock()
    metrics = SimMetrics("mqtt", clock=clock, target_rate=50.0)
    metrics.sample()
    assert metrics.rate() == 0.0
    for _ in range(3):  # 40 events/s for 3 s
        list(metrics.count_items(range(40)))
        clock.now += 1
        metrics.sample()
    assert metrics.rate() == pytest.approx(40.0)
    for _ in range(10):  # then 10 events/s for 10 s: the window forgets the 40/s
        list(metrics.count_batches([(0, list(range(10)))]))
        clock.now += 1
        metrics.sample()
    assert metrics.rate() == pytest.approx(10.0)
    # The window is at least RATE_WINDOW_S long and its oldest sample at most one interval older.
    window = clock.now - metrics._samples[0][0]
    assert RATE_WINDOW_S <= window <= RATE_WINDOW_S + 1


def test_counts_come_from_the_attached_output_until_the_report_fixes_them():
    metrics = SimMetrics("kafka", vehicles=3)
    port = metrics.serve("127.0.0.1", free_port())
    try:
        live = {"sent": 0, "acked": 0, "failed": 0}
        metrics.attach(published=lambda: live["sent"], acknowledged=lambda: live["acked"], failed=lambda: live["failed"])
        live.update(sent=12, acked=9, failed=1)
        samples = scrape(port)
        assert [value(samples, f"sim_events_{n}_total", output="kafka") for n in ("published", "acknowledged", "failed")] == [12, 9, 1]
        assert value(samples, "sim_running") == 1

        class Report:
            sent, acknowledged, failed = 15, 14, 1

        metrics.finish(Report())
        live.update(sent=999)  # no longer read
        samples = scrape(port)
        assert [value(samples, f"sim_events_{n}_total", output="kafka") for n in ("published", "acknowledged", "failed")] == [15, 14, 1]
        assert value(samples, "sim_running") == 0
    finally:
        metrics.close()
