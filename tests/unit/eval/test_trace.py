from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from streams.data.catalog_builder import DEFAULT_MODELS, calibration_mask, open_models
from streams.data.regions import CLIENT_SITES
from streams.eval.scenario import Scenario, ScenarioSettings, build_scenario
from streams.eval.trace import Trace, dataset_probabilities, zipf_tenants


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


def _trace_digest(t: Trace) -> str:
    h = hashlib.sha256()
    for a in (t.ts_ms, t.dataset_idx, t.client_idx, t.tenant_idx, t.question_row, t.input_tokens,
              t.correct, t.output_tokens, t.z_ttft, t.z_itl, t.z_energy, t.rtt_jitter):  # fmt: skip
        h.update(np.ascontiguousarray(a).tobytes())
    for r in t.requests:
        h.update(repr(sorted(r.to_dict().items())).encode())
    return h.hexdigest()


# The default scenario's trace (10,000 requests, 7 days, seed 0) as built before the trace had
# tenant, dataset-share and model-pool options: the defaults must reproduce it byte for byte.
DEFAULT_TRACE_SHA256 = "8a853ebdfe274ce0f82447a1bc65d46110e30f63b835a5436b472c84f0c5cc70"


def test_default_scenario_trace_is_unchanged(
    make_settings: Callable[..., ScenarioSettings],
) -> None:
    default = ScenarioSettings(**{**make_settings().__dict__, "n_requests": 10_000, "days": 7.0})
    scn = build_scenario(default)
    assert _trace_digest(scn.trace) == DEFAULT_TRACE_SHA256
    assert scn.trace.tenants == ("tenant-a", "tenant-b", "tenant-c")
    # Spelled-out defaults are the defaults.
    named = build_scenario(replace(default, models=("default",), dataset_shares={}))
    assert _trace_digest(named.trace) == DEFAULT_TRACE_SHA256


def test_dataset_shares_fix_one_dataset_and_split_the_rest_by_questions(
    make_settings: Callable[..., ScenarioSettings],
) -> None:
    n = 20_000
    scn = build_scenario(make_settings(n_requests=n, dataset_shares={"winogrande": 0.05}))
    t = scn.trace
    share = {d: float(np.mean(t.dataset_idx == i)) for i, d in enumerate(t.dataset_names)}
    assert abs(share["winogrande"] - 0.05) < 4 * np.sqrt(0.05 * 0.95 / n)
    # The other datasets keep their relative weights: question counts of the evaluation half.
    data = scn.data
    pool = ~calibration_mask(data)
    others = ["gsm8k", "arc-challenge", "mbpp"]
    counts = np.array([np.sum(pool & (data.dataset_idx == data.datasets.index(d))) for d in others])
    want = 0.95 * counts / counts.sum()
    got = np.array([share[d] for d in others])
    assert np.all(np.abs(got - want) < 4 * np.sqrt(want * (1 - want) / n))
    # Still only evaluation-half questions, and every question of a dataset can be drawn.
    assert not calibration_mask(data)[t.question_row].any()
    wino = data.datasets.index("winogrande")
    assert set(data.dataset_idx[t.question_row[t.dataset_idx == wino]].tolist()) == {wino}
    with pytest.raises(ValueError, match="nope"):
        build_scenario(make_settings(n_requests=100, dataset_shares={"nope": 0.1}))
    with pytest.raises(ValueError, match="sum"):
        build_scenario(make_settings(n_requests=100, dataset_shares={"mbpp": 0.7, "gsm8k": 0.6}))


def test_dataset_probabilities_rules() -> None:
    p = dataset_probabilities(["a", "b", "c"], [100, 300, 600], {"a": 0.1})
    np.testing.assert_allclose(p, [0.1, 0.9 / 3, 0.9 * 2 / 3])
    p = dataset_probabilities(["a", "b"], [1, 1], {"a": 0.2, "b": 0.6})
    np.testing.assert_allclose(p, [0.25, 0.75])  # every dataset named: normalised


def test_zipf_tenants_and_their_traffic(make_settings: Callable[..., ScenarioSettings]) -> None:
    shares = zipf_tenants(20, 1.2)
    assert list(shares)[:2] == ["tenant-01", "tenant-02"] and len(shares) == 20
    w = np.array(list(shares.values()))
    np.testing.assert_allclose(w, np.arange(1, 21) ** -1.2 / np.sum(np.arange(1, 21) ** -1.2))
    assert zipf_tenants(1) == {"tenant-01": 1.0}
    n = 8_000
    scn = build_scenario(make_settings(n_requests=n, tenants=5, tenant_skew=1.0))
    t = scn.trace
    assert t.tenants == ("tenant-01", "tenant-02", "tenant-03", "tenant-04", "tenant-05")
    got = np.bincount(t.tenant_idx, minlength=5) / n
    want = np.array([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5]) / sum([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert np.all(np.abs(got - want) < 4 * np.sqrt(want * (1 - want) / n))
    # Budgets follow each tenant's expected share.
    assert scn.budgets_g["tenant-01"] / scn.budgets_g["tenant-05"] == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("pool", "datasets", "n_models"),
    [
        ("gsm8k", {"gsm8k"}, 5),
        ("routerbench", {"arc-challenge", "winogrande", "mbpp"}, 5),
        ("default", {"gsm8k", "arc-challenge", "winogrande", "mbpp"}, 10),
    ],
)
def test_model_pools(
    make_settings: Callable[..., ScenarioSettings], pool: str, datasets: set[str], n_models: int
) -> None:
    scn = build_scenario(make_settings(n_requests=300, models=(pool,)))
    assert len(scn.catalog.models) == n_models
    present = {scn.trace.dataset_names[i] for i in np.unique(scn.trace.dataset_idx)}
    assert present == datasets
    assert set(scn.floors) == datasets


def test_all_open_pool_and_start_day(make_settings: Callable[..., ScenarioSettings]) -> None:
    scn = build_scenario(make_settings(n_requests=300, models=("all-open",), start_day=20.0))
    names = scn.catalog.model_names
    assert len(names) == len(open_models(scn.data)) > 10
    assert set(DEFAULT_MODELS) < set(names)
    assert scn.describe()["start_utc"].startswith("2023-01-21")
