"""Read the tail of a decisions partition after a restart (the dedupe recovery scan).

Decisions are produced *before* the checkpoint that records their request ids, so after a crash
the decisions partition can hold records newer than the last durable checkpoint watermark.
Reading ``[watermark, end)`` finds them; the router then treats their requests as decided.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app.counters import Counters
from streams.app.dedupe import DedupeIndex, dedupe_key
from streams.app.router import Router
from streams.app.sink import BatchSink
from streams.app.views import Views
from streams.config import KafkaSettings
from streams.kafka.clients import client_kwargs

log = logging.getLogger(__name__)


class DecisionTail:
    """One non-group consumer reused for every scan of this worker."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._consumer: AIOKafkaConsumer | None = None

    async def _get(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            self._consumer = AIOKafkaConsumer(
                **client_kwargs(self._kafka),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_uncommitted",
            )
            await self._consumer.start()
        return self._consumer

    async def end_offset(self, topic: str, partition: int) -> int:
        consumer = await self._get()
        tp = TopicPartition(topic, partition)
        return int((await consumer.end_offsets([tp]))[tp])

    async def scan(
        self, topic: str, partition: int, start: int
    ) -> tuple[dict[str, dict[str, Any]], int]:
        """Decision records in ``[start, end)`` by ``dedupe_key(tenant, request id)``, and
        ``end``."""
        consumer = await self._get()
        tp = TopicPartition(topic, partition)
        end = int((await consumer.end_offsets([tp]))[tp])
        found: dict[str, dict[str, Any]] = {}
        if start >= end:
            return found, end
        consumer.assign([tp])
        consumer.seek(tp, start)
        while await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=1_000)
            for msg in batches.get(tp, []):
                if msg.offset >= end or msg.value is None:
                    continue
                try:
                    record = orjson.loads(msg.value)
                    found[dedupe_key(str(record["tenant"]), str(record["request_id"]))] = record
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # not ours to judge; the audit reports foreign records
        consumer.assign([])
        return found, end

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None


class PartitionRecovery:
    """Once per partition per assignment, before the first batch routed on it: find the
    decisions newer than the checkpoint and fold them into the router's state (they are then
    re-dispatched, not re-decided). A partition this app has never seen gets its watermark
    anchored durably first, before any decision of ours can be written to it."""

    def __init__(
        self,
        tail: DecisionTail,
        decisions_topic: str,
        dedupe: DedupeIndex,
        router: Router,
        views: Views,
        counters: Counters,
        sink: Callable[[], BatchSink],
    ) -> None:
        self._tail = tail
        self._topic = decisions_topic
        self._dedupe = dedupe
        self._router = router
        self._views = views
        self._counters = counters
        self._sink = sink
        self.scanned: set[int] = set()

    async def ensure(self, partitions: set[int]) -> None:
        for p in sorted(partitions - self.scanned):
            wm = self._dedupe.watermark(p)
            if wm is None:
                end = await self._tail.end_offset(self._topic, p)
                self._dedupe.set_watermark(p, end)
                sink = self._sink()
                self._dedupe.checkpoint(sink)
                await sink.flush()
            else:
                found, end = await self._tail.scan(self._topic, p, wm)
                cfg = self._views.policy
                self._router.absorb_recovered(found, p, cfg.bucket_ms, cfg.budget_buckets, cfg)
                self._counters.recovered_decisions += len(found)
                if found:
                    log.warning(
                        "partition %d: %d decisions after checkpoint %d (recovered)",
                        p,
                        len(found),
                        wm,
                    )
            self.scanned.add(p)

    def forget(self) -> None:
        """After a revocation: partitions may come back with changed logs."""
        self.scanned.clear()
