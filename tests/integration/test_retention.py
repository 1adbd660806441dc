"""Audit data survives retention: a replayed 2023 trace is decided, a retention check runs, and the
decisions (and the requests they reference) are still there for ``gar audit``.

Runs on a PRIVATE broker whose ``log.retention.check.interval.ms`` is 1 s (the shared dev broker
keeps Kafka's 5 min default). A control topic with the old behaviour (CreateTime, records stamped
with their 2023 event time, the same 30 d retention) proves that a check cycle really ran: its
records are deleted while the control plane's survive.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from support.worker import SMALL_CATALOG, read_all, request_bytes, start_worker, write_catalog

from streams.audit.reader import ReadRange
from streams.audit.run import AuditRequest, run_audit
from streams.config import Settings
from streams.devenv import KafkaBroker, private_dev_settings
from streams.kafka.admin import ensure_topics
from streams.kafka.topics import DAY_MS, TopicLayout, topic_specs

pytestmark = pytest.mark.integration
MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000  # 2023-01-01: years older than any retention
N = 200


class FastRetentionBroker(KafkaBroker):
    def _write_config(self) -> None:
        super()._write_config()
        with self.config_file.open("a") as f:
            f.write("log.retention.check.interval.ms=1000\n")


@pytest.fixture
def fast_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    broker = FastRetentionBroker(private_dev_settings(tmp_path / "dev"))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


async def _produce_stamped(
    bootstrap: str, topic: str, items: list[tuple[bytes, bytes, int]]
) -> None:
    """Produce like a naive replay tool: every record stamped with its event time."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        futs = [await producer.send(topic, value=v, key=k, timestamp_ms=ts) for k, v, ts in items]
        await asyncio.gather(*futs)
    finally:
        await producer.stop()


async def _timestamp_type(bootstrap: str, topic: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
    finally:
        await admin.close()
    return str({e[0]: e[1] for e in described.resources[0][4]}["message.timestamp.type"])


async def _create_control(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(
                    topic,
                    1,
                    1,
                    topic_configs={
                        "retention.ms": str(30 * DAY_MS),
                        "message.timestamp.type": "CreateTime",
                    },
                )
            ]
        )
    finally:
        await admin.close()


async def _log_starts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Sum of the log start offsets per topic (0 while nothing was deleted)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        first = await consumer.beginning_offsets(tps)
    finally:
        await consumer.stop()
    return {t: sum(o for tp, o in first.items() if tp.topic == t) for t in topics}


def test_replayed_2023_decisions_survive_a_retention_check(
    fast_broker: KafkaBroker, settings_factory: Any, tmp_path: Path
) -> None:
    bootstrap = fast_broker.bootstrap_servers
    catalog = write_catalog(tmp_path / "catalog.json")
    settings: Settings = settings_factory(
        kafka={"bootstrap_servers": bootstrap},
        topics={"partitions": 2},
        worker={"catalog_path": str(catalog), "batch_max": 100},
    )
    layout = TopicLayout.from_settings(settings, MODELS)
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    for topic in (layout.requests, layout.decisions, layout.completions, layout.dead_letter):
        assert asyncio.run(_timestamp_type(bootstrap, topic)) == "LogAppendTime"
    control = settings.topics.name("control-createtime")
    asyncio.run(_create_control(bootstrap, control))

    requests = [
        (
            f"tenant-{i % 4}".encode(),
            request_bytes(i, f"tenant-{i % 4}", T0_MS + i * 1000),
            T0_MS + i * 1000,
        )
        for i in range(N)
    ]
    asyncio.run(_produce_stamped(bootstrap, control, requests))
    started_ms = int(time.time() * 1000)
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        asyncio.run(_produce_stamped(bootstrap, layout.requests, requests))
        out = asyncio.run(
            read_all(settings, [layout.decisions], lambda o: len(o[layout.decisions]) >= N, 120.0)
        )
    finally:
        worker.stop()
    decided = out[layout.decisions]
    assert len(decided) == N, worker.log()[-3000:]
    # Kafka timestamps are arrival times, whatever the producer stamped.
    assert min(m.timestamp for m in decided) >= started_ms - 60_000

    # Wait for a retention check: it deletes the control topic's 2023-stamped records.
    deadline = time.monotonic() + 90
    starts = asyncio.run(_log_starts(bootstrap, [control, layout.requests, layout.decisions]))
    while starts[control] < N and time.monotonic() < deadline:
        time.sleep(1.0)
        starts = asyncio.run(_log_starts(bootstrap, [control, layout.requests, layout.decisions]))
    assert starts[control] == N, f"no retention check deleted the control records: {starts}"
    assert starts[layout.requests] == 0 and starts[layout.decisions] == 0, starts

    report, _ = run_audit(settings, AuditRequest(ReadRange(), catalog_path=catalog))
    assert report.rows == N and report.rederived == N
    assert report.mismatches == [] and report.chain.breaks == []
    assert report.inputs_checked == N and report.unverifiable == []
    # An event-time range still selects by the payload's ts_ms.
    lo, hi = T0_MS + 50_000, T0_MS + 100_000
    timed, trows = run_audit(
        settings,
        AuditRequest(
            ReadRange(start_ms=lo, end_ms=hi, lateness_ms=0),
            catalog_path=catalog,
            check_inputs=False,
            outcomes=False,
        ),
    )
    assert sorted(r.record["request_id"] for r in trows if r.record) == [
        f"req-{i:06d}" for i in range(50, 100)
    ]
    assert timed.ok and timed.warnings == []
