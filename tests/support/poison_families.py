"""Hypothesis-generated hostile request families, each with the reason codes it may get.

A family draws a *valid* base request and breaks it in one way. ``accepted`` families are hostile
but valid by design (open tenancy; unknown client regions get the core's documented fallback):
they must be routed, not dead-lettered.
"""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streams.ingress.limits import DEFAULT_LIMITS as LIM

T0_MS = 1_672_531_200_000

REGIONS = ["eu-north", "us-east"]
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"
ids = st.text(ALNUM, min_size=6, max_size=12)


@st.composite
def base(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "request_id": "p-" + draw(ids),
        "tenant": "tenant-0",
        "dataset": "gsm8k",
        "input_tokens": draw(st.integers(1, 4_000)),
        "output_tokens_est": draw(st.none() | st.integers(0, 2_000)),
        "client_region": draw(st.sampled_from(["eu", "us"])),
        "ts_ms": T0_MS + draw(st.integers(0, 3_600_000)),
    }


def _dump(d: dict[str, Any]) -> bytes:
    return orjson.dumps(d)


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    raw = _dump(draw(base()))
    return raw[: draw(st.integers(1, len(raw) - 1))]


not_an_int = (
    st.text(max_size=8)
    | st.booleans()
    | st.lists(st.integers(-9, 9), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=2)
    | st.floats(0.1, 1e6).filter(lambda x: not float(x).is_integer())
)


@st.composite
def wrong_type(draw: st.DrawFn) -> bytes:
    d = draw(base())
    key = draw(st.sampled_from(["input_tokens", "ts_ms", "tenant", "request_id", "dataset"]))
    not_a_string = (
        st.integers(-(2**63), 2**63 - 1) | st.booleans() | st.lists(st.text(max_size=3), max_size=2)
    )
    d[key] = draw(not_an_int if key in ("input_tokens", "ts_ms") else not_a_string)
    return _dump(d)


@st.composite
def huge_string(draw: st.DrawFn) -> bytes:
    d = draw(base())
    key = draw(st.sampled_from(["tenant", "request_id", "dataset", "client_region"]))
    d[key] = "x" * draw(st.integers(LIM.max_id_chars + 1, 3 * LIM.max_request_bytes))
    return _dump(d)


@st.composite
def non_finite(draw: st.DrawFn) -> bytes:
    raw = _dump(draw(base()))
    token = draw(st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"nan", b"1e999"]))
    key = draw(st.sampled_from([b"floor", b"latency_cap_ms"]))
    return raw[:-1] + b',"' + key + b'":' + token + b"}"


@st.composite
def absurd_tokens(draw: st.DrawFn) -> bytes:
    d = draw(base())
    if draw(st.booleans()):
        d["input_tokens"] = draw(
            st.integers(-(2**63), 0)
            | st.integers(min_value=LIM.max_input_tokens + 1, max_value=2**63 - 1)
        )
    else:
        d["output_tokens_est"] = draw(
            st.integers(-(2**63), -1)
            | st.integers(min_value=LIM.max_output_tokens + 1, max_value=2**63 - 1)
        )
    return _dump(d)


@st.composite
def unknown_names(draw: st.DrawFn) -> bytes:
    d = draw(base())
    bogus = "no-such-" + draw(ids)
    key = draw(st.sampled_from(["allow_models", "deny_models", "allow_regions", "deny_regions"]))
    d[key] = [bogus]
    return _dump(d)


@st.composite
def bad_version(draw: st.DrawFn) -> bytes:
    d = draw(base())
    if draw(st.booleans()):
        del d["schema_version"]
    else:
        other = st.integers(-(2**63), 2**63 - 1).filter(lambda v: v != 1)
        d["schema_version"] = draw(other | st.just("1") | st.none() | st.just(1.5))
    return _dump(d)


@st.composite
def unknown_field(draw: st.DrawFn) -> bytes:
    d = draw(base())
    d[draw(st.sampled_from(["model", "priority", "schema", "Tenant", "region"]))] = draw(
        st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5)
    )
    return _dump(d)


@st.composite
def duplicate_key(draw: st.DrawFn) -> bytes:
    raw = _dump(draw(base()))
    return raw[:-1] + b',"tenant":"' + draw(ids).encode() + b'"}'


@st.composite
def garbage(draw: st.DrawFn) -> bytes:
    return draw(
        st.sampled_from(
            [b"", b"null", b"[]", b"42", b'"x"', b"\xff\xfe{}", b"{" * 600, b"\x00" * 10]
        )
        | st.binary(max_size=64)
    )


@st.composite
def accepted_unknown_tenant_or_zone(draw: st.DrawFn) -> bytes:
    d = draw(base())
    if draw(st.booleans()):
        d["tenant"] = "stranger-" + draw(ids)
    else:
        d["client_region"] = "mars-" + draw(ids)
    return _dump(d)


FAMILIES: dict[str, tuple[st.SearchStrategy[bytes], frozenset[str]]] = {
    "truncated_json": (truncated(), frozenset({"invalid_json"})),
    "wrong_type": (wrong_type(), frozenset({"wrong_type"})),
    "huge_string": (huge_string(), frozenset({"string_too_long", "too_large"})),
    "nan_infinity": (non_finite(), frozenset({"non_finite", "invalid_json"})),
    "absurd_tokens": (absurd_tokens(), frozenset({"out_of_range"})),
    "unknown_model_region": (unknown_names(), frozenset({"unknown_model", "unknown_region"})),
    "wrong_schema_version": (
        bad_version(),
        frozenset({"unsupported_schema_version", "missing_schema_version", "wrong_type"}),
    ),
    "unknown_field": (unknown_field(), frozenset({"unknown_field"})),
    "duplicate_key": (duplicate_key(), frozenset({"duplicate_key"})),
    "garbage": (
        garbage(),
        frozenset(
            {
                "empty",
                "invalid_json",
                "not_an_object",
                "invalid_utf8",
                "non_finite",
                "too_deep",
                # random bytes can spell a valid object such as b"{}"
                "missing_schema_version",
            }
        ),
    ),
}
ACCEPTED: dict[str, st.SearchStrategy[bytes]] = {
    "unknown_tenant_or_client_region": accepted_unknown_tenant_or_zone(),
}


def collect(strategy: st.SearchStrategy[Any], n: int) -> list[Any]:
    """``n`` examples drawn by hypothesis (deterministic; no example database)."""
    out: list[Any] = []

    @settings(
        max_examples=n,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(x: Any) -> None:
        out.append(x)

    run()
    return out


def flood(n: int, per_family: int) -> list[tuple[str, bytes]]:
    """``n`` hostile messages cycling through every family's hypothesis examples."""
    pools: dict[str, list[bytes]] = {
        name: collect(s, per_family) for name, (s, _) in FAMILIES.items()
    }
    names = sorted(pools)
    return [
        (
            names[i % len(names)],
            pools[names[i % len(names)]][(i // len(names)) % len(pools[names[i % len(names)]])],
        )
        for i in range(n)
    ]
