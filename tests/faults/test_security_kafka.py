"""Kafka SASL/SCRAM + TLS from ``KafkaSettings`` reach every client the project builds, and
secrets (the Kafka password, the InfluxDB token) never show up in logs, errors, reprs or any
record the worker writes.

* static and unit checks: ``tests/unit/kafka/test_client_security.py``;
* end to end: a PRIVATE broker whose only client listener for the test is SASL_SSL with SCRAM
  credentials; topic creation, the project's producer client, the worker (Faust consumer group,
  tables, the direct consumer, the recovery scan, the batched producer) and a reader all work
  through it; a worker with a wrong password fails to connect and does not print it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from support.secure_broker import (
    INFLUX_TOKEN,
    KAFKA_PASSWORD,
    SCRAM_USER,
    SECRETS,
    WRONG_PASSWORD,
    SecureBroker,
    make_tls,
)

from faults.helpers import T0_MS, alive, create_topics, influx_env, layout, start_worker
from streams.client import GarClient
from streams.config import Settings
from streams.devenv import private_dev_settings
from streams.kafka.clients import client_kwargs


@pytest.fixture
def secure_broker(tmp_path: Path) -> Iterator[SecureBroker]:
    broker = SecureBroker(
        private_dev_settings(tmp_path / "dev"), make_tls(tmp_path / "tls"), KAFKA_PASSWORD
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


def _secure_settings(
    settings_factory: Any, broker: SecureBroker, catalog_path: Path, password: str
) -> Settings:
    s: Settings = settings_factory(
        kafka={
            "bootstrap_servers": broker.secure_bootstrap,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_username": SCRAM_USER,
            "sasl_password": password,
            "ssl_cafile": str(broker.tls.ca_pem),
        },
        topics={"partitions": 2},
        worker={"catalog_path": str(catalog_path), "batch_max": 50},
        influx={"token": INFLUX_TOKEN},
    )
    return s


def _env(settings: Settings, password: str, tag: str) -> dict[str, str]:
    env = influx_env(settings.influx.url, tag, token=INFLUX_TOKEN)
    env["GAR_KAFKA__SASL_PASSWORD"] = password
    return env


async def _read_everything(
    settings: Settings,
    topics: list[str],
    want_decisions: int,
    decisions_topic: str,
    timeout_s: float,
) -> dict[str, list[Any]]:
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings.kafka),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: dict[str, list[Any]] = {t: [] for t in topics}
    try:
        tps = []
        for t in topics:
            for _ in range(50):
                parts = consumer.partitions_for_topic(t)
                if parts:
                    break
                await consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            tps += [TopicPartition(t, p) for p in parts or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for tp, msgs in (await consumer.getmany(timeout_ms=300)).items():
                out[tp.topic].extend(msgs)
            if len(out[decisions_topic]) >= want_decisions:
                await asyncio.sleep(1.0)  # let the last changelog records land
                for tp, msgs in (await consumer.getmany(timeout_ms=500)).items():
                    out[tp.topic].extend(msgs)
                break
    finally:
        await consumer.stop()
    return out


async def _rejected_without_credentials(bootstrap: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3_000)
    try:
        await asyncio.wait_for(admin.start(), 5.0)
        await asyncio.wait_for(admin.list_topics(), 5.0)
    except Exception:
        return True
    finally:
        await admin.close()
    return False


@pytest.mark.integration
@pytest.mark.faults
def test_worker_runs_over_sasl_scram_tls_and_never_prints_secrets(
    secure_broker: SecureBroker,
    settings_factory: Any,
    catalog_path: Path,
    tmp_path: Path,
    unique_id: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = _secure_settings(settings_factory, secure_broker, catalog_path, KAFKA_PASSWORD)
    lay = layout(settings)
    # Negative control: the listener really demands TLS + SCRAM.
    assert asyncio.run(_rejected_without_credentials(secure_broker.secure_bootstrap))
    create_topics(settings)  # admin client through client_kwargs
    tag = f"faults-sec-{unique_id}"
    worker = start_worker(
        settings, tmp_path / "w.log", _env(settings, KAFKA_PASSWORD, tag), loglevel="debug"
    )
    n = 60
    try:

        async def publish() -> None:
            async with GarClient(settings) as gar:  # the project's producer client
                for i in range(n):
                    await gar.submit_nowait(
                        GarClient.request(
                            tenant=f"t{i % 3}",
                            dataset="gsm8k",
                            input_tokens=100 + i,
                            client_region="eu",
                            request_id=f"sec-{i:04d}",
                            ts_ms=T0_MS + i,
                        )
                    )
                # One bad message: the dead-letter path writes through the same producer.
                await gar._producer.send_and_wait(
                    gar.topic, b'{"oops":"' + b"x" * 10 + b'"}', key=b"t0"
                )

        asyncio.run(publish())
        topics = [
            lay.decisions,
            lay.dead_letter,
            *lay.dispatch.values(),
            f"{settings.app_id}-tenant_state-changelog",
            f"{settings.app_id}-dedupe-changelog",
        ]
        out = asyncio.run(_read_everything(settings, topics, n, lay.decisions, 120.0))
        assert alive(worker), worker.log()[-3000:]
    finally:
        worker.stop()
    decisions = [orjson.loads(m.value) for m in out[lay.decisions]]
    assert sorted(d["request_id"] for d in decisions) == [f"sec-{i:04d}" for i in range(n)]
    assert len(out[lay.dead_letter]) == 1
    log = worker.log()
    assert "SASL" in log or "sasl" in log  # debug logging did cover the authenticated clients
    everything = [m.value or b"" for msgs in out.values() for m in msgs] + [
        (m.key or b"") for msgs in out.values() for m in msgs
    ]
    for secret in SECRETS:
        assert secret not in log, f"{secret} in the worker log"
        assert not any(secret.encode() in b for b in everything), f"{secret} in a record"
    captured = capfd.readouterr()
    test_logs = "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)
    for secret in SECRETS:
        assert secret not in captured.out + captured.err + test_logs
    print(
        f"\nsecurity: decisions={len(decisions)} dead_letters={len(out[lay.dead_letter])} "
        f"worker_log_lines={log.count(chr(10))} records_scanned={len(everything) // 2}"
    )


@pytest.mark.integration
@pytest.mark.faults
def test_wrong_password_fails_closed_without_printing_it(
    secure_broker: SecureBroker,
    settings_factory: Any,
    catalog_path: Path,
    tmp_path: Path,
    unique_id: str,
) -> None:
    good = _secure_settings(settings_factory, secure_broker, catalog_path, KAFKA_PASSWORD)
    create_topics(good)
    bad = _secure_settings(settings_factory, secure_broker, catalog_path, WRONG_PASSWORD)
    worker = start_worker(
        bad, tmp_path / "w.log", _env(bad, WRONG_PASSWORD, unique_id), loglevel="debug"
    )
    try:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and "uthentication" not in worker.log():
            time.sleep(0.5)
    finally:
        worker.kill()
    log = worker.log()
    assert "uthentication" in log, log[-2000:]  # it tried, and the broker said no
    assert WRONG_PASSWORD not in log and KAFKA_PASSWORD not in log and INFLUX_TOKEN not in log
