"""One way to make a StreamExecutionEnvironment for every job, local or on a cluster.

Sets what DESIGN.md says bites if forgotten: thread mode with the interpreter that runs us (pemja
embeds libpython and must find this venv's packages), connector jars from connectors.jars,
exactly-once checkpoints, and a bounded restart strategy (the default with checkpointing retries
forever, which turns a broken job into a silent hang).
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


def _restart_strategy(config: FlinkConfig) -> dict[str, str]:
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


def flink_configuration(config: FlinkConfig, *, extra: dict[str, str] | None = None) -> Configuration:
    conf = Configuration()
    settings = {
        **({} if os.environ.get(JARS_IN_FLINK_LIB) else {"pipeline.jars": ";".join(jars.flink_jar_urls())}),
        "python.execution-mode": config.execution_mode,
        "python.executable": sys.executable,
        "python.client.executable": sys.executable,
        "parallelism.default": str(config.parallelism),
        "execution.checkpointing.interval": f"{config.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": config.checkpoint_dir,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "state.backend.type": config.state_backend,
        **_restart_strategy(config),
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
        **(extra or {}),
    }
    for key, value in settings.items():
        conf.set_string(key, value)
    return conf


def create_env(config: FlinkConfig, *, extra: dict[str, str] | None = None) -> StreamExecutionEnvironment:
    """A local (MiniCluster) or, under `flink run`, the cluster's environment, configured alike."""
    # The JVM gateway inherits our environment when it starts: set PYTHONPATH before it does.
    os.environ["PYTHONPATH"] = _embedded_python_path()
    env = StreamExecutionEnvironment.get_execution_environment(flink_configuration(config, extra=extra))
    env.set_parallelism(config.parallelism)
    env.enable_checkpointing(config.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
    return env
