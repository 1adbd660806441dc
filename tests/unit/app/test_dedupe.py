"""DedupeIndex: per-checkpoint records, eviction by window and count, marks, reload (fake
producer)."""

from __future__ import annotations

import asyncio

import orjson
from support.fake_producer import FakeProducer

from streams.app.dedupe import DedupeIndex
from streams.app.sink import BatchSink

T0_MS = 1_672_531_200_000


def test_dedupe_index_checkpoints_evicts_and_reloads() -> None:
    store: dict[bytes, bytes] = {}
    idx = DedupeIndex(store, "cl", window_ms=10_000, max_per_partition=3)
    for i in range(5):
        idx.add(f"r{i}", 0, T0_MS + i * 1000)
    idx.add("q0", 1, T0_MS)
    idx.set_watermark(0, 42)
    prod = FakeProducer()
    sink = BatchSink(prod)
    assert idx.checkpoint(sink) == 3  # one record per partition + the watermark
    asyncio.run(sink.flush())
    written = prod.records("cl")
    # One record per partition holds its new ids (event time and key), nothing per id.
    assert (
        0,
        b"b:0:0",
        orjson.dumps([[T0_MS + i * 1000 for i in range(5)], [f"r{i}" for i in range(5)]]),
    ) in written
    assert (1, b"b:1:0", orjson.dumps([[T0_MS], ["q0"]])) in written
    assert (0, b"w:0", b"42") in written
    assert not idx.seen("r0") and not idx.seen("r1") and idx.seen("r4")  # max 3 kept
    assert [v for _, _, v in written if v is None] == []  # r2..r4 keep the record alive
    # A fresh index over the same (recovered) store: the record comes back whole (it may
    # remember more than the bounds until its next checkpoint, never less) and the watermark.
    fresh = DedupeIndex(store, "cl", window_ms=10_000, max_per_partition=3)
    assert fresh.seen("r1") and fresh.seen("r4") and fresh.watermark(0) == 42
    fresh.checkpoint(BatchSink(prod))
    assert not fresh.seen("r1") and fresh.seen("r2")
    # Earlier changelogs: one r:<key> entry per id (CSV or JSON value), each its own record.
    store[b"r:legacy"] = orjson.dumps([0, T0_MS + 4000])
    fresh = DedupeIndex(store, "cl", window_ms=10_000, max_per_partition=4)
    assert fresh.seen("legacy")
    # Far ahead in event time: the window evicts the rest, and every record whose ids are all
    # gone is tombstoned (partition 1's too: its only id is older than the window).
    prod2 = FakeProducer()
    fresh.add("r9", 0, T0_MS + 60_000)
    fresh.add("q9", 1, T0_MS + 60_000)
    sink2 = BatchSink(prod2)
    fresh.checkpoint(sink2)
    asyncio.run(sink2.flush())
    tombstones = {k for _, k, v in prod2.records("cl") if v is None}
    assert tombstones == {b"b:0:0", b"b:1:0", b"r:legacy"}
    assert sorted(k for k in store if k[:2] in (b"b:", b"r:")) == [b"b:0:1", b"b:1:1"]
    assert fresh.seen("r9") and fresh.seen("q9") and not fresh.seen("r4")


def test_dedupe_ids_added_before_a_reset_are_still_seen_and_written() -> None:
    store: dict[bytes, bytes] = {}
    idx = DedupeIndex(store, "cl", window_ms=10_000, max_per_partition=100)
    idx.add("a", 0, T0_MS)
    idx.reset()  # a rebalance between a batch and its checkpoint
    assert idx.seen("a")
    prod = FakeProducer()
    sink = BatchSink(prod)
    idx.checkpoint(sink)
    asyncio.run(sink.flush())
    assert [k for _, k, _ in prod.records("cl")] == [b"b:0:0"]
    assert DedupeIndex(store, "cl", 10_000, 100).seen("a")
