"""``gar fleet``: a serving-fleet simulator closing the feedback loop.

Consumes every ``dispatch.<model>`` topic in one consumer group, answers each order with a
``completions.v1`` record keyed by tenant (``streams.tools.fleet_model``), and commits the
dispatch offsets only after the batch's completions are acknowledged (at-least-once; the
completion of a re-delivered order is identical). Invalid dispatch records are counted and
skipped. Stops after ``max_messages``, ``duration_s`` or ``idle_timeout_s`` without input.
A real fleet replaces this by consuming its model's dispatch topic and producing the same
records.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from streams.config import Settings
from streams.ingress.context import IngressContext
from streams.ingress.dispatch import parse_dispatch
from streams.ingress.rejected import Rejected, Source
from streams.kafka.clients import client_kwargs
from streams.kafka.topics import dispatch_topic_name
from streams.schema.records import completion_record, encode
from streams.tools.fleet_model import FleetModel
from streams.tools.kafka_io import BatchedSender, producer, require_topics


@dataclass
class FleetStats:
    consumed: int = 0
    completed: int = 0
    invalid: int = 0
    correct: int = 0
    energy_j: float = 0.0
    latency_ms_sum: float = 0.0
    elapsed_s: float = 0.0
    per_model: Counter[str] = field(default_factory=Counter)
    invalid_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def mean_latency_ms(self) -> float:
        return self.latency_ms_sum / self.completed if self.completed else 0.0


async def run_fleet(
    settings: Settings,
    model: FleetModel,
    *,
    models: Sequence[str] | None = None,
    group_id: str | None = None,
    max_messages: int | None = None,
    duration_s: float | None = None,
    idle_timeout_s: float | None = None,
    batch_max: int = 1_000,
    on_progress: Callable[[FleetStats], None] | None = None,
) -> FleetStats:
    catalog = model.catalog
    chosen = list(models) if models else list(catalog.model_names)
    unknown = [m for m in chosen if m not in catalog.model_index]
    if unknown:
        raise KeyError(f"model(s) {unknown} not in the catalog")
    topics = [dispatch_topic_name(settings, m) for m in chosen]
    out_topic = settings.topics.name(settings.topics.completions)
    await require_topics(settings, [*topics, out_topic])
    ctx = IngressContext.from_catalog(catalog)
    consumer = AIOKafkaConsumer(
        *topics,
        **client_kwargs(settings.kafka),
        group_id=group_id or f"{settings.app_id}-fleet",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.kafka.session_timeout_ms,
        heartbeat_interval_ms=settings.kafka.heartbeat_interval_ms,
        max_poll_records=batch_max,
    )
    sender = BatchedSender(producer(settings), chunk=batch_max)
    stats = FleetStats()
    t0 = time.monotonic()
    async with sender:
        await consumer.start()
        try:
            await _serve(
                consumer,
                sender,
                model,
                ctx,
                out_topic,
                stats,
                max_messages=max_messages,
                duration_s=duration_s,
                idle_timeout_s=idle_timeout_s,
                batch_max=batch_max,
                on_progress=on_progress,
            )
        finally:
            await consumer.stop()
            stats.elapsed_s = time.monotonic() - t0
    return stats


async def _serve(
    consumer: AIOKafkaConsumer,
    sender: BatchedSender,
    model: FleetModel,
    ctx: IngressContext,
    out_topic: str,
    stats: FleetStats,
    *,
    max_messages: int | None,
    duration_s: float | None,
    idle_timeout_s: float | None,
    batch_max: int,
    on_progress: Callable[[FleetStats], None] | None,
) -> None:
    t0 = last_input = time.monotonic()
    while True:
        now = time.monotonic()
        if duration_s is not None and now - t0 >= duration_s:
            return
        if idle_timeout_s is not None and now - last_input >= idle_timeout_s:
            return
        if max_messages is not None and stats.consumed >= max_messages:
            return
        left = batch_max if max_messages is None else min(batch_max, max_messages - stats.consumed)
        batch = await consumer.getmany(timeout_ms=200, max_records=left)
        if not batch:
            continue
        last_input = time.monotonic()
        for tp, records in batch.items():
            for rec in records:
                stats.consumed += 1
                order = parse_dispatch(rec.value, ctx, Source(tp.topic, tp.partition, rec.offset))
                if isinstance(order, Rejected):
                    stats.invalid += 1
                    stats.invalid_reasons[str(order.reason)] += 1
                    continue
                done = model.complete(order)
                await sender.send(out_topic, encode(completion_record(done)), done.tenant.encode())
                stats.completed += 1
                stats.per_model[done.model] += 1
                stats.correct += bool(done.correct)
                stats.energy_j += done.energy_j or 0.0
                stats.latency_ms_sum += done.latency_ms
        await sender.drain()
        await consumer.commit()  # only after the batch's completions are acknowledged
        if on_progress is not None:
            on_progress(stats)
