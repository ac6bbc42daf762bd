"""A single Apache Kafka 4 broker in KRaft mode (broker + controller in one JVM) on loopback.

Runs from the Maven-fetched jars (no distribution tarball): storage is formatted on first start with
`kafka.tools.StorageTool`, then `kafka.Kafka` runs with a generated server.properties. Settings are
the ones a single broker needs for transactions (exactly-once sinks) and consumer groups.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from pathlib import Path

from connectors import jars
from infra.process import ComponentStatus, InfraError, ManagedProcess, port_open, wait_until

_LOG4J2 = """\
<Configuration status="WARN">
  <Appenders>
    <RollingFile name="file" fileName="{log}" filePattern="{log}.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="3"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Logger name="kafka" level="INFO"/>
    <Logger name="org.apache.kafka" level="INFO"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Root level="WARN"><AppenderRef ref="file"/></Root>
  </Loggers>
</Configuration>
"""


class KafkaBroker:
    name = "kafka"

    def __init__(self, run_dir: Path, host: str, port: int, controller_port: int, heap: str = "1g"):
        self.folder = run_dir / "kafka"
        self.host, self.port, self.controller_port, self.heap = host, port, controller_port, heap
        self.process = ManagedProcess("kafka", self.folder)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    def server_properties(self) -> str:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # One broker: every internal topic must live with a single replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Flink's KafkaSink keeps transactions open for a checkpoint interval or more.
            "transaction.max.timeout.ms": "900000",
            # Topics are code (connectors/kafka_topics.py): a typo must fail, not create a topic.
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
            "num.partitions": "1",
            "log.retention.check.interval.ms": "60000",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise InfraError("java is not installed: run `make setup` (installs a JRE 17 from Debian)")
        return java

    def _format_storage_once(self, classpath: str, properties: Path) -> None:
        if (self.data_dir / "meta.properties").is_file():
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        completed = subprocess.run(
            [self._java(), "-cp", classpath, "kafka.tools.StorageTool", "format",
             f"--cluster-id={cluster_id}", "-c", str(properties), "--ignore-formatted"],
            capture_output=True, text=True, check=False,
        )
        if completed.returncode != 0:
            raise InfraError(f"kafka storage format failed:\n{completed.stdout}{completed.stderr}")

    def up(self, timeout_s: float = 90.0) -> int:
        self.process.refuse_taken(self.host, self.port, self.controller_port)
        self.folder.mkdir(parents=True, exist_ok=True)
        properties = self.folder / "server.properties"
        properties.write_text(self.server_properties())
        log4j = self.folder / "log4j2.xml"
        log4j.write_text(_LOG4J2.format(log=self.folder / "server.log"))
        classpath = jars.kafka_broker_classpath()
        self._format_storage_once(classpath, properties)
        pid = self.process.start([
            self._java(), f"-Xmx{self.heap}", "-Xms256m", "-XX:+UseG1GC",
            "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}",
            "-cp", classpath, "kafka.Kafka", str(properties),
        ])
        wait_until(self._ready, timeout_s=timeout_s, what=f"broker metadata on {self.address}", process=self.process)
        return pid

    def _ready(self) -> bool:
        if not port_open(self.host, self.port):
            return False
        from confluent_kafka.admin import AdminClient

        metadata = AdminClient({"bootstrap.servers": self.address}).list_topics(timeout=5)
        return bool(metadata.brokers)

    def down(self) -> bool:
        return self.process.stop(timeout_s=60.0)

    def status(self) -> ComponentStatus:
        pid = self.process.pid()
        healthy = False
        detail = "stopped"
        if pid is not None:
            try:
                healthy = self._ready()
                detail = "ready" if healthy else "starting or unreachable"
            except Exception as exc:  # noqa: BLE001 - status reports, it does not raise
                detail = f"unreachable: {exc}"
        return ComponentStatus(self.name, self.address, pid, healthy, detail, self.folder / "server.log")
