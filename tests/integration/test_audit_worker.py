"""Acceptance against the real router: a ``gar worker`` run's decisions.v2 all re-derive bit for
bit from their context records and chain (duals and MACs), and a forged copy of one decision
injected into the topic is reported at its offset."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.cli import ops_cli
from support.worker import (
    SMALL_CATALOG,
    produce,
    read_all,
    request_bytes,
    start_worker,
    write_catalog,
)
from typer.testing import CliRunner

from streams.audit.reader import ReadRange
from streams.audit.run import AuditRequest, run_audit
from streams.config import Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.topics import TopicLayout, topic_specs

pytestmark = pytest.mark.integration
MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000
N = 240


def test_worker_decisions_rederive_and_a_corrupted_one_is_found(
    settings_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
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
    assert report.macs is not None and report.macs.verified == N and report.macs.issues == []
    assert report.contexts is not None and report.contexts["usable"] >= 1

    # gar explain: one decision's full candidate table, recomputed from its context.
    monkeypatch.setenv("GAR_TOPICS__PREFIX", settings.topics.prefix)
    monkeypatch.setenv("GAR_TOPICS__PARTITIONS", "2")
    monkeypatch.setenv("GAR_WORKER__CATALOG_PATH", str(catalog))
    probe = rows[7].record
    assert probe is not None
    result = CliRunner().invoke(
        ops_cli(), ["explain", probe["request_id"], "--tenant", probe["tenant"], "--json"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["rederived"] and shown["findings"] == []
    cands = shown["candidates"]
    assert len(cands) == len(MODELS) * len(SMALL_CATALOG["regions"])
    (chosen,) = [c for c in cands if c["chosen"]]
    assert (chosen["model"], chosen["region"]) == (probe["model"], probe["region"])
    assert chosen["co2_g"] == probe["co2_g"] and chosen["feasible"]
    assert chosen["score"] == min(c["score"] for c in cands if c["feasible"])
    table = CliRunner().invoke(ops_cli(), ["explain", probe["request_id"]])
    assert table.exit_code == 0 and "re-derives bit for bit" in table.stdout

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

    # Inject a forged copy of one decision (another region of the same model, pointing at
    # another request's offset), written by someone without the MAC key.
    original = rows[N // 2]
    assert original.raw is not None
    victim = orjson.loads(original.raw)
    assert victim["schema_version"] == 2
    victim["region"] = next(
        r["name"] for r in SMALL_CATALOG["regions"] if r["name"] != victim["region"]
    )
    other = next(
        r.record
        for r in rows
        if r.record and r.partition == original.partition and r is not original
    )
    victim["request_offset"] = other["request_source"]["offset"]
    asyncio.run(
        produce(settings, layout.decisions, [(victim["tenant"].encode(), orjson.dumps(victim))])
    )
    report, rows = run_audit(settings, AuditRequest(ReadRange(), catalog_path=catalog))
    injected = [r for r in rows if r.raw == orjson.dumps(victim)]
    assert len(injected) == 1
    where = (injected[0].partition, injected[0].offset)
    assert {(m.partition, m.offset) for m in report.mismatches} == {where}
    fields = {m.field for m in report.mismatches}
    assert "candidate" in fields and "request_source.request_id" in fields
    # same tenant_seq (and, pooled, the same mu_seq of its scope) as the original but a
    # different record: a fork in both chains
    assert {(b.kind, b.partition, b.offset) for b in report.chain.breaks} == {
        ("seq_repeat", *where),
        ("mu_seq", *where),
    }
    # its MAC does not verify (and it is logged after later decisions of its tenant)
    assert report.macs is not None and report.macs.verified == N
    assert {(i.partition, i.offset) for i in report.macs.issues} == {where}
    assert "forged" in {i.kind for i in report.macs.issues}
