"""The edge agent as a vehicle installs it: `pip install ./edge_agent` into an empty venv brings
fleet-edge-agent and paho-mqtt and nothing of the pipeline's, and that venv's `edge-agent` publishes
to a real Mosquitto at the seed's rate.

The agent reads its sensor feed (a file of the sensor daemon's JSON lines: one state, a vehicle in a
trip) since the simulator is not there; the payloads it sends are checked with the pipeline's schema.
The edge_agent folder is copied first, so the build writes nothing into the checkout and needs nothing
outside the folder. pip gets setuptools and paho-mqtt from PyPI (its cache makes a rerun quick).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from device_sim.simulated_sensors import SimulatedSensorSource
from edge_agent.rate import SEED_RATES, reading_rate_hz
from edge_agent.sensors import VehicleMode
from infra.mosquitto import MosquittoBroker
from infra.process import free_port
from udfs.telemetry_schema import Rejection, parse

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
VEHICLE = 4242
SPEEDUP = 2.0  # the in-trip 5 Hz becomes 10 readings a second
RUN_S = 4.0
PIPELINE_DISTRIBUTIONS = ("apache-flink", "pyarrow", "boto3", "confluent-kafka", "orjson", "fleet-telemetry")


def _clean_env() -> dict[str, str]:
    """The environment without what would let the new venv see the checkout or this venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.fixture(scope="module")
def agent_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty venv with `pip install <copy of edge_agent>` (non-editable), nothing else."""
    root = tmp_path_factory.mktemp("edge-install")
    source = root / "edge_agent"
    shutil.copytree(
        REPO / "edge_agent", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=root, env=_clean_env(), timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(source)],
        cwd=root, env=_clean_env(), capture_output=True, text=True, timeout=300,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


def test_the_install_holds_the_agent_and_paho_and_nothing_of_the_pipeline(agent_venv: Path) -> None:
    listed = subprocess.run(
        [str(agent_venv / "bin" / "python"), "-m", "pip", "list", "--format", "json"],
        cwd=agent_venv, env=_clean_env(), capture_output=True, text=True, check=True, timeout=60,
    )
    names = {entry["name"].lower().replace("_", "-") for entry in json.loads(listed.stdout)}
    assert {"fleet-edge-agent", "paho-mqtt"} <= names, names
    assert not names & set(PIPELINE_DISTRIBUTIONS), names
    for module in ("udfs", "device_sim", "fleet", "orjson"):
        tried = subprocess.run(
            [str(agent_venv / "bin" / "python"), "-c", f"import {module}"],
            cwd=agent_venv, env=_clean_env(), capture_output=True, text=True, timeout=60,
        )
        assert tried.returncode != 0 and "ModuleNotFoundError" in tried.stderr, (module, tried.stderr)


def test_without_a_sensor_feed_or_the_simulator_the_agent_says_so_and_exits_2(agent_venv: Path, tmp_path: Path) -> None:
    ran = subprocess.run(
        [str(agent_venv / "bin" / "edge-agent"), "--vehicle-id", str(VEHICLE), "--spool-dir", str(tmp_path / "spool")],
        cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=60,
    )
    assert ran.returncode == 2, ran.stderr
    assert "--sensor-feed" in ran.stderr and "device_sim" in ran.stderr


def test_the_installed_agent_publishes_its_feed_at_the_in_trip_rate(agent_venv: Path, tmp_path: Path) -> None:
    # One state of a vehicle in a trip, as its sensor daemon would write it (the agent sets the
    # vehicle_id and the timestamp).
    state = SimulatedSensorSource(VEHICLE, seed=3).read()
    del state["vehicle_id"], state["timestamp"]
    state["vehicle_status"] = {**state["vehicle_status"], "in_use": True, "locked": False}
    feed = tmp_path / "sensors.jsonl"
    feed.write_text(json.dumps(state) + "\n")

    broker = MosquittoBroker(tmp_path / "run", HOST, free_port())
    broker.up()
    received: list[mqtt.MQTTMessage] = []
    lock = threading.Lock()
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-edge-install", protocol=mqtt.MQTTv311)
    client.on_subscribe = lambda *_args: subscribed.set()

    def on_message(_client: mqtt.Client, _userdata: object, message: mqtt.MQTTMessage) -> None:
        with lock:
            received.append(message)

    client.on_message = on_message
    try:
        client.connect(HOST, broker.port, keepalive=10)
        client.loop_start()
        client.subscribe("telemetry/#", qos=1)
        assert subscribed.wait(10), "no SUBACK"
        ran = subprocess.run(
            [
                str(agent_venv / "bin" / "edge-agent"), "--vehicle-id", str(VEHICLE), "--broker", f"{HOST}:{broker.port}",
                "--spool-dir", str(tmp_path / "spool"), "--sensor-feed", str(feed), "--speedup", str(SPEEDUP),
                "--duration-s", str(RUN_S), "--log-level", "WARNING",
            ],
            cwd=tmp_path, env=_clean_env(), capture_output=True, text=True, timeout=60,
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        # The agent exits once the broker acknowledged everything; the broker's delivery to us follows.
        deadline = time.monotonic() + 10
        summary = ran.stdout.strip().splitlines()[-1]
        published = int(summary.split("published ")[1].split(",")[0])
        while time.monotonic() < deadline:
            with lock:
                if len(received) >= published:
                    break
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
        broker.down()

    with lock:
        messages = list(received)
    rate_hz = reading_rate_hz(VehicleMode.IN_TRIP, state["battery"]["percent"], SEED_RATES) * SPEEDUP
    expected = RUN_S * rate_hz  # readings at 0, 1/rate, ... before RUN_S: at most expected + 1
    assert 0.75 * expected <= len(messages) <= expected + 1, (len(messages), expected, summary)
    assert len(messages) == published, summary
    assert {message.topic for message in messages} == {f"telemetry/{VEHICLE}"}
    events = []
    for message in messages:
        event = parse(message.payload)
        assert not isinstance(event, Rejection), f"{event} in {message.payload!r}"
        events.append(event)
    assert all(event["vehicle_id"] == VEHICLE for event in events)
    assert [event["seq"] for event in events] == list(range(1, len(events) + 1))
    assert all(event["location"] == state["location"] and event["vehicle_status"]["in_use"] for event in events)
    assert len({event["timestamp"] for event in events}) == len(events)  # strictly increasing, so distinct
