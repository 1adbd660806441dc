"""A real worker with pooled accuracy duals (``{"mu_pooled": true}`` on the policy topic): each
requests partition is a scope whose mu every tenant on it shares; graded completions fold into
their partition's scope; every decision names its scope and its place in the scope's order, and
``gar audit`` re-derives every one of them with clean tenant and scope chains."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.audit import audit
from support.worker import SMALL_CATALOG, produce, read_all, request_bytes, start_worker

from streams.core.inputs import Completion
from streams.kafka.admin import ensure_topics
from streams.kafka.topics import TENANT_TABLE, TopicLayout, topic_specs
from streams.schema import completion_record, encode

pytestmark = pytest.mark.integration
MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000
PARTITIONS = 4
TENANTS = [f"tenant-{i}" for i in range(20)]
N_FIRST, N_SECOND = 300, 200
POLICY = {
    "schema_version": 1,
    "scope": "global",
    "policy_name": "gar-pd",
    "config": {
        "version": "pooled-1",
        "mu_pooled": True,
        "adaptive_floor_alpha": None,
        "floors": {"gsm8k": 0.9},
        "latency_slo_ms": 60_000.0,
        "feedback_weight": 0.3,
    },
}


def _requests(lo: int, hi: int) -> list[tuple[bytes, bytes]]:
    return [
        (t.encode(), request_bytes(i, t, T0_MS + 1_000 * i))
        for i in range(lo, hi)
        for t in [TENANTS[(i * 7) % len(TENANTS)]]
    ]


def _decisions(settings: Any, lay: TopicLayout, n: int) -> list[tuple[int, int, dict[str, Any]]]:
    out = asyncio.run(
        read_all(settings, [lay.decisions], lambda o: len(o[lay.decisions]) >= n, 120.0)
    )
    return [(m.partition, m.offset, orjson.loads(m.value)) for m in out[lay.decisions]]


def test_a_pooled_worker_decides_with_one_mu_per_partition_and_audits_clean(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = settings_factory(
        topics={"partitions": PARTITIONS},
        worker={"catalog_path": str(catalog_path), "batch_max": 64},
    )
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    lay = TopicLayout.from_settings(settings, MODELS)
    tenant_cl = f"{settings.app_id}-{TENANT_TABLE}-changelog"
    worker = start_worker(settings, tmp_path / "w.log")
    try:
        asyncio.run(produce(settings, lay.policy, [(b"global", orjson.dumps(POLICY))]))
        asyncio.run(
            read_all(
                settings,
                [f"{settings.app_id}-policy-changelog"],
                lambda o: len(next(iter(o.values()))) >= 1,
                60.0,
            )
        )
        asyncio.run(produce(settings, lay.requests, _requests(0, N_FIRST)))
        first = _decisions(settings, lay, N_FIRST)
        assert {d["policy_version"] for _, _, d in first} == {"pooled-1"}, worker.log()[-3000:]
        # Graded completions of every decision (keyed by tenant: on its requests partition),
        # mostly wrong: each scope's surprise goes negative.
        graded = [
            Completion(
                d["request_id"], d["tenant"], d["model"], d["region"], "gsm8k",
                T0_MS + 400_000 + j, 800.0, 120, 150, None, j % 4 == 0,
            )
            for j, (_, _, d) in enumerate(first)
        ]  # fmt: skip
        asyncio.run(
            produce(
                settings,
                lay.completions,
                [(c.tenant.encode(), encode(completion_record(c))) for c in graded],
            )
        )

        # Wait until every completion is folded (each scope's completions position is its
        # partition's completion count), so each scope's surprise is consumed by one decision.
        per_partition = Counter(p for p, _, _ in first)

        def scopes_folded(o: dict[str, list[Any]]) -> bool:
            latest = {m.key: orjson.loads(m.value) for m in o[tenant_cl] if m.value is not None}
            return all(
                latest.get(b"t:\x00scope:%d" % p, {}).get("completions_next_offset") == n
                for p, n in per_partition.items()
            )

        changelog = asyncio.run(read_all(settings, [tenant_cl], scopes_folded, 120.0))
        assert scopes_folded(changelog), worker.log()[-3000:]
        scope_states = [
            orjson.loads(m.value) for m in changelog[tenant_cl] if m.key.startswith(b"t:\x00")
        ]
        assert all(st["tenant"].startswith("\x00scope:") for st in scope_states)
        asyncio.run(produce(settings, lay.requests, _requests(N_FIRST, N_FIRST + N_SECOND)))
        decided = _decisions(settings, lay, N_FIRST + N_SECOND)
    finally:
        worker.stop()
    assert len(decided) == N_FIRST + N_SECOND, worker.log()[-3000:]

    # One scope per partition, shared by the tenants of the partition, counted in log order.
    by_partition: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for p, _, d in sorted(decided, key=lambda x: (x[0], x[1])):
        by_partition[p].append(d)
    assert set(by_partition) == set(range(PARTITIONS))
    for p, recs in by_partition.items():
        assert {d["mu_scope"] for d in recs} == {f"p{p}"}
        assert [d["mu_seq"] for d in recs] == list(range(1, len(recs) + 1))
        assert len({d["tenant"] for d in recs}) > 1
        # mu chains across the scope's tenants, and each scope's feedback was counted once.
        for prev, nxt in itertools.pairwise(recs):
            assert nxt["duals_before"][1] == prev["duals_after"][1]
        counted = [d for d in recs if d.get("feedback")]
        assert len(counted) == 1 and counted[0]["feedback"] < 0, p
    assert len({d["tenant"] for _, _, d in decided}) == len(TENANTS)

    report, _rows = audit(settings, catalog_path)
    assert report.rows == report.rederived == N_FIRST + N_SECOND
    assert report.mismatches == [], report.mismatches[:5]
    assert report.chain.breaks == [] and report.chain.issues == [], report.chain.issues[:5]
    assert report.chain.scopes == PARTITIONS and report.chain.tenants == len(TENANTS)
    assert report.macs is not None and report.macs.issues == []
