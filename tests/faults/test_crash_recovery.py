"""A worker that dies right after a batch's decisions are acked (before their dispatch and
checkpoint) is recovered from the decisions log: re-dispatched, never re-decided."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from support.audit import audited_decisions
from support.worker import (
    create_worker_topics,
    produce,
    read_outputs,
    request_bytes,
    start_worker,
    worker_layout,
    worker_settings,
)

pytestmark = pytest.mark.integration
T0_MS = 1_672_531_200_000


@pytest.mark.faults
def test_crash_between_decisions_and_checkpoint_is_recovered_from_the_decisions_log(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    from streams.core.replay import check_chain

    settings = worker_settings(settings_factory, catalog_path, batch_max=100)
    crashing = worker_settings(
        settings_factory, catalog_path, batch_max=100, fault_exit_after_decisions_batch=3
    )
    create_worker_topics(settings)
    lay = worker_layout(settings)
    n = 1500
    items = [
        (f"tenant-{i % 5}".encode(), request_bytes(i, f"tenant-{i % 5}", T0_MS + i * 100))
        for i in range(n)
    ]
    asyncio.run(produce(settings, lay.requests, items))
    a = start_worker(crashing, tmp_path / "a.log")
    assert a.proc.wait(120) == 70, a.log()[-3000:]  # died right after batch 3's decisions
    b = start_worker(settings, tmp_path / "b.log")
    try:
        out = read_outputs(settings, n)
    finally:
        b.stop()
    assert "decisions after checkpoint" in b.log(), b.log()[-3000:]  # the tail scan found them
    records = [orjson.loads(m.value) for m in out[lay.decisions]]
    assert len({d["request_id"] for d in records}) == n, b.log()[-3000:]
    assert len(records) == n, "a request decided before the crash was decided again"
    assert check_chain(records) == []  # log order: tenant chains and pooled mu scopes
    # The recovered decisions and the ones after the restart re-derive and chain (MACs too).
    assert len(audited_decisions(settings)) == n
    for t in {d["tenant"] for d in records}:
        seqs = sorted(d["tenant_seq"] for d in records if d["tenant"] == t)
        assert seqs == list(range(1, len(seqs) + 1))
    dispatched = {m.key.decode() for topic in lay.dispatch.values() for m in out[topic]}
    assert dispatched == {d["request_id"] for d in records}  # batch 3 re-dispatched
