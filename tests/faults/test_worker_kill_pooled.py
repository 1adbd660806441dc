"""Pooled accuracy duals through SIGKILLs: a worker deciding with one mu per requests partition
(``mu_pooled``), fed graded completions all along, is killed twice mid-stream.

Promise: every request has exactly one decision (never two); each scope's decisions count up
``mu_seq`` by one in its partition's log order with no gap or repeat (the recovery scan restores
the scope's mu, sequence and side state from the records after the checkpoint), and ``gar
audit`` re-derives every decision bit for bit with clean tenant and scope chains.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from support.audit import audit

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
from streams.core.inputs import Completion
from streams.core.policy_config import PolicyConfig
from streams.schema import completion_record, encode

pytestmark = [pytest.mark.integration, pytest.mark.faults]

N_REQUESTS = env_flag("GAR_FAULTS_KILL_POOLED_REQUESTS", 4_000)
N_TENANTS = 17
PARTITIONS = 4
STEP_MS = 3_000_000 // N_REQUESTS


def _requests() -> list[tuple[bytes | None, bytes]]:
    return [
        (t.encode(), request(i, t, T0_MS + i * STEP_MS))
        for i in range(N_REQUESTS)
        for t in [f"tenant-{i % N_TENANTS}"]
    ]


def _completions() -> list[tuple[bytes | None, bytes]]:
    """A graded answer for every third request, served by one deployment, mostly wrong."""
    out: list[tuple[bytes | None, bytes]] = []
    for i in range(0, N_REQUESTS, 3):
        t = f"tenant-{i % N_TENANTS}"
        c = Completion(
            f"req-{i:06d}", t, "large-70b", "eu-north", "gsm8k",
            T0_MS + i * STEP_MS + 1_000, 800.0, 120, 150, None, i % 4 == 0,
        )  # fmt: skip
        out.append((t.encode(), encode(completion_record(c))))
    return out


def test_two_sigkills_keep_every_scopes_pooled_mu_chain_and_the_audit_clean(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = settings_factory(
        topics={"partitions": PARTITIONS},
        worker={
            "catalog_path": str(catalog_path),
            "batch_max": 200,
            "checkpoint_interval_ms": 100,
        },
    )
    create_topics(settings)
    lay = layout(settings)
    policy = PolicyConfig(
        version="kill-pooled-1",
        mu_pooled=True,
        feedback_weight=0.3,
        floors={"gsm8k": 0.95},
        adaptive_floor_alpha=None,
        default_budget_g=0.05,
        budget_window_ms=3_600_000,
        budget_buckets=60,
    )
    items = _requests()
    kill_at = [int(N_REQUESTS * f) for f in (0.3, 0.65)]
    logs: list[Worker] = []
    worker = start_worker(settings, tmp_path / "w0.log")

    async def scenario() -> tuple[list[tuple[int, int]], TopicReader]:
        nonlocal worker
        reader = TopicReader(
            settings, [lay.decisions, lay.dead_letter, *lay.dispatch.values()], lay
        )
        await reader.start()
        producing = asyncio.create_task(
            produce_tracked(
                settings, lay.requests, items, pace=lambda i: 0.05 if i % 50 == 49 else 0.0
            )
        )
        feeding = asyncio.create_task(
            produce_tracked(
                settings, lay.completions, _completions(), pace=lambda i: 0.05 if i % 10 == 9 else 0
            )
        )
        killed = 0
        try:
            while killed < len(kill_at):
                await reader.poll(200)
                assert alive(worker), worker.log()[-3000:]
                if len(reader.accounted) >= kill_at[killed]:
                    worker.kill()
                    killed += 1
                    logs.append(worker)
                    worker = start_worker(settings, tmp_path / f"w{len(logs)}.log")
            positions = await producing
            await feeding

            def done(r: TopicReader) -> bool:
                return len(r.accounted) >= len(items) and r.dispatched_ids >= r.decided_ids

            await reader.until(done, 180.0)
        finally:
            await reader.stop()
        return positions, reader

    try:
        publish_policy(settings, policy)
        positions, reader = asyncio.run(scenario())
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    logs.append(worker)
    acc = account(reader, lay)

    # Exactly one decision per request, none twice, nothing dead-lettered.
    assert set(acc.outcomes()) == set(positions), worker.log()[-3000:]
    assert acc.dead == {}
    assert all(len(v) == 1 for v in acc.decided.values()), "a request was decided twice"
    assert acc.decision_records == len(acc.decided) == N_REQUESTS
    # Each scope: its partition's decisions, mu_seq 1..n in log order across its tenants.
    by_scope: dict[str, list[dict[str, Any]]] = defaultdict(list)
    # (acc.decisions: the decision records in log order, partition by partition)
    in_log_order = sorted(reader.records[lay.decisions], key=lambda m: (m.partition, m.offset))
    for m, d in zip(in_log_order, acc.decisions, strict=True):
        assert d["mu_scope"] == f"p{m.partition}"
        by_scope[d["mu_scope"]].append(d)
    assert len(by_scope) == PARTITIONS
    for scope, recs in by_scope.items():
        assert [d["mu_seq"] for d in recs] == list(range(1, len(recs) + 1)), scope
        assert len({d["tenant"] for d in recs}) > 1
    assert sum(1 for d in acc.decisions if d.get("feedback")) > 0, "no feedback was counted"
    recovered = sum(w.log().count("decisions after checkpoint") for w in logs)
    # Every decision re-derives; tenant chains, scope chains (mu per scope and dataset with
    # mu_seq) and MACs are unbroken across the kills.
    report, rows = audit(settings, catalog_path)
    assert report.rows == report.rederived == len(rows) == N_REQUESTS
    assert report.mismatches == [], report.mismatches[:5]
    assert report.chain.issues == [], report.chain.issues[:5]
    assert report.chain.scopes == PARTITIONS
    assert report.macs is not None and report.macs.issues == []
    print(
        f"\npooled kill test: requests={N_REQUESTS} scopes={PARTITIONS} "
        f"decisions_with_feedback={sum(1 for d in acc.decisions if d.get('feedback'))} "
        f"recovery_scans_with_tail={recovered}"
    )
