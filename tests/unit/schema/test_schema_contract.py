"""Contract: the JSON Schemas, the limits and the parsers agree.

- every schema is a valid draft 2020-12 schema whose ``schema_version`` matches its file name;
- the schemas state the limits in ``streams.ingress.limits``;
- every schema example validates and the matching parser accepts it;
- on generated valid records the parser accepts exactly what the schema accepts, and on
  mutated records nothing the parser accepts violates the schema (the parser may be stricter
  only where documented: trailing newlines in names, contradictory allow/deny lists).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.samples import CATALOG, VALID_COMPLETION, VALID_INTENSITY, VALID_REQUEST
from support.strategies import mutated, valid_completions, valid_intensities, valid_requests

from streams.core.policy_config import PolicyConfig
from streams.ingress import (
    IngressContext,
    Rejected,
    parse_completion,
    parse_intensity,
    parse_policy,
    parse_request,
)
from streams.ingress.limits import DEFAULT_LIMITS, ID_PATTERN
from streams.ingress.policy import CONFIG_FIELDS
from streams.ingress.rejected import RejectReason
from streams.ingress.schema_fields import CURRENT_VERSION
from streams.schema import TOPIC_SCHEMAS, load_schema, schema_path, validation_errors, validator

MODELS = [m["name"] for m in CATALOG["models"]]
REGIONS = [r["name"] for r in CATALOG["regions"]]
PARSERS: dict[str, Callable[..., Any]] = {
    "requests": parse_request,
    "completions": parse_completion,
    "carbon-intensity": parse_intensity,
    "policy": parse_policy,
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("name", TOPIC_SCHEMAS)
def test_schema_files_are_valid_and_versioned(name: str) -> None:
    schema = load_schema(name)
    validator(name)  # check_schema raises on an invalid schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    version = CURRENT_VERSION[name]
    assert schema_path(name).name == f"{name}.v{version}.json"
    assert schema["properties"]["schema_version"] == {"const": version}
    assert "schema_version" in schema["required"]
    assert schema["additionalProperties"] is False


def test_schemas_state_the_python_limits() -> None:
    lim = DEFAULT_LIMITS
    req = load_schema("requests")
    p, defs = req["properties"], req["$defs"]
    assert p["input_tokens"]["maximum"] == lim.max_input_tokens
    assert p["output_tokens_est"]["maximum"] == lim.max_output_tokens
    assert p["latency_cap_ms"]["maximum"] == lim.max_latency_ms
    assert defs["id"]["maxLength"] == lim.max_id_chars
    assert defs["name"]["maxLength"] == lim.max_name_chars
    assert defs["model"]["maxLength"] == lim.max_model_chars
    assert defs["model_list"]["maxItems"] == lim.max_list_items
    assert defs["ts_ms"]["minimum"] == lim.min_ts_ms
    assert defs["ts_ms"]["exclusiveMaximum"] == lim.max_ts_ms
    assert {d["pattern"] for d in (defs["id"], defs["name"], defs["model"])} == {ID_PATTERN}
    comp = load_schema("completions")["properties"]
    assert comp["energy_j"]["maximum"] == lim.max_energy_j
    assert comp["latency_ms"]["maximum"] == lim.max_latency_ms
    ci = load_schema("carbon-intensity")["properties"]
    assert ci["intensity_g_per_kwh"]["maximum"] == lim.max_intensity_g_per_kwh
    dl = load_schema("dead-letter")["properties"]
    b64_max = 4 * -(-lim.max_dead_letter_original_bytes // 3)
    assert dl["original_b64"]["maxLength"] == b64_max


def test_dead_letter_reason_enum_is_the_reason_codes() -> None:
    from streams.ingress.rejected import RejectReason, Stage

    props = load_schema("dead-letter")["properties"]
    assert set(props["reason"]["enum"]) == {r.value for r in RejectReason}
    assert set(props["stage"]["enum"]) == {s.value for s in Stage}


def test_policy_schema_lists_every_core_config_field() -> None:
    core = {f.name for f in fields(PolicyConfig)}
    assert set(CONFIG_FIELDS) == core
    assert set(load_schema("policy")["properties"]["config"]["properties"]) == core


@pytest.mark.parametrize("name", TOPIC_SCHEMAS)
def test_examples_validate_and_parse(name: str) -> None:
    examples = load_schema(name).get("examples", [])
    if name in PARSERS:
        assert examples, f"{name} schema needs examples"
    for ex in examples:
        assert validation_errors(name, ex) == []
        if name in PARSERS:
            # Examples name real-catalog models/regions; catalog checks are tested elsewhere.
            out = PARSERS[name](orjson.dumps(ex), IngressContext())
            assert not isinstance(out, Rejected), out


def _agree(name: str, record: dict[str, Any], ctx: IngressContext, both_ways: bool) -> None:
    raw = orjson.dumps(record)
    accepted = not isinstance(PARSERS[name](raw, ctx), Rejected)
    # Validate what the parser saw (orjson's reading of the bytes), not the Python dict.
    schema_ok = not validation_errors(name, json.loads(raw))
    if accepted:
        assert schema_ok, (record, validation_errors(name, json.loads(raw)))
    if both_ways and schema_ok and not _documented_stricter(record):
        out = PARSERS[name](raw, ctx)
        # Catalog membership is the context's, not the schema's: a mutation can name a model
        # or region the fuzzed catalog lacks (e.g. model "0"), which the schema cannot reject.
        assert not isinstance(out, Rejected) or out.reason in _CATALOG_REASONS, (record, out)


_CATALOG_REASONS = {
    RejectReason.UNKNOWN_MODEL,
    RejectReason.UNKNOWN_REGION,
    RejectReason.UNKNOWN_ZONE,
}


def _documented_stricter(record: dict[str, Any]) -> bool:
    if any(isinstance(v, str) and v.endswith("\n") for v in record.values()):
        return True  # Python's `$` in the schema pattern lets a trailing newline through
    allow, deny = record.get("allow_models"), record.get("deny_models")
    if isinstance(allow, list) and (
        not allow or (isinstance(deny, list) and set(allow) <= set(deny))
    ):
        return True
    allow_r, deny_r = record.get("allow_regions"), record.get("deny_regions")
    return isinstance(allow_r, list) and (
        not allow_r or (isinstance(deny_r, list) and set(allow_r) <= set(deny_r))
    )


@FUZZ
@given(data=st.data())
def test_valid_records_are_accepted_by_both(data: st.DataObject, ctx: IngressContext) -> None:
    rec = data.draw(valid_requests(MODELS, REGIONS))
    _agree("requests", rec, ctx, both_ways=True)
    assert not validation_errors("requests", rec)
    comp = data.draw(valid_completions(MODELS, REGIONS))
    _agree("completions", comp, ctx, both_ways=True)
    ci = data.draw(valid_intensities())
    _agree("carbon-intensity", ci, ctx, both_ways=True)


@FUZZ
@given(data=st.data())
def test_parser_never_accepts_what_the_schema_rejects(
    data: st.DataObject, ctx: IngressContext
) -> None:
    _agree("requests", data.draw(mutated(valid_requests(MODELS, REGIONS))), ctx, both_ways=True)
    _agree("completions", data.draw(mutated(valid_completions(MODELS, REGIONS))), ctx, True)
    _agree("carbon-intensity", data.draw(mutated(valid_intensities())), ctx, both_ways=True)


_VERSION_SAMPLES: dict[str, dict[str, Any]] = {
    "requests": VALID_REQUEST,
    "completions": VALID_COMPLETION,
    "carbon-intensity": VALID_INTENSITY,
    "policy": {"schema_version": 1, "scope": "global", "config": {"version": "v1"}},
}


@pytest.mark.parametrize("name", sorted(_VERSION_SAMPLES))
@pytest.mark.parametrize(
    ("version", "accepted"),
    [(1, True), (1.0, True), (1.5, False), (True, False), ("1", False), (2.0, False)],
)
def test_schema_version_is_read_as_json_schema_reads_it(
    name: str, version: object, accepted: bool, ctx: IngressContext
) -> None:
    """``schema_version: 1.0`` is the integer 1 to JSON Schema (``"const": 1``), so the
    parsers accept it too; a non-integral or boolean version is rejected by both."""
    raw = orjson.dumps({**_VERSION_SAMPLES[name], "schema_version": version})
    schema_ok = not validation_errors(name, json.loads(raw))
    out = PARSERS[name](raw, ctx)
    assert schema_ok == accepted, validation_errors(name, json.loads(raw))
    assert (not isinstance(out, Rejected)) == accepted, out
    if not accepted:
        assert isinstance(out, Rejected)
        assert out.field == "schema_version", out
