"""Hypothesis strategies for the edges tests: valid records and hostile JSON."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/@#+=-"
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"


def names(max_size: int = 64) -> st.SearchStrategy[str]:
    return st.builds(
        lambda head, tail: head + tail,
        st.sampled_from(ALNUM),
        st.text(NAME_CHARS, max_size=max_size - 1),
    )


ts_ms = st.integers(946_684_800_000, 4_102_444_799_999)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def valid_requests(draw: st.DrawFn, models: list[str], regions: list[str]) -> dict[str, Any]:
    d: dict[str, Any] = {
        "schema_version": 1,
        "request_id": draw(names(128)),
        "tenant": draw(names()),
        "dataset": draw(names()),
        "input_tokens": draw(st.integers(1, 2_000_000)),
        "client_region": draw(names()),
        "ts_ms": draw(ts_ms),
    }
    if draw(st.booleans()):
        d["output_tokens_est"] = draw(st.none() | st.integers(0, 262_144))
    if draw(st.booleans()):
        d["floor"] = draw(st.none() | st.floats(0.0, 1.0))
    if draw(st.booleans()):
        d["latency_cap_ms"] = draw(st.none() | st.floats(0.001, 3_600_000.0))
    if draw(st.booleans()):
        d["deny_models"] = draw(st.lists(st.sampled_from(models), unique=True, max_size=2))
    if draw(st.booleans()):
        d["allow_regions"] = draw(st.lists(st.sampled_from(regions), unique=True, min_size=1))
    return d


@st.composite
def valid_completions(draw: st.DrawFn, models: list[str], regions: list[str]) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "request_id": draw(names(128)),
        "tenant": draw(names()),
        "model": draw(st.sampled_from(models)),
        "region": draw(st.sampled_from(regions)),
        "dataset": draw(names()),
        "ts_ms": draw(ts_ms),
        "latency_ms": draw(st.floats(0.0, 3_600_000.0)),
        "input_tokens": draw(st.integers(0, 2_000_000)),
        "output_tokens": draw(st.integers(0, 262_144)),
        "energy_j": draw(st.none() | st.floats(0.0, 1e8)),
        "correct": draw(st.none() | st.booleans()),
    }


@st.composite
def valid_intensities(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "schema_version": 1,
        "zone": draw(names()),
        "intensity_g_per_kwh": draw(st.floats(0.0, 5000.0)),
        "ts_ms": draw(ts_ms),
        "updated_at_ms": draw(st.none() | ts_ms),
        "source": draw(names()),
        "signal_type": draw(st.sampled_from(["average", "marginal"])),
        "estimated": draw(st.booleans()),
        "estimation_method": draw(st.none() | st.text(max_size=64)),
        "emission_factor": draw(st.sampled_from(["lifecycle", "direct", None])),
    }


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A valid record with one field replaced, dropped or added."""
    d = dict(draw(base))
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    key = draw(st.sampled_from(sorted(d)))
    if action == "replace":
        d[key] = draw(json_values)
    elif action == "drop":
        del d[key]
    else:
        d[draw(st.text(max_size=12))] = draw(json_values)
    return d
