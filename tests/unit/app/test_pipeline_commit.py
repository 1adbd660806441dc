"""The commit step's write order (fake producer): a batch's dedupe marks go on the wire only
after the tenant states of the same checkpoint were acknowledged. The two tables have their own
changelogs; a watermark durable ahead of the states it covers made the recovery scan skip
decisions those states never absorbed, and a restarted worker re-issued tenant sequences."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

from support.fake_producer import HeldProducer

from streams.app.pipeline import BatchPipeline
from streams.app.sink import BatchSink
from streams.config import Settings

TENANTS, DEDUPE, DISPATCH = "gar-tenant-changelog", "gar-dedupe-changelog", "gar.dispatch"


def _pipeline() -> BatchPipeline:
    fakes: dict[str, Any] = {
        name: MagicMock()
        for name in (
            "router",
            "views",
            "tenants",
            "dedupe",
            "producers",
            "recovery",
            "control",
            "policies",
            "decision_metrics",
            "metrics",
            "contexts",
        )
    }
    return BatchPipeline(Settings(), "gar.decisions", counters=SimpleNamespace(batches=0), **fakes)  # type: ignore[arg-type]


def test_dedupe_marks_are_sent_only_after_the_tenant_states_are_acked() -> None:
    producer = HeldProducer(held={TENANTS})
    pipeline = _pipeline()

    async def run() -> None:
        dispatch, tenants, dedupe = (BatchSink(producer) for _ in range(3))
        dispatch.add(DISPATCH, b"req-1", b"d", partition=0)
        tenants.add(TENANTS, b"t:tenant-a", b"{}", partition=0)
        dedupe.add(DEDUPE, b"w:0", b"7", partition=0)
        decisions: asyncio.Future[dict[tuple[str, int], int]] = asyncio.Future()
        decisions.set_result({("gar.decisions", 0): 7})
        msg = SimpleNamespace(partition=0, offset=41, timestamp_ms=None)
        commit = asyncio.ensure_future(
            pipeline._commit([msg], decisions, dispatch, tenants, dedupe, None)  # type: ignore[list-item]
        )
        for _ in range(20):
            await asyncio.sleep(0)
        sent = {topic for topic, _, _ in producer.sent}
        assert sent == {DISPATCH, TENANTS}, sent  # tenant states on the wire, not yet acked
        assert not commit.done()
        producer.release()
        await asyncio.wait_for(commit, 5)
        assert [topic for topic, _, _ in producer.sent][-1] == DEDUPE

    asyncio.run(run())
