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
    async def process(msgs: list[RawMessage]) -> None:
        pass

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
