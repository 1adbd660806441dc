"""Unit tests of the request parser: every way a request can be wrong has a reason code."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from support.samples import VALID_REQUEST

from streams.core.inputs import Request
from streams.ingress import IngressContext, Rejected, RejectReason, Source, Stage, parse_request
from streams.ingress.limits import DEFAULT_LIMITS


def req(**changes: Any) -> bytes:
    d = {**VALID_REQUEST, **changes}
    return orjson.dumps({k: v for k, v in d.items() if v is not _DROP})


_DROP = object()


def rejected(raw: bytes | None, ctx: IngressContext, reason: RejectReason) -> Rejected:
    out = parse_request(raw, ctx, Source("gar.requests", 3, 42))
    assert isinstance(out, Rejected), out
    assert out.reason == reason, (out.reason, out.message)
    assert out.source.offset == 42 and out.source.partition == 3
    assert out.original == (raw or b"")
    assert out.kind == "request"
    return out


def test_valid_request_becomes_core_request(ctx: IngressContext) -> None:
    out = parse_request(req(), ctx)
    assert isinstance(out, Request)
    assert (out.request_id, out.tenant, out.input_tokens, out.output_tokens_est) == (
        "req-1",
        "acme",
        180,
        120,
    )
    assert out.allow_models is None and out.floor is None


def test_overrides_are_parsed_into_tuples(ctx: IngressContext) -> None:
    out = parse_request(
        req(
            floor=0.9,
            latency_cap_ms=3000,
            allow_models=["meta/llama-3.1-8b", "llama-3.1-70b"],
            deny_regions=["us-east"],
        ),
        ctx,
    )
    assert isinstance(out, Request)
    assert out.allow_models == ("meta/llama-3.1-8b", "llama-3.1-70b")
    assert out.deny_regions == ("us-east",)
    assert out.floor == 0.9 and out.latency_cap_ms == 3000.0


@pytest.mark.parametrize(
    ("raw", "reason", "stage"),
    [
        (None, RejectReason.EMPTY, Stage.DECODE),
        (b"", RejectReason.EMPTY, Stage.DECODE),
        (b"\xff\xfe{}", RejectReason.INVALID_UTF8, Stage.DECODE),
        (b'{"request_id": "\xc3\x28"}', RejectReason.INVALID_UTF8, Stage.DECODE),
        (b'{"a": "\\ud800"}', RejectReason.INVALID_UTF8, Stage.DECODE),
        (b"not json", RejectReason.INVALID_JSON, Stage.DECODE),
        (b'{"schema_version": 1, "tenant": "a"', RejectReason.INVALID_JSON, Stage.DECODE),
        (b'{"schema_version": 1, "input_tokens": NaN}', RejectReason.NON_FINITE, Stage.DECODE),
        (b'{"schema_version": 1, "input_tokens": Infinity}', RejectReason.NON_FINITE, Stage.DECODE),
        (b'{"schema_version": 1, "input_tokens": 1e999}', RejectReason.NON_FINITE, Stage.DECODE),
        (b"[" * 2000 + b"]" * 2000, RejectReason.TOO_DEEP, Stage.DECODE),
        (b"[1, 2]", RejectReason.NOT_AN_OBJECT, Stage.DECODE),
        (b'"just a string"', RejectReason.NOT_AN_OBJECT, Stage.DECODE),
        (b"{}", RejectReason.MISSING_SCHEMA_VERSION, Stage.VALIDATE),
    ],
)
def test_undecodable_inputs(raw: bytes | None, reason: RejectReason, stage: Stage) -> None:
    out = rejected(raw, IngressContext(), reason)
    assert out.stage == stage


def test_too_large_message_is_rejected_before_parsing(ctx: IngressContext) -> None:
    raw = req(tenant="a" * DEFAULT_LIMITS.max_request_bytes)
    out = rejected(raw, ctx, RejectReason.TOO_LARGE)
    assert str(DEFAULT_LIMITS.max_request_bytes) in out.message


@pytest.mark.parametrize(
    "raw",
    [
        b'{"schema_version":1,"request_id":"a","request_id":"b"}',
        b'{"schema_version":1, "tenant" : "a", "tenant":"b"}',
        b'{"schema_version":1,"tenant":"x:y","tenant":"b"}',
        b'{"schema_version":1,"allow_models":[{"a":1,"a":2}]}',
        b'{\n  "schema_version": 1,\n  "schema_version": 1\n}',
    ],
)
def test_duplicate_keys_are_rejected(raw: bytes) -> None:
    out = rejected(raw, IngressContext(), RejectReason.DUPLICATE_KEY)
    assert out.stage == Stage.DECODE


def test_colons_and_spacing_without_duplicates_are_fine(ctx: IngressContext) -> None:
    pretty = orjson.dumps(
        {**VALID_REQUEST, "request_id": "run:1:req:2"}, option=orjson.OPT_INDENT_2
    )
    assert isinstance(parse_request(pretty, ctx), Request)
    spaced = req().replace(b'":', b'" :')
    assert isinstance(parse_request(spaced, ctx), Request)


@pytest.mark.parametrize(
    ("changes", "reason", "field"),
    [
        ({"schema_version": 2}, RejectReason.UNSUPPORTED_SCHEMA_VERSION, "schema_version"),
        ({"schema_version": "1"}, RejectReason.WRONG_TYPE, "schema_version"),
        ({"schema_version": True}, RejectReason.WRONG_TYPE, "schema_version"),
        ({"schema_version": _DROP}, RejectReason.MISSING_SCHEMA_VERSION, "schema_version"),
        ({"tenant": _DROP}, RejectReason.MISSING_FIELD, "tenant"),
        ({"input_tokens": _DROP}, RejectReason.MISSING_FIELD, "input_tokens"),
        ({"input_token": 5}, RejectReason.UNKNOWN_FIELD, "input_token"),
        ({"deny_model": ["x"]}, RejectReason.UNKNOWN_FIELD, "deny_model"),
        ({"input_tokens": True}, RejectReason.WRONG_TYPE, "input_tokens"),
        ({"input_tokens": "180"}, RejectReason.WRONG_TYPE, "input_tokens"),
        ({"input_tokens": 18.5}, RejectReason.WRONG_TYPE, "input_tokens"),
        ({"input_tokens": None}, RejectReason.NULL_NOT_ALLOWED, "input_tokens"),
        ({"input_tokens": -5}, RejectReason.OUT_OF_RANGE, "input_tokens"),
        ({"input_tokens": 0}, RejectReason.OUT_OF_RANGE, "input_tokens"),
        ({"input_tokens": 10**12}, RejectReason.OUT_OF_RANGE, "input_tokens"),
        ({"output_tokens_est": -1}, RejectReason.OUT_OF_RANGE, "output_tokens_est"),
        ({"output_tokens_est": False}, RejectReason.WRONG_TYPE, "output_tokens_est"),
        ({"ts_ms": 1_672_531_200}, RejectReason.OUT_OF_RANGE, "ts_ms"),
        ({"ts_ms": -1}, RejectReason.OUT_OF_RANGE, "ts_ms"),
        ({"tenant": ""}, RejectReason.BAD_FORMAT, "tenant"),
        ({"tenant": 7}, RejectReason.WRONG_TYPE, "tenant"),
        ({"tenant": "acme\n"}, RejectReason.BAD_FORMAT, "tenant"),
        ({"tenant": "a b"}, RejectReason.BAD_FORMAT, "tenant"),
        ({"tenant": "x" * 65}, RejectReason.STRING_TOO_LONG, "tenant"),
        ({"request_id": "r" * 129}, RejectReason.STRING_TOO_LONG, "request_id"),
        ({"request_id": "<script>"}, RejectReason.BAD_FORMAT, "request_id"),
        ({"dataset": ["gsm8k"]}, RejectReason.WRONG_TYPE, "dataset"),
        ({"dataset": {"a": 1}}, RejectReason.WRONG_TYPE, "dataset"),
        ({"floor": 1.5}, RejectReason.OUT_OF_RANGE, "floor"),
        ({"floor": "0.9"}, RejectReason.WRONG_TYPE, "floor"),
        ({"latency_cap_ms": 0}, RejectReason.OUT_OF_RANGE, "latency_cap_ms"),
        ({"latency_cap_ms": 1e12}, RejectReason.OUT_OF_RANGE, "latency_cap_ms"),
        ({"allow_models": "llama-3.1-70b"}, RejectReason.WRONG_TYPE, "allow_models"),
        ({"allow_models": ["gpt-9"]}, RejectReason.UNKNOWN_MODEL, "allow_models"),
        ({"deny_models": [1]}, RejectReason.WRONG_TYPE, "deny_models"),
        ({"allow_regions": ["mars-1"]}, RejectReason.UNKNOWN_REGION, "allow_regions"),
        ({"deny_regions": ["eu-north"] * 2}, RejectReason.DUPLICATE_ITEM, "deny_regions"),
        (
            {"deny_regions": [f"r{i}" for i in range(65)]},
            RejectReason.LIST_TOO_LONG,
            "deny_regions",
        ),
        ({"allow_regions": []}, RejectReason.CONFLICTING_CONSTRAINTS, "allow_regions"),
        (
            {"allow_models": ["llama-3.1-70b"], "deny_models": ["llama-3.1-70b"]},
            RejectReason.CONFLICTING_CONSTRAINTS,
            "allow_models",
        ),
    ],
)
def test_field_violations(
    ctx: IngressContext, changes: dict[str, Any], reason: RejectReason, field: str
) -> None:
    out = rejected(req(**changes), ctx, reason)
    assert out.field == field
    assert out.message


def test_catalog_rejections_have_catalog_stage(ctx: IngressContext) -> None:
    out = rejected(req(allow_models=["gpt-9"]), ctx, RejectReason.UNKNOWN_MODEL)
    assert out.stage == Stage.CATALOG


def test_integer_beyond_64_bits_is_not_an_integer(ctx: IngressContext) -> None:
    # orjson reads it as a float; it is out of range either way and never crashes.
    raw = req().replace(b'"input_tokens":180', b'"input_tokens":18446744073709551616')
    out = rejected(raw, ctx, RejectReason.OUT_OF_RANGE)
    assert out.field == "input_tokens"


def test_integral_float_counts_as_integer_like_json_schema(ctx: IngressContext) -> None:
    out = parse_request(req(input_tokens=180.0), ctx)
    assert isinstance(out, Request) and out.input_tokens == 180
    assert type(out.input_tokens) is int


def test_rejection_carries_request_id_and_tenant_when_well_formed(ctx: IngressContext) -> None:
    out = rejected(req(input_tokens=-1), ctx, RejectReason.OUT_OF_RANGE)
    assert (out.request_id, out.tenant) == ("req-1", "acme")
    hostile = rejected(req(input_tokens=-1, request_id="a b\x00"), ctx, RejectReason.BAD_FORMAT)
    assert hostile.request_id is None


def test_optional_strict_sets(catalog: Any) -> None:
    strict = IngressContext.from_catalog(
        catalog, tenants=["acme"], strict_datasets=True, strict_client_regions=True
    )
    assert isinstance(parse_request(req(), strict), Request)
    rejected(req(tenant="evil"), strict, RejectReason.UNKNOWN_TENANT)
    rejected(req(dataset="mmlu"), strict, RejectReason.UNKNOWN_DATASET)
    rejected(req(client_region="mars"), strict, RejectReason.UNKNOWN_CLIENT_REGION)
    # The permissive default accepts them: the core has documented fallbacks.
    lax = IngressContext.from_catalog(catalog)
    assert isinstance(parse_request(req(dataset="mmlu", client_region="mars"), lax), Request)


def test_memoryview_and_bytearray_inputs(ctx: IngressContext) -> None:
    raw = req()
    assert isinstance(parse_request(bytearray(raw), ctx), Request)
    assert isinstance(parse_request(memoryview(raw), ctx), Request)  # type: ignore[arg-type]


def test_name_cache_does_not_bypass_a_shorter_limit() -> None:
    long_name = "m" * 100  # fine as a model name (128), too long for a tenant (64)
    ctx = IngressContext()
    ok = parse_request(req(deny_models=[long_name]), ctx)
    assert isinstance(ok, Request)
    rejected(req(tenant=long_name), ctx, RejectReason.STRING_TOO_LONG)


def test_hostile_field_names_are_reported_printable(ctx: IngressContext) -> None:
    out = rejected(req(**{"evil\n\x1b[31m": 1}), ctx, RejectReason.UNKNOWN_FIELD)
    assert out.field is not None and out.field.isprintable() and out.field.isascii()
    assert "\n" not in out.message and "\x1b" not in out.message


def test_accepted_list_cache_is_scoped_to_field_limits_and_catalog(
    ctx: IngressContext, catalog: Any
) -> None:
    models = ["meta/llama-3.1-8b", "llama-3.1-70b"]
    first = parse_request(req(allow_models=models), ctx)
    again = parse_request(req(allow_models=list(models)), ctx)
    assert isinstance(first, Request) and isinstance(again, Request)
    assert again.allow_models == first.allow_models == tuple(models)
    # the same list under other limits, names or catalog is checked on its own terms
    long_list = models * 3
    tight = IngressContext.from_catalog(catalog, limits=replace(DEFAULT_LIMITS, max_list_items=1))
    rejected(req(allow_models=models), tight, RejectReason.LIST_TOO_LONG)
    rejected(req(allow_models=long_list), ctx, RejectReason.DUPLICATE_ITEM)
    rejected(req(allow_regions=models), ctx, RejectReason.UNKNOWN_REGION)
    loose = IngressContext()
    assert isinstance(parse_request(req(allow_models=["not-in-the-catalog"]), loose), Request)
    rejected(req(allow_models=["not-in-the-catalog"]), ctx, RejectReason.UNKNOWN_MODEL)
    rejected(req(allow_models=[["nested"]]), ctx, RejectReason.WRONG_TYPE)
