"""Acceptance: ``gar audit`` re-derives a run's decisions with zero mismatches, reports an
injected corrupted record with its offset, and a counterfactual replay with another policy."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.audit.reader import DecisionRow
from streams.audit.rederive import Rederiver, counterfactual
from streams.audit.report import audit_rows
from streams.config import Settings

from .conftest import ops_cli
from .decision_run import CATALOG, make_run, publish


def _files(tmp_path: Path) -> list[str]:
    run = make_run()
    cat = tmp_path / "catalog.json"
    cat.write_text(json.dumps(CATALOG))
    cfg = tmp_path / "policy.json"
    cfg.write_text(json.dumps(run.config.to_dict()))
    return ["--catalog", str(cat), "--policy-config", str(cfg)]


def _rows(records: list[dict[str, object]]) -> list[DecisionRow]:
    return [DecisionRow("d", 0, i, 0, None, r) for i, r in enumerate(records)]


def test_in_memory_audit_is_clean_and_flags_a_changed_choice() -> None:
    run = make_run()
    rederive = Rederiver(run.catalog, {run.config.version: run.config})
    clean = audit_rows("d", _rows(run.records), rederive)
    assert clean.ok and clean.rederived == len(run.records)

    records = copy.deepcopy(run.records)
    victim = records[17]
    other = next(k for k in range(run.catalog.n_candidates) if k != victim["candidate"])
    victim["candidate"] = other
    victim["model"], victim["region"] = run.catalog.deployments[other]
    bad = audit_rows("d", _rows(records), rederive)
    assert {m.offset for m in bad.mismatches} == {17}
    assert "candidate" in {m.field for m in bad.mismatches}


def test_unknown_policy_version_is_reported_not_guessed() -> None:
    run = make_run(batches=1, per_batch=2)
    report = audit_rows("d", _rows(run.records), Rederiver(run.catalog, {}))
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


@pytest.mark.integration
def test_gar_audit_over_a_topic(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run()
    records = copy.deepcopy(run.records)
    victim = 23
    records[victim]["co2_g"] *= 0.5  # a tampered estimate of the chosen candidate
    topic = settings.topics.name(settings.topics.decisions)
    where = publish(settings, topic, records)
    part, off = where[victim]
    monkeypatch.setenv("GAR_TOPICS__PREFIX", settings.topics.prefix)
    out_json, out_csv = tmp_path / "audit.json", tmp_path / "audit.csv"
    result = CliRunner().invoke(
        ops_cli(),
        [
            "audit",
            *_files(tmp_path),
            "--json",
            str(out_json),
            "--csv",
            str(out_csv),
            "--policy",
            "always-largest",
        ],
    )
    assert result.exit_code == 1, result.output
    report = json.loads(out_json.read_text())
    assert report["rows"] == len(records) == report["rederived"]
    assert {(m["partition"], m["offset"]) for m in report["mismatches"]} == {(part, off)}
    assert report["mismatches"][0]["field"] == "co2_g"
    assert f"{topic}[{part}]@{off}" in result.output
    assert report["chain"]["breaks"] == []
    assert report["counterfactual"]["policy"] == "always-largest"
    lines = out_csv.read_text().splitlines()
    assert len(lines) == len(records) + 1
    bad = [line for line in lines[1:] if ",mismatch," in line]
    assert len(bad) == 1 and bad[0].startswith(f"{topic},{part},{off},")

    # the untouched part of the topic re-derives with zero mismatches
    clean_range = f"{off + 1}:"
    result = CliRunner().invoke(
        ops_cli(), ["audit", *_files(tmp_path), "--offsets", clean_range, "--partition", str(part)]
    )
    assert result.exit_code == 0, result.output
    assert "0 mismatches" in result.output
