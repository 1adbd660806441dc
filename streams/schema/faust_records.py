"""Faust ``Record`` classes matching the v1 schemas, with an ``orjson`` codec.

For agents that want typed Faust values (``topic(value_type=DispatchRecord)``). The router's hot
path does not use them: it reads raw bytes with ``streams.ingress`` (Faust's own decoder logs
and drops bad messages, which must become dead letters instead) and writes bytes built by
``streams.schema.records``. ``include_metadata=False`` keeps Faust's ``__faust`` key out of the
payload, so ``to_representation()`` is exactly the schema's record (checked by the contract
tests).
"""

from __future__ import annotations

from typing import Any

import faust
import orjson
from faust.serializers import codecs

CODEC = "orjson"


class OrjsonCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


codecs.register(CODEC, OrjsonCodec())

_OPTS: dict[str, Any] = {"serializer": CODEC, "include_metadata": False}


class RequestRecord(faust.Record, **_OPTS):  # type: ignore[call-arg]
    schema_version: int
    request_id: str
    tenant: str
    dataset: str
    input_tokens: int
    client_region: str
    ts_ms: int
    output_tokens_est: int | None = None
    floor: float | None = None
    latency_cap_ms: float | None = None
    allow_models: list[str] | None = None
    deny_models: list[str] | None = None
    allow_regions: list[str] | None = None
    deny_regions: list[str] | None = None


class CompletionRecord(faust.Record, **_OPTS):  # type: ignore[call-arg]
    schema_version: int
    request_id: str
    tenant: str
    model: str
    region: str
    dataset: str
    ts_ms: int
    latency_ms: float
    input_tokens: int
    output_tokens: int
    energy_j: float | None = None
    correct: bool | None = None


class IntensityRecord(faust.Record, **_OPTS):  # type: ignore[call-arg]
    schema_version: int
    zone: str
    intensity_g_per_kwh: float
    ts_ms: int
    source: str
    signal_type: str
    estimated: bool
    updated_at_ms: int | None = None
    estimation_method: str | None = None
    emission_factor: str | None = None


class PolicyRecord(faust.Record, **_OPTS):  # type: ignore[call-arg]
    schema_version: int
    scope: str
    config: dict[str, Any]
    policy_name: str | None = None
    issued_at_ms: int | None = None


class DispatchRecord(faust.Record, **_OPTS):  # type: ignore[call-arg]
    schema_version: int
    request_id: str
    tenant: str
    dataset: str
    model: str
    region: str
    candidate_index: int
    input_tokens: int
    output_tokens_est: float | None
    client_region: str
    ts_ms: int
    policy: str
    reason: str


class DeadLetterRecord(faust.Record, **_OPTS):  # type: ignore[call-arg]
    schema_version: int
    kind: str
    stage: str
    reason: str
    message: str
    field: str | None
    source: dict[str, Any]
    original_b64: str
    original_size_bytes: int
    original_truncated: bool
    original_sha256: str
    request_id: str | None
    tenant: str | None
    rejected_at_ms: int


RECORD_TYPES: dict[str, type[faust.Record]] = {
    "requests": RequestRecord,
    "completions": CompletionRecord,
    "carbon-intensity": IntensityRecord,
    "policy": PolicyRecord,
    "dispatch": DispatchRecord,
    "dead-letter": DeadLetterRecord,
}
