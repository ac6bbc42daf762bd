"""Throughput of the MQTT→Kafka bridge, and what it costs in CPU: messages/s and messages per CPU-second.

    python -m fleet.bench.bridge [--profile local] [--set …] [--messages 100000]

How it measures, so that the figure is the bridge's and not the load generator's:
1. a Mosquitto of its own (temporary folder, free port, unlimited queue), and fresh Kafka topics on
   the profile's broker (started if needed);
2. the bridge's persistent session is created and left, subscribed, so the broker queues for it;
3. publisher processes publish the simulated fleet's payloads (QoS 1) and finish;
4. only then the bridge starts, in this process, and drains the backlog: from start to the last
   Kafka-confirmed, acknowledged message. CPU = this process's user+system time over that
   interval (the bridge thread and librdkafka's threads; nothing else runs here), and the bridge
   thread's own time apart. Mosquitto and Kafka run as other processes and are not counted.
Prints the figures, returns them as a dict and writes them as JSON. No assertions: it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from infra.mosquitto import MosquittoBroker
from infra.process import free_port


class _BenchMosquitto(MosquittoBroker):
    """Anonymous, no persistence, an unlimited queue: the whole backlog must wait for the bridge."""

    def config_text(self) -> str:
        keep = []
        for line in super().config_text().splitlines():
            if line.startswith(("max_queued_messages", "persistence", "autosave_interval")) or not line:
                continue
            keep.append(line)
        return "\n".join([*keep, "persistence false", "max_queued_messages 0", "max_queued_bytes 0", ""])


def _publish(host: str, port: int, messages: list[tuple[str, bytes]], client_id: str) -> int:
    """In a publisher process: every message at QoS 1; returns how many the broker acknowledged."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1_000)
    client.max_queued_messages_set(0)
    counts = {"acked": 0}

    def on_publish(_c, _u, _mid, reason_code, _p) -> None:
        if not reason_code.is_failure:
            counts["acked"] += 1

    client.on_publish = on_publish
    client.connect(host, port, keepalive=60)
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 300
        while counts["acked"] < len(messages) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return counts["acked"]


def _publish_in_processes(broker: MosquittoBroker, payloads: list[tuple[str, bytes]], publishers: int, folder: Path, suffix: str) -> int:
    """Publish from `publishers` child processes (python -m this module --publish FILE), so the
    load generator's CPU is never this process's."""
    procs = []
    for i in range(publishers):
        path = folder / f"payloads-{i}.txt"
        with path.open("wb") as handle:
            for topic, payload in payloads[i::publishers]:
                handle.write(topic.encode() + b"\t" + payload + b"\n")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "fleet.bench.bridge", "--publish", str(path),
             "--mqtt", f"{broker.host}:{broker.port}", "--client-id", f"bench-pub-{i}-{suffix}"],
            stdout=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
        ))
    acked = 0
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"benchmark publisher exited with {proc.returncode}")
        acked += int(out.decode().split()[-1])
    return acked


def _publisher_main(path: Path, address: str, client_id: str) -> int:
    host, _, port = address.rpartition(":")
    messages = []
    with path.open("rb") as handle:
        for line in handle:
            topic, _, payload = line.rstrip(b"\n").partition(b"\t")
            messages.append((topic.decode(), payload))
    print(_publish(host, int(port), messages, client_id), flush=True)
    return 0


def _make_session(host: str, port: int, client_id: str, subscription: str) -> None:
    """Create the bridge's persistent session with its subscription, then leave it."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    subscribed = []
    client.on_subscribe = lambda *_: subscribed.append(True)
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3_600
    client.connect(host, port, keepalive=60, clean_start=True, properties=props)
    client.loop_start()
    client.subscribe(subscription, qos=1)
    deadline = time.monotonic() + 10
    while not subscribed and time.monotonic() < deadline:
        time.sleep(0.01)
    client.disconnect()
    client.loop_stop()
    if not subscribed:
        raise RuntimeError("benchmark: could not subscribe the bridge session")


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """CPU seconds of every thread of this process, by thread id: /proc/self/task/*/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    threads = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        threads[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / tick)  # utime + stime
    return threads


def _cpu_by_thread(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU used between two snapshots, summed by thread name (librdkafka names its threads rdk:*)."""
    used: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        delta = cpu - before.get(tid, (name, 0.0))[1]
        if delta > 0:
            used[name] = round(used.get(name, 0.0) + delta, 2)
    return dict(sorted(used.items(), key=lambda item: -item[1]))


def _mosquitto_version() -> str:
    try:
        out = subprocess.run([MosquittoBroker.executable(), "-h"], check=False, capture_output=True, text=True, timeout=5)
        return (out.stdout or out.stderr).splitlines()[0]
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def run_bridge_benchmark(
    config: Any,
    *,
    messages: int = 100_000,
    vehicles: int = 5_000,
    publishers: int = 2,
    receive_maximum: int = 1_000,
    max_in_flight: int = 10_000,
    out_dir: Path | None = None,
) -> dict[str, Any]:
    """Measure the bridge draining a backlog of `messages`; see the module doc. `config` is a
    PlatformConfig (Kafka address, topic partitions, run folder)."""
    from connectors.kafka_clients import end_offsets
    from connectors.kafka_topics import TopicSpec, admin_client, ensure_topics
    from device_sim.fleet_model import Fleet, FleetSpec
    from infra.manager import LocalInfra
    from ingest.bridge import MqttKafkaBridge
    from ingest.settings import BridgeConfig
    from udfs.telemetry_schema import encode

    if config.kafka.bootstrap_servers == config.infra.kafka_address:
        LocalInfra(config.infra).up(["kafka"])
    bootstrap = config.kafka.bootstrap_servers
    suffix = uuid.uuid4().hex[:8]
    telemetry, dlq = f"bench-bridge-telemetry-{suffix}", f"bench-bridge-dlq-{suffix}"
    partitions = config.kafka.topic("telemetry").partitions
    ensure_topics(admin_client(bootstrap), [
        TopicSpec("telemetry", telemetry, partitions, 1, {"compression.type": "lz4"}),
        TopicSpec("dlq", dlq, 1, 1, {}),
    ])

    payloads = [(f"telemetry/{e['vehicle_id']}", encode(e)) for e in Fleet(FleetSpec(vehicles=vehicles)).take(messages)]
    payload_bytes = sum(len(p) for _, p in payloads)

    run_dir = Path(tempfile.mkdtemp(prefix="bridge-bench-", dir=_ensure(config.infra.run_dir / "bench")))
    broker = _BenchMosquitto(run_dir, config.infra.host, free_port(config.infra.host))
    broker.up()
    bridge_config = BridgeConfig(
        bootstrap_servers=bootstrap, telemetry_topic=telemetry, dlq_topic=dlq,
        mqtt_host=broker.host, mqtt_port=broker.port, group=f"bench-{suffix}", client_id=f"bench-bridge-{suffix}",
        receive_maximum=receive_maximum, max_in_flight=max_in_flight,
    )
    try:
        _make_session(broker.host, broker.port, bridge_config.client_id, bridge_config.subscription)

        started = time.perf_counter()
        acked = _publish_in_processes(broker, payloads, publishers, run_dir, suffix)
        publish_s = time.perf_counter() - started
        if acked != messages:
            raise RuntimeError(f"benchmark: the broker acknowledged {acked} of {messages} publishes")

        bridge = MqttKafkaBridge(bridge_config)
        threads_before = _thread_cpu()
        usage_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        bridge.start()
        deadline = started + 600
        while bridge.stats()["acked"] < messages and time.perf_counter() < deadline:
            if bridge.error is not None:
                raise bridge.error
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        usage_after = resource.getrusage(resource.RUSAGE_SELF)
        by_thread = _cpu_by_thread(threads_before, _thread_cpu())
        stats = bridge.stop()
    finally:
        broker.down()

    written = sum(end_offsets(bootstrap, telemetry).values())
    cpu_s = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    result = {
        "benchmark": "mqtt-kafka-bridge",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "messages": messages,
        "vehicles": vehicles,
        "mean_payload_bytes": round(payload_bytes / messages),
        "publish_backlog_s": round(publish_s, 2),
        "drain_s": round(seconds, 3),
        "msgs_per_s": round(messages / seconds),
        "cpu_s_process": round(cpu_s, 3),
        "cpu_s_bridge_thread": round(bridge.thread_cpu_s, 3),
        "msgs_per_cpu_s": round(messages / cpu_s) if cpu_s else None,
        "msgs_per_cpu_s_bridge_thread": round(messages / bridge.thread_cpu_s) if bridge.thread_cpu_s else None,
        "cpu_s_by_thread": by_thread,
        # The benchmark's process at its peak: the bridge, plus the payloads it published (an upper bound).
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "written_to_kafka": written,
        "receive_maximum": receive_maximum,
        "max_in_flight": max_in_flight,
        "bridge_stats": stats,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "mosquitto": _mosquitto_version()},
        "telemetry_topic": telemetry,
        "partitions": partitions,
    }
    out = _ensure(out_dir or config.infra.run_dir / "bench") / f"bridge-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    result["file"] = str(out)
    print(
        f"bridge drained {messages} messages in {seconds:.2f}s: {result['msgs_per_s']:,} msgs/s; "
        f"CPU {cpu_s:.2f}s (bridge thread {bridge.thread_cpu_s:.2f}s) → {result['msgs_per_cpu_s']:,} msgs per CPU-second; "
        f"{written} written to Kafka, resyncs {stats['resyncs']}, deferred {stats['deferred']}"
    )
    print(f"CPU seconds by thread: {by_thread}")
    print(f"written to {out}")
    return result


def record(result: dict[str, Any]) -> Path:
    """The run's figures as docs/benchmarks/bridge.json (committed), what `telemetry deploy
    generate` sizes the bridge Deployment from."""
    target = Path(__file__).resolve().parents[2] / "docs" / "benchmarks" / "bridge.json"
    target.write_text(json.dumps({k: v for k, v in result.items() if k != "file"}, indent=2) + "\n")
    return target


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main(argv: Sequence[str] | None = None) -> int:
    from fleet.config import load_config

    parser = argparse.ArgumentParser(prog="mqtt-bridge-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="local")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--vehicles", type=int, default=5_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--receive-maximum", type=int, default=1_000)
    parser.add_argument("--max-in-flight", type=int, default=10_000)
    parser.add_argument("--publish", type=Path, help=argparse.SUPPRESS)  # internal: a publisher process
    parser.add_argument("--mqtt", help=argparse.SUPPRESS)
    parser.add_argument("--client-id", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish:
        return _publisher_main(args.publish, args.mqtt, args.client_id)
    run_bridge_benchmark(
        load_config(args.profile, args.set), messages=args.messages, vehicles=args.vehicles, publishers=args.publishers,
        receive_maximum=args.receive_maximum, max_in_flight=args.max_in_flight,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
