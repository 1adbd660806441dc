"""A local Apache Kafka 4.x KRaft node (combined broker and controller) run from Maven Central
jars with the local JVM: alone, the single-node dev broker; three of them, a replicated cluster
(streams/devenv/cluster.py).

Layout of the single broker (all under ``DevSettings``; a cluster node lives in
``<state_dir>/cluster/node-<id>/`` instead):
  ``<cache_dir>/kafka-<version>/libs/*.jar``   fetched once by Maven, shared by every broker
  ``<state_dir>/kafka/server.properties``      rewritten on every start from the settings
  ``<state_dir>/kafka/data/``                  the log dir; kept across restarts unless cleaned
  ``<state_dir>/kafka/kafka.pid|kafka.log``    PID file and broker stdout/stderr
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from streams.config import DevSettings
from streams.devenv.health import ensure_port_free, kafka_healthy
from streams.devenv.process import DevProcessError, ManagedProcess
from streams.devenv.service import LocalService

_NODE_ID = 1


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """Where one KRaft node listens and keeps its files, and the quorum it belongs to."""

    node_id: int
    port: int  # clients and the other brokers (PLAINTEXT)
    controller_port: int
    home: Path
    voters: str  # controller.quorum.voters: "<id>@<host>:<controller port>,..."
    cluster_id_file: Path  # one id for every node of a cluster
    replicas: int = 1  # RF of Kafka's internal topics and the default for new topics
    min_insync_replicas: int = 1

    @classmethod
    def single(cls, dev: DevSettings) -> NodeSpec:
        home = dev.state_dir / "kafka"
        return cls(
            node_id=_NODE_ID,
            port=dev.kafka_port,
            controller_port=dev.kafka_controller_port,
            home=home,
            voters=f"{_NODE_ID}@{dev.host}:{dev.kafka_controller_port}",
            cluster_id_file=home / "cluster.id",
        )


# Only used to let Maven resolve the broker's runtime classpath (slf4j 2 so that the log4j2
# binding is used instead of a silent no-op logger).
_POM = """<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.gar</groupId>
  <artifactId>gar-kafka-runtime</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{kafka_version}</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>2.0.17</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId>
      <version>2.25.3</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>2.25.3</version>
    </dependency>
  </dependencies>
</project>
"""

# Quiet broker log: warnings, plus the one line that says the server started.
_LOG4J2 = """status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = OUT
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = INFO
"""


class KafkaBroker(LocalService):
    """Fetch, format, start, health-check and stop one local node: the single dev broker
    described by ``dev``, or one node of a cluster described by ``node``."""

    def __init__(self, dev: DevSettings, node: NodeSpec | None = None, name: str = "kafka") -> None:
        self.dev = dev
        self.node = node or NodeSpec.single(dev)
        self.home = self.node.home
        self.data_dir = self.home / "data"
        self.config_file = self.home / "server.properties"
        self.lib_dir = dev.cache_dir / f"kafka-{dev.kafka_version}" / "libs"
        self.process = ManagedProcess(
            name=name,
            pid_file=self.home / "kafka.pid",
            log_file=self.home / "kafka.log",
            marker=str(self.config_file),
        )

    @property
    def node_id(self) -> int:
        return self.node.node_id

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.dev.host}:{self.node.port}"

    @property
    def address(self) -> str:
        return self.bootstrap_servers

    # -- jars -----------------------------------------------------------------------------
    def fetch_jars(self) -> Path:
        """Resolve the broker classpath with Maven into the cache (no-op when cached)."""
        done = self.lib_dir / ".complete"
        if done.exists():
            return self.lib_dir
        work = self.lib_dir.parent
        work.mkdir(parents=True, exist_ok=True)
        pom = work / "pom.xml"
        pom.write_text(_POM.format(kafka_version=self.dev.kafka_version))
        tmp = work / "libs.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            self.dev.maven_bin, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={tmp}",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevProcessError(f"maven could not fetch Kafka jars:\n{result.stdout[-3000:]}")
        shutil.rmtree(self.lib_dir, ignore_errors=True)
        tmp.rename(self.lib_dir)
        done.write_text(self.dev.kafka_version + "\n")
        return self.lib_dir

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout_s: float | None = None) -> None:
        """Start in the background and wait until a client sees a live broker (idempotent)."""
        self.spawn()
        self.process.wait_until(self.healthy, timeout_s or self.dev.start_timeout_s)

    def spawn(self) -> None:
        """Start the JVM without waiting for health (a cluster node needs its peers first)."""
        if self.process.is_running():
            return
        for port in (self.node.port, self.node.controller_port):
            ensure_port_free(self.dev.host, port)
        self.fetch_jars()
        self._write_config()
        self._format_storage()
        self.process.spawn(self._java_cmd("kafka.Kafka", str(self.config_file)))

    def healthy(self) -> bool:
        return kafka_healthy(self.dev.host, self.node.port)

    # -- internals ------------------------------------------------------------------------
    def _java_cmd(self, main_class: str, *args: str) -> list[str]:
        heap_mb = self.dev.kafka_heap_mb
        return [
            self.dev.java_bin, f"-Xms{heap_mb // 2}m", f"-Xmx{heap_mb}m",
            "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp", f"{self.lib_dir}/*", main_class, *args,
        ]  # fmt: skip

    def _write_config(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "log4j2.properties").write_text(_LOG4J2)
        self.config_file.write_text(render_server_properties(self.dev, self.data_dir, self.node))

    def _format_storage(self) -> None:
        if (self.data_dir / "meta.properties").exists():
            return  # keep the log across restarts
        cluster_id_file = self.node.cluster_id_file
        if not cluster_id_file.exists():
            cluster_id_file.parent.mkdir(parents=True, exist_ok=True)
            cluster_id_file.write_text(_new_cluster_id() + "\n")
        cluster_id = cluster_id_file.read_text().strip()
        cmd = self._java_cmd(
            "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config_file)
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise DevProcessError(f"kafka storage format failed:\n{result.stdout}{result.stderr}")


def render_server_properties(dev: DevSettings, data_dir: Path, node: NodeSpec | None = None) -> str:
    """Config of one combined broker+controller node: the single dev broker (RF 1 everywhere)
    or a cluster node (its internal topics replicated ``node.replicas`` times); fast group
    joins either way."""
    host = dev.host
    node = node or NodeSpec.single(dev)
    rf, min_isr = str(node.replicas), str(node.min_insync_replicas)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        "controller.quorum.voters": node.voters,
        "listeners": f"PLAINTEXT://{host}:{node.port},CONTROLLER://{host}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        # The app must create its topics with the partition counts its tables need.
        "auto.create.topics.enable": "false",
        "delete.topic.enable": "true",
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Tests join groups often: no initial delay and allow short session timeouts.
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        # Compaction must really happen (policy topic, changelogs); check often.
        "log.cleaner.enable": "true",
        "log.cleaner.backoff.ms": "1000",
        # A restarted (e.g. killed) node waits out its old broker session before it is
        # unfenced; keep that short for fault tests.
        "broker.session.timeout.ms": "2000",
        "broker.heartbeat.interval.ms": "500",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "background.threads": "4",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def _new_cluster_id() -> str:
    """Kafka's cluster id format: URL-safe base64 of 16 random bytes, no padding. Like Kafka's
    own ``Uuid.randomUuid``, never with a leading '-': ``kafka-storage format -t -Xy...`` reads
    it as an option (a clean-clone CI run failed on one, 1 id in 64)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid
