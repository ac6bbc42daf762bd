"""The one place that knows where JVM jars are: fetched by Maven from connectors/jvm/pom.xml,
plus the platform's own classes built by Maven from connectors/jvm/fleet-flink/.

`fetch()` runs Maven once per content of the poms and Java sources, per profile, and records
completion; after that it is a no-op that touches no network. Jobs ask `flink_jar_urls()` (the
`flink` profile: connectors, formats, Hadoop client and our fleet-flink jar) and
`flink_plugins_dir()` (Flink's S3 filesystem, a plugin: never on pipeline.jars) and
`prometheus_reporter_jar_urls()` (Flink's Prometheus reporter, for jobs with a metrics port); the
local broker asks `kafka_broker_classpath()`. Nothing else hard-codes a jar path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

JVM = Path(__file__).parent / "jvm"
POM = JVM / "pom.xml"
FLEET_FLINK = JVM / "fleet-flink"  # our Java classes (EventTimeHourBucketAssigner), built by `mvn package`
PROFILES = ("flink", "flink-plugins", "flink-metrics", "kafka-broker")
# Flink loads a filesystem plugin from <plugins root>/<plugin name>/*.jar, each in its own classloader.
_PLUGIN_FOLDERS = {"flink-plugins": "s3-fs-hadoop", "flink-metrics": "metrics-prometheus"}
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


def _jvm_sources() -> list[Path]:
    """Everything whose change must rebuild the cache: the pom, fleet-flink's pom and sources."""
    sources = [p for p in (FLEET_FLINK / "src").rglob("*") if p.is_file()]
    return [POM, FLEET_FLINK / "pom.xml", *sorted(sources)]


def pom_digest() -> str:
    digest = hashlib.sha256()
    for path in _jvm_sources():
        digest.update(path.relative_to(JVM).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


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
    output_dir = staging / _PLUGIN_FOLDERS[profile] if profile in _PLUGIN_FOLDERS else staging
    _run_maven(mvn, profile, ["-f", str(POM), "-P", profile, "dependency:copy-dependencies", f"-DoutputDirectory={output_dir}"], quiet=quiet)
    if profile == "flink":
        _build_fleet_flink(mvn, staging, quiet=quiet)
    if not any(output_dir.glob("*.jar")):
        raise JarsError(f"mvn ran for profile {profile} but copied no jar into {output_dir}")
    (staging / _COMPLETE).write_text(pom_digest() + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)  # atomic: a half-fetched folder is never taken for a complete one


def _run_maven(mvn: str, profile: str, args: list[str], *, quiet: bool) -> None:
    argv = [mvn, "-B", "-Dstyle.color=never", "--no-transfer-progress", *args]
    if quiet:
        argv.insert(1, "-q")
    completed = subprocess.run(argv, capture_output=quiet, text=True, check=False)
    if completed.returncode != 0:
        output = (completed.stdout or "") + (completed.stderr or "")
        raise JarsError(f"mvn failed for profile {profile} (exit {completed.returncode}):\n{output[-4000:]}")


def _build_fleet_flink(mvn: str, staging: Path, *, quiet: bool) -> None:
    """`mvn package` of connectors/jvm/fleet-flink, built outside the source tree; the jar joins
    the `flink` profile (so pipeline.jars carries it)."""
    build_dir = staging.with_name(staging.name + ".build")
    shutil.rmtree(build_dir, ignore_errors=True)
    try:
        _run_maven(mvn, "flink", ["-f", str(FLEET_FLINK / "pom.xml"), f"-Dfleet.build.dir={build_dir}", "package"], quiet=quiet)
        built = sorted(build_dir.glob("fleet-flink-*.jar"))
        if not built:
            raise JarsError(f"mvn package of {FLEET_FLINK} made no jar in {build_dir}")
        for jar in built:
            shutil.copy2(jar, staging / jar.name)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)


def _jar_set(profile: str, folder: Path) -> JarSet:
    pattern = f"{_PLUGIN_FOLDERS[profile]}/*.jar" if profile in _PLUGIN_FOLDERS else "*.jar"
    return JarSet(profile, folder, tuple(sorted(folder.glob(pattern))))


def installed(profile: str) -> JarSet:
    """The jars of a profile, which must already have been fetched."""
    folder = profile_folder(profile)
    if not (folder / _COMPLETE).is_file():
        raise JarsError(f"{profile} jars are not fetched into {folder}: run `telemetry jars fetch`")
    return _jar_set(profile, folder)


def flink_jar_urls() -> list[str]:
    """file:// URLs for Flink's pipeline.jars (connectors, Parquet format, Hadoop client, fleet-flink)."""
    return [jar.as_uri() for jar in installed("flink").jars]


def flink_plugins_dir() -> Path | None:
    """A Flink plugins root (FLINK_PLUGINS_DIR) holding `s3-fs-hadoop/`, Flink's S3 filesystem for
    s3:// paths; None if that profile was not fetched. Plugins load in their own classloaders, so
    this jar must never be on pipeline.jars."""
    folder = profile_folder("flink-plugins")
    return folder if (folder / _COMPLETE).is_file() else None


def prometheus_reporter_jar_urls() -> list[str]:
    """file:// URLs of Flink's Prometheus reporter (flink-metrics-prometheus, the `flink-metrics`
    profile), for pipeline.jars of a local MiniCluster: it has no plugin manager, and finds
    reporters only through the context classloader PyFlink builds from pipeline.jars (measured;
    see jobs/flink_env.py)."""
    return [jar.as_uri() for jar in installed("flink-metrics").jars]


def kafka_broker_classpath() -> str:
    return os.pathsep.join(str(jar) for jar in installed("kafka-broker").jars)
