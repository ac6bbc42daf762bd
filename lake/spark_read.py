"""Read Delta tables with Apache Spark + Delta Lake and write their rows out as Parquet.

Runs INSIDE the Spark side venv (lake.spark_check starts it there): it imports the standard library,
pyspark and delta only — nothing of ours, whose pins are PyFlink's.

    python spark_read.py --out DIR [--ivy-settings FILE] [--ivy-home DIR] NAME=URI [NAME=URI ...]

For each table: `spark.read.format("delta").load(URI)` (the latest snapshot), its rows written by
Spark as one Parquet file under DIR/NAME/ (timestamps as TIMESTAMP_MICROS, UTC), and what Spark saw —
the table version, reader/writer protocol, table features, Spark's schema — into
DIR/spark-read.json. One Spark session (local[1]) reads every table. The Delta jars come through
Ivy (spark.jars.packages) into ~/.ivy2, from the resolvers of --ivy-settings when given."""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path


def _session(ivy_settings: str | None, ivy_home: str | None, local_dir: str):
    from pyspark.sql import SparkSession

    # delta.configure_spark_with_delta_pip does the same (the jar matching the pip package), but
    # knows nothing of an Ivy settings file.
    builder = (
        SparkSession.builder.master("local[1]").appName("fleet-telemetry-lake-check")
        .config("spark.jars.packages", f"io.delta:delta-spark_2.12:{version('delta-spark')}")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")  # not INT96
        .config("spark.sql.shuffle.partitions", "1")
        # Delta rebuilds a snapshot's state in 50 tasks by default: 50 tiny tasks one after the other
        # on one core took 7-15 s a table here, one takes well under a second.
        .config("spark.databricks.delta.snapshotPartitions", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # A JVM that lives a minute over a few thousand rows: the C1 compiler only and the serial GC
        # took the run from 66-77 s to 44-47 s here (2 busy cores). Spark's launcher still adds the
        # --add-opens flags Java 17 needs.
        .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.local.dir", local_dir)
    )
    if ivy_settings:
        builder = builder.config("spark.jars.ivySettings", ivy_settings)
    if ivy_home:
        builder = builder.config("spark.jars.ivy", ivy_home)
    return builder.getOrCreate()


def read_table(spark, name: str, uri: str, out: Path) -> dict:
    from delta.tables import DeltaTable

    started = time.monotonic()
    df = spark.read.format("delta").load(uri)
    table = DeltaTable.forPath(spark, uri)
    detail = table.detail().collect()[0].asDict()
    last = table.history(1).collect()[0]
    df.coalesce(1).write.mode("overwrite").parquet(str(out / name))
    return {
        "uri": uri,
        "version": last["version"],
        "operation": last["operation"],
        "min_reader_version": detail["minReaderVersion"],
        "min_writer_version": detail["minWriterVersion"],
        "table_features": sorted(detail.get("tableFeatures") or []),
        "partition_columns": list(detail["partitionColumns"]),
        "num_files": detail["numFiles"],
        "schema": {field.name: field.dataType.simpleString() for field in df.schema.fields},
        "read_s": round(time.monotonic() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--ivy-settings")
    parser.add_argument("--ivy-home", help="Ivy's folder (cache, jars) instead of ~/.ivy2")
    parser.add_argument("tables", nargs="+", metavar="NAME=URI")
    args = parser.parse_args(argv)
    tables = dict(pair.split("=", 1) for pair in args.tables)
    args.out.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    spark = _session(args.ivy_settings, args.ivy_home, str(args.out / "spark-local"))
    spark.sparkContext.setLogLevel("WARN")
    session_s = time.monotonic() - started
    try:
        report = {"spark_version": spark.version, "delta_spark_version": version("delta-spark"),
                  "java_version": spark.sparkContext._jvm.java.lang.System.getProperty("java.version"),
                  "session_s": round(session_s, 1), "tables": {}}
        for name, uri in tables.items():
            report["tables"][name] = read_table(spark, name, uri, args.out)
        report["total_s"] = round(time.monotonic() - started, 1)
    finally:
        spark.stop()
    (args.out / "spark-read.json").write_text(json.dumps(report, indent=2))
    for name, seen in report["tables"].items():
        print(f"spark {report['spark_version']} / delta {report['delta_spark_version']}: {name} v{seen['version']} "
              f"protocol {seen['min_reader_version']}/{seen['min_writer_version']} ({seen['operation']}, {seen['num_files']} files)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
