"""An overlay's settings.toml: the only hand-edited file of an overlay (deploy/flink-k8s/overlays/<name>/)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "flink-k8s"
OVERLAYS_DIR = DEPLOY_DIR / "overlays"
SETTINGS_FILE = "settings.toml"


class DeployError(Exception):
    """A setting, a figure or a manifest that cannot make a deployment; the message says which."""


@dataclass(frozen=True)
class OverlaySettings:
    name: str
    folder: Path
    profile: str                       # a profile name (fleet/config/profiles) the overlay starts from
    sizing: str                        # a [targets.<name>] of sizing.toml
    image: str
    tag: str
    mqtt_address: str                  # HOST:PORT of the MQTT broker the bridges subscribe to
    flink_state_uri: str               # checkpoints, savepoints, HA metadata: <uri>/<kind>/<job>
    mqtt_password_secret: str = ""     # a Secret's name (key `password`); "" = no password
    extra_resources: tuple[str, ...] = ()
    overrides: dict[str, Any] = field(default_factory=dict)    # [set]: dotted profile keys
    environment: dict[str, str] = field(default_factory=dict)
    flink_configuration: dict[str, str] = field(default_factory=dict)   # extra keys for both jobs' clusters


_REQUIRED = ("profile", "sizing", "image", "tag", "mqtt_address", "flink_state_uri")
_OPTIONAL = ("mqtt_password_secret", "extra_resources", "set", "environment", "flink_configuration")


def overlay_names(overlays_dir: Path = OVERLAYS_DIR) -> list[str]:
    return sorted(p.name for p in overlays_dir.iterdir() if (p / SETTINGS_FILE).is_file())


def load_overlay(name: str, overlays_dir: Path = OVERLAYS_DIR) -> OverlaySettings:
    folder = overlays_dir / name
    path = folder / SETTINGS_FILE
    if not path.is_file():
        raise DeployError(f"no overlay {name!r}: {path} is missing (overlays: {', '.join(overlay_names(overlays_dir)) or 'none'})")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise DeployError(f"{path}: {error}") from None
    missing = [key for key in _REQUIRED if not isinstance(raw.get(key), str) or not raw[key]]
    unknown = sorted(set(raw) - set(_REQUIRED) - set(_OPTIONAL))
    if missing or unknown:
        raise DeployError(f"{path}: " + "; ".join(
            ([f"missing or empty: {', '.join(missing)}"] if missing else []) + ([f"unknown keys: {', '.join(unknown)}"] if unknown else [])))
    if not raw["flink_state_uri"].startswith("s3://"):
        raise DeployError(f"{path}: flink_state_uri must be an s3:// URI (Flink's S3 plugin holds checkpoints, savepoints and HA), not {raw['flink_state_uri']!r}")
    host, _, port = raw["mqtt_address"].rpartition(":")
    if not host or not port.isdigit():
        raise DeployError(f"{path}: mqtt_address must be HOST:PORT, not {raw['mqtt_address']!r}")
    environment = raw.get("environment", {})
    flink_configuration = raw.get("flink_configuration", {})
    for table, values in (("environment", environment), ("flink_configuration", flink_configuration)):
        if not all(isinstance(v, str) for v in values.values()):
            raise DeployError(f"{path}: [{table}] values must be strings")
    return OverlaySettings(
        name=name, folder=folder, profile=raw["profile"], sizing=raw["sizing"], image=raw["image"], tag=raw["tag"],
        mqtt_address=raw["mqtt_address"], flink_state_uri=raw["flink_state_uri"].rstrip("/"),
        mqtt_password_secret=raw.get("mqtt_password_secret", ""), extra_resources=tuple(raw.get("extra_resources", ())),
        overrides=dict(raw.get("set", {})), environment=dict(environment), flink_configuration=dict(flink_configuration),
    )
