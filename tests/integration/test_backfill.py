"""Backfill metrics from the decisions topic: the dashboards' decision panels then have data
at the records' event time, and the command says where to find them."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from support.cli import ops_cli
from support.decision_run import CATALOG, T0_MS, make_run, publish
from typer.testing import CliRunner

from streams.config import Settings
from streams.metrics.query import FluxClient
from streams.report.store import panel_series
from streams.report.views import BUDGETS, CARBON

pytestmark = pytest.mark.integration


def test_backfilled_decisions_fill_the_carbon_and_budget_dashboards(
    settings: Settings, run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = make_run()
    publish(settings, settings.topics.name(settings.topics.decisions), run.records)
    cat = tmp_path / "catalog.json"
    cat.write_text(json.dumps(CATALOG))
    monkeypatch.setenv("GAR_TOPICS__PREFIX", settings.topics.prefix)
    result = CliRunner().invoke(
        ops_cli(),
        ["metrics-backfill", "--offsets", ":", "--catalog", str(cat), "--tag", f"worker={run_id}"],
    )
    assert result.exit_code == 0, result.output
    assert f"{len(run.records)} decisions" in result.output and "0 dropped" in result.output
    # a replayed (old) trace is findable: the link opens the dashboards at its event time
    assert f"/d/gar-carbon?from={T0_MS - 60_000}" in result.output
    assert f"var-worker={run_id}" in result.output

    client = FluxClient(settings.influx)
    start_s, end_s = T0_MS / 1000 - 60, T0_MS / 1000 + 7 * 60
    mine = {"worker": [run_id]}
    total = panel_series(
        client, CARBON.panels[0], start_s=start_s, end_s=end_s, step_s=60, variables=mine
    )
    assert total[0][1].values[0] == pytest.approx(sum(r["co2_g"] for r in run.records))
    empty = []
    for board in (CARBON, BUDGETS):
        for panel in board.panels:
            found = panel_series(
                client, panel, start_s=start_s, end_s=end_s, step_s=60, variables=mine
            )
            for i, q in enumerate(panel.queries):
                if '"gar_completions"' in q.flux:
                    continue  # no telemetry in this run
                if not any(math.isfinite(v) for j, s in found if j == i for v in s.values):
                    empty.append(f"{panel.title} / query {i}")
    assert not empty, "\n".join(empty)
