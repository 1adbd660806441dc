"""ContextPublisher: one context record per new context (content-addressed), written again after
the republish interval, and decisions appended only after their context record is acked."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from support.decision_run import CATALOG
from support.fake_producer import FakeMeta, FakeProducer

from streams.app.contexts import ContextPublisher
from streams.app.sink import BatchSink
from streams.core import Catalog, IntensityReading, IntensityView, PolicyConfig, RoutingContext
from streams.schema import validation_errors
from streams.schema.contexts import catalog_digest, digest_of, parse_context


class SlowAckProducer(FakeProducer):
    """Acks a topic's batches only when the test says so."""

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.release: asyncio.Event | None = None
        self.tasks: list[asyncio.Future[None]] = []

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        fut = await super().send_batch(batch, topic, partition=partition)
        if topic != self.held:
            return fut
        assert self.release is not None
        slow: asyncio.Future[FakeMeta] = asyncio.get_running_loop().create_future()
        release = self.release

        async def later() -> None:
            await release.wait()
            slow.set_result(fut.result())

        self.tasks.append(asyncio.ensure_future(later()))
        return slow


def _ctx(value: float = 40.0, version: str = "v1") -> RoutingContext:
    view = IntensityView.from_readings([IntensityReading("SE", value, 1_000, "t", source_offset=3)])
    return RoutingContext.build(
        Catalog.from_dict(CATALOG), PolicyConfig(version=version), None, view
    )


def test_a_context_is_written_once_then_again_only_when_it_changes_or_ages() -> None:
    prod = FakeProducer()

    async def sink() -> BatchSink:
        return BatchSink(prod)

    async def run() -> list[str]:
        pub = ContextPublisher(Catalog.from_dict(CATALOG), "contexts", sink, republish_s=60.0)
        a, b = _ctx(), _ctx(41.0)
        seen = []
        for ctx, name, now in (
            (a, "gar-pd", 0.0),
            (a, "gar-pd", 1.0),
            (b, "gar-pd", 2.0),
            (b, "gar-fixed", 3.0),
            (b, "gar-fixed", 70.0),
            (_ctx(), "gar-pd", 71.0),
        ):
            digest, pending = pub.current(ctx, name, 5, now)
            if pending is not None:
                await pending
            seen.append(digest)
        return seen

    seen = asyncio.run(run())
    assert seen[0] == seen[1] and seen[1] != seen[2] != seen[3] and seen[3] == seen[4]
    assert seen[5] == seen[0]  # the same inputs: the same digest
    sent = prod.records("contexts")
    # a, b, b under another policy, b again after 60 s, a again (the publisher keeps one)
    assert len(sent) == 5
    for _, key, value in sent:
        assert key.decode() == digest_of(value)
        _digest, cat_digest, _inputs = parse_context(key, value)
        assert cat_digest == catalog_digest(Catalog.from_dict(CATALOG))
        assert validation_errors("contexts", orjson.loads(value)) == []
    assert parse_context(sent[3][1], sent[3][2])[2].policy_name == "gar-fixed"


def test_decisions_are_appended_only_after_their_context_is_acked() -> None:
    prod = SlowAckProducer(held="contexts")
    order = asyncio.Lock()

    async def ctx_sink() -> BatchSink:
        return BatchSink(prod)

    async def run() -> tuple[int, int]:
        prod.release = asyncio.Event()
        pub = ContextPublisher(Catalog.from_dict(CATALOG), "contexts", ctx_sink, 3600.0)
        _, pending = pub.current(_ctx(), "gar-pd", -1, 0.0)
        first, second = BatchSink(prod, order), BatchSink(prod, order)
        first.add("decisions", b"t", b"d1", partition=0)
        second.add("decisions", b"t", b"d2", partition=0)
        f1 = asyncio.ensure_future(first.flush(after=pending))
        f2 = asyncio.ensure_future(second.flush())  # a later batch waits behind it
        for _ in range(20):
            await asyncio.sleep(0)
        before = len(prod.records("decisions"))
        prod.release.set()
        await asyncio.gather(f1, f2)
        return before, len(prod.records("decisions"))

    before, after = asyncio.run(run())
    assert (before, after) == (0, 2)
    assert [v for _, _, v in prod.records("decisions")] == [b"d1", b"d2"]


def test_a_tampered_context_record_does_not_parse() -> None:
    prod = FakeProducer()

    async def sink() -> BatchSink:
        return BatchSink(prod)

    async def run() -> None:
        pub = ContextPublisher(Catalog.from_dict(CATALOG), "contexts", sink, 3600.0)
        _, pending = pub.current(_ctx(), "gar-pd", -1, 0.0)
        assert pending is not None
        await pending

    asyncio.run(run())
    _, key, value = prod.records("contexts")[0]
    forged = value.replace(b'"lcb_z":1.645', b'"lcb_z":1.0', 1)
    assert forged != value
    try:
        parse_context(key, forged)
    except ValueError as e:
        assert "hash" in str(e)
    else:
        raise AssertionError("a context whose bytes do not hash to its key was accepted")
