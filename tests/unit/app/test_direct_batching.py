"""How the direct hot path forms a batch (group commit, linger, batch_max) against a scripted
fake consumer; the integration tests run it against the broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from streams.app.direct import DirectRequests
from streams.app.router import RawMessage
from streams.config import Settings

TP = TopicPartition("requests", 0)


@dataclass
class _Record:
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes
    value: bytes


class _Consumer:
    """Returns the scripted fetches in order (then nothing), records how it was asked."""

    def __init__(self, fetches: list[int]) -> None:
        self.fetches = list(fetches)
        self.max_records_asked: list[int] = []
        self.offset = 0

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[Any, list[_Record]]:
        self.max_records_asked.append(max_records)
        if not self.fetches:
            await asyncio.sleep(timeout_ms / 1000)
            return {}
        n = min(self.fetches.pop(0), max_records)
        out = [_Record(TP.topic, 0, self.offset + i, 0, b"k", b"v") for i in range(n)]
        self.offset += n
        return {TP: out} if out else {}


def _direct(in_flight: Any, **worker: Any) -> DirectRequests:
    async def process(msgs: list[RawMessage]) -> int:
        return len(msgs)

    async def drain() -> None:
        pass

    settings = Settings(worker={"batch_within_s": 0.05, **worker})
    return DirectRequests(settings, "requests", process, lambda p: None, drain, in_flight)


def _batch(direct: DirectRequests, consumer: _Consumer) -> list[RawMessage]:
    return asyncio.run(direct._next_batch(consumer, 50))  # type: ignore[arg-type]


def test_group_commit_collects_while_the_previous_decisions_are_unacknowledged() -> None:
    acks = iter([True, True, False])  # the ack arrives while the third fetch is awaited
    consumer = _Consumer([3, 2, 4, 5])
    got = _batch(_direct(lambda: next(acks), group_commit=True), consumer)
    assert [m.offset for m in got] == list(range(9))  # fetches 1-3, not the fourth
    assert consumer.fetches == [5]


def test_without_group_commit_or_linger_each_fetch_is_a_batch() -> None:
    consumer = _Consumer([3, 2])
    got = _batch(_direct(lambda: True, group_commit=False), consumer)
    assert len(got) == 3
    assert consumer.fetches == [2]


def test_nothing_in_flight_routes_the_first_fetch_at_once() -> None:
    consumer = _Consumer([3, 2])
    got = _batch(_direct(lambda: False, group_commit=True), consumer)
    assert len(got) == 3


def test_a_batch_never_exceeds_batch_max() -> None:
    consumer = _Consumer([4, 4, 4, 4])
    got = _batch(_direct(lambda: True, group_commit=True, batch_max=10), consumer)
    assert len(got) == 10
    assert consumer.max_records_asked == [10, 6, 2]  # asks only for what still fits


def test_waiting_for_an_ack_that_never_comes_ends_after_batch_within() -> None:
    consumer = _Consumer([1])  # one request, then the partition stays empty
    got = _batch(_direct(lambda: True, group_commit=True), consumer)
    assert len(got) == 1  # returned (bounded by batch_within_s) with what it had


def test_linger_collects_without_anything_in_flight() -> None:
    consumer = _Consumer([1, 1, 1])
    got = _batch(_direct(lambda: False, group_commit=False, batch_linger_ms=30), consumer)
    assert len(got) == 3


def test_an_empty_first_fetch_returns_at_once() -> None:
    consumer = _Consumer([0, 5])
    got = _batch(_direct(lambda: True, group_commit=True), consumer)
    assert got == []
    assert consumer.fetches == [5]


def test_batches_grow_to_keep_batch_max_requests_under_a_poison_flood() -> None:
    """Dead letters skip decide_batch, dispatch and the checkpoint: a batch is sized in the
    requests it holds (what its fixed cost is spread over), up to 4x batch_max messages."""
    share = {"requests": 1.0}

    async def process(msgs: list[RawMessage]) -> int:
        return int(len(msgs) * share["requests"])

    async def drain() -> None:
        pass

    settings = Settings(worker={"batch_within_s": 0.05, "batch_max": 100})
    direct = DirectRequests(settings, "requests", process, lambda p: None, drain)
    assert direct.batch_messages() == 100

    async def run(fetches: list[int]) -> _Consumer:
        consumer = _Consumer(fetches)
        direct._consumer = consumer  # type: ignore[assignment]
        direct._stopping = False
        direct._ready = asyncio.Event()  # of this event loop
        direct._lock = asyncio.Lock()
        direct._ready.set()
        task = asyncio.ensure_future(direct.run())
        while consumer.fetches:
            await asyncio.sleep(0.01)
        direct._stopping = True
        direct._ready.clear()
        await asyncio.sleep(0.1)
        task.cancel()
        return consumer

    share["requests"] = 0.5  # a 1:1 flood
    asked = asyncio.run(run([100_000] * 4)).max_records_asked
    assert asked[:4] == [100, 133, 160, 178]  # the smoothed share falls towards 1/2
    assert direct.batch_messages() <= 200
    share["requests"] = 0.0  # nothing but poison: bounded
    asyncio.run(run([100_000] * 6))
    assert direct.batch_messages() == 400
    share["requests"] = 1.0  # the flood ends: back to batch_max within a few batches
    asyncio.run(run([100_000] * 8))
    assert direct.batch_messages() == 100
