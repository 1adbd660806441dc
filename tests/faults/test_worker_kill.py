"""Worker SIGKILLed three times mid-stream while producers keep publishing.

Promise: after dedupe by request id every request has exactly one decision or one dead letter;
duals and budgets continue from the changelogs (no gap, no repeat in any tenant's chain); the
duplicates that at-least-once delivery emits downstream are counted and are byte-identical, so
consumers dedupe by key (dispatch: request id) or by source position (dead letters).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.audit import audited_decisions

from faults.helpers import (
    T0_MS,
    TopicReader,
    Worker,
    account,
    alive,
    create_topics,
    env_flag,
    layout,
    produce_tracked,
    publish_policy,
    request,
    start_worker,
)
from streams.core.policy_config import PolicyConfig
from streams.core.replay import check_chain

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N_REQUESTS = env_flag("GAR_FAULTS_KILL_REQUESTS", 10_000)  # issue: 50,000; scaled for 2 cores
N_TENANTS = 13
BAD_EVERY = 50  # one truncated-JSON input in 50: dead letters are accounted too
# The whole run spans 50 min of event time, inside the 1 h budget window, whatever N is.
STEP_MS = 3_000_000 // N_REQUESTS


def _items(n: int) -> list[tuple[bytes | None, bytes]]:
    items: list[tuple[bytes | None, bytes]] = []
    for i in range(n):
        tenant = f"tenant-{i % N_TENANTS}"
        raw = request(i, tenant, T0_MS + i * STEP_MS)
        items.append((tenant.encode(), raw[: len(raw) // 2] if i % BAD_EVERY == 7 else raw))
    return items


# 100 ms: checkpoints skip batches, so the durable state lags further behind the log and the
# recovery scan, re-dispatch and the marks are exercised over many batches, not one.
@pytest.mark.parametrize("checkpoint_interval_ms", [0, 100])
def test_three_sigkills_lose_nothing_and_decide_nothing_twice(
    settings_factory: Any, catalog_path: Path, tmp_path: Path, checkpoint_interval_ms: int
) -> None:
    settings = settings_factory(
        topics={"partitions": 4},
        worker={
            "catalog_path": str(catalog_path),
            "batch_max": 200,
            "checkpoint_interval_ms": checkpoint_interval_ms,
        },
    )
    create_topics(settings)
    lay = layout(settings)
    # A budget the traffic overspends, so lambda moves and its chain means something.
    policy = PolicyConfig(
        version="kill-v1",
        default_budget_g=0.05,
        budget_window_ms=3_600_000,
        budget_buckets=60,
        adaptive_floor_alpha=None,
    )
    items = _items(N_REQUESTS)
    n_bad = sum(1 for i in range(N_REQUESTS) if i % BAD_EVERY == 7)
    kill_at = [int(N_REQUESTS * f) for f in (0.2, 0.45, 0.7)]
    logs: list[Worker] = []
    worker = start_worker(settings, tmp_path / "w0.log")

    async def scenario() -> tuple[list[tuple[int, int]], TopicReader, list[int]]:
        nonlocal worker
        reader = TopicReader(
            settings, [lay.decisions, lay.dead_letter, *lay.dispatch.values()], lay
        )
        await reader.start()
        # ~1,000 requests/s from the producer while the worker is killed and restarted.
        producing = asyncio.create_task(
            produce_tracked(
                settings, lay.requests, items, pace=lambda i: 0.05 if i % 50 == 49 else 0.0
            )
        )
        killed_at: list[int] = []
        try:
            while len(killed_at) < len(kill_at):
                await reader.poll(200)
                assert alive(worker), worker.log()[-3000:]
                if len(reader.accounted) >= kill_at[len(killed_at)]:
                    worker.kill()  # SIGKILL: no shutdown, no commit, batches in flight
                    killed_at.append(len(reader.accounted))
                    logs.append(worker)
                    worker = start_worker(settings, tmp_path / f"w{len(logs)}.log")
            positions = await producing

            def done(r: TopicReader) -> bool:
                return len(r.accounted) >= len(items) and r.dispatched_ids >= r.decided_ids

            await reader.until(done, 180.0)
        finally:
            await reader.stop()
        return positions, reader, killed_at

    try:
        publish_policy(settings, policy)
        positions, reader, killed_at = asyncio.run(scenario())
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    logs.append(worker)
    acc = account(reader, lay)
    assert len(killed_at) == 3 and len(set(positions)) == N_REQUESTS

    # Every input position has exactly one kind of outcome, and nothing else has one.
    outcome = acc.outcomes()
    assert set(outcome) == set(positions), worker.log()[-3000:]
    assert max(outcome.values()) == 1, "an input was both decided and dead-lettered"
    bad = {positions[i] for i in range(N_REQUESTS) if i % BAD_EVERY == 7}
    assert set(acc.dead) == bad and len(bad) == n_bad
    assert all(d["reason"] == "invalid_json" for v in acc.dead.values() for d in v)
    valid_ids = {f"req-{i:06d}" for i in range(N_REQUESTS) if i % BAD_EVERY != 7}
    assert {d["request_id"] for d in acc.decisions} == valid_ids
    # Decisions: never two different decisions for one request; count exact repeats.
    assert all(len(v) == 1 for v in acc.decided.values()), "a request was decided twice"
    dup_decisions = acc.decision_records - len(acc.decided)
    assert dup_decisions == 0
    # In log order (a tenant's decisions share one partition) every tenant's sequence rises:
    # the recovery scan folds decisions in log order, so overlapping batch flushes must not
    # interleave (they did once, and the window then lost the charges it skipped).
    last_seq: dict[str, int] = {}
    for d in acc.decisions:
        assert d["tenant_seq"] > last_seq.get(d["tenant"], 0), (d["tenant"], d["tenant_seq"])
        last_seq[d["tenant"]] = d["tenant_seq"]
    # Duals and budgets continued from the changelogs: one gap-free chain per tenant.
    records = sorted(acc.decisions, key=lambda d: (d["tenant"], d["tenant_seq"]))
    assert check_chain(acc.decisions) == []  # log order: tenant chains and pooled mu scopes
    for t in {d["tenant"] for d in records}:
        chain = [d for d in records if d["tenant"] == t]
        assert [d["tenant_seq"] for d in chain] == list(range(1, len(chain) + 1))
        for prev, nxt in itertools.pairwise(chain):
            # The run (50 min of event time) fits in the 1 h budget window, so nothing is
            # evicted: the window grows by exactly the previous decision's count and CO2.
            assert nxt["window_count_before"] == prev["window_count_before"] + 1
            assert nxt["window_spend_g_before"] == pytest.approx(
                prev["window_spend_g_before"] + prev["co2_g"], rel=1e-9, abs=1e-12
            )
    assert max(d["duals_after"][0] for d in records) > 0, "budget never bound"
    # After every kill -9: each decision re-derives bit for bit from its context record and
    # its tenant's MAC chain is unbroken (the chain head is restored with the state).
    assert len(audited_decisions(settings)) == len(acc.decisions)
    # Downstream duplicates (at-least-once): identical bytes, so dedupe by key is enough.
    per_id: dict[str, set[bytes]] = {}
    dispatch_records = 0
    for topic in lay.dispatch.values():
        for m in reader.records[topic]:
            per_id.setdefault(m.key.decode(), set()).add(m.value)
            dispatch_records += 1
    assert set(per_id) == valid_ids
    assert all(len(v) == 1 for v in per_id.values()), "a re-dispatch differed from the first"
    dup_dispatch = dispatch_records - len(per_id)
    dup_dead = acc.dead_letter_records - len(acc.dead)
    recovered = sum(w.log().count("decisions after checkpoint") for w in logs)
    print(
        f"\nkill test: requests={N_REQUESTS} bad={n_bad} killed_at={killed_at} "
        f"decision_records={acc.decision_records} duplicate_decisions={dup_decisions} "
        f"dispatch_records={dispatch_records} duplicate_dispatch={dup_dispatch} "
        f"dead_letters={acc.dead_letter_records} duplicate_dead_letters={dup_dead} "
        f"recovery_scans_with_tail={recovered} "
        f"reasons={Counter(d['reason'] for v in acc.dead.values() for d in v)}"
    )
