"""The direct hot path: requests read with a plain aiokafka consumer instead of a Faust stream.

Faust's per-message consumer loop (tasks and an ``asyncio.wait`` per message, and a take buffer
that stops filling while a batch is processed) cost more CPU per request than parsing and
deciding together. Here Faust still owns the consumer group, the assignment and the tables: the
completions agent subscribes to ``completions`` (co-partitioned with requests), so Faust assigns
completions partition ``p`` and the tenant/dedupe changelog partitions ``p`` to one worker. After
every rebalance (once Faust has recovered the tables) this worker *manually assigns* the same
requests partitions to its own consumer and seeks to the positions stored in the dedupe table
(``o:<p>``), which the route step checkpoints together with the state it produced. aiokafka
fetches the next batch in the background while the current one is processed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import ConsumerStoppedError

from streams.app.router import RawMessage
from streams.config import Settings
from streams.kafka.clients import client_kwargs

log = logging.getLogger(__name__)

ProcessFn = Callable[[list[RawMessage]], Awaitable[int]]
"""Routes one batch; returns how many of its messages were requests (not dead-lettered)."""

# Under a poison flood a batch of ``batch_max`` messages holds fewer requests, and what a batch
# costs beyond its messages (decide_batch set-up, three produce requests, the checkpoint) is
# spread over fewer decisions. Batches grow to keep ``batch_max`` requests, up to this many
# times ``batch_max`` messages (measured: see docs/reliability.md, "Poison flood").
_MAX_GROWTH = 4


class DirectRequests:
    def __init__(
        self,
        settings: Settings,
        requests_topic: str,
        process: ProcessFn,
        position: Callable[[int], int | None],
        drain: Callable[[], Awaitable[None]],
        in_flight: Callable[[], bool] = lambda: False,
    ) -> None:
        self._settings = settings
        self._topic = requests_topic
        self._process = process
        self._position = position
        self._drain = drain
        self._in_flight = in_flight  # whether the last batch's decisions are unacknowledged
        self._consumer: AIOKafkaConsumer | None = None
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()  # one batch at a time; rebalances wait for it
        self._stopping = False
        self._request_share = 1.0  # of the messages of recent batches (smoothed)
        self.assigned: set[int] = set()

    async def _get(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            w = self._settings.worker
            self._consumer = AIOKafkaConsumer(
                **client_kwargs(self._settings.kafka),
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=4 * 1024 * 1024,
                fetch_max_bytes=16 * 1024 * 1024,
                max_poll_records=w.batch_max,
            )
            await self._consumer.start()
        return self._consumer

    async def on_revoked(self) -> None:
        """Stop routing (after the batch in flight) until the next assignment is recovered."""
        self._ready.clear()
        async with self._lock:
            await self._drain()  # the last batch's dispatch + checkpoint are durable
            if self._consumer is not None:
                self._consumer.assign([])
            self.assigned = set()

    async def on_assigned(self, partitions: set[int]) -> None:
        """Called after Faust recovered the tables for the new assignment."""
        consumer = await self._get()
        async with self._lock:
            tps = [TopicPartition(self._topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            for tp in tps:
                pos = self._position(tp.partition)
                if pos is None:
                    await consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, pos)
            self.assigned = set(partitions)
            log.info("direct hot path: requests partitions %s", sorted(partitions))
            if partitions:
                self._ready.set()

    async def run(self) -> None:
        within_ms = max(1, int(self._settings.worker.batch_within_s * 1000))
        while not self._stopping:
            await self._ready.wait()
            async with self._lock:
                if not self._ready.is_set() or self._consumer is None:
                    continue
                try:
                    msgs = await self._next_batch(self._consumer, within_ms)
                except ConsumerStoppedError:
                    return
                if msgs:
                    requests = await self._process(msgs)
                    share = requests / len(msgs)
                    self._request_share = 0.5 * self._request_share + 0.5 * share
                else:
                    await self._drain()  # idle: finish the pipelined batch now

    async def _next_batch(self, consumer: AIOKafkaConsumer, within_ms: int) -> list[RawMessage]:
        """Up to ``batch_max`` requests: what the first fetch returns within ``within_ms``,
        then more while the batch is short of ``batch_max`` and either the previous batch's
        decisions are not acknowledged yet (group commit: that batch's dispatch goes out as
        soon as the ack arrives instead of waiting behind this batch's routing) or
        ``batch_linger_ms`` has not passed. Without either, a worker with spare CPU routes
        every fetch as its own tiny batch and spends its CPU on per-batch costs (numpy set-up,
        three produce requests, a checkpoint), which it then lacks when the load rises."""
        w = self._settings.worker
        batch_max = self.batch_messages()
        msgs = _raw(await consumer.getmany(timeout_ms=within_ms, max_records=batch_max))
        if not msgs:
            return msgs
        now = time.monotonic()
        linger_until = now + w.batch_linger_ms / 1000
        give_up = now + within_ms / 1000  # however long the previous batch's ack takes
        while len(msgs) < batch_max:
            now = time.monotonic()
            if now >= give_up:
                break
            if now < linger_until:
                wait_s = linger_until - now
            elif w.group_commit and self._in_flight():
                wait_s = _POLL_S
            else:
                break
            got = await consumer.getmany(
                timeout_ms=max(1, int(wait_s * 1000)), max_records=batch_max - len(msgs)
            )
            msgs += _raw(got)
        return msgs

    def batch_messages(self) -> int:
        """Messages to fetch for one batch: ``batch_max`` requests at the recent share of
        requests among messages (at most ``_MAX_GROWTH`` x ``batch_max``)."""
        batch_max = self._settings.worker.batch_max
        share = max(self._request_share, 1 / _MAX_GROWTH)
        return min(_MAX_GROWTH * batch_max, int(batch_max / share))

    def lag(self) -> dict[int, int]:
        """Messages behind the partition end, per assigned requests partition (from the last
        fetch's high watermark; partitions not fetched yet are left out)."""
        out: dict[int, int] = {}
        consumer = self._consumer
        if consumer is None:
            return out
        for tp in consumer.assignment():
            high = consumer.highwater(tp)
            position = self._position(tp.partition)  # as of the last durable checkpoint
            if high is not None and position is not None:
                out[tp.partition] = max(0, int(high) - position)
        return out

    async def close(self) -> None:
        """Finish the batch in flight and its pipelined writes, then stop reading."""
        self._stopping = True
        self._ready.clear()
        async with self._lock:
            await self._drain()
            if self._consumer is not None:
                await self._consumer.stop()
                self._consumer = None


_POLL_S = 0.001  # group commit: how often to look at the previous batch's ack


def _raw(got: Mapping[Any, Sequence[Any]]) -> list[RawMessage]:
    return [
        RawMessage(m.topic, m.partition, m.offset, m.timestamp, m.key, m.value)
        for records in got.values()
        for m in records
    ]
