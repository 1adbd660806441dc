"""The decisions topic is stored zstd-compressed, whether the broker compresses it (the default:
the topic's ``compression.type``, the worker sends uncompressed) or the worker does
(``worker.decisions_compression``), and what a reader gets back is the records themselves:
measured on the broker's own log segments."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from support.worker import SMALL_CATALOG, produce, read_all, request_bytes, start_worker

from streams.config import Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.clients import client_kwargs
from streams.kafka.topics import TopicLayout, topic_specs

pytestmark = pytest.mark.integration
MODELS = [m["name"] for m in SMALL_CATALOG["models"]]
T0_MS = 1_672_531_200_000
N = 400


async def _log_dirs(settings: Settings) -> list[Path]:
    """The broker's ``log.dirs`` (it runs on this machine: 127.0.0.1)."""
    admin = AIOKafkaAdminClient(**client_kwargs(settings.kafka))
    await admin.start()
    try:
        meta = await admin._client.fetch_all_metadata()  # the broker ids
        broker = str(next(iter(meta.brokers())).nodeId)
        res = await admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, broker)])
    finally:
        await admin.close()
    values = {str(e[0]): e[1] for resp in res for *_, entries in resp.resources for e in entries}
    dirs = values.get("log.dirs") or values.get("log.dir")  # log.dirs wins when both are set
    return [Path(d) for d in str(dirs).split(",")] if dirs else []


def _segment_bytes(dirs: list[Path], topic: str) -> int:
    return sum(f.stat().st_size for d in dirs for f in d.glob(f"{topic}-*/*.log"))


@pytest.mark.parametrize("producer", ["none", "zstd"])
def test_decisions_are_zstd_compressed_on_the_broker_and_read_back_whole(
    settings_factory: Any, catalog_path: Path, tmp_path: Path, producer: str
) -> None:
    settings: Settings = settings_factory(
        topics={"partitions": 2},
        worker={
            "catalog_path": str(catalog_path),
            "batch_max": 200,
            "decisions_compression": producer,
        },
    )
    assert settings.topics.decisions_compression_type == "zstd"  # the default
    lay = TopicLayout.from_settings(settings, MODELS)
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))
    dirs = asyncio.run(_log_dirs(settings))
    if not any(d.is_dir() for d in dirs):
        pytest.skip(f"broker log dirs {dirs} not on this machine")
    items = [
        (f"t{i % 5}".encode(), request_bytes(i, f"t{i % 5}", T0_MS + i * 1000)) for i in range(N)
    ]
    worker = start_worker(settings, tmp_path / "worker.log")
    try:
        asyncio.run(produce(settings, lay.requests, items))
        out = asyncio.run(
            read_all(settings, [lay.decisions], lambda o: len(o[lay.decisions]) >= N, 90.0)
        )
    finally:
        worker.stop()
    decisions = [orjson.loads(m.value) for m in out[lay.decisions]]
    assert sorted(d["request_id"] for d in decisions) == sorted(
        orjson.loads(v)["request_id"] for _, v in items
    ), worker.log()[-3000:]
    value_bytes = sum(len(m.value) for m in out[lay.decisions])
    on_disk = _segment_bytes(dirs, lay.decisions)
    # Uncompressed, a segment holds every value plus ~70 B of framing per record; compressed,
    # a batch of similar audit records shrinks several-fold (~15x on the benchmark workload).
    assert 0 < on_disk < value_bytes / 3, (on_disk, value_bytes)
