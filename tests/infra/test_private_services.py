"""PRIVATE instances (own ports and dirs; the shared ones are never touched): a broker keeps its
log across stop -> start and across a SIGKILL crash; the metrics store keeps its data too."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from streams.devenv import KafkaBroker, MetricsStore, private_dev_settings

from .kafka_helpers import create_topic, read_all

pytestmark = pytest.mark.faults


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for value in values:
            await producer.send(topic, value, key=value)
        await producer.flush()
    finally:
        await producer.stop()


async def test_broker_keeps_data_across_stop_and_kill(private_broker: KafkaBroker) -> None:
    bootstrap = private_broker.bootstrap_servers
    topic = "persist"
    await create_topic(bootstrap, topic, partitions=2, configs={"cleanup.policy": "compact"})
    first = [f"a{i}".encode() for i in range(20)]
    await _produce(bootstrap, topic, first)

    assert private_broker.stop()  # graceful: controlled shutdown
    assert not private_broker.status().running
    private_broker.start()
    assert sorted(r.value for r in await read_all(bootstrap, topic)) == sorted(first)

    second = [f"b{i}".encode() for i in range(20)]
    await _produce(bootstrap, topic, second)
    assert private_broker.kill()  # crash: no shutdown, log recovery on the next start
    private_broker.start()
    assert private_broker.status().healthy
    assert sorted(r.value for r in await read_all(bootstrap, topic)) == sorted(first + second)


def test_metrics_store_keeps_data_across_restart(tmp_path: Path) -> None:
    store = MetricsStore(private_dev_settings(tmp_path / "dev"))
    store.start()
    try:
        line = b"restart_probe,run=x value=42 1700000000000000000\n"
        request = urllib.request.Request(f"{store.url}/api/v2/write", data=line, method="POST")
        urllib.request.urlopen(request, timeout=10).read()
        store.force_flush()
        assert store.stop()
        store.start()
        rows = _export_rows(f"{store.url}/api/v1/export?match[]=restart_probe_value")
        assert len(rows) == 1, f"after restart: {rows}\n{store.process.log_tail()}"
        series = rows[0]
        assert series["values"] == [42]
        assert series["timestamps"] == [1_700_000_000_000]
    finally:
        store.kill()


def _export_rows(url: str) -> list[dict[str, object]]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return [json.loads(row) for row in resp.read().decode().splitlines() if row.strip()]
