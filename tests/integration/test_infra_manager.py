"""`infra up | status | down` on a run folder of its own: addresses, pids, health, stop by pid."""

import time

import pytest

from fleet.config import load_config
from infra.manager import LocalInfra, format_status
from infra.process import InfraError, free_port, port_open

pytestmark = pytest.mark.integration


def test_up_status_down_cycle(tmp_path):
    config = load_config(
        "local",
        {"infra.run_dir": str(tmp_path), "infra.mqtt_port": str(free_port()), "infra.moto_port": str(free_port())},
        environ={},
    )
    infra = LocalInfra(config.infra)
    try:
        rows = {r.name: r for r in infra.up(["mosquitto", "moto"])}
        assert rows["mosquitto"].healthy and rows["moto"].healthy
        assert rows["mosquitto"].address == f"mqtt://127.0.0.1:{config.infra.mqtt_port}"
        assert rows["mosquitto"].pid and rows["moto"].pid
        # up again is a no-op that keeps the same processes
        again = {r.name: r for r in infra.up(["mosquitto", "moto"])}
        assert again["mosquitto"].pid == rows["mosquitto"].pid
        table = format_status(infra.status())
        assert "kafka" in table and "stopped" in table and str(rows["moto"].pid) in table
    finally:
        stopped = infra.down()
    assert set(stopped) == {"mosquitto", "moto"}
    assert not port_open("127.0.0.1", config.infra.mqtt_port)
    assert all(not r.healthy and r.pid is None for r in infra.status())


def test_port_taken_by_a_stranger_is_a_clear_error(tmp_path, mqtt_address):
    host, taken = mqtt_address  # the session's Mosquitto: not this run folder's
    config = load_config("local", {"infra.run_dir": str(tmp_path), "infra.mqtt_port": str(taken)}, environ={})
    with pytest.raises(InfraError, match="already in use"):
        LocalInfra(config.infra).up(["mosquitto"])


def test_unknown_component_is_named(tmp_path):
    config = load_config("local", {"infra.run_dir": str(tmp_path)}, environ={})
    with pytest.raises(InfraError, match="unknown component"):
        LocalInfra(config.infra).up(["zookeeper"])


def test_mqtt_auth_generates_vehicle_credentials(tmp_path, monkeypatch):
    import paho.mqtt.client as mqtt

    from infra.mqtt_security import vehicle_password

    SECRET = "a-test-secret-of-32-characters!!"
    monkeypatch.setenv("TELEMETRY_MQTT_SECRET", SECRET)
    port = free_port()
    config = load_config("local", {
        "infra.run_dir": str(tmp_path), "infra.mqtt_port": str(port), "infra.mqtt_auth": "true",
        "infra.mqtt_first_vehicle_id": "100", "infra.mqtt_vehicles": "3",
    }, environ={})
    infra = LocalInfra(config.infra)
    infra.up(["mosquitto"])
    try:
        def connect(username, password):
            client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
            if username:
                client.username_pw_set(username, password)
            client.connect("127.0.0.1", port)
            client.loop_start()
            return client

        anonymous = connect(None, None)
        time.sleep(0.5)
        assert not anonymous.is_connected()
        anonymous.loop_stop()

        vehicle = connect("101", vehicle_password(SECRET, 101))
        deadline = time.monotonic() + 5
        while not vehicle.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert vehicle.is_connected()  # refusing another vehicle's topic is proven in test_mqtt_bridge
        own = vehicle.publish("telemetry/101", b"{}", qos=1)
        own.wait_for_publish(5)
        assert own.rc == 0 and own.is_published()
        vehicle.loop_stop()
        vehicle.disconnect()
        assert "allow_anonymous false" in (tmp_path / "mosquitto" / "mosquitto.conf").read_text()
    finally:
        infra.down()
