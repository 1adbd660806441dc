"""ControlGate's waiting rule against a fake admin client (the Kafka calls are thin; the
integration test in test_side_inputs_integration.py runs the real thing)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from streams.app.control_gate import ControlGate
from streams.config import Settings


@dataclass
class _Committed:
    offset: int


class _Admin:
    """Committed offsets that advance by ``step`` per call (the agents catching up)."""

    def __init__(self, start: dict[TopicPartition, int], step: int) -> None:
        self.now = dict(start)
        self.step = step
        self.calls = 0

    async def list_consumer_group_offsets(
        self, group: str, partitions: Any = None
    ) -> dict[TopicPartition, _Committed]:
        self.calls += 1
        out = {tp: _Committed(off) for tp, off in self.now.items() if off >= 0}
        self.now = {tp: off + self.step for tp, off in self.now.items()}
        return out


POLICY, INTENSITY = TopicPartition("p", 0), TopicPartition("ci", 0)


def test_waits_until_every_control_partition_is_committed_to_its_end() -> None:
    gate = ControlGate(Settings(), ["p", "ci"], timeout_s=5.0, poll_s=0.001)
    admin = _Admin({POLICY: -1, INTENSITY: 0}, step=1)  # policy: nothing committed yet
    asyncio.run(gate._until_applied(admin, {POLICY: 2, INTENSITY: 3}))  # type: ignore[arg-type]
    assert admin.calls == 4 and gate.behind == {}


def test_opens_on_timeout_and_says_how_far_behind() -> None:
    gate = ControlGate(Settings(), ["p", "ci"], timeout_s=0.05, poll_s=0.01)
    admin = _Admin({POLICY: 5, INTENSITY: -1}, step=0)  # the group never catches up
    asyncio.run(gate._until_applied(admin, {POLICY: 7, INTENSITY: 4}))  # type: ignore[arg-type]
    assert gate.behind == {"p:0": 2, "ci:0": 4}


def test_nothing_to_wait_for_and_zero_timeout_mean_open_at_once() -> None:
    assert ControlGate(Settings(), ["p"], timeout_s=0).is_open
    gate = ControlGate(Settings(), ["p"], timeout_s=5.0)
    admin = _Admin({}, step=0)
    asyncio.run(gate._until_applied(admin, {}))  # type: ignore[arg-type]
    assert admin.calls == 0


def test_a_broker_error_opens_the_gate_instead_of_stopping_routing() -> None:
    gate = ControlGate(Settings(), ["p"], timeout_s=5.0)

    async def broken() -> None:
        raise ConnectionError("broker down")

    gate._catch_up = broken  # type: ignore[method-assign]
    asyncio.run(gate.wait())
    assert gate.is_open
