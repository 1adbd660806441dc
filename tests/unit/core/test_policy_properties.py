"""Property tests over every registered policy: feasible when possible, duals >= 0, candidate
order does not matter, and a batch equals the same requests decided one at a time."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.core_fixtures import catalog_dict

from streams.core import (
    Catalog,
    IntensityReading,
    IntensityView,
    PolicyConfig,
    Reason,
    Request,
    RoutingContext,
    TenantState,
    compare_records,
    get_policy,
    policy_names,
)

MODELS = ["small-8b", "mid-27b", "large-70b"]
REGIONS = ["eu-north", "us-east", "ap-south"]
GAR = {"gar-pd", "gar-fixed", "gar-eps", "gar-target"}
# No shrink phase: shrinking these composite scenarios can take minutes; failures still print
# the (unshrunk) example and its seed.
PROPS = settings(
    max_examples=20,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 25))
    ts = 0
    reqs: list[Request] = []
    for i in range(n):
        ts = max(0, ts + draw(st.integers(-2_000, 20_000)))
        over: dict[str, Any] = {}
        if draw(st.booleans()):
            over["floor"] = draw(st.floats(0.0, 1.0))
        if draw(st.booleans()):
            over["latency_cap_ms"] = draw(st.floats(500.0, 20_000.0))
        if draw(st.integers(0, 3)) == 0:
            over["allow_models"] = tuple(
                draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=3, unique=True))
            )
        if draw(st.integers(0, 3)) == 0:
            over["deny_regions"] = tuple(
                draw(st.lists(st.sampled_from(REGIONS), max_size=2, unique=True))
            )
        reqs.append(
            Request(
                f"r{i}",
                draw(st.sampled_from(["a", "b"])),
                draw(st.sampled_from(["gsm8k", "mbpp", "unknown-ds"])),
                draw(st.integers(0, 5_000)),
                draw(st.none() | st.integers(0, 2_000)),
                draw(st.sampled_from(["eu", "us", "mars"])),
                ts,
                **over,
            )
        )
    budget = draw(st.none() | st.floats(0.0005, 1.0))
    cfg = PolicyConfig.preset(
        draw(st.sampled_from(["strict", "balanced", "green"])),
        floors={"gsm8k": draw(st.floats(0.5, 0.97)), "mbpp": draw(st.floats(0.3, 0.75))},
        adaptive_floor_alpha=draw(st.none() | st.floats(0.5, 1.0)),
        latency_slo_ms=draw(st.floats(2_000.0, 12_000.0)),
        default_budget_g=budget,
        budget_window_ms=60_000,
        budget_buckets=60,
        intensity_max_age_ms=draw(st.integers(1_000, 100_000)),
        eta_nu=draw(st.floats(0.0, 2.0)),
        mu_init=draw(st.floats(0.0, 5.0)),
        explore_z=draw(st.sampled_from([0.0, 1.0]) | st.floats(0.0, 3.0)),
        mu_warmup_gain=draw(st.sampled_from([0.0, 4.0])),
        mu_warmup_n=draw(st.integers(0, 8)),
        mu_init_by_dataset=draw(st.sampled_from([{}, {"gsm8k": 3.0}, {"mbpp": 0.0, "*": 150.0}])),
        floor_targets=draw(st.sampled_from([{}, {"gsm8k": 0.95}, {"mbpp": 0.2}])),
    )
    zones = {"SE": 1, "US-MIDA-PJM": 2, "IN-WE": 3}
    readings = [
        IntensityReading(
            z, draw(st.floats(0.0, 1_000.0)), draw(st.integers(0, 50_000)), source_offset=o
        )
        for z, o in zones.items()
        if draw(st.integers(0, 5)) > 0
    ]
    states = {
        t: TenantState(
            t,
            lam=draw(st.floats(0.0, 10.0)),
            mu={"gsm8k": draw(st.floats(0.0, 30.0))},
            nu=draw(st.floats(0.0, 5.0)),
            surprise=draw(st.dictionaries(st.sampled_from(["gsm8k", "*"]), st.floats(-3.0, 3.0))),
            warmup=draw(st.dictionaries(st.sampled_from(["gsm8k", "mbpp"]), st.integers(1, 8))),
        )
        for t in ("a", "b")
        if draw(st.booleans())
    }
    return {"requests": reqs, "config": cfg, "readings": readings, "states": states}


def _ctx(sc: dict[str, Any], catalog: Catalog | None = None) -> RoutingContext:
    cat = catalog or Catalog.from_dict(catalog_dict())
    return RoutingContext.build(
        cat, sc["config"], None, IntensityView.from_readings(sc["readings"])
    )


def _valid(ctx: RoutingContext, reqs: list[Request]) -> list[Request]:
    ok, _ = ctx.split_valid(reqs)
    return ok


def _check_duals(d: Any) -> None:
    for duals in (d.duals_before, d.duals_after):
        assert duals.lam >= 0 and duals.mu >= 0 and duals.nu >= 0


@pytest.mark.parametrize("policy", policy_names())
@PROPS
@given(sc=scenarios())
def test_feasible_when_possible_and_duals_nonnegative(policy: str, sc: dict[str, Any]) -> None:
    ctx = _ctx(sc)
    reqs = _valid(ctx, sc["requests"])
    states, decisions = get_policy(policy).decide_batch(ctx, sc["states"], reqs)
    assert len(decisions) == len(reqs)
    est = decisions[0].shared.est if decisions else None
    for i, d in enumerate(decisions):
        assert d.request_id == reqs[i].request_id
        assert est is not None and est.eligible[i, d.candidate]  # overrides are never broken
        if policy in GAR:
            if d.feasible.any():
                assert d.reason == Reason.OPTIMAL and d.feasible[d.candidate]
            else:
                assert d.reason == Reason.INFEASIBLE_FALLBACK
        _check_duals(d)
        rec = d.to_record()
        assert all(np.isfinite(rec["candidates"]["co2_g"]))
    for s in states.values():
        assert s.lam >= 0 and s.nu >= 0 and all(v >= 0 for v in s.mu.values())


def _permuted_catalog(seed: int) -> Catalog:
    d = copy.deepcopy(catalog_dict())
    rng = np.random.default_rng(seed)
    deps = [{"model": m, "region": r} for m in MODELS for r in REGIONS]
    d["deployments"] = [deps[j] for j in rng.permutation(len(deps))]
    d["models"] = [d["models"][j] for j in rng.permutation(len(d["models"]))]
    d["regions"] = [d["regions"][j] for j in rng.permutation(len(d["regions"]))]
    return Catalog.from_dict(d)


@pytest.mark.parametrize("policy", policy_names())
@PROPS
@given(sc=scenarios(), seed=st.integers(0, 1_000))
def test_candidate_order_does_not_change_decisions(
    policy: str, sc: dict[str, Any], seed: int
) -> None:
    ctx_a = _ctx(sc)
    ctx_b = _ctx(sc, _permuted_catalog(seed))
    reqs = _valid(ctx_a, sc["requests"])
    sa, da = get_policy(policy).decide_batch(ctx_a, sc["states"], reqs)
    sb, db = get_policy(policy).decide_batch(ctx_b, sc["states"], reqs)
    assert [(d.model, d.region, d.reason) for d in da] == [
        (d.model, d.region, d.reason) for d in db
    ]
    for x, y in zip(da, db, strict=True):
        assert x.duals_after.lam == pytest.approx(y.duals_after.lam, rel=1e-9, abs=1e-12)
        assert x.duals_after.mu == pytest.approx(y.duals_after.mu, rel=1e-9, abs=1e-12)
        assert x.co2_g == pytest.approx(y.co2_g, rel=1e-12)
    assert sa.keys() == sb.keys()


def _same_records(a: list[Any], b: list[Any]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        rx, ry = x.to_record(), y.to_record()
        assert compare_records(rx, ry, rel_tol=0.0) == []
        assert rx == ry


@pytest.mark.parametrize("policy", policy_names())
@PROPS
@given(sc=scenarios(), cut=st.integers(0, 25))
def test_batch_equals_sequential(policy: str, sc: dict[str, Any], cut: int) -> None:
    ctx = _ctx(sc)
    reqs = _valid(ctx, sc["requests"])
    pol = get_policy(policy)
    states_batch, batch = pol.decide_batch(ctx, sc["states"], reqs)
    states: dict[str, TenantState] = dict(sc["states"])
    one_by_one = []
    for r in reqs:
        new, ds = pol.decide_batch(ctx, states, [r])
        states.update(new)
        one_by_one += ds
    _same_records(batch, one_by_one)
    # Two arbitrary sub-batches also agree.
    states2: dict[str, TenantState] = dict(sc["states"])
    split = []
    for part in (reqs[:cut], reqs[cut:]):
        new, ds = pol.decide_batch(ctx, states2, part)
        states2.update(new)
        split += ds
    _same_records(batch, split)
    for t, s in states_batch.items():
        assert states[t] == s == states2[t]


@pytest.mark.parametrize(
    ("mode", "warmup_gain"), [("balanced", 0.0), ("green", 0.0), ("balanced", 4.0)]
)
def test_large_batch_equals_sequential_with_moving_duals(mode: str, warmup_gain: float) -> None:
    """Many tenants, duals moving on every request: the batch's speculative argmin must give
    exactly the one-at-a-time records."""
    rng = np.random.default_rng(7)
    cfg = PolicyConfig.preset(
        mode,
        floors={"gsm8k": 0.86, "mbpp": 0.6},  # type: ignore[arg-type]
        adaptive_floor_alpha=None,
        default_budget_g=0.05,
        budget_window_ms=60_000,
        budget_buckets=60,
        eta_nu=0.5,
        latency_target_ratio=0.5,
        intensity_max_age_ms=10**12,
        mu_warmup_gain=warmup_gain,
        mu_warmup_n=40,
    )
    ctx = RoutingContext.build(
        Catalog.from_dict(catalog_dict()),
        cfg,
        None,
        IntensityView.from_readings(
            [
                IntensityReading("SE", 40.0, 0),
                IntensityReading("US-MIDA-PJM", 400.0, 0),
                IntensityReading("IN-WE", 700.0, 0),
            ]
        ),
    )
    reqs = [
        Request(
            f"q{i}",
            f"t{rng.integers(20)}",
            str(rng.choice(["gsm8k", "mbpp"])),
            int(rng.integers(50, 3_000)),
            None,
            str(rng.choice(["eu", "us"])),
            i * 20,
        )
        for i in range(1_500)
    ]
    pol = get_policy("gar-pd")
    states: dict[str, TenantState] = {}
    one = []
    for r in reqs:
        new, ds = pol.decide_batch(ctx, states, [r])
        states.update(new)
        one += ds
    batch_states, batch = pol.decide_batch(ctx, {}, reqs)
    _same_records(batch, one)
    assert batch_states == {t: states[t] for t in batch_states}
    assert len({d.model for d in batch}) > 1


@st.composite
def raw_batches(draw: st.DrawFn) -> tuple[Any, ...]:
    """Arbitrary estimate matrices with many exact ties (values on a coarse grid)."""
    n = draw(st.integers(1, 60))
    k = 9
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    grid = draw(st.sampled_from([2, 4, 50]))
    co2 = rng.integers(1, grid + 1, (n, k)) / grid * 0.05
    acc = rng.integers(0, grid + 1, (n, k)) / grid
    lat = rng.integers(1, grid + 1, (n, k)) / grid * 8_000.0
    eligible = rng.random((n, k)) < 0.8
    eligible[np.arange(n), rng.integers(0, k, n)] = True
    tenants = [f"t{j}" for j in rng.integers(0, 3, n)]
    mode = draw(st.sampled_from(["strict", "balanced", "green"]))
    cfg = PolicyConfig.preset(
        mode,
        default_budget_g=draw(st.floats(0.01, 1.0)),  # type: ignore[arg-type]
        budget_window_ms=60_000,
        budget_buckets=60,
        eta_lambda=draw(st.floats(0.0, 3.0)),
        eta_mu=draw(st.floats(0.0, 3.0)),
        eta_nu=draw(st.floats(0.0, 3.0)),
        latency_target_ratio=draw(st.floats(0.1, 1.0)),
        mu_init=draw(st.floats(0.0, 3.0)),
    )
    return n, co2, acc, lat, eligible, tenants, cfg


@settings(max_examples=200, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(raw=raw_batches())
def test_gar_pd_speculative_argmin_is_exact_under_ties(raw: tuple[Any, ...]) -> None:
    n, co2, acc, lat, eligible, tenants, cfg = raw
    cat = Catalog.from_dict(catalog_dict())
    ctx = RoutingContext.build(cat, cfg)
    reqs = [Request(f"r{i}", tenants[i], "gsm8k", 1, None, "eu", i * 500) for i in range(n)]
    base = ctx.estimate(reqs)
    cap = base.latency_cap_ms
    est = type(base)(
        reqs,
        base.dataset_idx,
        base.ts_ms,
        base.floor,
        cap,
        co2,
        acc,
        lat,
        eligible,
        lat <= cap[:, None],
        base.intensity_g_per_kwh,
        base.intensity_age_ms,
        base.intensity_stale,
    )
    pol = get_policy("gar-pd")
    _, batch = pol.decide_estimates(ctx, {}, est)
    states: dict[str, TenantState] = {}
    one = []
    for i in range(n):
        new, ds = pol.decide_estimates(ctx, states, est.take([i]))
        states.update(new)
        one += ds
    assert [(d.candidate, d.reason, d.duals_after) for d in batch] == [
        (d.candidate, d.reason, d.duals_after) for d in one
    ]
