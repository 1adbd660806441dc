"""The worker's producers and the sinks on them.

Decisions (and request dead letters) have a producer of their own: aiokafka keeps one produce
request in flight per broker connection, so on Faust's shared producer a batch's decisions
queued behind the previous batch's dispatch + checkpoint request. Everything else (dispatch,
checkpoints, side-input output) goes through Faust's producer.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer

from streams.app.refusals import Replacements
from streams.app.router import RawMessage
from streams.app.sink import BatchSink, OutputGuard
from streams.config import Settings
from streams.kafka.admin import max_message_bytes
from streams.kafka.clients import client_kwargs, rewind_refused_batches
from streams.kafka.topics import TopicLayout


class Producers:
    def __init__(self, faust_app: Any, settings: Settings, layout: TopicLayout) -> None:
        self._faust_app = faust_app
        self._settings = settings
        self._layout = layout
        # Refused outputs (sink.py): what each topic takes, learned from the broker, and counts;
        # a side input's refused dead letter is shrunk.
        self.guard = OutputGuard(lookup=lambda topic: max_message_bytes(settings, topic))
        self._side_replacements = Replacements(layout)
        self._decisions: AIOKafkaProducer | None = None
        # Sinks on the shared producer append in the order their flushes start, too: a feedback
        # checkpoint written between batches must not land after a later batch's checkpoint of
        # the same tenant (the commit chain orders the batches' own writes already).
        self._shared_order = asyncio.Lock()
        # Batches' decision flushes overlap (the next batch's starts before the previous one is
        # acked); this keeps their records in batch order on each decisions partition, which the
        # tail scan after a crash (log order = each tenant's sequence) and the marks rely on.
        self._decisions_order = asyncio.Lock()
        # The first batch's decisions sink and its context send ask for the producer at once;
        # without this both created one and the loser was dropped unclosed.
        self._decisions_started = asyncio.Lock()

    def shared_sink(self) -> BatchSink:
        """A sink on Faust's producer (created lazily by Faust, idempotent)."""
        producer = self._faust_app.producer._ensure_producer()
        return BatchSink(producer, self._shared_order, self.guard, self._side_replacements)

    async def decisions_sink(
        self, batch: list[RawMessage] | None = None, dispatch: BatchSink | None = None
    ) -> BatchSink:
        """A sink on the decisions producer, started on first use. A decision of ``batch`` it
        cannot write becomes a dead letter of its request, its dispatch withheld from
        ``dispatch`` (refusals.py)."""
        instead = Replacements(self._layout, batch or (), dispatch)
        return BatchSink(
            await self._decisions_producer(), self._decisions_order, self.guard, instead
        )

    async def contexts_sink(self) -> BatchSink:
        """A sink on the decisions producer outside the decisions' order lock (context
        records: a decisions flush waits for its context's ack while holding that lock)."""
        return BatchSink(await self._decisions_producer(), guard=self.guard)

    async def _decisions_producer(self) -> AIOKafkaProducer:
        if self._decisions is not None:
            return self._decisions
        async with self._decisions_started:
            if self._decisions is not None:  # started while this call waited for the lock
                return self._decisions
            codec = self._settings.worker.decisions_compression
            producer = AIOKafkaProducer(
                **client_kwargs(self._settings.kafka),
                acks="all",
                enable_idempotence=True,
                linger_ms=0,
                max_batch_size=1_000_000,
                max_request_size=4 * 2**20,
                compression_type=None if codec == "none" else codec,
            )
            rewind_refused_batches(producer)
            await producer.start()
            self._decisions = producer
        return self._decisions

    async def close(self) -> None:
        if self._decisions is not None:
            producer, self._decisions = self._decisions, None
            await producer.stop()
