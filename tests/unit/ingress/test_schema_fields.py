"""The parsers take their fields from the JSON Schemas: every required field of a schema is
required by its parser, every field it does not declare is rejected, and the policy config's
kinds and ranges are the schema's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest

from streams.core.policy_config import EXPLORE_RULES
from streams.ingress import parse_completion, parse_intensity, parse_policy, parse_request
from streams.ingress.dispatch import parse_dispatch
from streams.ingress.rejected import Rejected, RejectReason
from streams.ingress.schema_fields import config_fields, load_schema, required_keys

PARSERS: dict[str, Callable[[bytes], Any]] = {
    "requests": parse_request,
    "completions": parse_completion,
    "carbon-intensity": parse_intensity,
    "dispatch": parse_dispatch,
    "policy": parse_policy,
}


def example(topic: str) -> dict[str, Any]:
    out: dict[str, Any] = dict(load_schema(topic)["examples"][0])
    return out


@pytest.mark.parametrize("topic", sorted(PARSERS))
def test_each_schema_required_field_is_required_by_the_parser(topic: str) -> None:
    parse = PARSERS[topic]
    assert not isinstance(parse(orjson.dumps(example(topic))), Rejected)
    for key in required_keys(topic):
        record = example(topic)
        del record[key]
        rej = parse(orjson.dumps(record))
        assert isinstance(rej, Rejected) and (rej.reason, rej.field) == (
            RejectReason.MISSING_FIELD,
            key,
        ), key


@pytest.mark.parametrize("topic", sorted(PARSERS))
def test_a_field_the_schema_does_not_declare_is_rejected(topic: str) -> None:
    record = {**example(topic), "not_in_the_schema": 1}
    rej = PARSERS[topic](orjson.dumps(record))
    assert isinstance(rej, Rejected) and rej.reason == RejectReason.UNKNOWN_FIELD


def test_policy_config_kinds_and_ranges_come_from_the_schema() -> None:
    fields = config_fields()
    assert fields["version"][:3] == ("str", 1, 64)
    assert fields["mode"].kind == "choice"
    assert fields["mode"].choices == {"strict", "balanced", "green"}
    assert fields["explore_rule"].choices == set(EXPLORE_RULES)  # the core validates the same set
    assert fields["floors"][:3] == ("map", 0.0, 1.0)
    assert fields["adaptive_floor_alpha"][:3] == ("num?", 0.0, 1.0)
    assert fields["budget_window_ms"].kind == "int"
    assert fields["latency_quantile"][:3] == ("num", 0.5, 0.95)  # an enum: the core checks it
    hi = load_schema("policy")["properties"]["config"]["properties"]["lcb_z"]["maximum"]
    assert fields["lcb_z"][:3] == ("num", 0.0, hi)


def test_a_choice_outside_the_schema_enum_is_rejected() -> None:
    record = example("policy")
    record["config"] = {**record["config"], "explore_rule": "guess"}
    rej = parse_policy(orjson.dumps(record))
    assert isinstance(rej, Rejected) and rej.field == "config.explore_rule"
    record["config"]["explore_rule"] = "kl-ucb"
    parsed = parse_policy(orjson.dumps(record))
    assert not isinstance(parsed, Rejected) and parsed.config.explore_rule == "kl-ucb"
