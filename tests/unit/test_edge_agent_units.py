"""The edge agent's pure parts and its spool; the agent loop against a fake MQTT client (no broker)."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from device_sim.simulated_sensors import SimulatedSensorSource
from edge_agent import wire
from edge_agent.agent import EdgeAgent, LinkState
from edge_agent.backoff import reconnect_delay_s
from edge_agent.cli import build_parser, config_from_args, main
from edge_agent.config import AgentConfig, parse_broker_address
from edge_agent.feed import FeedLineRefused, SensorFeed, parse_line
from edge_agent.rate import RatePolicy, reading_interval_s, reading_rate_hz
from edge_agent.sensors import SensorSource, SensorUnavailable, VehicleMode, vehicle_mode
from edge_agent.spool import Spool, SpoolError
from infra.process import free_port
from udfs import telemetry_schema
from udfs.telemetry_schema import Rejection, parse, parse_timestamp_ms

VEHICLE = 12345


def wait_until(condition, timeout_s=10.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.005)


def body(seq: int, size: int = 0) -> bytes:
    return orjson.dumps({"vehicle_id": VEHICLE, "seq": seq, "pad": "x" * size})


def seqs(messages) -> list[int]:
    return [m.seq for m in messages]


# --- rate -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "battery", "hz"),
    [
        (VehicleMode.IN_TRIP, 50, 5.0),
        (VehicleMode.IN_TRIP, 95, 5.0),  # a trip reports fast whatever the battery
        (VehicleMode.NORMAL, 50, 1.0),
        (VehicleMode.NORMAL, 95, 1.0),
        (VehicleMode.PARKED, 81, 0.1),  # parked, battery > 80 %: power saving
        (VehicleMode.PARKED, 100, 0.1),
        (VehicleMode.PARKED, 80, 1.0),  # not above 80 %
        (VehicleMode.PARKED, 12, 1.0),
        (VehicleMode.PARKED, None, 1.0),  # unknown battery: no power saving
    ],
)
def test_reading_rate_by_mode_is_the_seeds(mode, battery, hz):
    assert reading_rate_hz(mode, battery) == hz
    assert reading_interval_s(mode, battery) == pytest.approx(1 / hz)


def test_rate_policy_is_configurable_and_checked():
    policy = RatePolicy(in_trip_hz=10, normal_hz=2, parked_hz=0.5, parked_battery_above=50)
    assert reading_rate_hz(VehicleMode.IN_TRIP, 10, policy) == 10
    assert reading_rate_hz(VehicleMode.PARKED, 60, policy) == 0.5
    assert reading_rate_hz(VehicleMode.PARKED, 40, policy) == 2
    with pytest.raises(ValueError, match="parked_hz"):
        RatePolicy(parked_hz=0)


def test_vehicle_mode_from_the_reading():
    assert vehicle_mode({"vehicle_status": {"locked": False, "in_use": True, "trip_id": "t"}}) is VehicleMode.IN_TRIP
    assert vehicle_mode({"vehicle_status": {"locked": False, "in_use": False, "trip_id": "t"}}) is VehicleMode.IN_TRIP
    assert vehicle_mode({"vehicle_status": {"locked": True, "in_use": False}, "motion": {"speed_kmh": 0.0}}) is VehicleMode.PARKED
    assert vehicle_mode({"vehicle_status": {"locked": True, "in_use": False}}) is VehicleMode.PARKED
    assert vehicle_mode({"vehicle_status": {"locked": True, "in_use": False}, "motion": {"speed_kmh": 7.0}}) is VehicleMode.NORMAL
    assert vehicle_mode({"vehicle_status": {"locked": False, "in_use": False}}) is VehicleMode.NORMAL
    assert vehicle_mode({}) is VehicleMode.NORMAL


# --- simulated sensors ----------------------------------------------------------------------------


class FakeTime:
    def __init__(self, monotonic: float = 1000.0, wall_ms: int = 1_736_951_538_123):
        self.monotonic, self.wall_ms = monotonic, wall_ms


def test_simulated_sensor_readings_are_valid_deterministic_and_strictly_increasing_in_time():
    clock = FakeTime()

    def source(seed):
        return SimulatedSensorSource(VEHICLE, seed=seed, monotonic=lambda: clock.monotonic, wall_clock_ms=lambda: clock.wall_ms)

    a, b, other = source(7), source(7), source(8)
    assert isinstance(a, SensorSource)
    readings_a, readings_b, readings_other = [], [], []
    for step in range(300):
        clock.monotonic += 0.2 if step % 3 else 10.0  # sometimes a parked-length gap
        if step % 5:
            clock.wall_ms += 200  # ... and sometimes the wall clock stands still
        readings_a.append(a.read())
        readings_b.append(b.read())
        readings_other.append(other.read())
    assert readings_a == readings_b
    assert readings_a != readings_other
    for reading in readings_a:
        assert not isinstance(parse(orjson.dumps(reading), now_ms=clock.wall_ms), Rejection)
        assert reading["vehicle_id"] == VEHICLE and "seq" not in reading and "resent" not in reading
    times = [parse_timestamp_ms(r["timestamp"]) for r in readings_a]
    assert all(later > earlier for earlier, later in zip(times, times[1:]))
    assert {vehicle_mode(r) for r in readings_a} >= {VehicleMode.PARKED, VehicleMode.IN_TRIP}


def test_the_vehicles_stdlib_encoder_gives_the_pipelines_orjson_bytes():
    source = SimulatedSensorSource(VEHICLE, seed=11)
    readings = [source.read() for _ in range(200)]
    readings.append({**readings[0], "note": "Größe ✓", "seq": 2**63 - 1, "resent": True, "x": -0.0})
    for reading in readings:
        assert wire.encode(reading) == telemetry_schema.encode(reading)
    with pytest.raises(ValueError):
        wire.encode({"battery": {"percent": float("nan")}})
    assert telemetry_schema.format_timestamp_ms is wire.format_timestamp_ms
    assert wire.format_timestamp_ms(1_736_951_538_123) == "2025-01-15T14:32:18.123Z"


# --- the sensor feed -----------------------------------------------------------------------------


@pytest.mark.parametrize("line, reason", [
    (b"[1, 2]\n", "not an object"),
    (b"{not json\n", "not JSON"),
    (b'{"battery": {"percent": NaN}}\n', "NaN"),
    (b'{"timestamp": "2025-01-15T14:32:18.123Z"}\n', "timestamp"),
    (b'{"seq": 3, "resent": true}\n', "seq, resent"),
    (b'{"vehicle_id": 99}\n', "not this vehicle"),
    (b'{"vehicle_id": true}\n', "not this vehicle"),
    (b"\xff\xfe\n", "not JSON"),
])
def test_feed_lines_the_agent_refuses(line, reason):
    with pytest.raises(FeedLineRefused, match=reason):
        parse_line(line, VEHICLE)


def test_feed_line_of_this_vehicle_is_its_state_without_the_id():
    assert parse_line(b'{"vehicle_id": %d, "battery": {"percent": 90}}\n' % VEHICLE, VEHICLE) == {"battery": {"percent": 90}}


def test_sensor_feed_follows_a_file_samples_the_newest_state_and_refuses_a_stale_one(tmp_path):
    clock = FakeTime()
    path = tmp_path / "sensors.jsonl"
    path.write_bytes(b'{"battery": {"percent": 90}}\n')
    feed = SensorFeed(path, VEHICLE, max_age_s=5.0, monotonic=lambda: clock.monotonic, wall_clock_ms=lambda: clock.wall_ms)
    try:
        assert isinstance(feed, SensorSource)
        wait_for(lambda: feed.lines == 1)
        first, second = feed.read(), feed.read()  # the same state twice: distinct, increasing timestamps
        assert first["vehicle_id"] == VEHICLE and first["battery"] == {"percent": 90}
        assert parse_timestamp_ms(second["timestamp"]) == parse_timestamp_ms(first["timestamp"]) + 1
        with path.open("ab") as appended:
            appended.write(b'{"seq": 1}\n{"battery": {"percent": 40}}\n')
        wait_for(lambda: feed.lines == 2)
        assert feed.refused == 1 and feed.read()["battery"] == {"percent": 40}
        clock.monotonic += 6.0
        with pytest.raises(SensorUnavailable, match="old"):
            feed.read()
    finally:
        feed.close()


def test_sensor_feed_that_cannot_be_opened_says_so_on_read(tmp_path):
    feed = SensorFeed(tmp_path / "missing.jsonl", VEHICLE)
    try:
        wait_for(lambda: not feed._reader.is_alive())
        with pytest.raises(SensorUnavailable, match="cannot open"):
            feed.read()
    finally:
        feed.close()


def wait_for(condition, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# --- backoff --------------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_up_to_the_cap():
    rng = random.Random(1)
    for failures, step in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 60.0), (500, 60.0)]:
        delays = [reconnect_delay_s(failures, 0.5, 60.0, rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)
        assert len(set(delays)) > 100  # jittered: a fleet does not come back in lockstep
    assert reconnect_delay_s(0, 0.5, 60.0, rng) == 0.0


# --- spool ----------------------------------------------------------------------------------------


def test_spool_keeps_order_and_deletes_only_what_is_acknowledged(tmp_path):
    with Spool(tmp_path) as spool:
        for seq in range(1, 11):
            assert spool.append(seq, body(seq)) == 0
        assert len(spool) == 10
        first = spool.read(limit=4)
        assert seqs(first) == [1, 2, 3, 4]
        assert seqs(spool.read(after_id=first[-1].id, limit=100)) == [5, 6, 7, 8, 9, 10]
        assert spool.delete([first[1].id, first[0].id, 999_999]) == 2  # unknown ids are ignored
        assert seqs(spool.read()) == [3, 4, 5, 6, 7, 8, 9, 10]
        assert spool.bytes == sum(len(body(s)) for s in range(3, 11))


def test_spool_bound_drops_the_oldest_first_and_counts_them(tmp_path):
    with Spool(tmp_path, max_messages=5, max_bytes=0) as spool:
        dropped = [spool.append(seq, body(seq)) for seq in range(1, 13)]
        assert dropped == [0] * 5 + [1] * 7
        assert seqs(spool.read()) == [8, 9, 10, 11, 12]
        assert len(spool) == 5 and spool.high_water_messages == 5
        assert spool.dropped_total == 7
    with Spool(tmp_path, max_messages=5, max_bytes=0) as spool:  # the counter is persisted
        assert spool.dropped_total == 7
        spool.append(13, body(13))
        assert spool.dropped_total == 8
        assert seqs(spool.read()) == [9, 10, 11, 12, 13]


def test_spool_bound_by_bytes(tmp_path):
    size = len(body(1, 100))
    with Spool(tmp_path, max_messages=0, max_bytes=3 * size) as spool:
        for seq in range(1, 6):
            spool.append(seq, body(seq, 100))
        assert seqs(spool.read()) == [3, 4, 5]
        assert spool.bytes == 3 * size and spool.dropped_total == 2
        assert spool.append(6, body(6, 10 * size)) == 4  # alone above the bound: everything goes, itself too
        assert len(spool) == 0 and spool.dropped_total == 6


def test_spool_never_evicts_in_flight_messages(tmp_path):
    with Spool(tmp_path, max_messages=4, max_bytes=0) as spool:
        for seq in range(1, 5):
            spool.append(seq, body(seq))
        in_flight_upto = spool.read(limit=2)[-1].id  # seqs 1 and 2 published, not yet acknowledged
        assert spool.append(5, body(5), keep_upto_id=in_flight_upto) == 1
        assert seqs(spool.read()) == [1, 2, 4, 5]  # 3 was the oldest that was not in flight


def test_spool_survives_reopen_and_replays_in_order_flagged_resent(tmp_path):
    with Spool(tmp_path) as spool:
        spool.append(1, body(1))
        spool.append(2, body(2), resent=True)  # appended while the broker was unreachable
        spool.append(3, body(3))
        [m1, m2, m3] = spool.read()
        assert [m1.resent, m2.resent, m3.resent] == [False, True, False]
        assert "resent" not in orjson.loads(m1.payload)
        assert orjson.loads(m2.payload) == {**orjson.loads(body(2)), "resent": True}
        assert spool.mark_resent([m3.id]) == 1  # published, then the connection was lost
        assert orjson.loads(spool.read(after_id=m2.id)[0].payload)["resent"] is True
        spool.delete([m2.id])
        assert spool.last_seq == 3
    with Spool(tmp_path) as spool:  # a restart: what is left is replayed, in order, all flagged
        replay = spool.read()
        assert seqs(replay) == [1, 3]
        assert all(m.resent and orjson.loads(m.payload)["resent"] is True for m in replay)
        assert spool.last_seq == 3
        spool.append(4, body(4))
        assert seqs(spool.read()) == [1, 3, 4]
        assert spool.read()[-1].id > replay[-1].id


def test_spool_ids_keep_increasing_after_it_was_emptied(tmp_path):
    with Spool(tmp_path) as spool:
        spool.append(1, body(1))
        spool.delete([m.id for m in spool.read()])
        last = spool.last_id
    with Spool(tmp_path) as spool:
        spool.append(2, body(2))
        assert spool.read()[0].id > last  # AUTOINCREMENT: ids are never reused, order is total


def test_a_second_agent_cannot_open_a_spool_in_use(tmp_path):
    with Spool(tmp_path):
        with pytest.raises(SpoolError, match="in use"):
            Spool(tmp_path)
    Spool(tmp_path).close()


def test_spool_needs_a_bound(tmp_path):
    with pytest.raises(ValueError, match="bound"):
        Spool(tmp_path, max_messages=0, max_bytes=0)


# --- config and CLI flags -------------------------------------------------------------------------


def test_broker_addresses():
    assert parse_broker_address("127.0.0.1:1884") == ("127.0.0.1", 1884)
    assert parse_broker_address("mqtt.example.com") == ("mqtt.example.com", 1883)
    assert parse_broker_address("mqtt.example.com", tls=True) == ("mqtt.example.com", 8883)
    assert parse_broker_address("[::1]:1885") == ("::1", 1885)
    with pytest.raises(ValueError):
        parse_broker_address("host:http")


def test_config_from_flags(tmp_path):
    args = build_parser().parse_args([
        "--vehicle-id", "12345", "--broker", "127.0.0.1:1884", "--spool-dir", str(tmp_path),
        "--max-spool-messages", "500", "--username", "v12345", "--tls-ca", "/etc/ca.pem",
        "--seed", "3", "--duration-s", "60", "--parked-hz", "0.2",
    ])
    config = config_from_args(args, environ={"EDGE_AGENT_PASSWORD": "from-env"})
    assert (config.vehicle_id, config.broker_host, config.broker_port) == (12345, "127.0.0.1", 1884)
    assert config.topic == "telemetry/12345" and config.mqtt_client_id == "vehicle-12345"
    assert config.max_spool_messages == 500 and config.spool_dir == tmp_path
    assert config.username == "v12345" and config.password == "from-env" and "from-env" not in repr(config)
    assert config.tls_enabled and config.tls_ca == Path("/etc/ca.pem")
    assert config.rates == RatePolicy(parked_hz=0.2) and config.duration_s == 60 and config.seed == 3


def test_config_refuses_bad_combinations(tmp_path):
    with pytest.raises(ValueError, match="exceed max_inflight"):
        AgentConfig(vehicle_id=1, spool_dir=tmp_path, max_spool_messages=10, max_inflight=10)
    with pytest.raises(ValueError, match="tls_cert and tls_key"):
        AgentConfig(vehicle_id=1, spool_dir=tmp_path, tls_cert=Path("c.pem"))
    with pytest.raises(ValueError, match="vehicle_id"):
        AgentConfig(vehicle_id=0, spool_dir=tmp_path)
    assert main(["--vehicle-id", "1", "--spool-dir", str(tmp_path), "--max-inflight", "0"]) == 2
    assert main(["--spool-dir", str(tmp_path)]) == 2  # --vehicle-id is required


# --- the agent loop, against a fake paho client ---------------------------------------------------


class FakeClient:
    """Enough of paho's Client for the agent: connect, loop (CONNACK, then PUBACKs the test allows),
    publish (QoS 1, returns mid/rc), disconnect. `drop_connection()` makes the next loop fail."""

    SUCCESS = ReasonCode(PacketTypes.PUBACK, "Success")
    NOT_AUTHORIZED = ReasonCode(PacketTypes.PUBACK, "Not authorized")

    def __init__(self, network: FakeNetwork):
        self.network = network
        self.connected = False
        self.mid = 0
        self.unacked: list[int] = []
        self.on_connect = self.on_disconnect = self.on_publish = None

    def connect(self, host, port, keepalive=60, **_kwargs):
        if not self.network.reachable:
            raise ConnectionRefusedError(111, "Connection refused")

    def loop(self, timeout=1.0):
        time.sleep(min(timeout, 0.002))
        if self.network.lost:
            self.network.lost = False
            self.on_disconnect(self, None, None, ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"), None)
            return mqtt.MQTT_ERR_CONN_LOST
        if not self.connected:
            self.connected = True
            self.on_connect(self, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)
            return mqtt.MQTT_ERR_SUCCESS
        while self.unacked and self.network.acks_allowed > 0:
            self.network.acks_allowed -= 1
            mid = self.unacked.pop(0)
            refused = mid in self.network.refuse_mids
            self.on_publish(self, None, mid, self.NOT_AUTHORIZED if refused else self.SUCCESS, None)
        return mqtt.MQTT_ERR_SUCCESS

    def publish(self, topic, payload, qos=0):
        self.mid += 1
        self.unacked.append(self.mid)
        self.network.published.append((topic, qos, orjson.loads(payload)))
        return SimpleNamespace(mid=self.mid, rc=mqtt.MQTT_ERR_SUCCESS)

    def disconnect(self):
        self.connected = False

    def socket(self):
        return None


class FakeNetwork:
    def __init__(self):
        self.reachable = True
        self.lost = False
        self.acks_allowed = 0
        self.refuse_mids: set[int] = set()  # PUBACK with a failure reason code (MQTT 5)
        self.published: list[tuple[str, int, dict]] = []
        self.clients: list[FakeClient] = []

    def factory(self, _config):
        client = FakeClient(self)
        self.clients.append(client)
        return client


class CountingSensor:
    """Always parked with a full battery unless told otherwise; timestamps 1 ms apart."""

    def __init__(self):
        self.n = 0

    def read(self):
        self.n += 1
        return {
            "vehicle_id": VEHICLE,
            "timestamp": f"2025-01-15T14:32:{18 + self.n // 1000:02d}.{self.n % 1000:03d}Z",
            "location": {"lat": 50.11, "lon": 8.68},
            "battery": {"percent": 70},
            "vehicle_status": {"locked": False, "in_use": True, "trip_id": "t-1"},
        }


def fast_config(tmp_path, **overrides) -> AgentConfig:
    settings = dict(
        vehicle_id=VEHICLE, spool_dir=tmp_path / "spool", broker_port=free_port(),
        reconnect_min_s=0.01, reconnect_max_s=0.05, connect_timeout_s=2.0, flush_timeout_s=1.0,
        speedup=50.0, max_inflight=5,
    )
    settings.update(overrides)
    return AgentConfig(**settings)


def run_in_thread(agent: EdgeAgent) -> threading.Thread:
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    return thread


def test_seq_is_monotonic_across_restarts(tmp_path):
    config = fast_config(tmp_path)
    agent = EdgeAgent(config, CountingSensor())
    assert [agent.take_reading()["seq"] for _ in range(3)] == [1, 2, 3]
    agent.spool.close()
    agent = EdgeAgent(config, CountingSensor())
    assert agent.stats.last_seq == 3
    assert [agent.take_reading()["seq"] for _ in range(2)] == [4, 5]
    assert seqs(agent.spool.read()) == [1, 2, 3, 4, 5]
    agent.spool.close()


def test_a_message_leaves_the_spool_only_when_acknowledged_and_resends_keep_order(tmp_path):
    network = FakeNetwork()
    agent = EdgeAgent(fast_config(tmp_path), CountingSensor(), client_factory=network.factory, rng=random.Random(1))
    thread = run_in_thread(agent)
    try:
        # Connected, no acknowledgements: everything stays spooled, at most max_inflight out.
        wait_until(lambda: agent.stats.readings >= 12, what="12 readings")
        assert agent.connected and agent.stats.published == 0
        assert len(network.published) == 5  # the in-flight window
        assert agent.stats.readings <= len(agent.spool)  # nothing has left the spool

        # The connection drops with 5 unacknowledged; the next connection re-sends them first, flagged.
        network.lost = True
        wait_until(lambda: len(network.clients) >= 2 and agent.connected, what="a reconnect with a new client")
        network.acks_allowed = 10**9
        wait_until(lambda: agent.stats.published >= 30, what="30 acknowledged")
    finally:
        agent.finish(timeout_s=5)
        thread.join(10)
    assert not thread.is_alive()
    sent = [event for _, _, event in network.published]
    assert {(topic, qos) for topic, qos, _ in network.published} == {(f"telemetry/{VEHICLE}", 1)}
    first, rest = sent[:5], sent[5:]
    assert [e["seq"] for e in first] == [1, 2, 3, 4, 5] and not any(e.get("resent") for e in first)
    # after the reconnect: the 5 again, flagged, then all others in order, each once
    assert [e["seq"] for e in rest] == list(range(1, agent.stats.last_seq + 1))
    resent_seqs = [e["seq"] for e in rest if e.get("resent")]
    assert resent_seqs == list(range(1, len(resent_seqs) + 1)) and len(resent_seqs) >= 12
    assert agent.stats.published == agent.stats.last_seq and agent.stats.left_in_spool == 0
    assert agent.stats.resent == len(resent_seqs) == agent.stats.spooled
    assert agent.stats.disconnects == 1


def test_unreachable_broker_spools_everything_flagged_and_backs_off(tmp_path):
    network = FakeNetwork()
    network.reachable = False
    agent = EdgeAgent(fast_config(tmp_path), CountingSensor(), client_factory=network.factory, rng=random.Random(2))
    thread = run_in_thread(agent)
    try:
        wait_until(lambda: agent.stats.connect_failures >= 3 and agent.stats.readings >= 10, what="failures and readings")
    finally:
        agent.stop()
        thread.join(10)
    assert not thread.is_alive() and agent.state is LinkState.DISCONNECTED
    assert agent.stats.published == 0 and network.published == []
    assert agent.stats.left_in_spool == agent.stats.readings
    with Spool(tmp_path / "spool") as spool:
        replay = spool.read(limit=10_000)
        assert seqs(replay) == list(range(1, agent.stats.readings + 1))
        assert all(orjson.loads(m.payload)["resent"] is True for m in replay)


def test_stop_waits_for_in_flight_acks_and_keeps_the_rest(tmp_path):
    network = FakeNetwork()
    network.acks_allowed = 3
    agent = EdgeAgent(fast_config(tmp_path, flush_timeout_s=0.2), CountingSensor(), client_factory=network.factory)
    thread = run_in_thread(agent)
    try:
        wait_until(lambda: agent.stats.readings >= 10, what="10 readings")
    finally:
        agent.stop()
        thread.join(10)
    assert agent.stats.published == 3
    assert agent.stats.left_in_spool == agent.stats.readings - 3
    with Spool(tmp_path / "spool") as spool:
        assert seqs(spool.read(limit=10_000)) == list(range(4, agent.stats.readings + 1))


def test_a_message_the_broker_refuses_is_counted_and_does_not_block_the_rest(tmp_path):
    network = FakeNetwork()
    network.refuse_mids = {2, 3}
    network.acks_allowed = 10**9
    agent = EdgeAgent(fast_config(tmp_path, max_readings=10), CountingSensor(), client_factory=network.factory)
    thread = run_in_thread(agent)
    thread.join(10)
    assert not thread.is_alive()
    assert (agent.stats.published, agent.stats.rejected, agent.stats.left_in_spool) == (8, 2, 0)
    assert [event["seq"] for _, _, event in network.published] == list(range(1, 11))


def test_a_failing_sensor_read_is_counted_and_the_agent_goes_on(tmp_path):
    class FlakySensor(CountingSensor):
        def read(self):
            if self.n == 2:
                self.n += 1
                raise OSError("GPS serial port read timed out")
            return super().read()

    agent = EdgeAgent(fast_config(tmp_path), FlakySensor())
    messages = [agent.take_reading() for _ in range(4)]
    assert messages[2] is None and agent.stats.sensor_errors == 1
    assert [m["seq"] for m in messages if m] == [1, 2, 3]  # no seq spent on the failed read
    agent.spool.close()
