"""Backfill metrics from the decisions topic: the dashboards' decision panels then have data
at the records' event time."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from streams.config import Settings
from streams.metrics.query import PromClient
from streams.report.views import BUDGETS, CARBON, substitute

from .conftest import ops_cli
from .decision_run import CATALOG, T0_MS, make_run, publish

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
        ops_cli(), ["metrics-backfill", "--offsets", ":", "--catalog", str(cat), "--tag", run_id]
    )
    assert result.exit_code == 0, result.output
    assert f"{len(run.records)} decisions" in result.output and "0 dropped" in result.output

    prom = PromClient(settings.influx.url)
    prom.force_flush()
    mine = prom.with_labels(worker=run_id)
    start_s, end_s = T0_MS / 1000 - 60, T0_MS / 1000 + 7 * 60
    total = mine.query(substitute(CARBON.panels[0].queries[0].expr, 60, end_s - start_s), end_s)
    assert total[0].values[0] == pytest.approx(sum(r["co2_g"] for r in run.records))
    empty = []
    for board in (CARBON, BUDGETS):
        for panel in board.panels:
            for q in panel.queries:
                if "gar_completions" in q.expr:
                    continue  # no telemetry in this run
                expr = substitute(q.expr, 60, end_s - start_s)
                series = (
                    mine.query(expr, end_s)
                    if panel.kind == "stat"
                    else mine.query_range(expr, start_s, end_s, 60)
                )
                if not any(math.isfinite(v) for s in series for v in s.values):
                    empty.append(f"{panel.title}: {expr}")
    assert not empty, "\n".join(empty)
