#!/bin/sh
# The JVM jars of the Kubernetes image, from the same pom (and the same Maven goals) as local runs
# (connectors/jars.py): the connectors and our fleet-flink classes for Flink's lib/, Flink's S3
# filesystem and Prometheus reporter for plugins/. Run by deploy/flink-k8s/Dockerfile's first stage;
# tests/integration/test_image_jars.py runs it here and compares what it made with the local jars.
# Usage: image_jars.sh <pom.xml> <fleet-flink dir> <output dir>
set -eu
pom=$1
fleet_flink=$2
out=$3
mvn="mvn -B -q -Dstyle.color=never --no-transfer-progress"
$mvn -f "$pom" -P flink dependency:copy-dependencies -DoutputDirectory="$out/lib"
$mvn -f "$fleet_flink/pom.xml" -Dfleet.build.dir="$out/fleet-flink-build" package
cp "$out"/fleet-flink-build/fleet-flink-*.jar "$out/lib/"
rm -rf "$out/fleet-flink-build"
# A plugin lives in a folder of its own under plugins/, never in lib/ (Flink loads it in its own
# class loader): the S3 filesystem (the Hadoop one: FileSink needs its recoverable writer) and the
# reporter, which belongs to Flink's metric registry.
$mvn -f "$pom" -P flink-plugins dependency:copy-dependencies -DoutputDirectory="$out/plugins/s3-fs-hadoop"
$mvn -f "$pom" -P flink-metrics dependency:copy-dependencies -DoutputDirectory="$out/plugins/metrics-prometheus"
