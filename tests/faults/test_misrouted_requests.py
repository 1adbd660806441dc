"""Requests whose Kafka key is not their tenant are never decided on a copy of that tenant's
state (real broker, a worker SIGKILL mid-stream).

A tenant's state (duals, budget window, sequence) lives with the tenant's partition. A request
with no key, a binary key or another tenant's key lands elsewhere, where a second copy of the
state would be forked: ``tenant_seq`` repeated with different duals after kills. Such requests
are dead-lettered with reason ``key_not_tenant`` (docs/reliability.md says why, rather than
repartitioning them), so every decision is made on the tenant's own partition and every
tenant's chain stays one chain.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from faults.helpers import (
    T0_MS,
    TopicReader,
    account,
    alive,
    create_topics,
    layout,
    produce_tracked,
    request,
    start_worker,
)
from streams.app.partition import default_partitions
from streams.core.replay import check_chain

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N = 3_000
PARTITIONS = 2
TENANTS = [f"tenant-{i}" for i in range(6)]
MISROUTED_EVERY = 7


def _home(key: bytes) -> int:
    return default_partitions([key], list(range(PARTITIONS)))[0]


def _items() -> tuple[list[tuple[bytes | None, bytes]], set[int]]:
    """Valid requests of six tenants; every 7th one of ``tenant-0`` carries a wrong key: none,
    a binary one, or a tenant's whose partition is another."""
    victim = TENANTS[0]
    other = next(t for t in TENANTS if _home(t.encode()) != _home(victim.encode()))
    wrong: list[bytes | None] = [None, b"\xff\x00\xfe binary", other.encode()]
    items: list[tuple[bytes | None, bytes]] = []
    misrouted: set[int] = set()
    for i in range(N):
        tenant = TENANTS[i % len(TENANTS)]
        key: bytes | None = tenant.encode()
        if tenant == victim and (i // len(TENANTS)) % MISROUTED_EVERY == 3:
            key = wrong[len(misrouted) % len(wrong)]
            misrouted.add(i)
        items.append((key, request(i, tenant, T0_MS + i * 1_000)))
    return items, misrouted


def test_requests_keyed_off_their_tenant_are_dead_lettered_not_decided_on_a_copy(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = settings_factory(
        topics={"partitions": PARTITIONS},
        worker={"catalog_path": str(catalog_path), "batch_max": 100},
    )
    create_topics(settings)
    lay = layout(settings)
    items, misrouted = _items()
    worker = start_worker(settings, tmp_path / "w0.log")
    workers = [worker]

    async def scenario() -> tuple[list[tuple[int, int]], TopicReader]:
        nonlocal worker
        reader = TopicReader(settings, [lay.decisions, lay.dead_letter], lay)
        await reader.start()
        producing = asyncio.create_task(
            produce_tracked(
                settings, lay.requests, items, pace=lambda i: 0.05 if i % 50 == 49 else 0.0
            )
        )
        try:
            while len(reader.accounted) < N * 0.4:
                await reader.poll(200)
                assert alive(worker), worker.log()[-3000:]
            worker.kill()  # SIGKILL mid-stream
            worker = start_worker(settings, tmp_path / "w1.log")
            workers.append(worker)
            positions = await producing
            await reader.until(lambda r: len(r.accounted) >= N, 120.0)
        finally:
            await reader.stop()
        return positions, reader

    try:
        positions, reader = asyncio.run(scenario())
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    acc = account(reader, lay)
    outcome = acc.outcomes()
    assert set(outcome) == set(positions) and max(outcome.values()) == 1
    # The wrong keys did put requests on the other partition (else the test shows nothing).
    homes = {t: _home(t.encode()) for t in TENANTS}
    elsewhere = [i for i in misrouted if positions[i][0] != homes[TENANTS[0]]]
    assert elsewhere, "no misrouted request landed on another partition"
    # Every misrouted input is a dead letter with its reason; nothing else is.
    dead = {pos: v[0] for pos, v in acc.dead.items()}
    assert set(dead) == {positions[i] for i in misrouted}
    assert {d["reason"] for d in dead.values()} == {"key_not_tenant"}
    assert all(d["request_id"] and d["tenant"] == TENANTS[0] for d in dead.values())
    # Every decision was made on its tenant's own partition, on one chain per tenant.
    # (A decision is written to its request's partition: requests and decisions are
    # co-partitioned.)
    placed = Counter(
        (orjson.loads(m.value)["tenant"], m.partition) for m in reader.records[lay.decisions]
    )
    assert all(p == homes[t] for t, p in placed), placed
    assert all(len(v) == 1 for v in acc.decided.values())
    records = sorted(acc.decisions, key=lambda d: (d["tenant"], d["tenant_seq"]))
    seqs = Counter((d["tenant"], d["tenant_seq"]) for d in records)
    assert max(seqs.values()) == 1, [k for k, n in seqs.items() if n > 1][:10]
    assert check_chain(acc.decisions) == []  # log order: tenant chains and pooled mu scopes
    for t, chain in itertools.groupby(records, key=lambda d: d["tenant"]):
        assert [d["tenant_seq"] for d in chain] == list(
            range(1, N // len(TENANTS) + 1 - (len(misrouted) if t == TENANTS[0] else 0))
        )
    print(
        f"\nmisrouted: {len(misrouted)} of {N} (on another partition: {len(elsewhere)}), "
        f"decisions={acc.decision_records} dead_letters={acc.dead_letter_records} "
        f"workers={len(workers)}"
    )
