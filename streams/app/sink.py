"""Batched output through the underlying aiokafka producer.

Faust's ``topic.send`` costs a task and a future per message; building one aiokafka
``BatchBuilder`` per (topic, partition) and submitting it with ``send_batch`` was ~2.6x faster in
the probe recorded in the design notes. ``flush()`` returns only after the broker acknowledged
every record, which is what the dedupe protocol (see docs/architecture.md) relies on.

A record the broker refuses (too large for the topic's ``max.message.bytes``, not authorised,
...) never raises out of ``flush``: raising stopped the worker, and the same input stopped it
again after every restart. The sink resends a refused batch one record per batch, learns the
topic's size limit from size refusals (the worker is not told it), and hands each record that
is still refused to ``on_refused`` for a replacement (a shrunk dead letter, a dead letter instead
of a decision) or logs and counts it as dropped (``OutputGuard``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from aiokafka.errors import KafkaError

from streams.app.partition import default_partitions
from streams.kafka.clients import SIZE_ERRORS

log = logging.getLogger(__name__)


class BatchProducer(Protocol):
    """The part of ``aiokafka.AIOKafkaProducer`` the sink uses."""

    def create_batch(self) -> Any: ...

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any: ...

    async def partitions_for(self, topic: str) -> set[int]: ...


Records = list[Any]
"""Queued records, flat: key, value, timestamp ms, key, value, ... A tuple per record would be
a GC-tracked object living until the flush: two or three per routed request, they made up a
third of what triggers the worker's young collections."""
Pending = dict[tuple[str, int | None], Records]


class Refused(NamedTuple):
    """A record the broker refused, or one larger than its topic is known to take."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    error: str
    max_bytes: int  # the largest key + value the topic is known to take, -1 if not known


Replacement = tuple[str, int, bytes | None, bytes | None]  # topic, partition, key, value
OnRefused = Callable[[Refused], Sequence[Replacement]]
"""What to write instead of a refused record (e.g. a smaller dead letter), possibly nothing."""

_RECORD_OVERHEAD = 80  # bytes a record adds to a batch beyond its key and value (upper bound)
_BATCH_OVERHEAD = 61
_ROUNDS = 4  # refused batch -> resent in smaller batches -> replacements -> their refusal


@dataclass
class OutputGuard:
    """What one worker learned about refused outputs, shared by its sinks: the largest batch
    each topic may take (below the smallest batch it refused as too large), and counts."""

    # topic -> its max.message.bytes, asked after a size refusal (None: halve the refused size)
    lookup: Callable[[str], Awaitable[int | None]] | None = None
    max_batch_bytes: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    replaced: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dropped: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def learn(self, topic: str, refused_batch_bytes: int) -> None:
        limit = None
        if self.lookup is not None:
            try:
                limit = await self.lookup(topic)
            except Exception:  # the admin API may be denied: fall back to halving
                log.warning("max.message.bytes of %s could not be read", topic, exc_info=True)
        if limit is None or limit >= refused_batch_bytes:
            limit = refused_batch_bytes // 2
        known = self.max_batch_bytes.get(topic, limit)
        self.max_batch_bytes[topic] = max(_BATCH_OVERHEAD + _RECORD_OVERHEAD, min(known, limit))

    def max_record_bytes(self, topic: str) -> int:
        cap = self.max_batch_bytes.get(topic)
        return -1 if cap is None else max(0, cap - _BATCH_OVERHEAD - _RECORD_OVERHEAD)

    def totals(self) -> tuple[int, int, int]:
        """(refused, replaced, dropped) records over all topics."""
        return sum(self.refused.values()), sum(self.replaced.values()), sum(self.dropped.values())


class _Sent(NamedTuple):
    future: Any
    n_records: int
    topic: str
    partition: int
    records: Records  # the flat list the batch was cut from ...
    lo: int  # ... records[lo:hi]
    hi: int
    size: int  # bytes of the batch, -1 when not measured


class BatchSink:
    """Collect records, then send them grouped per (topic, partition) and await delivery."""

    def __init__(
        self,
        producer: BatchProducer,
        order: asyncio.Lock | None = None,
        guard: OutputGuard | None = None,
        on_refused: OnRefused | None = None,
    ) -> None:
        self._producer = producer
        # Sinks sharing ``order`` append to the producer in the order their flushes started,
        # even when those run concurrently: a flush of more than one producer batch per
        # partition awaits between them (aiokafka lets one batch per partition wait), and a
        # later flush's records must not land in between (see ``flush``).
        self._order = order
        self._guard = guard if guard is not None else OutputGuard()
        self._on_refused = on_refused
        self._partition_counts: dict[str, list[int]] = {}
        self._pending: Pending = defaultdict(list)
        self.records_sent = 0

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        *,
        partition: int | None = None,
        ts_ms: int | None = None,
    ) -> None:
        """Queue one record; ``partition=None`` uses Kafka's default (murmur2 of the key,
        computed for the whole flush at once)."""
        self._pending[(topic, partition)].extend((key, value, ts_ms))

    def __len__(self) -> int:
        return sum(len(v) for v in self._pending.values()) // 3

    def discard(self, topics: Collection[str], key: bytes, must_contain: bytes = b"") -> int:
        """Drop queued records of ``topics`` with ``key`` whose value contains
        ``must_contain``; returns how many."""
        n = 0
        for (topic, _), records in self._pending.items():
            if topic not in topics:
                continue
            kept: Records = []
            fields = iter(records)
            for k, v, ts_ms in zip(fields, fields, fields, strict=True):
                if k == key and (v is None or must_contain in v):
                    n += 1
                else:
                    kept.extend((k, v, ts_ms))
            records[:] = kept
        return n

    async def flush(self, after: Awaitable[None] | None = None) -> dict[tuple[str, int], int]:
        """Send everything queued and wait until the broker acknowledged all of it; with
        ``after``, nothing is appended before it completed (its failure fails the flush), and
        flushes sharing the order lock wait behind it in start order.

        Returns the next offset after the last record written, per (topic, partition).
        """
        if not self._pending:
            if after is not None:
                await after
            return {}
        pending, self._pending = self._pending, defaultdict(list)
        futures: list[_Sent] = []
        again: Pending = defaultdict(list)
        async with self._order or contextlib.nullcontext():  # FIFO: earlier flushes first
            if after is not None:
                await after
            await self._append(pending, futures, again)
        next_offsets: dict[tuple[str, int], int] = {}
        rounds = 0
        while futures or again:
            rounds += 1
            if futures:
                metas = await asyncio.gather(*(f.future for f in futures), return_exceptions=True)
                refused: list[tuple[_Sent, KafkaError]] = []
                for meta, sent in zip(metas, futures, strict=True):
                    if isinstance(meta, KafkaError):
                        refused.append((sent, meta))
                    elif isinstance(meta, BaseException):
                        raise meta
                    elif meta is not None and meta.offset is not None:
                        tp = (meta.topic, meta.partition)
                        next_offsets[tp] = max(
                            next_offsets.get(tp, 0), meta.offset + sent.n_records
                        )
                too_large: dict[str, int] = {}
                for sent, error in refused:
                    if isinstance(error, SIZE_ERRORS) and sent.size > 0:
                        too_large[sent.topic] = min(too_large.get(sent.topic, sent.size), sent.size)
                for topic, size in too_large.items():
                    await self._guard.learn(topic, size)
                    log.warning(
                        "%s refused a %d-byte batch as too large; sending at most %d bytes",
                        topic,
                        size,
                        self._guard.max_batch_bytes[topic],
                    )
                for sent, error in refused:
                    self._refused(sent, error, again, last=rounds >= _ROUNDS)
            futures = []
            if again:
                todo, again = again, defaultdict(list)
                async with self._order or contextlib.nullcontext():
                    await self._append(todo, futures, again)
        return next_offsets

    def _refused(self, sent: _Sent, error: KafkaError, again: Pending, last: bool) -> None:
        """A batch the broker refused: resend its records in batches of the size the topic
        takes when it was too large (one of them may be the only record too large), and hand
        the rest to ``on_refused`` (a topic that refuses for another reason, e.g. no write
        permission, refuses every record)."""
        fields = iter(sent.records[sent.lo : sent.hi])
        if sent.n_records > 1 and not last and isinstance(error, SIZE_ERRORS):
            again[(sent.topic, sent.partition)].extend(fields)
            return
        reason = type(error).__name__
        for key, value, _ in zip(fields, fields, fields, strict=True):
            self._replace(sent.topic, sent.partition, key, value, reason, again, last)

    def _replace(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        error: str,
        again: Pending,
        last: bool = False,
    ) -> None:
        guard = self._guard
        guard.refused[topic] += 1
        instead: Sequence[Replacement] = ()
        if self._on_refused is not None and not last:
            refused = Refused(topic, partition, key, value, error, guard.max_record_bytes(topic))
            instead = self._on_refused(refused)
        for t, p, k, v in instead:
            again[(t, p)].extend((k, v, None))
        (guard.replaced if instead else guard.dropped)[topic] += 1
        log.error(
            "a %d-byte record for %s partition %d was refused (%s): %s",
            len(key or b"") + len(value or b""),
            topic,
            partition,
            error,
            f"replaced by {len(instead)} record(s)" if instead else "dropped",
        )

    async def _append(self, pending: Pending, futures: list[_Sent], again: Pending) -> None:
        """Group ``pending`` per (topic, partition) and hand it to the producer."""
        by_tp: dict[tuple[str, int], Records] = defaultdict(list)
        for (topic, partition), records in pending.items():
            if partition is not None:
                by_tp[(topic, partition)].extend(records)
                continue
            parts = await self._partitions(topic)
            keys = records[0::3]
            chosen = default_partitions(keys, parts)
            for key, value, ts_ms, p in zip(
                keys, records[1::3], records[2::3], chosen, strict=True
            ):
                by_tp[(topic, p)].extend((key, value, ts_ms))
        guard = self._guard
        for (topic, partition), records in by_tp.items():
            if topic in guard.max_batch_bytes:
                futures.extend(await self._send_capped(topic, partition, records, again))
            else:
                futures.extend(await self._send(topic, partition, records))
            self.records_sent += len(records) // 3

    async def _partitions(self, topic: str) -> list[int]:
        parts = self._partition_counts.get(topic)
        if parts is None:
            parts = sorted(await self._producer.partitions_for(topic))
            self._partition_counts[topic] = parts
        return parts

    async def _send(self, topic: str, partition: int, records: Records) -> list[_Sent]:
        """Submit ``records`` as one or more batches of the producer's batch size."""
        futures = []
        batch = self._producer.create_batch()
        lo = 0
        fields = iter(records)
        for i, (key, value, ts_ms) in enumerate(zip(fields, fields, fields, strict=True)):
            if batch.append(key=key, value=value, timestamp=ts_ms) is None:
                # Builder full (max_batch_size): ship it and start another (a builder always
                # takes its first record, whatever its size).
                futures.append(await self._ship(batch, topic, partition, records, lo, 3 * i))
                batch, lo = self._producer.create_batch(), 3 * i
                batch.append(key=key, value=value, timestamp=ts_ms)
        if batch.record_count():
            futures.append(await self._ship(batch, topic, partition, records, lo, len(records)))
        return futures

    async def _send_capped(
        self, topic: str, partition: int, records: Records, again: Pending
    ) -> list[_Sent]:
        """Like ``_send``, in batches of at most the size the topic takes; a record larger than
        that goes to ``on_refused`` without a round trip."""
        futures: list[_Sent] = []
        cap = self._guard.max_batch_bytes.get(topic)
        max_record = self._guard.max_record_bytes(topic)
        batch, lo, used = self._producer.create_batch(), 0, _BATCH_OVERHEAD
        fields = iter(records)
        for i, (key, value, ts_ms) in enumerate(zip(fields, fields, fields, strict=True)):
            size = len(key or b"") + len(value or b"")
            if 0 <= max_record < size:
                if batch.record_count():
                    futures.append(await self._ship(batch, topic, partition, records, lo, 3 * i))
                    batch, used = self._producer.create_batch(), _BATCH_OVERHEAD
                lo = 3 * (i + 1)
                self._replace(topic, partition, key, value, "larger than the topic takes", again)
                continue
            full = cap is not None and used + size + _RECORD_OVERHEAD > cap
            if batch.record_count() and full:
                futures.append(await self._ship(batch, topic, partition, records, lo, 3 * i))
                batch, lo, used = self._producer.create_batch(), 3 * i, _BATCH_OVERHEAD
            if batch.append(key=key, value=value, timestamp=ts_ms) is None:
                futures.append(await self._ship(batch, topic, partition, records, lo, 3 * i))
                batch, lo, used = self._producer.create_batch(), 3 * i, _BATCH_OVERHEAD
                batch.append(key=key, value=value, timestamp=ts_ms)
            used += size + _RECORD_OVERHEAD
        if batch.record_count():
            futures.append(await self._ship(batch, topic, partition, records, lo, len(records)))
        return futures

    async def _ship(
        self, batch: Any, topic: str, partition: int, records: Records, lo: int, hi: int
    ) -> _Sent:
        n = batch.record_count()
        size = batch.size() if hasattr(batch, "size") else -1
        fut = await self._producer.send_batch(batch, topic, partition=partition)
        return _Sent(fut, n, topic, partition, records, lo, hi, size)
