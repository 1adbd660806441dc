from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np

from streams.data.catalog_builder import calibration_mask
from streams.data.regions import CLIENT_SITES
from streams.eval.scenario import Scenario, ScenarioSettings, build_scenario


def test_requests_only_go_to_models_with_ground_truth(small_scenario: Scenario) -> None:
    t = small_scenario.trace
    for i, (req, truth) in enumerate(t.items()):
        assert set(req.allow_models or ()) == set(truth.correct_by_model)
        assert req.dataset == t.dataset_names[t.dataset_idx[i]]
        assert req.output_tokens_est is None  # the producer does not know the answer length
    assert np.all(np.diff(t.ts_ms) >= 0)
    assert len({r.request_id for r in t.requests}) == len(t)


def test_trace_draws_only_from_the_evaluation_half(small_scenario: Scenario) -> None:
    calib = calibration_mask(small_scenario.data)
    assert not calib[small_scenario.trace.question_row].any()


def test_arrivals_follow_the_local_diurnal_pattern(
    make_settings: Callable[..., ScenarioSettings],
) -> None:
    scn = build_scenario(make_settings(n_requests=4000, days=7.0))
    t = scn.trace
    clients = list(t.client_regions)
    c = clients.index("europe")
    sel = t.client_idx == c
    local_h = ((t.ts_ms[sel] / 3_600_000) + CLIENT_SITES["europe"].utc_offset_h) % 24
    afternoon = np.sum((local_h >= 12) & (local_h < 18))
    night = np.sum((local_h >= 0) & (local_h < 6))
    assert afternoon > 2 * night


def test_same_seed_same_trace_other_seed_differs(
    make_settings: Callable[..., ScenarioSettings],
) -> None:
    a = build_scenario(make_settings(n_requests=200))
    b = build_scenario(make_settings(n_requests=200))
    c = build_scenario(make_settings(n_requests=200, seed=1))
    assert [r.to_dict() for r in a.trace.requests] == [r.to_dict() for r in b.trace.requests]
    assert np.array_equal(a.trace.z_itl, b.trace.z_itl)
    assert [r.to_dict() for r in a.trace.requests] != [r.to_dict() for r in c.trace.requests]


def test_world_outcomes_follow_the_carbon_formula(small_scenario: Scenario) -> None:
    scn = small_scenario
    i = np.arange(20)
    k = np.full(20, 3)
    o = scn.world.outcomes(i, k)
    r = int(scn.catalog.cand_region_idx[3])
    zone = scn.catalog.regions[r].zone
    intensity = scn.zones[zone].at(scn.trace.ts_ms[i])
    expected = o.energy_j / 3.6e6 * intensity * scn.catalog.pue[r]
    assert np.allclose(o.co2_g, expected)
    assert np.all(o.latency_ms > o.serving_ms)  # the client also waits for the network


def test_hindsight_ablation_sets_priors_to_trace_means(
    make_settings: Callable[..., ScenarioSettings],
) -> None:
    scn = build_scenario(make_settings(n_requests=300, priors="hindsight"))
    t = scn.trace
    model = scn.catalog.models[0]
    dataset = next(d for d in model.correctness_prior if d in t.dataset_names)
    rows = t.dataset_idx == t.dataset_names.index(dataset)
    assert model.prior_for(dataset).mean == float(t.correct[rows, 0].mean())
    assert "hindsight" in scn.describe()["priors_from"]


def test_other_year_and_other_correctness_file_need_no_code_change(
    make_settings: Callable[..., ScenarioSettings], shared_data: Path, tmp_path: Path
) -> None:
    """2024 carbon exports (the 2023 files re-stamped) and the GSM8K file alone."""
    carbon = tmp_path / "carbon-2024"
    carbon.mkdir()
    for zone in ("US-MIDA-PJM", "US-CAL-CISO", "GB", "DE-LU", "SG"):
        src = shared_data / f"carbon/electricitymaps-hourly-2023/{zone}.csv.gz"
        with (
            gzip.open(src, "rt", encoding="utf-8") as f,
            gzip.open(carbon / f"{zone}.csv.gz", "wt", encoding="utf-8") as g,
        ):
            for line in f:
                g.write(line.replace("2023-", "2024-", 1))
    scn = build_scenario(
        make_settings(
            correctness=(shared_data / "correctness/gsm8k-zeroeval.csv.gz",),
            carbon_dir=carbon,
            n_requests=200,
        )
    )
    assert scn.describe()["start_utc"].startswith("2024-")
    assert set(scn.trace.dataset_names) == {"gsm8k"}
    assert len(scn.catalog.models) == 5  # the GSM8K half of the default pool
