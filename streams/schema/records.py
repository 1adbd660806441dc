"""Builders of the router's output records (decisions, dispatch, dead-letter) and their bytes.

Each builder returns a JSON-safe dict that validates against ``schemas/<topic>.v1.json``
(checked by ``tests/unit/schema/test_builders.py``); ``encode`` turns any record into orjson bytes.
Dispatch records depend only on the request and its decision record, so a dispatch re-emitted
after a crash is byte-identical to the first one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from streams.core.inputs import Completion, Request
from streams.core.intensity import IntensityReading
from streams.ingress.limits import DEFAULT_LIMITS, Limits
from streams.ingress.rejected import Rejected

SCHEMA_VERSION = 1
_MESSAGE_CHARS = 1024
_FIELD_CHARS = 160
_KEY_BYTES = 1024  # prefix of the input's key kept in ``source.key_b64``
DEAD_LETTER_KEY_BYTES = 256  # a longer input key becomes ``sha256:<hex>`` as the record's key


def encode(record: Mapping[str, Any]) -> bytes:
    """orjson bytes; NaN/inf floats become ``null`` (orjson's rule), never invalid JSON."""
    return orjson.dumps(record)


class SourceLike(Protocol):
    """Where a record was read (``Source``, or the router's raw message itself)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class ReadAt(SourceLike, Protocol):
    """Where an input was read, with its record's timestamp and key (``Source``, or the
    router's raw message itself)."""

    @property
    def timestamp_ms(self) -> int | None: ...

    @property
    def key(self) -> bytes | None: ...


def source_dict(src: SourceLike | None) -> dict[str, Any]:
    if src is None:
        return {"topic": "", "partition": -1, "offset": -1}
    return {"topic": src.topic, "partition": src.partition, "offset": src.offset}


def decision_record(record: Mapping[str, Any], request_source: SourceLike | None) -> dict[str, Any]:
    """``Decision.to_record()`` plus the schema version and the offset of its request."""
    return {
        "schema_version": SCHEMA_VERSION,
        **record,
        "request_source": source_dict(request_source),
    }


_DECISION_HEAD = encode({"schema_version": SCHEMA_VERSION})[:-1] + b","


def encode_decision(record: dict[str, Any], request_source: SourceLike | None) -> bytes:
    """``encode(decision_record(record, request_source))`` without copying the record into a
    new dict (hot path): the request source is added to ``record`` itself, so pass a record
    of your own, e.g. fresh from ``Decision.to_record()`` (it has neither key)."""
    record["request_source"] = source_dict(request_source)
    # One copy of the ~3.5 KB text (a slice and a concatenation were two): the first byte of
    # an object's JSON is its opening brace.
    return encode(record).replace(b"{", _DECISION_HEAD, 1)


def dispatch_record(
    req: Request, decision: Mapping[str, Any], candidate: int | None = None
) -> dict[str, Any]:
    """What the chosen model's fleet consumes, from the request and its decision record
    (``candidate``: the chosen candidate's catalog index when the record does not carry it,
    as decisions.v2 records do not)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "request_id": req.request_id,
        "tenant": req.tenant,
        "dataset": req.dataset,
        "model": decision["model"],
        "region": decision["region"],
        "candidate_index": decision["candidate"] if candidate is None else candidate,
        "input_tokens": req.input_tokens,
        "output_tokens_est": req.output_tokens_est,
        "client_region": req.client_region,
        "ts_ms": req.ts_ms,
        "policy": str(decision.get("policy", "")),
        "reason": str(decision.get("reason", "")),
    }


def dead_letter_record(
    rej: Rejected,
    *,
    rejected_at_ms: int,
    limits: Limits = DEFAULT_LIMITS,
    source: ReadAt | None = None,
) -> dict[str, Any]:
    """The dead-letter record: original bytes (first ``max_dead_letter_original_bytes``, base64)
    with size and sha256 of the whole, source (``rej.source`` unless given), stage, reason,
    message."""
    original = rej.original
    keep = original[: limits.max_dead_letter_original_bytes]
    src: ReadAt = rej.source if source is None else source
    key = src.key
    read_at: dict[str, Any] = {
        "topic": src.topic,
        "partition": src.partition,
        "offset": src.offset,
        "timestamp_ms": src.timestamp_ms,
        "key_b64": None if key is None else _b64(key[:_KEY_BYTES]),
    }
    if key is not None and len(key) > _KEY_BYTES:  # a prefix, so: size and digest
        read_at["key_size_bytes"] = len(key)
        read_at["key_sha256"] = hashlib.sha256(key).hexdigest()
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": rej.kind,
        "stage": str(rej.stage),
        "reason": str(rej.reason),
        "message": rej.message[:_MESSAGE_CHARS],
        "field": None if rej.field is None else rej.field[:_FIELD_CHARS],
        "source": read_at,
        "original_b64": _b64(keep),
        "original_size_bytes": len(original),
        "original_truncated": len(keep) < len(original),
        "original_sha256": hashlib.sha256(original).hexdigest(),
        "request_id": rej.request_id,
        "tenant": rej.tenant,
        "rejected_at_ms": rejected_at_ms,
    }


def _b64(raw: bytes) -> str:
    return binascii.b2a_base64(raw, newline=False).decode("ascii")


def dead_letter_key(rej: Rejected, source: ReadAt | None = None) -> bytes | None:
    """Key of a dead-letter record: the request id when it could be read, else the input's key,
    bounded: a key longer than ``DEAD_LETTER_KEY_BYTES`` becomes ``sha256:<hex>`` of itself (a
    1 MB input key must not make its dead letter too large for the topic)."""
    if rej.request_id:
        return rej.request_id.encode()  # at most max_id_chars (128)
    return bounded_key((rej.source if source is None else source).key)


def bounded_key(key: bytes | None) -> bytes | None:
    if key is None or len(key) <= DEAD_LETTER_KEY_BYTES:
        return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode()


def shrink_dead_letter(value: bytes, max_bytes: int) -> bytes | None:
    """The dead letter ``value`` cut to fit ``max_bytes`` (a topic refused it as too large):
    the original and the input key keep a shorter prefix, the message a shorter text; sizes and
    sha256 digests of the whole are kept (they were computed from the whole). None when even
    the record without any prefix would not fit, or ``value`` is not a dead letter."""
    try:
        rec = orjson.loads(value)
        original = base64.b64decode(rec["original_b64"])
        src = rec["source"]
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    key_b64 = src.get("key_b64")
    if isinstance(key_b64, str) and len(key_b64) > 88:  # 64 key bytes are plenty to recognise it
        key = base64.b64decode(key_b64)
        src.setdefault("key_size_bytes", len(key))
        src.setdefault("key_sha256", hashlib.sha256(key).hexdigest())
        src["key_b64"] = base64.b64encode(key[:64]).decode()
    rec["message"] = str(rec.get("message", ""))[:256]
    rec["original_b64"] = ""
    rec["original_truncated"] = rec["original_size_bytes"] > 0
    fixed = len(encode(rec))
    room = (max_bytes - fixed) * 3 // 4 - 4  # base64: 4 characters per 3 bytes
    if room < 0:
        return None
    keep = original[:room]
    rec["original_b64"] = base64.b64encode(keep).decode()
    rec["original_truncated"] = len(keep) < rec["original_size_bytes"]
    return encode(rec)


# --- input records (what producers, the feed and the fleet simulator publish) -----------------


def request_record(req: Request) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **req.to_dict()}


def completion_record(c: Completion) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **c.to_dict()}


def intensity_record(r: IntensityReading) -> dict[str, Any]:
    d = r.to_dict()
    del d["source_offset"]  # a property of the Kafka record, not of the event
    return {"schema_version": SCHEMA_VERSION, **d}
