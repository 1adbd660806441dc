"""Workers join and leave while requests flow (the shared broker; 6 partitions): A alone, B
joins, C joins and B is SIGKILLed while that rebalance is under way, a new policy is published,
A leaves (SIGTERM), D joins. Every input ends as exactly one decision or one dead letter, no
request is decided twice, every tenant's chain is continuous across the owners it had, ``gar
audit`` is clean, and no decision is made under a policy older than the one in force at its
batch: along every tenant's chain and every decisions partition the policy version never goes
back, and every request that arrived after the new policy was applied is decided under it."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.worker import wait_log

from faults.helpers import (
    TopicReader,
    Worker,
    alive,
    create_topics,
    layout,
    publish_policy,
    request_position,
)
from faults.helpers import start_worker as start
from faults.promise import Flow, FlowingProducer, all_accounted, audit_clean, check_promise
from streams.core.policy_config import PolicyConfig

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TENANTS = 13
READY = "Worker ready"  # Faust logs it (info) once the partitions it got are recovered
REVOKE = "Revoking previously assigned partitions"  # a rebalance began (aiokafka, info)
# How long after the new policy's changelog record a worker may still route a batch it fetched
# before the record reached it (every worker reads the policy changelog as it is written).
POLICY_PROPAGATION_MS = 5_000


def _policy(version: str, budget_g: float) -> PolicyConfig:
    return PolicyConfig(
        version=version,
        default_budget_g=budget_g,
        budget_window_ms=3_600_000,
        budget_buckets=60,
        adaptive_floor_alpha=None,
    )


def test_workers_join_and_leave_under_load(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    settings = settings_factory(
        topics={"partitions": 6},
        worker={"catalog_path": str(catalog_path), "batch_max": 200},
    )
    create_topics(settings)
    lay = layout(settings)
    workers: dict[str, Worker] = {"a": start(settings, tmp_path / "a.log")}
    publish_policy(settings, _policy("rebalance-v1", 0.05))
    events: list[str] = []
    policy_v2_at_ms = 0

    def choreography() -> None:
        nonlocal policy_v2_at_ms

        def join(name: str) -> Worker:
            workers[name] = start(settings, tmp_path / f"{name}.log")
            events.append(f"{name} joins")
            return workers[name]

        wait_log(join("b"), READY, 90.0)
        time.sleep(2.0)
        revokes = workers["a"].log().count(REVOKE)
        c = join("c")
        # C's join makes the group rebalance; B dies while it is under way: after A gave up
        # its partitions for the new assignment, before C got any.
        _wait_count(workers["a"], REVOKE, revokes, 60.0)
        workers["b"].kill()
        events.append("b SIGKILLed during the rebalance")
        assert READY not in c.log(), "C finished joining before B was killed"
        wait_log(c, READY, 90.0)
        # C's first "ready" can belong to an assignment made while B was still a member; B's
        # session timeout then rebalances once more. Publish once the group has settled.
        _wait_settled([workers["a"], c], quiet_s=4.0, timeout_s=60.0)
        try:
            publish_policy(settings, _policy("rebalance-v2", 0.04))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{_group_log(workers)}") from None
        policy_v2_at_ms = int(time.time() * 1000)
        events.append("policy v2 published")
        time.sleep(2.0)
        # A leaves with SIGTERM. Faust's shutdown after a rebalance sometimes ends with its
        # consumer thread "crashed" ("Event loop is closed") and exit code 1 (seen once in CI;
        # README, Known gaps): the worker must stop, not hang; what it left is checked below.
        assert workers["a"].stop() in (0, 1), workers["a"].log()[-3000:]
        events.append("a leaves (SIGTERM)")
        wait_log(join("d"), READY, 90.0)
        time.sleep(3.0)

    async def scenario() -> tuple[Flow, TopicReader]:
        reader = TopicReader(
            settings, [lay.requests, lay.decisions, lay.dead_letter, *lay.dispatch.values()], lay
        )
        await reader.start()
        producer = FlowingProducer(settings, lay.requests, TENANTS, per_tick=20, tick_s=0.1)
        producing = asyncio.create_task(producer.run())
        try:
            await reader.until(lambda r: len(r.accounted) >= 300, 120.0)
            moving = asyncio.create_task(asyncio.to_thread(choreography))
            while not moving.done():
                await reader.poll(200)
            moving.result()
            producer.stop()
            flow = await producing
            await reader.until(all_accounted(flow), 180.0)
        finally:
            producer.stop()
            await reader.stop()
        return flow, reader

    try:
        flow, reader = asyncio.run(scenario())
        for name in ("c", "d"):
            assert alive(workers[name]), workers[name].log()[-3000:]
    finally:
        for w in workers.values():
            w.stop()
    acc = check_promise(reader, lay, flow)
    audit_clean(settings, catalog_path, acc.decision_records)
    dispatched = {m.key.decode() for t in lay.dispatch.values() for m in reader.records[t]}
    assert dispatched == flow.valid_ids

    # The policy never goes back: along each tenant's chain and each decisions partition.
    rank = {"rebalance-v1": 1, "rebalance-v2": 2}
    versions = {d["policy_version"] for d in acc.decisions}
    assert versions == set(rank), versions  # no decision under the default or another policy
    by_tenant: dict[str, int] = {}
    for d in sorted(acc.decisions, key=lambda d: (d["tenant"], d["tenant_seq"])):
        assert rank[d["policy_version"]] >= by_tenant.get(d["tenant"], 0), d["request_id"]
        by_tenant[d["tenant"]] = rank[d["policy_version"]]
    by_partition: dict[int, int] = {}
    arrived = {(m.partition, m.offset): m.timestamp for m in reader.records[lay.requests]}
    late_v1 = []  # ms after the new policy was applied that a request decided under v1 arrived
    for m in reader.records[lay.decisions]:
        d = orjson.loads(m.value)
        v = rank[d["policy_version"]]
        assert v >= by_partition.get(m.partition, 0), (m.partition, m.offset)
        by_partition[m.partition] = v
        arrived_ms = arrived[request_position(m.partition, d)]
        if v == 1 and arrived_ms > policy_v2_at_ms:
            late_v1.append(arrived_ms - policy_v2_at_ms)
    # A request that arrived once the new policy was applied is decided under it.
    assert max(late_v1, default=0) < POLICY_PROPAGATION_MS, sorted(late_v1)[-5:]
    after_v2 = sum(1 for d in acc.decisions if d["policy_version"] == "rebalance-v2")
    assert after_v2 > 0
    print(
        f"\nrebalance: requests={len(flow.positions)} decisions={acc.decision_records} "
        f"dead_letters={acc.dead_letter_records} events={events} "
        f"decided_under_v2={after_v2} v1_after_v2_applied={len(late_v1)} "
        f"latest_v1_ms_after_v2={max(late_v1, default=0)}"
    )


def _wait_settled(ws: list[Worker], quiet_s: float, timeout_s: float) -> None:
    """Until every worker is ready after its last revocation and no worker has seen a new
    rebalance for ``quiet_s`` (longer than the session timeout, so a dead member's eviction
    would have begun)."""
    deadline = time.monotonic() + timeout_s
    seen: tuple[int, ...] = ()
    since = time.monotonic()
    while True:
        logs = [w.log() for w in ws]
        revokes = tuple(log.count(REVOKE) for log in logs)
        if revokes != seen:
            seen, since = revokes, time.monotonic()
        elif time.monotonic() - since >= quiet_s and all(
            log.rfind(READY) > log.rfind(REVOKE) for log in logs
        ):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"group not settled after {timeout_s} s: {_group_log(dict(enumerate(ws)))}"
            )
        time.sleep(0.1)


def _group_log(workers: dict[Any, Worker]) -> str:
    """Each worker's group and policy lines (joins, assignments of the policy topic, ready,
    applied policies), for a failure message."""
    keep = ("generation", READY, REVOKE, "policy applied", ".policy ", "Signal received")
    out = []
    for name, w in workers.items():
        lines = [ln[:200] for ln in w.log().splitlines() if any(k in ln for k in keep)]
        out.append(f"--- worker {name}\n" + "\n".join(lines[-60:]))
    return "\n".join(out)


def _wait_count(worker: Worker, needle: str, more_than: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.log().count(needle) <= more_than:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{needle!r} not seen again: {worker.log()[-2000:]}")
        time.sleep(0.05)
