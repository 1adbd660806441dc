"""Acceptance: ``gar audit`` re-derives a run's decisions with zero mismatches, reports an
injected corrupted record with its offset, and a counterfactual replay with another policy."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from support.cli import ops_cli
from support.decision_run import CATALOG, make_run, publish
from typer.testing import CliRunner

from streams.config import Settings


def _files(tmp_path: Path) -> list[str]:
    run = make_run()
    cat = tmp_path / "catalog.json"
    cat.write_text(json.dumps(CATALOG))
    cfg = tmp_path / "policy.json"
    cfg.write_text(json.dumps(run.config.to_dict()))
    return ["--catalog", str(cat), "--policy-config", str(cfg)]


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
