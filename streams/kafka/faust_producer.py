"""The worker's Faust producer with idempotence (a module of its own: importing it needs
faust, which a client that only publishes requests does not install)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.transport.drivers.aiokafka import Producer as FaustAiokafkaProducer

from streams.kafka.clients import rewind_refused_batches


class IdempotentProducer(FaustAiokafkaProducer):  # type: ignore[misc]
    """Faust's aiokafka producer with ``enable_idempotence`` (acks=all) outside transactions too.

    A produce request whose ack is lost (broker stopped or killed mid-request) is retried by
    the client; without idempotence the broker appends that batch twice, and a decision record
    appears twice on the decisions topic (measured once in ``tests/faults/test_broker_restart``:
    5,200 decision records for 5,000 requests, one 200-record batch). With it the broker drops
    the retry by producer id and sequence number."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    def _new_producer(self, transactional_id: str | None = None) -> AIOKafkaProducer:
        producer = super()._new_producer(transactional_id)
        rewind_refused_batches(producer)
        return producer


def use_idempotent_producer(app: Any) -> None:
    """Make ``app.producer`` (created lazily by Faust) an ``IdempotentProducer``."""
    app.transport.Producer = IdempotentProducer
