"""The one place that knows where JVM jars are: fetched by Maven from connectors/jvm/pom.xml.

`fetch()` runs Maven once per pom content per profile and records completion; after that it is a
no-op that touches no network. Jobs ask `flink_jar_urls()`; the local broker asks
`kafka_broker_classpath()`. Nothing else hard-codes a jar path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

POM = Path(__file__).parent / "jvm" / "pom.xml"
PROFILES = ("flink", "kafka-broker")
_COMPLETE = ".complete"


class JarsError(RuntimeError):
    """The jars are missing or Maven could not fetch them."""


@dataclass(frozen=True)
class JarSet:
    profile: str
    folder: Path
    jars: tuple[Path, ...]


def cache_root() -> Path:
    """Where fetched jars live: $TELEMETRY_JARS_DIR, else $XDG_CACHE_HOME/fleet-telemetry/jars."""
    if os.environ.get("TELEMETRY_JARS_DIR"):
        return Path(os.environ["TELEMETRY_JARS_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fleet-telemetry" / "jars"


def pom_digest() -> str:
    return hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


def profile_folder(profile: str) -> Path:
    if profile not in PROFILES:
        raise JarsError(f"unknown jar profile {profile!r}; known: {', '.join(PROFILES)}")
    return cache_root() / pom_digest() / profile


def fetch(profiles: tuple[str, ...] = PROFILES, *, quiet: bool = True) -> list[JarSet]:
    """Make sure every profile's jars are in the cache; run Maven only for those that are not."""
    result = []
    for profile in profiles:
        folder = profile_folder(profile)
        if not (folder / _COMPLETE).is_file():
            _maven_copy(profile, folder, quiet=quiet)
        result.append(_jar_set(profile, folder))
    return result


def _maven_copy(profile: str, folder: Path, *, quiet: bool) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise JarsError("Maven (mvn) is not installed: run `make setup` or `apt-get install maven`")
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    argv = [
        mvn, "-B", "-f", str(POM), "-P", profile,
        "-Dstyle.color=never", "--no-transfer-progress",
        "dependency:copy-dependencies", f"-DoutputDirectory={staging}",
    ]
    if quiet:
        argv.insert(1, "-q")
    completed = subprocess.run(argv, capture_output=quiet, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stdout or "") + (completed.stderr or "")
        raise JarsError(f"mvn failed for profile {profile} (exit {completed.returncode}):\n{output[-4000:]}")
    if not any(staging.glob("*.jar")):
        raise JarsError(f"mvn ran for profile {profile} but copied no jar into {staging}")
    (staging / _COMPLETE).write_text(pom_digest() + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)  # atomic: a half-fetched folder is never taken for a complete one


def _jar_set(profile: str, folder: Path) -> JarSet:
    return JarSet(profile, folder, tuple(sorted(folder.glob("*.jar"))))


def installed(profile: str) -> JarSet:
    """The jars of a profile, which must already have been fetched."""
    folder = profile_folder(profile)
    if not (folder / _COMPLETE).is_file():
        raise JarsError(f"{profile} jars are not fetched into {folder}: run `telemetry jars fetch`")
    return _jar_set(profile, folder)


def flink_jar_urls() -> list[str]:
    """file:// URLs for Flink's pipeline.jars (connectors, Parquet format, Hadoop client)."""
    return [jar.as_uri() for jar in installed("flink").jars]


def kafka_broker_classpath() -> str:
    return os.pathsep.join(str(jar) for jar in installed("kafka-broker").jars)
