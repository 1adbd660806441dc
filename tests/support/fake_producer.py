"""Fakes of the producer the worker's ``BatchSink`` writes to (aiokafka's batch API): they keep
what was sent, count offsets per topic-partition like a broker, and can suspend in every send."""

from __future__ import annotations

import asyncio
from typing import Any


class FakeBatch:
    def __init__(self, max_records: int) -> None:
        self.records: list[tuple[Any, Any, Any]] = []
        self.max_records = max_records

    def append(self, *, key: Any, value: Any, timestamp: Any) -> object | None:
        if len(self.records) >= self.max_records:
            return None
        self.records.append((key, value, timestamp))
        return object()

    def record_count(self) -> int:
        return len(self.records)


class FakeMeta:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset


class FakeProducer:
    """Records what the sink sends; offsets count per topic-partition like a broker."""

    def __init__(self, max_records: int = 1000) -> None:
        self.max_records = max_records
        self.sent: list[tuple[str, int, list[tuple[Any, Any, Any]]]] = []
        self.ends: dict[tuple[str, int], int] = {}

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.max_records)

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, batch.records))
        base = self.ends.get((topic, partition), 0)
        self.ends[(topic, partition)] = base + len(batch.records)
        fut: asyncio.Future[FakeMeta] = asyncio.get_running_loop().create_future()
        fut.set_result(FakeMeta(topic, partition, base))
        return fut

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def records(self, topic: str) -> list[tuple[int, Any, Any]]:
        return [(p, k, v) for t, p, recs in self.sent if t == topic for k, v, _ in recs]


class YieldingProducer(FakeProducer):
    """Suspends in every ``send_batch``, as aiokafka does while a partition's previous batch
    waits to be drained."""

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        await asyncio.sleep(0)
        return await super().send_batch(batch, topic, partition=partition)


class HeldProducer(FakeProducer):
    """Leaves the acknowledgement of every batch for ``held`` topics pending until
    ``release()``: what a crash between two topics' acks would cut."""

    def __init__(self, held: set[str], max_records: int = 1000) -> None:
        super().__init__(max_records)
        self.held = held
        self._waiting: list[tuple[asyncio.Future[FakeMeta], FakeMeta]] = []

    async def send_batch(self, batch: FakeBatch, topic: str, *, partition: int) -> Any:
        acked = await super().send_batch(batch, topic, partition=partition)
        if topic not in self.held:
            return acked
        fut: asyncio.Future[FakeMeta] = asyncio.get_running_loop().create_future()
        self._waiting.append((fut, acked.result()))
        return fut

    def release(self) -> None:
        for fut, meta in self._waiting:
            fut.set_result(meta)
        self._waiting.clear()
