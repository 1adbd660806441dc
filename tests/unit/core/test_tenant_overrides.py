"""Per-tenant overrides of floors, SLO, mode and budget: the effective config, the decisions
made under it (and recorded with its version) and their re-derivation from the record."""

from __future__ import annotations

import orjson
import pytest
from support.worker import SMALL_CATALOG

from streams.core import Catalog, PolicyConfig, RoutingContext, get_policy
from streams.core.errors import PolicyConfigError
from streams.core.inputs import Request
from streams.core.policy_config import PRESETS, TenantOverride, split_version
from streams.core.replay import rederive_record

CATALOG = Catalog.from_dict(SMALL_CATALOG)
T0 = 1_685_577_600_000


def config(**overrides: object) -> PolicyConfig:
    return PolicyConfig.from_dict(
        {
            "version": "7",
            "floors": {"gsm8k": 0.8},
            "latency_slo_ms": 5000.0,
            "default_budget_g": 1.0,
            "tenant_overrides": overrides,
        }
    )


def requests(tenants: list[str], n: int) -> list[Request]:
    return [
        Request(
            request_id=f"r{i}",
            tenant=tenants[i % len(tenants)],
            dataset="gsm8k",
            input_tokens=150,
            output_tokens_est=None,
            client_region="eu",
            ts_ms=T0 + 1_000 * i,
        )
        for i in range(n)
    ]


def test_for_tenant_applies_the_mode_preset_then_the_fields() -> None:
    cfg = config(acme={"version": "3", "mode": "strict", "floors": {"gsm8k": 0.9},
                       "latency_slo_ms": 2000.0, "budget_g": 0.5})  # fmt: skip
    eff = cfg.for_tenant("acme")
    assert eff.version == "7+acme@3" and split_version(eff.version) == ("7", "acme", "3")
    assert eff.mode == "strict"
    for field, value in PRESETS["strict"].items():
        assert getattr(eff, field) == value, field
    assert eff.floors == {"gsm8k": 0.9}
    assert eff.latency_slo_ms == 2000.0
    assert eff.budget_for("acme") == 0.5
    assert eff.tenant_overrides == {}
    # Other tenants keep the global config, the very same object.
    assert cfg.for_tenant("globex") is cfg


def test_overrides_round_trip_and_are_checked() -> None:
    cfg = config(acme={"version": "1", "budget_g": 2.0})
    assert PolicyConfig.from_dict(orjson.loads(orjson.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(PolicyConfigError):
        TenantOverride(version="1", floors={"gsm8k": 1.5})
    with pytest.raises(PolicyConfigError):
        TenantOverride(version="1", mode="fast")  # type: ignore[arg-type]
    with pytest.raises(PolicyConfigError):
        config(acme={"version": "1", "colour": "green"})


def test_a_batch_decides_each_tenant_under_its_own_config() -> None:
    cfg = config(acme={"version": "2", "floors": {"gsm8k": 0.93}, "latency_slo_ms": 800.0})
    ctx = RoutingContext.build(CATALOG, cfg)
    pol = get_policy("gar-pd")
    reqs = requests(["acme", "globex"], 40)
    states, decisions = pol.decide_batch(ctx, {}, reqs)
    by_tenant = {d.request_id: d for d in decisions}
    assert [d.request_id for d in decisions] == [r.request_id for r in reqs]  # order kept
    for r in reqs:
        rec = by_tenant[r.request_id].to_record()
        if r.tenant == "acme":
            assert rec["policy_version"] == "7+acme@2"
            assert rec["latency_cap_ms"] == 800.0
            assert rec["floor"] >= 0.93
        else:
            assert rec["policy_version"] == "7"
            assert rec["latency_cap_ms"] == 5000.0
    # The same as deciding each tenant alone under its effective config.
    for tenant in ("acme", "globex"):
        own = [r for r in reqs if r.tenant == tenant]
        alone = RoutingContext.build(CATALOG, cfg.for_tenant(tenant))
        st, ds = pol.decide_batch(alone, {}, own)
        assert [d.to_record() for d in ds] == [by_tenant[r.request_id].to_record() for r in own]
        assert st[tenant] == states[tenant]


def test_a_tenant_budget_moves_its_carbon_dual_only() -> None:
    cfg = config(acme={"version": "1", "budget_g": 1e-6})
    ctx = RoutingContext.build(CATALOG, cfg)
    states, _ = get_policy("gar-pd").decide_batch(ctx, {}, requests(["acme", "globex"], 60))
    assert states["acme"].lam > 0.0
    assert states["globex"].lam == 0.0


@pytest.mark.parametrize("mode", ["strict", "balanced", "green"])
def test_decisions_under_an_override_rederive_from_their_record(mode: str) -> None:
    cfg = config(acme={"version": "4", "mode": mode, "floors": {"gsm8k": 0.85},
                       "budget_g": 0.05})  # fmt: skip
    ctx = RoutingContext.build(CATALOG, cfg)
    pol = get_policy("gar-pd")
    states: dict = {}
    for r in requests(["acme", "globex"], 50):
        new, decisions = pol.decide_batch(ctx, states, [r])
        states.update(new)
        rec = orjson.loads(orjson.dumps(decisions[0].to_record()))
        assert rederive_record(rec, CATALOG, cfg.for_tenant(r.tenant)).mismatches == ()
