"""Producer/consumer plumbing shared by the tools (settings -> aiokafka clients)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.config import Settings
from streams.kafka.clients import client_kwargs


class MissingTopicsError(RuntimeError):
    pass


def producer(settings: Settings, **options: Any) -> AIOKafkaProducer:
    """An idempotent, batching producer (acks=all; linger lets send() calls share batches)."""
    kw: dict[str, Any] = {
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 20,
        "max_batch_size": 256 * 1024,
        "compression_type": None,
    }
    kw.update(options)
    return AIOKafkaProducer(**client_kwargs(settings.kafka), **kw)


async def require_topics(settings: Settings, topics: Iterable[str]) -> None:
    """Fail clearly instead of letting the broker auto-create a topic with 1 partition."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
    finally:
        await admin.close()
    missing = sorted(set(topics) - existing)
    if missing:
        raise MissingTopicsError(
            f"topic(s) {missing} do not exist on {settings.kafka.bootstrap_servers}; "
            "run `gar topics create` first"
        )


class BatchedSender:
    """``send`` without waiting for each ack; every ``chunk`` sends wait for the acks (bounded
    memory and backpressure) and report progress. Use as ``async with``: the producer starts on
    entry, and on exit the remaining acks are awaited and the producer stops."""

    def __init__(
        self,
        prod: AIOKafkaProducer,
        chunk: int = 500,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.producer = prod
        self.chunk = chunk
        self.on_progress = on_progress
        self.sent = 0
        self._pending: list[asyncio.Future[Any]] = []

    async def __aenter__(self) -> BatchedSender:
        await self.producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.drain()
        finally:
            await self.producer.stop()

    async def send(self, topic: str, value: bytes, key: bytes | None) -> None:
        self._pending.append(await self.producer.send(topic, value, key=key))
        self.sent += 1
        if len(self._pending) >= self.chunk:
            await self.drain()

    async def drain(self) -> None:
        await asyncio.gather(*self._pending)
        self._pending.clear()
        if self.on_progress is not None:
            self.on_progress(self.sent)
