"""The calibration LP (streams.eval.calibrate): no data of the evaluated trace, reproducible,
targets and starting mu that reach the policy config and re-derive."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from streams.core import check_chain, rederive_record
from streams.data.catalog_builder import calibration_mask
from streams.eval.calibrate import calibrate, reachable_accuracy
from streams.eval.runner import run_policy
from streams.eval.scenario import Scenario, ScenarioSettings, build_scenario


def test_calibration_uses_only_the_calibration_half_and_the_period_before(
    small_scenario: Scenario,
) -> None:
    scn = small_scenario
    cal = calibrate(scn, pool_margin=0.01, floor_margin=0.005)
    assert cal.start_ms + int(cal.days * 86_400_000) == scn.trace.options.start_ms
    assert cal.seed != scn.settings.seed
    # Rebuild its trace: every question is from the calibration half, every request before
    # the evaluated period; the evaluated trace only has evaluation-half questions.
    from streams.eval.trace import build_trace

    t = build_trace(
        scn.data,
        scn.catalog,
        replace(scn.trace.options, start_ms=cal.start_ms, seed=cal.seed, use_calibration_half=True),
    )
    half = calibration_mask(scn.data)
    key = {
        (scn.data.datasets[d], q)
        for d, q, h in zip(
            scn.data.dataset_idx.tolist(), scn.data.query_ids, half.tolist(), strict=True
        )
        if h
    }
    assert all((r.dataset, q) in key for r, q in zip(t.requests, t.query_ids, strict=True))
    assert not any(
        (r.dataset, q) in key for r, q in zip(scn.trace.requests, scn.trace.query_ids, strict=True)
    )
    assert int(t.ts_ms.max()) < scn.trace.options.start_ms
    # Targets: at least the floors, at most what the calibration half can reach.
    caps = reachable_accuracy(scn, 2.0)
    for d, f in scn.floors.items():
        assert cal.floor_targets[d] >= f - 1e-9
        assert cal.floor_targets[d] <= max(caps[d] - 0.005, f) + 5e-5  # rounded to 4 decimals
    # The pooled margin is held on average over the datasets (request-weighted, calibration).
    assert all(v >= 0 for v in cal.floor_dual_g.values())
    assert set(cal.mu_init_by_dataset) == set(scn.floors) - set(cal.unpriced)
    for d, mu in cal.mu_init_by_dataset.items():
        assert mu == round(cal.floor_dual_g[d] / cal.carbon_ref_g, 4)


def test_calibrated_scenario_is_reproducible_and_publishes_the_fields(
    make_settings: Callable[..., ScenarioSettings],
) -> None:
    a = build_scenario(make_settings(calibrate=True))
    b = build_scenario(make_settings(calibrate=True))
    assert a.calibration is not None and a.calibration == b.calibration
    cfg = a.config
    assert dict(cfg.floor_targets) == a.calibration.floor_targets
    assert dict(cfg.mu_init_by_dataset) == a.calibration.mu_init_by_dataset
    assert cfg.floor_margin == a.settings.calib_floor_margin
    assert a.describe()["calibration"]["floor_targets"] == a.calibration.floor_targets
    # An explicit override of a calibrated field wins.
    c = build_scenario(make_settings(calibrate=True, policy_overrides={"floor_margin": 0.02}))
    assert c.config.floor_margin == 0.02
    # The run starts each (tenant, dataset) at its calibrated mu and re-derives exactly.
    run = run_policy(a, "gar-pd", keep_records=True)
    recs = run.records
    assert check_chain(recs, cfg) == []
    # The first decision of each holder of mu: its scope when pooled, else its tenant.
    first: dict[tuple[str, str], float] = {}
    for r in recs:
        holder = str(r.get("mu_scope", r["tenant"]))
        first.setdefault((holder, r["dataset"]), r["duals_before"]["mu"])
    for (_, ds), mu in first.items():
        if ds in cfg.mu_init_by_dataset:
            assert mu == min(cfg.mu_init_by_dataset[ds], cfg.mu_max)
    for r in recs[:: max(1, len(recs) // 50)]:
        assert rederive_record(r, a.catalog, cfg).ok
    # Uncalibrated scenarios are unchanged: no calibration, no new fields.
    plain = build_scenario(make_settings())
    assert plain.calibration is None and not plain.config.floor_targets
    assert np.array_equal(plain.trace.ts_ms, a.trace.ts_ms)
