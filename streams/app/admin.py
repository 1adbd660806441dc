"""Explicit topic creation (``gar topics create``): idempotent, verifies partition counts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.app.kafka import client_kwargs
from streams.app.topics import TopicSpec
from streams.config import Settings


class TopicLayoutError(RuntimeError):
    """An existing topic has a partition count the app cannot work with."""


@dataclass(frozen=True, slots=True)
class TopicResult:
    spec: TopicSpec
    created: bool
    partitions: int


async def ensure_topics(
    settings: Settings, specs: Sequence[TopicSpec], timeout_ms: int = 30_000
) -> list[TopicResult]:
    """Create missing topics; raise TopicLayoutError if an existing one has other partitions."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka), request_timeout_ms=timeout_ms)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            new = [
                NewTopic(
                    name=s.name,
                    num_partitions=s.partitions,
                    replication_factor=settings.topics.replication_factor,
                    topic_configs=s.topic_configs(),
                )
                for s in missing
            ]
            # A concurrent creator may win the race; partitions are verified below.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new, timeout_ms=timeout_ms)
        counts = await _partition_counts(admin, [s.name for s in specs])
    finally:
        await admin.close()
    results = []
    bad = []
    for s in specs:
        n = counts.get(s.name, 0)
        if n != s.partitions:
            bad.append(f"{s.name}: has {n} partitions, needs {s.partitions}")
        results.append(TopicResult(s, s in missing, n))
    if bad:
        raise TopicLayoutError("; ".join(bad))
    return results


async def _partition_counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    # Metadata for freshly created topics can lag a moment behind the create response.
    counts: dict[str, int] = {}
    for _ in range(50):
        described = await admin.describe_topics(names)
        counts = {
            d["topic"]: len(d["partitions"]) for d in described if d.get("error_code", 0) == 0
        }
        if all(counts.get(n, 0) > 0 for n in names):
            break
        await asyncio.sleep(0.1)
    return counts


async def delete_topics(settings: Settings, names: Sequence[str]) -> None:
    """Test/demo cleanup helper."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        todo = [n for n in names if n in existing]
        if todo:
            await admin.delete_topics(todo)
    finally:
        await admin.close()


async def delete_prefixed_topics(settings: Settings, prefixes: Sequence[str]) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes`` (a test's or a benchmark
    run's topics and its app's changelogs); returns the names deleted. Left behind, thousands of
    them made every all-topics metadata request cost 100-300 ms of client CPU."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(tuple(prefixes))]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()

