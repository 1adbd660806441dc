"""The worker's producers: Faust's is idempotent (acks=all, producer id + sequences); the
decisions producer is created once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest

from streams.config import Settings


def test_worker_producer_is_idempotent() -> None:
    """A produce request retried after a lost ack must not append a decision twice: the
    worker's Faust producer builds an aiokafka producer with idempotence (and acks=all)."""

    from streams.app.app import create_app
    from streams.kafka.faust_producer import IdempotentProducer

    async def build() -> tuple[object, dict[str, object], bool]:
        producer = create_app(Settings()).app.producer
        client = producer._new_producer()
        try:
            return producer, dict(producer._settings_extra()), client._txn_manager is not None
        finally:
            await client.stop()

    producer, extra, has_txn_manager = asyncio.run(build())
    assert isinstance(producer, IdempotentProducer)
    assert extra == {"acks": "all", "enable_idempotence": True}
    assert has_txn_manager  # aiokafka keeps producer id + sequences only when idempotent


def test_decisions_producer_is_created_once_when_asked_for_concurrently(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first batch's decisions sink and its context send ask for the decisions producer
    at once (each awaits its start): one producer is created and both get it, none is left
    behind unclosed."""
    import streams.app.producers as producers_mod

    created: list[_FakeProducer] = []

    class _FakeProducer:
        def __init__(self, **kwargs: object) -> None:
            self._sender = SimpleNamespace(_txn_manager=None)
            created.append(self)

        async def start(self) -> None:
            await asyncio.sleep(0.01)  # a real start awaits the broker

        async def stop(self) -> None:
            pass

    monkeypatch.setattr(producers_mod, "AIOKafkaProducer", _FakeProducer)
    producers = producers_mod.Producers(MagicMock(), Settings(), MagicMock())

    async def ask_twice() -> tuple[object, object]:
        first, second = await asyncio.gather(
            producers._decisions_producer(), producers._decisions_producer()
        )
        return first, second

    first, second = asyncio.run(ask_twice())
    assert len(created) == 1
    assert first is second is created[0]
