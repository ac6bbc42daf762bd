"""Read the lake's Delta tables with Apache Spark, to show that any Delta reader opens what
delta-rs wrote — not only delta-rs itself.

Spark and its Delta Lake package live in a side venv of their own (infra.side_venv: their pins
clash with PyFlink's), created on first use from PyPI. `lake/spark_read.py` runs there, with a Java
Spark 3.5 supports; the Delta jars come from Maven Central through Ivy into ~/.ivy2 (cached across
runs). Spark writes each table's rows as Parquet, which this side reads back with pyarrow."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from glob import glob
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from infra.side_venv import clean_env, ensure_side_venv

VENV_NAME = "spark-venv"
# Spark 3.5 (Scala 2.12) ↔ Delta Lake 3.3: the last Delta line built for Spark 3.5. Spark 4 needs
# Java 17+ and Delta 4; 3.5 is what most readers of these tables run today.
SPARK_REQUIREMENTS = ("pyspark>=3.5,<3.6", "delta-spark>=3.3,<3.4")
SPARK_IMPORTS = "import pyspark, delta"
SUPPORTED_JAVA = (17, 11, 8)  # Spark 3.5's; the first found in this order of candidates wins
SCRIPT = Path(__file__).with_name("spark_read.py")
MAVEN_CENTRAL = "https://repo1.maven.org/maven2/"

# Spark's default Ivy chain also asks the local Maven repository and repos.spark-packages.org; the
# Delta jars are on Maven Central, the one JVM registry we download from.
IVY_SETTINGS = f"""<ivysettings>
  <settings defaultResolver="central"/>
  <resolvers>
    <ibiblio name="central" m2compatible="true" root="{MAVEN_CENTRAL}"/>
  </resolvers>
</ivysettings>
"""


class SparkCheckError(RuntimeError):
    """Spark could not read a table (or could not start); the message ends with its stderr tail."""


def _java_major(home: Path) -> int | None:
    release = home / "release"
    if release.is_file():
        found = re.search(r'JAVA_VERSION="(\d+)(?:\.(\d+))?', release.read_text(errors="replace"))
        if found:
            major = int(found.group(1))
            return int(found.group(2)) if major == 1 and found.group(2) else major  # 1.8 → 8
    return None


def find_java_home() -> Path:
    """JAVA_HOME if its Java suits Spark 3.5, else the `java` on PATH, else a JDK under /usr/lib/jvm."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    if shutil.which("java"):
        candidates.append(Path(os.path.realpath(shutil.which("java"))).parents[1])
    candidates += [Path(p) for p in sorted(glob("/usr/lib/jvm/*")) if not Path(p).is_symlink()]
    seen = {home: _java_major(home) for home in candidates if (home / "bin" / "java").exists()}
    for major in SUPPORTED_JAVA:
        for home, found in seen.items():
            if found == major:
                return home
    raise SparkCheckError(f"no Java {'/'.join(map(str, SUPPORTED_JAVA))} for Spark 3.5 found "
                          f"(looked at: {', '.join(f'{h} ({v})' for h, v in seen.items()) or 'none'}); set JAVA_HOME")


def ensure_spark_venv(*, out: Callable[[str], None] = print) -> Path:
    return ensure_side_venv(VENV_NAME, SPARK_REQUIREMENTS, SPARK_IMPORTS, out=out)


def read_with_spark(tables: dict[str, str], out_dir: str | Path, *, ivy_home: str | Path | None = None,
                    timeout_s: float = 900, out: Callable[[str], None] = print) -> dict[str, pa.Table]:
    """Each table (name → Delta URI) as Spark reads its latest snapshot. What Spark saw (versions,
    protocol, schema) is in `spark_report(out_dir)`. `ivy_home`: Ivy's folder instead of ~/.ivy2."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    python = ensure_spark_venv(out=out)
    settings = out_dir / "ivysettings.xml"
    settings.write_text(IVY_SETTINGS)
    env = clean_env({"JAVA_HOME": str(find_java_home()), "PYSPARK_PYTHON": str(python), "SPARK_LOCAL_IP": "127.0.0.1"})
    for name in ("SPARK_HOME", "SPARK_CONF_DIR", "PYSPARK_SUBMIT_ARGS", "PYSPARK_DRIVER_PYTHON"):
        env.pop(name, None)  # a Spark installed elsewhere must not stand in for the venv's
    argv = [str(python), "-I", str(SCRIPT), "--out", str(out_dir), "--ivy-settings", str(settings),
            *(["--ivy-home", str(ivy_home)] if ivy_home else []), *(f"{name}={uri}" for name, uri in tables.items())]
    log = out_dir / "spark.log"
    with log.open("wb") as err:
        try:
            result = subprocess.run(argv, env=env, cwd=out_dir, stdout=subprocess.PIPE, stderr=err,
                                    timeout=timeout_s, text=True)
        except subprocess.TimeoutExpired as exc:
            raise SparkCheckError(f"Spark did not finish within {timeout_s:.0f}s; {_tail(log)}") from exc
    if result.returncode != 0:
        raise SparkCheckError(f"Spark failed (exit {result.returncode}) reading {', '.join(tables)}; {_tail(log)}")
    for line in result.stdout.splitlines():
        if line.startswith("spark "):  # the script's summary; Ivy's resolution report goes to stdout too
            out(line)
    return {name: pq.read_table(out_dir / name) for name in tables}


def spark_report(out_dir: str | Path) -> dict:
    """What the last read_with_spark into `out_dir` saw: spark/delta/java versions and, per table,
    version, min reader/writer versions, table features, Spark schema, rows."""
    return json.loads((Path(out_dir) / "spark-read.json").read_text())


def _tail(log: Path, lines: int = 30) -> str:
    """The root cause first (a JVM trace's last "Caused by:"), then the log's last lines."""
    text = log.read_text(errors="replace").splitlines()
    causes = [line.strip() for line in text if line.lstrip().startswith("Caused by:")]
    cause = f"{causes[-1]}\n" if causes else ""
    return f"{cause}last lines of {log}:\n" + "\n".join(text[-lines:])
