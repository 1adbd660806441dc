"""The resume after recovery against Faust's own ``Recovery.on_recovery_completed`` body, with a
model of its consumer: a fetcher that delivers the next record of a stream partition into a
channel queue whenever the consumer's flow is on, and flow control that clears the queues when
it resumes. A record appended while the streams are re-seeked is lost by Faust's order and
delivered with the flow stopped first; changelog records already queued for the GlobalTables are
taken by Faust's changelog reader before the clear."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import faust.tables.recovery as faust_recovery

from streams.kafka import faust_recovery as ordered

TP = ("gar.policy", 0)


class ModelConsumer:
    """One stream partition: ``log`` is its records, ``position`` the fetch position (where the
    next fetch reads), ``queue`` the agent's channel queue."""

    def __init__(self, log: list[str], committed: int) -> None:
        self.log = log
        self.committed = committed
        self.position = committed
        self.flow_active = True  # recovery resumed the flow to read the changelogs
        self.queue: list[str] = []
        self.calls: list[str] = []
        self.append_during_seek: str | None = None
        self.changelog_queue = ChangelogQueue()  # Faust's changelog queue (GlobalTable records)

    def fetch(self) -> None:
        """What the fetcher task does when it gets a turn: deliver what is there if flowing."""
        while self.flow_active and self.position < len(self.log):
            self.queue.append(self.log[self.position])
            self.position += 1

    def stop_flow(self) -> None:
        self.calls.append("stop_flow")
        self.flow_active = False

    def resume_flow(self) -> None:
        self.calls.append("resume_flow")
        self.flow_active = True

    def assignment(self) -> set[tuple[str, int]]:
        return {TP}

    def resume_partitions(self, tps: set[tuple[str, int]]) -> None:
        self.calls.append("resume_partitions")

    async def perform_seek(self) -> None:
        self.calls.append("perform_seek")
        self.position = self.committed
        if self.append_during_seek is not None:  # a producer appends while the seek is awaited
            self.log.append(self.append_during_seek)
        self.fetch()  # the fetcher runs while perform_seek awaits the broker


class ChangelogQueue(list[str]):
    def empty(self) -> bool:
        return not self


def _recovery(consumer: ModelConsumer) -> Any:
    async def nothing(*_: Any, **__: Any) -> None:
        return None

    async def wait(coro: Awaitable[None], timeout: float | None = None) -> None:
        await coro

    def resume_flow_control() -> None:
        consumer.calls.append("flow_control.resume")
        consumer.queue.clear()  # mode's FlowControlEvent.resume clears every managed queue
        consumer.changelog_queue.clear()

    log = SimpleNamespace(info=lambda *a: None, dev=lambda *a: None, warning=lambda *a: None)
    app = SimpleNamespace(
        consumer=consumer,
        on_rebalance_complete=SimpleNamespace(send=nothing),
        consumer_generation_id=1,
        conf=SimpleNamespace(broker_request_timeout=1.0),
        flow_control=SimpleNamespace(resume=resume_flow_control),
        _fetcher=SimpleNamespace(maybe_start=nothing),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: None,
    )
    tables = SimpleNamespace(
        values=lambda: [],
        on_actives_ready=lambda: None,
        on_standbys_ready=lambda: None,
        changelog_queue=consumer.changelog_queue,
    )
    return SimpleNamespace(
        app=app,
        log=log,
        tables=tables,
        actives_for_table={},
        standbys_for_table={},
        completed=asyncio.Event(),
        _set_recovery_ended=lambda: None,
        _is_changelog_tp=lambda tp: False,
        _wait=wait,
    )


def _run(on_recovery_completed: Callable[[Any, int], Awaitable[None]]) -> ModelConsumer:
    consumer = ModelConsumer(["v1"], committed=1)  # v1 applied and committed before
    consumer.append_during_seek = "v2"
    asyncio.run(on_recovery_completed(_recovery(consumer), 1))
    consumer.fetch()  # the fetcher's next turn after the worker is ready
    return consumer


def test_faust_order_loses_a_record_appended_during_the_seek() -> None:
    # Guards the premise: if Faust changes its order, this fails and the fix can go.
    consumer = _run(ordered._faust_on_recovery_completed)
    assert consumer.queue == []  # delivered during the seek, then cleared
    assert consumer.position == 2  # and not fetched again


def test_stopped_flow_delivers_it_once_streams_are_resumed() -> None:
    consumer = _run(ordered._on_recovery_completed)
    assert consumer.queue == ["v2"]
    assert consumer.calls == [
        "stop_flow",
        "resume_partitions",
        "perform_seek",
        "flow_control.resume",
        "resume_flow",
    ]


def test_installed_on_faust_recovery() -> None:
    ordered.stop_flow_before_resuming_streams()
    assert faust_recovery.Recovery.on_recovery_completed is ordered._on_recovery_completed
    ordered.stop_flow_before_resuming_streams()  # idempotent
    assert faust_recovery.Recovery.on_recovery_completed is ordered._on_recovery_completed


def test_queued_changelog_records_are_taken_before_the_clear() -> None:
    consumer = ModelConsumer(["v1"], committed=1)
    consumer.changelog_queue.extend(["policy-changelog@7", "intensity-changelog@3"])
    applied: list[str] = []

    async def run() -> None:
        async def changelog_reader() -> None:  # Faust's _slurp_changelogs
            while True:
                if consumer.changelog_queue:
                    applied.append(consumer.changelog_queue.pop(0))
                await asyncio.sleep(0.001)

        reader = asyncio.create_task(changelog_reader())
        await ordered._on_recovery_completed(_recovery(consumer), 1)
        reader.cancel()

    asyncio.run(run())
    assert applied == ["policy-changelog@7", "intensity-changelog@3"]


def test_a_stuck_changelog_reader_delays_the_resume_by_a_bounded_time(monkeypatch: Any) -> None:
    monkeypatch.setattr(ordered, "CHANGELOG_DRAIN_S", 0.05)
    consumer = ModelConsumer(["v1"], committed=1)
    consumer.changelog_queue.append("never-read")
    t0 = time.monotonic()
    asyncio.run(ordered._on_recovery_completed(_recovery(consumer), 1))
    assert time.monotonic() - t0 < 1.0
    assert consumer.calls[-1] == "resume_flow"  # resumed anyway
