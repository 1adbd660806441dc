"""gar-pd's calibrated start and per-dataset targets (PolicyConfig.mu_init_by_dataset,
floor_targets): the first decision of a (tenant, dataset) starts at the published mu, mu steps
toward max(F, target) + margin, and records re-derive and chain-check exactly."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from support.core_fixtures import catalog_dict, context, stream
from support.core_fixtures import per_tenant_config as config

from streams.core import (
    Catalog,
    Decision,
    PolicyConfig,
    PolicyConfigError,
    TenantState,
    check_chain,
    get_policy,
    rederive_record,
)
from streams.core.oracle import oracle_lp


def _recs(decisions: list[Decision]) -> list[dict[str, Any]]:
    return [json.loads(json.dumps(d.to_record())) for d in decisions]


def test_first_decision_starts_at_the_published_mu_and_replaces_the_warm_start() -> None:
    mu0 = 3.25
    cfg = config(mu_warm_start=True, explore_z=0.0, mu_init_by_dataset={"gsm8k": mu0})
    cat = Catalog.from_dict(catalog_dict())
    ctx = context(cfg, cat)
    pol = get_policy("gar-pd")
    reqs = stream(5, dataset="gsm8k") + stream(3, dataset="mbpp", seed=1, start_ms=10_000)
    _, ds = pol.decide_batch(ctx, {}, reqs)
    assert ds[0].duals_before.mu == mu0
    # Only the first decision of the pair: later ones continue the chain.
    assert [d.duals_before.mu for d in ds[1:5]] == [d.duals_after.mu for d in ds[:4]]
    # An unlisted dataset keeps the warm start (the request's own price of the floor).
    _, warm = pol.decide_batch(
        context(config(mu_warm_start=True, explore_z=0.0), cat), {}, reqs[5:6]
    )
    assert ds[5].duals_before.mu == warm[0].duals_before.mu
    # A tenant that already has a mu on the dataset is not reset.
    _, (known,) = pol.decide_batch(ctx, {"t": TenantState("t", mu={"gsm8k": 0.5})}, reqs[:1])
    assert known.duals_before.mu == 0.5
    recs = _recs(ds)
    assert check_chain(recs, cfg) == []
    assert all(rederive_record(r, cat, cfg).ok for r in recs)
    # The chain check with the config catches a first decision that did not start there.
    bad = [dict(recs[0], duals_before={**recs[0]["duals_before"], "mu": 1.0}), *recs[1:]]
    assert any("first mu[gsm8k]" in m for m in check_chain(bad, cfg))
    assert check_chain(bad) == []  # without the config the start is not checked


def test_a_published_start_changes_decisions_and_batch_equals_sequential() -> None:
    cat = Catalog.from_dict(catalog_dict())
    pol = get_policy("gar-pd")
    reqs = (
        stream(40, dataset="gsm8k")
        + stream(40, dataset="gsm8k", tenant="u", seed=3)
        + stream(30, dataset="mbpp", tenant="u", seed=4, gap_ms=130)
    )
    reqs.sort(key=lambda r: r.ts_ms)
    lo = config(mu_warm_start=True, explore_z=0.0, mu_init_by_dataset={"gsm8k": 0.0})
    # gsm8k starts high and aims above its floor; mbpp (unlisted) warm-starts.
    hi = lo.with_(mu_init_by_dataset={"gsm8k": 50.0}, floor_targets={"gsm8k": 0.9})
    _, d_lo = pol.decide_batch(context(lo, cat), {}, reqs)
    states: dict[str, TenantState] = {}
    seq = []
    ctx_hi = context(hi, cat)
    for r in reqs:
        new, (d,) = pol.decide_batch(ctx_hi, states, [r])
        states = {**states, **new}
        seq.append(d)
    _, d_hi = pol.decide_batch(ctx_hi, {}, reqs)
    assert [d.to_record() for d in d_hi] == [d.to_record() for d in seq]
    acc_lo = np.mean([d.accuracy for d in d_lo[:10]])
    acc_hi = np.mean([d.accuracy for d in d_hi[:10]])
    assert acc_hi > acc_lo  # a high starting price buys accuracy from the first request


def test_floor_target_raises_the_mu_target_but_not_below_the_floor() -> None:
    cat = Catalog.from_dict(catalog_dict())
    pol = get_policy("gar-pd")
    base = config(mu_warm_start=False, explore_z=0.0, floor_margin=0.01)
    floor = base.floors["gsm8k"]
    assert base.mu_target("gsm8k", floor) == pytest.approx(floor + 0.01)
    up = base.with_(floor_targets={"gsm8k": floor + 0.05, "mbpp": 0.1})
    assert up.mu_target("gsm8k", floor) == pytest.approx(floor + 0.06)
    assert up.mu_target("mbpp", 0.55) == pytest.approx(0.56)  # a target under F keeps F
    st = {"t": TenantState("t", mu={"gsm8k": 2.0})}
    reqs = stream(1, dataset="gsm8k")
    _, (d0,) = pol.decide_batch(context(base, cat), st, reqs)
    _, (d1,) = pol.decide_batch(context(up, cat), st, reqs)
    assert d0.candidate == d1.candidate  # same duals before: same choice
    # mu steps 0.05 x eta_mu further with the higher target.
    assert d1.duals_after.mu - d0.duals_after.mu == pytest.approx(0.05 * base.eta_mu)
    rec = _recs([d1])[0]
    assert rederive_record(rec, cat, up).ok
    assert not rederive_record(rec, cat, base.with_(version=up.version)).ok


def test_new_fields_validate_and_round_trip_and_old_configs_load() -> None:
    cfg = config(mu_init_by_dataset={"gsm8k": 4.5}, floor_targets={"mbpp": 0.6})
    back = PolicyConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg
    old = {
        k: v for k, v in cfg.to_dict().items() if k not in ("mu_init_by_dataset", "floor_targets")
    }
    assert PolicyConfig.from_dict(old).mu_init_by_dataset == {}
    bad: list[dict[str, Any]] = [
        {"mu_init_by_dataset": {"gsm8k": -1.0}},
        {"floor_targets": {"x": 1.5}},
        {"mu_init_by_dataset": {"gsm8k": float("nan")}},
    ]
    for kw in bad:
        with pytest.raises(PolicyConfigError):
            config(**kw)


def test_oracle_floor_dual_is_the_price_of_the_marginal_switch() -> None:
    # Two candidates: 1 g at accuracy 0.5, 3 g at 0.9. Holding 0.7 on average mixes them, and
    # one more unit of accuracy costs (3 - 1) / (0.9 - 0.5) = 5 g.
    c = np.array([[1.0, 3.0]] * 4)
    a = np.array([[0.5, 0.9]] * 4)
    res = oracle_lp(c, a, None, np.zeros(4, dtype=np.int64), np.array([0.7]))
    assert res.floor_dual == pytest.approx([5.0])
    slack = oracle_lp(c, a, None, np.zeros(4, dtype=np.int64), np.array([0.4]))
    assert slack.floor_dual == pytest.approx([0.0])  # a floor that does not bind is free
    pooled = oracle_lp(
        c,
        a,
        None,
        np.zeros(4, dtype=np.int64),
        np.array([0.4]),
        pool_group=np.array([0, 0, 1, 1]),
        pool_floor=np.full(4, 0.7),
    )
    assert pooled.floor_dual == pytest.approx([0.0, 5.0, 5.0])  # group, then pools
