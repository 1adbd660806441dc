"""decisions.v2: records re-derive bit for bit from their context record (JSON round trip) and
their own fields, for every policy and the rules that make a decision depend on more than the
matrix (exploration, feedback, warm-up, hard budgets, pooled mu, gar-target's deficit, late
requests, per-request overrides); a changed record does not."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

import numpy as np
import orjson
import pytest
from support.core_fixtures import config, small_catalog

from streams.core import (
    Completion,
    EstimatorState,
    IntensityReading,
    IntensityView,
    PolicyConfig,
    Request,
    RoutingContext,
    TenantState,
    fold_feedback,
    get_policy,
    policy_names,
)
from streams.core.context_inputs import ContextInputs
from streams.core.policy_config import TenantOverride
from streams.core.record_v2 import V2Rows, eligible_from_hex, eligible_hex, record_v2
from streams.core.replay_v2 import rederive_v2

T0 = 1_700_000_000_000


def _view(b: int) -> IntensityView:
    """Two days of hourly readings per zone, shifted per batch (history, a stale zone)."""
    readings = []
    for h in range(48):
        ts = T0 - (48 - h) * 3_600_000 + b * 60_000
        readings.append(IntensityReading("SE", 30.0 + h % 7, ts, "em", source_offset=3 * h))
        readings.append(
            IntensityReading(
                "US-MIDA-PJM", 380.0 + 3 * h, ts, "em", "marginal", h % 2 == 0, 3 * h + 1
            )
        )
    if b % 2:
        readings.append(
            IntensityReading("IN-WE", 700.0, T0 - 10 * 86_400_000, "wt", source_offset=999)
        )
    return IntensityView.from_readings(readings)


def _requests(b: int, n: int) -> list[Request]:
    rng = np.random.default_rng(b)
    out = []
    for i in range(n):
        kw: dict[str, Any] = {}
        if i % 7 == 3:
            kw["floor"] = 0.7
        if i % 11 == 5:
            kw["latency_cap_ms"] = 4_000.0
        if i % 5 == 1:
            kw["deny_regions"] = ("ap-south",)
        if i % 13 == 2:
            kw["allow_models"] = ("small-8b", "large-70b")
        # 9: older than every reading (stale, none in force); 10: priced with an older reading
        late = {9: 30 * 86_400_000, 10: 10 * 3_600_000}.get(i, 0)
        out.append(
            Request(
                f"r{b}-{i}",
                ("acme", "globex", "initech")[i % 3],
                ("gsm8k", "mbpp", "other")[(i // 3) % 3],
                int(rng.integers(50, 900)),
                None if i % 4 else int(rng.integers(10, 400)),
                ("eu", "us", "nowhere")[i % 3],
                T0 + b * 60_000 + i * 50 - late,
                **kw,
            )
        )
    return out


def _estimators(cat: Any, b: int) -> EstimatorState:
    est = EstimatorState(cat)
    rng = np.random.default_rng(100 + b)
    for j in range(40 * (b + 1)):
        m, r = cat.deployments[j % cat.n_candidates]
        est.observe(
            Completion(
                f"c{b}-{j}",
                "acme",
                m,
                r,
                ("gsm8k", "mbpp")[j % 2],
                T0 + j,
                float(rng.uniform(200, 3_000)),
                100,
                int(rng.integers(20, 300)),
                float(rng.uniform(50, 500)),
                bool(rng.random() < 0.7),
            )
        )
    return est


def _run(
    policy: str, cfg: PolicyConfig, batches: int = 4, n: int = 40
) -> tuple[list[tuple[dict[str, Any], list[dict[str, Any]]]], Any]:
    """Decide ``batches`` batches threading the states (with feedback folded in between);
    returns per batch (context record dict after a JSON round trip, v2 records)."""
    cat = small_catalog()
    pol = get_policy(policy)
    states: dict[str, TenantState] = {}
    out = []
    for b in range(batches):
        ctx = RoutingContext.build(cat, cfg, _estimators(cat, b), _view(b))
        if b:
            graded = [
                Completion(
                    f"f{b}-{t}",
                    t,
                    "small-8b",
                    "eu-north",
                    "gsm8k",
                    T0,
                    500.0,
                    10,
                    10,
                    None,
                    b % 2 == 0,
                )
                for t in ("acme", "globex")
            ]
            states.update(fold_feedback(ctx, states, graded))
        new, decisions = pol.decide_batch(ctx, states, _requests(b, n))
        states.update(new)
        inputs = orjson.loads(orjson.dumps(ContextInputs.of(ctx, policy, 7).to_dict()))
        # One V2Rows per decision context (a tenant override decides under its own).
        rows: dict[int, V2Rows] = {}
        recs = [
            orjson.loads(
                orjson.dumps(
                    record_v2(d, rows.setdefault(id(d.shared), V2Rows(d.shared)), f"ctx{b}")
                )
            )
            for d in decisions
        ]
        out.append((inputs, recs))
    return out, cat


CASES = [
    ("gar-pd", config("balanced")),
    ("gar-pd", config("strict")),
    ("gar-pd", config("green", default_budget_g=0.02)),
    ("gar-pd", config("balanced", explore_rule="kl-ucb", default_budget_g=0.5)),
    ("gar-pd", config("balanced", explore_rule="kl-ucb-short")),
    ("gar-pd", config("balanced", explore_rule="thompson")),
    ("gar-pd", config("balanced", mu_warmup_gain=4.0, mu_warmup_n=30)),
    ("gar-pd", config("balanced", mu_pooled=True, default_budget_g=0.3)),
    # A tenant decided under its own override (a strict mode, its SLO and budget) and one
    # under the global pooled config: each re-derived under the config it was decided with.
    (
        "gar-pd",
        config(
            "balanced",
            mu_pooled=True,
            default_budget_g=0.3,
            tenant_overrides={
                "acme": TenantOverride(
                    version="2", mode="strict", latency_slo_ms=4000.0, budget_g=0.05
                )
            },
        ),
    ),
    ("gar-target", config("balanced")),
    *[(p, config("balanced", default_budget_g=0.3)) for p in policy_names() if p != "gar-pd"],
]


@pytest.mark.parametrize(
    ("policy", "cfg"), CASES, ids=[f"{p}-{i}" for i, (p, _) in enumerate(CASES)]
)
def test_every_v2_record_rederives_exactly_from_its_context_record(
    policy: str, cfg: PolicyConfig
) -> None:
    batches, cat = _run(policy, cfg)
    for inputs, recs in batches:
        ctx = ContextInputs.from_dict(inputs).build(cat)
        results = rederive_v2(ctx, policy, recs)
        assert [r.mismatches for r in results] == [()] * len(recs)
        assert all(r.decision is not None for r in results)


def test_the_records_carry_feedback_deficit_late_requests_and_overrides() -> None:
    pd_batches, _ = _run("gar-pd", config("balanced"))
    recs = [r for _, rs in pd_batches for r in rs]
    assert any("feedback" in r for r in recs)
    assert any(r["in_window"] is False for r in recs)
    offsets = {r["intensity_offset"] for r in recs if r["request_id"].endswith("-10")}
    latest = {3 * 47, 3 * 47 + 1}
    assert offsets and not offsets & latest  # a reading in force before the latest
    assert any(r["intensity_offset"] is None for r in recs if r["request_id"].endswith("-9"))
    assert any("eligible" in r for r in recs) and any("floor" in r for r in recs)
    assert all(len(r["duals_before"]) == 3 for r in recs)
    tg, _ = _run("gar-target", config("balanced"))
    chain = [r for _, rs in tg for r in rs if r["tenant"] == "acme" and r["dataset"] == "gsm8k"]
    assert all(a["deficit"][1] == b["deficit"][0] for a, b in itertools.pairwise(chain))
    assert any(r["deficit"][0] != 0.0 for r in chain)


@pytest.mark.parametrize(
    ("field", "value", "flagged"),
    [
        ("co2_g", lambda v: v * (1 + 1e-15), "co2_g"),
        ("duals_after", lambda v: [v[0], v[1] + 1e-12, v[2]], "duals_after"),
        ("region", lambda v: "us-east" if v != "us-east" else "eu-north", "candidate"),
        ("window_spend_g_before", lambda v: v + 1.0, "reason"),  # an input: the choice moves
        ("input_tokens", lambda v: v + 1, "co2_g"),
        ("intensity_offset", lambda v: 12345, "intensity_offset"),
    ],
)
def test_a_changed_record_does_not_rederive(field: str, value: Any, flagged: str) -> None:
    batches, cat = _run("gar-pd", config("green", default_budget_g=0.02), batches=1)
    inputs, recs = batches[0]
    ctx = ContextInputs.from_dict(inputs).build(cat)
    bad = [dict(r) for r in recs]
    bad[5][field] = value(bad[5][field])
    results = rederive_v2(ctx, "gar-pd", bad)
    assert [j for j, r in enumerate(results) if not r.ok] == [5]
    assert any(m.startswith(flagged) for m in results[5].mismatches), results[5].mismatches


def test_a_context_on_another_catalog_is_refused() -> None:
    batches, cat = _run("gar-pd", config("balanced"), batches=1)
    inputs = dict(batches[0][0], catalog_version="other-7")
    with pytest.raises(Exception, match="catalog"):
        ContextInputs.from_dict(inputs).build(cat)


def test_eligible_masks_round_trip() -> None:
    rng = np.random.default_rng(3)
    for k in (1, 7, 8, 50, 128):
        row = rng.random(k) < 0.5
        assert eligible_from_hex(eligible_hex(row), k) == np.flatnonzero(row).tolist()
    with pytest.raises(ValueError):
        eligible_from_hex("ff", 4)


def test_intensity_view_and_snapshot_round_trip_exactly() -> None:
    cat = small_catalog()
    ctx = RoutingContext.build(cat, config(), _estimators(cat, 2), _view(1))
    back = ContextInputs.from_dict(
        orjson.loads(orjson.dumps(ContextInputs.of(ctx, "gar-pd", -1).to_dict()))
    )
    assert back.intensity.to_dict() == ctx.intensity.to_dict()
    for name in ("acc_mean", "acc_lcb", "latency_factor_q", "latency_p95_ms", "energy_scale"):
        a, b = getattr(ctx.snapshot, name), getattr(back.snapshot, name)
        assert a.tobytes() == b.tobytes() or np.array_equal(a, b, equal_nan=True)
    rebuilt = back.build(cat)
    reqs = _requests(0, 30)
    e1, e2 = ctx.estimate(reqs), rebuilt.estimate(reqs)
    assert e1.co2_g.tobytes() == e2.co2_g.tobytes()
    assert e1.latency_ms.tobytes() == e2.latency_ms.tobytes()
    assert replace(back, policy_offset=3).policy_offset == 3
