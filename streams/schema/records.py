"""Builders of the router's output records (decisions, dispatch, dead-letter) and their bytes.

Each builder returns a JSON-safe dict that validates against ``schemas/<topic>.v1.json``
(checked by ``tests/edges/test_builders.py``); ``encode`` turns any record into orjson bytes.
Dispatch records depend only on the request and its decision record, so a dispatch re-emitted
after a crash is byte-identical to the first one.
"""

from __future__ import annotations

import base64
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
_KEY_BYTES = 1024


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


def source_dict(src: SourceLike | None) -> dict[str, Any]:
    if src is None:
        return {"topic": "", "partition": -1, "offset": -1}
    return {"topic": src.topic, "partition": src.partition, "offset": src.offset}


def decision_record(
    record: Mapping[str, Any], request_source: SourceLike | None
) -> dict[str, Any]:
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


def dispatch_record(req: Request, decision: Mapping[str, Any]) -> dict[str, Any]:
    """What the chosen model's fleet consumes, from the request and its decision record."""
    return {
        "schema_version": SCHEMA_VERSION,
        "request_id": req.request_id,
        "tenant": req.tenant,
        "dataset": req.dataset,
        "model": decision["model"],
        "region": decision["region"],
        "candidate_index": decision["candidate"],
        "input_tokens": req.input_tokens,
        "output_tokens_est": req.output_tokens_est,
        "client_region": req.client_region,
        "ts_ms": req.ts_ms,
        "policy": str(decision.get("policy", "")),
        "reason": str(decision.get("reason", "")),
    }


def dead_letter_record(
    rej: Rejected, *, rejected_at_ms: int, limits: Limits = DEFAULT_LIMITS
) -> dict[str, Any]:
    """The dead-letter record: original bytes (first ``max_dead_letter_original_bytes``, base64)
    with size and sha256 of the whole, source, stage, reason, message."""
    original = rej.original
    keep = original[: limits.max_dead_letter_original_bytes]
    src = rej.source
    key = None if src.key is None else base64.b64encode(src.key[:_KEY_BYTES]).decode("ascii")
    return {
        "schema_version": SCHEMA_VERSION,
        "kind": rej.kind,
        "stage": str(rej.stage),
        "reason": str(rej.reason),
        "message": rej.message[:_MESSAGE_CHARS],
        "field": None if rej.field is None else rej.field[:_FIELD_CHARS],
        "source": {
            "topic": src.topic,
            "partition": src.partition,
            "offset": src.offset,
            "timestamp_ms": src.timestamp_ms,
            "key_b64": key,
        },
        "original_b64": base64.b64encode(keep).decode("ascii"),
        "original_size_bytes": len(original),
        "original_truncated": len(keep) < len(original),
        "original_sha256": hashlib.sha256(original).hexdigest(),
        "request_id": rej.request_id,
        "tenant": rej.tenant,
        "rejected_at_ms": rejected_at_ms,
    }


def dead_letter_key(rej: Rejected) -> bytes | None:
    """Key of a dead-letter record: the request id when it could be read, else the input's key."""
    return rej.request_id.encode() if rej.request_id else rej.source.key


# --- input records (what producers, the feed and the fleet simulator publish) -----------------


def request_record(req: Request) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **req.to_dict()}


def completion_record(c: Completion) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, **c.to_dict()}


def intensity_record(r: IntensityReading) -> dict[str, Any]:
    d = r.to_dict()
    del d["source_offset"]  # a property of the Kafka record, not of the event
    return {"schema_version": SCHEMA_VERSION, **d}
