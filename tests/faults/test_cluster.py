"""A replicated three-node KRaft cluster (PRIVATE, free ports; replication factor 3,
``min.insync.replicas=2``, acks=all everywhere) loses brokers while requests flow through one
worker: the leader of the requests and decisions partitions SIGKILLed and restarted, a rolling
restart of all three nodes, the active controller SIGKILLed. In each case every input ends as
exactly one decision or one dead letter, no request is decided twice, every tenant's dual chain
is continuous and ``gar audit`` re-derives every decision with no chain break.

Scaled for a 2-core machine that also runs the three JVMs: ~200 requests/s offered, thousands of
requests per fault, 4 partitions. The controller failover runs with the suite; the leader kill and
the rolling restart take ~5 min more and run with ``pytest -m long_cluster`` (all three:
``pytest -m cluster tests/faults``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from faults.helpers import (
    TopicReader,
    Worker,
    account,
    alive,
    create_topics,
    layout,
    publish_policy,
    start_worker,
)
from faults.promise import Flow, FlowingProducer, all_accounted, audit_clean, check_promise
from streams.config import Settings
from streams.core.policy_config import PolicyConfig
from streams.devenv import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.cluster]

TENANTS = 13
PER_TICK, TICK_S = 20, 0.1  # ~200 requests/s offered
Fault = Callable[[], dict[str, Any]]


# The test's own readers and producers log every refused connection to a dead node.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def _cluster_settings(cluster: KafkaCluster, settings_factory: Any, catalog_path: Path) -> Settings:
    # A test that failed mid-fault may have left a node down: every test starts from three
    # live nodes with every replica in sync.
    cluster.start()
    cluster.wait_in_sync(120.0)
    settings: Settings = settings_factory(
        kafka={"bootstrap_servers": cluster.bootstrap_servers},
        topics={"partitions": 4, "replication_factor": 3, "min_insync_replicas": 2},
        worker={"catalog_path": str(catalog_path), "batch_max": 200},
    )
    create_topics(settings)
    return settings


# A budget the traffic overspends, so lambda moves and its chain means something.
POLICY = PolicyConfig(
    version="cluster-v1",
    default_budget_g=0.05,
    budget_window_ms=3_600_000,
    budget_buckets=60,
    adaptive_floor_alpha=None,
)


def _run_with_fault(
    settings: Settings, tmp_path: Path, fault: Fault, min_items: int
) -> tuple[Flow, TopicReader, Worker, dict[str, Any]]:
    """One worker routes a steady flow; ``fault`` runs (in a thread) once the worker is busy;
    the flow stops after the fault and ``min_items``; wait until every input is accounted."""
    lay = layout(settings)
    worker = start_worker(settings, tmp_path / "worker.log")
    publish_policy(settings, POLICY)
    figures: dict[str, Any] = {}

    async def scenario() -> tuple[Flow, TopicReader]:
        reader = TopicReader(
            settings, [lay.decisions, lay.dead_letter, *lay.dispatch.values()], lay
        )
        await reader.start()
        producer = FlowingProducer(
            settings, lay.requests, TENANTS, PER_TICK, TICK_S, min_items=min_items
        )
        producing = asyncio.create_task(producer.run())
        try:
            await reader.until(lambda r: len(r.accounted) >= 500, 120.0)
            assert alive(worker), worker.log()[-3000:]
            figures["accounted_before_fault"] = len(reader.accounted)
            t0 = time.monotonic()
            faulting = asyncio.create_task(asyncio.to_thread(fault))
            # Longest time without a new outcome while requests were waiting for one.
            last_n, last_change, stall_s = len(reader.accounted), time.monotonic(), 0.0
            while not faulting.done() or producer.sent < min_items:
                await reader.poll(200)
                now, n = time.monotonic(), len(reader.accounted)
                if n != last_n or n >= producer.sent:
                    last_n, last_change = n, now
                stall_s = max(stall_s, now - last_change)
            figures.update(faulting.result())
            figures["fault_s"] = round(time.monotonic() - t0, 1)
            figures["longest_stall_s"] = round(stall_s, 1)
            producer.stop()
            flow = await producing
            t1 = time.monotonic()
            await reader.until(all_accounted(flow), 180.0)
            figures["drain_s"] = round(time.monotonic() - t1, 1)
        finally:
            producer.stop()
            await reader.stop()
        return flow, reader

    try:
        flow, reader = asyncio.run(scenario())
        assert max(d["duals_after"][0] for d in account(reader, lay).decisions) > 0
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    return flow, reader, worker, figures


def _check(
    settings: Settings, catalog_path: Path, name: str, run: tuple[Flow, TopicReader, Worker, Any]
) -> None:
    flow, reader, worker, figures = run
    lay = layout(settings)
    acc = check_promise(reader, lay, flow)
    audit_clean(settings, catalog_path, acc.decision_records)
    dispatched = {m.key.decode() for t in lay.dispatch.values() for m in reader.records[t]}
    assert dispatched == flow.valid_ids
    log = worker.log()
    print(
        f"\n{name}: requests={len(flow.positions)} decisions={acc.decision_records} "
        f"dead_letters={acc.dead_letter_records} {figures} "
        f"produce_errors_logged={log.count('Got error produce response')}"
    )


@pytest.mark.long_cluster
def test_leader_of_requests_and_decisions_killed_and_restarted(
    private_cluster: KafkaCluster, settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = _cluster_settings(private_cluster, settings_factory, catalog_path)
    lay = layout(settings)

    def fault() -> dict[str, Any]:
        killed: list[int] = []
        moved_s: list[float] = []
        for topic in (lay.requests, lay.decisions):
            leader = private_cluster.leader(topic, 0)
            if leader in killed:
                continue  # the node led both partitions: one kill covered them
            assert private_cluster.node(leader).kill()  # SIGKILL: no controlled shutdown
            killed.append(leader)
            t0 = time.monotonic()
            private_cluster.wait_leader(topic, 0, leader, 60.0)
            moved_s.append(round(time.monotonic() - t0, 1))
            time.sleep(2.0)  # routing goes on with one node down
            private_cluster.start_node(leader)
            private_cluster.wait_in_sync(120.0, settings.topics.prefix)
        return {"killed": killed, "leader_moved_s": moved_s}

    run = _run_with_fault(settings, tmp_path, fault, min_items=3_000)
    _check(settings, catalog_path, "leader kill", run)


@pytest.mark.long_cluster
def test_rolling_restart_of_all_three_brokers(
    private_cluster: KafkaCluster, settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = _cluster_settings(private_cluster, settings_factory, catalog_path)

    def fault() -> dict[str, Any]:
        for node in private_cluster.nodes:
            # The operator's procedure: graceful stop, start, wait until every replica is back
            # in sync before the next node (else min.insync.replicas=2 refuses writes).
            assert node.stop()
            private_cluster.start_node(node.node_id)
            private_cluster.wait_in_sync(120.0, settings.topics.prefix)
        return {"restarted": [n.node_id for n in private_cluster.nodes]}

    run = _run_with_fault(settings, tmp_path, fault, min_items=3_000)
    _check(settings, catalog_path, "rolling restart", run)


def test_controller_failover(
    private_cluster: KafkaCluster, settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = _cluster_settings(private_cluster, settings_factory, catalog_path)

    def fault() -> dict[str, Any]:
        old = private_cluster.active_controller()
        assert old > 0
        t0 = time.monotonic()
        assert private_cluster.node(old).kill()  # the active controller (and a broker) dies
        new = private_cluster.wait_controller(old, 30.0)
        elected_s = time.monotonic() - t0
        time.sleep(2.0)  # routing goes on under the new controller
        private_cluster.start_node(old)
        private_cluster.wait_in_sync(120.0, settings.topics.prefix)
        return {"old_controller": old, "new_controller": new, "elected_s": round(elected_s, 1)}

    run = _run_with_fault(settings, tmp_path, fault, min_items=2_000)
    _check(settings, catalog_path, "controller failover", run)
