"""Producer/consumer plumbing shared by the tools (settings -> aiokafka clients)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from streams.app.kafka import client_kwargs
from streams.config import Settings


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
