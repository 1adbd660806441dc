"""The sink never raises on a refused record: it resends in batches the topic takes, replaces
a refused record through ``on_refused`` or counts it as dropped (fake producer)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import MessageSizeTooLargeError, TopicAuthorizationFailedError

from streams.app.sink import BatchSink, OutputGuard, Refused, Replacement


class SizedBatch:
    def __init__(self) -> None:
        self.records: list[tuple[Any, Any]] = []

    def append(self, *, key: Any, value: Any, timestamp: Any) -> object:
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)

    def size(self) -> int:
        return 61 + sum(len(k or b"") + len(v or b"") + 20 for k, v in self.records)


class Meta:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class RefusingProducer:
    """Refuses batches larger than ``limit`` bytes, and everything on ``denied`` topics."""

    def __init__(self, limit: int, denied: frozenset[str] = frozenset()) -> None:
        self.limit, self.denied = limit, denied
        self.written: list[tuple[str, bytes | None]] = []
        self.requests = 0

    def create_batch(self) -> SizedBatch:
        return SizedBatch()

    async def send_batch(self, batch: SizedBatch, topic: str, *, partition: int) -> Any:
        self.requests += 1
        fut: asyncio.Future[Meta] = asyncio.get_running_loop().create_future()
        if topic in self.denied:
            fut.set_exception(TopicAuthorizationFailedError(topic))
        elif batch.size() > self.limit:
            fut.set_exception(MessageSizeTooLargeError())
        else:
            fut.set_result(Meta(topic, partition, len(self.written)))
            self.written += [(topic, v) for _, v in batch.records]
        return fut

    async def partitions_for(self, topic: str) -> set[int]:
        return {0}


def test_a_refused_batch_is_resent_in_smaller_batches_and_a_huge_record_replaced() -> None:
    prod = RefusingProducer(limit=2_000)
    seen: list[Refused] = []

    def instead(r: Refused) -> list[Replacement]:
        seen.append(r)
        return [("dl", r.partition, r.key, b"small")]

    async def lookup(topic: str) -> int | None:
        return 2_000

    guard = OutputGuard(lookup=lookup)
    sink = BatchSink(prod, guard=guard, on_refused=instead)
    for i in range(40):
        sink.add("dl", b"k", b"v" * 100 + str(i).encode(), partition=0)
    sink.add("dl", b"k", b"x" * 5_000, partition=0)
    asyncio.run(sink.flush())
    assert sum(1 for t, v in prod.written if v and v.startswith(b"v")) == 40
    assert (("dl", b"small") in prod.written) and len(seen) == 1
    assert seen[0].max_bytes <= 2_000 and seen[0].error == "larger than the topic takes"
    assert guard.max_batch_bytes["dl"] == 2_000
    assert guard.totals() == (1, 1, 0)
    # What was learned is used from then on: no refused round trip for the next flush.
    before = prod.requests
    again = BatchSink(prod, guard=guard, on_refused=instead)
    for _ in range(40):
        again.add("dl", b"k", b"v" * 100, partition=0)
    asyncio.run(again.flush())
    assert prod.requests - before == 4  # 10 records per batch of at most 2,000 B


def test_without_a_known_limit_the_refused_size_is_halved_until_batches_fit() -> None:
    prod = RefusingProducer(limit=3_000)
    sink = BatchSink(prod, guard=OutputGuard())
    for _ in range(200):
        sink.add("t", None, b"v" * 100, partition=0)
    offsets = asyncio.run(sink.flush())
    assert len(prod.written) == 200 and offsets[("t", 0)] == 200


def test_a_topic_that_refuses_everything_counts_drops_and_the_flush_returns() -> None:
    prod = RefusingProducer(limit=10**9, denied=frozenset({"dispatch"}))
    guard = OutputGuard()
    sink = BatchSink(prod, guard=guard, on_refused=lambda r: [])
    for i in range(5):
        sink.add("dispatch", b"%d" % i, b"v", partition=0)
        sink.add("decisions", b"%d" % i, b"d", partition=0)
    offsets = asyncio.run(sink.flush())
    assert offsets == {("decisions", 0): 5}
    assert guard.dropped["dispatch"] == 5 and guard.refused["dispatch"] == 5


def test_discard_drops_only_matching_queued_records() -> None:
    sink = BatchSink(RefusingProducer(limit=10**9))
    sink.add("d1", b"r1", b'{"tenant":"a"}')
    sink.add("d1", b"r1", b'{"tenant":"b"}')
    sink.add("d2", b"r1", b'{"tenant":"a"}')
    assert sink.discard({"d1"}, b"r1", b'"tenant":"a"') == 1
    assert len(sink) == 2
