"""Small aiokafka helpers for the infra tests (admin, produce, drain a topic)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


@asynccontextmanager
async def admin_client(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def create_topic(
    bootstrap: str, name: str, partitions: int, configs: dict[str, str] | None = None
) -> None:
    """Create a topic and wait until the broker's metadata shows all its partitions: creation is
    acknowledged by the controller before brokers serve it."""
    async with admin_client(bootstrap) as admin:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            (described,) = await admin.describe_topics([name])
            led = [p for p in described["partitions"] if p["leader"] >= 0]
            if described["error_code"] == 0 and len(led) == partitions:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"topic {name} not visible in metadata after creation")


async def read_all(
    bootstrap: str, topic: str, *, timeout_s: float = 30.0, **consumer_options: Any
) -> list[ConsumerRecord[bytes, bytes]]:
    """Everything in ``topic`` from the beginning up to its end offsets (no consumer group)."""
    consumer: AIOKafkaConsumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", **consumer_options
    )
    await consumer.start()
    deadline = time.monotonic() + timeout_s
    try:
        partitions = consumer.assignment()
        while not partitions and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            partitions = consumer.assignment()
        end = await consumer.end_offsets(list(partitions))
        records: list[ConsumerRecord[bytes, bytes]] = []
        while time.monotonic() < deadline and await _behind(consumer, end):
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
        return records
    finally:
        await consumer.stop()


async def _behind(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return True
    return False
