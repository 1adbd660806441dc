"""Acceptance against the real router: a ``gar worker`` run's decisions all re-derive and chain,
and a corrupted copy of one decision injected into the topic is reported at its offset."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from app.helpers import SMALL_CATALOG, produce, read_all, request_bytes, start_worker, write_catalog

from streams.app.admin import ensure_topics
from streams.app.topics import TopicLayout, topic_specs
from streams.audit.reader import ReadRange
from streams.audit.run import AuditRequest, run_audit
from streams.config import Settings

pytestmark = pytest.mark.integration
MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000
N = 240


def test_worker_decisions_rederive_and_a_corrupted_one_is_found(
    settings_factory: Any, tmp_path: Path
) -> None:
    catalog = write_catalog(tmp_path / "catalog.json")
    settings: Settings = settings_factory(
        topics={"partitions": 2}, worker={"catalog_path": str(catalog), "batch_max": 100}
    )
    layout = TopicLayout.from_settings(settings, MODELS)
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    items = [
        (f"tenant-{i % 5}".encode(), request_bytes(i, f"tenant-{i % 5}", T0_MS + i * 1000))
        for i in range(N)
    ]
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        asyncio.run(produce(settings, layout.requests, items))
        out = asyncio.run(
            read_all(settings, [layout.decisions], lambda o: len(o[layout.decisions]) >= N, 120.0)
        )
    finally:
        worker.stop()
    assert len(out[layout.decisions]) == N, worker.log()[-3000:]

    report, rows = run_audit(
        settings,
        AuditRequest(ReadRange(), catalog_path=catalog, counterfactual_policy="always-largest"),
    )
    assert report.rows == N and report.rederived == N
    assert report.mismatches == [], report.mismatches[:5]
    assert report.chain.breaks == [] and report.chain.links_checked == N - 5
    assert report.counterfactual is not None and report.counterfactual["skipped"] == 0
    assert report.inputs_checked == N and report.unverifiable == []

    # An event-time range: the router stamps decisions with the request's event time.
    lo, hi = T0_MS + 60_000, T0_MS + 120_000
    timed, trows = run_audit(
        settings,
        AuditRequest(
            ReadRange(start_ms=lo, end_ms=hi, lateness_ms=0),
            catalog_path=catalog,
            check_inputs=False,
        ),
    )
    assert sorted(r.record["request_id"] for r in trows if r.record) == sorted(
        r.record["request_id"] for r in rows if r.record and lo <= r.record["ts_ms"] < hi
    )
    assert timed.rows == 60 and timed.ok and timed.warnings == []

    # Inject a corrupted copy of one decision (another candidate, same everything else).
    victim = copy.deepcopy(rows[N // 2].record)
    assert victim is not None
    victim["candidate"] = 1 - victim["candidate"] if victim["candidate"] < 2 else 0
    # ... and it points at another request's offset (same partition, so it exists)
    other = next(
        r.record
        for r in rows
        if r.record
        and r.record["request_source"]["partition"] == victim["request_source"]["partition"]
        and r.record is not rows[N // 2].record
    )
    victim["request_source"] = other["request_source"]
    asyncio.run(
        produce(settings, layout.decisions, [(victim["tenant"].encode(), orjson.dumps(victim))])
    )
    report, rows = run_audit(settings, AuditRequest(ReadRange(), catalog_path=catalog))
    injected = [r for r in rows if r.record == victim]
    assert len(injected) == 1
    where = (injected[0].partition, injected[0].offset)
    assert {(m.partition, m.offset) for m in report.mismatches} == {where}
    fields = {m.field for m in report.mismatches}
    assert "candidate" in fields and "request_source.request_id" in fields
    # same tenant_seq as the original but a different record: a fork in the chain
    assert [(b.kind, b.partition, b.offset) for b in report.chain.breaks] == [
        ("seq_repeat", *where)
    ]
