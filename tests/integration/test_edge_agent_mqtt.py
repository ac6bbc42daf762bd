"""The edge agent against a real Mosquitto that the tests stop and start: order, store-and-forward
across an outage (every event exactly once, the outage's flagged resent), the spool bound, TLS with
credentials, and the CLI.

Each test starts its own broker (MosquittoBroker, a free loopback port, its run folder in tmp_path)
rather than the session fixtures: these tests take the broker down. The agent runs in a thread with
`speedup` (reading intervals divided by 50) and simulated sensors whose vehicle time runs as fast.

The subscriber has a persistent session (clean_session=False, subscribed before the agent starts),
so what the agent publishes after a broker restart, before the subscriber is back, is queued for it.
A broker restart can also re-deliver to the subscriber a message whose PUBACK the broker had not read
yet: that copy has the MQTT DUP flag and identical bytes, it is the broker's retry towards the
subscriber, not a second publish by the agent, and `Subscriber.events()` leaves it out (and counts it).
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from device_sim.simulated_sensors import SimulatedSensorSource
from edge_agent.agent import EdgeAgent
from edge_agent.cli import main
from edge_agent.config import AgentConfig
from infra.mosquitto import MosquittoBroker
from infra.process import free_port
from udfs.telemetry_schema import Rejection, parse, parse_timestamp_ms

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
VEHICLE = 12345
SEED = 7  # battery 63 %: never "parked above 80 %", so readings never pause for 10 s / SPEEDUP
SPEEDUP = 50.0
TIMEOUT_S = 20.0


def wait_until(condition, what: str, timeout_s: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.01)


class Subscriber:
    """QoS 1 subscriber to telemetry/+ with a persistent session; reconnects on its own."""

    def __init__(self, port: int, client_id: str, *, tls_ca: Path | None = None, username: str | None = None, password: str | None = None):
        self.deliveries: list[mqtt.MQTTMessage] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311, clean_session=False)
        self.client.reconnect_delay_set(0.05, 0.2)
        if tls_ca is not None:
            self.client.tls_set(ca_certs=str(tls_ca))
        if username is not None:
            self.client.username_pw_set(username, password)
        subscribed = threading.Event()
        self.sessions_lost = 0
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(HOST, port, keepalive=10)
        self.client.loop_start()
        self.client.subscribe("telemetry/+", qos=1)
        assert subscribed.wait(10), "no SUBACK"

    def _on_connect(self, client, _userdata, flags, reason_code, _properties) -> None:
        if not reason_code.is_failure and not flags.session_present and self.deliveries:
            # The broker forgot the session (it should not): subscribe again, and let the test
            # fail on the gap rather than time out.
            self.sessions_lost += 1
            client.subscribe("telemetry/+", qos=1)

    def _on_message(self, _client, _userdata, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.deliveries.append(message)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def events(self) -> tuple[list[dict], int]:
        """Every delivery but the broker's own DUP re-deliveries of identical bytes; all parsed and
        checked against the schema. Returns (events in arrival order, re-deliveries left out)."""
        with self._lock:
            deliveries = list(self.deliveries)
        events, seen, redelivered = [], set(), 0
        for message in deliveries:
            assert message.topic == f"telemetry/{VEHICLE}" and message.qos == 1
            if message.dup and message.payload in seen:
                redelivered += 1
                continue
            seen.add(message.payload)
            event = parse(message.payload)
            assert not isinstance(event, Rejection), f"{event} in {message.payload!r}"
            events.append(event)
        return events, redelivered

    def seqs(self) -> list[int]:
        return [event["seq"] for event in self.events()[0]]

    def max_seq(self) -> int:
        return max(self.seqs(), default=0)


@pytest.fixture
def broker(tmp_path):
    server = MosquittoBroker(tmp_path / "run", HOST, free_port())
    server.up()
    try:
        yield server
    finally:
        server.down()


@pytest.fixture
def subscriber(broker, request):
    client = Subscriber(broker.port, f"test-{request.node.name[:40]}")
    try:
        yield client
    finally:
        client.close()


class AgentThread:
    """EdgeAgent.run() in a thread; stopped and joined on the way out whatever happens."""

    def __init__(self, agent: EdgeAgent):
        self.agent = agent
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="edge-agent", daemon=True)

    def _run(self) -> None:
        try:
            self.agent.run()
        except BaseException as exc:  # noqa: BLE001 - re-raised by join()
            self.error = exc

    def __enter__(self) -> EdgeAgent:
        self.thread.start()
        return self.agent

    def join(self, timeout_s: float = TIMEOUT_S) -> None:
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the agent did not stop"
        if self.error is not None:
            raise self.error

    def __exit__(self, *exc_info) -> None:
        self.agent.stop()
        self.thread.join(TIMEOUT_S)


def make_agent(tmp_path: Path, port: int, **overrides) -> EdgeAgent:
    settings = dict(
        vehicle_id=VEHICLE, spool_dir=tmp_path / "spool", broker_host=HOST, broker_port=port,
        speedup=SPEEDUP, seed=SEED, reconnect_min_s=0.05, reconnect_max_s=0.5, connect_timeout_s=5.0,
        flush_timeout_s=5.0,
    )
    settings.update(overrides)
    config = AgentConfig(**settings)
    return EdgeAgent(config, SimulatedSensorSource(VEHICLE, seed=config.seed, time_scale=config.speedup))


def test_with_the_broker_up_events_arrive_in_seq_order(broker, subscriber, tmp_path):
    agent = make_agent(tmp_path, broker.port, max_readings=150)
    runner = AgentThread(agent)
    with runner:
        runner.join()
    wait_until(lambda: len(subscriber.seqs()) >= 150, "150 events at the subscriber")

    events, _ = subscriber.events()
    assert [e["seq"] for e in events] == list(range(1, 151))
    assert not any(e.get("resent") for e in events)
    assert all(e["vehicle_id"] == VEHICLE for e in events)
    times = [parse_timestamp_ms(e["timestamp"]) for e in events]
    assert all(later > earlier for earlier, later in zip(times, times[1:]))
    stats = agent.stats
    assert (stats.readings, stats.published, stats.spooled, stats.resent, stats.dropped) == (150, 150, 0, 0, 0)
    assert stats.left_in_spool == 0 and stats.connects == 1


def test_outage_every_event_exactly_once_in_order_outage_ones_resent(broker, subscriber, tmp_path):
    agent = make_agent(tmp_path, broker.port)
    runner = AgentThread(agent)
    with runner:
        wait_until(lambda: subscriber.max_seq() >= 40, "40 events before the outage")
        delivered_before = set(subscriber.seqs())

        broker.down()
        outage_first = agent.stats.last_seq + 1  # read after the broker process is gone
        wait_until(lambda: agent.stats.disconnects == 1 and agent.stats.last_seq >= outage_first + 60,
                   "60 readings taken during the outage")
        assert agent.stats.published < outage_first  # nothing acknowledged while the broker was down
        outage_last = agent.stats.last_seq  # read before the broker comes back
        broker.up()

        wait_until(lambda: subscriber.max_seq() >= outage_last + 40, "40 events after the reconnect")
        agent.finish(timeout_s=TIMEOUT_S)
        runner.join()
    last = agent.stats.last_seq
    wait_until(lambda: len(subscriber.seqs()) >= last, f"all {last} events at the subscriber")

    events, _redelivered = subscriber.events()
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, last + 1)), "exactly once, in seq order, no gaps"
    resent = {e["seq"] for e in events if e.get("resent") is True}
    assert set(range(outage_first, outage_last + 1)) <= resent, "every reading of the outage is flagged resent"
    assert not resent & delivered_before
    stats = agent.stats
    assert stats.published == last and stats.resent == len(resent) and stats.spooled == len(resent)
    assert stats.dropped == 0 and stats.left_in_spool == 0
    assert stats.disconnects == 1 and stats.connects == 2 and stats.connect_failures >= 1
    assert subscriber.sessions_lost == 0, "the broker kept the subscriber's session across its restart"


def test_small_spool_during_an_outage_drops_the_oldest_and_counts_them(broker, subscriber, tmp_path):
    bound = 30
    agent = make_agent(tmp_path, broker.port, max_spool_messages=bound, max_inflight=5)
    runner = AgentThread(agent)
    with runner:
        wait_until(lambda: subscriber.max_seq() >= 20, "20 events before the outage")
        broker.down()
        wait_until(lambda: agent.stats.dropped >= 40, "40 readings dropped from the full spool")
        # No readings after this, so what reaches the subscriber is exactly what the outage left.
        agent.finish(timeout_s=TIMEOUT_S)
        broker.up()
        runner.join()
    last, dropped = agent.stats.last_seq, agent.stats.dropped
    wait_until(lambda: len(subscriber.seqs()) >= last - dropped, f"{last - dropped} events at the subscriber")

    assert agent.spool.high_water_messages <= bound, "the spool never held more than its bound"
    events, _ = subscriber.events()
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(set(seqs)), "in order, no duplicates"
    missing = sorted(set(range(1, last + 1)) - set(seqs))
    assert len(missing) == dropped == agent.stats.dropped_total >= 40, "the drop counter is what is missing"
    # The oldest went first: one run of missing seqs, ending right before the newest `bound`.
    assert missing == list(range(last - bound - dropped + 1, last - bound + 1))
    survivors = [e for e in events if e["seq"] > missing[-1]]
    assert len(survivors) == bound and all(e.get("resent") is True for e in survivors)
    assert agent.stats.left_in_spool == 0 and agent.stats.published == last - dropped


def test_cli_runs_twice_on_one_spool_and_sequence_numbers_continue_mqtt_5_then_3(broker, subscriber, tmp_path, capsys):
    argv = [
        "--vehicle-id", str(VEHICLE), "--broker", f"{HOST}:{broker.port}", "--spool-dir", str(tmp_path / "spool"),
        "--readings", "25", "--speedup", str(SPEEDUP), "--seed", str(SEED), "--duration-s", str(TIMEOUT_S),
        "--log-level", "WARNING",
    ]
    assert main(argv) == 0
    assert main([*argv, "--mqtt-version", "3.1.1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert all("readings 25, published 25, spooled 0, resent 0, dropped 0" in line for line in lines)
    assert lines[1].startswith(f"edge-agent vehicle {VEHICLE}:") and "last seq 50" in lines[1]
    wait_until(lambda: len(subscriber.seqs()) >= 50, "50 events")
    assert subscriber.seqs() == list(range(1, 51))


# --- TLS and credentials ------------------------------------------------------------------------------


def _write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 → (ca.pem, server.pem, server.key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edge-agent test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name).public_key(server_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(HOST))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


class TlsMosquitto(MosquittoBroker):
    """The project's Mosquitto with its one listener on TLS and a password file (no anonymous)."""

    def __init__(self, run_dir: Path, port: int, ca: Path, cert: Path, key: Path, password_file: Path):
        super().__init__(run_dir, HOST, port)
        self.tls_files, self.password_file = (ca, cert, key), password_file

    def config_text(self) -> str:
        ca, cert, key = self.tls_files
        text = super().config_text().replace("allow_anonymous true", f"allow_anonymous false\npassword_file {self.password_file}")
        return text + f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n"


def test_tls_with_username_and_password(tmp_path):
    ca, cert, key = _write_certificates(tmp_path / "tls")
    password_file = tmp_path / "tls" / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(password_file), "v12345", "s3cret"], check=True, capture_output=True)
    server = TlsMosquitto(tmp_path / "run", free_port(), ca, cert, key, password_file)
    server.up()
    subscriber = None
    try:
        subscriber = Subscriber(server.port, "test-tls", tls_ca=ca, username="v12345", password="s3cret")

        wrong = make_agent(tmp_path / "wrong", server.port, tls_ca=ca, username="v12345", password="wrong")
        with AgentThread(wrong):
            wait_until(lambda: wrong.stats.connect_failures >= 2, "refused connections with a wrong password")
            assert wrong.stats.connects == 0 and wrong.stats.published == 0
        assert wrong.stats.left_in_spool == wrong.stats.readings > 0  # kept, for when the password is fixed

        agent = make_agent(tmp_path / "right", server.port, tls_ca=ca, username="v12345", password="s3cret", max_readings=30)
        runner = AgentThread(agent)
        with runner:
            runner.join()
        assert agent.stats.published == 30 and agent.stats.connects == 1
        wait_until(lambda: len(subscriber.seqs()) >= 30, "30 events over TLS")
        assert subscriber.seqs() == list(range(1, 31))
    finally:
        if subscriber is not None:
            subscriber.close()
        server.down()
