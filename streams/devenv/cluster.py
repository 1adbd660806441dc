"""A local replicated Apache Kafka cluster: ``kafka_cluster_size`` combined broker+controller
KRaft nodes on 127.0.0.1 (default three), each a ``KafkaBroker`` with its own ports, data dir
and PID file, one cluster id. Internal topics are replicated three times with
``min.insync.replicas=2`` (fewer on a smaller cluster).

Layout (all under ``DevSettings``):
  ``<state_dir>/cluster/cluster.id``            shared by every node
  ``<state_dir>/cluster/node-<id>/``            server.properties, data/, kafka.pid, kafka.log

Besides start/stop, the fault tests use it to kill and restart single nodes, find the leader of
a partition and the active controller, and wait until every replica is back in sync.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient

from streams.config import DevSettings
from streams.devenv.broker import KafkaBroker, NodeSpec
from streams.devenv.process import DevProcessError
from streams.devenv.service import LocalService
from streams.devenv.status import ServiceStatus

T = TypeVar("T")
NAME = "cluster"


def cluster_ports(dev: DevSettings) -> list[tuple[int, int]]:
    """(client port, controller port) of each node: consecutive pairs from kafka_cluster_port."""
    base = dev.kafka_cluster_port
    return [(base + 2 * i, base + 2 * i + 1) for i in range(dev.kafka_cluster_size)]


class KafkaCluster(LocalService):
    """Start, stop, status of the whole cluster; kill/stop/start of one node for fault tests."""

    def __init__(self, dev: DevSettings, ports: Sequence[tuple[int, int]] | None = None) -> None:
        self.dev = dev
        self.home = dev.state_dir / NAME
        self.data_dir = self.home
        ports = list(ports or cluster_ports(dev))
        replicas = min(3, len(ports))
        voters = ",".join(f"{i + 1}@{dev.host}:{cport}" for i, (_, cport) in enumerate(ports))
        self.nodes = [
            KafkaBroker(
                dev,
                NodeSpec(
                    node_id=i + 1,
                    port=port,
                    controller_port=cport,
                    home=self.home / f"node-{i + 1}",
                    voters=voters,
                    cluster_id_file=self.home / "cluster.id",
                    replicas=replicas,
                    min_insync_replicas=max(1, replicas - 1),
                ),
                name=f"{NAME}-{i + 1}",
            )
            for i, (port, cport) in enumerate(ports)
        ]
        self.process = self.nodes[0].process  # LocalService's handle; every node has its own

    @property
    def name(self) -> str:
        return NAME

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.bootstrap_servers for n in self.nodes)

    @property
    def address(self) -> str:
        return self.bootstrap_servers

    def node(self, node_id: int) -> KafkaBroker:
        return self.nodes[node_id - 1]

    # -- whole cluster --------------------------------------------------------------------
    def start(self, timeout_s: float | None = None) -> None:
        """Spawn every node (a quorum needs a majority up before any node is healthy), then
        wait until each answers and the cluster reports all of them as live brokers."""
        self.nodes[0].fetch_jars()
        for n in self.nodes:
            n.spawn()
        deadline = time.monotonic() + (timeout_s or self.dev.start_timeout_s)
        for n in self.nodes:
            n.process.wait_until(n.healthy, max(1.0, deadline - time.monotonic()))
        self.wait_brokers(len(self.nodes), max(1.0, deadline - time.monotonic()))

    def healthy(self) -> bool:
        if not all(n.process.is_running() and n.healthy() for n in self.nodes):
            return False
        try:
            return len(_run(lambda: self._live_brokers(self.bootstrap_servers))) == len(self.nodes)
        except Exception:
            return False

    def stop(self) -> bool:
        """Graceful stop of every node at once (one at a time, the last ones would wait out
        their controlled shutdown without a quorum)."""
        with concurrent.futures.ThreadPoolExecutor(len(self.nodes)) as pool:
            return any(list(pool.map(lambda n: n.stop(), self.nodes)))

    def kill(self) -> bool:
        return any([n.kill() for n in self.nodes])

    def clean(self) -> None:
        if any(n.process.is_running() for n in self.nodes):
            raise DevProcessError("stop the cluster before cleaning its data")
        super().clean()

    def status(self) -> ServiceStatus:
        pids = [n.process.pid() for n in self.nodes]
        return ServiceStatus(
            name=NAME,
            address=self.address,
            pid=next((p for p in pids if p is not None), None),
            healthy=all(p is not None for p in pids) and self.healthy(),
            data_dir=self.data_dir,
            log_file=self.nodes[0].process.log_file,
        )

    def statuses(self) -> list[ServiceStatus]:
        return [n.status() for n in self.nodes]

    # -- one node ---------------------------------------------------------------------------
    def start_node(self, node_id: int, timeout_s: float | None = None) -> None:
        """Start a stopped or killed node; wait until the cluster counts it live again."""
        node = self.node(node_id)
        node.start(timeout_s)
        self.wait_brokers(len(self.nodes), timeout_s or self.dev.start_timeout_s)

    def live_nodes(self) -> list[KafkaBroker]:
        return [n for n in self.nodes if n.process.is_running()]

    def wait_brokers(self, count: int, timeout_s: float) -> None:
        """Until the cluster's metadata lists ``count`` live (unfenced) brokers."""
        ids: list[int] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                ids = _run(lambda: self._live_brokers(self._live_bootstrap()))
                if len(ids) >= count:
                    return
            time.sleep(0.25)
        raise DevProcessError(f"cluster lists brokers {ids} after {timeout_s:.0f}s, not {count}")

    def leader(self, topic: str, partition: int) -> int:
        """Node id of the partition's current leader (-1: none)."""

        async def ask() -> int:
            async with _admin(self._live_bootstrap()) as admin:
                [desc] = await admin.describe_topics([topic])
                return next(
                    int(p["leader"]) for p in desc["partitions"] if p["partition"] == partition
                )

        return _run(ask)

    def wait_leader(self, topic: str, partition: int, not_node: int, timeout_s: float) -> int:
        """Until the partition is led by a live node other than ``not_node`` (the controller
        moves leadership once the old leader's broker session expires); returns its id."""
        leader = -1
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                leader = self.leader(topic, partition)
                if leader > 0 and leader != not_node:
                    return leader
            time.sleep(0.2)
        raise DevProcessError(f"{topic}-{partition} still led by {leader} after {timeout_s:.0f}s")

    def active_controller(self) -> int:
        """Node id of the quorum's leader, from the newest epoch any live node recorded in
        its ``quorum-state`` file (no client API reaches the controllers' quorum)."""
        best = (-1, -1)
        for n in self.live_nodes():
            path = n.data_dir / "__cluster_metadata-0" / "quorum-state"
            with contextlib.suppress(OSError, ValueError, KeyError):
                state = json.loads(path.read_text())
                epoch, leader = int(state["leaderEpoch"]), int(state["leaderId"])
                if leader > 0 and epoch > best[0]:
                    best = (epoch, leader)
        return best[1]

    def wait_controller(self, not_node: int, timeout_s: float) -> int:
        """Until a live node other than ``not_node`` leads the quorum; returns its id."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leader = self.active_controller()
            if leader > 0 and leader != not_node and self.node(leader).process.is_running():
                return leader
            time.sleep(0.2)
        raise DevProcessError(f"no controller other than node {not_node} after {timeout_s:.0f}s")

    def wait_in_sync(self, timeout_s: float, prefix: str = "") -> None:
        """Until every replica of every partition (of topics starting with ``prefix``, and
        Kafka's own) is in its ISR: a rolling restart must wait for this before the next node,
        or a partition may be left with fewer in-sync copies than ``min.insync.replicas``."""

        async def lagging() -> list[str]:
            async with _admin(self._live_bootstrap()) as admin:
                names = [t for t in await admin.list_topics() if t.startswith((prefix, "__"))]
                out = []
                for desc in await admin.describe_topics(names) if names else []:
                    for p in desc["partitions"]:
                        if set(p["isr"]) != set(p["replicas"]) or p["leader"] < 0:
                            out.append(f"{desc['topic']}-{p['partition']} isr={p['isr']}")
                return out

        behind: list[str] = ["(not asked yet)"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                behind = _run(lagging)
                if not behind:
                    return
            time.sleep(0.5)
        raise DevProcessError(f"replicas not in sync after {timeout_s:.0f}s: {behind[:5]}")

    # -- internals ------------------------------------------------------------------------
    def _live_bootstrap(self) -> str:
        live = self.live_nodes() or self.nodes
        return ",".join(n.bootstrap_servers for n in live)

    @staticmethod
    async def _live_brokers(bootstrap: str) -> list[int]:
        async with _admin(bootstrap) as admin:
            cluster = await admin.describe_cluster()
            return sorted(int(b["node_id"]) for b in cluster.get("brokers", []))


@contextlib.asynccontextmanager
async def _admin(bootstrap: str, timeout_s: float = 5.0) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    await asyncio.wait_for(client.start(), timeout_s)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.close()


def _run(make: Callable[[], Coroutine[Any, Any, T]], timeout_s: float = 15.0) -> T:
    """Run a coroutine to completion from sync code, also inside a running loop (a thread)."""

    async def bounded() -> T:
        return await asyncio.wait_for(make(), timeout_s)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(bounded())).result()
