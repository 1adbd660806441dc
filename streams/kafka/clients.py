"""aiokafka connection arguments from the one Settings object (admin, producers, consumers)."""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)

from streams.config import KafkaSettings

SIZE_ERRORS = (MessageSizeTooLargeError, RecordListTooLargeError)
# Errors with which a broker refuses a whole batch before appending any of it.
REFUSED_ERRORS = (
    *SIZE_ERRORS,
    CorruptRecordException,
    InvalidTimestampError,
    InvalidTopicError,
    PolicyViolationError,
    TopicAuthorizationFailedError,
    UnsupportedForMessageFormatError,
)


def client_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    kw: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism is not None:
        kw["sasl_mechanism"] = kafka.sasl_mechanism
        kw["sasl_plain_username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            kw["sasl_plain_password"] = kafka.sasl_password.get_secret_value()
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
        if kafka.ssl_certfile is not None:
            ctx.load_cert_chain(
                str(kafka.ssl_certfile), str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
            )
        kw["ssl_context"] = ctx
    return kw


def faust_broker_url(kafka: KafkaSettings) -> str:
    return ";".join(f"kafka://{hp.strip()}" for hp in kafka.bootstrap_servers.split(","))


def rewind_refused_batches(producer: AIOKafkaProducer) -> None:
    """Give a refused batch's sequence numbers back, so the partition stays writable.

    An idempotent producer numbers each partition's records; the broker appends a batch only if
    its first number follows the last one it appended. aiokafka counts a batch's numbers when
    it sends it and never gives them back, so after one refused batch (e.g. a record larger than
    the topic's ``max.message.bytes``) every later batch to that partition fails with
    ``OutOfOrderSequenceNumber``: measured on the real broker, a refused 50 KB record followed
    by two 100-byte ones failed all three. Kafka's Java producer resets the sequence; aiokafka
    (pinned) does not, so this wraps its sender's produce step: a partition has one batch in
    flight at a time and the next is numbered only after this step returns, so giving back the
    refused batch's count here is exact."""
    sender: Any = producer._sender
    txn = sender._txn_manager
    if txn is None or getattr(sender, "_gar_rewinds", False):
        return
    send = sender._send_produce_req

    async def send_and_rewind(node_id: int, batches: dict[Any, Any]) -> None:
        await send(node_id, batches)
        for tp, batch in batches.items():
            fut = batch.future
            if fut.done() and not fut.cancelled() and isinstance(fut.exception(), REFUSED_ERRORS):
                txn.increment_sequence_number(tp, -batch.record_count)

    sender._send_produce_req = send_and_rewind
    sender._gar_rewinds = True
