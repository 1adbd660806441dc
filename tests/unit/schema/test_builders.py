"""Contract: every output record builder produces what its schema says (jsonschema)."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.samples import VALID_COMPLETION, VALID_INTENSITY, VALID_REQUEST

from streams.core import (
    Catalog,
    IntensityReading,
    IntensityView,
    PolicyConfig,
    Request,
    RoutingContext,
    get_policy,
    policy_names,
)
from streams.ingress import (
    IngressContext,
    Rejected,
    RejectReason,
    Source,
    Stage,
    parse_completion,
    parse_intensity,
    parse_request,
)
from streams.ingress.limits import DEFAULT_LIMITS
from streams.schema import (
    bounded_key,
    completion_record,
    dead_letter_key,
    dead_letter_record,
    decision_record,
    dispatch_record,
    encode,
    encode_decision,
    intensity_record,
    request_record,
    shrink_dead_letter,
    validation_errors,
)


def requests(n: int) -> list[Request]:
    out = []
    for i in range(n):
        parsed = parse_request(
            orjson.dumps(
                {
                    **VALID_REQUEST,
                    "request_id": f"r{i}",
                    "tenant": f"t{i % 2}",
                    "input_tokens": 50 + i,
                }
            )
        )
        assert isinstance(parsed, Request)
        out.append(parsed)
    return out


@pytest.fixture(scope="module")
def routing(catalog: Catalog) -> RoutingContext:
    view = IntensityView.from_readings(
        [
            IntensityReading(
                "SE", 40.0, 1_672_531_000_000, "electricitymaps-csv", "average", False, 17
            )
        ]
    )
    return RoutingContext.build(catalog, PolicyConfig(default_budget_g=1.0), None, view)


@pytest.mark.parametrize("policy", policy_names())
def test_decision_and_dispatch_records_validate(routing: RoutingContext, policy: str) -> None:
    reqs = requests(6)
    _, decisions = get_policy(policy).decide_batch(routing, {}, reqs)
    src = Source("gar.requests", 2, 1234)
    for req, dec in zip(reqs, decisions, strict=True):
        record = decision_record(dec.to_record(), src)
        assert validation_errors("decisions", orjson.loads(encode(record)), 1) == []
        assert record["request_source"] == {"topic": "gar.requests", "partition": 2, "offset": 1234}
        assert record["request_id"] == req.request_id
        dispatch = dispatch_record(req, record)
        assert validation_errors("dispatch", orjson.loads(encode(dispatch))) == []
        assert (dispatch["model"], dispatch["region"]) == (record["model"], record["region"])
        # Deterministic: re-emitting after recovery gives identical bytes.
        assert encode(dispatch_record(req, record)) == encode(dispatch)
        # The hot path's encoder (no dict copy) writes the same bytes.
        assert encode_decision(dec.to_record(), src) == encode(record)
        assert encode_decision(dec.to_record(), None) == encode(decision_record(record, None))


def test_decision_record_points_at_the_intensity_event(routing: RoutingContext) -> None:
    (req,) = requests(1)
    _, (dec,) = get_policy("gar-pd").decide_batch(
        routing, {}, [Request(**{**req.to_dict(), "allow_regions": ("eu-north",)})]
    )
    rec = decision_record(dec.to_record(), None)
    assert rec["intensity"]["source_offset"] == 17
    assert rec["request_source"]["offset"] == -1
    assert validation_errors("decisions", orjson.loads(encode(rec)), 1) == []


def rejection(raw: bytes, **kw: Any) -> Rejected:
    out = parse_request(raw, IngressContext(), Source("gar.requests", 0, 9, 1700, b"acme"), **kw)
    assert isinstance(out, Rejected)
    return out


@settings(max_examples=60, deadline=None)
@given(raw=st.binary(max_size=200))
def test_dead_letter_records_validate_and_keep_bytes(raw: bytes) -> None:
    rej = rejection(raw)
    rec = dead_letter_record(rej, rejected_at_ms=5)
    assert validation_errors("dead-letter", orjson.loads(encode(rec))) == []
    assert base64.b64decode(rec["original_b64"]) == raw
    assert rec["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert rec["source"]["key_b64"] == base64.b64encode(b"acme").decode()


def test_dead_letter_of_oversized_input_is_truncated_but_identified() -> None:
    raw = b"{" + b" " * (DEFAULT_LIMITS.max_dead_letter_original_bytes * 3)
    rej = rejection(raw)
    assert rej.reason == RejectReason.TOO_LARGE
    rec = dead_letter_record(rej, rejected_at_ms=5)
    assert validation_errors("dead-letter", rec) == []
    assert rec["original_truncated"] is True and rec["original_size_bytes"] == len(raw)
    assert (
        len(base64.b64decode(rec["original_b64"])) == DEFAULT_LIMITS.max_dead_letter_original_bytes
    )
    assert len(encode(rec)) < 100_000


def test_dead_letter_key_prefers_request_id() -> None:
    bad = orjson.dumps({**VALID_REQUEST, "input_tokens": -1})
    assert dead_letter_key(rejection(bad)) == b"req-1"
    assert dead_letter_key(rejection(b"garbage")) == b"acme"


def test_route_stage_rejections_validate() -> None:
    rej = Rejected(
        "request", Stage.ROUTE, RejectReason.NO_CANDIDATE, "no deployment", b"{}", Source()
    )
    assert validation_errors("dead-letter", dead_letter_record(rej, rejected_at_ms=0)) == []


def test_input_record_builders_round_trip() -> None:
    req = parse_request(orjson.dumps({**VALID_REQUEST, "deny_models": ["x"], "floor": 0.5}))
    comp = parse_completion(orjson.dumps(VALID_COMPLETION))
    ci = parse_intensity(orjson.dumps(VALID_INTENSITY))
    assert isinstance(req, Request)
    assert not isinstance(comp, Rejected) and not isinstance(ci, Rejected)
    for name, rec, parse in [
        ("requests", request_record(req), parse_request),
        ("completions", completion_record(comp), parse_completion),
        ("carbon-intensity", intensity_record(ci), parse_intensity),
    ]:
        assert validation_errors(name, rec) == []
        assert parse(encode(rec)) == parse(orjson.dumps(rec))
    assert parse_request(encode(request_record(req))) == req


def test_a_huge_input_key_is_bounded_in_the_dead_letter_and_its_kafka_key() -> None:
    key = bytes(range(256)) * 4_000  # 1,024,000 bytes
    src = Source("gar.requests", 0, 9, 1700, key)
    rej = parse_request(b"\x00 not json", IngressContext(), src)
    assert isinstance(rej, Rejected) and rej.request_id is None
    rec = dead_letter_record(rej, rejected_at_ms=5)
    assert validation_errors("dead-letter", orjson.loads(encode(rec))) == []
    assert base64.b64decode(rec["source"]["key_b64"]) == key[:1024]
    assert rec["source"]["key_size_bytes"] == len(key)
    assert rec["source"]["key_sha256"] == hashlib.sha256(key).hexdigest()
    assert dead_letter_key(rej) == b"sha256:" + hashlib.sha256(key).hexdigest().encode()
    assert bounded_key(b"acme") == b"acme" and bounded_key(None) is None
    # A short key is kept whole, without size and digest (the common record is unchanged).
    short = dead_letter_record(rejection(b"garbage"), rejected_at_ms=5)["source"]
    assert "key_size_bytes" not in short and "key_sha256" not in short


@pytest.mark.parametrize("max_bytes", [1_500, 4_096, 16_384])
def test_a_shrunk_dead_letter_fits_and_keeps_size_digest_and_a_prefix(max_bytes: int) -> None:
    raw = b"[" + b"x" * 60_000
    key = b"k" * 5_000
    rej = parse_request(raw, IngressContext(), Source("gar.requests", 1, 2, 3, key))
    assert isinstance(rej, Rejected)
    full = encode(dead_letter_record(rej, rejected_at_ms=5))
    small = shrink_dead_letter(full, max_bytes)
    assert small is not None and len(small) <= max_bytes
    rec = orjson.loads(small)
    assert validation_errors("dead-letter", rec) == []
    assert rec["original_truncated"] is True
    assert rec["original_size_bytes"] == len(raw)
    assert rec["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert raw.startswith(base64.b64decode(rec["original_b64"]))
    assert rec["source"]["key_size_bytes"] == len(key)
    assert rec["source"]["key_sha256"] == hashlib.sha256(key).hexdigest()
    assert shrink_dead_letter(full, 200) is None  # not even the fixed fields fit
    assert shrink_dead_letter(b"not a dead letter", 10_000) is None
