"""BatchSink: grouping per (topic, partition), splitting, key partitioning, next offsets, and
overlapping flushes kept in start order (fake producer)."""

from __future__ import annotations

import asyncio
from typing import Any

from support.fake_producer import FakeProducer, YieldingProducer

from streams.app.sink import BatchSink


def _overlapping_flushes(order: asyncio.Lock | None) -> list[bytes]:
    """Two batches' decisions (4 producer batches each) flushed concurrently, the first
    started first, as the pipelined hot path does; returns the partition's log order."""
    prod = YieldingProducer(max_records=2)

    async def run() -> None:
        first, second = BatchSink(prod, order), BatchSink(prod, order)
        for i in range(8):
            first.add("decisions", b"t", b"a%d" % i, partition=0)
            second.add("decisions", b"t", b"b%d" % i, partition=0)
        started = [asyncio.ensure_future(first.flush()), asyncio.ensure_future(second.flush())]
        await asyncio.gather(*started)

    asyncio.run(run())
    return [v for _, _, v in prod.records("decisions")]


def test_overlapping_flushes_sharing_an_order_lock_append_in_start_order() -> None:
    log = _overlapping_flushes(asyncio.Lock())
    assert log == [b"a%d" % i for i in range(8)] + [b"b%d" % i for i in range(8)]
    # Without the lock the two batches interleave on the partition (what a crash recovery's
    # tail scan saw: a tenant's later decisions logged before its earlier ones).
    assert _overlapping_flushes(None) != log


def test_sink_groups_splits_partitions_by_key_and_reports_next_offsets() -> None:
    prod = FakeProducer(max_records=3)
    sink = BatchSink(prod)
    for i in range(7):
        sink.add("a", b"k", b"%d" % i, partition=1)
    for i in range(4):
        sink.add("b", b"req-%d" % i, b"v")
    ends = asyncio.run(sink.flush())
    assert [len(r) for t, p, r in prod.sent if t == "a"] == [3, 3, 1]  # split when full
    assert [v for _, _, v in prod.records("a")] == [b"%d" % i for i in range(7)]  # order kept
    assert ends[("a", 1)] == 7
    # Keyed records land where Kafka's default partitioner puts them (stable per key).
    again = BatchSink(prod)
    for i in range(4):
        again.add("b", b"req-%d" % i, b"w")
    asyncio.run(again.flush())
    by_key: dict[Any, set[int]] = {}
    for p, k, _ in prod.records("b"):
        by_key.setdefault(k, set()).add(p)
    assert all(len(ps) == 1 for ps in by_key.values())
    assert asyncio.run(BatchSink(prod).flush()) == {}
