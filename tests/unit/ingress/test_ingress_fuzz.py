"""Property: no input makes a parser raise; every rejection is well-formed and keeps the bytes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.samples import CATALOG, VALID_COMPLETION, VALID_INTENSITY, VALID_REQUEST
from support.strategies import json_values, mutated, valid_requests

from streams.core.inputs import Request
from streams.core.policy_config import MODES
from streams.ingress import (
    IngressContext,
    Rejected,
    RejectReason,
    Source,
    Stage,
    parse_completion,
    parse_intensity,
    parse_intensity_many,
    parse_policy,
    parse_request,
)
from streams.ingress.policy import CONFIG_FIELDS
from streams.schema import dead_letter_record, validation_errors

PARSERS: list[Callable[..., Any]] = [
    parse_request,
    parse_completion,
    parse_intensity,
    parse_intensity_many,
    parse_policy,
]
VALID = [VALID_REQUEST, VALID_COMPLETION, VALID_INTENSITY]
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SRC = Source("fuzz", 1, 2, 3, b"k")


def check(raw: bytes, ctx: IngressContext) -> None:
    for parse in PARSERS:
        out = parse(raw, ctx, SRC)
        if isinstance(out, Request):
            # parse_request fills the slots without the constructor's re-check: the checked
            # constructor must accept every request it returns, and build the same value
            assert dataclasses.replace(out) == out
        if isinstance(out, Rejected):
            assert out.original == raw
            assert isinstance(out.reason, RejectReason) and isinstance(out.stage, Stage)
            assert out.stage != Stage.INTERNAL, out  # a parser bug, not a hostile input
            assert out.message
            record = dead_letter_record(out, rejected_at_ms=1)
            assert validation_errors("dead-letter", record) == []


@FUZZ
@given(raw=st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes, ctx: IngressContext) -> None:
    check(raw, ctx)


@FUZZ
@given(value=json_values)
def test_arbitrary_json(value: Any, ctx: IngressContext) -> None:
    check(orjson.dumps(value), ctx)


@FUZZ
@given(data=st.data())
def test_truncated_and_spliced_valid_records(data: st.DataObject, ctx: IngressContext) -> None:
    raw = orjson.dumps(data.draw(st.sampled_from(VALID)))
    cut = data.draw(st.integers(0, len(raw)))
    check(raw[:cut], ctx)
    junk = data.draw(st.binary(max_size=8))
    check(raw[:cut] + junk + raw[cut:], ctx)


@FUZZ
@given(
    rec=mutated(
        valid_requests(
            [m["name"] for m in CATALOG["models"]], [r["name"] for r in CATALOG["regions"]]
        )
    )
)
def test_mutated_requests(rec: dict[str, Any], ctx: IngressContext) -> None:
    check(orjson.dumps(rec), ctx)


PROVIDER_KEYS = [
    "zone",
    "carbonIntensity",
    "datetime",
    "updatedAt",
    "isEstimated",
    "estimationMethod",
    "emissionFactorType",
    "history",
    "point_time",
    "value",
    "signal_type",
    "units",
    "region",
    "ba",
    "meta",
    "data",
    "generated_at",
]


@FUZZ
@given(
    obj=st.dictionaries(
        st.sampled_from(PROVIDER_KEYS),
        json_values | st.sampled_from(["2023-01-01T00:00:00Z", "co2_moer", "lbs_co2_per_mwh"]),
        max_size=8,
    )
)
def test_provider_shaped_json(obj: dict[str, Any], ctx: IngressContext) -> None:
    check(orjson.dumps(obj), ctx)
    check(orjson.dumps({"meta": obj, "data": [obj, obj]}), ctx)
    check(orjson.dumps({"zone": "DE", "history": [obj]}), ctx)


@pytest.mark.parametrize(
    "raw",
    [
        b"[" * 100_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"schema_version":1,"tenant":"' + b"x" * 10_000_000 + b'"}',
        b'{"schema_version":1,"allow_models":[' + b'"a",' * 100_000 + b'"a"]}',
        b"\x00" * 1000,
        b'{"schema_version": 1e308, "x": -1e308}',
        b'{"schema_version": 18446744073709551616}',
        b"\xef\xbb\xbf{}",
    ],
)
def test_hostile_classics(raw: bytes, ctx: IngressContext) -> None:
    check(raw, ctx)


@FUZZ
@given(
    config=st.dictionaries(
        st.sampled_from(sorted(CONFIG_FIELDS)),
        json_values | st.floats(-10, 1e7) | st.integers(-10, 10**7) | st.sampled_from(MODES),
        max_size=10,
    ),
    version=st.none() | st.text(max_size=5),
)
def test_policy_configs(config: dict[str, Any], version: str | None, ctx: IngressContext) -> None:
    if version is not None:
        config = {**config, "version": version}
    check(orjson.dumps({"schema_version": 1, "scope": "global", "config": config}), ctx)
