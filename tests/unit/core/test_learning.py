"""gar-pd learning from feedback: optimistic exploration (UCB choice, mean mu step) and
realised correctness folded into the mu dual (fold_feedback), both re-derivable from records."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support.core_fixtures import catalog_dict, context, stream
from support.core_fixtures import per_tenant_config as config

from streams.core import (
    Catalog,
    Completion,
    StateError,
    TenantState,
    check_chain,
    fold_feedback,
    get_policy,
    rederive_record,
)


def _catalog(small_prior: float, strength: float) -> Catalog:
    d = catalog_dict()
    d["models"][0]["correctness_prior"]["gsm8k"] = {"mean": small_prior, "strength": strength}
    return Catalog.from_dict(d)


def test_exploration_tries_an_undervalued_cheap_model_but_steps_mu_on_its_mean() -> None:
    cat = _catalog(0.70, 4.0)  # small-8b: weak prior, 15 points under the 0.85 floor
    req = stream(1, dataset="gsm8k")
    off: dict[str, Any] = {"mu_warm_start": False, "max_accuracy_loss": 0.10}
    plain = get_policy("gar-pd").decide_batch(context(config(explore_z=0.0, **off), cat), {}, req)[
        1
    ][0]
    assert plain.model != "small-8b"  # filtered: 0.70 < floor - max loss
    cfg = config(explore_z=1.5, **off)
    ctx = context(cfg, cat)
    _, (d,) = get_policy("gar-pd").decide_batch(ctx, {}, req)
    assert d.model == "small-8b"  # its optimistic accuracy passes the filter; mu = 0: greenest
    rec = json.loads(json.dumps(d.to_record()))
    mean = 0.70
    assert rec["accuracy_est"] == pytest.approx(mean)
    assert rec["candidates"]["accuracy"][d.candidate] > mean + 0.2
    step = cfg.eta_mu * (rec["floor"] + cfg.floor_margin - mean)
    assert rec["duals_after"]["mu"] == pytest.approx(step)
    assert rederive_record(rec, cat, cfg).ok


def test_feedback_surprise_enters_the_next_mu_step_and_records_rederive() -> None:
    cfg = config(feedback_weight=1.0, explore_z=0.0, mu_warm_start=False)
    cat = Catalog.from_dict(catalog_dict())
    ctx = context(cfg, cat)
    pol = get_policy("gar-pd")
    states, first = pol.decide_batch(ctx, {}, stream(3, dataset="gsm8k"))
    model = first[-1].model
    p = float(ctx.acc_score[cat.model_index[model], cat.dataset_idx("gsm8k")])
    comps = [
        Completion(
            f"c{i}", "t", model, first[-1].region, "gsm8k", 1_000, 50.0, 10, 10, correct=False
        )
        for i in range(2)
    ]
    fed = fold_feedback(ctx, states, comps)
    assert fed["t"].surprise["gsm8k"] == pytest.approx(-2 * p)
    assert fed["t"].mu == states["t"].mu and fed["t"].seq == states["t"].seq
    assert fold_feedback(context(config(feedback_weight=0.0), cat), states, comps) == {}
    new_states, second = pol.decide_batch(
        ctx, {**states, **fed}, stream(2, dataset="gsm8k", start_ms=2_000, seed=1)
    )
    d = second[0]
    acc_k = float(ctx.estimate([stream(1)[0]]).accuracy[0, d.candidate])
    assert d.feedback == pytest.approx(-2 * p)
    recs = [json.loads(json.dumps(x.to_record())) for x in (*first, *second)]
    assert recs[3]["accuracy_est"] == pytest.approx(acc_k - 2 * p)
    mu_b = recs[3]["duals_before"]["mu"]
    want = min(
        max(mu_b + cfg.eta_mu * (recs[3]["floor"] + cfg.floor_margin - (acc_k - 2 * p)), 0.0),
        cfg.mu_max,
    )
    assert recs[3]["duals_after"]["mu"] == pytest.approx(want)
    assert recs[4]["accuracy_est"] == pytest.approx(
        float(ctx.estimate([stream(1)[0]]).accuracy[0, second[1].candidate])
    )  # consumed once
    assert "gsm8k" not in new_states["t"].surprise
    assert check_chain(recs) == []
    for rec in recs:
        assert rederive_record(rec, cat, cfg).ok


def test_surprise_round_trips_and_is_validated() -> None:
    st = TenantState("t", surprise={"gsm8k": -0.5})
    assert TenantState.from_dict(json.loads(json.dumps(st.to_dict()))) == st
    with pytest.raises(StateError):
        TenantState.from_dict({**st.to_dict(), "surprise": {"gsm8k": float("nan")}})


def test_warm_start_prices_the_floor_on_the_first_request_only() -> None:
    cfg = config(mu_warm_start=True, explore_z=0.0)
    cold_cfg = config(mu_warm_start=False, explore_z=0.0)
    cat = Catalog.from_dict(catalog_dict())
    ctx = context(cfg, cat)
    pol = get_policy("gar-pd")
    reqs = stream(2, dataset="gsm8k")
    _, cold = pol.decide_batch(context(cold_cfg, cat), {}, reqs[:1])
    _, (first, second) = pol.decide_batch(ctx, {}, reqs)
    assert cold[0].duals_before.mu == 0.0 and cold[0].accuracy < cfg.floors["gsm8k"]
    target = cfg.floors["gsm8k"] + cfg.floor_margin
    assert first.duals_before.mu > 0.0
    assert first.accuracy >= target  # the warm mu already buys a floor-meeting candidate
    # The least such mu: a hair below it the argmin is still under the target.
    lower = TenantState("t", mu={"gsm8k": first.duals_before.mu * (1 - 1e-6)})
    _, (under,) = pol.decide_batch(context(cold_cfg, cat), {"t": lower}, reqs[:1])
    assert under.accuracy < target
    assert second.duals_before.mu == first.duals_after.mu  # only a missing mu is warmed
    recs = [json.loads(json.dumps(d.to_record())) for d in (first, second)]
    assert check_chain(recs) == []
    assert all(rederive_record(r, cat, cfg).ok for r in recs)


def test_warmup_boosts_a_new_streams_first_mu_steps_and_records_rederive() -> None:
    gain, n = 3.0, 4
    cfg = config(mu_warm_start=False, explore_z=0.0, mu_warmup_gain=gain, mu_warmup_n=n)
    plain_cfg = config(mu_warm_start=False, explore_z=0.0)
    cat = Catalog.from_dict(catalog_dict())
    ctx = context(cfg, cat)
    pol = get_policy("gar-pd")
    reqs = stream(n + 2, dataset="gsm8k")
    states, ds = pol.decide_batch(ctx, {}, reqs)
    _, plain = pol.decide_batch(context(plain_cfg, cat), {}, reqs[:1])
    target = cfg.floors["gsm8k"] + cfg.floor_margin
    recs = [json.loads(json.dumps(d.to_record())) for d in ds]
    for j, rec in enumerate(recs):
        p = float(ctx.estimate([reqs[j]]).accuracy[0, ds[j].candidate])
        factor = 1.0 + gain * (n - j) / n if j < n else 1.0  # linear decay, then normal
        mu_b = rec["duals_before"]["mu"]
        want = min(max(mu_b + factor * cfg.eta_mu * (target - p), 0.0), cfg.mu_max)
        assert rec["duals_after"]["mu"] == pytest.approx(want)
        # The boost is carried by the counted accuracy, which the record holds.
        assert rec["accuracy_est"] == pytest.approx(target - factor * (target - p))
    assert ds[0].duals_after.mu == pytest.approx((1 + gain) * plain[0].duals_after.mu)
    assert "gsm8k" not in states["t"].warmup  # used up
    assert check_chain(recs) == []
    for rec in recs:
        assert rederive_record(rec, cat, cfg).ok
    # Only a new (tenant, dataset) warms up: a known mu takes normal steps.
    _, (known,) = pol.decide_batch(ctx, {"t": TenantState("t", mu={"gsm8k": 1.0})}, reqs[:1])
    p0 = float(ctx.estimate(reqs[:1]).accuracy[0, known.candidate])
    assert known.duals_after.mu == pytest.approx(1.0 + cfg.eta_mu * (target - p0))


def test_warmup_state_round_trips_and_old_states_load() -> None:
    st = TenantState("t", mu={"gsm8k": 2.0}, warmup={"gsm8k": 7})
    assert TenantState.from_dict(json.loads(json.dumps(st.to_dict()))) == st
    old = {k: v for k, v in st.to_dict().items() if k != "warmup"}  # written before the field
    assert TenantState.from_dict(old).warmup == {}
    with pytest.raises(StateError):
        TenantState.from_dict({**st.to_dict(), "warmup": {"gsm8k": -1}})
