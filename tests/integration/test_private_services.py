"""PRIVATE instances (own ports and dirs; the shared ones are never touched): a broker keeps its
log across stop -> start and across a SIGKILL crash; so does InfluxDB (its WAL is synced before
a write is acknowledged)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from support.kafka_helpers import create_topic, read_all

from streams.config import InfluxSettings
from streams.devenv import InfluxStore, KafkaBroker, private_dev_settings
from streams.metrics.query import FluxClient
from streams.metrics.sink import InfluxSink

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


def test_influxdb_keeps_data_across_stop_and_kill(tmp_path: Path) -> None:
    store = InfluxStore(private_dev_settings(tmp_path / "dev"))
    store.start()
    influx = InfluxSettings(url=store.url)
    sink, flux = InfluxSink(influx), FluxClient(influx)
    query = (
        f'from(bucket: "{influx.bucket}") |> range(start: 2023-11-01T00:00:00Z)'
        ' |> filter(fn: (r) => r._measurement == "restart_probe")'
    )
    try:
        sink.write_lines(["restart_probe,run=x value=42 1700000000000"])
        assert store.stop()
        store.start()
        (series,) = flux.query(query)
        assert series.values == [42] and series.timestamps_s == [1_700_000_000.0]
        sink.write_lines(["restart_probe,run=x value=43 1700000001000"])
        assert store.kill()  # crash: no shutdown
        store.start()
        (series,) = flux.query(query)
        assert series.values == [42, 43], store.process.log_tail()
    finally:
        sink.close()
        store.kill()
