"""Explicit topic creation (``gar topics create``): idempotent, verifies partition counts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from streams.config import Settings
from streams.kafka.clients import client_kwargs
from streams.kafka.topics import TopicSpec


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


async def max_message_bytes(settings: Settings, topic: str) -> int | None:
    """The topic's ``max.message.bytes`` (the largest record batch it takes), None if it cannot
    be read. Asked only after the topic refused a batch as too large (rare: one admin round
    trip)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})
        for response in await admin.describe_configs([resource]):
            for error_code, _, _, name, entries in (r[:5] for r in response.resources):
                for entry in entries if error_code == 0 and name == topic else ():
                    if entry[0] == "max.message.bytes":
                        return int(entry[1])
    finally:
        await admin.close()
    return None


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """One topic as ``gar topics list|describe`` shows it (configs and messages: describe)."""

    name: str
    partitions: int
    configs: dict[str, str]
    messages: int | None = None  # sum over partitions of end - beginning offsets


SHOWN_CONFIGS = ("cleanup.policy", "retention.ms", "compression.type", "message.timestamp.type")


async def list_topic_info(
    settings: Settings, prefix: str = "", describe: bool = False
) -> list[TopicInfo]:
    """Topics whose names start with ``prefix`` (all but Kafka's internal ones if empty), sorted;
    with ``describe``, their main configs and message counts too."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        names = sorted(
            t for t in await admin.list_topics() if t.startswith(prefix) and not t.startswith("__")
        )
        if not names:
            return []
        described = await admin.describe_topics(names)
        parts = {d["topic"]: len(d["partitions"]) for d in described}
        configs: dict[str, dict[str, str]] = {n: {} for n in names}
        if describe:
            resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
            for response in await admin.describe_configs(resources):
                for _err, _msg, _type, name, entries in response.resources:
                    configs[name] = {e[0]: str(e[1]) for e in entries if e[0] in SHOWN_CONFIGS}
    finally:
        await admin.close()
    counts: dict[str, int] = {}
    if describe:
        consumer = AIOKafkaConsumer(**client_kwargs(settings.kafka), group_id=None)
        await consumer.start()
        try:
            tps = [TopicPartition(n, p) for n in names for p in range(parts.get(n, 0))]
            first = await consumer.beginning_offsets(tps)
            last = await consumer.end_offsets(tps)
            for tp in tps:
                counts[tp.topic] = counts.get(tp.topic, 0) + last[tp] - first[tp]
        finally:
            await consumer.stop()
    return [
        TopicInfo(n, parts.get(n, 0), configs[n], counts.get(n) if describe else None)
        for n in names
    ]
