"""The floor a request is held to: the adaptive rule, the per-request override, mode presets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from support.core_fixtures import config, context, small_catalog, stream

from streams.core import EstimatorState, PolicyConfig, Request, get_policy
from streams.core.inputs import Completion

PRIORS_GSM8K = {"small-8b": 0.80, "mid-27b": 0.88, "large-70b": 0.94}


def _floor(cfg: PolicyConfig, estimators: EstimatorState | None = None) -> float:
    ctx = context(cfg, estimators=estimators)
    return float(ctx.floors[ctx.catalog.datasets.index("gsm8k")])


@pytest.mark.parametrize(
    ("f_min", "alpha", "want"),
    [
        (0.85, None, 0.85),  # rule off: the explicit floor
        (0.85, 0.95, 0.95 * 0.94),  # alpha x best (0.893) above F_min
        (0.90, 0.95, 0.90),  # F_min above alpha x best
        (0.0, 0.80, 0.80 * 0.94),
    ],
)
def test_adaptive_floor_is_max_of_f_min_and_alpha_times_best(
    f_min: float, alpha: float | None, want: float
) -> None:
    cfg = config(floors={"gsm8k": f_min}, adaptive_floor_alpha=alpha)
    assert _floor(cfg) == pytest.approx(want, abs=1e-12)


def test_adaptive_floor_follows_the_telemetry() -> None:
    """The best model's estimate moves with graded answers, and the floor with it."""
    cat = small_catalog()
    est = EstimatorState(cat)
    for i in range(400):  # large-70b answers everything wrong: its estimate drops
        est.observe(
            Completion(
                f"c{i}", "t", "large-70b", "eu-north", "gsm8k", i, 500.0, 100, 100, None, False
            )
        )
    cfg = config(floors={"gsm8k": 0.0}, adaptive_floor_alpha=0.95)
    snap = est.snapshot()
    m = cat.model_index
    best = max(snap.acc_mean[m[name], cat.datasets.index("gsm8k")] for name in PRIORS_GSM8K)
    assert best == pytest.approx(0.88, abs=1e-9)  # mid-27b is now the best estimate
    assert _floor(cfg, est) == pytest.approx(0.95 * best, abs=1e-12)
    assert _floor(cfg, est) < 0.95 * 0.94


def test_adaptive_floor_changes_decisions() -> None:
    """Same requests, same duals: a higher adaptive floor buys more accuracy (strict: hard)."""
    reqs = stream(50)
    acc = {}
    for alpha in (None, 0.95):
        cfg = config("strict", floors={"gsm8k": 0.5}, adaptive_floor_alpha=alpha)
        _, ds = get_policy("gar-pd").decide_batch(context(cfg), {}, reqs)
        acc[alpha] = float(np.mean([d.accuracy for d in ds]))
        assert all(d.to_record()["floor"] == pytest.approx(_floor(cfg)) for d in ds)
    assert acc[0.95] > acc[None] + 0.05


@pytest.mark.parametrize("mode", ["strict", "balanced", "green"])
def test_a_request_floor_override_replaces_the_dataset_floor(mode: str) -> None:
    """Only the request's floor differs (no latency cap): its record carries it, and in strict
    mode (hard floor) it alone decides which models are feasible."""
    cfg = config(mode, floors={"gsm8k": 0.5})
    base = stream(20)
    high = [replace(r, request_id=r.request_id + "-hi", floor=0.90) for r in base]
    ctx = context(cfg)
    _, plain = get_policy("gar-pd").decide_batch(ctx, {}, base)
    _, raised = get_policy("gar-pd").decide_batch(ctx, {}, high)
    assert all(d.to_record()["floor"] == 0.5 for d in plain)
    assert all(d.to_record()["floor"] == 0.90 for d in raised)
    if mode == "strict":
        dep = ctx.catalog.deployments
        for d in raised:
            models = {dep[k][0] for k in np.flatnonzero(d.feasible)}
            assert models == {"large-70b"}  # LCB >= 0.91 only for large-70b
        for d in plain:
            models = {dep[k][0] for k in np.flatnonzero(d.feasible)}
            assert "small-8b" in models
        assert {d.model for d in raised} == {"large-70b"}
        assert {d.model for d in plain} != {"large-70b"}


def test_a_lower_request_floor_buys_less_accuracy_in_strict_mode() -> None:
    cfg = config("strict", floors={"gsm8k": 0.90})
    reqs = stream(20)
    low = [replace(r, floor=0.5) for r in reqs]
    ctx = context(cfg)
    _, at_floor = get_policy("gar-pd").decide_batch(ctx, {}, reqs)
    _, relaxed = get_policy("gar-pd").decide_batch(ctx, {}, low)
    assert np.mean([d.co2_g for d in relaxed]) < np.mean([d.co2_g for d in at_floor])


# --- mode presets on the policy topic ------------------------------------------------------------
@pytest.mark.parametrize("mode", ["strict", "balanced", "green"])
def test_a_policy_record_naming_a_mode_gets_that_preset(mode: str) -> None:
    cfg = PolicyConfig.from_record({"version": "v", "mode": mode})
    assert cfg == PolicyConfig.preset(mode, version="v")  # type: ignore[arg-type]


def test_explicit_fields_override_the_mode_preset() -> None:
    cfg = PolicyConfig.from_record({"version": "v", "mode": "green", "floor_margin": 0.02})
    assert cfg == PolicyConfig.preset("green", version="v", floor_margin=0.02)
    assert cfg.budget_hard  # the rest of the green preset


def test_a_record_without_a_mode_is_the_balanced_default() -> None:
    assert PolicyConfig.from_record({"version": "v"}) == PolicyConfig.default(version="v")
    assert PolicyConfig.default().mode == "balanced"


@pytest.mark.parametrize("mode", ["strict", "balanced", "green"])
def test_preset_overrides_round_trip(mode: str) -> None:
    cfg = PolicyConfig.preset(mode, version="x", floor_margin=0.03, floors={"gsm8k": 0.7})  # type: ignore[arg-type]
    small = cfg.preset_overrides()
    assert set(small) >= {"version", "mode", "floor_margin", "floors"}
    assert PolicyConfig.from_record(small) == cfg


def test_request_floor_is_validated() -> None:
    with pytest.raises(Exception, match="floor"):
        Request("r", "t", "gsm8k", 10, None, "eu", 0, floor=1.5)
