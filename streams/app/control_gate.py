"""Routing waits, once per worker start, until the control topics are applied.

The policy and carbon-intensity topics are read by Faust agents that write the GlobalTables the
router prices with. A fresh worker (or one that was down while a policy was published) would
otherwise route its first requests with the default policy and stale intensity while those
agents catch up: measured in the demo, 987 of 4,938 decisions (20%) went out under policy
version "1" with every zone stale, and all 371 infeasible fallbacks were among them.

The gate is the GlobalKTable rule of Kafka Streams: state from the global topics is brought up
to date before processing starts. "Applied" is read from the app's consumer group: Faust commits
a control record's offset only after its agent handled it (table write and changelog flushed, or
dead letter for a bad record), so ``committed >= end offset at start`` on every control
partition means everything published before the start is in the tables. Records published later
are applied as they arrive, as before.

If the group does not catch up within ``worker.control_catchup_timeout_s`` the gate opens anyway
with a warning (routing on defaults beats not routing); a broker error while checking does the
same. It never blocks again after it opened.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.config import Settings
from streams.kafka.clients import client_kwargs

log = logging.getLogger(__name__)


class ControlGate:
    def __init__(
        self, settings: Settings, topics: Sequence[str], *, timeout_s: float, poll_s: float = 0.2
    ) -> None:
        self._settings = settings
        self._topics = list(topics)
        self._timeout_s = timeout_s
        self._poll_s = poll_s
        self._lock = asyncio.Lock()
        self.is_open = timeout_s <= 0
        self.waited_s = 0.0
        self.behind: dict[str, int] = {}
        """Records not yet applied per "topic:partition" when the gate opened on timeout."""

    async def wait(self) -> None:
        if self.is_open:
            return
        async with self._lock:
            if self.is_open:
                return
            t0 = time.monotonic()
            try:
                await self._catch_up()
            except Exception:  # the broker is what routing needs anyway: do not stop here
                log.exception("could not check the control topics; routing with what is loaded")
            self.waited_s = time.monotonic() - t0
            self.is_open = True

    async def _catch_up(self) -> None:
        kafka = self._settings.kafka
        consumer = AIOKafkaConsumer(**client_kwargs(kafka), group_id=None, enable_auto_commit=False)
        admin = AIOKafkaAdminClient(**client_kwargs(kafka))
        await consumer.start()
        try:
            await admin.start()
            try:
                tps = [
                    TopicPartition(t, p)
                    for t in self._topics
                    for p in sorted(await _partitions(consumer, t))
                ]
                ends = await consumer.end_offsets(tps) if tps else {}
                await self._until_applied(admin, {tp: e for tp, e in ends.items() if e > 0})
            finally:
                await admin.close()
        finally:
            await consumer.stop()

    async def _until_applied(
        self, admin: AIOKafkaAdminClient, pending: dict[TopicPartition, int]
    ) -> None:
        deadline = time.monotonic() + self._timeout_s
        group = self._settings.app_id
        while pending:
            committed = await admin.list_consumer_group_offsets(group, partitions=list(pending))
            pending = {
                tp: end
                for tp, end in pending.items()
                if tp not in committed or committed[tp].offset < end
            }
            if not pending:
                return
            if time.monotonic() >= deadline:
                self.behind = {
                    f"{tp.topic}:{tp.partition}": end
                    - max(committed[tp].offset if tp in committed else 0, 0)
                    for tp, end in pending.items()
                }
                log.warning(
                    "control topics not applied after %.0f s (records behind: %s); "
                    "routing with what is loaded",
                    self._timeout_s,
                    self.behind,
                )
                return
            await asyncio.sleep(self._poll_s)


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        await consumer._client.force_metadata_update()  # the topic may be brand new
        await asyncio.sleep(0.1)
    return set()
