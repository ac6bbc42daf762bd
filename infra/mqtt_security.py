"""Mosquitto credentials and ACL for the fleet: one user per vehicle, one for the MQTT→Kafka bridge.

- **Vehicle passwords are derived, not stored**: `vehicle_password(secret, vehicle_id)` is an
  HMAC-SHA256 of the vehicle id under one fleet secret, so provisioning a vehicle needs only the
  secret (or the one password handed to it), never a list of 50,000 passwords to keep in sync.
  The username is the vehicle id as text ("12345").
- **The password file** is Mosquitto 2's own format, `user:$7$<iterations>$<salt b64>$<hash b64>`
  (PBKDF2-HMAC-SHA512, 12-byte salt, 64-byte hash, what `mosquitto_passwd` writes), generated
  here with hashlib: `mosquitto_passwd` is one process per user, far too slow for a fleet.
  Iterations default to 10 rather than mosquitto_passwd's 101: key stretching protects
  low-entropy passwords, and these are 256-bit HMAC outputs that no iteration count makes
  easier or harder to guess; Mosquitto (one thread) computes the hash on every CONNECT, which
  matters when a whole fleet reconnects after a broker restart. Salts are derived from the secret
  too, so generating twice from the same secret and fleet writes the same bytes (idempotent set-up).
- **The ACL**: `pattern write telemetry/%u` lets each vehicle publish to its own topic only, and
  read nothing; the bridge user reads `telemetry/#` through `$share/...` and writes nothing.

`write_security(folder, secret, vehicle_ids)` writes both files; `MqttSecurity.conf_lines()` are the
mosquitto.conf lines that turn them on (and anonymous access off).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

BRIDGE_USERNAME = "telemetry-bridge"
TELEMETRY_TOPIC_PREFIX = "telemetry"
DEFAULT_ITERATIONS = 10
MIN_SECRET_BYTES = 16
_SALT_BYTES = 12  # what mosquitto_passwd uses
_HASH_BYTES = 64  # SHA-512 output

# Domain separation: a vehicle password, the bridge password and a salt can never coincide.
_VEHICLE_CONTEXT = b"fleet-telemetry/mqtt/vehicle/"
_USER_CONTEXT = b"fleet-telemetry/mqtt/user/"
_SALT_CONTEXT = b"fleet-telemetry/mqtt/salt/"


def _secret_bytes(secret: bytes | str) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"the fleet MQTT secret must be at least {MIN_SECRET_BYTES} bytes")
    return key


def _derive(secret: bytes | str, context: bytes, name: str) -> bytes:
    return hmac.new(_secret_bytes(secret), context + name.encode("utf-8"), hashlib.sha256).digest()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def vehicle_password(secret: bytes | str, vehicle_id: int) -> str:
    """The MQTT password of one vehicle: 43 URL-safe characters (256 bits), the same every time."""
    if type(vehicle_id) is not int or vehicle_id <= 0:
        raise ValueError(f"vehicle_id must be a positive integer, got {vehicle_id!r}")
    return _b64url(_derive(secret, _VEHICLE_CONTEXT, str(vehicle_id)))


def user_password(secret: bytes | str, username: str) -> str:
    """A derived password for a non-vehicle user (the bridge), from the same secret."""
    return _b64url(_derive(secret, _USER_CONTEXT, username))


def bridge_password(secret: bytes | str, username: str = BRIDGE_USERNAME) -> str:
    return user_password(secret, username)


def password_hash(password: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> str:
    """Mosquitto 2's `$7$` hash: PBKDF2-HMAC-SHA512 of the password, base64 salt and hash."""
    if len(salt) != _SALT_BYTES:
        raise ValueError(f"salt must be {_SALT_BYTES} bytes")
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    derived = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, _HASH_BYTES)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(derived).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    """Check a password against a `$7$` hash as Mosquitto does."""
    try:
        _, kind, iterations, salt_b64, hash_b64 = hashed.split("$")
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
    except ValueError:
        return False
    if kind != "7":
        return False
    actual = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, int(iterations), len(expected))
    return hmac.compare_digest(actual, expected)


def derived_salt(secret: bytes | str, username: str) -> bytes:
    return _derive(secret, _SALT_CONTEXT, username)[:_SALT_BYTES]


def _check_username(username: str) -> str:
    # ':' ends the name in the password file; '+', '#' and '/' would change what %u matches.
    if not username or any(c in username for c in ":+#/\n\r\0") or username != username.strip():
        raise ValueError(f"invalid MQTT username {username!r}")
    return username


def password_file_text(
    secret: bytes | str,
    users: Iterable[tuple[str, str]],
    iterations: int = DEFAULT_ITERATIONS,
) -> str:
    """Lines `user:$7$...` for (username, password) pairs, salts derived from the secret.

    One thread: a thread pool measured slower here (the per-hash work is too small to gain from
    releasing the GIL). 50,000 users take ~0.8 s at 10 iterations, ~4.8 s at 101.
    """
    pairs = [(_check_username(u), p) for u, p in users]
    seen: set[str] = set()
    for username, _ in pairs:
        if username in seen:
            raise ValueError(f"duplicate MQTT username {username!r}")
        seen.add(username)

    def line(pair: tuple[str, str]) -> str:
        username, password = pair
        return f"{username}:{password_hash(password, derived_salt(secret, username), iterations)}\n"

    return "".join(map(line, pairs))


def acl_text(bridge_usernames: Sequence[str] = (BRIDGE_USERNAME,), topic_prefix: str = TELEMETRY_TOPIC_PREFIX) -> str:
    lines = [
        "# Generated by infra/mqtt_security.py; regenerate rather than edit.",
        "# Vehicles (username = vehicle id): publish to their own topic only, read nothing.",
        f"pattern write {topic_prefix}/%u",
        "",
    ]
    for username in bridge_usernames:
        lines += [
            "# The MQTT→Kafka bridge: read all telemetry through a shared subscription, write nothing.",
            f"user {_check_username(username)}",
            "topic read $share/#",
            f"topic read {topic_prefix}/#",
            "",
        ]
    return "\n".join(lines)


def _write_private(path: Path, text: str) -> None:
    """Atomic replace, readable by the owner only (the file holds password hashes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


@dataclass(frozen=True)
class MqttSecurity:
    """Where the generated files are, and the mosquitto.conf lines that use them."""

    password_file: Path
    acl_file: Path
    users: int
    bridge_username: str

    def conf_lines(self) -> list[str]:
        return [
            "allow_anonymous false",
            f"password_file {self.password_file}",
            f"acl_file {self.acl_file}",
        ]


def write_security(
    folder: Path,
    secret: bytes | str,
    vehicle_ids: Iterable[int],
    *,
    bridge_username: str = BRIDGE_USERNAME,
    bridge_user_password: str | None = None,
    iterations: int = DEFAULT_ITERATIONS,
) -> MqttSecurity:
    """Write `passwords` and `acl` into `folder` for these vehicles and the bridge user.

    The bridge's password is derived from the secret unless given. Mosquitto reads both files at
    start (and on SIGHUP), so adding vehicles is: regenerate, then `kill -HUP <pid>`.
    """
    folder = Path(folder)
    bridge_secret = bridge_user_password if bridge_user_password is not None else bridge_password(secret, bridge_username)
    users = [(str(vid), vehicle_password(secret, vid)) for vid in vehicle_ids]
    if any(u == bridge_username for u, _ in users):
        raise ValueError(f"bridge username {bridge_username!r} collides with a vehicle id")
    users.append((bridge_username, bridge_secret))
    password_file, acl_file = folder / "passwords", folder / "acl"
    _write_private(password_file, password_file_text(secret, users, iterations))
    _write_private(acl_file, acl_text([bridge_username]))
    return MqttSecurity(password_file, acl_file, len(users), bridge_username)
