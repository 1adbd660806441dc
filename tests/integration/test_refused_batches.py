"""A batch the broker refuses does not leave the idempotent producer's partition unwritable, and
a topic's max.message.bytes can be read back (real broker)."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError
from faults.helpers import alter_topic, create_topics, layout

from streams.config import Settings
from streams.kafka.admin import max_message_bytes
from streams.kafka.clients import rewind_refused_batches

pytestmark = pytest.mark.integration


def test_a_refused_batch_leaves_the_partition_writable(settings: Settings) -> None:
    """aiokafka numbers an idempotent producer's batches per partition and never gives a
    refused batch's numbers back: without ``rewind_refused_batches`` every later batch to the
    partition fails with OutOfOrderSequenceNumber."""
    create_topics(settings)
    topic = layout(settings).dead_letter

    async def run() -> tuple[list[str], int | None]:
        await alter_topic(settings, topic, {"max.message.bytes": "20000"})
        prod = AIOKafkaProducer(
            bootstrap_servers=settings.kafka.bootstrap_servers,
            enable_idempotence=True,
            acks="all",
            max_batch_size=1_000_000,
            max_request_size=4 * 2**20,
        )
        rewind_refused_batches(prod)
        await prod.start()
        out = []
        try:
            for size in (100, 50_000, 100, 100, 50_000, 100):
                batch = prod.create_batch()
                batch.append(key=None, value=b"x" * size, timestamp=None)
                fut = await prod.send_batch(batch, topic, partition=0)
                try:
                    await asyncio.wait_for(fut, 20)
                    out.append("ok")
                except MessageSizeTooLargeError:
                    out.append("too large")
        finally:
            await prod.stop()
        return out, await max_message_bytes(settings, topic)

    results, limit = asyncio.run(run())
    assert results == ["ok", "too large", "ok", "ok", "too large", "ok"]
    assert limit == 20_000
