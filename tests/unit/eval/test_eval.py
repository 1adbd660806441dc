from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from streams.cli import _register, app
from streams.core.oracle import oracle_lp, oracle_perfect
from streams.eval.oracles import hindsight_accuracy
from streams.eval.runner import ORACLE_NAMES, run_all, run_metrics, run_policy
from streams.eval.scenario import Scenario, ScenarioSettings, build_scenario

REQUIRED = (
    "co2_g_per_request",
    "accuracy",
    "latency_p95_ms",
    "floor_met_fraction",
    "slo_met",
    "budget_violation_g",
    "decisions_per_model_region",
)


def _cli(shared_data: Path, out: Path, *extra: str) -> tuple[int, str]:
    _register() if "eval" not in {c.name for c in app.registered_commands} else None
    args = [
        "eval",
        "--correctness",
        str(shared_data / "correctness/gsm8k-zeroeval.csv.gz"),
        str(shared_data / "correctness/routerbench-subset.csv.gz"),
        "--energy",
        str(shared_data / "energy/mlenergy-v3-llm.csv"),
        "--carbon",
        str(shared_data / "carbon/electricitymaps-hourly-2023"),
        "--requests",
        "300",
        "--days",
        "2",
        "--sweep",
        "none",
        "--no-plots",
        "--json",
        str(out),
        *extra,
    ]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output


def test_cli_json_shape(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval.json"
    code, output = _cli(
        shared_data, out, "--zones", "US-MIDA-PJM,GB,DE-LU,SG", "--policies",
        "gar-pd,always-largest,largest-greenest-region", "--floor", "0.9", "--slo-ms", "11000",
        "--seed", "3",
    )  # fmt: skip
    assert code == 0, output
    report = json.loads(out.read_text())
    assert set(report["policies"]) == {
        "gar-pd", "always-largest", "largest-greenest-region", *ORACLE_NAMES
    }  # fmt: skip
    for metrics in report["policies"].values():
        for key in REQUIRED:
            assert key in metrics
        assert sum(metrics["decisions_per_model_region"].values()) == 300
    scenario = report["scenario"]
    assert scenario["zones"] == ["US-MIDA-PJM", "GB", "DE-LU", "SG"]
    assert scenario["slo_ms"] == 11000 and scenario["seed"] == 3
    assert scenario["floor_alpha"] == 0.9
    assert set(scenario["floors"]) == {"gsm8k", "arc-challenge", "winogrande", "mbpp"}
    # Every model reports which measured energy profile stands in for it.
    for model in scenario["models"]:
        mapping = model["energy_mapping"]
        assert mapping["profile_model_id"] and mapping["gpu_model"] and mapping["max_num_seqs"]
        assert "nearest" in mapping["rule"]
    assert (tmp_path / "eval_report" / "results.md").read_text().startswith("| policy")


def test_cli_names_the_bad_file_and_line(shared_data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("query_id,dataset,model,params_b,correct,output_tokens_est\nq1,gsm8k,m,7,2,10\n")
    runner = CliRunner()
    _register() if "eval" not in {c.name for c in app.registered_commands} else None
    result = runner.invoke(
        app,
        ["eval", "--correctness", str(bad), "--energy",
         str(shared_data / "energy/mlenergy-v3-llm.csv"), "--carbon",
         str(shared_data / "carbon/electricitymaps-hourly-2023"), "--json",
         str(tmp_path / "x.json")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{bad}:2" in result.output


def test_same_seed_same_numbers(make_settings: Callable[..., ScenarioSettings]) -> None:
    a = build_scenario(make_settings(n_requests=300))
    b = build_scenario(make_settings(n_requests=300))
    ma = run_all(a, ["gar-pd", "random"]).metrics
    mb = run_all(b, ["gar-pd", "random"]).metrics
    assert ma == mb


def test_oracles_bound_every_policy_at_equal_feasibility(small_scenario: Scenario) -> None:
    """No policy that meets the floors (in the oracle's accuracy terms) emits less CO2."""
    scn = small_scenario
    t, cat = scn.trace, scn.catalog
    everything = scn.world.all_outcomes()
    eligible = t.correct[:, cat.cand_model_idx] >= 0
    floors = np.array([scn.floors[d] for d in t.dataset_names])
    hindsight = hindsight_accuracy(scn)
    truth = np.clip(everything.correct, 0, 1).astype(np.float64)
    lp = oracle_lp(everything.co2_g, hindsight, eligible, t.dataset_idx, floors)
    perfect = oracle_perfect(everything.co2_g, truth, eligible, t.dataset_idx, floors)
    assert lp.feasible and perfect.feasible
    rows = np.arange(len(t))
    compared = 0
    for name in ("gar-pd", "gar-target", "gar-fixed", "accuracy-greedy", "always-largest"):
        run = run_policy(scn, name)
        k = run.candidate
        co2 = everything.co2_g[rows, k].sum()
        for acc, bound in ((hindsight[rows, k], lp), (truth[rows, k], perfect)):
            per_ds = np.bincount(t.dataset_idx, weights=acc) / np.bincount(t.dataset_idx)
            if np.all(per_ds >= floors - 1e-12):
                compared += 1
                assert bound.co2_g <= co2 * (1 + 1e-6), name
    assert compared >= 2
    assert perfect.co2_g <= lp.co2_g * (1 + 1e-6)  # knowing each answer can only help


def test_metrics_follow_their_definitions(small_scenario: Scenario) -> None:
    run = run_policy(small_scenario, "always-largest")
    m = run_metrics(small_scenario, run)
    o = run.outcomes
    assert m["co2_g_per_request"] == pytest.approx(float(o.co2_g.mean()))
    assert m["latency_p95_ms"] == pytest.approx(float(np.percentile(o.latency_ms, 95)))
    assert m["slo_met"] == (m["latency_p95_ms"] <= small_scenario.settings.slo_ms)
    assert 0.0 <= m["floor_met_fraction"] <= 1.0
    # always-largest ignores carbon budgets: it overspends the derived ones.
    assert m["budget_violation_g"] > 0


def test_home_variant_stays_home(small_scenario: Scenario) -> None:
    run = run_policy(small_scenario, "gar-pd@home")
    cat = small_scenario.catalog
    for req, k in zip(small_scenario.trace.requests, run.candidate.tolist(), strict=True):
        assert cat.deployments[k][1] == small_scenario.home[req.client_region]


def test_window_floor_oracle_holds_each_window_and_costs_at_least_the_horizon_lp(
    small_scenario: Scenario,
) -> None:
    """oracle-lp with the evaluator's pooled floor windows: every window meets its
    request-weighted floor in expectation, and it never costs less than the horizon LP."""
    from streams.eval.oracles import run_oracle
    from streams.eval.runner import summary

    scn = small_scenario
    t = scn.trace
    everything = scn.world.all_outcomes()
    plain = run_oracle("oracle-lp", scn, everything)
    windowed = run_oracle("oracle-lp", scn, everything, window_floors=True)
    assert windowed.result.feasible
    assert windowed.co2_g.sum() >= plain.co2_g.sum() * (1 - 1e-9)
    expected = (windowed.result.x * hindsight_accuracy(scn)).sum(axis=1)
    floor_req = np.array([scn.floors[d] for d in t.dataset_names])[t.dataset_idx]
    win = (t.ts_ms - t.ts_ms.min()) // scn.settings.floor_window_ms
    for w in np.unique(win):
        sel = win == w
        assert expected[sel].mean() >= floor_req[sel].mean() - 1e-7
    run = run_all(scn, ["gar-pd"], margin_oracle=True)
    assert run.window_oracle is not None
    s = summary(run.metrics, window_oracle=run.window_oracle)
    assert s["gar_pd_co2_ratio_to_oracle_lp_with_window_floors"] == pytest.approx(
        run.metrics["gar-pd"]["co2_g_per_request"] / run.window_oracle["co2_g_per_request"]
    )


def test_window_margin_bound_rises_until_the_windows_are_met(small_scenario: Scenario) -> None:
    """The bound's rows have rising margins and never cheaper CO2; it stops at the first row
    that meets the acceptance criteria as realised, and the summary reports that row."""
    from streams.eval.oracles import run_oracle
    from streams.eval.runner import oracle_metrics, summary, window_margin_bound

    scn = small_scenario
    everything = scn.world.all_outcomes()
    rows = window_margin_bound(scn, everything, margins=(0.0, 0.01, 0.02, 0.04))
    assert rows
    margins = [r["pool_margin"] for r in rows]
    assert margins == sorted(margins)
    co2 = [r["co2_g_per_request"] for r in rows]
    assert all(b >= a * (1 - 1e-9) for a, b in itertools.pairwise(co2))
    met = [r["floor_met"] and r["floor_met_fraction"] >= 0.95 for r in rows]
    assert not any(met[:-1])  # it stops at the first row that meets them
    lp = oracle_metrics(scn, run_oracle("oracle-lp", scn, everything), everything)
    s = summary({"gar-pd": lp, "oracle-lp": lp}, window_bound=rows)
    bound = s["oracle_lp_window_margin_bound"]
    if met[-1]:
        assert bound["meets_windows_at_margin"] == rows[-1]["pool_margin"]
        assert bound["co2_ratio_to_oracle_lp"] == pytest.approx(
            rows[-1]["co2_g_per_request"] / lp["co2_g_per_request"]
        )
    else:
        assert bound["meets_windows_at_margin"] is None


def test_equal_accuracy_oracle_matches_the_policys_accuracy(small_scenario: Scenario) -> None:
    """oracle-lp at gar-pd's realised accuracy: per dataset its expected accuracy reaches
    max(floor, gar-pd's realised accuracy) unless that is beyond the LP's reach (then it is at
    the reach, and says so); it costs at least the plain oracle-lp; the summary's ratio is the
    quotient of the two CO2 figures."""
    from streams.eval.oracles import at_accuracy, reachable_accuracy
    from streams.eval.runner import to_json

    scn = small_scenario
    everything = scn.world.all_outcomes()
    run = run_all(scn, ["gar-pd"], margin_oracle=True)
    eq = run.equal_accuracy
    assert eq is not None and eq["policy"] == "gar-pd" and eq["lp_feasible"]
    realised = run.metrics["gar-pd"]["accuracy_per_dataset"]
    reach = reachable_accuracy(scn, everything)
    for d, expected in eq["accuracy_expected_per_dataset"].items():
        want = max(scn.floors[d], realised[d])
        assert expected >= min(want, reach[d]) - 1e-6
        assert (d in eq["capped_at_reachable"]) == (want > reach[d] - 1e-9)
    assert eq["co2_g_per_request"] >= run.metrics["oracle-lp"]["co2_g_per_request"] * (1 - 1e-9)
    s = to_json(run)["summary"]
    assert s["gar_pd_co2_ratio_to_oracle_lp_at_policy_accuracy"] == pytest.approx(
        run.metrics["gar-pd"]["co2_g_per_request"] / eq["co2_g_per_request"], rel=1e-12
    )
    assert s["oracle_lp_at_policy_accuracy"] is eq
    # Usable for any policy: at a policy's accuracy below every floor it is plain oracle-lp.
    low, target = at_accuracy(scn, everything, {d: 0.0 for d in scn.floors})
    assert target.floors == {d: scn.floors[d] for d in scn.trace.dataset_names}
    assert low.co2_g.sum() == pytest.approx(run.oracles["oracle-lp"].co2_g.sum(), rel=1e-9)
    # Above the reach: capped, reported, and the LP sits at the reach (without budgets: a
    # binding budget may trade accuracy shortfall against overspend, both penalised).
    unbudgeted = replace(scn, budgets_g={})
    top, capped = at_accuracy(unbudgeted, everything, {d: 1.0 for d in scn.floors})
    assert set(capped.capped) == set(scn.trace.dataset_names) and top.result.feasible
    for i, d in enumerate(scn.trace.dataset_names):
        assert top.result.accuracy_by_group[i] == pytest.approx(reach[d], abs=1e-6)
