"""Policies published without pause while workers join and leave: every one is applied, each
first applied in the order it was published, and the last one is in force at the end.

Every rebalance pauses the policy agent and resumes it from the committed offset, and a
re-read may apply a run of policies again (at least once, in order). A version first applied
after a later one would mean a record was skipped and picked up later: an older policy in
force over a newer one.

This does not reproduce the drop that Faust's resume order caused (docs/reliability.md, design
decision 8): it passed four runs of four without that fix, the moment being a few milliseconds
per rebalance. ``tests/unit/kafka/test_faust_recovery.py`` covers that order.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from support.worker import wait_log

from faults.helpers import Worker, changelog, create_topics, layout, read_until
from faults.helpers import start_worker as start
from streams.core.policy_config import PolicyConfig
from streams.kafka.clients import client_kwargs

pytestmark = [pytest.mark.integration, pytest.mark.faults]

READY = "Worker ready"
REBALANCES = 3  # joins and leaves of a second worker: six rebalances
PUBLISH_EVERY_S = 0.02


def _record(version: str) -> bytes:
    fields = PolicyConfig(version=version).preset_overrides()
    return orjson.dumps(
        {"schema_version": 1, "scope": "global", "policy_name": "gar-pd", "config": fields}
    )


def test_policies_published_across_rebalances_are_applied_in_order(
    settings_factory: Any, catalog_path: Path, tmp_path: Path
) -> None:
    settings = settings_factory(
        topics={"partitions": 2}, worker={"catalog_path": str(catalog_path)}
    )
    create_topics(settings)
    lay = layout(settings)
    a = start(settings, tmp_path / "a.log")
    workers: list[Worker] = [a]
    published: list[str] = []
    stop = threading.Event()

    async def publish_until_stopped() -> None:
        producer = AIOKafkaProducer(**client_kwargs(settings.kafka), acks="all")
        await producer.start()
        try:
            while not stop.is_set():
                version = f"p{len(published):05d}"
                await producer.send_and_wait(lay.policy, _record(version), key=b"global")
                published.append(version)
                await asyncio.sleep(PUBLISH_EVERY_S)
        finally:
            await producer.stop()

    try:
        wait_log(a, READY, 90.0)
        publisher = threading.Thread(target=asyncio.run, args=(publish_until_stopped(),))
        publisher.start()
        for n in range(REBALANCES):
            b = start(settings, tmp_path / f"b{n}.log")
            workers.append(b)
            wait_log(b, READY, 90.0)
            time.sleep(1.0)
            assert b.stop() in (0, 1), b.log()[-3000:]  # SIGTERM: leaves the group
            time.sleep(2.0)
        stop.set()
        publisher.join(10.0)
        last = published[-1]
        topic = changelog(settings, "policy")

        def versions(r: Any) -> list[str]:
            return [
                orjson.loads(m.value)["config"]["version"]
                for m in r.records[topic]
                if m.value is not None
            ]

        reader = read_until(settings, [topic], lambda r: last in versions(r), 60.0)
    finally:
        stop.set()
        for w in workers:
            w.stop()
    applied = versions(reader)
    first: dict[str, int] = {}
    for i, v in enumerate(applied):
        first.setdefault(v, i)
    missing = [v for v in published if v not in first]
    assert not missing, f"{len(missing)} of {len(published)} never applied: {missing[:10]}"
    # At-least-once redelivery after a rebalance may apply a run again, in order; a record
    # dropped and applied later shows up as a version first applied after a later one.
    order = [first[v] for v in published]
    late = [published[i] for i in range(1, len(order)) if order[i] < order[i - 1]]
    assert not late, f"first applied after a later policy: {late[:10]}"
    assert applied[-1] == last, applied[-5:]
    print(
        f"\npolicies across {2 * REBALANCES} rebalances: published={len(published)} "
        f"changelog records={len(applied)} (re-applied {len(applied) - len(first)})"
    )
