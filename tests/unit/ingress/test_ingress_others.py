"""Unit tests of the completion, intensity and policy parsers."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from support.samples import VALID_COMPLETION, VALID_INTENSITY

from streams.core.inputs import Completion
from streams.core.intensity import IntensityReading
from streams.core.policy_config import PolicyConfig
from streams.ingress import (
    IngressContext,
    PolicyUpdate,
    Rejected,
    RejectReason,
    Source,
    Stage,
    parse_completion,
    parse_intensity,
    parse_intensity_many,
    parse_policy,
)


def dumps(base: dict[str, Any], **changes: Any) -> bytes:
    return orjson.dumps({**base, **changes})


# --- completions --------------------------------------------------------------------------------


def test_valid_completion(ctx: IngressContext) -> None:
    out = parse_completion(dumps(VALID_COMPLETION), ctx)
    assert isinstance(out, Completion)
    assert out.correct is True and out.energy_j == 240.5 and out.latency_ms == 2500.0


def test_completion_nullable_feedback(ctx: IngressContext) -> None:
    out = parse_completion(dumps(VALID_COMPLETION, energy_j=None, correct=None), ctx)
    assert isinstance(out, Completion)
    assert out.energy_j is None and out.correct is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"model": "gpt-9"}, RejectReason.UNKNOWN_MODEL),
        ({"region": "mars-1"}, RejectReason.UNKNOWN_REGION),
        ({"correct": 1}, RejectReason.WRONG_TYPE),
        ({"latency_ms": -1.0}, RejectReason.OUT_OF_RANGE),
        ({"energy_j": -3}, RejectReason.OUT_OF_RANGE),
        ({"output_tokens": 10**7}, RejectReason.OUT_OF_RANGE),
        ({"input_tokens": True}, RejectReason.WRONG_TYPE),
        ({"extra": 1}, RejectReason.UNKNOWN_FIELD),
        ({"schema_version": 9}, RejectReason.UNSUPPORTED_SCHEMA_VERSION),
    ],
)
def test_completion_violations(
    ctx: IngressContext, changes: dict[str, Any], reason: RejectReason
) -> None:
    out = parse_completion(dumps(VALID_COMPLETION, **changes), ctx, Source("c", 0, 7))
    assert isinstance(out, Rejected) and out.reason == reason, out
    assert out.kind == "completion" and out.source.offset == 7


def test_completion_missing_field(ctx: IngressContext) -> None:
    d = dict(VALID_COMPLETION)
    del d["latency_ms"]
    out = parse_completion(orjson.dumps(d), ctx)
    assert isinstance(out, Rejected) and out.reason == RejectReason.MISSING_FIELD
    assert out.field == "latency_ms"


# --- carbon intensity ---------------------------------------------------------------------------


def test_intensity_event_carries_kafka_offset() -> None:
    out = parse_intensity(dumps(VALID_INTENSITY), source=Source("ci", 1, 99))
    assert isinstance(out, IntensityReading)
    assert (out.zone, out.intensity_g_per_kwh, out.source_offset) == ("SE", 41.5, 99)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"signal_type": "median"}, RejectReason.BAD_FORMAT),
        ({"intensity_g_per_kwh": -1}, RejectReason.OUT_OF_RANGE),
        ({"intensity_g_per_kwh": 1e6}, RejectReason.OUT_OF_RANGE),
        ({"estimated": "no"}, RejectReason.WRONG_TYPE),
        ({"emission_factor": "scope3"}, RejectReason.BAD_FORMAT),
        ({"ts_ms": 1_672_531_200}, RejectReason.OUT_OF_RANGE),
        ({"colour": "green"}, RejectReason.UNKNOWN_FIELD),
    ],
)
def test_intensity_violations(changes: dict[str, Any], reason: RejectReason) -> None:
    out = parse_intensity(dumps(VALID_INTENSITY, **changes))
    assert isinstance(out, Rejected) and out.reason == reason, out
    assert out.kind == "carbon-intensity"


def test_unknown_zone_only_when_strict(catalog: Any) -> None:
    strict = IngressContext.from_catalog(catalog, strict_zones=True)
    out = parse_intensity(dumps(VALID_INTENSITY, zone="XX"), strict)
    assert isinstance(out, Rejected) and out.reason == RejectReason.UNKNOWN_ZONE
    assert out.stage == Stage.CATALOG
    assert isinstance(parse_intensity(dumps(VALID_INTENSITY, zone="XX")), IntensityReading)


def test_provider_shapes_on_the_topic() -> None:
    em = {"zone": "DE", "carbonIntensity": 302, "datetime": "2023-04-25T18:00:00.000Z"}
    out = parse_intensity(orjson.dumps(em))
    assert isinstance(out, IntensityReading) and out.source == "electricitymaps-api"
    wt = {"region": "CAISO_NORTH", "point_time": "2023-01-01T00:00:00+00:00", "value": 1000}
    out2 = parse_intensity(orjson.dumps(wt))
    assert isinstance(out2, IntensityReading)
    assert out2.signal_type == "marginal"
    assert out2.intensity_g_per_kwh == pytest.approx(453.59237)


def test_envelopes_need_the_many_parser() -> None:
    env = {
        "meta": {"region": "X", "signal_type": "co2_moer", "units": "lbs_co2_per_mwh"},
        "data": [
            {"point_time": "2023-01-01T00:00:00Z", "value": 100},
            {"point_time": "2023-01-01T00:05:00Z", "value": 200},
        ],
    }
    single = parse_intensity(orjson.dumps(env))
    assert isinstance(single, Rejected)
    many = parse_intensity_many(orjson.dumps(env))
    assert isinstance(many, list) and [r.ts_ms for r in many] == [1672531200000, 1672531500000]


def test_unrecognised_shape_is_rejected() -> None:
    out = parse_intensity(b'{"foo": 1}')
    assert isinstance(out, Rejected) and out.reason == RejectReason.MISSING_SCHEMA_VERSION


# --- policy -------------------------------------------------------------------------------------

POLICY = {
    "schema_version": 1,
    "scope": "global",
    "policy_name": "gar-pd",
    "config": {
        "version": "7",
        "mode": "green",
        "floors": {"gsm8k": 0.85},
        "budgets_g": {"acme": 100.0},
        "budget_window_ms": 3_600_000,
        "budget_buckets": 60,
    },
}


def test_valid_policy() -> None:
    out = parse_policy(orjson.dumps(POLICY), source=Source("p", 0, 3))
    assert isinstance(out, PolicyUpdate)
    assert isinstance(out.config, PolicyConfig)
    assert out.config.version == "7" and out.config.mode == "green"
    assert out.config.budgets_g == {"acme": 100.0}
    assert out.source_offset == 3 and out.policy_name == "gar-pd"


@pytest.mark.parametrize(
    ("config_changes", "reason", "field"),
    [
        ({"mode": "turbo"}, RejectReason.BAD_FORMAT, "config.mode"),
        ({"eta_mu": True}, RejectReason.WRONG_TYPE, "config.eta_mu"),
        ({"floors": {"gsm8k": 1.5}}, RejectReason.OUT_OF_RANGE, "config.floors"),
        ({"budgets_g": {"bad tenant": 1.0}}, RejectReason.BAD_FORMAT, "config.budgets_g"),
        ({"budgets_g": []}, RejectReason.WRONG_TYPE, "config.budgets_g"),
        ({"teleport": 1}, RejectReason.UNKNOWN_FIELD, "config.teleport"),
        ({"budget_buckets": 7}, RejectReason.OUT_OF_RANGE, None),  # core cross-field rule
    ],
)
def test_policy_violations(
    config_changes: dict[str, Any], reason: RejectReason, field: str | None
) -> None:
    rec = {**POLICY, "config": {**POLICY["config"], **config_changes}}  # type: ignore[dict-item]
    out = parse_policy(orjson.dumps(rec))
    assert isinstance(out, Rejected) and out.reason == reason, out
    assert out.field == field
    assert out.kind == "policy"


def test_policy_needs_version_and_scope() -> None:
    out = parse_policy(orjson.dumps({**POLICY, "config": {"mode": "green"}}))
    assert isinstance(out, Rejected) and out.reason == RejectReason.MISSING_FIELD
    out2 = parse_policy(orjson.dumps({**POLICY, "scope": "tenant:acme"}))
    assert isinstance(out2, Rejected) and out2.reason == RejectReason.BAD_FORMAT
