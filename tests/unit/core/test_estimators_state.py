"""Estimators (Beta correctness, output tokens, energy refinement, p95 sketches) and the
tenant rolling window."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.core_fixtures import context, small_catalog

from streams.core import (
    Completion,
    EstimatorState,
    Request,
    StateError,
    TelemetryError,
    TenantState,
)
from streams.core.estimators import LATENCY_MIN_COUNT
from streams.core.latency import WindowedSketch
from streams.core.tenant import TenantWork


def comp(
    i: int,
    *,
    model: str = "small-8b",
    region: str = "eu-north",
    dataset: str = "gsm8k",
    correct: bool | None = True,
    energy_j: float | None = None,
    latency_ms: float = 100.0,
    out: int = 100,
    ts_ms: int = 0,
) -> Completion:
    return Completion(
        f"c{i}", "t", model, region, dataset, ts_ms, latency_ms, 200, out, energy_j, correct
    )


def test_beta_posterior_and_lcb() -> None:
    cat = small_catalog()
    st = EstimatorState(cat)
    m, d = cat.model_index["small-8b"], cat.dataset_idx("gsm8k")
    prior = st.snapshot().acc_mean[m, d]
    assert prior == pytest.approx(0.80)
    for i in range(100):
        st.observe(comp(i, correct=False))
    snap = st.snapshot(lcb_z=1.645)
    # (0.8 * 200 + 0) / (200 + 100)
    assert snap.acc_mean[m, d] == pytest.approx(160.0 / 300.0)
    assert snap.acc_lcb[m, d] < snap.acc_mean[m, d]
    assert snap.acc_lcb.min() >= 0.0 and snap.acc_lcb.max() <= 1.0
    # Other (model, dataset) cells are untouched.
    assert snap.acc_mean[m, cat.dataset_idx("mbpp")] == pytest.approx(0.50)


def test_output_tokens_and_energy_refinement() -> None:
    cat = small_catalog()
    st = EstimatorState(cat)
    k = cat.candidate_index("small-8b", "eu-north")
    base = st.snapshot()
    assert base.energy_scale[k] == pytest.approx(1.0)
    pred = st.predicted_energy_j(k, 200, 400)
    for i in range(500):
        st.observe(comp(i, energy_j=2.0 * pred, out=400))
    snap = st.snapshot()
    assert 1.9 < snap.energy_scale[k] < 2.0  # shrunk toward 1, converging to the measured 2x
    m, d = cat.model_index["small-8b"], cat.dataset_idx("gsm8k")
    assert snap.out_tokens[m, d] == pytest.approx((10 * 200 + 500 * 400) / 510)
    # Other candidates of the same model keep their own scale (energy is per deployment).
    assert snap.energy_scale[cat.candidate_index("small-8b", "us-east")] == 1.0


def test_latency_p95_needs_min_count_and_uses_windows() -> None:
    cat = small_catalog()
    st = EstimatorState(cat, window_ms=1_000, n_windows=2)
    k = cat.candidate_index("small-8b", "eu-north")
    for i in range(LATENCY_MIN_COUNT - 1):
        st.observe(comp(i, latency_ms=100.0 + i))
    assert np.isnan(st.snapshot().latency_p95_ms[k])
    for i in range(100):
        st.observe(comp(100 + i, latency_ms=float(i + 1), ts_ms=0))
    p95 = st.snapshot().latency_p95_ms[k]
    assert 90 <= p95 <= 120
    # Two windows later the old values have left the horizon.
    for i in range(30):
        st.observe(comp(300 + i, latency_ms=1000.0, ts_ms=2_500))
    assert st.snapshot().latency_p95_ms[k] == pytest.approx(1000.0, rel=0.02)


def test_merge_equals_single_consumer_and_round_trips() -> None:
    cat = small_catalog()
    rng = np.random.default_rng(1)
    comps = [
        comp(
            i,
            model=str(rng.choice(["small-8b", "large-70b"])),
            correct=bool(rng.random() < 0.7),
            energy_j=float(rng.uniform(10, 50)),
            latency_ms=float(rng.uniform(50, 500)),
            out=int(rng.integers(1, 400)),
            ts_ms=int(rng.integers(0, 3_000_000)),
        )
        for i in range(400)
    ]
    one, a, b = EstimatorState(cat), EstimatorState(cat), EstimatorState(cat)
    for i, c in enumerate(comps):
        one.observe(c)
        (a if i % 2 else b).observe(c)
    merged = a.merge(b)
    s1, s2 = one.snapshot(), merged.snapshot()
    for name in ("acc_mean", "acc_lcb", "out_tokens", "energy_scale", "latency_count"):
        np.testing.assert_allclose(getattr(s1, name), getattr(s2, name), rtol=1e-12)
    np.testing.assert_allclose(s1.latency_p95_ms, s2.latency_p95_ms, rtol=1e-9)
    again = EstimatorState.from_dict(cat, json.loads(json.dumps(merged.to_dict())))
    np.testing.assert_allclose(again.snapshot().latency_p95_ms, s2.latency_p95_ms, rtol=1e-9)
    assert again.seq == 400


def test_bad_telemetry_and_state_are_typed() -> None:
    st = EstimatorState(small_catalog())
    with pytest.raises(TelemetryError):
        st.observe(comp(0, model="unknown-model"))
    with pytest.raises(StateError):
        EstimatorState.from_dict(small_catalog(), {"models": []})
    with pytest.raises(StateError):
        TenantState.from_dict({"tenant": "t", "lambda": -1.0})


def test_rolling_window_is_event_time_and_evicts() -> None:
    w = TenantWork(TenantState("t"), bucket_ms=1_000, n_buckets=3)
    for ts, g in [(0, 1.0), (500, 2.0), (1_500, 4.0)]:
        w.charge(ts, g, w.advance(ts))
    assert w.spend_g == pytest.approx(7.0) and w.count == 3
    assert w.advance(3_200)  # bucket 3: window = buckets 1..3, bucket 0 evicted
    assert w.spend_g == pytest.approx(4.0) and w.count == 1
    assert not w.advance(200)  # too late: its bucket already left the window
    w.charge(200, 100.0, False)
    assert w.spend_g == pytest.approx(4.0)
    st = w.freeze()
    assert TenantState.from_dict(json.loads(json.dumps(st.to_dict()))) == st
    assert st.seq == 4


def test_latency_estimate_scales_with_each_requests_output_tokens() -> None:
    """A candidate that served long answers must not look slow for short ones: the sketch
    holds latency / (TTFT + ITL x tokens), the estimate multiplies back by the request's own
    token estimate."""
    cat = small_catalog()
    st = EstimatorState(cat)
    spec = cat.models[cat.model_index["small-8b"]]
    k = cat.candidate_index("small-8b", "eu-north")
    for i in range(LATENCY_MIN_COUNT + 20):  # long answers, 20% slower than the catalog
        st.observe(comp(i, out=400, latency_ms=1.2 * (spec.ttft_ms + spec.itl_ms * 400)))
    snap = st.snapshot()
    assert snap.latency_factor_p95[k] == pytest.approx(1.2, rel=0.02)
    ctx = context(estimators=st)

    def req(out: int) -> Request:
        return Request(f"r{out}", "t", "gsm8k", 100, out, "eu", 0)

    est = ctx.estimate([req(1), req(400)])
    rtt = cat.rtt_ms[cat.client_index["eu"], cat.cand_region_idx[k]]
    short, long_ = est.latency_ms[0, k] - rtt, est.latency_ms[1, k] - rtt
    assert short == pytest.approx(1.2 * (spec.ttft_ms + spec.itl_ms), rel=0.02)
    assert long_ == pytest.approx(1.2 * (spec.ttft_ms + spec.itl_ms * 400), rel=0.02)
    # The raw p95 (reported, not routed on) is that of the long answers.
    assert snap.latency_p95_ms[k] == pytest.approx(long_, rel=0.02)


def test_latency_quantile_picks_the_factor_quantile_the_policy_filters_on() -> None:
    from support.core_fixtures import config

    from streams.core import PolicyConfigError

    cat = small_catalog()
    st = EstimatorState(cat)
    spec = cat.models[cat.model_index["small-8b"]]
    k = cat.candidate_index("small-8b", "eu-north")
    nominal = spec.ttft_ms + spec.itl_ms * 100
    for i in range(200):  # slowness factors spread uniformly over [1.0, 2.0)
        st.observe(comp(i, out=100, latency_ms=nominal * (1.0 + i / 200)))
    req = Request("r", "t", "gsm8k", 100, 100, "eu", 0)
    rtt = cat.rtt_ms[cat.client_index["eu"], cat.cand_region_idx[k]]
    lat = {
        q: context(config(latency_quantile=q), estimators=st).estimate([req]).latency_ms[0, k] - rtt
        for q in (0.5, 0.8, 0.95)
    }
    for q, got in lat.items():
        assert got == pytest.approx(nominal * (1.0 + q), rel=0.03)
    with pytest.raises(PolicyConfigError):
        config(latency_quantile=0.9)


def test_latency_quantile_cache_follows_every_change() -> None:
    ws = WindowedSketch(1_000, 3)
    for v in range(1, 101):
        ws.add(10, float(v))
    first, count = ws.quantile(0.5)
    assert count == 100 and first == pytest.approx(50, rel=0.02)
    assert ws.quantile(0.5) == (first, count)  # cached, same value
    for _ in range(300):
        ws.add(20, 1_000.0)
    assert ws.quantile(0.5)[0] == pytest.approx(1_000, rel=0.02)
    other = WindowedSketch(1_000, 3)
    for _ in range(2_000):
        other.add(30, 5.0)
    ws.merge(other)
    assert ws.quantile(0.5)[0] == pytest.approx(5, rel=0.02)
    ws.add(10_000, 7.0)  # evicts every earlier window
    assert ws.quantiles((0.5, 0.95)) == ([pytest.approx(7, rel=0.02)] * 2, 1.0)
