"""The hot path's decisions.v2 encoder: schema-valid records, chained per tenant by their MAC,
unchanged dispatch records, and a key that never shows in a repr."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from support.decision_run import CATALOG, T0_MS, TENANTS

from streams.app.record_bytes import DecisionEncoder, dispatch_bytes
from streams.app.router import RawMessage
from streams.core import (
    Catalog,
    IntensityReading,
    IntensityView,
    PolicyConfig,
    Request,
    RoutingContext,
    TenantState,
    get_policy,
)
from streams.core.decision import Decision
from streams.core.record_v2 import V2Rows, record_v2
from streams.schema import validation_errors
from streams.schema.decision_mac import DecisionSigner, split_mac, verify

POLICIES = ["gar-pd", "gar-fixed", "gar-target", "carbon-greedy", "always-largest"]
KEY = b"0123456789abcdef-test-key"


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
        out.append(
            Request(
                request_id=f"r{seed}-{i}",
                tenant=TENANTS[i % 2],
                dataset=("gsm8k", "mbpp", "other")[i % 3],
                input_tokens=int(rng.integers(1, 5000)),
                output_tokens_est=None if i % 4 else int(rng.integers(0, 900)),
                client_region=("eu", "us", "ap")[i % 3],
                ts_ms=T0_MS + 1000 * i,
                **extra,
            )
        )  # type: ignore[arg-type]
    return out


def _decide(policy: str, config: PolicyConfig, n: int, seed: int) -> list[Decision]:
    catalog = Catalog.from_dict(CATALOG)
    view = IntensityView.from_readings(
        [IntensityReading("SE", 23.456789, T0_MS - 1_000, "test", source_offset=7)]
    )  # US-MIDA-PJM has no reading: stale fallback, intensity_offset null
    ctx = RoutingContext.build(catalog, config, None, view)
    reqs = [r for r in _requests(n, seed) if ctx.validate(r) is None]
    _, decisions = get_policy(policy).decide_batch(ctx, {}, reqs)
    return decisions


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize(
    "config",
    [
        PolicyConfig(budgets_g={"acme": 0.05}, latency_slo_ms=8_000.0),
        PolicyConfig(budgets_g={"acme": 0.01, "globex": 0.02}, budget_hard=True),
        PolicyConfig(explore_z=1.0, feedback_weight=0.3),
    ],
    ids=["soft-budget", "hard-budget", "explore"],
)
def test_records_are_v2_chained_per_tenant_and_dispatch_is_unchanged(
    policy: str, config: PolicyConfig
) -> None:
    decisions = _decide(policy, config, 60, seed=1)
    start = {"acme": TenantState("acme", chain="k0:" + "A" * 22)}
    enc = DecisionEncoder("C" * 22, DecisionSigner("k1", KEY), start)
    previous = {"acme": "k0:" + "A" * 22, "globex": ""}
    for j, dec in enumerate(decisions):
        req = dec.shared.est.requests[dec.row]
        msg = RawMessage("t.requests", j % 2, 100 + j, None, b"k", b"v")
        model, value, dispatch = enc.encode(dec, req, msg)
        record = orjson.loads(value)
        assert validation_errors("decisions", record) == []
        assert model == record["model"] == dec.model and record["request_offset"] == 100 + j
        body_mac = split_mac(value)
        assert body_mac is not None
        body, mac = body_mac
        assert mac is not None and verify({"k1": KEY}, body, mac, previous[req.tenant]) is None
        assert verify({"k1": KEY}, body, mac, "") is None or previous[req.tenant] != ""
        previous[req.tenant] = mac
        expect = record_v2(dec, V2Rows(dec.shared), "C" * 22) | {"request_offset": 100 + j}
        assert body == orjson.dumps(expect)
        assert dispatch == dispatch_bytes(req, dec.to_record(), dec.candidate)
    assert enc.heads == {t: previous[t] for t in enc.heads}


def test_a_changed_byte_reordering_or_the_wrong_key_fails_verification() -> None:
    decisions = _decide("gar-pd", PolicyConfig(), 6, seed=2)
    enc = DecisionEncoder("C" * 22, DecisionSigner("k1", KEY), {})
    values = []
    for j, dec in enumerate(decisions):
        req = dec.shared.est.requests[dec.row]
        values.append(enc.encode(dec, req, RawMessage("t", 0, j, None, b"k", b"v"))[1])
    acme = [v for v in values if b'"tenant":"acme"' in v]
    b0, m0 = split_mac(acme[0])  # type: ignore[misc]
    b1, m1 = split_mac(acme[1])  # type: ignore[misc]
    assert m0 is not None and m1 is not None
    assert verify({"k1": KEY}, b0, m0, "") is None
    assert verify({"k1": KEY}, b1, m1, m0) is None
    assert verify({"k1": KEY}, b1, m1, "") == "MAC does not match"  # reordered / deleted
    assert verify({"k1": KEY}, b0.replace(b'"co2_g":', b'"co2_g":1', 1), m0, "") is not None
    assert verify({"k1": b"another key of 16+ bytes"}, b0, m0, "") == "MAC does not match"
    assert verify({"k2": KEY}, b0, m0, "") == "no key with id 'k1'"


def test_unsigned_records_say_so_and_the_signer_never_shows_its_key() -> None:
    dec = _decide("gar-pd", PolicyConfig(), 1, seed=3)[0]
    req = dec.shared.est.requests[dec.row]
    _, value, _ = DecisionEncoder("C" * 22, None, {}).encode(
        dec, req, RawMessage("t", 0, 5, None, None, None)
    )
    assert orjson.loads(value)["mac"] is None and split_mac(value) == (value[:-12] + b"}", None)
    signer = DecisionSigner("k1", KEY)
    assert KEY.decode() not in repr(signer) and KEY.decode() not in str(signer)
    with pytest.raises(ValueError):
        DecisionSigner("k1", b"short")
    with pytest.raises(ValueError):
        DecisionSigner("bad id!", KEY)
