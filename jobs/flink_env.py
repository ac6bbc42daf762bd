"""One way to make a StreamExecutionEnvironment for every job, local or on a cluster.

Sets what DESIGN.md says bites if forgotten: thread mode with the interpreter that runs us (pemja
embeds libpython and must find this venv's packages), connector jars from connectors.jars,
exactly-once checkpoints, and a bounded restart strategy (the default with checkpointing retries
forever, which turns a broken job into a silent hang).

s3:// paths (Bronze, checkpoints) go through Flink's S3 filesystem, a plugin. Flink's CLI and
cluster processes load plugins from FLINK_PLUGINS_DIR, but a local MiniCluster loads none, so
`create_env` hands the plugin from connectors.jars to the JVM's FileSystem itself, configured with
the job's `s3.*` settings (`[flink] s3_endpoint`: "" is AWS, a URL such as moto's is path-style).

Flink's Prometheus reporter (`[flink] prometheus_port` > 0) serves the job's metrics — Flink's own
and the counters our functions register — on http://<host>:<port>/metrics. How a MiniCluster inside
PyFlink's gateway JVM finds it, measured here (PyFlink 2.2.1, a small job, /metrics polled):
  - pipeline.jars: works. PyFlink adds pipeline.jars to the context classloader of the gateway
    thread (`Configuration.set_string` → `add_jars_to_context_class_loader`), and the MiniCluster,
    started from that thread by `execute()`, looks reporter factories up with `ServiceLoader` on
    it. This is what `prometheus_settings` does, with the `flink-metrics` jar profile (Maven Central).
  - the plugins folder: never loaded. PyPI's package ships pyflink/plugins/metrics-prometheus/ and
    the gateway is given FLINK_PLUGINS_DIR, but the MiniCluster has no plugin manager
    (PerJobMiniClusterFactory builds its MiniClusterConfiguration without one): no endpoint.
  - FLINK_LIB_DIR: ignored unless FLINK_HOME is set too (pyflink's find_flink_home overwrites it).
  - HADOOP_CLASSPATH: works (the gateway appends it to its -cp), but it is Hadoop's variable.
The reporter binds every interface (Flink 2.2.1's PrometheusReporter opens `InetSocketAddress(port)`:
it has no host setting). On a cluster, reporters are cluster configuration, not a job's: the
standalone cluster (infra/flink_cluster.py) and the Kubernetes image load it from plugins/.
"""

from __future__ import annotations

import os
import site
import sys
from pathlib import Path

from pyflink.common import Configuration
from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment

from connectors import jars
from fleet.config import FlinkConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Set in the Kubernetes image (deploy/flink-k8s/Dockerfile), whose Flink lib/ holds the connector
# jars: the job then ships none (and needs no local jar cache).
JARS_IN_FLINK_LIB = "TELEMETRY_JARS_IN_FLINK_LIB"


def _embedded_python_path() -> str:
    """PYTHONPATH for pemja's embedded interpreter.

    It starts from the base interpreter's prefix, not the venv's, and does not read .pth files of
    PYTHONPATH entries, so both the venv's site-packages and the project root must be named.
    """
    entries = [str(PROJECT_ROOT), *site.getsitepackages()]
    inherited = os.environ.get("PYTHONPATH")
    if inherited:
        entries += [e for e in inherited.split(os.pathsep) if e and e not in entries]
    return os.pathsep.join(entries)


def restart_strategy_settings(config: FlinkConfig) -> dict[str, str]:
    """Always bounded. Exponential delay rides out an outage of minutes (an AWS endpoint, a broker)
    with few attempts; fixed delay keeps local runs and tests quick to give up."""
    if config.restart_attempts <= 0:
        return {"restart-strategy.type": "none"}
    if config.restart_strategy == "exponential-delay":
        return {
            "restart-strategy.type": "exponential-delay",
            "restart-strategy.exponential-delay.initial-backoff": f"{config.restart_delay_ms} ms",
            "restart-strategy.exponential-delay.max-backoff": f"{config.restart_max_delay_ms} ms",
            "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
            "restart-strategy.exponential-delay.reset-backoff-threshold": "1 h",
            "restart-strategy.exponential-delay.attempts-before-reset-backoff": str(config.restart_attempts),
        }
    return {
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": str(config.restart_attempts),
        "restart-strategy.fixed-delay.delay": f"{config.restart_delay_ms} ms",
    }


def s3_settings(endpoint: str, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Flink S3 filesystem keys (mirrored to Hadoop's fs.s3a.*) for `[flink] s3_endpoint`.

    "" (AWS): nothing, the default credential chain and endpoint apply. A URL (moto, MinIO):
    path-style requests there, with the AWS_* environment's keys or, absent those, dummy ones —
    as connectors/aws_clients does for boto3, so a local endpoint never sends real keys by accident.
    """
    if not endpoint:
        return {}
    environ = os.environ if environ is None else environ
    return {
        "s3.endpoint": endpoint,
        "s3.path.style.access": "true",
        "s3.endpoint.region": environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        "s3.access-key": environ.get("AWS_ACCESS_KEY_ID") or "testing",
        "s3.secret-key": environ.get("AWS_SECRET_ACCESS_KEY") or "testing",
    }


PROMETHEUS_REPORTER_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def prometheus_settings(port: int) -> dict[str, str]:
    """The reporter `prom` serving /metrics on `port`; nothing for port 0."""
    if port <= 0:
        return {}
    return {
        "metrics.reporter.prom.factory.class": PROMETHEUS_REPORTER_FACTORY,
        "metrics.reporter.prom.port": str(port),
    }


def _pipeline_jars(config: FlinkConfig) -> list[str]:
    """Connector jars, plus the reporter when there is a metrics port (see the module doc)."""
    urls = jars.flink_jar_urls()
    if config.prometheus_port > 0:
        urls += jars.prometheus_reporter_jar_urls()
    return urls


def flink_configuration(config: FlinkConfig, *, extra: dict[str, str] | None = None) -> Configuration:
    conf = Configuration()
    settings = {
        **({} if os.environ.get(JARS_IN_FLINK_LIB) else {"pipeline.jars": ";".join(_pipeline_jars(config))}),
        "python.execution-mode": config.execution_mode,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "parallelism.default": str(config.parallelism),
        "execution.checkpointing.interval": f"{config.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": config.checkpoint_dir,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.backend.type": config.state_backend,
        **restart_strategy_settings(config),
        # Python operators hand on their output per bundle; the default bundle time (1 s) alone
        # would eat the 1 s ingest→alert budget. Small bundles cost little in thread mode.
        "python.fn-execution.bundle.time": str(config.python_bundle_time_ms),
        "python.fn-execution.bundle.size": str(config.python_bundle_size),
        # Network buffers are sent when full or after this long: the other latency floor.
        "execution.buffer-timeout.interval": f"{config.buffer_timeout_ms} ms",
        # Chained Java operators hand records on without a deep copy. Without it each Bronze row is
        # copied field by field through Kryo between Flink's Row→RowData mapper and the Parquet
        # writer (a profile of the pipeline: ~8 % of its JVM samples). Safe here: the Python
        # operators get converted copies, and the SQL and connector operators never keep a record
        # they were handed.
        "pipeline.object-reuse": "true",
        **s3_settings(config.s3_endpoint),
        **prometheus_settings(config.prometheus_port),
        **({"rest.port": str(config.rest_port), "rest.bind-address": "127.0.0.1"} if config.rest_port > 0 else {}),
        **(extra or {}),
    }
    for key, value in settings.items():
        conf.set_string(key, value)
    return conf


def create_env(config: FlinkConfig, *, extra: dict[str, str] | None = None) -> StreamExecutionEnvironment:
    """A local (MiniCluster) or, under `flink run`, the cluster's environment, configured alike."""
    # The JVM gateway inherits our environment when it starts: set PYTHONPATH before it does.
    os.environ["PYTHONPATH"] = _embedded_python_path()
    conf = flink_configuration(config, extra=extra)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    _load_filesystem_plugins(conf)
    env.set_parallelism(config.parallelism)
    env.enable_checkpointing(config.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    return env


def _load_filesystem_plugins(conf: Configuration) -> None:
    """Flink's FileSystem in this JVM with the fetched plugins (the S3 filesystem) and this job's
    settings. A MiniCluster never does this itself (only Flink's CLI and cluster entry points do),
    so without it s3:// fails with "Could not find a file system implementation for scheme 's3'".
    Under `flink run` this is the client's JVM: the cluster's own processes use their plugins/."""
    plugins = jars.flink_plugins_dir()
    if plugins is None or os.environ.get(JARS_IN_FLINK_LIB):
        return
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    j_conf = conf._j_configuration
    finder = jvm.org.apache.flink.core.plugin.DirectoryBasedPluginFinder(jvm.java.io.File(str(plugins)).toPath())
    patterns = jvm.org.apache.flink.configuration.CoreOptions.getPluginParentFirstLoaderPatterns(j_conf)
    manager = jvm.org.apache.flink.core.plugin.DefaultPluginManager(finder.findPlugins(), patterns)
    jvm.org.apache.flink.core.fs.FileSystem.initialize(j_conf, manager)
