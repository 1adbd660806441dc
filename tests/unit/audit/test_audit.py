"""Acceptance: ``gar audit`` re-derives a run's decisions with zero mismatches, reports an
injected corrupted record with its offset, and a counterfactual replay with another policy."""

from __future__ import annotations

import copy

import pytest
from support.decision_run import make_run

from streams.audit.reader import DecisionRow
from streams.audit.rederive import Rederiver, counterfactual
from streams.audit.verify import audit_rows


def _rows(records: list[dict[str, object]]) -> list[DecisionRow]:
    return [DecisionRow("d", 0, i, 0, None, r) for i, r in enumerate(records)]


def test_in_memory_audit_is_clean_and_flags_a_changed_choice() -> None:
    run = make_run()
    rederive = Rederiver(run.catalog, {run.config.version: run.config})
    clean, _ = audit_rows("d", _rows(run.records), rederive)
    assert clean.ok and clean.rederived == len(run.records)

    records = copy.deepcopy(run.records)
    victim = records[17]
    other = next(k for k in range(run.catalog.n_candidates) if k != victim["candidate"])
    victim["candidate"] = other
    victim["model"], victim["region"] = run.catalog.deployments[other]
    bad, _ = audit_rows("d", _rows(records), rederive)
    assert {m.offset for m in bad.mismatches} == {17}
    assert "candidate" in {m.field for m in bad.mismatches}


def test_unknown_policy_version_is_reported_not_guessed() -> None:
    run = make_run(batches=1, per_batch=2)
    report, _ = audit_rows("d", _rows(run.records), Rederiver(run.catalog, {}))
    assert [m.field for m in report.mismatches] == ["policy_version"] * 2


def test_counterfactual_always_largest_costs_more_carbon() -> None:
    run = make_run()
    cf = counterfactual(
        _rows(run.records), run.catalog, {run.config.version: run.config}, "always-largest"
    )
    assert cf["skipped"] == 0 and cf["recorded"]["decisions"] == len(run.records)
    assert cf["recorded"]["co2_g"] == pytest.approx(sum(r["co2_g"] for r in run.records))
    largest = max(
        range(run.catalog.n_candidates),
        key=lambda k: run.catalog.models[int(run.catalog.cand_model_idx[k])].params_b,
    )
    largest_model = run.catalog.deployments[largest][0]
    assert cf["counterfactual"]["co2_g"] > cf["recorded"]["co2_g"]
    # every always-largest choice is the largest model, so its CO2 is at least the minimum
    # recorded CO2 estimate of that model's deployments for each request
    floor_g = sum(
        min(
            r["candidates"]["co2_g"][k]
            for k in range(run.catalog.n_candidates)
            if run.catalog.deployments[k][0] == largest_model
        )
        for r in run.records
    )
    assert cf["counterfactual"]["co2_g"] >= floor_g - 1e-12
    same = counterfactual(
        _rows(run.records), run.catalog, {run.config.version: run.config}, "gar-pd"
    )
    assert same["changed_choices"] == 0
    assert same["difference"]["co2_g"] == pytest.approx(0.0, abs=1e-12)
