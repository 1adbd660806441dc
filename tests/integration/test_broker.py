"""The shared local broker is a real Kafka: partitions, keyed produce/consume, explicit topic
creation only, compaction, idempotent and transactional producers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaTimeoutError, UnknownTopicOrPartitionError
from support.kafka_helpers import admin_client, create_topic, read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def bootstrap(dev_services: Any) -> str:
    return dev_services.bootstrap_servers


async def test_topic_partitions_and_keyed_roundtrip(bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}roundtrip"
    await create_topic(bootstrap, topic, partitions=3)
    async with admin_client(bootstrap) as admin:
        (description,) = await admin.describe_topics([topic])
    assert len(description["partitions"]) == 3

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(60):
            await producer.send(topic, f"v{i}".encode(), key=f"k{i % 12}".encode())
        await producer.flush()
    finally:
        await producer.stop()

    records = await read_all(bootstrap, topic)
    assert sorted(r.value for r in records) == sorted(f"v{i}".encode() for i in range(60))
    # Same key -> same partition, and keys really spread over the partitions.
    partition_of: dict[bytes, set[int]] = {}
    for record in records:
        assert record.key is not None
        partition_of.setdefault(record.key, set()).add(record.partition)
    assert all(len(parts) == 1 for parts in partition_of.values())
    assert len({r.partition for r in records}) > 1


async def test_auto_topic_creation_is_off(bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}never-created"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=2_000)
    await producer.start()
    try:
        with pytest.raises((KafkaTimeoutError, UnknownTopicOrPartitionError)):
            await producer.send_and_wait(topic, b"x")
    finally:
        await producer.stop()
    async with admin_client(bootstrap) as admin:
        assert topic not in await admin.list_topics()


async def test_compacted_topic_is_really_compacted(bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}compacted"
    configs = {
        "cleanup.policy": "compact",
        "segment.ms": "100",
        "min.cleanable.dirty.ratio": "0.001",
        "min.compaction.lag.ms": "0",
        "delete.retention.ms": "0",
    }
    await create_topic(bootstrap, topic, partitions=1, configs=configs)
    async with admin_client(bootstrap) as admin:
        (described,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    entries = {entry[0]: entry[1] for entry in described.resources[0][4]}
    assert entries["cleanup.policy"] == "compact"

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    n_keys, n_rounds = 5, 20
    try:
        for round_no in range(n_rounds):
            for key in range(n_keys):
                await producer.send(topic, f"{round_no}".encode(), key=f"k{key}".encode())
            await producer.flush()
            await asyncio.sleep(0.12)  # let segment.ms roll so old segments become cleanable
        # The cleaner only compacts closed segments and runs every log.cleaner.backoff.ms.
        deadline = time.monotonic() + 45
        records = await read_all(bootstrap, topic)
        while len(records) >= n_keys * n_rounds and time.monotonic() < deadline:
            await producer.send_and_wait(topic, b"roll", key=b"roll")
            await asyncio.sleep(1.0)
            records = await read_all(bootstrap, topic)
    finally:
        await producer.stop()

    assert len(records) < n_keys * n_rounds, "the log cleaner never compacted the topic"
    latest = {r.key: r.value for r in records if r.key != b"roll"}
    assert latest == {f"k{key}".encode(): f"{n_rounds - 1}".encode() for key in range(n_keys)}


async def test_transactions_hide_aborted_records(
    bootstrap: str, topic_prefix: str, unique_id: str
) -> None:
    topic = f"{topic_prefix}txn"
    await create_topic(bootstrap, topic, partitions=2)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"txn-{unique_id}", enable_idempotence=True
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(4):
                await producer.send(topic, f"committed-{i}".encode(), key=f"{i}".encode())
        await producer.begin_transaction()
        for i in range(3):
            await producer.send(topic, f"aborted-{i}".encode(), key=f"{i}".encode())
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-last", key=b"0")
    finally:
        await producer.stop()

    committed = await read_all(bootstrap, topic, isolation_level="read_committed")
    uncommitted = await read_all(bootstrap, topic, isolation_level="read_uncommitted")
    assert sorted(r.value for r in committed) == sorted(
        [f"committed-{i}".encode() for i in range(4)] + [b"committed-last"]
    )
    assert {r.value for r in uncommitted} >= {f"aborted-{i}".encode() for i in range(3)}


async def test_idempotent_producer(bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}idempotent"
    await create_topic(bootstrap, topic, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(50):
            await producer.send(topic, f"{i}".encode())
        await producer.flush()
    finally:
        await producer.stop()
    records = await read_all(bootstrap, topic)
    assert [r.value for r in records] == [f"{i}".encode() for i in range(50)]
    assert [r.offset for r in records] == list(range(50))
