"""Mosquitto credentials and ACL generation (infra/mqtt_security.py). Whether Mosquitto accepts the
files is proven in tests/integration/test_mqtt_bridge.py (a secured broker, real logins)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time

import pytest

from infra.mqtt_security import (
    BRIDGE_USERNAME,
    DEFAULT_ITERATIONS,
    acl_text,
    bridge_password,
    derived_salt,
    password_file_text,
    password_hash,
    vehicle_password,
    verify_password,
    write_security,
)

SECRET = "unit-test-fleet-secret-0123456789"


def test_vehicle_password_is_deterministic_distinct_and_secret_bound():
    assert vehicle_password(SECRET, 12345) == vehicle_password(SECRET, 12345)
    assert vehicle_password(SECRET, 12345) != vehicle_password(SECRET, 12346)
    assert vehicle_password(SECRET, 12345) != vehicle_password(SECRET + "!", 12345)
    assert vehicle_password(SECRET.encode(), 12345) == vehicle_password(SECRET, 12345)
    password = vehicle_password(SECRET, 1)
    assert len(password) == 43 and ":" not in password and password.isascii()  # 256 bits, URL-safe base64
    assert bridge_password(SECRET) not in {vehicle_password(SECRET, v) for v in range(1, 100)}


@pytest.mark.parametrize("bad", [0, -1, True, "12", 1.0])
def test_vehicle_password_wants_a_vehicle_id(bad):
    with pytest.raises(ValueError):
        vehicle_password(SECRET, bad)


def test_short_secret_is_refused():
    with pytest.raises(ValueError):
        vehicle_password("short", 1)


def test_hash_is_mosquitto_format_and_verifies():
    salt = derived_salt(SECRET, "7")
    hashed = password_hash("pw", salt, iterations=101)
    _, kind, iterations, salt_b64, hash_b64 = hashed.split("$")
    assert (kind, iterations) == ("7", "101")
    assert len(salt_b64) == 16 and len(hash_b64) == 88  # 12-byte salt, 64-byte SHA-512, base64
    assert verify_password("pw", hashed) and not verify_password("pw2", hashed)


def test_verifies_a_hash_written_by_mosquitto_passwd(tmp_path):
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    assert os.path.exists(tool), "mosquitto_passwd comes with the mosquitto package (make setup)"
    path = tmp_path / "pw"
    subprocess.run([tool, "-c", "-b", str(path), "alice", "s3cret"], check=True, capture_output=True)
    user, hashed = path.read_text().strip().split(":", 1)
    assert user == "alice" and hashed.startswith("$7$")
    assert verify_password("s3cret", hashed) and not verify_password("other", hashed)


def test_acl_pins_vehicles_to_their_topic_and_lets_the_bridge_read():
    text = acl_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == [
        "pattern write telemetry/%u",
        f"user {BRIDGE_USERNAME}",
        "topic read $share/#",
        "topic read telemetry/#",
    ]


def test_write_security_files(tmp_path):
    security = write_security(tmp_path / "sec", SECRET, [10, 11, 12])
    lines = security.password_file.read_text().splitlines()
    users = dict(line.split(":", 1) for line in lines)
    assert list(users) == ["10", "11", "12", BRIDGE_USERNAME]
    assert verify_password(vehicle_password(SECRET, 11), users["11"])
    assert not verify_password(vehicle_password(SECRET, 10), users["11"])
    assert verify_password(bridge_password(SECRET), users[BRIDGE_USERNAME])
    assert users["10"].startswith(f"$7${DEFAULT_ITERATIONS}$")
    for path in (security.password_file, security.acl_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert security.conf_lines() == [
        "allow_anonymous false", f"password_file {security.password_file}", f"acl_file {security.acl_file}",
    ]
    # Same secret, same fleet: the same bytes (set-up can regenerate without changing anything).
    before = security.password_file.read_bytes()
    write_security(tmp_path / "sec", SECRET, [10, 11, 12])
    assert security.password_file.read_bytes() == before


def test_explicit_bridge_password_and_collisions(tmp_path):
    security = write_security(tmp_path, SECRET, [1], bridge_user_password="given-password")
    users = dict(line.split(":", 1) for line in security.password_file.read_text().splitlines())
    assert verify_password("given-password", users[BRIDGE_USERNAME])
    with pytest.raises(ValueError):
        write_security(tmp_path, SECRET, [1], bridge_username="1")
    with pytest.raises(ValueError):
        password_file_text(SECRET, [("a:b", "x")])
    with pytest.raises(ValueError):
        password_file_text(SECRET, [("a", "x"), ("a", "y")])
    with pytest.raises(ValueError):
        password_file_text(SECRET, [("telemetry/#", "x")])


def test_a_whole_fleet_is_fast(tmp_path):
    started = time.perf_counter()
    security = write_security(tmp_path, SECRET, range(1, 50_001))
    elapsed = time.perf_counter() - started
    assert security.users == 50_001
    assert sum(1 for _ in security.password_file.open()) == 50_001
    assert elapsed < 15, f"50,000 vehicles took {elapsed:.1f}s"  # ~1 s on the 2-core dev machine
