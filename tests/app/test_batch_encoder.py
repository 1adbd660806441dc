"""The hot path's columnar record encoder writes exactly the bytes of the record builders."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops.decision_run import CATALOG, T0_MS, TENANTS

from streams.app import records
from streams.app.records import BatchEncoder, decision_bytes, dispatch_bytes, fragment_rows
from streams.app.router import RawMessage
from streams.core import (
    Catalog,
    IntensityReading,
    IntensityView,
    PolicyConfig,
    Request,
    RoutingContext,
    get_policy,
)
from streams.core.decision import Decision

POLICIES = ["gar-pd", "gar-fixed", "gar-eps", "carbon-greedy", "always-largest"]


def _requests(n: int, seed: int) -> list[Request]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        extra: dict[str, object] = {}
        if i % 5 == 1:
            extra["allow_models"] = ("small-8b", "mid-27b")
        if i % 7 == 2:
            extra["deny_regions"] = ("us-east",)
        if i % 11 == 3:
            extra["floor"] = 0.9
        out.append(Request(
            request_id=f"r{seed}-{i}", tenant=TENANTS[i % 2],
            dataset=("gsm8k", "mbpp", "other")[i % 3],
            input_tokens=int(rng.integers(1, 5000)),
            output_tokens_est=None if i % 4 else int(rng.integers(0, 900)),
            client_region=("eu", "us", "ap")[i % 3], ts_ms=T0_MS + 1000 * i, **extra))  # type: ignore[arg-type]
    return out


def _decide(policy: str, config: PolicyConfig, n: int, seed: int) -> list[Decision]:
    catalog = Catalog.from_dict(CATALOG)
    view = IntensityView.from_readings([
        IntensityReading("SE", 23.456789, T0_MS - 1_000, "test", source_offset=7),
    ])  # US-MIDA-PJM has no reading: stale fallback, age -1
    ctx = RoutingContext.build(catalog, config, None, view)
    reqs = [r for r in _requests(n, seed) if ctx.validate(r) is None]
    _, decisions = get_policy(policy).decide_batch(ctx, {}, reqs)
    return decisions


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("config", [
    PolicyConfig(budgets_g={"acme": 0.05}, latency_slo_ms=8_000.0),
    PolicyConfig(budgets_g={"acme": 0.01, "globex": 0.02}, budget_hard=True),
    PolicyConfig(explore_z=1.0),
], ids=["soft-budget", "hard-budget", "explore"])
def test_encoder_bytes_equal_the_record_builders(policy: str, config: PolicyConfig) -> None:
    decisions = _decide(policy, config, 60, seed=1)
    enc = BatchEncoder()
    for j, dec in enumerate(decisions):
        req = dec.shared.est.requests[dec.row]
        msg = RawMessage("t.requests", j % 2, 100 + j, None, b"k", b"v")
        model, got_decision, got_dispatch = enc.encode(dec, req, msg)
        record = dec.to_record()
        assert model == record["model"]
        assert got_decision == decision_bytes(record, msg)
        assert got_dispatch == dispatch_bytes(req, record)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e-300, max_value=1e-300),
), min_size=3, max_size=3), min_size=1, max_size=6))
def test_fragment_rows_match_orjson_of_python_floats(rows: list[list[float]]) -> None:
    m = np.asarray(rows, dtype=np.float64)
    got = [orjson.dumps(f) for f in fragment_rows(m)]
    assert got == [orjson.dumps(r) for r in m.tolist()]
    # non-contiguous input (a column slice) is encoded the same way
    wide = np.repeat(m, 2, axis=1)[:, ::2]
    assert [orjson.dumps(f) for f in fragment_rows(wide)] == got
    # repeated rows (encoded once, shared) keep their positions
    twice = np.vstack([m, m[::-1], m])
    assert [orjson.dumps(f) for f in fragment_rows(twice)] == [
        orjson.dumps(r) for r in twice.tolist()]


def test_fragment_rows_survive_a_row_hash_collision(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every row hashes alike: the bitwise check rejects the grouping and the bytes fallback
    still keeps distinct rows (incl. 0.0 vs -0.0) apart."""
    monkeypatch.setattr(records, "_HASH_MULT", np.zeros(8, dtype=np.uint64))
    m = np.array([[1.0, 0.0], [1.0, -0.0], [1.0, 0.0], [np.nan, 2.5]])
    assert [orjson.dumps(f) for f in fragment_rows(m)] == [orjson.dumps(r) for r in m.tolist()]


def test_fragment_rows_of_empty_matrices() -> None:
    assert fragment_rows(np.zeros((0, 4))) == []
    assert [orjson.dumps(f) for f in fragment_rows(np.zeros((2, 0)))] == [b"[]", b"[]"]


def test_encoder_keeps_batches_apart() -> None:
    """Decisions of two core batches (the one-by-one fallback makes one per request)."""
    a = _decide("gar-pd", PolicyConfig(), 10, seed=2)
    b = _decide("gar-pd", PolicyConfig(), 10, seed=3)
    enc = BatchEncoder()
    msg = RawMessage("t.requests", 0, 1, None, None, None)
    for dec in [*a[:3], *b[:3], *a[3:]]:
        req = dec.shared.est.requests[dec.row]
        assert enc.encode(dec, req, msg)[1] == decision_bytes(dec.to_record(), msg)
