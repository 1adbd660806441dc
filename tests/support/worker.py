"""Helpers for the app's integration tests: a small catalog, worker subprocesses, topic reads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from streams.app.router import RawMessage
from streams.config import Settings
from streams.kafka.admin import ensure_topics
from streams.kafka.topics import TopicLayout, topic_specs

SMALL_CATALOG: dict[str, Any] = {
    "format": "gar-catalog/1",
    "version": "test.1",
    "models": [
        {
            "name": "small-8b",
            "params_b": 8.0,
            "energy_per_input_token_j": 0.02,
            "energy_per_output_token_j": 0.25,
            "ttft_ms": 100.0,
            "itl_ms": 15.0,
            "default_output_tokens": {"gsm8k": 180.0},
            "correctness_prior": {"gsm8k": {"mean": 0.80, "strength": 50.0}},
        },
        {
            "name": "large-70b",
            "params_b": 70.0,
            "energy_per_input_token_j": 0.15,
            "energy_per_output_token_j": 1.8,
            "ttft_ms": 250.0,
            "itl_ms": 30.0,
            "default_output_tokens": {"gsm8k": 200.0},
            "correctness_prior": {"gsm8k": {"mean": 0.94, "strength": 50.0}},
        },
    ],
    "regions": [
        {"name": "eu-north", "zone": "GB", "pue": 1.1, "rtt_ms": {"eu": 20.0, "us": 90.0}},
        {"name": "us-east", "zone": "US-MIDA-PJM", "pue": 1.3, "rtt_ms": {"eu": 90.0, "us": 15.0}},
    ],
}


# The decision MAC key of the tests' workers and audits (tests/conftest.py's settings).
TEST_MAC_KEY = "integration-tests-decision-mac-key-0123456789"


def write_catalog(path: Path) -> Path:
    path.write_bytes(orjson.dumps(SMALL_CATALOG))
    return path


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes a child ``gar`` process build the same Settings."""
    env = dict(os.environ)
    env["GAR_APP_ID"] = settings.app_id
    flat = {
        "KAFKA": settings.kafka.model_dump(exclude_none=True),
        "TOPICS": settings.topics.model_dump(exclude_none=True),
        "WORKER": settings.worker.model_dump(exclude_none=True),
    }
    for section, values in flat.items():
        for k, v in values.items():
            if isinstance(v, dict | list) or k.startswith("sasl_password"):
                continue
            env[f"GAR_{section}__{k.upper()}"] = str(v)
    env["GAR_INFLUX__ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    mac = settings.decision_mac
    if mac.key is not None:
        env["GAR_DECISION_MAC__KEY"] = mac.key.get_secret_value()
        env["GAR_DECISION_MAC__KEY_ID"] = mac.key_id
    return env


@dataclass
class WorkerProc:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return int(self.proc.returncode)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_log(worker: WorkerProc, needle: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if needle in worker.log():
            return
        if worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited: {worker.log()[-2000:]}")
        time.sleep(0.2)
    raise TimeoutError(f"{needle!r} not in worker log: {worker.log()[-2000:]}")


def start_worker(
    settings: Settings, log_path: Path, loglevel: str = "info", env: dict[str, str] | None = None
) -> WorkerProc:
    """``env`` adds to / overrides the settings' environment (e.g. enable metrics)."""
    gar = Path(sys.executable).with_name("gar")
    out = log_path.open("wb")
    proc = subprocess.Popen(
        [str(gar), "worker", "--loglevel", loglevel],
        env=settings_env(settings) | (env or {}),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    return WorkerProc(proc, log_path)


async def produce(
    settings: Settings, topic: str, items: Iterable[tuple[bytes | None, bytes]]
) -> int:
    # Idempotent: a batch retried after a transient error (NotLeaderForPartition on a topic
    # created a moment ago, seen in CI) keeps its place, so a partition's records stay in the
    # order they were sent; the event-time audit test relies on that with zero lateness.
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        linger_ms=5,
        max_batch_size=256 * 1024,
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    n = 0
    try:
        futs = []
        for key, value in items:
            futs.append(await producer.send(topic, value=value, key=key))
            n += 1
        await asyncio.gather(*futs)
    finally:
        await producer.stop()
    return n


async def read_all(
    settings: Settings, topics: list[str], until: Any, timeout_s: float
) -> dict[str, list[Any]]:
    """Read every record of ``topics`` from the start until ``until(records)`` or timeout."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: dict[str, list[Any]] = {t: [] for t in topics}
    try:
        tps: list[TopicPartition] = []
        for t in topics:
            parts = await topic_partitions(consumer, t)
            tps.extend(TopicPartition(t, p) for p in parts)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, msgs in batches.items():
                out[tp.topic].extend(msgs)
            if until(out):
                break
    finally:
        await consumer.stop()
    return out


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str, tries: int = 50) -> set[int]:
    """The topic's partitions, refreshing metadata every 0.1 s until it is known."""
    for _ in range(tries):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no metadata for {topic}")


def request_bytes(i: int, tenant: str, ts_ms: int, **extra: Any) -> bytes:
    return orjson.dumps(
        {
            "schema_version": 1,
            "request_id": f"req-{i:06d}",
            "tenant": tenant,
            "dataset": "gsm8k",
            "input_tokens": 120 + i % 50,
            "output_tokens_est": None,
            "client_region": "eu" if i % 2 else "us",
            "ts_ms": ts_ms,
            **extra,
        }
    )


def request_message(offset: int, value: bytes, partition: int = 0) -> RawMessage:
    """A request as the router reads it, keyed by its tenant as producers key them (``t`` when
    the value has none)."""
    try:
        key = str(orjson.loads(value)["tenant"]).encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        key = b"t"
    return RawMessage("gar.requests", partition, offset, None, key, value)


MODELS = [m["name"] for m in SMALL_CATALOG["models"]]


def worker_settings(settings_factory: Any, catalog_path: Path, **worker: Any) -> Settings:
    """4 partitions, the small catalog, batches of 200 (override any worker field)."""
    return settings_factory(
        topics={"partitions": 4},
        worker={"catalog_path": str(catalog_path), "batch_max": 200, **worker},
    )


def worker_layout(settings: Settings) -> TopicLayout:
    return TopicLayout.from_settings(settings, MODELS)


def create_worker_topics(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings, topic_specs(settings, MODELS)))


def read_outputs(settings: Settings, expect: int, timeout_s: float = 90.0) -> dict[str, list[Any]]:
    """Decisions, dead letters and dispatch until ``expect`` inputs have an outcome."""
    lay = worker_layout(settings)
    topics = [lay.decisions, lay.dead_letter, *lay.dispatch.values()]

    def done(out: dict[str, list[Any]]) -> bool:
        # Distinct ids: dispatch is at-least-once, re-sent copies must not end the wait early.
        decided = {orjson.loads(m.value)["request_id"] for m in out[lay.decisions]}
        dispatched = {m.key for t in lay.dispatch.values() for m in out[t]}
        return len(decided) + len(out[lay.dead_letter]) >= expect and len(dispatched) >= len(
            decided
        )

    return asyncio.run(read_all(settings, topics, done, timeout_s))
